-- The unsent messages by how often they were claimed: each dispatcher's claim first gives up on
-- those claimed as often as MAIL_MAX_ATTEMPTS allows, which are few, and finds them here instead
-- of reading every due message. The release before this one runs on it unchanged.
CREATE INDEX outbox_claims ON outbox (claims) WHERE sent_at IS NULL AND dead_at IS NULL;
