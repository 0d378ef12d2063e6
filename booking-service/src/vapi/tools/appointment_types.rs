//! Which kind of visit the caller means: by id, or by a forgiving match of its name as spoken
//! ("new patient", "a follow-up visit"). Without one, the provider's usual appointment.

use super::arguments::text;
use super::providers::{match_spoken, Matched};
use super::refusal::Refusal;
use super::{speech, Context};
use crate::domain::spoken::FILLER;
use crate::store::{self, AppointmentType, Provider};
use serde::Deserialize;
use uuid::Uuid;

/// The appointment-type argument shared by the tools that take one.
#[derive(Debug, Default, Deserialize)]
pub struct WhichType {
    #[serde(default, deserialize_with = "text")]
    appointment_type: Option<String>,
}

impl WhichType {
    /// The active type meant, offered by `provider`; `None` when none was asked for.
    pub async fn find(&self, ctx: &Context<'_>, provider: &Provider) -> Result<Option<AppointmentType>, Refusal> {
        let kind = self.any(ctx).await?;
        if let Some(kind) = &kind {
            if !kind.offered_by(provider.id) {
                return Err(Refusal::spoken(format!("{} doesn't offer {}.", provider.name, speech::a(&kind.name))));
            }
        }
        Ok(kind)
    }

    /// The active type meant, whoever offers it; `None` when none was asked for.
    pub async fn any(&self, ctx: &Context<'_>) -> Result<Option<AppointmentType>, Refusal> {
        let Some(wanted) = self.appointment_type.as_deref() else {
            return Ok(None);
        };
        let types = active(ctx).await?;
        let found = match Uuid::parse_str(wanted) {
            Ok(id) => types.iter().find(|t| t.id.0 == id),
            Err(_) => match match_spoken(&types, wanted, FILLER, |t| &t.name) {
                Matched::One(one) => Some(one),
                Matched::None => None,
                Matched::Many(many) => {
                    // Only kinds the caller can book are offered; a name that fits only kinds
                    // staff book is answered as such.
                    let offered: Vec<_> = many.iter().copied().filter(|t| t.bookable_by_agent).collect();
                    return Err(if offered.is_empty() {
                        store::StoreError::StaffOnly(many[0].name.clone()).into()
                    } else {
                        Refusal::spoken(format!("Did you mean {}?", type_names(offered, "or")))
                    });
                }
            },
        };
        let Some(kind) = found else {
            // What the caller can book here: a kind only staff book is not offered.
            let offered: Vec<_> = types.iter().filter(|t| t.bookable_by_agent).collect();
            return Err(Refusal::spoken(if offered.is_empty() {
                "This clinic books only standard appointments; I'll book one of those if that's all right.".to_owned()
            } else {
                format!("I couldn't find that kind of visit. We offer {}.", type_names(offered, "and"))
            }));
        };
        if !kind.bookable_by_agent {
            // Said before any times are offered, not after the caller picked one.
            return Err(store::StoreError::StaffOnly(kind.name.clone()).into());
        }
        Ok(Some(kind.clone()))
    }
}

/// The clinic's active types.
async fn active(ctx: &Context<'_>) -> Result<Vec<AppointmentType>, Refusal> {
    Ok(ctx.store.active_appointment_types(ctx.actor.org).await?)
}

/// The active types a voice agent may book.
pub async fn bookable(ctx: &Context<'_>) -> Result<Vec<AppointmentType>, Refusal> {
    Ok(active(ctx).await?.into_iter().filter(|t| t.bookable_by_agent).collect())
}

/// "New patient visit (60 minutes) and Follow-up (15 minutes)".
pub fn type_names<'a>(types: impl IntoIterator<Item = &'a AppointmentType>, word: &str) -> String {
    let names: Vec<String> = types.into_iter().map(|t| format!("{} ({} minutes)", t.name, t.duration.get())).collect();
    speech::join(&names, word)
}
