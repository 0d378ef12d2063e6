//! `find_appointments`: the caller's upcoming appointments, found by the number they call from.

use super::refusal::Answer;
use super::{caller, speech, Context};
use crate::store::{self, Appointment, AppointmentFilter, PageRequest, Provider};
use serde::Deserialize;
use shared::api::AppointmentStatus;

/// No arguments: the number is the only key, so a model cannot ask about someone else.
#[derive(Debug, Deserialize)]
pub struct FindAppointments {}

/// What the caller hears when the number has no upcoming appointment.
pub const NONE_FOUND: &str = "I don't see any upcoming appointments under the number you're calling from. If one \
                          was booked under another number, the clinic's staff can find it.";

impl FindAppointments {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        Ok(listing(ctx).await?.map_or_else(|| NONE_FOUND.into(), |(_, said)| said))
    }
}

/// How many upcoming appointments the caller has, and them as spoken with their codes; `None` when
/// there is none.
pub async fn listing(ctx: &Context<'_>) -> Result<Option<(usize, String)>, super::refusal::Refusal> {
    let caller = caller::number(ctx)?;
    let filter = AppointmentFilter {
        patient_phone: Some(caller.as_str().to_owned()),
        from: Some(ctx.now),
        active: true,
        ..Default::default()
    };
    let found = ctx.store.appointments(ctx.actor.org, &filter, &PageRequest::first(store::MAX_PAGE)).await?;
    let upcoming: Vec<Appointment> = found
        .items
        .into_iter()
        // Upcoming: not started yet (as the per-caller limit counts them).
        .filter(|a| a.slot.start() > ctx.now)
        .collect();
    if upcoming.is_empty() {
        return Ok(None);
    }
    let read_out = &upcoming[..upcoming.len().min(speech::MAX_READ_OUT)];
    // The providers of those read out, each read once (however many the clinic has had).
    let mut providers: Vec<Provider> = Vec::new();
    for a in read_out {
        if !providers.iter().any(|p| p.id == a.provider_id) {
            providers.extend(ctx.store.provider(ctx.actor.org, a.provider_id).await?);
        }
    }
    let described: Vec<String> = read_out
        .iter()
        .map(|a| {
            let provider = providers.iter().find(|p| p.id == a.provider_id);
            let name = provider.map_or("your provider", |p| p.name.as_str());
            let local = a.zone.local(a.slot.start());
            // Statuses in words a caller knows: "pending" sounds like not booked.
            let confirmed = if a.status == AppointmentStatus::Confirmed { "confirmed" } else { "not yet confirmed" };
            format!(
                "with {name} on {} ({confirmed}, code {})",
                speech::local_moment(local.date(), local.time(), provider),
                speech::code(&a.confirmation_code),
            )
        })
        .collect();
    // A page's worth is more than anyone listens to: past it, the count says so.
    let count = match (upcoming.len(), found.more) {
        (1, false) => "one upcoming appointment".to_owned(),
        (n, false) => format!("{n} upcoming appointments"),
        (n, true) => format!("more than {n} upcoming appointments"),
    };
    let more = upcoming.len() - described.len();
    let rest = match (more, found.more) {
        (0, _) => String::new(),
        (more, false) => format!(", and {more} more"),
        (more, true) => format!(", and more than {more} others"),
    };
    Ok(Some((upcoming.len(), format!("You have {count}: {}{rest}.", speech::join(&described, "and")))))
}
