-- Attendance: an appointment that has started can be marked `completed` or `no_show`. SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt with every row and index (no
-- table has a foreign key to it).
CREATE TABLE appointments_new (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL,
    provider_id          TEXT NOT NULL,
    starts_at            INTEGER NOT NULL,
    ends_at              INTEGER NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
    confirmation_code    TEXT NOT NULL,
    patient_name         TEXT,
    patient_phone        TEXT,
    patient_email        TEXT,
    notes                TEXT,
    cancel_reason        TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    appointment_type_id  TEXT REFERENCES appointment_types (id),
    blocked_from         INTEGER NOT NULL,
    blocked_until        INTEGER NOT NULL,
    CHECK (starts_at < ends_at),
    CHECK (blocked_from <= starts_at AND blocked_until >= ends_at),
    FOREIGN KEY (org_id, provider_id) REFERENCES providers (org_id, id) ON DELETE CASCADE,
    UNIQUE (org_id, confirmation_code)
);
INSERT INTO appointments_new (id, org_id, provider_id, starts_at, ends_at, status, confirmation_code, patient_name,
                              patient_phone, patient_email, notes, cancel_reason, created_at, updated_at,
                              appointment_type_id, blocked_from, blocked_until)
SELECT id, org_id, provider_id, starts_at, ends_at, status, confirmation_code, patient_name,
       patient_phone, patient_email, notes, cancel_reason, created_at, updated_at,
       appointment_type_id, blocked_from, blocked_until
FROM appointments;
DROP TABLE appointments;
ALTER TABLE appointments_new RENAME TO appointments;
CREATE INDEX appointments_provider_time ON appointments (org_id, provider_id, starts_at);
CREATE INDEX appointments_org_phone ON appointments (org_id, patient_phone, starts_at) WHERE patient_phone IS NOT NULL;
CREATE INDEX appointments_provider_blocked ON appointments (org_id, provider_id, blocked_from);
