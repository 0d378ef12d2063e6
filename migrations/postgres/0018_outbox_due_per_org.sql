-- Each clinic's unsent messages, oldest first: a dispatcher's claim numbers every clinic's due
-- messages in this order (at most a share of each is taken), read from this index instead of
-- sorting them. The release before this one runs on it unchanged.
CREATE INDEX outbox_due_per_org ON outbox (org_id, next_attempt_at, id) WHERE sent_at IS NULL AND dead_at IS NULL;
