//! The five scenarios, and the optional `notifications`. Each is a list of numbered steps that check something real, told to the
//! reporter as they are recorded; what they find feeds the go/no-go criteria.

mod basic;
mod concurrent;
mod email;
mod errors;
mod isolation;
mod notifications;

use crate::probe::{Probe, Reply};
use crate::record::{Findings, Scenario, ScenarioReport, Step};
use crate::reporter::Reporter;
use crate::target::Target;
use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use local_peers::smtp::SmtpSink;
use reqwest::Method;
use serde_json::{json, Value};
use shared::Role;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What a run made and has not removed yet, so a run whose scenario stopped half-way, or that was
/// interrupted, can still clean up. One list per run: runs in one process (the tests) must not
/// remove each other's clinics.
#[derive(Debug, Default)]
pub struct Leftovers(Mutex<Vec<Leftover>>);

/// Something the run made: a clinic of its own, or a provider in a given clinic (with the tokens
/// that cancel its bookings and deactivate it).
#[derive(Debug, Clone, PartialEq)]
enum Leftover {
    Clinic(Uuid),
    Provider { id: String, staff: String, admin: String },
}

impl Leftover {
    fn keep(self, leftovers: &Leftovers) {
        if let Ok(mut l) = leftovers.0.lock() {
            l.push(self);
        }
    }

    /// Removes it: deletes the clinic, or deactivates the provider and cancels what the run booked
    /// with it. It leaves the list only once all that succeeded, so what an interruption
    /// or a failed request left is still removed at the end. `counted`: whether its server and transport
    /// errors count in the run's tallies (its latency never does; not at the end, which may
    /// follow an interruption during the deliberate outage).
    async fn remove(self, target: &Target, probe: &Probe, leftovers: &Leftovers, counted: bool) {
        let send = async |label: &str, request| match counted {
            true => probe.send_arranging(label, request).await,
            false => probe.send_uncounted(label, request).await,
        };
        // 404: removed already (by an earlier attempt whose answer was lost).
        let gone =
            |reply: Result<Reply, String>| reply.is_ok_and(|r| (200..300).contains(&r.status) || r.status == 404);
        let removed = match &self {
            Leftover::Clinic(id) => match target.token(Role::Platform, None) {
                Some(platform) => {
                    let path = format!("/api/orgs/{id}");
                    gone(send("remove clinic", probe.request(Method::DELETE, &path, Some(&platform))).await)
                }
                None => false,
            },
            Leftover::Provider { id, staff, admin } => {
                // Deactivated first, so that nothing is booked with it after its list is read; a
                // deactivated provider keeps its appointments (with their reminders), so each is
                // cancelled, and the provider leaves the list only once every one is.
                let provider = format!("/api/providers/{id}");
                let deactivated =
                    gone(send("deactivate the provider", probe.request(Method::DELETE, &provider, Some(admin))).await);
                // A scenario books a handful at most: one page holds them all.
                let path = format!("/api/appointments?provider_id={id}&limit=500");
                let listed = send("list what the run booked", probe.request(Method::GET, &path, Some(staff))).await;
                let mut cancelled = listed.as_ref().is_ok_and(|r| r.status == 200);
                let booked = listed.iter().flat_map(|r| r.body["items"].as_array().into_iter().flatten());
                let active =
                    booked.filter(|a| a["status"].as_str().is_some_and(|s| s == "pending" || s == "confirmed"));
                // A real patient's (the voice agent may offer the provider while it exists) is
                // the clinic's to handle: left, and the provider listed as left behind.
                let (the_runs, theirs): (Vec<&Value>, Vec<&Value>) = active.partition(|a| booked_by_a_run(a));
                cancelled &= theirs.is_empty();
                for a in the_runs {
                    let cancel = format!("/api/appointments/{}/cancel", a["id"].as_str().unwrap_or_default());
                    let request =
                        probe.request(Method::POST, &cancel, Some(staff)).json(&json!({"reason": "UAT clean-up"}));
                    cancelled &= gone(send("cancel what the run booked", request).await);
                }
                deactivated && cancelled
            }
        };
        if removed {
            if let Ok(mut l) = leftovers.0.lock() {
                l.retain(|left| *left != self);
            }
        }
    }
}

/// Whether an appointment is one a run books: its patient reachable only at the reserved
/// addresses runs use (a `+1555…` number, an `example.com` email) or not at all (the outage's
/// recovery booking names nobody), never at a real patient's number or address.
fn booked_by_a_run(appointment: &Value) -> bool {
    let patient = &appointment["patient"];
    patient["phone"].as_str().is_none_or(|phone| phone.starts_with("+1555"))
        && patient["email"].as_str().is_none_or(|email| email.ends_with("@example.com"))
}

