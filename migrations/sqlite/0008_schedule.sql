-- A clinic's schedule: appointment types, the range each appointment blocks, time off and closures.
-- An appointment blocks [blocked_from, blocked_until): its time widened by its type's buffers
-- (exactly its own time without a type, which every existing row gets). The store checks blocked
-- ranges, time off and closures inside the single write transaction, as it checks overlaps.

CREATE TABLE appointment_types (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                   TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    duration_minutes       INTEGER NOT NULL CHECK (duration_minutes BETWEEN 5 AND 480),
    buffer_before_minutes  INTEGER NOT NULL DEFAULT 0 CHECK (buffer_before_minutes BETWEEN 0 AND 240),
    buffer_after_minutes   INTEGER NOT NULL DEFAULT 0 CHECK (buffer_after_minutes BETWEEN 0 AND 240),
    min_notice_minutes     INTEGER NOT NULL DEFAULT 0 CHECK (min_notice_minutes BETWEEN 0 AND 525600),
    max_advance_days       INTEGER NOT NULL DEFAULT 365 CHECK (max_advance_days BETWEEN 1 AND 365),
    slot_interval_minutes  INTEGER NOT NULL CHECK (slot_interval_minutes BETWEEN 5 AND 480),
    bookable_by_agent      INTEGER NOT NULL DEFAULT 1,
    provider_ids           TEXT NOT NULL DEFAULT '[]',
    active                 INTEGER NOT NULL DEFAULT 1,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    UNIQUE (org_id, id)
);

ALTER TABLE appointments ADD COLUMN appointment_type_id TEXT REFERENCES appointment_types (id);
ALTER TABLE appointments ADD COLUMN blocked_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE appointments ADD COLUMN blocked_until INTEGER NOT NULL DEFAULT 0;
UPDATE appointments SET blocked_from = starts_at, blocked_until = ends_at;
CREATE INDEX appointments_provider_blocked ON appointments (org_id, provider_id, blocked_from);

CREATE TABLE time_off (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    starts_at    INTEGER NOT NULL,
    ends_at      INTEGER NOT NULL,
    reason       TEXT CHECK (length(reason) <= 500),
    created_at   INTEGER NOT NULL,
    CHECK (starts_at < ends_at),
    FOREIGN KEY (org_id, provider_id) REFERENCES providers (org_id, id) ON DELETE CASCADE
);
CREATE INDEX time_off_provider ON time_off (org_id, provider_id, starts_at);

CREATE TABLE closures (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    first_day   TEXT NOT NULL,
    last_day    TEXT NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    reason      TEXT CHECK (length(reason) <= 500),
    created_at  INTEGER NOT NULL,
    CHECK (first_day <= last_day),
    CHECK (starts_at < ends_at)
);
CREATE INDEX closures_org ON closures (org_id, starts_at);

ALTER TABLE audit_log ADD COLUMN subject TEXT NOT NULL DEFAULT 'appointment'
    CHECK (subject IN ('appointment', 'time_off', 'closure'));
