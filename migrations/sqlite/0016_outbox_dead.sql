-- The dead letters, counted every 5 s and pruned; see the PostgreSQL migration.
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL;
