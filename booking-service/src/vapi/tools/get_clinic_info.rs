//! `get_clinic_info`: the clinic's name, its local date and time, its opening hours and its
//! closures of the coming two weeks, so an assistant that lost track of the day can ask.

use super::providers::active;
use super::refusal::Answer;
use super::spoken_date::with_year;
use super::{speech, Context};
use crate::store::StoreError;
use chrono::Duration;
use serde::Deserialize;

/// How far ahead the clinic's closures are said.
const CLOSURES_AHEAD_DAYS: i64 = 14;

/// No arguments; any the model sends are ignored.
#[derive(Debug, Deserialize)]
pub struct GetClinicInfo {}

impl GetClinicInfo {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let org = ctx.store.organization(ctx.actor.org).await?.ok_or(StoreError::NotFound)?;
        let providers = active(ctx).await?;
        let hours = speech::clinic_hours(&providers, &org.zone);
        let local = org.zone.local(ctx.now);
        // The weekly hours say nothing of holidays: the closures of the coming two weeks are said
        // beside them, so "are you open Monday?" is not answered yes on a holiday.
        let today = local.date();
        let days = (today, today + Duration::days(CLOSURES_AHEAD_DAYS));
        let read_out = speech::MAX_READ_OUT;
        let closures = ctx.store.closures_meeting(org.id, days, read_out as u32 + 1).await?;
        let mut closed: Vec<String> = closures
            .iter()
            .take(read_out)
            .map(|c| match (c.first_day.max(today), c.last_day) {
                (first, last) if first == last => speech::day(first),
                (first, last) => format!("{} to {}", speech::day(first), speech::day(last)),
            })
            .collect();
        if closures.len() > read_out {
            closed.push("more days after those".into());
        }
        let closed = match closed.as_slice() {
            [] => String::new(),
            _ => format!(" The clinic is closed on {}.", speech::join(&closed, "and")),
        };
        Ok(format!(
            "This is {}. Today is {}, and it is {} here. Opening hours: {}.{closed}",
            org.name,
            with_year(today),
            local.format("%-I:%M %p"),
            hours
        ))
    }
}
