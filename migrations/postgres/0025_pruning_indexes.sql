-- Retention prunes idempotency records and the voice tools' kept answers once they are
-- RETENTION_DAYS old: without these indexes each pruning reads both tables whole (the outbox has
-- its own, 0016 and 0017). The release before this one runs on them unchanged.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX vapi_tool_results_created ON vapi_tool_results (created_at);
