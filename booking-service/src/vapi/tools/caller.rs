//! The caller, known only by the number the telephony layer reports, and the appointments that
//! number may touch. A code alone is not enough: it must belong to the calling number, so nothing
//! of other callers (or other clinics) is revealed.

use super::refusal::Refusal;
use super::{find_appointments, speech, Context};
use crate::domain::{ConfirmationCode, PhoneNumber};
use crate::store::{Appointment, AppointmentFilter, PageRequest, Provider, StoreError};
use shared::api::AppointmentStatus;

const NO_CALLER: &str = "I can only look up appointments by the number you're calling from, and I can't \
                         see it on this call: please call again without hiding your number, or ask the clinic's staff.";

/// The number the call comes from, without which no appointment is looked up.
pub fn number<'a>(ctx: &'a Context<'_>) -> Result<&'a PhoneNumber, Refusal> {
    ctx.caller.as_ref().ok_or_else(|| Refusal::spoken(NO_CALLER))
}

/// The caller's active appointment with the code as spoken, and its provider.
pub async fn own_appointment(
    ctx: &Context<'_>,
    spoken_code: Option<String>,
) -> Result<(Appointment, Provider), Refusal> {
    let caller = number(ctx)?;
    // Few callers keep the code: without it, or with one not theirs, they hear their appointments
    // with their codes and are asked which (the model then calls again with its code).
    let Some(spoken) = spoken_code else {
        return Err(which(ctx, "").await?);
    };
    let code = ConfirmationCode::parse(&spoken).ok_or_else(|| {
        Refusal::spoken("That doesn't sound like a confirmation code. It has six letters and digits.")
    })?;
    let filter = AppointmentFilter {
        patient_phone: Some(caller.as_str().to_owned()),
        confirmation_code: Some(code.as_str().to_owned()),
        ..Default::default()
    };
    let found = ctx.store.appointments(ctx.actor.org, &filter, &PageRequest::first(1)).await?;
    let Some(appointment) = found.items.into_iter().next() else {
        let missed = format!(
            "I couldn't find an appointment with the code {} for the number you're calling from.",
            speech::code(code.as_str())
        );
        return Err(which(ctx, &missed).await?);
    };
    match appointment.status {
        AppointmentStatus::Pending | AppointmentStatus::Confirmed => {}
        AppointmentStatus::Cancelled => return Err(Refusal::spoken("That appointment is already cancelled.")),
        AppointmentStatus::Completed | AppointmentStatus::NoShow => {
            return Err(Refusal::spoken("That appointment has already taken place."))
        }
    }
    let provider = ctx.store.provider(ctx.actor.org, appointment.provider_id).await?.ok_or(StoreError::NotFound)?;
    Ok((appointment, provider))
}

/// `said`, then the caller's upcoming appointments and which one they mean; or, with none, that
/// there is none under this number.
async fn which(ctx: &Context<'_>, said: &str) -> Result<Refusal, Refusal> {
    let sentence = match find_appointments::listing(ctx).await? {
        Some((1, listing)) => format!("{said} {listing} Is that the one?"),
        Some((_, listing)) => format!("{said} {listing} Which one do you mean?"),
        None => format!("{said} {}", find_appointments::NONE_FOUND),
    };
    Ok(Refusal::spoken(sentence.trim_start()))
}
