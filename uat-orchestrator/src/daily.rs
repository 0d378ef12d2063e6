//! The daily report: what a clinic's day looked like, from the API (bookings made, cancellations,
//! attendance of the appointments that were due) and from the service's `/metrics` (booking
//! success rate, 5xx, p95), each figure against the go/no-go thresholds.

use crate::cli::DailyArgs;
use crate::metrics::{self, Figures, Window};
use crate::record::Criterion;
use crate::report;
use chrono::{DateTime, FixedOffset, Utc};
use colored::Colorize;
use serde::{Deserialize, Serialize};
use shared::ApiClient;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every judged figure is within its threshold.
    Within,
    /// At least one threshold was missed.
    Missed,
    CouldNotJudge,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Self::Within => 0,
            Self::Missed => 1,
            Self::CouldNotJudge => 2,
        }
    }
}

/// An appointment as the list route gives it, read leniently: a status this tool does not know
/// (a newer service's) is counted under its own name rather than failing the report.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub status: String,
    pub starts_at: DateTime<FixedOffset>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the appointments say about the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Appointments {
    /// Booked in the window (created then), whatever became of them.
    pub booked: u64,
    /// Of those, by status now.
    pub booked_by_status: BTreeMap<String, u64>,
    /// Cancelled in the window (last changed then, now cancelled).
    pub cancelled: u64,
    /// Due in the window (their start passed in it), by status: `completed`, `no_show`, or still
    /// `pending` / `confirmed` when attendance was not recorded.
    pub due: u64,
    pub due_by_status: BTreeMap<String, u64>,
    pub no_shows: u64,
    /// No-shows among the due appointments whose attendance was recorded; `None` before any was.
    pub no_show_rate: Option<f64>,
}

impl Appointments {
    pub fn tally(list: &[Listed], since: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let mut a = Appointments::default();
        for item in list {
            if item.created_at >= since {
                a.booked += 1;
                *a.booked_by_status.entry(item.status.clone()).or_default() += 1;
            }
            if item.status == "cancelled" && item.updated_at >= since {
                a.cancelled += 1;
            }
            let starts = item.starts_at.with_timezone(&Utc);
            if starts >= since && starts <= now {
                a.due += 1;
                *a.due_by_status.entry(item.status.clone()).or_default() += 1;
            }
        }
        a.no_shows = a.due_by_status.get("no_show").copied().unwrap_or(0);
        let recorded = a.no_shows + a.due_by_status.get("completed").copied().unwrap_or(0);
        a.no_show_rate = (recorded > 0).then(|| a.no_shows as f64 * 100.0 / recorded as f64);
        a
    }
}

#[derive(Debug, Serialize)]
pub struct DailyReport {
    pub tool: &'static str,
    pub command: &'static str,
    pub target: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub outcome: Outcome,
    pub criteria: Vec<Criterion>,
    pub reasons: Vec<String>,
    pub appointments: Option<Appointments>,
    pub metrics_urls: Vec<String>,
    /// Where the metrics figures start: the earlier report given with `--previous`, or `null`
    /// for the counters since each instance started.
    pub metrics_since: Option<DateTime<Utc>>,
    pub metrics: Option<Figures>,
    pub success_rate: Option<f64>,
    pub p95_ms: Option<f64>,
    /// This run's scrape of each instance, for a later report's `--previous`.
    pub metrics_snapshot: Snapshot,
}

/// The counters of each instance (by metrics URL) at one moment.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub scraped_at: Option<DateTime<Utc>>,
    pub instances: BTreeMap<String, Vec<metrics::Sample>>,
}

