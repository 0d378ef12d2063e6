//! `get_clinic_info`: the clinic's name, its local date and time, and its opening hours, so an
//! assistant that lost track of the day can ask.

use super::providers::active;
use super::refusal::Answer;
use super::spoken_date::with_year;
use super::{speech, Context};
use crate::store::StoreError;
use serde::Deserialize;

/// No arguments; any the model sends are ignored.
#[derive(Debug, Deserialize)]
pub struct GetClinicInfo {}

impl GetClinicInfo {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let org = ctx.store.organization(ctx.actor.org).await?.ok_or(StoreError::NotFound)?;
        let providers = active(ctx).await?;
        let hours = speech::clinic_hours(&providers, &org.zone);
        let local = org.zone.local(ctx.now);
        Ok(format!(
            "This is {}. Today is {}, and it is {} here. Opening hours: {}.",
            org.name,
            with_year(local.date()),
            local.format("%-I:%M %p"),
            hours
        ))
    }
}
