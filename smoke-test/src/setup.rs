//! The test's own data, created through the API and removed again: an organization (when the
//! credentials allow creating one) and its providers, plus the clients acting for it.

use crate::target::Credentials;
use anyhow::Context;
use chrono::{Duration as Days, NaiveDate, NaiveTime, Utc};
use futures::StreamExt;
use rand::Rng;
use shared::api::{AppointmentQuery, BookingInput, CreateOrganization, CreateProvider};
use shared::{ApiClient, ClientResult, Role};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// The zone of the test's providers: UTC has no DST gap, so every planned local time exists.
pub const ZONE: &str = "UTC";
pub const SLOT_MINUTES: i64 = 30;
const SLOTS_PER_DAY: u32 = (24 * 60 / SLOT_MINUTES) as u32;
/// The last day ahead a plan may use: the service books up to 365 days ahead.
const HORIZON_DAYS: i64 = 360;

/// What setup created and the tokens to act for it. Filled in step by step, so cleanup removes
/// whatever exists even when setup stopped half-way.
#[derive(Debug, Default)]
pub struct Fixture {
    /// The organization the tool created (and deletes), `None` when it works in a given one.
    pub created_org: Option<Uuid>,
    pub providers: Vec<Uuid>,
    pub platform_token: Option<String>,
    pub admin_token: Option<String>,
    pub agent_token: Option<String>,
}

impl Fixture {
    /// Creates the organization (when possible) and `providers` providers, bookable at any time.
    pub async fn setup(&mut self, base: &ApiClient, credentials: &Credentials, providers: u32) -> anyhow::Result<()> {
        let label = format!("smoke-test {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"));
        match credentials {
            Credentials::Secret(secret) => {
                let platform = Credentials::mint(secret, Role::Platform, None)?;
                self.platform_token = Some(platform.clone());
                let org = base
                    .with_token(platform)
                    .create_organization(&CreateOrganization { name: label.clone(), timezone: ZONE.into() })
                    .await
                    .context("creating the test organization failed")?;
                self.created_org = Some(org.id);
                self.admin_token = Some(Credentials::mint(secret, Role::Admin, Some(org.id))?);
                self.agent_token = Some(Credentials::mint(secret, Role::Agent, Some(org.id))?);
            }
            Credentials::Tokens { platform, admin, agent } => {
                self.platform_token = platform.clone();
                self.admin_token = Some(admin.clone());
                self.agent_token = Some(agent.clone());
            }
        }
        let admin = base.with_token(self.admin_token.clone().context("no admin token")?);
        for i in 0..providers {
            let provider = admin
                .create_provider(&CreateProvider {
                    name: format!("{label} provider {}", i + 1),
                    timezone: Some(ZONE.into()),
                    appointment_minutes: Some(SLOT_MINUTES),
                    working_hours: None,
                })
                .await
                .context("creating a test provider failed")?;
            self.providers.push(provider.id);
        }
        // A given agent token of another organization, or an expired one, would have every booking
        // answered 404 or 401, which the race would report as the service failing: one agent call
        // first says it is the configuration.
        if let Some(provider) = self.providers.first() {
            let agent = base.with_token(self.agent_token.clone().context("no agent token")?);
            agent.provider(*provider).await.map_err(|e| {
                anyhow::anyhow!(
                    "the agent token was refused reading the run's provider {provider} ({e}): it must be a valid \
                     agent token of the admin token's organization"
                )
            })?;
        }
        Ok(())
    }

    /// What the run made, in words: its organization, else the providers it made in a given one.
    pub fn made(&self) -> String {
        let providers = self.providers.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ");
        match self.created_org {
            Some(org) => format!("organization {org} (providers {providers})"),
            None => format!("providers {providers}"),
        }
    }

    /// Removes what setup created: the organization (everything in it goes with it), else cancels
    /// what was booked with the run's providers and deactivates them (a deactivated provider keeps
    /// its appointments, which would stay in a real clinic's calendar and get their reminders).
    /// Returns what was done, or what could not be removed.
    pub async fn cleanup(&self, base: &ApiClient) -> Result<String, String> {
        if let Some(org) = self.created_org {
            let token = self
                .platform_token
                .clone()
                .ok_or_else(|| format!("organization {org} left behind: no platform token"))?;
            return base
                .with_token(token)
                .delete_organization(org)
                .await
                .map(|()| format!("organization {org} deleted"))
                .map_err(|e| format!("organization {org} left behind: {e}"));
        }
        let Some(admin) = &self.admin_token else {
            return Ok("nothing to remove".into());
        };
        let admin = base.with_token(admin.clone());
        let patience = Patience::default();
        let (mut cancelled, mut left) = (0, Vec::new());
        for provider in &self.providers {
            // Deactivated first, so no booking still on its way (its client gave up, the server
            // not yet) lands after the list below was read.
            if let Err(e) = patience.send(|| admin.deactivate_provider(*provider)).await {
                left.push(format!("provider {provider}: {e}"));
            }
            // Listing the run's providers' appointments also finds a booking whose answer was lost
            // (a timeout, an interruption); the run's carry its marker.
            match cancel_bookings(&admin, *provider, &patience).await {
                Ok(n) => cancelled += n,
                Err((n, e)) => {
                    cancelled += n;
                    left.push(format!("appointments of provider {provider}: {e}"));
                }
            }
        }
        let mut done =
            format!("{cancelled} appointment(s) cancelled, {} provider(s) deactivated", self.providers.len());
        let waited = patience.waited();
        if !waited.is_zero() {
            done.push_str(&format!(", after waiting {} s for the rate limit", waited.as_secs()));
        }
        if left.is_empty() {
            Ok(done)
        } else {
            Err(format!("left behind: {} (of {done})", left.join(", ")))
        }
    }
}

