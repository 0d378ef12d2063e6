//! `get_clinic_info`: the clinic's name, its local date and time, its opening hours and its
//! closures of the coming two weeks, so an assistant that lost track of the day can ask.

use super::refusal::Answer;
use super::spoken_date::with_year;
use super::Context;
use crate::store::StoreError;
use crate::vapi::clinic;
use serde::Deserialize;

/// No arguments; any the model sends are ignored.
#[derive(Debug, Deserialize)]
pub struct GetClinicInfo {}

impl GetClinicInfo {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let org = ctx.store.organization(ctx.actor.org).await?.ok_or(StoreError::NotFound)?;
        let hours = clinic::opening_hours(ctx.store, &org, ctx.now).await?;
        let local = org.zone.local(ctx.now);
        Ok(format!(
            "This is {}. Today is {}, and it is {} here. Opening hours: {hours}.",
            org.name,
            with_year(local.date()),
            local.format("%-I:%M %p"),
        ))
    }
}