/// The snapshot of an earlier report.
fn previous_snapshot(path: &Path) -> Result<Snapshot, String> {
    #[derive(Deserialize)]
    struct Earlier {
        metrics_snapshot: Snapshot,
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read --previous {}: {e}", path.display()))?;
    let earlier: Earlier = serde_json::from_slice(&bytes)
        .map_err(|e| format!("--previous {} is not a daily report: {e}", path.display()))?;
    Ok(earlier.metrics_snapshot)
}

pub fn judge(figures: &Figures, budget_ms: u64) -> Vec<Criterion> {
    let rate = figures.success_rate();
    let p95 = figures.p95().map(|d| d.as_secs_f64() * 1000.0);
    vec![
        Criterion::new(
            "booking success rate",
            ">= 95%",
            rate.map_or("no booking attempts".into(), |r| {
                format!(
                    "{r:.1}% ({} booked, {} failed; {} refused as taken, not counted)",
                    figures.bookings_succeeded, figures.bookings_failed, figures.bookings_refused
                )
            }),
            rate.map(|r| r >= 95.0),
        ),
        Criterion::new(
            "p95 latency",
            format!("< {budget_ms} ms"),
            p95.map_or("no requests".into(), |p| format!("{p:.1} ms over {} requests", figures.requests)),
            p95.map(|p| p < budget_ms as f64),
        ),
        Criterion::new(
            "server errors (5xx)",
            "0",
            format!("{} of {} requests", figures.server_errors, figures.requests),
            Some(figures.server_errors == 0),
        ),
    ]
}

pub async fn run(args: DailyArgs) -> Outcome {
    // Told at once, not after all the reading.
    let checked = std::iter::once(&args.target)
        .chain(&args.metrics_urls)
        .try_for_each(|url| shared::client::http_url(url).map(drop))
        .and_then(|()| crate::reports_writable(&args.report_dir, None));
    if let Err(e) = checked {
        eprintln!("could not judge: {e}");
        return Outcome::CouldNotJudge;
    }
    let until = Utc::now();
    let since = until - chrono::Duration::from_std(args.since).unwrap_or(chrono::Duration::days(1));
    let target = args.target.trim_end_matches('/').to_owned();
    let mut reasons = Vec::new();

    // Appointments ending after the window's start: every one booked in it (bookings are in the
    // future) and every one due in it.
    let api = ApiClient::new(&target).with_token(&args.staff_token);
    let query = [("from", since.to_rfc3339()), ("limit", "500".to_owned())];
    let appointments = match api.every_page::<Listed>("/api/appointments", &query).await {
        Ok(list) => Some(Appointments::tally(&list, since, until)),
        Err(e) => {
            reasons.push(format!("could not list the appointments: {e}"));
            None
        }
    };

    let metrics_urls = if args.metrics_urls.is_empty() { vec![format!("{target}/metrics")] } else { args.metrics_urls };
    let previous = match args.previous.as_deref().map(previous_snapshot).transpose() {
        Ok(p) => p,
        Err(e) => {
            reasons.push(e);
            None
        }
    };
    let http = reqwest::Client::new();
    let mut snapshot = Snapshot { scraped_at: Some(Utc::now()), instances: BTreeMap::new() };
    let mut grown = Vec::new();
    for url in &metrics_urls {
        match metrics::scrape(&http, url, args.metrics_token.as_deref(), std::time::Duration::from_secs(10)).await {
            Ok(samples) if !samples.iter().any(|s| s.name == metrics::REQUESTS) => {
                reasons.push(format!("{url} holds no {} (not the booking service?)", metrics::REQUESTS));
            }
            Ok(samples) => {
                let samples = metrics::relevant(samples);
                // Since the earlier report when it scraped this instance, else since it started.
                let mut window = Window::default();
                window.observe(previous.as_ref().and_then(|p| p.instances.get(url)).cloned().unwrap_or_default());
                window.observe(samples.clone());
                grown.extend(window.increases());
                snapshot.instances.insert(url.clone(), samples);
            }
            Err(e) => reasons.push(format!("could not read the metrics: {e}")),
        }
    }
    let figures = reasons.is_empty().then(|| Figures::from_samples(grown));
    let criteria = figures.as_ref().map(|f| judge(f, args.budget_ms)).unwrap_or_default();
    let outcome = if !reasons.is_empty() {
        Outcome::CouldNotJudge
    } else if criteria.iter().any(|c| c.passed == Some(false)) {
        reasons = criteria
            .iter()
            .filter(|c| c.passed == Some(false))
            .map(|c| format!("{}: {} (threshold {})", c.name, c.measured, c.threshold))
            .collect();
        Outcome::Missed
    } else {
        Outcome::Within
    };
    let report = DailyReport {
        tool: "uat-orchestrator",
        command: "report",
        target,
        since,
        until,
        outcome,
        criteria,
        reasons,
        appointments,
        metrics_urls,
        metrics_since: previous.and_then(|p| p.scraped_at),
        success_rate: figures.as_ref().and_then(Figures::success_rate),
        p95_ms: figures.as_ref().and_then(Figures::p95).map(|d| d.as_secs_f64() * 1000.0),
        metrics: figures,
        metrics_snapshot: snapshot,
    };
    print!("{}", text(&report));
    let mut outcome = outcome;
    match write(&args.report_dir, &report) {
        Ok(path) => println!("Report: {}", path.display()),
        Err(e) => {
            eprintln!("could not write the report to {}: {e}", args.report_dir.display());
            outcome = Outcome::CouldNotJudge;
        }
    }
    report::append_step_summary(&markdown(&report));
    outcome
}

fn metrics_span(report: &DailyReport) -> String {
    match report.metrics_since {
        Some(t) => format!("since the earlier report of {}", t.format("%Y-%m-%d %H:%M UTC")),
        None => "the counters since each instance started; pass --previous to count from an earlier report".into(),
    }
}

fn statuses(by_status: &BTreeMap<String, u64>) -> String {
    if by_status.is_empty() {
        return "none".into();
    }
    by_status.iter().map(|(s, n)| format!("{n} {}", s.replace('_', "-"))).collect::<Vec<_>>().join(", ")
}

/// The report for people: a few lines.
pub fn text(report: &DailyReport) -> String {
    let mut out = format!(
        "{}\nTarget {}, from {} to {}\n",
        "Booking service: daily report".bold(),
        report.target,
        report.since.format("%Y-%m-%d %H:%M UTC"),
        report.until.format("%Y-%m-%d %H:%M UTC")
    );
    if let Some(a) = &report.appointments {
        out.push_str(&format!("  Bookings made: {} ({})\n", a.booked, statuses(&a.booked_by_status)));
        out.push_str(&format!("  Cancellations: {}\n", a.cancelled));
        out.push_str(&format!(
            "  Appointments due: {} ({}); no-shows: {}{}\n",
            a.due,
            statuses(&a.due_by_status),
            a.no_shows,
            a.no_show_rate.map_or(" (no attendance recorded yet)".into(), |r| format!(" ({r:.1}% of those recorded)"))
        ));
    }
    for c in &report.criteria {
        let mark = match c.passed {
            Some(true) => "✓".green(),
            Some(false) => "✗".red(),
            None => "not judged".yellow(),
        };
        out.push_str(&format!("  {mark} {:<22} {}  (threshold {})\n", c.name, c.measured, c.threshold));
    }
    if !report.criteria.is_empty() {
        out.push_str(&format!("  (metrics: {})\n", metrics_span(report)));
    }
    // A missed threshold's reason is the failed figure just printed.
    if report.outcome == Outcome::CouldNotJudge {
        for r in &report.reasons {
            out.push_str(&format!("  {} {r}\n", "•".yellow()));
        }
    }
    let verdict = match report.outcome {
        Outcome::Within => "WITHIN THE THRESHOLDS".green().bold(),
        Outcome::Missed => "A THRESHOLD MISSED".red().bold(),
        Outcome::CouldNotJudge => "COULD NOT JUDGE".yellow().bold(),
    };
    out.push_str(&format!("\n{verdict}\n"));
    out
}

pub fn markdown(report: &DailyReport) -> String {
    let verdict = match report.outcome {
        Outcome::Within => "✅ **within the thresholds**",
        Outcome::Missed => "❌ **a threshold missed**",
        Outcome::CouldNotJudge => "⚠️ **could not judge**",
    };
    let mut md = format!(
        "## Daily report: {verdict}\n\nTarget `{}`, {} to {}.\n\n",
        report.target,
        report.since.format("%Y-%m-%d %H:%M UTC"),
        report.until.format("%Y-%m-%d %H:%M UTC")
    );
    if let Some(a) = &report.appointments {
        md.push_str(&format!(
            "- Bookings made: {} ({})\n- Cancellations: {}\n- Appointments due: {} ({}); no-shows: {}\n\n",
            a.booked,
            statuses(&a.booked_by_status),
            a.cancelled,
            a.due,
            statuses(&a.due_by_status),
            a.no_shows
        ));
    }
    if !report.criteria.is_empty() {
        md.push_str(&format!("Metrics: {}.\n\n", metrics_span(report)));
        md.push_str(&Criterion::markdown_table(&report.criteria, "figure", "within"));
    }
    for r in &report.reasons {
        md.push_str(&format!("\n- {r}"));
    }
    md.push('\n');
    md
}

/// Writes `daily-report-<unix_ms>.json` into `dir`.
pub fn write(dir: &Path, report: &DailyReport) -> std::io::Result<PathBuf> {
    shared::report_file::write_json(dir, "daily-report", report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(status: &str, starts: &str, created: &str, updated: &str) -> Listed {
        Listed {
            status: status.into(),
            starts_at: DateTime::parse_from_rfc3339(starts).expect("time"),
            created_at: created.parse().expect("time"),
            updated_at: updated.parse().expect("time"),
        }
    }

    #[test]
    fn the_day_is_tallied_and_unknown_statuses_are_counted_by_name() {
        let since: DateTime<Utc> = "2027-01-10T00:00:00Z".parse().expect("time");
        let now: DateTime<Utc> = "2027-01-11T00:00:00Z".parse().expect("time");
        let list = [
            // Booked in the window, for later.
            listed("pending", "2027-01-20T10:00:00+01:00", "2027-01-10T08:00:00Z", "2027-01-10T08:00:00Z"),
            // Booked in the window and cancelled in it.
            listed("cancelled", "2027-01-21T10:00:00Z", "2027-01-10T09:00:00Z", "2027-01-10T12:00:00Z"),
            // Booked before, due in the window: one no-show, one completed, one a status from later.
            listed("no_show", "2027-01-10T10:00:00Z", "2027-01-01T09:00:00Z", "2027-01-10T11:00:00Z"),
            listed("completed", "2027-01-10T11:00:00Z", "2027-01-01T09:00:00Z", "2027-01-10T12:00:00Z"),
            listed("rescheduled_by_gremlins", "2027-01-10T12:00:00Z", "2027-01-01T09:00:00Z", "2027-01-02T09:00:00Z"),
            // Cancelled before the window.
            listed("cancelled", "2027-01-22T10:00:00Z", "2027-01-01T09:00:00Z", "2027-01-02T09:00:00Z"),
        ];
        let a = Appointments::tally(&list, since, now);
        assert_eq!(a.booked, 2);
        assert_eq!(a.booked_by_status, BTreeMap::from([("pending".into(), 1), ("cancelled".into(), 1)]));
        assert_eq!(a.cancelled, 1);
        assert_eq!(a.due, 3);
        assert_eq!(a.due_by_status["rescheduled_by_gremlins"], 1);
        assert_eq!(a.no_shows, 1);
        assert_eq!(a.no_show_rate, Some(50.0));
        assert_eq!(statuses(&a.due_by_status), "1 completed, 1 no-show, 1 rescheduled-by-gremlins");
    }
}
