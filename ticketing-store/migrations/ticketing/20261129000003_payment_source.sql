-- The card token or payment method of each attempt, kept with the pending record so that an
-- attempt a crash left pending is repaired by asking the provider again with the same request
-- and idempotency key.
ALTER TABLE payments ADD COLUMN source TEXT NOT NULL DEFAULT '';
