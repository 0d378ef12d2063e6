//! `smoke-test`: the release gate of the booking service. It races conflicting bookings against
//! the service (started in-process, or running at a URL), proves through the answers and the API
//! that exactly one wins each slot, measures latency from the common release instant, and writes a
//! JSON report. `--rate`/`--duration` run an open-loop load test instead.
//!
//! `main.rs` only parses the arguments and calls [`run`], so the tests drive the same code.

/// Writes a line to `$out`, ignoring a closed pipe (`smoke-test | head` must not panic half-way
/// and skip the cleanup).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        $out.line(format_args!($($arg)*));
    }};
}

pub mod cli;
pub mod limits;
pub mod load;
pub mod output;
pub mod race;
pub mod report;
pub mod setup;
pub mod stats;
pub mod target;

use crate::cli::Args;
use crate::report::{Report, Verdict};
use crate::setup::{Fixture, PlannedSlot};
use crate::target::{Credentials, Target};
use serde_json::json;
use shared::interrupt::Interrupts;
use shared::ApiClient;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the human-readable lines go: stdout for the command, anything else for tests.
#[derive(Clone)]
pub struct Out(Arc<Mutex<Box<dyn Write + Send>>>);

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

impl Out {
    pub fn stdout() -> Self {
        Self::to(std::io::stdout())
    }

    pub fn to(writer: impl Write + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(writer))))
    }

    /// Writes one line; a closed pipe or full disk is not the run's failure.
    pub fn line(&self, line: std::fmt::Arguments<'_>) {
        if let Ok(mut w) = self.0.lock() {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }
}

/// The outcome of a run: the report, and where it was written.
#[derive(Debug)]
pub struct Run {
    pub report: Report,
    pub report_path: Option<PathBuf>,
}

impl Run {
    pub fn exit_code(&self) -> i32 {
        self.report.exit_code
    }
}

/// Runs the smoke test (or the load test) as the command line says, prints it, writes the report.
pub async fn run(args: Args) -> Run {
    run_with_output(args, Out::stdout()).await
}

/// [`run`], printing to `out`.
pub async fn run_with_output(args: Args, out: Out) -> Run {
    // `colored` itself colors only a terminal, and follows `NO_COLOR` and `CLICOLOR_FORCE`.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mode = args.mode();
    let settings = settings(&args);
    let path = args.report.clone().unwrap_or_else(report::default_path);
    let shown = args.target.as_deref().unwrap_or("in-process");
    let interrupts = Interrupts::listen();
    let mut report = match prepare_target(&args, &path, (mode, shown, &settings), &out).await {
        Err(reason) => Report::could_not_judge(mode, shown, settings, reason),
        Ok(target) => {
            let report = judge(&args, &target, settings, tty, &interrupts, &out).await;
            target.stop().await;
            report
        }
    };
    if report.verdict == Verdict::CouldNotJudge {
        report.exit_code = Verdict::CouldNotJudge.exit_code();
    }
    let report_path = match report.write(&path) {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("smoke-test: {e:#}");
            // A gate must not pass without its record; a failed check still says more (exit 1).
            if report.verdict == Verdict::Pass {
                report.verdict = Verdict::CouldNotJudge;
                report.exit_code = Verdict::CouldNotJudge.exit_code();
                report.reason = Some(format!("every check passed, but the report was not written: {e:#}"));
            }
            None
        }
    };
    say!(out, "{}", output::summary(&report, report_path.as_deref()).trim_end());
    Run { report, report_path }
}

fn settings(args: &Args) -> serde_json::Value {
    json!({
        "concurrency": args.concurrency,
        "slots": args.slots,
        "budget_ms": args.budget_ms,
        "rate": args.rate,
        "duration_s": args.duration.map(|d| d.as_secs_f64()),
        "max_in_flight": args.max_in_flight,
        "providers": args.providers,
        "late_ms": args.late_ms,
        "timeout_secs": args.timeout_secs,
    })
}

/// A command line the parser refuses (`--concurrency 0`, an unknown flag): its message and exit
/// 2, as clap gives them, after the report named by `--report` (or SMOKE_REPORT) is rewritten to
/// say the run could not judge, so an earlier run's verdict does not stand there as this one's.
pub fn refused(raw: &[std::ffi::OsString], e: clap::Error) -> ! {
    // Help and the version are printed to stdout: no refusal.
    if e.use_stderr() {
        let path = shared::report_file::flag_path(raw, "--report")
            .or_else(|| std::env::var_os("SMOKE_REPORT").map(std::path::PathBuf::from));
        if let Some(path) = path {
            let mode = if shared::report_file::flag_path(raw, "--rate").is_some() { "load" } else { "race" };
            let reason = shared::report_file::refusal(&e.render().to_string());
            if let Err(error) = Report::could_not_judge(mode, "", serde_json::Value::Null, reason).write(&path) {
                eprintln!("could not write the report {}: {error:#}", path.display());
            }
        }
    }
    e.exit()
}

