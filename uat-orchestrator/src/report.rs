//! The reports: JSON (everything), JUnit XML (one test case per scenario), a Markdown summary for
//! `$GITHUB_STEP_SUMMARY`, and an HTML page with the verdict, the criteria and a latency chart.

use crate::probe::Tally;
use crate::record::{Decision, Findings, Judgement, ScenarioReport, Step};
use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;
use shared::report_file::write_whole;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Counts per bucket, for the chart: `[upper bound in ms, count]`.
    pub histogram: Vec<(f64, u64)>,
}

impl Latency {
    pub fn from(tally: &Tally) -> Self {
        let h = &tally.latencies;
        let ms = |us: u64| us as f64 / 1000.0;
        let bounds = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, f64::INFINITY];
        let mut histogram = Vec::new();
        let mut below = 0;
        for upper in bounds {
            let upto = if upper.is_finite() { h.count_between(0, (upper * 1000.0) as u64) } else { h.len() };
            histogram.push((upper, upto.saturating_sub(below)));
            below = upto;
        }
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(p))
            }
        };
        Self {
            count: h.len(),
            min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            histogram,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub tool: &'static str,
    /// The tool's version.
    pub version: &'static str,
    pub target: &'a str,
    pub started_at: String,
    pub duration_ms: u128,
    pub verdict: &'a Judgement,
    pub scenarios: &'a [ScenarioReport],
    pub findings: &'a Findings,
    pub latency: Latency,
    pub server_errors: &'a [String],
    pub transport_errors: &'a [String],
    pub slow_requests: &'a [String],
    /// What the run made and could not remove (empty when it tidied up).
    pub left_behind: &'a [String],
}

/// Writes `uat-report-<unix_ms>.json` and `.html` into `dir`; returns their paths.
pub fn write(dir: &Path, report: &Report<'_>) -> std::io::Result<(PathBuf, PathBuf)> {
    let json = write_json(dir, report)?;
    let html = json.with_extension("html");
    write_whole(&html, html_page(report).as_bytes())?;
    Ok((json, html))
}

/// Writes `report` as `uat-report-<unix_ms>.json` in `dir`, making it; returns its path.
fn write_json(dir: &Path, report: &impl Serialize) -> std::io::Result<PathBuf> {
    shared::report_file::write_json(dir, "uat-report", report)
}

/// One test case per scenario, then the verdict's: a NO-GO that no scenario explains (the p95, a
/// 5xx during clean-up, satisfaction) still fails the file.
pub fn junit(path: &Path, scenarios: &[ScenarioReport], judgement: &Judgement) -> std::io::Result<()> {
    let mut suite = TestSuite::new("uat-orchestrator");
    for s in scenarios {
        let failed: Vec<_> = s.steps.iter().filter(|st| !st.passed).collect();
        let skipped: Vec<_> = s.steps.iter().filter(|st| st.skipped).collect();
        let status = if failed.is_empty() && skipped.is_empty() {
            TestCaseStatus::success()
        } else if failed.is_empty() {
            // Not a success: part of the scenario was not checked (its output lists what was).
            let mut status = TestCaseStatus::skipped();
            status.set_message(format!(
                "{} of {} steps skipped: {}",
                skipped.len(),
                s.steps.len(),
                skipped
                    .iter()
                    .map(|st| format!("[{}] {}: {}", st.index, st.title, st.measured))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            status
        } else {
            // A step that could not run is an error; a check that did not hold is a failure.
            let kind = if failed.iter().any(|st| st.error) { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_message(
                failed
                    .iter()
                    .map(|st| format!("[{}] {}: {}", st.index, st.title, st.measured))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            status
        };
        let mut case = TestCase::new(s.name, status);
        case.set_classname("uat").set_time(Duration::from_millis(s.duration_ms as u64));
        let out: Vec<String> = s
            .steps
            .iter()
            .map(|st| format!("[{}] {} {} {}", st.index, st.title, outcome(st, "ok", "FAILED", "skipped"), st.measured))
            .collect();
        case.set_system_out(out.join("\n"));
        suite.add_test_case(case);
    }
    let status = match judgement.decision {
        Decision::Go => TestCaseStatus::success(),
        Decision::NoGo => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("NO-GO: {}", judgement.reasons.join("; ")));
            status
        }
    };
    let mut verdict = TestCase::new("verdict", status);
    verdict.set_classname("uat");
    suite.add_test_case(verdict);
    let mut report = JunitReport::new("uat");
    report.add_test_suite(suite);
    write_junit(path, &report)
}

/// The JSON report of a run that could not judge, `uat-report-<unix_ms>.json` in `dir` like any
/// other, so that a CI reading the newest report reads this run's.
pub fn write_could_not_judge(dir: &Path, why: &str, left_behind: &[String]) -> std::io::Result<PathBuf> {
    let report = serde_json::json!({
        "tool": "uat-orchestrator",
        "version": env!("CARGO_PKG_VERSION"),
        "verdict": {"decision": "COULD-NOT-JUDGE", "reasons": [why]},
        "left_behind": left_behind,
    });
    write_json(dir, &report)
}

/// The JUnit report of a run that could not judge (a bad setting, a target down, an interruption):
/// one erroring case that says why, so a CI reading the file sees this run, not an earlier one's.
pub fn junit_could_not_judge(path: &Path, why: &str) -> std::io::Result<()> {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status.set_message(format!("could not judge: {why}"));
    let mut case = TestCase::new("could_not_judge", status);
    case.set_classname("uat");
    let mut suite = TestSuite::new("uat-orchestrator");
    suite.add_test_case(case);
    let mut report = JunitReport::new("uat");
    report.add_test_suite(suite);
    write_junit(path, &report)
}

/// A step's outcome in a report's words: passed, failed, or skipped (which does not fail its
/// scenario, yet was not checked).
fn outcome<'w>(step: &Step, passed: &'w str, failed: &'w str, skipped: &'w str) -> &'w str {
    match (step.skipped, step.passed) {
        (true, _) => skipped,
        (false, true) => passed,
        (false, false) => failed,
    }
}

