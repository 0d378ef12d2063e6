-- Retention's, as on PostgreSQL (see its migration): here pruning reads holding the only write
-- lock, so every booking would wait on a read of both tables whole.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX vapi_tool_results_created ON vapi_tool_results (created_at);
-- A closure's conflicts are the appointments of every provider that meet its days: read by
-- time within the clinic, not each of its appointments ever made, under the write lock.
-- (PostgreSQL's exclusion constraint's index serves that read.)
CREATE INDEX appointments_org_blocked ON appointments (org_id, blocked_from);