/// Removes what the run left behind: what a scenario that stopped half-way did not remove, or
/// what an interrupted run was using. Returns what could not be removed.
pub async fn remove_leftovers(target: &Target, probe: &Probe, leftovers: &Leftovers) -> Vec<String> {
    let left: Vec<Leftover> = leftovers.0.lock().map(|l| l.clone()).unwrap_or_default();
    for leftover in left {
        leftover.remove(target, probe, leftovers, false).await;
    }
    leftovers.listed()
}

impl Leftovers {
    /// What is still listed, in words.
    pub fn listed(&self) -> Vec<String> {
        let still = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        still
            .iter()
            .map(|l| match l {
                Leftover::Clinic(id) => format!("clinic {id}"),
                Leftover::Provider { id, .. } => format!("provider {id}"),
            })
            .collect()
    }
}

/// What a scenario works with.
pub struct Run<'a> {
    pub target: &'a Target,
    pub probe: &'a Probe,
    pub findings: &'a mut Findings,
    pub concurrency: usize,
    pub budget: Duration,
    pub email_timeout: Duration,
    pub mail: Option<&'a SmtpSink>,
    pub reporter: &'a dyn Reporter,
    /// What the run made and has not removed yet.
    pub leftovers: &'a Leftovers,
}

/// Records the steps of one scenario and tells the reporter each as it is recorded.
pub struct Steps<'a> {
    total: usize,
    steps: Vec<Step>,
    reporter: &'a dyn Reporter,
}

impl<'a> Steps<'a> {
    /// `total`: how many steps the scenario plans.
    pub fn new(run: &Run<'a>, total: usize) -> Self {
        Self { total, steps: Vec::new(), reporter: run.reporter }
    }

    pub fn check(&mut self, title: &str, passed: bool, measured: impl Into<String>) -> bool {
        self.push(title, passed, measured.into(), false, false);
        passed
    }

    pub fn error(&mut self, title: &str, why: impl Into<String>) {
        self.push(title, false, why.into(), true, false);
    }

    pub fn skip(&mut self, title: &str, why: impl Into<String>) {
        self.push(title, true, why.into(), false, true);
    }

    fn push(&mut self, title: &str, passed: bool, measured: String, error: bool, skipped: bool) {
        let step = Step { index: self.steps.len() + 1, title: title.to_owned(), passed, measured, error, skipped };
        self.reporter.step(&step, self.total);
        self.steps.push(step);
    }
}

/// A test clinic, made through the API and removed afterwards.
pub struct Clinic {
    pub id: Uuid,
    pub admin: String,
    pub staff: String,
    pub agent: String,
    pub provider: Value,
    /// The clinic's zone, whose local days its closures and bookings name.
    pub zone: Tz,
    /// The days it is closed, first and last: none in a clinic the run made.
    closed: Vec<(NaiveDate, NaiveDate)>,
    /// Created by the run (and deleted after it), rather than given.
    owned: bool,
}

impl Clinic {
    /// The `index`-th clinic of a scenario: a new one (with the target's key), or a given one.
    /// Either way it gets a fresh provider working every day from 9 to 5.
    pub async fn create(run: &Run<'_>, label: &str, index: usize) -> Result<Self, String> {
        let (id, admin, staff, agent, owned) = match run.target.given_clinic(index)? {
            Some(given) => (given.org, given.admin.clone(), given.staff.clone(), given.agent.clone(), false),
            None => {
                let platform = run.target.token(Role::Platform, None).ok_or("no platform token")?;
                let org = expect(
                    run.probe
                        .send_arranging(
                            "create clinic",
                            run.probe.request(Method::POST, "/api/orgs", Some(&platform)).json(&json!({
                                "name": format!("UAT {label} {}", Uuid::new_v4().simple()),
                                "timezone": "America/New_York"
                            })),
                        )
                        .await?,
                    201,
                    "create clinic",
                )?;
                let id: Uuid = org.body["id"].as_str().and_then(|s| s.parse().ok()).ok_or("the clinic has no id")?;
                Leftover::Clinic(id).keep(run.leftovers);
                let mint = |role| run.target.token(role, Some(id)).unwrap_or_default();
                (id, mint(Role::Admin), mint(Role::Staff), mint(Role::Agent), true)
            }
        };
        let closed = match owned {
            true => Vec::new(),
            false => every_item(run, "read the clinic's closures", "/api/closures", &[], &admin)
                .await?
                .iter()
                .map(|c| Some((c["date"].as_str()?.parse().ok()?, c["end_date"].as_str()?.parse().ok()?)))
                .collect::<Option<_>>()
                .ok_or("a closure without its days")?,
        };
        // In a given clinic the name must not collide with its real providers.
        let name = if owned {
            "Dr. Smith".to_owned()
        } else {
            format!("Dr. Smith Uat{}", &Uuid::new_v4().simple().to_string()[..6])
        };
        let days: Vec<Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .map(|d| json!({"weekday": d, "start": "09:00", "end": "17:00"}))
            .collect();
        let provider = expect(
            run.probe
                .send_arranging(
                    "create provider",
                    run.probe
                        .request(Method::POST, "/api/providers", Some(&admin))
                        .json(&json!({"name": name, "appointment_minutes": 30, "working_hours": days})),
                )
                .await?,
            201,
            "create provider",
        )?;
        let zone = provider.body["timezone"].as_str().and_then(|z| z.parse().ok());
        let clinic =
            Self { id, admin, staff, agent, provider: provider.body, zone: zone.unwrap_or(Tz::UTC), closed, owned };
        if !owned {
            clinic.leftover().keep(run.leftovers);
        }
        // Left to the end of the run to remove, which the list of leftovers sees to.
        zone.ok_or("the provider has no time zone")?;
        Ok(clinic)
    }

