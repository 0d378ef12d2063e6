-- The first answer given to each Vapi tool call (see the PostgreSQL migration).
CREATE TABLE vapi_tool_results (
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    tool_call_id  TEXT NOT NULL,
    tool_name     TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, tool_call_id)
);

CREATE INDEX appointments_org_phone ON appointments (org_id, patient_phone, starts_at) WHERE patient_phone IS NOT NULL;
