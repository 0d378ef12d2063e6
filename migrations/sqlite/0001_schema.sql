-- The booking schema on SQLite. Instants are integer microseconds since the Unix epoch (UTC), so
-- range comparisons are exact. SQLite has no exclusion constraints or row-level security: the store
-- checks overlaps and inserts inside one `BEGIN IMMEDIATE` transaction (the database's single
-- writer lock), and names the org_id in every query.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE providers (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                 TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone             TEXT,
    appointment_minutes  INTEGER NOT NULL CHECK (appointment_minutes BETWEEN 5 AND 480),
    working_hours        TEXT NOT NULL DEFAULT '[]',
    active               INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (org_id, id)
);

CREATE TABLE appointments (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL,
    provider_id        TEXT NOT NULL,
    starts_at          INTEGER NOT NULL,
    ends_at            INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    confirmation_code  TEXT NOT NULL,
    patient_name       TEXT,
    patient_phone      TEXT,
    patient_email      TEXT,
    notes              TEXT,
    cancel_reason      TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK (starts_at < ends_at),
    FOREIGN KEY (org_id, provider_id) REFERENCES providers (org_id, id) ON DELETE CASCADE,
    UNIQUE (org_id, confirmation_code)
);
CREATE INDEX appointments_provider_time ON appointments (org_id, provider_id, starts_at);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  TEXT NOT NULL,
    action          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    details         TEXT NOT NULL DEFAULT '{}',
    at              INTEGER NOT NULL
);
CREATE INDEX audit_log_appointment ON audit_log (org_id, appointment_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id   TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL DEFAULT '{}',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER,
    last_error       TEXT,
    sent_at          INTEGER,
    dead_at          INTEGER,
    created_at       INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;
