//! The canary gate: scrapes the baseline's and the canary's `/metrics` at the start and the end of
//! a window (and every `--interval` between, so that a restart loses little), and compares what
//! each served in it, by criteria that mirror the go/no-go: promote, roll back, or could not judge.

use crate::cli::CanaryArgs;
use crate::metrics::{self, Figures, Window};
use crate::record::Criterion;
use crate::report;
use colored::Colorize;
use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The success rate a canary needs, in percent, and how far below the baseline's it may be.
pub const MIN_SUCCESS_RATE: f64 = 95.0;
pub const SUCCESS_RATE_SLACK: f64 = 1.0;
/// The canary's p95 may be at most this times the baseline's, plus `--p95-slack-ms`.
pub const P95_FACTOR: f64 = 1.2;
/// A share of the canary's answers that should match the baseline's (bookings refused 409, voice
/// bookings answered with an error) may exceed it by this many points, or by more only as far as
/// chance explains: a one-sided two-proportion z-test at 99% on the pooled share.
pub const SHARE_SLACK: f64 = 5.0;
const Z_ONE_SIDED_99: f64 = 2.326;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Promote,
    Rollback,
    CouldNotJudge,
}

impl Decision {
    pub fn code(self) -> u8 {
        match self {
            Self::Promote => 0,
            Self::Rollback => 1,
            Self::CouldNotJudge => 2,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Rollback => "roll back",
            Self::CouldNotJudge => "could not judge",
        }
    }
}

/// One instance over the window.
#[derive(Debug, Serialize)]
pub struct Side {
    pub url: String,
    /// Scrapes that answered, of those tried.
    pub scrapes: u32,
    pub scrapes_tried: u32,
    pub restarts: u32,
    /// The last scrape's error, if it failed.
    pub last_error: Option<String>,
    /// The scrapes that failed at the end of the window, one after another.
    pub failed_in_a_row: u32,
    pub figures: Figures,
    pub success_rate: Option<f64>,
    pub server_error_rate: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct CanaryReport {
    pub tool: &'static str,
    pub command: &'static str,
    pub started_at: String,
    pub window_secs: f64,
    pub decision: Decision,
    pub criteria: Vec<Criterion>,
    /// Why it is a roll back, or why it could not be judged.
    pub reasons: Vec<String>,
    pub baseline: Side,
    pub canary: Side,
}

struct Watch {
    url: String,
    window: Window,
    tried: u32,
    last_error: Option<String>,
    failed_in_a_row: u32,
}

impl Watch {
    fn new(url: &str) -> Self {
        let url = url.trim_end_matches('/').to_owned();
        Self { url, window: Window::default(), tried: 0, last_error: None, failed_in_a_row: 0 }
    }

    /// Scrapes the instance's `/metrics`.
    async fn scrape(&mut self, http: &reqwest::Client, token: Option<&str>, timeout: Duration) -> bool {
        self.tried += 1;
        match metrics::scrape(http, &format!("{}/metrics", self.url), token, timeout).await {
            Ok(samples) => {
                self.window.observe(samples);
                self.last_error = None;
                self.failed_in_a_row = 0;
                true
            }
            Err(e) => {
                self.last_error = Some(e);
                self.failed_in_a_row += 1;
                false
            }
        }
    }

