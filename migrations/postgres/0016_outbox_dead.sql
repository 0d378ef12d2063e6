-- The dead letters, which every instance counts every 5 s (the outbox_dead_messages gauge) and
-- retention prunes: without this index both read the whole outbox, every message sent in the last
-- RETENTION_DAYS included. The release before this one runs on it unchanged.
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at IS NOT NULL;
