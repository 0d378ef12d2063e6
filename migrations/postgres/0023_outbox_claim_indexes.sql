-- The unsent messages claimed at least once, by how often: each dispatcher's claim first gives up
-- on those claimed as often as MAIL_MAX_ATTEMPTS allows, which are few, and finds them here instead
-- of reading every due message. A message queued (a booking's) enters it only when first claimed.
-- The release before this one runs on it unchanged.
CREATE INDEX outbox_claims ON outbox (claims) WHERE sent_at IS NULL AND dead_at IS NULL AND claims > 0;

-- Each clinic's unsent messages of one of the dispatcher's lanes (webhooks, and what patients are
-- sent), oldest first: a claim steps through the clinics and reads each one's oldest of its lane,
-- so one lane's backlog is not read through by the other's claims. They replace
-- outbox_due_per_org, which held both lanes: each message is still in one index of this kind. The
-- release before this one runs without it, sorting the due messages it ranks.
CREATE INDEX outbox_due_patients ON outbox (org_id, next_attempt_at, id)
    WHERE sent_at IS NULL AND dead_at IS NULL AND kind <> 'webhook';
CREATE INDEX outbox_due_webhooks ON outbox (org_id, next_attempt_at, id)
    WHERE sent_at IS NULL AND dead_at IS NULL AND kind = 'webhook';
DROP INDEX outbox_due_per_org;
