-- The audit log also keeps the clinic's own changes: providers, appointment types, webhooks and
-- settings (their id, or the organization's for its settings, is in appointment_id), and is read
-- whole, in time order, by GET /api/audit. The release before this one runs on it unchanged.
-- The wider check holds of every row already there (NOT VALID: they are not read again); the index
-- is built under the migration's lock on the table, which holds audit writes (bookings) as long.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_subject_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_subject_check
    CHECK (subject IN ('appointment', 'time_off', 'closure', 'provider', 'appointment_type', 'webhook', 'settings'))
    NOT VALID;
CREATE INDEX audit_log_at ON audit_log (org_id, at, id);
