-- The booking schema on PostgreSQL. Tenancy is enforced twice: every query names its org_id, and
-- row-level security (forced, so even the owner is subject to it) filters on the organization set
-- transaction-locally in `app.org_id`. Requests run as `booking_app`, a role that is neither
-- superuser, owner nor BYPASSRLS.

CREATE EXTENSION IF NOT EXISTS btree_gist;

DO $$
BEGIN
    CREATE ROLE booking_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created by another database of this cluster
END
$$;

-- The connecting role must be able to SET ROLE booking_app (a superuser always can).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT booking_app TO %I', current_user);
    END IF;
END
$$;

CREATE FUNCTION current_org() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE providers (
    id                   uuid PRIMARY KEY,
    org_id               uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone             text,
    appointment_minutes  integer NOT NULL CHECK (appointment_minutes BETWEEN 5 AND 480),
    working_hours        jsonb NOT NULL DEFAULT '[]',
    active               boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    UNIQUE (org_id, id)
);

CREATE TABLE appointments (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL,
    provider_id        uuid NOT NULL,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    status             text NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    confirmation_code  text NOT NULL,
    patient_name       text,
    patient_phone      text,
    patient_email      text,
    notes              text,
    cancel_reason      text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CHECK (starts_at < ends_at),
    FOREIGN KEY (org_id, provider_id) REFERENCES providers (org_id, id) ON DELETE CASCADE,
    CONSTRAINT appointments_code_unique UNIQUE (org_id, confirmation_code),
    -- The ground truth of "never double-booked": two active appointments of one provider never
    -- overlap, whatever the concurrency and however many service processes.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        org_id WITH =,
        provider_id WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status IN ('pending', 'confirmed'))
);
CREATE INDEX appointments_org_starts ON appointments (org_id, starts_at);

-- Append-only: the request role may only insert and read, and a trigger refuses every update and
-- every delete except the cascade of deleting the whole organization.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  uuid NOT NULL,
    action          text NOT NULL,
    actor           text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_appointment ON audit_log (org_id, appointment_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- A request carrying an Idempotency-Key, with the fingerprint of its body and its answer.
CREATE TABLE idempotency_keys (
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

-- Messages to send, written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id   uuid NOT NULL,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,
    last_error       text,
    sent_at          timestamptz,
    dead_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;

GRANT USAGE ON SCHEMA public TO booking_app;
GRANT EXECUTE ON FUNCTION current_org() TO booking_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, providers, appointments, idempotency_keys, outbox TO booking_app;
GRANT SELECT, INSERT ON audit_log TO booking_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['providers', 'appointments', 'audit_log', 'idempotency_keys', 'outbox'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()))',
            t);
    END LOOP;
END
$$;
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
    USING (id = (SELECT current_org())) WITH CHECK (id = (SELECT current_org()));