/// Writes a JUnit report, creating its folder.
pub fn write_junit(path: &Path, report: &JunitReport) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_whole(path, report.to_string().map_err(std::io::Error::other)?.as_bytes())
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY` when it is set (in a GitHub Actions job).
pub fn append_step_summary(markdown: &str) {
    let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    use std::io::Write;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&summary)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = appended {
        eprintln!("could not append to $GITHUB_STEP_SUMMARY: {e}");
    }
}

pub fn markdown(report: &Report<'_>) -> String {
    let verdict = match report.verdict.decision {
        Decision::Go => "✅ **GO**",
        Decision::NoGo => "❌ **NO-GO**",
    };
    let mut md = format!(
        "## UAT: {verdict}\n\nTarget `{}`\n\n| criterion | threshold | measured | passed |\n|---|---|---|---|\n",
        report.target
    );
    for c in &report.verdict.criteria {
        let passed = match c.passed {
            Some(true) => "✅",
            Some(false) => "❌",
            None => "pending",
        };
        md.push_str(&format!("| {} | {} | {} | {passed} |\n", c.name, c.threshold, c.measured));
    }
    for r in &report.verdict.reasons {
        md.push_str(&format!("\n- {r}"));
    }
    md.push_str("\n\n<details><summary>Scenarios</summary>\n\n");
    for s in report.scenarios {
        md.push_str(&format!("**{}** {}\n\n", s.name, if s.passed { "✅" } else { "❌" }));
        for st in &s.steps {
            md.push_str(&format!("- [{}] {} {} {}\n", st.index, st.title, outcome(st, "✓", "✗", "–"), st.measured));
        }
        md.push('\n');
    }
    md.push_str("</details>\n");
    md
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_page(report: &Report<'_>) -> String {
    let (verdict, colour) = match report.verdict.decision {
        Decision::Go => ("GO", "#1a7f37"),
        Decision::NoGo => ("NO-GO", "#cf222e"),
    };
    let mut rows = String::new();
    for c in &report.verdict.criteria {
        let passed = match c.passed {
            Some(true) => "<td class=ok>passed</td>",
            Some(false) => "<td class=bad>failed</td>",
            None => "<td class=pending>pending</td>",
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td>{passed}</tr>",
            escape(&c.name),
            escape(&c.threshold),
            escape(&c.measured)
        ));
    }
    let reasons: String = report.verdict.reasons.iter().map(|r| format!("<li>{}</li>", escape(r))).collect();
    let mut scenarios = String::new();
    for s in report.scenarios {
        scenarios.push_str(&format!("<h3>{} {}</h3><ol>", escape(s.name), if s.passed { "✓" } else { "✗" }));
        for st in &s.steps {
            let class = outcome(st, "ok", "bad", "skipped");
            let mark = if st.skipped { "– " } else { "" };
            scenarios.push_str(&format!(
                "<li class={class}>{mark}{} — {}</li>",
                escape(&st.title),
                escape(&st.measured)
            ));
        }
        scenarios.push_str("</ol>");
    }
    // The latency histogram as an inline SVG bar chart.
    let hist = &report.latency.histogram;
    let most = hist.iter().map(|(_, c)| *c).max().unwrap_or(1).max(1);
    let width = 48;
    let mut bars = String::new();
    for (i, (upper, count)) in hist.iter().enumerate() {
        let h = (*count as f64 / most as f64 * 160.0).round();
        let x = 40 + i * width;
        let label = if upper.is_finite() { format!("≤{upper}") } else { "more".into() };
        bars.push_str(&format!(
            "<rect x={x} y={} width={} height={h} fill='#0969da'><title>{count} requests</title></rect>\
             <text x={} y=196 font-size=10 text-anchor=middle>{label}</text><text x={} y={} font-size=10 text-anchor=middle>{count}</text>",
            180.0 - h,
            width - 6,
            x + (width - 6) / 2,
            x + (width - 6) / 2,
            175.0 - h
        ));
    }
    let l = &report.latency;
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>\
<title>UAT report: {verdict}</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328}}\
.verdict{{font-size:2.5rem;font-weight:700;color:{colour}}}table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #d0d7de;padding:.4rem;text-align:left}}\
.ok{{color:#1a7f37}}.bad{{color:#cf222e}}.pending,.skipped{{color:#9a6700}}</style></head><body>\
<h1>Booking service UAT</h1><p class=verdict>{verdict}</p><p>Target <code>{target}</code>, started {started}, {duration} ms.</p>\
<ul>{reasons}</ul><h2>Go/no-go criteria</h2><table><tr><th>criterion</th><th>threshold</th><th>measured</th><th>result</th></tr>{rows}</table>\
<h2>Latency</h2><p>{count} requests: p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms.</p>\
<svg role=img aria-label='latency histogram' width={svg_width} height=210 xmlns='http://www.w3.org/2000/svg'>{bars}\
<text x=0 y=205 font-size=10>ms</text></svg><h2>Scenarios</h2>{scenarios}</body></html>",
        target = escape(report.target),
        started = escape(&report.started_at),
        duration = report.duration_ms,
        count = l.count,
        p50 = l.p50_ms,
        p95 = l.p95_ms,
        p99 = l.p99_ms,
        max = l.max_ms,
        svg_width = 60 + hist.len() * width,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(index: usize, passed: bool, skipped: bool) -> Step {
        let title = format!("step {index}");
        Step { index, title, passed, measured: format!("measured {index}"), error: false, skipped }
    }

    /// The error-handling scenario against a remote target: its outage steps are skipped.
    fn report_with_skipped_steps(dir: &Path) -> (PathBuf, String, String) {
        let scenarios = [ScenarioReport {
            name: "error-handling",
            title: "Bad input and a lost database are handled",
            passed: true,
            duration_ms: 5,
            steps: vec![step(1, true, false), step(2, true, true)],
        }];
        let verdict =
            Judgement { decision: Decision::Go, criteria: Vec::new(), reasons: Vec::new(), pending: Vec::new() };
        let latency = Latency {
            count: 0,
            min_ms: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            histogram: Vec::new(),
        };
        let report = Report {
            tool: "uat-orchestrator",
            version: "0",
            target: "http://target",
            started_at: String::new(),
            duration_ms: 5,
            verdict: &verdict,
            scenarios: &scenarios,
            findings: &Findings::default(),
            latency,
            server_errors: &[],
            transport_errors: &[],
            slow_requests: &[],
            left_behind: &[],
        };
        let junit_path = dir.join("junit.xml");
        junit(&junit_path, &scenarios, &verdict).expect("JUnit written");
        (junit_path, markdown(&report), html_page(&report))
    }

    #[test]
    fn skipped_steps_are_reported_as_skipped_not_passed() {
        let dir = tempfile::tempdir().expect("dir");
        let (junit, markdown, html) = report_with_skipped_steps(dir.path());
        let xml = std::fs::read_to_string(junit).expect("read");
        assert!(xml.contains("<skipped") && xml.contains("1 of 2 steps skipped: [2] step 2: measured 2"), "{xml}");
        assert!(xml.contains("[1] step 1 ok measured 1") && xml.contains("[2] step 2 skipped measured 2"), "{xml}");
        assert!(markdown.contains("- [1] step 1 ✓ measured 1") && markdown.contains("- [2] step 2 – measured 2"));
        assert!(html.contains("<li class=ok>step 1") && html.contains("<li class=skipped>– step 2"), "{html}");
    }

    /// A NO-GO that no scenario explains (here, the p95 alone) fails the JUnit file too.
    #[test]
    fn a_no_go_fails_the_junit_file_whatever_the_scenarios() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("junit.xml");
        let scenarios = [ScenarioReport {
            name: "basic",
            title: "A voice booking",
            passed: true,
            duration_ms: 5,
            steps: vec![step(1, true, false)],
        }];
        let reasons = vec!["p95 latency: 812.0 ms over 40 requests (threshold < 500 ms)".to_owned()];
        let no_go = Judgement { decision: Decision::NoGo, criteria: Vec::new(), reasons, pending: Vec::new() };
        junit(&path, &scenarios, &no_go).expect("written");
        let xml = std::fs::read_to_string(&path).expect("read");
        assert!(xml.contains("testcase name=\"verdict\"") && xml.contains("<failure"), "{xml}");
        assert!(xml.contains("NO-GO: p95 latency: 812.0 ms"), "{xml}");
    }

    /// A report is written whole to a new file and renamed into place, never truncated and written
    /// again: whoever holds the previous file (here, a second name of it) still reads it whole.
    #[test]
    fn a_report_replaces_the_previous_file_instead_of_rewriting_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("junit.xml");
        std::fs::write(&path, "previous").expect("a previous report");
        let held = dir.path().join("held.xml");
        std::fs::hard_link(&path, &held).expect("a second name");
        let go = Judgement { decision: Decision::Go, criteria: Vec::new(), reasons: Vec::new(), pending: Vec::new() };
        junit(&path, &[], &go).expect("written");
        assert!(std::fs::read_to_string(&path).expect("read").contains("<testsuites"));
        assert_eq!(std::fs::read_to_string(&held).expect("read"), "previous");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2, "no temporary file left");
    }
}
