-- A clinic's notification settings (GET/PUT /api/settings): when reminders go out before an
-- appointment, until when a patient may change it through the manage link, and the SMS sender.
-- max_active_per_caller (0007) is set through the same route.
ALTER TABLE organizations
    ADD COLUMN reminder_offsets_minutes jsonb NOT NULL DEFAULT '[1440, 120]',
    ADD COLUMN manage_cutoff_minutes integer NOT NULL DEFAULT 1440
        CHECK (manage_cutoff_minutes BETWEEN 0 AND 10080),
    ADD COLUMN sms_from text CHECK (length(sms_from) BETWEEN 2 AND 20);
