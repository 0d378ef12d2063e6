//! The names the store writes into rows (audit actions, outbox kinds, webhook events) and the JSON
//! each carries.

/// The events webhooks announce (Standard Webhooks' `type`).
pub mod event {
    pub const BOOKED: &str = "appointment.booked";
    pub const CONFIRMED: &str = "appointment.confirmed";
    pub const CANCELLED: &str = "appointment.cancelled";
    pub const RESCHEDULED: &str = "appointment.rescheduled";
    pub const COMPLETED: &str = "appointment.completed";
    pub const NO_SHOW: &str = "appointment.no_show";
    pub const ALL: [&str; 6] = [BOOKED, CONFIRMED, CANCELLED, RESCHEDULED, COMPLETED, NO_SHOW];

    /// The body a webhook is sent: the event, the instant of the change and the appointment as the
    /// API shows it then.
    pub fn body(
        kind: &str,
        at: chrono::DateTime<chrono::Utc>,
        appointment: &crate::store::Appointment,
    ) -> serde_json::Value {
        serde_json::json!({ "type": kind, "timestamp": at, "data": appointment.to_api() })
    }

    /// The payload of a webhook's outbox message: the body, and which endpoint it goes to (under
    /// `webhook_id`, which the PostgreSQL booking statement adds to the body as it reads the
    /// endpoints).
    pub fn payload(webhook: crate::domain::WebhookId, body: &serde_json::Value) -> serde_json::Value {
        let mut payload = body.clone();
        payload["webhook_id"] = serde_json::json!(webhook);
        payload
    }
}

/// What an action writes to the audit log.
pub mod action {
    use crate::domain::Slot;
    use serde_json::{json, Value};

    pub const BOOKED: &str = "booked";
    pub const CANCELLED: &str = "cancelled";
    pub const RESCHEDULED: &str = "rescheduled";
    pub const CONFIRMED: &str = "confirmed";
    pub const TIME_OFF_ADDED: &str = "time_off_added";
    pub const TIME_OFF_REMOVED: &str = "time_off_removed";
    pub const CLOSURE_ADDED: &str = "closure_added";
    pub const CLOSURE_REMOVED: &str = "closure_removed";
    pub const PROVIDER_ADDED: &str = "provider_added";
    pub const PROVIDER_CHANGED: &str = "provider_changed";
    pub const APPOINTMENT_TYPE_ADDED: &str = "appointment_type_added";
    pub const APPOINTMENT_TYPE_CHANGED: &str = "appointment_type_changed";
    pub const WEBHOOK_ADDED: &str = "webhook_added";
    pub const WEBHOOK_REMOVED: &str = "webhook_removed";
    pub const SETTINGS_CHANGED: &str = "settings_changed";
    pub const ORGANIZATION_CHANGED: &str = "organization_changed";
    pub const VAPI_SETTINGS_CHANGED: &str = "vapi_settings_changed";

    /// The details of a `booked` row.
    pub fn booked(slot: &Slot) -> Value {
        json!({ "starts_at": slot.start(), "ends_at": slot.end() })
    }

    /// The details of a `rescheduled` row.
    pub fn moved(from: &Slot, to: &Slot) -> Value {
        json!({ "from": booked(from), "to": booked(to) })
    }
}