    fn side(self) -> Side {
        let figures = self.window.figures();
        Side {
            success_rate: figures.success_rate(),
            server_error_rate: figures.server_error_rate(),
            p95_ms: figures.p95().map(|d| d.as_secs_f64() * 1000.0),
            url: self.url,
            scrapes: self.window.scrapes,
            scrapes_tried: self.tried,
            restarts: self.window.restarts,
            last_error: self.last_error,
            failed_in_a_row: self.failed_in_a_row,
            figures,
        }
    }
}

/// Why the canary is down, if it is: it failed its last two scrapes or more while the baseline
/// answered its last (and enough to judge it). That is a roll back, not a window that cannot be
/// judged, which would hold the step with its share of traffic on a release that is not there.
fn down(baseline: &Side, canary: &Side) -> Option<String> {
    let baseline_up = baseline.last_error.is_none() && baseline.scrapes >= 2;
    (canary.failed_in_a_row >= 2 && baseline_up).then(|| {
        let error = canary.last_error.as_deref().unwrap_or_default();
        format!(
            "the canary is down: its last {} scrapes failed ({error}) while the baseline answered",
            canary.failed_in_a_row
        )
    })
}

/// Why the window cannot be judged, if it cannot.
fn unjudgeable(side: &Side, which: &str, args: &CanaryArgs, saw_metrics: bool) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(e) = &side.last_error {
        why.push(format!("the {which} did not answer its last scrape: {e}"));
    } else if side.scrapes < 2 {
        why.push(format!("the {which} answered {} of {} scrapes; two are needed", side.scrapes, side.scrapes_tried));
    } else if !saw_metrics {
        why.push(format!("the {which}'s /metrics holds no {} (not the booking service?)", metrics::REQUESTS));
    } else if side.figures.requests < args.min_requests {
        why.push(format!(
            "too little traffic: the {which} served {} requests in the window (at least {} needed)",
            side.figures.requests, args.min_requests
        ));
    } else if args.min_bookings > 0 && side.figures.booking_requests() < args.min_bookings {
        // Refusals count: a canary refusing every booking is judged (and rolled back) on its
        // refused share, not held as a window without bookings.
        why.push(format!(
            "too little booking traffic: the {which} answered {} booking requests in the window (at least {} needed)",
            side.figures.booking_requests(),
            args.min_bookings
        ));
    } else if side.p95_ms.is_none() {
        // Its requests are counted but not timed: a p95 not measured is not a p95 that holds.
        why.push(format!("the {which}'s /metrics holds no {} for its requests: no p95", metrics::LATENCY_BUCKETS));
    }
    why
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("none".into(), |r| format!("{r:.1}%"))
}

/// Whether the canary's share `hits / of` is no higher than the baseline's beyond `SHARE_SLACK`
/// points and chance; `None` when either side has nothing to take a share of. The difference is
/// taken less Yates' continuity correction, without which the normal approximation calls small,
/// uneven counts (a canary on a tenth of the traffic) significant far too often.
fn share_holds((canary_hits, canary_of): (u64, u64), (baseline_hits, baseline_of): (u64, u64)) -> Option<bool> {
    if canary_of == 0 || baseline_of == 0 {
        return None;
    }
    let (cn, bn) = (canary_of as f64, baseline_of as f64);
    let (c, b) = (canary_hits as f64 / cn, baseline_hits as f64 / bn);
    let pooled = (canary_hits + baseline_hits) as f64 / (cn + bn);
    let chance = Z_ONE_SIDED_99 * (pooled * (1.0 - pooled) * (1.0 / cn + 1.0 / bn)).sqrt();
    let corrected = c - b - 0.5 * (1.0 / cn + 1.0 / bn);
    Some(corrected <= (SHARE_SLACK / 100.0).max(chance) + 1e-9)
}

/// Why the window cannot be judged: either side's own reasons, then the voice path's.
fn unjudgeable_window(baseline: &Side, canary: &Side, args: &CanaryArgs, (b_saw, c_saw): (bool, bool)) -> Vec<String> {
    let mut why = unjudgeable(baseline, "baseline", args, b_saw);
    why.extend(unjudgeable(canary, "canary", args, c_saw));
    why.extend(voice_unjudgeable(baseline, canary, args.min_bookings));
    why
}

/// Why the window cannot be judged for the voice path: one side answered voice bookings and the
/// other none (a canary refusing every Vapi message, say, shows no tool calls at all).
fn voice_unjudgeable(baseline: &Side, canary: &Side, min_bookings: u64) -> Option<String> {
    let calls = |s: &Side| s.figures.voice_bookings + s.figures.voice_booking_errors;
    let (b, c) = (calls(baseline), calls(canary));
    let (which, other, n) = match (b, c) {
        (0, n) if n >= min_bookings.max(1) => ("baseline", "canary", n),
        (n, 0) if n >= min_bookings.max(1) => ("canary", "baseline", n),
        _ => return None,
    };
    Some(format!(
        "the {which} answered no voice booking while the {other} answered {n}: is its Vapi route refusing them?"
    ))
}

/// A criterion on a share both instances should show alike, their traffic coming from one stream.
fn share_criterion(name: &str, what: &str, canary: (u64, u64), baseline: (u64, u64)) -> Criterion {
    let share = |(hits, of): (u64, u64)| {
        let rate = (of > 0).then(|| hits as f64 * 100.0 / of as f64);
        format!("{} ({hits} of {of} {what})", percent(rate))
    };
    Criterion::new(
        name,
        format!("at most {SHARE_SLACK:.0} points above the baseline's, or more only as far as chance explains (99%)"),
        format!("canary {}, baseline {}", share(canary), share(baseline)),
        share_holds(canary, baseline),
    )
}

