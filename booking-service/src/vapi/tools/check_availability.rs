//! `check_availability`: free times on one day, or the earliest ones when no day is named; with
//! one provider or across every active provider of the clinic, each time naming its provider;
//! optionally only in the morning, afternoon or evening. A day with nothing free gives the next
//! opening, so the caller is never left without something to choose.

use super::appointment_types::WhichType;
use super::arguments::text;
use super::providers::{active, WhichProvider};
use super::refusal::{Answer, Refusal};
use super::spoken_date::{self, PartOfDay};
use super::spoken_time::SpokenStart;
use super::{speech, Context};
use crate::booking;
use crate::domain::{self, Busy, Policy, ProviderId, Slot, Zone};
use crate::store::{AppointmentType, Provider};
use crate::vapi::clinic;
use chrono::{Days, Duration, NaiveDate, NaiveTime};
use serde::Deserialize;

/// How far ahead the earliest free times, or the next opening after a full day, are looked for.
const SEARCH_DAYS: u32 = 14;
/// How many of the earliest free times are offered when no day is named.
const EARLIEST: usize = 3;
/// How many of a day's free times nearest a time asked about are offered when it is not free.
const NEAREST: usize = 3;

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
    #[serde(default, deserialize_with = "text")]
    time_window: Option<String>,
    /// A time the caller asks about on `date` ("is 2 PM free?"), under the booking tool's name.
    #[serde(default, deserialize_with = "text")]
    appointment_time: Option<String>,
    /// The same time, under the short name some models send (beside it, it gives way).
    #[serde(default, deserialize_with = "text")]
    time: Option<String>,
}

/// The time window asked for: a part of the day ("morning", "in the afternoon", "pm"), or none
/// for any time.
fn read_window(said: &str) -> Result<Option<PartOfDay>, Refusal> {
    let said = said.to_lowercase();
    match said.trim().trim_start_matches("in the ").trim() {
        "any" | "anytime" | "any time" | "all day" => Ok(None),
        "am" => Ok(Some(PartOfDay::Morning)),
        "pm" => Ok(Some(PartOfDay::Afternoon)),
        word => PartOfDay::named(word)
            .map(Some)
            .ok_or_else(|| Refusal::spoken("I can look for times in the morning, the afternoon or the evening.")),
    }
}

/// What is being looked for: whose times, of which kind, in which part of the day.
struct Search<'a> {
    providers: Vec<Provider>,
    kind: Option<AppointmentType>,
    window: Option<PartOfDay>,
    ctx: &'a Context<'a>,
}

/// One provider searched: its zone, its first day, the policy it books by and what is busy.
type Schedule<'a> = (&'a Provider, Zone, NaiveDate, Policy, Busy);

impl Search<'_> {
    /// Every active provider searched, with its first day (`first`, else its own today) and what
    /// is busy over `days` of its days from then: one read for all of them (their todays differ
    /// by two at most).
    async fn schedules(&self, first: Option<NaiveDate>, days: u32) -> Result<Vec<Schedule<'_>>, Refusal> {
        let providers: Vec<&Provider> = self.providers.iter().filter(|p| p.active).collect();
        let firsts: Vec<NaiveDate> =
            providers.iter().map(|p| first.unwrap_or_else(|| p.zone().local(self.ctx.now).date())).collect();
        let (Some(&earliest), Some(&latest)) = (firsts.iter().min(), firsts.iter().max()) else {
            return Ok(Vec::new());
        };
        let span = days + u32::try_from((latest - earliest).num_days()).unwrap_or(0);
        let ids: Vec<ProviderId> = providers.iter().map(|p| p.id).collect();
        let busy = booking::busy_over(self.ctx.store, self.ctx.actor.org, &ids, earliest, span).await?;
        Ok(providers
            .into_iter()
            .zip(firsts)
            .zip(busy)
            .map(|((provider, first), busy)| {
                let policy = booking::policy_for(provider, self.kind.as_ref());
                (provider, provider.zone(), first, policy, Busy::new(busy, None))
            })
            .collect())
    }

    /// The free slots of every provider searched over `days` of its local days from `first` (else
    /// from its own today), still ahead of now and in the window, earliest first: at least the
    /// `wanted` earliest of them, when there are that many.
    ///
    /// Each provider's days are cut into slots one day at a time for every provider together,
    /// stopping two days after the day that brought `wanted`: any provider's later days start
    /// after those slots end, whatever the providers' zones.
    async fn free(
        &self,
        first: Option<NaiveDate>,
        days: u32,
        wanted: usize,
    ) -> Result<Vec<(&Provider, Slot)>, Refusal> {
        Ok(self.slots_of(&self.schedules(first, days).await?, days, wanted))
    }

    /// [`Search::free`] over schedules already read.
    fn slots_of<'p>(&self, searched: &[Schedule<'p>], days: u32, wanted: usize) -> Vec<(&'p Provider, Slot)> {
        // Slots are offered by the real time, as the store books by it; the agent's clock (a test's)
        // only holds back what lies before it.
        let (now, mut found, mut enough_on) = (crate::store::now(), Vec::new(), None);
        for day in 0..u64::from(days) {
            if enough_on.is_some_and(|on| day > on + 2) {
                break;
            }
            for (provider, zone, first, policy, busy) in searched {
                let Some(date) = first.checked_add_days(Days::new(day)) else { continue };
                found.extend(
                    domain::free_slots(zone, &provider.hours, date, policy, busy, now)
                        .into_iter()
                        .filter(|s| s.start() > self.ctx.now)
                        .filter(|s| self.window.is_none_or(|w| w.holds(zone.local(s.start()).time())))
                        .map(|s| (*provider, s)),
                );
            }
            if enough_on.is_none() && found.len() >= wanted {
                enough_on = Some(day);
            }
        }
        earliest_first(&mut found);
        found
    }

    /// The providers of `searched` (read from `date`) who could be booked at `time` on it (each
    /// in its own zone), as a booking would find them: within their hours, notice and horizon,
    /// and clear of what is busy, whether or not the time is one of the starts offered.
    fn free_at<'p>(&self, searched: &[Schedule<'p>], date: NaiveDate, time: NaiveTime) -> Vec<(&'p Provider, Slot)> {
        let now = crate::store::now();
        searched
            .iter()
            .filter_map(|(provider, zone, _, policy, busy)| {
                let slot = Slot::new(zone.instant(date.and_time(time))?, policy.length);
                let free = slot.start() > self.ctx.now
                    && provider.hours.permits(zone, &slot)
                    && policy.is_free(&slot, busy, now);
                free.then_some((*provider, slot))
            })
            .collect()
    }
}

