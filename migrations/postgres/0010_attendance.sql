-- Attendance: an appointment that has started can be marked `completed` or `no_show`. Neither is
-- active: like a cancelled one, it no longer holds its time (it lies in the past anyway).
ALTER TABLE appointments DROP CONSTRAINT appointments_status_check;
ALTER TABLE appointments ADD CONSTRAINT appointments_status_check
    CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show'));
