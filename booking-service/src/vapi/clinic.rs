//! What the voice agent says of the clinic as a whole: its opening hours, and the days it is
//! closed. The weekly hours say nothing of holidays, so every answer that speaks of them (the
//! assistant's `opening_hours`, `get_clinic_info`) says the closures of the coming two weeks
//! beside them, and a time asked for on a closed day is said to be one, not merely "not free".

use super::speech;
use crate::domain::{OrgId, Slot, Zone};
use crate::store::{Closure, DynStore, Organization, Provider, StoreResult};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// How far ahead the clinic's closures are said beside its opening hours.
const CLOSURES_AHEAD_DAYS: i64 = 14;

/// The clinic's opening hours in one line, without a final stop: its active providers' weekly
/// hours, then the days it is closed over the coming two weeks ("Monday to Friday 9 AM to 5 PM;
/// closed Saturday and Sunday. The clinic is closed on Friday, December 25"). Two reads.
pub async fn opening_hours(store: &DynStore, org: &Organization, now: DateTime<Utc>) -> StoreResult<String> {
    let providers = store.active_providers(org.id).await?;
    let hours = speech::clinic_hours(&providers, &org.zone);
    let today = org.zone.local(now).date();
    let days = (today, today + Duration::days(CLOSURES_AHEAD_DAYS));
    let read_out = speech::MAX_READ_OUT;
    let closures = store.closures_meeting(org.id, days, read_out as u32 + 1).await?;
    let mut closed: Vec<String> = closures.iter().take(read_out).map(|c| days_of(c, today)).collect();
    if closures.len() > read_out {
        closed.push("more days after those".into());
    }
    Ok(match closed.as_slice() {
        [] => hours,
        _ => format!("{hours}. The clinic is closed on {}", speech::join(&closed, "and")),
    })
}

/// The closure that keeps the clinic shut over any of `wanted`, a time asked for (closures are
/// whole local days of the clinic's `zone`).
pub async fn closed_over(store: &DynStore, org: OrgId, zone: &Zone, wanted: &Slot) -> StoreResult<Option<Closure>> {
    Ok(closures_meeting(store, org, zone, wanted).await?.into_iter().find(|c| c.span.overlaps(wanted)))
}

/// The closures meeting the local days of the clinic's `zone` that `wanted` falls on.
async fn closures_meeting(store: &DynStore, org: OrgId, zone: &Zone, wanted: &Slot) -> StoreResult<Vec<Closure>> {
    let last_instant = wanted.end() - Duration::microseconds(1);
    let days = (zone.local(wanted.start()).date(), zone.local(last_instant).date());
    // Its start's day and its end's are one or two days: a closure meeting them is found within
    // a few, even where closures overlap.
    store.closures_meeting(org, days, 4).await
}

/// The clinic's closure of the local day `date`, if any: the clinic's own day, or, asked of one
/// provider, that provider's. A closure is whole days of the clinic's, which for a provider in a
/// zone of its own are not its days: it counts when it covers the provider's whole working time
/// of `date` (its whole day when it has none); one that shuts part of it leaves a day that is
/// open, if full.
pub async fn closed_on(
    store: &DynStore,
    org: OrgId,
    provider: Option<&Provider>,
    date: NaiveDate,
) -> StoreResult<Option<Closure>> {
    let Some(p) = provider else {
        return Ok(store.closures_meeting(org, (date, date), 1).await?.into_iter().next());
    };
    match p.hours.working_span(&p.zone(), date).or_else(|| p.zone().whole_days(date, date)) {
        Some(working) => {
            let closures = closures_meeting(store, org, &p.org_zone, &working).await?;
            Ok(closures.into_iter().find(|c| c.span.covers(&working)))
        }
        None => Ok(None),
    }
}

/// "on Friday, December 25", or "from Thursday, December 24 to Sunday, December 27": the days of
/// a closure from `today` on (one under way is said from today).
pub fn closed_days(closure: &Closure, today: NaiveDate) -> String {
    match closure.first_day.max(today) {
        first if first >= closure.last_day => format!("on {}", speech::day(first)),
        _ => format!("from {}", days_of(closure, today)),
    }
}

/// "Friday, December 25", or "Thursday, December 24 to Sunday, December 27".
fn days_of(closure: &Closure, today: NaiveDate) -> String {
    match (closure.first_day.max(today), closure.last_day) {
        (first, last) if first >= last => speech::day(first),
        (first, last) => format!("{} to {}", speech::day(first), speech::day(last)),
    }
}
