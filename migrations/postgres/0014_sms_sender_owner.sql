-- A sender number belongs to one clinic: with a shared Twilio account, a clinic naming another's
-- number as its sms_from would text patients in that clinic's name, and its patients' STOP
-- (kept per sender number) would silence the other clinic's reminders. Clinics without their own
-- number (sms_from null) share SMS_FROM. The release before this one runs on it unchanged (it would
-- answer 500, not 422, to a clinic naming a taken number). Where two clinics already share a number
-- it refuses to apply, so the operator decides whose it is (docs/OPERATIONS.md, "Deploying").
CREATE UNIQUE INDEX organizations_sms_from ON organizations (sms_from) WHERE sms_from IS NOT NULL;
