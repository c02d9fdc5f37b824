-- The transactional outbox: events written in the same transaction as the state change they
-- announce, published by a relay and deleted once the broker confirmed them.
--
-- Order: `id` is taken when the row is inserted, after the statement that changed the record
-- (which holds the record's row lock until commit), so the events of one record have
-- increasing ids in commit order. Rows are deleted only after they were published, so a row
-- committed late by a slow transaction, with an id below rows already published, is still
-- read by the next round: nothing is skipped.
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT NOT NULL,
    subject    TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    headers    JSONB NOT NULL DEFAULT '{}',
    message_id TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One active relay per schema: the holder renews its lease every round.
CREATE TABLE outbox_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Wakes the relays listening on `outbox_<md5 of the schema name>` when events are committed
-- (a channel name must fit in 63 bytes; a schema name may not).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_' || md5(TG_TABLE_SCHEMA), '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
