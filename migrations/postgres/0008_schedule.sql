-- A clinic's schedule: appointment types, the range each appointment blocks, time off and closures.
--
-- An appointment now blocks [blocked_from, blocked_until): its own time widened by its type's
-- buffers (exactly its own time without a type, which is what every existing row gets). The
-- exclusion constraint that decides booking conflicts moves from the appointment's time to that
-- blocked range, so two active appointments of one provider never have overlapping blocked ranges.
--
-- Time off (per provider) and closures (per clinic, whole local days) are checked by the booking
-- statement; their creation locks the provider rows they concern and raises their version, which a
-- booking in flight holds a key-share lock on, so the two serialise (docs/ARCHITECTURE.md).

CREATE TABLE appointment_types (
    id                     uuid PRIMARY KEY,
    org_id                 uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    duration_minutes       integer NOT NULL CHECK (duration_minutes BETWEEN 5 AND 480),
    buffer_before_minutes  integer NOT NULL DEFAULT 0 CHECK (buffer_before_minutes BETWEEN 0 AND 240),
    buffer_after_minutes   integer NOT NULL DEFAULT 0 CHECK (buffer_after_minutes BETWEEN 0 AND 240),
    min_notice_minutes     integer NOT NULL DEFAULT 0 CHECK (min_notice_minutes BETWEEN 0 AND 525600),
    max_advance_days       integer NOT NULL DEFAULT 365 CHECK (max_advance_days BETWEEN 1 AND 365),
    slot_interval_minutes  integer NOT NULL CHECK (slot_interval_minutes BETWEEN 5 AND 480),
    bookable_by_agent      boolean NOT NULL DEFAULT true,
    -- The providers offering it; empty: every provider.
    provider_ids           jsonb NOT NULL DEFAULT '[]',
    active                 boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    UNIQUE (org_id, id)
);

ALTER TABLE appointments
    ADD COLUMN appointment_type_id uuid,
    ADD COLUMN blocked_from timestamptz,
    ADD COLUMN blocked_until timestamptz;
-- Row-level security is forced even on the owner: let this one statement see every organization's
-- rows (a superuser would anyway), then force it again.
ALTER TABLE appointments NO FORCE ROW LEVEL SECURITY;
UPDATE appointments SET blocked_from = starts_at, blocked_until = ends_at;
ALTER TABLE appointments FORCE ROW LEVEL SECURITY;
ALTER TABLE appointments
    ALTER COLUMN blocked_from SET NOT NULL,
    ALTER COLUMN blocked_until SET NOT NULL,
    ADD CONSTRAINT appointments_blocked_covers CHECK (blocked_from <= starts_at AND blocked_until >= ends_at),
    ADD FOREIGN KEY (org_id, appointment_type_id) REFERENCES appointment_types (org_id, id),
    DROP CONSTRAINT appointments_no_overlap,
    ADD CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        org_id WITH =,
        provider_id WITH =,
        tstzrange(blocked_from, blocked_until, '[)') WITH &&
    ) WHERE (status IN ('pending', 'confirmed'));

CREATE TABLE time_off (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL,
    provider_id  uuid NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text CHECK (length(reason) <= 500),
    created_at   timestamptz NOT NULL,
    CHECK (starts_at < ends_at),
    FOREIGN KEY (org_id, provider_id) REFERENCES providers (org_id, id) ON DELETE CASCADE
);
CREATE INDEX time_off_provider ON time_off USING gist (org_id, provider_id, tstzrange(starts_at, ends_at, '[)'));

-- Whole local days of the organization's zone, first_day to last_day inclusive, kept also as the
-- instants they span (the zone of an organization does not change).
CREATE TABLE closures (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    first_day   date NOT NULL,
    last_day    date NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text CHECK (length(reason) <= 500),
    created_at  timestamptz NOT NULL,
    CHECK (first_day <= last_day),
    CHECK (starts_at < ends_at)
);
CREATE INDEX closures_org ON closures USING gist (org_id, tstzrange(starts_at, ends_at, '[)'));

-- What an audit row is about: an appointment (every row so far), time off or a closure, whose id
-- is in appointment_id.
ALTER TABLE audit_log ADD COLUMN subject text NOT NULL DEFAULT 'appointment'
    CHECK (subject IN ('appointment', 'time_off', 'closure'));

GRANT SELECT, INSERT, UPDATE ON appointment_types TO booking_app;
GRANT SELECT, INSERT, DELETE ON time_off, closures TO booking_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['appointment_types', 'time_off', 'closures'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = (SELECT current_org())) WITH CHECK (org_id = (SELECT current_org()))',
            t);
    END LOOP;
END
$$;
