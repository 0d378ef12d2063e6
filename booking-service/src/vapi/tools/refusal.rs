//! Why a tool gave no result. A refusal about the request is a sentence the caller hears, and it
//! is kept for a repeated call id; a service that could not work (database down) is not kept, so
//! a retry can succeed. The `From` conversions let every tool refuse with `?`.

use super::{speech, Context};
use crate::booking::BookingError;
use crate::domain::{DomainError, Slot};
use crate::store::{Provider, StoreError};
use crate::vapi::clinic;

/// Said when the service could not work; nothing about the request was decided.
pub const SORRY: &str = "I'm sorry, I can't reach the booking system right now. Please try again in a moment.";
/// Said when a call runs past our deadline, which ends before Vapi's own timeout would.
pub const TOO_SLOW: &str = "I'm sorry, the booking system is taking too long to answer. Please try again in a moment.";

/// Said for every call of a message that holds more than `max` of them; none of them ran.
pub fn too_many(calls: usize, max: usize) -> String {
    format!("I can take at most {max} actions at once and was given {calls}, so none of them was done. Please try again with fewer.")
}

pub enum Refusal {
    /// A final answer about the request: kept for repeated ids.
    Spoken(String),
    /// The service could not work: not kept.
    Transient,
}

impl Refusal {
    pub fn spoken(sentence: impl Into<String>) -> Self {
        Self::Spoken(sentence.into())
    }
}

/// A tool's sentence, or why there is none.
pub type Answer = Result<String, Refusal>;

impl From<DomainError> for Refusal {
    fn from(e: DomainError) -> Self {
        Self::Spoken(speech::invalid(&e))
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::spoken("I couldn't find that."),
            StoreError::Expired => Self::spoken("That link or code has expired."),
            // The tools change a caller's appointment only before its start (`Cutoff::AT_START`):
            // one that has begun, perhaps missed and not yet marked, is the front desk's.
            StoreError::Started => Self::spoken(
                "That appointment has already started, so I can't change it over the phone. The front desk can help.",
            ),
            StoreError::InvalidState(m) => Self::spoken(format!("I couldn't do that: {m}.")),
            StoreError::IdempotencyConflict => Self::spoken("That conflicts with an earlier request in this call."),
            StoreError::StaffOnly(name) => Self::spoken(format!(
                "{} is booked by the clinic's staff, not over this line: please call the front desk to book it.",
                crate::domain::sentence(&speech::a(&name))
            )),
            StoreError::Invalid(d) => d.into(),
            StoreError::Unavailable(m) | StoreError::Internal(m) => {
                tracing::warn!(error = %m, "a voice-agent tool could not run");
                Self::Transient
            }
        }
    }
}

impl From<BookingError> for Refusal {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Store(s) => s.into(),
            BookingError::Unavailable { provider, wanted, alternatives } => {
                Self::Spoken(unavailable(&provider, &wanted, &alternatives))
            }
        }
    }
}

/// A refused booking or move as the caller hears it: as `From<BookingError>` says, except that a
/// time on a day the clinic is closed is said to be one (a holiday the caller could not know of
/// is no "isn't free"). The closure is looked for only here, after the refusal; when it cannot be
/// read, the plain refusal is said.
pub async fn refused(ctx: &Context<'_>, e: BookingError) -> Refusal {
    if let BookingError::Unavailable { provider, wanted, alternatives } = &e {
        if provider.active {
            match clinic::closed_over(ctx.store, ctx.actor.org, &provider.org_zone, wanted).await {
                Ok(Some(closure)) => {
                    // The clinic's days are not those of a provider in a zone of its own: the time
                    // asked for is said, in its clock.
                    let closed = match provider.other_zone() {
                        Some(_) => format!("The clinic is closed on {}.", speech::moment(provider, wanted.start())),
                        None => {
                            let today = provider.org_zone.local(ctx.now).date();
                            format!("The clinic is closed {}.", clinic::closed_days(&closure, today))
                        }
                    };
                    return Refusal::Spoken(offer(closed, provider, alternatives));
                }
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, "cannot read the clinic's closures for a refusal"),
            }
        }
    }
    e.into()
}

/// Taken or outside the provider's hours, with the nearest free times to choose from.
fn unavailable(provider: &Provider, wanted: &Slot, alternatives: &[Slot]) -> String {
    let when = speech::moment(provider, wanted.start());
    if !provider.active {
        return format!(
            "{} is no longer taking appointments. The front desk can help you find another time.",
            provider.name
        );
    }
    let first = if provider.permits(wanted) {
        format!("{} isn't free on {when}.", provider.name)
    } else {
        format!("{} isn't available on {when}.", provider.name)
    };
    offer(first, provider, alternatives)
}

/// `first`, then the nearest free times to choose from, or a request for another day.
fn offer(first: String, provider: &Provider, alternatives: &[Slot]) -> String {
    if alternatives.is_empty() {
        format!("{first} I couldn't find a free time near then. Could you try another day?")
    } else {
        format!(
            "{first} The nearest free times are {}. Would one of those work?",
            speech::slots(&alternatives.iter().map(|s| (provider, *s)).collect::<Vec<_>>(), true, "or")
        )
    }
}
