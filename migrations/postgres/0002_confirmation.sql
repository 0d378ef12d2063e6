-- Confirmation links and the mail dispatcher.
--
-- A confirmation link's token is never stored: only its SHA-256 hash, one live token per
-- appointment (rescheduling replaces it). Two more roles, both without login, superuser or
-- BYPASSRLS, each allowed exactly what its cross-organization job needs:
--   booking_worker  the mail dispatcher: reads and updates the delivery columns of the outbox of
--                   every organization (it renders messages through the request role, scoped to
--                   each job's organization);
--   booking_link    the public confirm page: finds which organization and appointment a token hash
--                   belongs to, and nothing else.
-- The tenant policies of 0001 are unchanged; the new policies name only these roles.

CREATE TABLE confirmation_tokens (
    token_hash      text PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  uuid NOT NULL UNIQUE,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL
);

ALTER TABLE confirmation_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE confirmation_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON confirmation_tokens
    USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()));
GRANT SELECT, INSERT, DELETE ON confirmation_tokens TO booking_app;

DO $$
BEGIN
    CREATE ROLE booking_worker NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created by another database of this cluster
END
$$;
DO $$
BEGIN
    CREATE ROLE booking_link NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- The connecting role must be able to SET ROLE to both (a superuser always can).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT booking_worker TO %I', current_user);
        EXECUTE format('GRANT booking_link TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO booking_worker, booking_link;

GRANT SELECT ON outbox TO booking_worker;
GRANT UPDATE (attempts, next_attempt_at, claimed_until, last_error, sent_at, dead_at) ON outbox TO booking_worker;
CREATE POLICY dispatcher ON outbox TO booking_worker USING (true) WITH CHECK (true);

GRANT SELECT ON confirmation_tokens TO booking_link;
CREATE POLICY link_lookup ON confirmation_tokens FOR SELECT TO booking_link USING (true);
