-- An appointment's type is one of its own clinic's. PostgreSQL's key says so, (org_id,
-- appointment_type_id) referencing appointment_types (org_id, id); here the column references the
-- type's id alone, and SQLite cannot change a foreign key without rebuilding the table, so two
-- triggers say it instead. Every release checks it before writing, so the release before this one
-- runs on it unchanged. (The PostgreSQL migration narrows retention's policy; SQLite has no roles.)
CREATE TRIGGER appointments_type_of_own_clinic_insert BEFORE INSERT ON appointments
WHEN NEW.appointment_type_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM appointment_types t WHERE t.id = NEW.appointment_type_id AND t.org_id = NEW.org_id
)
BEGIN
    SELECT RAISE(ABORT, 'an appointment type of another organization');
END;
CREATE TRIGGER appointments_type_of_own_clinic_update BEFORE UPDATE OF org_id, appointment_type_id ON appointments
WHEN NEW.appointment_type_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM appointment_types t WHERE t.id = NEW.appointment_type_id AND t.org_id = NEW.org_id
)
BEGIN
    SELECT RAISE(ABORT, 'an appointment type of another organization');
END;