/// The criteria, mirroring the go/no-go.
pub fn judge(baseline: &Side, canary: &Side, budget_ms: u64, slack_ms: u64) -> Vec<Criterion> {
    let (b, c) = (&baseline.figures, &canary.figures);
    let mut criteria = Vec::new();

    let floor = baseline.success_rate.map_or(MIN_SUCCESS_RATE, |r| MIN_SUCCESS_RATE.max(r - SUCCESS_RATE_SLACK));
    criteria.push(Criterion::new(
        "booking success rate",
        format!(
            ">= {MIN_SUCCESS_RATE:.0}% and at most {SUCCESS_RATE_SLACK:.0} point below the baseline (here >= {floor:.1}%)"
        ),
        format!(
            "canary {} ({} of {} booked), baseline {} ({} of {})",
            percent(canary.success_rate),
            c.bookings_succeeded,
            c.booking_attempts(),
            percent(baseline.success_rate),
            b.bookings_succeeded,
            b.booking_attempts()
        ),
        canary.success_rate.map(|r| r >= floor),
    ));

    let limit = baseline.p95_ms.map_or(budget_ms as f64, |p| (budget_ms as f64).min(p * P95_FACTOR + slack_ms as f64));
    let ms = |p: Option<f64>| p.map_or("none".into(), |p| format!("{p:.1} ms"));
    criteria.push(Criterion::new(
        "p95 latency",
        format!("< {budget_ms} ms and <= {P95_FACTOR} × the baseline's + {slack_ms} ms (here {limit:.1} ms)"),
        format!("canary {}, baseline {}", ms(canary.p95_ms), ms(baseline.p95_ms)),
        canary.p95_ms.map(|p| p < budget_ms as f64 && p <= limit),
    ));

    let allowed = baseline.server_error_rate.unwrap_or(0.0);
    criteria.push(Criterion::new(
        "server errors (5xx)",
        format!("a rate no higher than the baseline's ({allowed:.2}%)"),
        format!(
            "canary {} of {} requests ({:.2}%), baseline {} of {} ({:.2}%)",
            c.server_errors,
            c.requests,
            canary.server_error_rate.unwrap_or(0.0),
            b.server_errors,
            b.requests,
            allowed
        ),
        Some(canary.server_error_rate.unwrap_or(0.0) <= allowed + 1e-9),
    ));

    // A canary down for part of the window (a crash loop, say) loses requests its /metrics never
    // counts: it must have restarted no more often than the baseline, and missed at most one scrape
    // more (one slow answer, or a first scrape before it was up, loses nothing: counters add up).
    let missed = |s: &Side| s.scrapes_tried.saturating_sub(s.scrapes);
    criteria.push(Criterion::new(
        "stayed up",
        "no more restarts than the baseline's, at most one missed scrape more",
        format!(
            "canary answered {} of {} scrapes, restarted {} times; baseline {} of {}, {} times",
            canary.scrapes,
            canary.scrapes_tried,
            canary.restarts,
            baseline.scrapes,
            baseline.scrapes_tried,
            baseline.restarts
        ),
        Some(missed(canary) <= missed(baseline) + 1 && canary.restarts <= baseline.restarts),
    ));

    // Refusals are the service doing its job, so the success rate leaves them out; but a canary
    // that refuses what the baseline books (every slot "taken", say) must not be promoted on that.
    criteria.push(share_criterion(
        "bookings refused (409)",
        "booking requests",
        (c.bookings_refused, c.booking_requests()),
        (b.bookings_refused, b.booking_requests()),
    ));
    // A tool's error is also how a taken slot is spoken, so the voice path is judged the same way.
    let voice = |f: &Figures| (f.voice_booking_errors, f.voice_bookings + f.voice_booking_errors);
    criteria.push(share_criterion("voice booking errors", "book_appointment tool calls", voice(c), voice(b)));
    criteria
}