    /// What removing it takes.
    fn leftover(&self) -> Leftover {
        match self.owned {
            true => Leftover::Clinic(self.id),
            false => Leftover::Provider {
                id: self.provider_id().to_owned(),
                staff: self.staff.clone(),
                admin: self.admin.clone(),
            },
        }
    }

    /// Runs `scenario` in a new clinic with a provider and removes the clinic afterwards; records
    /// why the clinic could not be set up, or why the scenario could not go on.
    pub async fn around<'r>(
        run: &mut Run<'r>,
        label: &str,
        steps: &mut Steps<'_>,
        scenario: impl AsyncFnOnce(&mut Run<'r>, &Clinic, &mut Steps<'_>) -> Result<(), String>,
    ) {
        let clinic = match Self::create(run, label, 0).await {
            Ok(clinic) => clinic,
            Err(e) => return steps.error("set up a clinic with a provider", e),
        };
        if let Err(e) = scenario(run, &clinic, steps).await {
            steps.error("could not continue", e);
        }
        clinic.remove(run).await;
    }

    pub fn provider_id(&self) -> &str {
        self.provider["id"].as_str().unwrap_or_default()
    }

    pub fn provider_name(&self) -> &str {
        self.provider["name"].as_str().unwrap_or_default()
    }

    /// Deletes a clinic the run created; in a given clinic, cancels what the run booked and
    /// deactivates its provider.
    pub async fn remove(self, run: &Run<'_>) {
        self.leftover().remove(run.target, run.probe, run.leftovers, true).await;
    }

    /// The active appointments of the run's provider, as staff see them (in a given clinic, its
    /// own appointments are not the run's).
    pub async fn appointments(&self, run: &Run<'_>) -> Result<Vec<Value>, String> {
        let query = [("limit", "500"), ("provider_id", self.provider_id())];
        let all = every_item(run, "list appointments", "/api/appointments", &query, &self.staff).await?;
        Ok(all.into_iter().filter(|a| a["status"] != "cancelled").collect())
    }

    /// The clinic's today, in its own zone.
    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.zone).date_naive()
    }

    /// The clinic's days from `ahead` days after its today on, within a year, less those it is
    /// closed: a booking there would be refused, failing a healthy service.
    pub fn open_days(&self, ahead: i64) -> impl Iterator<Item = NaiveDate> + '_ {
        let shut = |day: &NaiveDate| self.closed.iter().any(|(from, to)| (from..=to).contains(&day));
        (self.today() + chrono::Duration::days(ahead)).iter_days().take(366).filter(move |day| !shut(day))
    }

    /// The first day the clinic is open from `ahead` days after its today on, `YYYY-MM-DD`.
    pub fn open_date(&self, ahead: i64) -> Result<String, String> {
        let day = self.open_days(ahead).next().ok_or("the clinic is closed every day of the coming year")?;
        Ok(day.format("%Y-%m-%d").to_string())
    }

    /// One appointment, as staff read it.
    pub async fn appointment(&self, run: &Run<'_>, id: &str) -> Result<Reply, String> {
        run.probe
            .send(
                "read the appointment",
                run.probe.request(Method::GET, &format!("/api/appointments/{id}"), Some(&self.staff)),
            )
            .await
    }
}

pub fn expect(reply: Reply, status: u16, what: &str) -> Result<Reply, String> {
    if reply.status == status {
        Ok(reply)
    } else {
        Err(format!("{what}: expected {status}, got {} {}", reply.status, reply.body))
    }
}

