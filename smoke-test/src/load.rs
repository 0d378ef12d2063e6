//! Load mode: distinct-slot bookings at a constant arrival rate (open loop). Every request has an
//! intended send time on a fixed schedule and its latency is measured from that time, so a stall
//! of the service (or of the generator) shows up in the figures instead of thinning the samples.

use crate::race::Answer;
use crate::report::{Check, LoadFigures};
use crate::setup::PlannedSlot;
use crate::stats::{self, Summary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use shared::ApiClient;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub rate: f64,
    pub duration: Duration,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub budget_ms: u64,
    /// A send later than this behind its intended time counts as late.
    pub late_after: Duration,
    pub progress: bool,
}

/// The most bookings one load run plans: each is a real booking on the target, and the run builds
/// every request before its first send (about a kilobyte each), so that building cannot delay the
/// schedule.
pub const MAX_PLANNED: u64 = 500_000;

impl LoadSettings {
    pub fn planned(&self) -> u64 {
        Self::planned_for(self.rate, self.duration)
    }

    /// The bookings a run at `rate` for `duration` plans.
    pub fn planned_for(rate: f64, duration: Duration) -> u64 {
        (rate * duration.as_secs_f64()).round().max(1.0) as u64
    }
}

struct Sample {
    slot: usize,
    answer: Answer,
    from_intended: Duration,
    per_request: Duration,
    send_delay: Duration,
}

#[derive(Debug)]
pub struct LoadResult {
    pub figures: LoadFigures,
    pub from_intended: Summary,
    pub per_request: Summary,
    pub service: Summary,
    pub outcomes: BTreeMap<String, u64>,
    /// The appointment each slot's booking created (by the slot's index), for the read-back.
    pub created: Vec<Option<uuid::Uuid>>,
    pub wall: Duration,
    pub checks: Vec<Check>,
}

