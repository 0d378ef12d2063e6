-- The voice agent knows the clinic: its Vapi assistant and front-desk number, and a record of
-- each call.
--
-- An audit row now also names the Vapi call whose tool call made the change, so a call's
-- appointments (booked, moved or cancelled in it) are read from the append-only audit log,
-- written in the same transaction as each change, never from a list that could miss one.

ALTER TABLE organizations
    ADD COLUMN vapi_assistant_id text CHECK (length(vapi_assistant_id) BETWEEN 1 AND 100),
    ADD COLUMN vapi_transfer_number text CHECK (length(vapi_transfer_number) BETWEEN 2 AND 20);

ALTER TABLE audit_log ADD COLUMN call_id text CHECK (length(call_id) BETWEEN 1 AND 200);
CREATE INDEX audit_log_call ON audit_log (org_id, call_id) WHERE call_id IS NOT NULL;

CREATE TABLE calls (
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id          text NOT NULL CHECK (length(call_id) BETWEEN 1 AND 200),
    customer_number  text,
    started_at       timestamptz NOT NULL, -- when the report names none: when it arrived
    ended_at         timestamptz,
    ended_reason     text,
    summary          text,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (org_id, call_id)
);
CREATE INDEX calls_started ON calls (org_id, started_at, call_id);

ALTER TABLE calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON calls
    USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()));
GRANT SELECT, INSERT ON calls TO booking_app;
