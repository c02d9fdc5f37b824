-- The warehouse's own table, migrated by the application's own `sqlx::migrate!()` (recorded in
-- `_sqlx_migrations`) beside the SDK's outbox migrations (recorded in their own table).
CREATE TABLE stock (
    id       UUID PRIMARY KEY,
    sku      TEXT NOT NULL UNIQUE,
    quantity BIGINT NOT NULL CHECK (quantity >= 0),
    version  BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0)
);
