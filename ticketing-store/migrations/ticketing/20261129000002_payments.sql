-- The payments service: its payments and its replica of orders.

CREATE TABLE payments (
    seq             BIGSERIAL NOT NULL,
    id              TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    order_id        TEXT NOT NULL CHECK (order_id ~ '^[0-9a-f]{24}$'),
    amount_cents    BIGINT NOT NULL CHECK (amount_cents > 0),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    idempotency_key TEXT NOT NULL UNIQUE,
    charge_id       TEXT,
    failure         TEXT,
    version         BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0)
);
-- One charge per order: at most one attempt pending or succeeded, enforced by the database.
CREATE UNIQUE INDEX payments_one_open_per_order ON payments (order_id)
    WHERE status IN ('pending', 'succeeded');
CREATE INDEX payments_by_order ON payments (order_id, seq);
CREATE INDEX payments_pending ON payments (seq) WHERE status = 'pending';

CREATE TABLE payable_orders (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    user_id     TEXT NOT NULL CHECK (user_id ~ '^[0-9a-f]{24}$'),
    price_cents BIGINT NOT NULL CHECK (price_cents > 0),
    status      TEXT NOT NULL CHECK (status IN ('created', 'awaiting:payment', 'complete', 'cancelled')),
    version     BIGINT NOT NULL CHECK (version >= 0)
);
