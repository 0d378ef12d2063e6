-- One booking, as the service's PostgreSQL store does it (booking-service/src/store/postgres.rs,
-- insert_booking) for the load test's requests (an agent's booking with a patient email and phone),
-- statement for statement, with prepared statements (pgbench -M prepared):
--   begin and switch to the request role and organization (one round trip: the service sends both
--   in one simple query, pgbench in one pipeline) and take the caller's lock (an agent books for a
--   caller whose upcoming appointments are capped); one statement that checks the provider is still
--   the version the booking was planned from (held FOR KEY SHARE; its type's too, but these
--   bookings have none), the caller's quota and recent bookings, time off and closures, and inserts the appointment (exclusion constraint in play) and with it everything the
--   service writes for such a booking: the audit row, the confirmation email and its link, the manage
--   link, the confirmation SMS, one reminder per offset (the default 1440 and 120 minutes) and
--   channel (email, SMS), and a message per webhook (the bench clinic has none, as in the service's
--   run); commit. Three round trips.
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
       FOR KEY SHARE
), quota AS (
    SELECT CASE WHEN c.churned THEN 0 ELSE o.max_active_per_caller END AS most
      FROM organizations o,
           (SELECT (SELECT count(*) FROM appointments ap
                    JOIN audit_log l ON l.org_id = ap.org_id AND l.appointment_id = ap.id
                    WHERE ap.org_id = :org::uuid AND ap.patient_phone = '+1' || lpad(:code::text, 14, '0')
                      AND ap.created_at > now() - interval '1 day' AND l.action = 'booked'
                      AND l.actor = 'bench-agent') >= 10
                OR (SELECT count(*) FROM audit_log
                    WHERE org_id = :org::uuid AND call_id = NULL AND action = 'booked'
                      AND at > now() - interval '1 day') >= 10
                AS churned) AS c
     WHERE o.id = :org::uuid AND o.max_active_per_caller > 0
       AND (c.churned OR (SELECT count(*) FROM appointments
             WHERE org_id = :org::uuid AND patient_phone = '+1' || lpad(:code::text, 14, '0')
               AND status IN ('pending', 'confirmed') AND starts_at > now())
         + (SELECT count(*) FROM appointments
             WHERE org_id = :org::uuid AND ('+1' || lpad(:code::text, 14, '0')) IS NULL AND patient_phone IS NULL
               AND status IN ('pending', 'confirmed') AND starts_at > now()
               AND id IN (SELECT appointment_id FROM audit_log
                          WHERE org_id = :org::uuid AND call_id = NULL AND action = 'booked')) >= o.max_active_per_caller)
), slot AS (
    SELECT timestamptz '2030-01-01 00:00:00+00' + :slot * interval '30 minutes' AS starts_at,
           timestamptz '2030-01-01 00:30:00+00' + :slot * interval '30 minutes' AS ends_at
), appt AS (
    INSERT INTO appointments (id, org_id, provider_id, starts_at, ends_at, blocked_from, blocked_until,
                              appointment_type_id, status, confirmation_code, patient_name, patient_phone,
                              patient_email, notes, created_at, updated_at)
    SELECT gen_random_uuid(), :org::uuid, ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid,
           slot.starts_at, slot.ends_at, slot.starts_at, slot.ends_at, NULL,
           'pending', 'B' || :code::text, 'Bench Patient', '+1' || lpad(:code::text, 14, '0'), 'bench@example.com', 'bench', now(), now()
      FROM provider, slot
     WHERE NOT EXISTS (SELECT FROM quota)
       AND NOT EXISTS (SELECT 1 FROM time_off WHERE org_id = :org::uuid
                         AND provider_id = ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid
                         AND tstzrange(starts_at, ends_at, '[)') && tstzrange(slot.starts_at, slot.ends_at, '[)')
                       UNION ALL
                       SELECT 1 FROM closures WHERE org_id = :org::uuid
                         AND tstzrange(starts_at, ends_at, '[)') && tstzrange(slot.starts_at, slot.ends_at, '[)'))
    ON CONFLICT DO NOTHING
    RETURNING id, org_id, starts_at, ends_at, patient_email, patient_phone
), audit AS (
    INSERT INTO audit_log (org_id, appointment_id, action, actor, details, at, call_id)
    SELECT org_id, id, 'booked', 'bench-agent', jsonb_build_object('starts_at', starts_at, 'ends_at', ends_at), now(), NULL FROM appt
), outbox AS (
    INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
    SELECT gen_random_uuid(), org_id, id, 'booking_confirmation',
           jsonb_build_object('to', patient_email, 'nonce', md5(id::text)), now(), now() FROM appt
), token AS (
    INSERT INTO confirmation_tokens (token_hash, org_id, appointment_id, expires_at, created_at)
    SELECT md5(id::text || 'c'), org_id, id, now() + interval '72 hours', now() FROM appt
), manage AS (
    INSERT INTO manage_links (token_hash, org_id, appointment_id, nonce, created_at)
    SELECT md5(id::text || 'm'), org_id, id, md5(id::text || 'n'), now() FROM appt
), sms AS (
    INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
    SELECT gen_random_uuid(), org_id, id, 'booking_sms', jsonb_build_object('to', patient_phone), now(), now() FROM appt
), reminders AS (
    INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
    SELECT gen_random_uuid(), appt.org_id, appt.id, ch.kind,
           jsonb_build_object('to', ch.recipient, 'starts_at', appt.starts_at) || jsonb_build_object('offset_minutes', m.minutes),
           appt.starts_at - make_interval(mins => m.minutes), now()
      FROM appt
      JOIN organizations o ON o.id = appt.org_id
     CROSS JOIN LATERAL (SELECT value::int AS minutes FROM jsonb_array_elements_text(o.reminder_offsets_minutes)) m
     CROSS JOIN LATERAL (VALUES ('reminder_email', appt.patient_email), ('reminder_sms', appt.patient_phone)) AS ch (kind, recipient)
     WHERE ch.recipient IS NOT NULL AND appt.starts_at - make_interval(mins => m.minutes) > now()
), hooks AS (
    INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
    SELECT gen_random_uuid(), appt.org_id, appt.id, 'webhook',
           '{"type": "appointment.booked", "data": {}}'::jsonb || jsonb_build_object('webhook_id', w.id), now(), now()
      FROM appt JOIN webhooks w ON w.org_id = appt.org_id
     WHERE (NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(w.events))
            OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(w.events) e WHERE e.value = 'appointment.booked'))
)
SELECT (SELECT count(*) FROM appt), (SELECT count(*) FROM provider), (SELECT most FROM quota),
       CASE WHEN NOT EXISTS (SELECT FROM appt) THEN (
           SELECT coalesce(json_agg(json_build_array(f, u) ORDER BY f), '[]') FROM (
               SELECT blocked_from, blocked_until FROM appointments
                WHERE org_id = :org::uuid AND provider_id = ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid
                  AND status IN ('pending', 'confirmed')
                  AND tstzrange(blocked_from, blocked_until, '[)') && tstzrange(now(), now() + interval '1 day', '[)')
               UNION ALL
               SELECT starts_at, ends_at FROM time_off
                WHERE org_id = :org::uuid AND provider_id = ('00000000-0000-0000-0000-' || lpad(:p::text, 12, '0'))::uuid
                  AND tstzrange(starts_at, ends_at, '[)') && tstzrange(now(), now() + interval '1 day', '[)')
               UNION ALL
               SELECT starts_at, ends_at FROM closures
                WHERE org_id = :org::uuid AND tstzrange(starts_at, ends_at, '[)') && tstzrange(now(), now() + interval '1 day', '[)')
           ) AS busy (f, u))
       END;
COMMIT;