/// The notes of every booking the tool makes: what its clean-up cancels.
const MARKER: &str = "smoke-test";

/// Cancels the run's active appointments of `provider` (those carrying [`MARKER`]), a few at a
/// time; returns how many it cancelled, with what it could not (or would not) cancel. Any other
/// active one (in a real clinic, a caller offered the run's provider meanwhile) is left as it is,
/// and said.
async fn cancel_bookings(admin: &ApiClient, provider: Uuid, patience: &Patience) -> Result<usize, (usize, String)> {
    let query = AppointmentQuery { provider_id: Some(provider), limit: Some(500), ..Default::default() };
    let (active, others): (Vec<_>, Vec<_>) = patience
        .send(|| admin.appointments(&query))
        .await
        .map_err(|e| (0, format!("listing them failed: {e}")))?
        .into_iter()
        .filter(|a| a.status.is_active())
        .partition(|a| a.notes.as_deref() == Some(MARKER));
    let active: Vec<Uuid> = active.into_iter().map(|a| a.id).collect();
    let outcomes: Vec<_> = futures::stream::iter(active)
        .map(|id| async move { (id, patience.send(|| admin.cancel(id, Some("smoke-test clean-up"))).await) })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut cancelled = 0;
    let mut failed = Vec::new();
    for (id, outcome) in outcomes {
        match outcome {
            Ok(_) => cancelled += 1,
            // Cancelled meanwhile (by the clinic, or the patient through the manage link).
            Err(e) if e.code() == Some("invalid_state") => {}
            Err(e) => failed.push(format!("{id}: {e}")),
        }
    }
    let mut said = Vec::new();
    if let Some(first) = failed.first() {
        said.push(format!("{} not cancelled, e.g. {first}", failed.len()));
    }
    if let Some(first) = others.first() {
        let n = others.len();
        said.push(format!("{n} not the run's left active, e.g. {} (booked by someone offered the provider)", first.id));
    }
    if said.is_empty() {
        Ok(cancelled)
    } else {
        Err((cancelled, said.join("; ")))
    }
}

/// The longest one request waits in all when the service refuses it as too many (429).
const PATIENCE: Duration = Duration::from_secs(300);

/// Sends the tool's own requests (the read-back, the clean-up) again when the service refuses
/// them as too many (429), after the wait it asks for, and adds up the waits: a run that booked
/// more than the admin token's rate limit still reads back and removes everything.
#[derive(Debug, Default)]
pub struct Patience {
    waited_ms: AtomicU64,
}

impl Patience {
    pub async fn send<T, F: Future<Output = ClientResult<T>>>(&self, send: impl Fn() -> F) -> ClientResult<T> {
        let mut waited = Duration::ZERO;
        loop {
            let refused = match send().await {
                Err(refused) => refused,
                answered => return answered,
            };
            // At least a second: a `Retry-After: 0` (from a proxy, say) must not spin.
            let wait = refused.retry_after().map(|wait| wait.max(Duration::from_secs(1)));
            match wait.filter(|wait| waited + *wait <= PATIENCE) {
                Some(wait) => {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    self.waited_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                }
                None => return Err(refused),
            }
        }
    }

    /// The waits so far, added up (those of requests sent side by side each counted).
    pub fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed))
    }
}

/// One bookable slot: a provider, a local date and time; `patients_from` numbers this run's
/// patients (random per run, so that runs against one organization do not give its patients'
/// numbers more upcoming appointments than `max_active_per_caller` allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSlot {
    pub provider: Uuid,
    pub date: NaiveDate,
    pub time: NaiveTime,
    pub patients_from: u64,
}