/// The decision on a window, its reasons and the criteria it was judged by (none when it could
/// not be judged); `stopped` says why the window was cut short, if it was.
fn decide(
    baseline: &Side,
    canary: &Side,
    args: &CanaryArgs,
    saw_metrics: (bool, bool),
    stopped: Option<String>,
) -> (Decision, Vec<String>, Vec<Criterion>) {
    let criteria = judge(baseline, canary, args.budget_ms, args.p95_slack_ms);
    // A canary down is rolled back, even in a window cut short.
    if let Some(why) = down(baseline, canary) {
        return (Decision::Rollback, stopped.into_iter().chain([why]).collect(), criteria);
    }
    let unjudged: Vec<String> =
        stopped.into_iter().chain(unjudgeable_window(baseline, canary, args, saw_metrics)).collect();
    if !unjudged.is_empty() {
        return (Decision::CouldNotJudge, unjudged, Vec::new());
    }
    let failed: Vec<String> = criteria
        .iter()
        .filter(|c| c.passed == Some(false))
        .map(|c| format!("{}: {} (threshold {})", c.name, c.measured, c.threshold))
        .collect();
    if !failed.is_empty() {
        return (Decision::Rollback, failed, criteria);
    }
    // Refusals alone meet the booking minimum, but a side that booked nothing it did not refuse
    // has no success rate: unless its refusals already roll it back, nothing promotes it.
    let unbooked: Vec<String> = [("baseline", baseline), ("canary", canary)]
        .into_iter()
        .filter(|(_, side)| args.min_bookings > 0 && side.success_rate.is_none())
        .map(|(which, _)| format!("the {which} refused every booking asked of it: no success rate to judge"))
        .collect();
    if !unbooked.is_empty() {
        return (Decision::CouldNotJudge, unbooked, Vec::new());
    }
    (Decision::Promote, failed, criteria)
}

/// Runs the gate, printing as it goes and writing the reports.
pub async fn run(args: CanaryArgs) -> Decision {
    let interrupts = shared::interrupt::Interrupts::listen();
    // Told at once, not after watching the whole window.
    let checked = [&args.baseline, &args.canary]
        .into_iter()
        .try_for_each(|url| shared::client::http_url(url).map(drop))
        .and_then(|()| crate::reports_writable(&args.report_dir, args.junit.as_deref()));
    if let Err(e) = checked {
        eprintln!("could not judge: {e}");
        return Decision::CouldNotJudge;
    }
    // Until this gate's JUnit report replaces it, the file says the gate did not finish: one
    // killed outright (SIGKILL, a runner's timeout) leaves that, never an earlier decision.
    if let Some(path) = &args.junit {
        if let Err(e) =
            report::junit_could_not_judge(path, "the canary gate did not finish: it was stopped before its end")
        {
            eprintln!("could not judge: cannot write {}: {e}", path.display());
            return Decision::CouldNotJudge;
        }
    }
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let http = reqwest::Client::new();
    let (mut baseline, mut canary) = (Watch::new(&args.baseline), Watch::new(&args.canary));
    let interval = args.interval.min(args.duration).max(Duration::from_millis(100));
    let timeout = interval.min(Duration::from_secs(10));
    println!("{}", "Canary gate: booking service".bold());
    println!("Baseline {}\nCanary   {}", baseline.url, canary.url);
    println!("Window {:.0?}, a scrape every {:.0?}", args.duration, interval);

    let end = tokio::time::Instant::now() + args.duration;
    // A CI job cancelled (SIGINT, SIGTERM) ends the window early, a scrape under way too (a
    // runner's SIGKILL follows within seconds): the gate cannot judge, and says so in its reports.
    let mut stopped = None;
    loop {
        let step = async {
            let token = args.metrics_token.as_deref();
            let (b, c) = tokio::join!(baseline.scrape(&http, token, timeout), canary.scrape(&http, token, timeout));
            let mark = |ok: bool| if ok { "✓".green() } else { "✗".red() };
            println!("  [{:>6.1}s] baseline {} canary {}", started.elapsed().as_secs_f64(), mark(b), mark(c));
            let now = tokio::time::Instant::now();
            if now < end {
                tokio::time::sleep_until((now + interval).min(end)).await;
            }
            now >= end
        };
        let done = tokio::select! {
            done = step => done,
            signal = interrupts.nth(1) => {
                stopped = Some(format!("stopped by {signal} before the window's end"));
                true
            }
        };
        if done {
            break;
        }
    }

    let (b_saw, c_saw) = (baseline.window.saw_service_metrics, canary.window.saw_service_metrics);
    let (baseline, canary) = (baseline.side(), canary.side());
    let (decision, reasons, criteria) = decide(&baseline, &canary, &args, (b_saw, c_saw), stopped);
    let report = CanaryReport {
        tool: "uat-orchestrator",
        command: "canary",
        started_at,
        window_secs: started.elapsed().as_secs_f64(),
        decision,
        criteria,
        reasons,
        baseline,
        canary,
    };
    print_summary(&report);
    let mut wrote = true;
    match write(&args.report_dir, &report) {
        Ok(path) => println!("Report: {}", path.display()),
        Err(e) => {
            eprintln!("could not write the report to {}: {e}", args.report_dir.display());
            wrote = false;
        }
    }
    if let Some(path) = &args.junit {
        if let Err(e) = junit(path, &report) {
            eprintln!("could not write the JUnit report {}: {e}", path.display());
            wrote = false;
        }
    }
    report::append_step_summary(&markdown(&report));
    if wrote {
        decision
    } else {
        Decision::CouldNotJudge
    }
}