/// Every item of the list at `path`, page after page, as `token` reads it; like the client's
/// `every_page`, it stops at a cursor answered again and past a bound, so a list that never ends
/// cannot hold the run.
async fn every_item(
    run: &Run<'_>,
    label: &str,
    path: &str,
    query: &[(&str, &str)],
    token: &str,
) -> Result<Vec<Value>, String> {
    let (mut all, mut cursor) = (Vec::new(), None::<String>);
    for _ in 0..shared::client::MAX_PAGES {
        let mut request = run.probe.request(Method::GET, path, Some(token)).query(query);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let reply = expect(run.probe.send(label, request).await?, 200, label)?;
        all.extend(reply.body["items"].as_array().ok_or_else(|| format!("{label}: the list has no items"))?.clone());
        match reply.body["next"].as_str() {
            Some(next) if cursor.as_deref() == Some(next) => {
                return Err(format!("{label}: {path} answered the cursor it was asked for"))
            }
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
    Err(format!("{label}: {path} went on past {} pages", shared::client::MAX_PAGES))
}

/// A `tool-calls` message as Vapi sends it.
pub fn vapi_message(call_id: &str, caller: &str, calls: &[(&str, &str, Value)]) -> Value {
    let list: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({"message": {
        "type": "tool-calls",
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "toolCallList": list,
        "toolCalls": list,
        "call": {"id": call_id, "type": "inboundPhoneCall", "customer": {"number": caller}},
        "customer": {"number": caller}
    }})
}

/// Posts a message and returns the `result` (Ok) or `error` (Err) of each call, in order.
pub async fn vapi(
    run: &Run<'_>,
    label: &str,
    agent: &str,
    message: &Value,
) -> Result<Vec<Result<String, String>>, String> {
    let reply =
        run.probe.send(label, run.probe.request(Method::POST, "/api/vapi/tools", Some(agent)).json(message)).await?;
    vapi_results(&reply)
}

pub fn vapi_results(reply: &Reply) -> Result<Vec<Result<String, String>>, String> {
    if reply.status != 200 {
        return Err(format!("the Vapi route answered {} {}", reply.status, reply.body));
    }
    reply.body["results"]
        .as_array()
        .ok_or_else(|| format!("no results array in {}", reply.body))?
        .iter()
        .map(|r| match (r["result"].as_str(), r["error"].as_str()) {
            (Some(text), _) => Ok(Ok(text.to_owned())),
            (None, Some(text)) => Ok(Err(text.to_owned())),
            _ => Err(format!("a result without result or error: {r}")),
        })
        .collect()
}

/// What [`poll`] found, how long after its start, and when it was first seen.
pub struct Seen<T> {
    pub found: T,
    pub took: Duration,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Looks every 100 ms until `find` finds something or `timeout` from `started` passes.
pub async fn poll<T>(started: Instant, timeout: Duration, find: impl Fn() -> Option<T>) -> Option<Seen<T>> {
    while started.elapsed() < timeout {
        if let Some(found) = find() {
            return Some(Seen { found, took: started.elapsed(), at: chrono::Utc::now() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The UTC date `days` from now, `YYYY-MM-DD`: for days gone by (a clinic's open days are its
/// [`Clinic::open_date`]).
pub fn date_in(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%d").to_string()
}

/// A random caller number.
pub fn caller(i: usize) -> String {
    format!("+1555{:03}{:04}", (Uuid::new_v4().as_u128() % 900 + 100) as u32, i % 10_000)
}

pub async fn run_scenario(scenario: Scenario, run: &mut Run<'_>) -> ScenarioReport {
    run.reporter.scenario(scenario);
    let started = Instant::now();
    let steps = match scenario {
        Scenario::Basic => basic::run(run).await,
        Scenario::Concurrent => concurrent::run(run).await,
        Scenario::Isolation => isolation::run(run).await,
        Scenario::ErrorHandling => errors::run(run).await,
        Scenario::Email => email::run(run).await,
        Scenario::Notifications => notifications::run(run).await,
    };
    let passed = steps.steps.iter().all(|s| s.passed);
    ScenarioReport {
        name: scenario.name(),
        title: scenario.title(),
        passed,
        duration_ms: started.elapsed().as_millis(),
        steps: steps.steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clean-up cancels on the run's provider only what a run books, never a real patient's.
    #[test]
    fn only_what_a_run_books_is_cancelled_at_clean_up() {
        let with = |phone: Value, email: Value| json!({"patient": {"name": "Ada", "phone": phone, "email": email}});
        for (phone, email) in [
            (json!(caller(1)), Value::Null),
            (json!(caller(2)), json!("uat-1@example.com")),
            (Value::Null, Value::Null),
        ] {
            assert!(booked_by_a_run(&with(phone.clone(), email.clone())), "{phone} {email}");
        }
        for (phone, email) in [
            (json!("+442071234567"), Value::Null),
            (json!(caller(3)), json!("ada@clinic.example.org")),
            (Value::Null, json!("ada@gmail.com")),
        ] {
            assert!(!booked_by_a_run(&with(phone.clone(), email.clone())), "{phone} {email}");
        }
    }
}
