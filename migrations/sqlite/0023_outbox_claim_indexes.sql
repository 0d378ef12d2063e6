-- The unsent messages by how often they were claimed, for a dispatcher's claim; see the PostgreSQL migration.
CREATE INDEX outbox_claims ON outbox (claims) WHERE sent_at IS NULL AND dead_at IS NULL AND claims > 0;
-- Each clinic's unsent messages of one lane, oldest first, for a dispatcher's claim; see the PostgreSQL migration.
CREATE INDEX outbox_due_patients ON outbox (org_id, next_attempt_at, id)
    WHERE sent_at IS NULL AND dead_at IS NULL AND kind <> 'webhook';
CREATE INDEX outbox_due_webhooks ON outbox (org_id, next_attempt_at, id)
    WHERE sent_at IS NULL AND dead_at IS NULL AND kind = 'webhook';
DROP INDEX outbox_due_per_org;