fn print_summary(report: &CanaryReport) {
    for (name, side) in [("baseline", &report.baseline), ("canary", &report.canary)] {
        let f = &side.figures;
        println!(
            "  {name:<8} {} requests, {} 5xx; bookings {} booked, {} refused (409), {} failed; p95 {}{}",
            f.requests,
            f.server_errors,
            f.bookings_succeeded,
            f.bookings_refused,
            f.bookings_failed,
            side.p95_ms.map_or("none".into(), |p| format!("{p:.1} ms")),
            if side.restarts > 0 { format!("; restarted {} time(s)", side.restarts) } else { String::new() }
        );
    }
    for c in &report.criteria {
        let mark = match c.passed {
            Some(true) => "✓".green(),
            Some(false) => "✗".red(),
            None => "not judged".yellow(),
        };
        println!("  {mark} {:<22} {}  (threshold {})", c.name, c.measured, c.threshold);
    }
    // A roll back's reasons are the failed criteria just printed; a window that could not be
    // judged has only its reasons.
    if report.decision == Decision::CouldNotJudge {
        for r in &report.reasons {
            println!("  {} {r}", "•".yellow());
        }
    }
    let line = format!("DECISION: {}", report.decision.words().to_uppercase());
    let line = match report.decision {
        Decision::Promote => line.green().bold(),
        Decision::Rollback => line.red().bold(),
        Decision::CouldNotJudge => line.yellow().bold(),
    };
    println!("\n{line}");
}

/// Writes `canary-report-<unix_ms>.json` into `dir`.
pub fn write(dir: &Path, report: &CanaryReport) -> std::io::Result<PathBuf> {
    shared::report_file::write_json(dir, "canary-report", report)
}

/// One test case per criterion, then the decision's: a roll back no criterion explains (the
/// canary down) still fails the file, and a window that could not be judged is an error.
pub fn junit(path: &Path, report: &CanaryReport) -> std::io::Result<()> {
    let mut suite = TestSuite::new("canary-gate");
    for c in &report.criteria {
        let status = match c.passed {
            Some(false) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("{} (threshold {})", c.measured, c.threshold));
                s
            }
            Some(true) => TestCaseStatus::success(),
            None => TestCaseStatus::skipped(),
        };
        let mut case = TestCase::new(c.name.clone(), status);
        case.set_classname("canary").set_system_out(format!("{} (threshold {})", c.measured, c.threshold));
        suite.add_test_case(case);
    }
    let mut status = match report.decision {
        Decision::Promote => TestCaseStatus::success(),
        Decision::Rollback => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Decision::CouldNotJudge => TestCaseStatus::non_success(NonSuccessKind::Error),
    };
    if report.decision != Decision::Promote {
        status.set_message(report.reasons.join("; "));
    }
    let mut decision = TestCase::new("decision", status);
    decision.set_classname("canary");
    suite.add_test_case(decision);
    let mut junit = JunitReport::new("canary");
    junit.add_test_suite(suite);
    report::write_junit(path, &junit)
}

