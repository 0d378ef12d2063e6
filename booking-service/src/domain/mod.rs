//! Types that cannot hold invalid values. Handlers turn request bodies into these first; everything
//! past the HTTP layer works with them only.

mod availability;
mod code;
mod hours;
mod ids;
mod patient;
mod policy;
mod time;

pub use availability::{alternatives, alternatives_window, free_slots};
pub use code::ConfirmationCode;
pub use hours::WeeklyHours;
pub use ids::{AppointmentId, AppointmentTypeId, ClosureId, OrgId, ProviderId, TimeOffId, WebhookId};
pub use patient::{Email, Notes, PatientName, PhoneNumber};
pub use policy::{Cutoff, Policy, Reach};
pub use time::{parse_date, parse_instant, parse_time, Minutes, Slot, Zone, BOOKING_HORIZON_DAYS};

/// A value from outside that breaks a rule; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }
}
