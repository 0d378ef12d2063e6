//! Types that cannot hold invalid values. Handlers turn request bodies into these first; everything
//! past the HTTP layer works with them only.

mod availability;
mod code;
mod hours;
mod ids;
mod patient;
mod policy;
pub mod spoken;
mod time;

pub use availability::{alternatives, alternatives_window, free_slots, relevant_since, Busy, MAX_BUFFER_MINUTES};
pub use code::ConfirmationCode;
pub use hours::WeeklyHours;
pub use ids::{AppointmentId, AppointmentTypeId, ClosureId, OrgId, ProviderId, TimeOffId, WebhookId};
pub use patient::{breaks_line, hides_or_reorders, Email, Notes, PatientName, PhoneNumber, Reason};
pub use policy::{Cutoff, Policy, Reach};
pub use time::{
    beyond_horizon, parse_date, parse_instant, parse_time, Minutes, Slot, Zone, BOOKING_HORIZON_DAYS, MAX_CLOSED_DAYS,
};

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

/// `value` when it is a whole number within `range` (of minutes, of days, a count), else the rule it
/// breaks.
pub fn bounded(field: &'static str, value: i64, range: std::ops::RangeInclusive<u32>) -> Result<u32, DomainError> {
    u32::try_from(value)
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| DomainError::invalid(field, format!("must be from {} to {}", range.start(), range.end())))
}

/// A rule's message, or any phrase, as the start of a sentence: its first letter in capitals.
pub fn sentence(phrase: &str) -> String {
    let mut chars = phrase.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends are allowed; below, above, negative and past `u32` name the field and the range.
    #[test]
    fn a_bounded_number_is_a_whole_number_within_its_range() {
        assert_eq!(bounded("buffer", 0, 0..=240), Ok(0));
        assert_eq!(bounded("buffer", 240, 0..=240), Ok(240));
        for outside in [241, -1, i64::MAX] {
            let refused = bounded("buffer", outside, 0..=240).expect_err("outside");
            assert_eq!(refused.to_string(), "buffer: must be from 0 to 240");
        }
        assert!(bounded("days", 0, 1..=730).is_err());
    }
}
