-- One booking, as the service's PostgreSQL store does it (booking-service/src/store/postgres.rs,
-- insert_booking), statement for statement, with prepared statements (pgbench -M prepared):
--   begin and switch to the request role and organization (one round trip: the service sends both
--   in one simple query, pgbench in one pipeline) and take the caller's lock (an agent books for a
--   caller whose upcoming appointments are capped); one statement that checks the provider is still
--   the version the booking was planned from (the service keeps providers it has read in memory)
--   and the caller's quota, and inserts the appointment (exclusion constraint in play), its audit row and its outbox row;
--   commit. Three round trips.
-- No Idempotency-Key is sent by the load test, so no idempotency row (the service's statement
-- inserts none then either).
-- Slots are distinct per transaction: client_id and a per-client counter (pgbench keeps variables
-- across a client's transactions) give each booking its own 30-minute slot, spread over 16 providers.
\set k :k + 1
\set p 1 + (:k % 16)
\set slot :client_id * 10000000 + :k
\set code :client_id * 100000000 + :k
\startpipeline
BEGIN;
SELECT set_config('role', 'booking_app', true), set_config('app.org_id', :org, true);
SELECT pg_advisory_xact_lock(:code);
\endpipeline
WITH provider AS (
    SELECT FROM providers
     WHERE org_id = :org::uuid AND id = ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid AND version = 1 AND active
), quota AS (
    SELECT o.max_active_per_caller AS most FROM organizations o
     WHERE o.id = :org::uuid AND o.max_active_per_caller > 0
       AND (SELECT count(*) FROM appointments
             WHERE org_id = :org::uuid AND patient_phone = '+1' || lpad(:code::text, 14, '0')
               AND status IN ('pending', 'confirmed') AND ends_at > now()) >= o.max_active_per_caller
), appt AS (
    INSERT INTO appointments (id, org_id, provider_id, starts_at, ends_at, status, confirmation_code,
                              patient_name, patient_phone, patient_email, notes, created_at, updated_at)
    SELECT gen_random_uuid(), :org::uuid, ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid,
           timestamptz '2030-01-01 00:00:00+00' + :slot * interval '30 minutes',
           timestamptz '2030-01-01 00:30:00+00' + :slot * interval '30 minutes',
           'pending', 'B' || :code::text, 'Bench Patient', '+1' || lpad(:code::text, 14, '0'), 'bench@example.com', 'bench', now(), now()
      FROM provider
     WHERE NOT EXISTS (SELECT FROM quota)
    ON CONFLICT DO NOTHING
    RETURNING id, org_id, starts_at, ends_at
), audit AS (
    INSERT INTO audit_log (org_id, appointment_id, action, actor, details, at)
    SELECT org_id, id, 'booked', 'bench-agent', jsonb_build_object('starts_at', starts_at, 'ends_at', ends_at), now() FROM appt
), outbox AS (
    INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
    SELECT gen_random_uuid(), org_id, id, 'booking_confirmation', jsonb_build_object('to', 'bench@example.com'), now(), now() FROM appt
)
SELECT (SELECT count(*) FROM appt), (SELECT count(*) FROM provider), (SELECT most FROM quota),
       CASE WHEN NOT EXISTS (SELECT FROM appt) THEN (
           SELECT coalesce(json_agg(json_build_array(starts_at, ends_at) ORDER BY starts_at), '[]')
           FROM appointments
           WHERE org_id = :org::uuid AND provider_id = ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid
             AND status IN ('pending', 'confirmed')
             AND tstzrange(starts_at, ends_at, '[)') && tstzrange(now(), now() + interval '1 day', '[)'))
       END;
COMMIT;
