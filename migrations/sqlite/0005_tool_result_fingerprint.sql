-- A remembered tool answer is given again only to the request it answered: the key gains Vapi's
-- call id and a fingerprint of the tool, arguments and caller (see the PostgreSQL migration).
-- SQLite cannot change a primary key in place, so the table is rebuilt; earlier rows are copied
-- with the fingerprint '', which no request computes, so they are kept but never replayed.
CREATE TABLE vapi_tool_results_keyed (
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    call_id       TEXT NOT NULL DEFAULT '',
    tool_call_id  TEXT NOT NULL,
    fingerprint   TEXT NOT NULL DEFAULT '',
    tool_name     TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, call_id, tool_call_id, fingerprint)
);

INSERT INTO vapi_tool_results_keyed (org_id, call_id, tool_call_id, fingerprint, tool_name, outcome, created_at)
    SELECT org_id, '', tool_call_id, '', tool_name, outcome, created_at FROM vapi_tool_results;

DROP TABLE vapi_tool_results;
ALTER TABLE vapi_tool_results_keyed RENAME TO vapi_tool_results;
