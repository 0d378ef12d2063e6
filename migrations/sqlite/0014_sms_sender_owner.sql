-- A sender number belongs to one clinic; see the PostgreSQL migration.
CREATE UNIQUE INDEX organizations_sms_from ON organizations (sms_from) WHERE sms_from IS NOT NULL;