impl PlannedSlot {
    pub fn input(&self, patient: u64) -> BookingInput {
        let patient = self.patients_from.wrapping_add(patient);
        BookingInput {
            provider_id: Some(self.provider),
            appointment_date: Some(self.date.format("%Y-%m-%d").to_string()),
            appointment_time: Some(self.time.format("%H:%M").to_string()),
            duration_minutes: Some(SLOT_MINUTES),
            patient_name: Some(format!("Smoke Test {patient}")),
            patient_phone: Some(format!("+1555{:07}", patient % 10_000_000)),
            patient_email: Some(format!("smoke-{patient}@example.com")),
            notes: Some(MARKER.into()),
            appointment_type_id: None,
        }
    }

    /// The instant the slot starts (the providers' zone is UTC).
    pub fn starts_at(&self) -> chrono::DateTime<Utc> {
        self.date.and_time(self.time).and_utc()
    }
}

/// Whether `count` distinct slots over `providers` providers fit the booking horizon: the plan
/// starts up to 120 days ahead, and the service books up to 365. Checked before anything is set
/// up, so a run too large says so at once rather than after creating its providers.
pub fn within_horizon(count: u64, providers: u64) -> Result<(), String> {
    if days_needed(count, providers) > 230 {
        return Err(format!(
            "{count} distinct slots over {providers} providers would reach beyond the 365-day booking horizon: \
             use more --providers, or a lower --rate or shorter --duration"
        ));
    }
    Ok(())
}

/// The days `count` slots take, spread round-robin over `providers` providers.
fn days_needed(count: u64, providers: u64) -> u64 {
    count.div_ceil(providers.max(1)).div_ceil(u64::from(SLOTS_PER_DAY))
}

/// Plans `count` distinct slots spread round-robin over `providers`, 30 minutes each, from a
/// random day 20 to 120 days ahead, so reruns and runs against the same organization do not
/// collide, and on no day the clinic is `closed` (its closures' first and last local days; the
/// days beside one are passed over too, as the clinic's zone may put part of a UTC day there).
/// Fails when they would reach beyond the service's 365-day horizon.
pub fn plan_slots(
    providers: &[Uuid],
    count: u64,
    closed: &[(NaiveDate, NaiveDate)],
) -> anyhow::Result<Vec<PlannedSlot>> {
    anyhow::ensure!(!providers.is_empty(), "no provider to book");
    within_horizon(count, providers.len() as u64).map_err(anyhow::Error::msg)?;
    let today = Utc::now().date_naive();
    let first_day = today + Days::days(rand::thread_rng().gen_range(20..120));
    let shut =
        |day: NaiveDate| closed.iter().any(|&(from, to)| day + Days::days(1) >= from && day - Days::days(1) <= to);
    let needed = days_needed(count, providers.len() as u64) as usize;
    let days: Vec<NaiveDate> = first_day
        .iter_days()
        .take_while(|day| *day <= today + Days::days(HORIZON_DAYS))
        .filter(|day| !shut(*day))
        .take(needed)
        .collect();
    anyhow::ensure!(
        days.len() == needed,
        "the clinic's closures leave too few open days within the booking horizon for {count} slots"
    );
    let patients_from = rand::thread_rng().gen_range(0..10_000_000);
    Ok((0..count)
        .map(|i| {
            let provider = providers[(i % providers.len() as u64) as usize];
            let j = i / providers.len() as u64;
            let day = days[(j / u64::from(SLOTS_PER_DAY)) as usize];
            let minutes = (j % u64::from(SLOTS_PER_DAY)) as u32 * SLOT_MINUTES as u32;
            PlannedSlot {
                provider,
                date: day,
                time: NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or_default(),
                patients_from,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_slots_are_distinct_and_spread_over_providers() {
        let providers: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let slots = plan_slots(&providers, 500, &[]).expect("a plan");
        let mut seen = std::collections::HashSet::new();
        for s in &slots {
            assert!(seen.insert((s.provider, s.starts_at())), "{s:?} twice");
        }
        assert!(slots.iter().all(|s| s.starts_at() > Utc::now()));
        assert_eq!(slots.iter().filter(|s| s.provider == providers[0]).count(), 167);
    }

    #[test]
    fn a_plan_beyond_the_booking_horizon_is_refused() {
        assert!(plan_slots(&[Uuid::new_v4()], 48 * 300, &[]).is_err());
    }

    /// A clinic closed for months in the planned range (a holiday, a refit): no slot falls on a
    /// closed day or beside one, and the plan still fits.
    #[test]
    fn no_slot_falls_on_a_closed_day() {
        let today = Utc::now().date_naive();
        let closed =
            [(today + Days::days(10), today + Days::days(100)), (today + Days::days(130), today + Days::days(130))];
        let slots = plan_slots(&[Uuid::new_v4()], 48 * 20, &closed).expect("a plan");
        for s in &slots {
            assert!(
                closed.iter().all(|&(from, to)| s.date < from - Days::days(1) || s.date > to + Days::days(1)),
                "{s:?}"
            );
        }
        let shut_all_year = [(today, today + Days::days(400))];
        assert!(plan_slots(&[Uuid::new_v4()], 1, &shut_all_year).is_err());
    }
}
