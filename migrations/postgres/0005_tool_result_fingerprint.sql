-- A remembered tool answer is given again only to the request it answered. The key gains Vapi's
-- call id ('' when a message names none) and a fingerprint: the SHA-256 of the tool name, the
-- arguments in canonical form and the caller's number. A toolCallId reused by another call, another
-- caller, another tool or other arguments finds no row, so it can never be handed someone else's
-- answer (a confirmation code, an appointment list).
--
-- Rows kept before this migration recorded none of that: they take the fingerprint '', which no
-- request computes (a fingerprint is 64 hex digits), so they stay valid but are never replayed.
ALTER TABLE vapi_tool_results ADD COLUMN call_id text NOT NULL DEFAULT '';
ALTER TABLE vapi_tool_results ADD COLUMN fingerprint text NOT NULL DEFAULT '';
ALTER TABLE vapi_tool_results DROP CONSTRAINT vapi_tool_results_pkey;
ALTER TABLE vapi_tool_results ADD PRIMARY KEY (org_id, call_id, tool_call_id, fingerprint);

-- The table is altered in place, not rebuilt: the grant 0003 gave booking_app (SELECT, INSERT, on
-- the whole table and so on the new columns), its forced row-level security and its
-- tenant_isolation policy stay as they were.
