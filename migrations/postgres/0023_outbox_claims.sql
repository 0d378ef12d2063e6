-- The unsent messages claimed at least once, by how often: each dispatcher's claim first gives up
-- on those claimed as often as MAIL_MAX_ATTEMPTS allows, which are few, and finds them here instead
-- of reading every due message. A message queued (a booking's) enters it only when first claimed.
-- The release before this one runs on it unchanged.
CREATE INDEX outbox_claims ON outbox (claims) WHERE sent_at IS NULL AND dead_at IS NULL AND claims > 0;
