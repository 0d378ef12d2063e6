-- An appointment type's version, raised by every change. See the PostgreSQL migration.
ALTER TABLE appointment_types ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
