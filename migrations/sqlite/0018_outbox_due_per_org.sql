-- Each clinic's unsent messages, oldest first, for a dispatcher's claim; see the PostgreSQL migration.
CREATE INDEX outbox_due_per_org ON outbox (org_id, next_attempt_at, id) WHERE sent_at IS NULL AND dead_at IS NULL;