/// Runs the schedule `slots` (one booking each) at `settings.rate` per second.
pub async fn run(
    base_url: &str,
    agent_token: &str,
    slots: &[PlannedSlot],
    settings: &LoadSettings,
    providers: u32,
) -> anyhow::Result<LoadResult> {
    let http = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(settings.max_in_flight)
        .tcp_nodelay(true)
        .timeout(settings.timeout)
        .build()?;
    let agent = ApiClient::with_http(http.clone(), base_url).with_token(agent_token);
    // Open some connections before the clock starts, so the first second is not all handshakes.
    let warm = settings.max_in_flight.min(settings.rate.ceil() as usize).clamp(1, 64);
    let opened = futures::future::join_all((0..warm).map(|_| agent.healthz())).await;
    if let Some(Err(e)) = opened.into_iter().find(Result::is_err) {
        anyhow::bail!("cannot open connections to {base_url}: {e}");
    }

    let planned = slots.len() as u64;
    let bar = if settings.progress {
        ProgressBar::with_draw_target(Some(planned), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} answers, {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let bar_for_results = bar.clone();

    let in_flight = Arc::new(Semaphore::new(settings.max_in_flight));
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let mut requests = Vec::with_capacity(slots.len());
    for (i, slot) in slots.iter().enumerate() {
        match agent.book_request(&slot.input(i as u64), None).build() {
            Ok(r) => requests.push(r),
            Err(e) => anyhow::bail!("cannot build a booking request: {e}"),
        }
    }
    // The schedule runs on a thread of its own, so a busy runtime (the in-process service shares
    // it) cannot delay the sends unnoticed: a late send is counted, and timed from its plan anyway.
    let interval = 1.0 / settings.rate;
    let start = std::time::Instant::now() + Duration::from_millis(20);
    let runtime = tokio::runtime::Handle::current();
    // Dropping this run (Ctrl-C) stops the schedule too.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let stopped = stop.0.clone();
    let scheduler = std::thread::Builder::new().name("smoke-test-schedule".into()).spawn(move || {
        for (slot, request) in requests.into_iter().enumerate() {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            let intended = start + Duration::from_secs_f64(slot as f64 * interval);
            if let Some(wait) = intended.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            // When every connection is busy the generator waits here; the requests it then
            // sends late are still timed from their intended instant and counted as late.
            let Ok(permit) = runtime.block_on(in_flight.clone().acquire_owned()) else {
                break;
            };
            let intended = Instant::from_std(intended);
            let (http, tx, bar) = (http.clone(), tx.clone(), bar.clone());
            runtime.spawn(async move {
                let sent = Instant::now();
                let answer = match http.execute(request).await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(body) => Answer::from_response(status, &body),
                            Err(e) => Answer::Transport(class_of(&e)),
                        }
                    }
                    Err(e) => Answer::Transport(class_of(&e)),
                };
                let done = Instant::now();
                drop(permit);
                bar.inc(1);
                let _ = tx.send(Sample {
                    slot,
                    answer,
                    from_intended: done - intended,
                    per_request: done - sent,
                    send_delay: sent.saturating_duration_since(intended),
                });
            });
        }
        start.elapsed()
    })?;
    let (mut corrected, mut own, mut service) = (stats::histogram(), stats::histogram(), stats::histogram());
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut completed, mut created, mut late) = (0u64, 0u64, 0u64);
    let mut created_ids = vec![None; slots.len()];
    let mut max_delay = Duration::ZERO;
    let bar = bar_for_results;
    while let Some(s) = rx.recv().await {
        completed += 1;
        stats::record(&mut corrected, s.from_intended);
        stats::record(&mut own, s.per_request);
        if s.send_delay > settings.late_after {
            late += 1;
        }
        max_delay = max_delay.max(s.send_delay);
        *outcomes.entry(s.answer.kind().into()).or_default() += 1;
        match &s.answer {
            Answer::Created { service_ms, appointment_id, .. } => {
                created += 1;
                created_ids[s.slot] = Some(*appointment_id);
                stats::record(&mut service, shared::duration::seconds(service_ms / 1000.0));
            }
            Answer::Conflict => *errors.entry("409 slot_unavailable".into()).or_default() += 1,
            Answer::Unexpected { status, error } => *errors.entry(format!("{status} {error}")).or_default() += 1,
            Answer::Transport(class) => *errors.entry(format!("transport {class}")).or_default() += 1,
        }
    }
    let wall = start.elapsed();
    let sending = tokio::task::spawn_blocking(move || scheduler.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the schedule thread panicked"))?;
    bar.finish_and_clear();
    drop(stop);

    let from_intended = Summary::of(&corrected);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let figures = LoadFigures {
        target_rate: settings.rate,
        duration_s: settings.duration.as_secs_f64(),
        planned,
        sent: completed,
        completed,
        created,
        late,
        late_after_ms: settings.late_after.as_millis() as u64,
        max_send_delay_us: max_delay.as_micros() as u64,
        send_rate: round(completed as f64 / sending.as_secs_f64().max(1e-9)),
        success_rate: round(created as f64 / wall.as_secs_f64().max(1e-9)),
        errors_by_class: errors.clone(),
        max_in_flight: settings.max_in_flight,
        providers,
    };

    let error_total: u64 = errors.values().sum();
    let late_allowed = planned.div_ceil(100);
    let p95_ms = from_intended.p95 as f64 / 1000.0;
    let checks = vec![
        Check::new(
            "every_booking_201",
            json!({"errors": 0}),
            json!({"errors": error_total, "created": created, "planned": planned}),
            error_total == 0 && created == planned,
            if errors.is_empty() {
                format!("{created} of {planned} distinct-slot bookings answered 201")
            } else {
                format!(
                    "{error_total} errors: {}",
                    errors
                        .iter()
                        .map(|(k, v)| format!("{v} × {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ),
        Check::new(
            "p95_within_budget_ms",
            json!(settings.budget_ms),
            json!(p95_ms),
            from_intended.count > 0 && p95_ms <= settings.budget_ms as f64,
            format!(
                "p95 from the intended send time {p95_ms:.1} ms, budget {} ms",
                settings.budget_ms
            ),
        ),
        Check::new(
            "generator_on_schedule",
            json!({"late_max": late_allowed}),
            json!({"late": late}),
            late <= late_allowed,
            format!(
                "{late} of {planned} requests were sent more than {} ms after their intended time (at most 1%, rounded up, allowed; the service or the generator could not keep up)",
                settings.late_after.as_millis()
            ),
        ),
    ];
    Ok(LoadResult {
        figures,
        from_intended,
        per_request: Summary::of(&own),
        service: Summary::of(&service),
        outcomes,
        created: created_ids,
        wall,
        checks,
    })
}

/// Could not judge when the target's rate limit refused bookings (429 `rate_limited`), they are
/// every error, and they are why every failed check failed: that is the target's configuration,
/// not the service failing. Any other error or failed check fails the run as it stands.
pub fn rate_limited(figures: &LoadFigures, checks: &[Check]) -> Result<(), String> {
    let refused = figures.errors_by_class.get(RATE_LIMITED).copied().unwrap_or(0);
    let only_refusals = figures.errors_by_class.keys().all(|class| class == RATE_LIMITED);
    let explained = checks.iter().filter(|c| !c.passed).all(|c| c.name == "every_booking_201");
    if refused == 0 || !only_refusals || !explained {
        return Ok(());
    }
    Err(format!(
        "the target's rate limit refused {refused} of {} bookings (429 rate_limited): its RATE_LIMIT_PER_MINUTE must \
         allow --rate (or be 0 there)",
        figures.completed
    ))
}

/// The error class of a booking the target's rate limit refused.
const RATE_LIMITED: &str = "429 rate_limited";

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn class_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() {
        "body".into()
    } else {
        "request".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(errors: &[(&str, u64)]) -> LoadFigures {
        LoadFigures {
            target_rate: 10.0,
            duration_s: 1.0,
            planned: 10,
            sent: 10,
            completed: 10,
            created: 10 - errors.iter().map(|(_, n)| n).sum::<u64>(),
            late: 0,
            late_after_ms: 100,
            max_send_delay_us: 0,
            send_rate: 10.0,
            success_rate: 10.0,
            errors_by_class: errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            max_in_flight: 4,
            providers: 1,
        }
    }

    fn failed(name: &str) -> Check {
        Check::new(name, json!(null), json!(null), false, "")
    }

    #[test]
    fn bookings_refused_by_the_rate_limit_alone_cannot_be_judged() {
        let why =
            rate_limited(&figures(&[("429 rate_limited", 4)]), &[failed("every_booking_201")]).expect_err("no verdict");
        assert!(why.contains("refused 4 of 10 bookings"), "{why}");
        assert_eq!(rate_limited(&figures(&[]), &[]), Ok(()), "nothing refused");
        let other = figures(&[("429 rate_limited", 4), ("503 unavailable", 1)]);
        assert_eq!(rate_limited(&other, &[failed("every_booking_201")]), Ok(()), "a 503 fails the run");
        let lost = [failed("every_booking_201"), failed("one_active_appointment_per_slot")];
        assert_eq!(rate_limited(&figures(&[("429 rate_limited", 4)]), &lost), Ok(()), "a lost booking fails the run");
        let slow = [failed("every_booking_201"), failed("p95_within_budget_ms")];
        assert_eq!(rate_limited(&figures(&[("429 rate_limited", 4)]), &slow), Ok(()), "so does the latency");
    }
}