/// Earliest first, providers of one start by name.
fn earliest_first(slots: &mut [(&Provider, Slot)]) {
    slots.sort_by(|(a, x), (b, y)| x.start().cmp(&y.start()).then_with(|| a.name.cmp(&b.name)));
}

impl CheckAvailability {
    pub async fn run(self, ctx: &Context<'_>) -> Answer {
        let said_date = self.date.or(self.appointment_date);
        // "Tuesday morning" sent as the day: the morning is the window, unless one is given.
        let window = match self.time_window.as_deref() {
            Some(said) => read_window(said)?,
            None => said_date.as_deref().and_then(spoken_date::part_of_day),
        };
        let (providers, kind) = if self.provider.is_given() {
            let provider = self.provider.find(ctx).await?;
            let kind = self.kind.find(ctx, &provider).await?;
            (vec![provider], kind)
        } else {
            let kind = self.kind.any(ctx).await?;
            let all = active(ctx).await?;
            if all.is_empty() {
                return Err(Refusal::spoken("There are no providers to book with yet."));
            }
            let offering: Vec<Provider> =
                all.into_iter().filter(|p| kind.as_ref().is_none_or(|k| k.offered_by(p.id))).collect();
            if offering.is_empty() {
                let name = kind.as_ref().map_or("", |k| k.name.as_str());
                return Err(Refusal::spoken(format!("No one offers {} at the moment.", speech::a(name))));
            }
            (offering, kind)
        };
        let one = match providers.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        // "Today" is the one provider's, else the clinic's (every provider carries the clinic's zone).
        let zone = one.as_ref().map_or(providers[0].org_zone, Provider::zone);
        let today = zone.local(ctx.now).date();
        // A time asked about is read as a booking reads it (its half of the day asked for when
        // the caller did not say it: "7:30" of an evening is 7:30 PM), on its day; the window
        // then has no say. A time the clocks skip is refused as a booking refuses it.
        let at = match (self.appointment_time.or(self.time), &said_date) {
            (None, _) => None,
            (Some(_), None) => return Err(Refusal::spoken("Which day should I check that time on?")),
            (Some(time), Some(said)) => {
                let spoken = SpokenStart::new(said.clone(), time, window);
                let (date, time) = spoken.read((&zone, one.as_ref()), ctx.now, "", "")?;
                let time = domain::parse_time("appointment_time", &time)?;
                zone.resolve(date, time)?;
                Some(time)
            }
        };
        let window = window.filter(|_| at.is_none());
        let date = said_date
            .map(|said| spoken_date::resolve(&said, today).map_err(|e| Refusal::spoken(e.spoken())))
            .transpose()?;
        let what = kind.as_ref().map_or_else(String::new, |k| format!(" for {}", speech::a(&k.name)));
        let during = PartOfDay::phrase(window);
        let search = Search { providers, kind, window, ctx };
        let who = one.as_ref().map(|p| format!("{}{what}", p.name));

        let Some(date) = date else {
            let earliest = search.free(None, SEARCH_DAYS, EARLIEST).await?;
            let earliest = &earliest[..earliest.len().min(EARLIEST)];
            return Ok(match (&who, earliest.is_empty()) {
                (Some(who), true) => format!("{who} has no free times{during} in the next two weeks."),
                (None, true) => format!("No one has free times{what}{during} in the next two weeks."),
                (Some(who), false) => {
                    format!("The earliest free times{during} with {who} are {}.", speech::slots(earliest, true, "or"))
                }
                (None, false) => {
                    format!("The earliest free times{what}{during} are {}.", speech::slots(earliest, false, "or"))
                }
            });
        };

        // A day past the booking window is no day "with no free times": the caller is told the window.
        let horizon = search.kind.as_ref().map_or(domain::BOOKING_HORIZON_DAYS, |k| i64::from(k.max_advance_days));
        let horizon = horizon.min(domain::BOOKING_HORIZON_DAYS);
        if today.checked_add_signed(Duration::days(horizon)).is_some_and(|last| date > last) {
            let limit = domain::beyond_horizon(search.kind.as_ref().map(|k| k.name.as_str()), horizon);
            return Err(Refusal::spoken(speech::invalid(&limit)));
        }
        // The day's schedules, read once for its free times and for a time asked about.
        let searched = search.schedules(Some(date), 1).await?;
        let mut on_day = search.slots_of(&searched, 1, usize::MAX);
        let day = speech::day(date);
        // A time asked about: who is free then, else the nearest free times of that day.
        let mut asked = None;
        if let Some(time) = at {
            let when = speech::local_moment(date, time, one.as_ref());
            let free = search.free_at(&searched, date, time);
            match (&who, free.len()) {
                (Some(who), 1..) => return Ok(format!("Yes, {who} is free on {when}.")),
                (None, n @ 1..) => {
                    let names: Vec<String> = free.iter().map(|(p, _)| speech::named(p)).collect();
                    let names = speech::join(&names, "and");
                    return Ok(format!("On {when}, {names} {} free{what}.", if n == 1 { "is" } else { "are" }));
                }
                (Some(who), 0) => asked = Some(format!("{who} isn't free on {when}.")),
                (None, 0) => asked = Some(format!("No one is free{what} on {when}.")),
            }
            let distance = |(p, s): &(&Provider, Slot)| (p.zone().local(s.start()).time() - time).num_minutes().abs();
            on_day.sort_by_key(distance);
            on_day.truncate(NEAREST);
            earliest_first(&mut on_day);
        }
        if on_day.is_empty() {
            let next = match date.checked_add_signed(Duration::days(1)) {
                Some(next) => search.free(Some(next), SEARCH_DAYS, 1).await?,
                None => Vec::new(),
            };
            // A holiday is said to be one: the caller then knows the whole clinic is shut.
            let closed = clinic::closed_on(ctx.store, ctx.actor.org, one.as_ref(), date).await?;
            let none = match (&who, closed) {
                (_, Some(_)) => format!("The clinic is closed on {day}."),
                (Some(who), None) => format!("{who} has no free times on {day}{during}."),
                (None, None) => format!("No one has free times{what} on {day}{during}."),
            };
            return Ok(match next.first() {
                Some(first) => format!("{none} The next opening is {}.", speech::slots(&[*first], who.is_some(), "or")),
                None => format!("{none} There is nothing free in the two weeks after either."),
            });
        }
        let read_out = &on_day[..on_day.len().min(speech::MAX_READ_OUT)];
        let more = match on_day.len() - read_out.len() {
            0 => String::new(),
            n => format!(", and {n} more later that day"),
        };
        let times = speech::times(read_out, who.is_some(), "or");
        Ok(match (&who, asked) {
            (_, Some(asked)) => format!("{asked} The nearest free times that day are {times}."),
            (Some(who), None) => format!("{who} is free on {day}{during} at {times}{more}."),
            (None, None) => format!("On {day}{during}, the free times{what} are {times}{more}."),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    #[test]
    fn the_windows_split_the_day_at_noon_and_five() {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").expect("time");
        let morning = read_window("Morning").ok().flatten();
        let afternoon = read_window("in the afternoon").ok().flatten();
        let evening = read_window("tonight").ok().flatten();
        assert_eq!(
            (morning, afternoon, evening),
            (Some(PartOfDay::Morning), Some(PartOfDay::Afternoon), Some(PartOfDay::Evening))
        );
        assert!(PartOfDay::Morning.holds(t("11:59")) && !PartOfDay::Morning.holds(t("12:00")));
        assert!(PartOfDay::Afternoon.holds(t("12:00")) && !PartOfDay::Afternoon.holds(t("17:00")));
        assert!(PartOfDay::Evening.holds(t("17:00")) && !PartOfDay::Evening.holds(t("16:59")));
        assert!(matches!(read_window("any time"), Ok(None)));
        assert!(read_window("lunchtime").is_err());
    }
}
