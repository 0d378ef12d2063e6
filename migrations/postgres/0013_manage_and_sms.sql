-- The patient's manage link and SMS opt-outs (SPEC §8).
--
-- manage_links: one per appointment, from its booking on, surviving reschedules (the link in an
-- SMS sent at booking keeps working). Only the token's SHA-256 is kept for the lookup; the nonce
-- lets the dispatcher recompute the token (with the link key, which only the process holds) when
-- it renders a message. The public manage page finds its appointment through booking_link, like
-- the confirm page.
CREATE TABLE manage_links (
    token_hash      text PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  uuid NOT NULL UNIQUE,
    nonce           text NOT NULL,
    created_at      timestamptz NOT NULL
);
ALTER TABLE manage_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE manage_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON manage_links
    USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()));
GRANT SELECT, INSERT ON manage_links TO booking_app;
GRANT SELECT ON manage_links TO booking_link;
CREATE POLICY link_lookup ON manage_links FOR SELECT TO booking_link USING (true);

-- Reminders are withdrawn (deleted while unsent) when their appointment is cancelled or moved.
CREATE INDEX outbox_appointment ON outbox (appointment_id) WHERE sent_at IS NULL AND dead_at IS NULL;

-- A phone that texted STOP to a sender number gets no SMS from that number until it texts START.
-- Opt-outs belong to the pair of numbers, not to a clinic (a clinic's sender may be shared), so
-- the table has no organization: only the inbound SMS route (booking_link) writes it and the
-- dispatcher (booking_worker) reads it.
CREATE TABLE sms_opt_outs (
    sender      text NOT NULL CHECK (length(sender) BETWEEN 2 AND 20),
    phone       text NOT NULL CHECK (length(phone) BETWEEN 2 AND 20),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (sender, phone)
);
GRANT SELECT, INSERT, DELETE ON sms_opt_outs TO booking_link;
GRANT SELECT ON sms_opt_outs TO booking_worker;
