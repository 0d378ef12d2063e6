//! `check_availability`: a provider's free times on one day, or the next opening when the day has
//! none, so the caller is never left without something to choose.

use super::appointment_types::WhichType;
use super::arguments::text;
use super::providers::WhichProvider;
use super::refusal::{Answer, Refusal};
use super::{speech, Context};
use crate::booking;
use crate::domain::parse_date;
use serde::Deserialize;

/// How far ahead the next opening is looked for when the day asked about has none.
const NEXT_OPENING_DAYS: u32 = 14;

#[derive(Debug, Deserialize)]
pub struct CheckAvailability {
    #[serde(flatten)]
    provider: WhichProvider,
    #[serde(flatten)]
    kind: WhichType,
    #[serde(default, deserialize_with = "text")]
    date: Option<String>,
    /// Models that have just read the booking tool's schema send the day under its name.
    #[serde(default, deserialize_with = "text")]
    appointment_date: Option<String>,
}

impl CheckAvailability {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let provider = self.provider.find(ctx).await?;
        let kind = self.kind.find(ctx, &provider).await?;
        let policy = booking::policy_for(&provider, kind.as_ref());
        let name = match &kind {
            Some(kind) => format!("{} for a {}", provider.name, kind.name),
            None => provider.name.clone(),
        };
        let date_text = self
            .date
            .or(self.appointment_date)
            .ok_or_else(|| Refusal::spoken("Which day would you like me to check?"))?;
        let date = parse_date("date", &date_text)?;
        let zone = provider.zone();
        if date < zone.today() {
            return Err(Refusal::spoken("That day has already passed. Which day would you like?"));
        }
        let org = ctx.actor.org;
        let slots = booking::free_slots_on(ctx.store, org, &provider, &policy, date).await?;
        if slots.is_empty() {
            let next = match date.succ_opt() {
                Some(next) => {
                    booking::free_slots_over(ctx.store, org, &provider, &policy, next, NEXT_OPENING_DAYS).await?
                }
                None => Vec::new(),
            };
            if let Some(first) = next.first() {
                return Ok(format!(
                    "{name} has no free times on {}. The next opening is {}.",
                    speech::day(date),
                    speech::moment(&zone, first.start())
                ));
            }
            return Ok(format!("{name} has no free times on {} or in the two weeks after.", speech::day(date)));
        }
        let spoken: Vec<String> =
            slots.iter().take(speech::MAX_READ_OUT).map(|s| speech::time(&zone, s.start())).collect();
        let more = match slots.len().saturating_sub(speech::MAX_READ_OUT) {
            0 => String::new(),
            n => format!(", and {n} more later that day"),
        };
        Ok(format!("{name} is free on {} at {}{more}.", speech::day(date), speech::join(&spoken, "or")))
    }
}
