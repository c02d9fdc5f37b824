-- The ticketing stores. Ids are the 24-hex strings of the API, prices integer cents,
-- versions are checked in the UPDATE itself, and the database enforces uniqueness of
-- emails (ignoring case) and of the active order per ticket.

CREATE TABLE users (
    id            TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE tickets (
    seq         BIGSERIAL NOT NULL,
    id          TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    title       TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents > 0),
    user_id     TEXT NOT NULL CHECK (user_id ~ '^[0-9a-f]{24}$'),
    version     BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    order_id    TEXT CHECK (order_id ~ '^[0-9a-f]{24}$')
);
CREATE INDEX tickets_unreserved ON tickets (seq) WHERE order_id IS NULL;

-- The tickets service's replica of orders.
CREATE TABLE order_replicas (
    id        TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    ticket_id TEXT NOT NULL CHECK (ticket_id ~ '^[0-9a-f]{24}$'),
    status    TEXT NOT NULL CHECK (status IN ('created', 'awaiting:payment', 'complete', 'cancelled')),
    version   BIGINT NOT NULL CHECK (version >= 0)
);

-- The orders service's replica of tickets.
CREATE TABLE ticket_replicas (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    title       TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents > 0),
    version     BIGINT NOT NULL CHECK (version >= 0)
);

CREATE TABLE orders (
    seq        BIGSERIAL NOT NULL,
    id         TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    user_id    TEXT NOT NULL CHECK (user_id ~ '^[0-9a-f]{24}$'),
    ticket_id  TEXT NOT NULL REFERENCES ticket_replicas (id),
    status     TEXT NOT NULL CHECK (status IN ('created', 'awaiting:payment', 'complete', 'cancelled')),
    expires_at TIMESTAMPTZ NOT NULL,
    version    BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0)
);
-- The reservation rule: at most one active order per ticket, enforced by the database.
CREATE UNIQUE INDEX orders_one_active_per_ticket ON orders (ticket_id) WHERE status <> 'cancelled';
CREATE INDEX orders_by_user ON orders (user_id, seq);
