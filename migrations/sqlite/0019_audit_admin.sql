-- The audit log also keeps the clinic's own changes: providers, appointment types, webhooks and
-- settings (their id, or the organization's for its settings, is in appointment_id), and is read
-- whole, in time order, by GET /api/audit. SQLite cannot change a CHECK, so the table is
-- rebuilt as SQLite's ALTER TABLE documentation describes (nothing refers to it; the implicit
-- delete of DROP TABLE fires no trigger), with its ids, indexes and append-only triggers.
CREATE TABLE audit_log_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    appointment_id  TEXT NOT NULL,
    action          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    details         TEXT NOT NULL DEFAULT '{}',
    at              INTEGER NOT NULL,
    subject         TEXT NOT NULL DEFAULT 'appointment'
        CHECK (subject IN ('appointment', 'time_off', 'closure', 'provider', 'appointment_type', 'webhook', 'settings')),
    call_id         TEXT CHECK (length(call_id) BETWEEN 1 AND 200)
);
INSERT INTO audit_log_new (id, org_id, appointment_id, action, actor, details, at, subject, call_id)
    SELECT id, org_id, appointment_id, action, actor, details, at, subject, call_id FROM audit_log;
-- No id is given twice: the old table's counter (past rows deleted with their organization) goes on.
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0))
    WHERE name = 'audit_log_new';
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;

CREATE INDEX audit_log_appointment ON audit_log (org_id, appointment_id);
CREATE INDEX audit_log_call ON audit_log (org_id, call_id) WHERE call_id IS NOT NULL;
CREATE INDEX audit_log_at ON audit_log (org_id, at, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
