-- The unsent messages by how often they were claimed, for a dispatcher's claim; see the PostgreSQL migration.
CREATE INDEX outbox_claims ON outbox (claims) WHERE sent_at IS NULL AND dead_at IS NULL AND claims > 0;