pub fn markdown(report: &CanaryReport) -> String {
    let decision = match report.decision {
        Decision::Promote => "✅ **promote**",
        Decision::Rollback => "❌ **roll back**",
        Decision::CouldNotJudge => "⚠️ **could not judge**",
    };
    let mut md = format!(
        "## Canary gate: {decision}\n\nBaseline `{}`, canary `{}`, a window of {:.0} s.\n\n",
        report.baseline.url, report.canary.url, report.window_secs
    );
    if !report.criteria.is_empty() {
        md.push_str(&Criterion::markdown_table(&report.criteria, "criterion", "passed"));
    }
    for r in &report.reasons {
        md.push_str(&format!("\n- {r}"));
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A side with `booked` of `attempts` bookings, `errors` 5xx of 1000 requests, and every
    /// request taking `ms` (all in the bucket whose bound is `ms`).
    fn side(booked: u64, attempts: u64, errors: u64, ms: f64) -> Side {
        let figures = Figures {
            requests: 1000,
            server_errors: errors,
            bookings_succeeded: booked,
            bookings_failed: attempts - booked,
            latency_buckets: vec![(0.0, 0), (ms / 1000.0, 1000), (f64::INFINITY, 1000)],
            ..Figures::default()
        };
        Side {
            url: "http://x".into(),
            scrapes: 3,
            scrapes_tried: 3,
            restarts: 0,
            last_error: None,
            failed_in_a_row: 0,
            success_rate: figures.success_rate(),
            server_error_rate: figures.server_error_rate(),
            p95_ms: figures.p95().map(|d| d.as_secs_f64() * 1000.0),
            figures,
        }
    }

    fn passed(criteria: &[Criterion]) -> Vec<Option<bool>> {
        criteria.iter().map(|c| c.passed).collect()
    }

    #[test]
    fn the_canary_may_trail_the_baseline_by_one_point_and_its_p95_by_a_fifth_plus_25_ms() {
        let baseline = side(990, 1000, 1, 100.0);
        // 98.0% against 99.0%: one point below; p95 within 1.2 × 95 + 25; as many 5xx.
        assert_eq!(passed(&judge(&baseline, &side(980, 1000, 1, 140.0), 500, 25))[..4], [Some(true); 4]);
        // 97.9%; a p95 of 161.5 ms (interpolated), over 1.2 × 95 + 25 = 139 ms; one 5xx more.
        assert_eq!(passed(&judge(&baseline, &side(979, 1000, 2, 170.0), 500, 25))[..3], [Some(false); 3]);
    }

    /// A canary that missed scrapes the baseline answered, or restarted more often, was down for
    /// part of the window: it is rolled back however good its counters look. One miss is allowed.
    #[test]
    fn a_canary_that_went_down_in_the_window_is_rolled_back() {
        let baseline = side(990, 1000, 0, 100.0);
        let stayed_up = |canary: &Side| judge(&baseline, canary, 500, 25)[3].passed;
        let healthy = side(990, 1000, 0, 100.0);
        assert_eq!(stayed_up(&healthy), Some(true));
        assert_eq!(stayed_up(&Side { scrapes: 2, ..side(990, 1000, 0, 100.0) }), Some(true), "one missed scrape");
        assert_eq!(stayed_up(&Side { scrapes: 1, ..side(990, 1000, 0, 100.0) }), Some(false), "two missed scrapes");
        assert_eq!(stayed_up(&Side { restarts: 1, ..side(990, 1000, 0, 100.0) }), Some(false), "a restart");
    }

    /// A canary that stopped answering while the baseline answers is rolled back; one failed
    /// last scrape is not enough to say, nor is a baseline that stopped answering too.
    #[test]
    fn a_canary_that_stopped_answering_is_rolled_back_not_left_unjudged() {
        let baseline = side(990, 1000, 0, 100.0);
        let failing = |n: u32| Side {
            failed_in_a_row: n,
            last_error: Some("connection refused".into()),
            ..side(990, 1000, 0, 100.0)
        };
        let why = down(&baseline, &failing(2)).expect("down");
        assert!(why.contains("last 2 scrapes failed (connection refused)"), "{why}");
        assert_eq!(down(&baseline, &failing(1)), None, "one failed scrape");
        assert_eq!(down(&failing(1), &failing(3)), None, "the baseline stopped answering too");
        assert_eq!(
            down(&Side { scrapes: 1, ..side(990, 1000, 0, 100.0) }, &failing(3)),
            None,
            "nothing to compare with"
        );
        // Every criterion may pass on what it served before it went down (the baseline missed a
        // scrape too): the JUnit file still fails, on the decision.
        let (baseline, down_late) = (Side { scrapes: 4, scrapes_tried: 5, ..baseline }, failing(2));
        let args = crate::cli::tests::canary_args("1m");
        let (decision, reasons, criteria) = decide(&baseline, &down_late, &args, (true, true), None);
        assert_eq!(decision, Decision::Rollback);
        assert!(criteria.iter().all(|c| c.passed != Some(false)), "{criteria:?}");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("junit.xml");
        let (tool, command, started_at) = ("uat-orchestrator", "canary", String::new());
        let (baseline, canary) = (baseline, down_late);
        let report = CanaryReport {
            tool,
            command,
            started_at,
            window_secs: 60.0,
            decision,
            criteria,
            reasons,
            baseline,
            canary,
        };
        junit(&path, &report).expect("written");
        let xml = std::fs::read_to_string(&path).expect("read");
        assert!(xml.contains("testcase name=\"decision\"") && xml.contains("<failure"), "{xml}");
        assert!(xml.contains("the canary is down: its last 2 scrapes failed"), "{xml}");
    }

    /// Requests counted but not timed (the latency histogram renamed or gone) leave the window
    /// unjudged, never promoted on the criteria that could be judged.
    #[test]
    fn a_side_without_latencies_cannot_be_judged() {
        #[derive(clap::Parser)]
        struct Gate {
            #[command(flatten)]
            args: CanaryArgs,
        }
        let words = ["canary", "--baseline", "http://b", "--canary", "http://c", "--duration", "1m"];
        let args = <Gate as clap::Parser>::try_parse_from(words).expect("args").args;
        let mut untimed = side(1000, 1000, 0, 100.0);
        untimed.figures.latency_buckets.clear();
        untimed.p95_ms = untimed.figures.p95().map(|d| d.as_secs_f64() * 1000.0);
        assert_eq!(unjudgeable(&side(1000, 1000, 0, 100.0), "canary", &args, true), Vec::<String>::new());
        let why = unjudgeable(&untimed, "canary", &args, true);
        assert!(why.len() == 1 && why[0].contains("no p95"), "{why:?}");
    }

    #[test]
    fn the_absolute_thresholds_hold_whatever_the_baseline() {
        // A baseline as bad as the canary does not excuse it: under 95% and over 500 ms fail.
        let bad = side(900, 1000, 0, 900.0);
        assert_eq!(
            passed(&judge(&bad, &side(900, 1000, 0, 900.0), 500, 25))[..4],
            [Some(false), Some(false), Some(true), Some(true)]
        );
        // Without booking attempts the success rate is not judged.
        let quiet = side(0, 0, 0, 10.0);
        assert_eq!(judge(&quiet, &quiet, 500, 25)[0].passed, None);
    }

    /// A side that refused `refused` of its booking requests (and booked the rest) and answered
    /// `errors` of `calls` voice bookings with an error.
    fn refusing(refused: u64, requests: u64, errors: u64, calls: u64) -> Side {
        let mut side = side(requests - refused, requests - refused, 0, 100.0);
        side.figures.bookings_refused = refused;
        side.figures.voice_booking_errors = errors;
        side.figures.voice_bookings = calls - errors;
        side
    }

    /// The success rate leaves refusals out: a canary that refuses what the baseline books is
    /// caught by comparing shares, five points allowed, more only where the counts are too small
    /// to tell a difference from chance.
    #[test]
    fn a_canary_refusing_more_than_the_baseline_is_rolled_back() {
        let shares = |canary: &Side, baseline: &Side| passed(&judge(baseline, canary, 500, 25)[4..]);
        let baseline = refusing(100, 1000, 100, 1000);
        assert_eq!(shares(&refusing(140, 1000, 140, 1000), &baseline), [Some(true); 2], "4 points more");
        assert_eq!(shares(&refusing(200, 1000, 200, 1000), &baseline), [Some(false); 2], "10 points more");
        // The success rate alone promotes that canary: all it did not refuse, it booked.
        assert_eq!(judge(&baseline, &refusing(200, 1000, 200, 1000), 500, 25)[0].passed, Some(true));
        // 1 of 20 against 4 of 20 is chance (the 99% bound is 24 points there); 20 of 20 is not.
        let (few, slack) = (refusing(1, 20, 1, 20), refusing(4, 20, 4, 20));
        assert_eq!(shares(&slack, &few), [Some(true); 2]);
        assert_eq!(shares(&refusing(20, 20, 20, 20), &few), [Some(false); 2]);
        // Fewer refusals than the baseline's is no fault; without voice bookings on a side the
        // voice share is not judged.
        assert_eq!(shares(&refusing(0, 1000, 0, 1000), &baseline), [Some(true); 2]);
        assert_eq!(shares(&refusing(100, 1000, 0, 0), &baseline), [Some(true), None]);
        // A canary on a tenth of the traffic: one refusal of ten against none of a hundred is
        // chance (it lands on the canary 9% of the time); five of ten is not.
        let (quiet, tenth) = (refusing(0, 100, 0, 100), refusing(1, 10, 1, 10));
        assert_eq!(shares(&tenth, &quiet), [Some(true); 2]);
        assert_eq!(shares(&refusing(5, 10, 5, 10), &quiet), [Some(false); 2]);
    }

    /// Refusals count as booking traffic and are judged by their share: a canary refusing every
    /// booking the baseline books is rolled back, not held as a window without bookings.
    #[test]
    fn a_canary_refusing_every_booking_is_rolled_back() {
        let args = crate::cli::tests::canary_args("1m");
        let (baseline, only_refused) = (refusing(0, 100, 0, 0), refusing(50, 50, 0, 0));
        let (decision, why, _) = decide(&baseline, &only_refused, &args, (true, true), None);
        assert_eq!(decision, Decision::Rollback, "{why:?}");
        assert!(why.len() == 1 && why[0].starts_with("bookings refused (409): canary 100.0% (50 of 50"), "{why:?}");
        // Refusing everything where the baseline refuses most, by chance no more, promotes nothing.
        let (mostly, all) = (refusing(90, 100, 0, 0), refusing(12, 12, 0, 0));
        let (decision, why, _) = decide(&mostly, &all, &args, (true, true), None);
        assert_eq!(decision, Decision::CouldNotJudge, "{why:?}");
        assert_eq!(why, ["the canary refused every booking asked of it: no success rate to judge"]);
        // Too few booking requests, refused or not, is still too little to judge.
        let (decision, why, _) = decide(&baseline, &refusing(5, 5, 0, 0), &args, (true, true), None);
        assert_eq!(decision, Decision::CouldNotJudge, "{why:?}");
        assert!(why[0].starts_with("too little booking traffic: the canary answered 5 booking requests"), "{why:?}");
        // Voice bookings on the baseline only: the canary's voice path cannot be judged.
        let why = unjudgeable_window(
            &refusing(0, 100, 0, 20),
            &baseline,
            &crate::cli::tests::canary_args("1m"),
            (true, true),
        );
        assert!(why.iter().any(|w| w.starts_with("the canary answered no voice booking")), "{why:?}");
        assert!(
            unjudgeable_window(&baseline, &baseline, &crate::cli::tests::canary_args("1m"), (true, true)).is_empty()
        );
    }

    /// A side without voice bookings beside one with enough is not promoted on an unjudged
    /// voice path: the canary may be refusing every Vapi message.
    #[test]
    fn voice_bookings_on_one_side_only_cannot_be_judged() {
        let (calls, silent) = (refusing(0, 100, 5, 50), refusing(0, 100, 0, 0));
        assert!(voice_unjudgeable(&calls, &silent, 10).is_some_and(|w| w.starts_with("the canary answered no")));
        assert!(voice_unjudgeable(&silent, &calls, 10).is_some_and(|w| w.starts_with("the baseline answered no")));
        assert_eq!(voice_unjudgeable(&silent, &silent, 10), None, "no voice traffic at all");
        assert_eq!(voice_unjudgeable(&calls, &refusing(0, 100, 0, 3), 10), None, "a few on the canary");
        assert_eq!(voice_unjudgeable(&refusing(0, 100, 0, 9), &silent, 10), None, "too few to tell");
    }

    #[test]
    fn the_summary_names_the_decision_and_every_criterion() {
        let baseline = side(990, 1000, 0, 100.0);
        let canary = side(500, 1000, 0, 100.0);
        let criteria = judge(&baseline, &canary, 500, 25);
        let report = CanaryReport {
            tool: "uat-orchestrator",
            command: "canary",
            started_at: String::new(),
            window_secs: 60.0,
            decision: Decision::Rollback,
            criteria,
            reasons: vec!["booking success rate: …".into()],
            baseline,
            canary,
        };
        let md = markdown(&report);
        assert!(md.starts_with("## Canary gate: ❌ **roll back**"), "{md}");
        assert!(md.contains("| booking success rate |") && md.contains("| p95 latency |"), "{md}");
        assert!(md.contains("canary 50.0% (500 of 1000 booked)"), "{md}");
    }
}