/// The kinds of outbox message, and their payloads.
pub mod outbox_kind {
    pub const BOOKING_CONFIRMATION: &str = "booking_confirmation";
    /// A Standard Webhooks message to one endpoint (`store::event::payload`).
    pub const WEBHOOK: &str = "webhook";
    pub const RESCHEDULE_NOTICE: &str = "reschedule_notice";
    pub const CANCELLATION_NOTICE: &str = "cancellation_notice";
    /// The SMS a booking sends to the patient's phone: the code and the manage link.
    pub const BOOKING_SMS: &str = "booking_sms";
    /// Reminders, due at `starts_at − offset` (`store::rules::queue_reminders`).
    pub const REMINDER_EMAIL: &str = "reminder_email";
    pub const REMINDER_SMS: &str = "reminder_sms";
    pub const REMINDERS: [&str; 2] = [REMINDER_EMAIL, REMINDER_SMS];
    /// The SMS a reschedule or a cancellation sends to the patient's phone.
    pub const RESCHEDULE_SMS: &str = "reschedule_sms";
    pub const CANCELLATION_SMS: &str = "cancellation_sms";
    /// Every kind that goes by SMS.
    pub const SMS: [&str; 4] = [BOOKING_SMS, REMINDER_SMS, RESCHEDULE_SMS, CANCELLATION_SMS];
    /// What the patients are sent (email and SMS, through the operator's own SMTP server and
    /// Twilio), and what goes to the clinics' own endpoints: the dispatcher's two lanes.
    pub const TO_PATIENTS: [&str; 8] = [
        BOOKING_CONFIRMATION,
        RESCHEDULE_NOTICE,
        CANCELLATION_NOTICE,
        BOOKING_SMS,
        REMINDER_EMAIL,
        REMINDER_SMS,
        RESCHEDULE_SMS,
        CANCELLATION_SMS,
    ];
    pub const TO_WEBHOOKS: [&str; 1] = [WEBHOOK];
    /// Every kind this release delivers: the two lanes'. A dispatcher claims only these: a kind a
    /// newer release queues waits for a dispatcher of that release (during a staged rollout, or
    /// after a rollback) instead of failing here until it is dead.
    pub const ALL: [&str; TO_PATIENTS.len() + TO_WEBHOOKS.len()] = {
        let mut all = [""; TO_PATIENTS.len() + TO_WEBHOOKS.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = if i < TO_PATIENTS.len() { TO_PATIENTS[i] } else { TO_WEBHOOKS[i - TO_PATIENTS.len()] };
            i += 1;
        }
        all
    };
    /// The kinds that tell of a cancellation, so go out for a cancelled appointment (email, SMS).
    pub const CANCELLATIONS: [&str; 2] = [CANCELLATION_NOTICE, CANCELLATION_SMS];
    /// The kinds that tell of a move (email, SMS).
    pub const MOVES: [&str; 2] = [RESCHEDULE_NOTICE, RESCHEDULE_SMS];

    /// What every reminder to `to` says, whatever its offset: the recipient and the start it was
    /// queued for (so a reminder already claimed when its appointment moved is recognised).
    pub fn reminder_to(to: &str, starts_at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
        serde_json::json!({ "to": to, "starts_at": starts_at })
    }

    /// A reminder's payload: [`reminder_to`]'s, and the offset it was queued for (under
    /// `offset_minutes`, which the PostgreSQL booking statement adds as it reads the clinic's offsets).
    pub fn reminder(to: &str, offset_minutes: u32, starts_at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
        let mut payload = reminder_to(to, starts_at);
        payload["offset_minutes"] = offset_minutes.into();
        payload
    }

    /// The payload of a message carrying a confirmation link: the recipient and the link's nonce.
    pub fn with_link(to: &str, link: &crate::links::IssuedLink) -> serde_json::Value {
        serde_json::json!({ "to": to, "nonce": link.nonce })
    }

    pub fn plain(to: &str) -> serde_json::Value {
        serde_json::json!({ "to": to })
    }

    /// A move's notice (email or SMS): `payload`, the start the patient last heard of, which the
    /// notice shows beside the new one (a patient with two visits knows which moved), when it is
    /// another, and the start it was moved to (a notice overtaken by another move is not sent:
    /// the later one is).
    pub fn moved(
        mut payload: serde_json::Value,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> serde_json::Value {
        if let Some(from) = from {
            payload["moved_from"] = serde_json::json!(from);
        }
        payload["starts_at"] = serde_json::json!(to);
        payload
    }

    /// The start a move's notice says the appointment was moved from ([`moved`]).
    pub fn moved_from_of(payload: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
        let from = payload["moved_from"].as_str()?;
        chrono::DateTime::parse_from_rfc3339(from).ok().map(|t| t.to_utc())
    }
}
