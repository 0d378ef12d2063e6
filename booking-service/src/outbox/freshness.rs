//! Whether a message about an appointment is still worth sending when its turn comes: a message
//! may wait (retries, a reminder's due time) while its appointment is cancelled, moved or over.

use crate::store::{outbox_kind, Appointment};
use chrono::{DateTime, Utc};
use shared::api::AppointmentStatus;

/// Why the message of `kind` and `payload` must not go out now (it is dropped for this reason),
/// or `None` to send it. Nothing goes from the appointment's start on (no reminder is ever late,
/// and a patient is not told of a cancelled time already past); before it, a cancellation notice
/// (email or SMS) goes and nothing else for a cancelled appointment; a reminder queued for
/// another start time (claimed while its appointment moved) is dropped, its successor is queued;
/// so is a move's notice overtaken by another move while it was claimed (the later one tells).
pub fn why_not_send(
    kind: &str,
    payload: &serde_json::Value,
    appointment: &Appointment,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    if now >= appointment.slot.start() {
        return Some("the appointment has started");
    }
    if outbox_kind::CANCELLATIONS.contains(&kind) {
        return None;
    }
    if appointment.status == AppointmentStatus::Cancelled {
        return Some("the appointment was cancelled before delivery");
    }
    let queued_for = || payload["starts_at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let moved_since =
        |queued_for: DateTime<chrono::FixedOffset>| queued_for.with_timezone(&Utc) != appointment.slot.start();
    if outbox_kind::REMINDERS.contains(&kind) && queued_for().is_none_or(moved_since) {
        return Some("the appointment moved after this reminder was queued");
    }
    // A move's notice queued by an earlier release has no new start: it goes.
    if outbox_kind::MOVES.contains(&kind) && queued_for().is_some_and(moved_since) {
        return Some("the appointment moved again after this notice was queued: the later notice tells");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn appointment(start: DateTime<Utc>, status: AppointmentStatus) -> Appointment {
        Appointment::sample("UTC", start, status)
    }

    #[test]
    fn a_reminder_goes_only_before_the_start_it_was_queued_for() {
        let start = Utc::now() + Duration::hours(2);
        let a = appointment(start, AppointmentStatus::Confirmed);
        let reminder = outbox_kind::reminder("+15551234567", 60, start);
        let due = start - Duration::minutes(60);
        assert_eq!(why_not_send(outbox_kind::REMINDER_SMS, &reminder, &a, due), None);
        // Retried until the start: never late.
        assert!(why_not_send(outbox_kind::REMINDER_SMS, &reminder, &a, start).is_some());
        assert!(why_not_send(outbox_kind::REMINDER_EMAIL, &reminder, &a, start + Duration::minutes(1)).is_some());
        // Queued for another start: the appointment moved while it was claimed.
        let moved = appointment(start + Duration::days(1), AppointmentStatus::Pending);
        let reason = why_not_send(outbox_kind::REMINDER_SMS, &reminder, &moved, due).expect("dropped");
        assert!(reason.contains("moved"), "{reason}");
        // PostgreSQL writes the start with an offset of its session's zone: the same instant.
        let offset = serde_json::json!({ "to": "x", "starts_at": start.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).expect("offset")).to_rfc3339() });
        assert_eq!(why_not_send(outbox_kind::REMINDER_SMS, &offset, &a, due), None);
    }

    /// Moved A to B, then B to C while the first notice was being sent: it is dropped, telling of
    /// a time the appointment no longer has; the later one goes. (One not yet claimed is withdrawn
    /// by the second move, whose notice tells from A, what the patient last heard.)
    #[test]
    fn a_moves_notice_overtaken_by_another_move_is_not_sent() {
        let (a, b, c) =
            (Utc::now() + Duration::days(1), Utc::now() + Duration::days(2), Utc::now() + Duration::days(3));
        let now_at_c = appointment(c, AppointmentStatus::Confirmed);
        let now = Utc::now();
        for kind in outbox_kind::MOVES {
            let first = outbox_kind::moved(serde_json::json!({ "to": "x" }), Some(a), b);
            let reason = why_not_send(kind, &first, &now_at_c, now).expect("dropped");
            assert!(reason.contains("moved again"), "{kind}: {reason}");
            let second = outbox_kind::moved(serde_json::json!({ "to": "x" }), Some(b), c);
            assert_eq!(why_not_send(kind, &second, &now_at_c, now), None, "{kind}");
            // Queued by a release before this one, without the new start: sent.
            assert_eq!(why_not_send(kind, &serde_json::json!({ "to": "x", "moved_from": a }), &now_at_c, now), None);
        }
    }

    #[test]
    fn nothing_but_the_cancellation_notices_go_for_a_cancelled_appointment() {
        let start = Utc::now() + Duration::days(2);
        let a = appointment(start, AppointmentStatus::Cancelled);
        let now = Utc::now();
        let reminder = outbox_kind::reminder("x", 60, start);
        for (kind, payload) in [
            (outbox_kind::BOOKING_CONFIRMATION, serde_json::json!({})),
            (outbox_kind::BOOKING_SMS, serde_json::json!({})),
            (outbox_kind::REMINDER_EMAIL, reminder),
            (outbox_kind::RESCHEDULE_SMS, serde_json::json!({})),
        ] {
            assert!(why_not_send(kind, &payload, &a, now).is_some(), "{kind}");
        }
        for kind in outbox_kind::CANCELLATIONS {
            assert_eq!(why_not_send(kind, &serde_json::json!({}), &a, now), None, "{kind}");
            // Delivered late (an outage), the cancelled time already past: not told.
            assert!(why_not_send(kind, &serde_json::json!({}), &a, start).is_some(), "{kind}");
        }
    }
}
