//! `list_providers`: who the caller can book with.

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
        Ok(match providers.as_slice() {
            [] => "There are no providers to book with yet.".to_owned(),
            [one] => format!("We have one provider: {}.", one.name),
            many => format!("We have {} providers: {}.", many.len(), names(many, "and")),
        })
    }
}
