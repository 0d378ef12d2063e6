-- The messages sent, which retention prunes; see the PostgreSQL migration.
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
