-- The voice agent knows the clinic: its Vapi assistant and front-desk number, a record of each
-- call, and the call named on the audit rows of the changes its tool calls made.

ALTER TABLE organizations ADD COLUMN vapi_assistant_id TEXT CHECK (length(vapi_assistant_id) BETWEEN 1 AND 100);
ALTER TABLE organizations ADD COLUMN vapi_transfer_number TEXT CHECK (length(vapi_transfer_number) BETWEEN 2 AND 20);

ALTER TABLE audit_log ADD COLUMN call_id TEXT CHECK (length(call_id) BETWEEN 1 AND 200);
CREATE INDEX audit_log_call ON audit_log (org_id, call_id) WHERE call_id IS NOT NULL;

CREATE TABLE calls (
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id          TEXT NOT NULL CHECK (length(call_id) BETWEEN 1 AND 200),
    customer_number  TEXT,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    ended_reason     TEXT,
    summary          TEXT,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (org_id, call_id)
);
CREATE INDEX calls_started ON calls (org_id, started_at, call_id);