/// Starts the in-process service or checks the remote one's settings. `Err` is "could not judge".
async fn prepare_target(
    args: &Args,
    path: &Path,
    (mode, shown, settings): (&str, &str, &serde_json::Value),
    out: &Out,
) -> Result<Target, String> {
    shared::report_file::can_write(path).map_err(|e| format!("cannot write the report {}: {e}", path.display()))?;
    // Until this run's report replaces it, the file says the run did not finish: a run killed
    // outright (SIGKILL, a runner's timeout) leaves that, never an earlier verdict.
    let unfinished = "the run did not finish, or could not write its report".to_owned();
    Report::could_not_judge(mode, shown, settings.clone(), unfinished).write(path).map_err(|e| format!("{e:#}"))?;
    if let Some(stray) = args.stray() {
        return Err(format!("{stray}: a target was meant, and a run in-process would not test it"));
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= 100_000.0) {
            return Err(format!("--rate {rate} must be above 0 and at most 100000 per second"));
        }
    }
    if args.max_in_flight == 0 {
        return Err("--max-in-flight must be at least 1".into());
    }
    if let (Some(rate), Some(duration)) = (args.rate, args.duration) {
        let planned = load::LoadSettings::planned_for(rate, duration);
        setup::within_horizon(planned, u64::from(args.providers.max(1)))?;
        if planned > load::MAX_PLANNED {
            return Err(format!(
                "--rate {rate} for --duration {duration:?} plans {planned} bookings, more than the {} one run \
                 makes: each is a real booking on the target, prepared before the first is sent",
                load::MAX_PLANNED
            ));
        }
    }
    match &args.target {
        None => {
            if let Some(url) = &args.database_url {
                say!(out, "starting the booking service in-process on {}", booking_service::config::redact(url));
            }
            Target::in_process(args.database_url.as_deref(), args.connections()).await.map_err(|e| format!("{e:#}"))
        }
        Some(url) => {
            for (unused, why) in [
                (args.unused_tokens(), "with --jwt-secret the run makes an organization of its own"),
                (args.unused_claims(), "only tokens minted with --jwt-secret carry them"),
            ] {
                if !unused.is_empty() {
                    say!(out, "note: {} not used: {why}", unused.join(", "));
                }
            }
            let credentials = match (&args.jwt_secret, &args.admin_token, &args.agent_token) {
                (Some(secret), _, _) => Credentials::Secret(
                    shared::Signer::hs256(secret).for_service(args.jwt_issuer.clone(), args.jwt_audience.clone()),
                ),
                (None, Some(admin), Some(agent)) => Credentials::Tokens {
                    platform: args.platform_token.clone(),
                    admin: admin.clone(),
                    agent: agent.clone(),
                },
                _ => {
                    return Err(
                        "--target needs --jwt-secret, or --admin-token and --agent-token of one organization".into()
                    )
                }
            };
            Target::remote(url, credentials).map_err(|e| format!("{e:#}"))
        }
    }
}

/// Sets up, runs and checks, and cleans up whatever happens, an interruption included (a second
/// signal gives the cleanup up, saying what is left behind).
async fn judge(
    args: &Args,
    target: &Target,
    settings: serde_json::Value,
    tty: bool,
    interrupts: &Interrupts,
    out: &Out,
) -> Report {
    let mode = args.mode();
    let mut report = Report::could_not_judge(mode, &target.base_url, settings, String::new());
    report.target_kind = target.description.clone();
    let base = ApiClient::new(target.base_url.clone());
    let mut fixture = Fixture::default();
    let outcome = tokio::select! {
        outcome = exercise(args, target, &base, &mut fixture, &mut report, tty, out) => outcome,
        signal = interrupts.nth(1) => Err(format!("interrupted ({signal})")),
    };
    match outcome {
        Ok(()) => report.conclude(),
        Err(reason) => {
            report.verdict = Verdict::CouldNotJudge;
            report.exit_code = Verdict::CouldNotJudge.exit_code();
            report.reason = Some(reason);
        }
    }
    report.cleanup = if args.keep {
        format!("kept (--keep): {}", fixture.made())
    } else if fixture.created_org.is_none() && fixture.providers.is_empty() {
        "nothing to remove".into()
    } else {
        let made = fixture.made();
        tokio::select! {
            cleaned = fixture.cleanup(&base) => cleaned.map_or_else(|e| e, |done| format!("done: {done}")),
            signal = interrupts.nth(2) => format!("given up ({signal}): {made} left behind"),
        }
    };
    // A signal heard while removing (CI cancelling the job) withholds a pass, whose test data may
    // have been given up on; a failure stands, with its reasons.
    if let Some(signal) = interrupts.heard().filter(|_| report.verdict == Verdict::Pass) {
        report.verdict = Verdict::CouldNotJudge;
        report.exit_code = Verdict::CouldNotJudge.exit_code();
        report.reason = Some(format!("interrupted while removing the test data ({signal})"));
    }
    report
}

