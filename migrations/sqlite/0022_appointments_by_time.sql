-- A clinic's appointments in time order, as GET /api/appointments lists them: without it a
-- list walked and sorted every appointment of the clinic. PostgreSQL has had its own since 0001.
CREATE INDEX appointments_org_starts ON appointments (org_id, starts_at, id);
