//! Which provider the caller means: by id when the model has one from `list_providers`, else by a
//! forgiving match of the name as spoken ("smith", "Dr Smith"; "J" only when one name fits), else
//! the clinic's only provider.
//! Titles are ignored because callers and models add or drop them at will.

use super::arguments::text;
use super::refusal::Refusal;
use super::{speech, Context};
use crate::domain::spoken::{self, TITLES};
use crate::store::Provider;
use serde::Deserialize;
use uuid::Uuid;

/// The provider arguments shared by the tools that need one.
#[derive(Debug, Default, Deserialize)]
pub struct WhichProvider {
    #[serde(default, deserialize_with = "text")]
    provider_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    provider_name: Option<String>,
}

impl WhichProvider {
    /// Whether the caller named a provider at all.
    pub fn is_given(&self) -> bool {
        self.provider_id.is_some() || self.provider_name.is_some()
    }

    /// The active provider meant, or a question naming the ones there are.
    pub async fn find(&self, ctx: &Context<'_>) -> Result<Provider, Refusal> {
        let mut providers = active(ctx).await?;
        if providers.is_empty() {
            return Err(Refusal::spoken("There are no providers to book with yet."));
        }
        let id = self.provider_id.as_deref().and_then(|id| Uuid::parse_str(id).ok());
        if let Some(at) = id.and_then(|id| providers.iter().position(|p| p.id.0 == id)) {
            return Ok(providers.swap_remove(at));
        }
        // An id of no provider here, or no id at all ("1", a name), is what the model guessed
        // (list_providers says names, not ids): the name, when given, is what the caller said.
        let guessed = self.provider_id.as_ref().filter(|_| id.is_none());
        let Some(wanted) = self.provider_name.as_ref().or(guessed) else {
            if id.is_some() {
                return Err(Refusal::spoken(format!(
                    "I couldn't find that provider. We have {}.",
                    names(&providers, "and")
                )));
            }
            // With one provider there is nothing to ask.
            return match <[Provider; 1]>::try_from(providers) {
                Ok([only]) => Ok(only),
                Err(providers) => Err(which(&providers)),
            };
        };
        match_name(providers, wanted)
    }
}

/// The providers one can book with now.
pub async fn active(ctx: &Context<'_>) -> Result<Vec<Provider>, Refusal> {
    Ok(ctx.store.active_providers(ctx.actor.org).await?)
}

/// "Dr. A, Dr. B and Dr. C" (with `and` or `or`).
pub fn names<'a>(providers: impl IntoIterator<Item = &'a Provider>, word: &str) -> String {
    let names: Vec<String> = providers.into_iter().map(|p| p.name.clone()).collect();
    speech::join(&names, word)
}

fn which(providers: &[Provider]) -> Refusal {
    Refusal::spoken(format!("Which provider would you like? We have {}.", names(providers, "and")))
}

/// What a spoken name matched.
pub enum Matched<'a, T> {
    One(&'a T),
    None,
    Many(Vec<&'a T>),
}

/// More words than any name said has: matched against none (each word is tried against every
/// word of every name, so a megabyte of words would keep a thread busy for seconds).
const MOST_WORDS: usize = 20;

/// The one item whose name is exactly the words said, else the one each word begins a part of.
pub fn match_spoken<'a, T>(
    items: &'a [T],
    wanted: &str,
    ignored: &[&str],
    name: impl Fn(&T) -> &str,
) -> Matched<'a, T> {
    let query = spoken::words(wanted, ignored);
    if query.is_empty() || query.len() > MOST_WORDS {
        return Matched::None;
    }
    let exact: Vec<&T> = items.iter().filter(|i| spoken::words(name(i), ignored) == query).collect();
    if let [one] = exact.as_slice() {
        return Matched::One(one);
    }
    let partial: Vec<&T> = items
        .iter()
        .filter(|i| {
            let tokens = spoken::words(name(i), ignored);
            query.iter().all(|q| tokens.iter().any(|t| t.starts_with(q.as_str())))
        })
        .collect();
    match partial.as_slice() {
        [one] => Matched::One(one),
        [] => Matched::None,
        _ => Matched::Many(partial),
    }
}

fn match_name(providers: Vec<Provider>, wanted: &str) -> Result<Provider, Refusal> {
    if spoken::words(wanted, TITLES).is_empty() {
        return Err(which(&providers));
    }
    match match_spoken(&providers, wanted, TITLES, |p| &p.name) {
        Matched::One(one) => Ok(one.clone()),
        Matched::None => Err(Refusal::spoken(format!(
            "I couldn't find a provider called {}. We have {}.",
            speech::quoted(wanted),
            names(&providers, "and")
        ))),
        Matched::Many(many) => Err(Refusal::spoken(format!("Did you mean {}?", names(many, "or")))),
    }
}
