-- The first answer given to each Vapi tool call, so a repeated toolCallId is answered the same way
-- and changes nothing, across restarts and service instances.
CREATE TABLE vapi_tool_results (
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    tool_call_id  text NOT NULL,
    tool_name     text NOT NULL,
    outcome       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, tool_call_id)
);

CREATE INDEX appointments_org_phone ON appointments (org_id, patient_phone, starts_at) WHERE patient_phone IS NOT NULL;

GRANT SELECT, INSERT ON vapi_tool_results TO booking_app;
ALTER TABLE vapi_tool_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE vapi_tool_results FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON vapi_tool_results
    USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()));
