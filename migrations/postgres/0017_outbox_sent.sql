-- The messages sent, which retention prunes once they are RETENTION_DAYS old: without this index
-- each pruning reads the whole outbox. The release before this one runs on it unchanged.
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