async fn exercise(
    args: &Args,
    target: &Target,
    base: &ApiClient,
    fixture: &mut Fixture,
    report: &mut Report,
    tty: bool,
    out: &Out,
) -> Result<(), String> {
    limits::ensure_room_for(args.connections() as u64, if target.runs_here() { 2 } else { 1 })?;
    let probe = ApiClient::with_http(
        reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?,
        target.base_url.clone(),
    );
    probe.healthz().await.map_err(|e| format!("target down: GET {}/healthz failed: {e}", target.base_url))?;
    let providers = if args.is_load() { args.providers.max(1) } else { 1 };
    fixture.setup(base, &target.credentials, providers).await.map_err(|e| format!("setup failed: {e:#}"))?;
    let agent_token = fixture.agent_token.clone().unwrap_or_default();
    let staff = base.with_token(fixture.admin_token.clone().unwrap_or_default());
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    // Either mode plans its slots around the clinic's closed days.
    let closed = closed_days(&staff).await?;
    match (args.rate, args.duration) {
        (Some(rate), Some(duration)) => {
            let settings = load::LoadSettings {
                rate,
                duration,
                max_in_flight: args.max_in_flight,
                timeout,
                budget_ms: args.budget_ms,
                late_after: Duration::from_millis(args.late_ms),
                progress: tty && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let slots =
                setup::plan_slots(&fixture.providers, settings.planned(), &closed).map_err(|e| format!("{e:#}"))?;
            say!(
                out,
                "smoke-test load: {} distinct-slot bookings at {rate}/s for {:.1}s over {} provider(s) against {} ({})",
                slots.len(),
                duration.as_secs_f64(),
                fixture.providers.len(),
                target.base_url,
                target.description
            );
            let result = load::run(&target.base_url, &agent_token, &slots, &settings, providers)
                .await
                .map_err(|e| format!("{e:#}"))?;
            report.requests = result.figures.completed;
            report.outcomes = result.outcomes;
            report.latency.insert("from_intended".into(), result.from_intended);
            report.latency.insert("per_request".into(), result.per_request);
            report.latency.insert("service".into(), result.service);
            report.wall_ms = round1(result.wall.as_secs_f64() * 1000.0);
            report.throughput_rps = round1(result.figures.completed as f64 / result.wall.as_secs_f64().max(1e-9));
            report.load = Some(result.figures);
            report.checks = result.checks;
            // Read back: every booking answered 201 is stored, once, as answered (a slot whose
            // booking failed or timed out is not judged: it may have committed all the same).
            let (won, ids): (Vec<PlannedSlot>, Vec<_>) = slots
                .iter()
                .zip(&result.created)
                .filter_map(|(slot, id)| id.map(|id| (slot.clone(), Some(id))))
                .unzip();
            report.checks.push(race::stored_appointments(&staff, &won, &ids).await);
            if let Some(figures) = &report.load {
                load::rate_limited(figures, &report.checks)?;
            }
            report::unread(&report.checks)?;
        }
        _ => {
            let slots =
                setup::plan_slots(&fixture.providers, u64::from(args.slots), &closed).map_err(|e| format!("{e:#}"))?;
            say!(
                out,
                "smoke-test: {} concurrent conflicting bookings of each of {} slot(s) ({} requests) against {} ({})",
                args.concurrency,
                slots.len(),
                slots.len() as u64 * u64::from(args.concurrency),
                target.base_url,
                target.description
            );
            let result = race::run(&target.base_url, &agent_token, &slots, args.concurrency, timeout)
                .await
                .map_err(|e| format!("{e:#}"))?;
            if !args.quiet {
                for s in &result.samples {
                    say!(out, "{}", output::booking_line(s));
                }
            }
            let figures = race::figures(&result);
            report.checks = race::verify(&result, &slots, args.concurrency, &staff, &figures, args.budget_ms).await;
            report.requests = result.samples.len() as u64;
            for s in &result.samples {
                *report.outcomes.entry(s.answer.kind().into()).or_default() += 1;
            }
            report.latency.insert("from_release".into(), figures.from_release);
            report.latency.insert("per_request".into(), figures.per_request);
            report.latency.insert("service".into(), figures.service);
            report.throughput_rps = figures.throughput_rps;
            report.wall_ms = round1(result.wall.as_secs_f64() * 1000.0);
            report.request_log = race::records(&result);
            race::rate_limited(&result, &report.checks)?;
            report::unread(&report.checks)?;
        }
    }
    Ok(())
}

/// The days the clinic is closed (none in one the run made): bookings there would be refused as
/// taken, failing a healthy service.
async fn closed_days(staff: &ApiClient) -> Result<Vec<(chrono::NaiveDate, chrono::NaiveDate)>, String> {
    let closures =
        staff.closures().await.map_err(|e| format!("setup failed: cannot read the clinic's closures: {e}"))?;
    Ok(closures.iter().map(|c| (c.date, c.end_date)).collect())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
