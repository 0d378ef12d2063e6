-- A clinic's notification settings (GET/PUT /api/settings); see the PostgreSQL migration.
ALTER TABLE organizations ADD COLUMN reminder_offsets_minutes TEXT NOT NULL DEFAULT '[1440, 120]';
ALTER TABLE organizations ADD COLUMN manage_cutoff_minutes INTEGER NOT NULL DEFAULT 1440
    CHECK (manage_cutoff_minutes BETWEEN 0 AND 10080);
ALTER TABLE organizations ADD COLUMN sms_from TEXT CHECK (length(sms_from) BETWEEN 2 AND 20);
