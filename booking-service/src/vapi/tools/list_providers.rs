//! `list_providers`: who the caller can book with, and the kinds of visit they can book.

use super::appointment_types::bookable;
use super::providers::{active, names};
use super::refusal::Answer;
use super::Context;
use serde::Deserialize;

/// No arguments; any the model sends are ignored.
#[derive(Debug, Deserialize)]
pub struct ListProviders {}

impl ListProviders {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let providers = active(ctx).await?;
        let who = match providers.as_slice() {
            [] => return Ok("There are no providers to book with yet.".to_owned()),
            [one] => format!("We have one provider: {}.", one.name),
            many => format!("We have {} providers: {}.", many.len(), names(many, "and")),
        };
        Ok(match bookable(ctx).await?.as_slice() {
            [] => who,
            kinds => format!("{who} You can book {}.", super::appointment_types::type_names(kinds, "or")),
        })
    }
}
