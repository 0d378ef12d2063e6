//! The go/no-go criteria (README.md, "The verdict"), each with its threshold, measured value and
//! `passed`, and the triggers that force NO-GO whatever else passed.

use crate::probe::Tally;
use crate::record::{Criterion, Decision, Findings, Judgement, ScenarioReport};
use std::path::Path;

fn percent(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) * 100.0 / f64::from(whole))
}

/// Every check of one scenario passed: not judged when the scenario did not run, failed when it ran
/// and checked nothing.
fn all_passed(name: &str, passed: u32, total: u32, ran: bool) -> Criterion {
    let share = percent(passed, total);
    Criterion::new(
        name,
        "100%",
        share.map_or("not run".into(), |r| format!("{r:.0}% ({passed}/{total})")),
        ran.then(|| share.is_some_and(|r| r >= 100.0)),
    )
}

/// Staff ratings from `--feedback`: a JSON array of numbers from 1 to 5.
pub fn read_feedback(path: &Path) -> Result<Vec<f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read --feedback {}: {e}", path.display()))?;
    let ratings: Vec<f64> =
        serde_json::from_str(&text).map_err(|e| format!("--feedback must be a JSON array of ratings: {e}"))?;
    if ratings.is_empty() || ratings.iter().any(|r| !(1.0..=5.0).contains(r)) {
        return Err("--feedback ratings must be between 1 and 5, at least one".into());
    }
    Ok(ratings)
}

pub fn judge(
    scenarios: &[ScenarioReport],
    findings: &Findings,
    tally: &Tally,
    budget_ms: u64,
    email_timeout_secs: u64,
    feedback: Option<&[f64]>,
) -> Judgement {
    let ran = |name: &str| scenarios.iter().any(|s| s.name == name);
    let mut criteria = Vec::new();

    let rate = percent(findings.bookings_succeeded, findings.bookings_expected);
    criteria.push(Criterion::new(
        "booking success rate",
        ">= 95%",
        rate.map_or("no bookings attempted".into(), |r| {
            format!("{r:.1}% ({}/{})", findings.bookings_succeeded, findings.bookings_expected)
        }),
        rate.map(|r| r >= 95.0),
    ));
    let p95_ms = (!tally.latencies.is_empty()).then(|| tally.latencies.value_at_quantile(0.95) as f64 / 1000.0);
    criteria.push(Criterion::new(
        "p95 latency",
        format!("< {budget_ms} ms"),
        p95_ms.map_or("no requests".into(), |p| format!("{p:.1} ms over {} requests", tally.latencies.len())),
        p95_ms.map(|p| p < budget_ms as f64),
    ));
    criteria.push(Criterion::new(
        "server errors (5xx)",
        "0",
        tally.server_errors.len().to_string(),
        Some(tally.server_errors.is_empty()),
    ));
    criteria.push(Criterion::new(
        "transport errors",
        "0",
        tally.transport_errors.len().to_string(),
        Some(tally.transport_errors.is_empty()),
    ));
    criteria.push(all_passed("isolation", findings.isolation_passed, findings.isolation_checks, ran("isolation")));
    criteria.push(Criterion::new(
        "atomicity",
        "exactly one booking per contested slot",
        match findings.atomicity {
            Some(true) => "verified",
            Some(false) => "violated",
            None if ran("concurrent") => "not judged: the race did not take place (see its steps)",
            None => "not run",
        },
        if ran("concurrent") { Some(findings.atomicity == Some(true)) } else { None },
    ));
    // Named from --email-timeout-secs, the time the email scenario judged against.
    criteria.push(all_passed(
        &format!("email delivered within {email_timeout_secs} s"),
        findings.emails_in_time,
        findings.emails_expected,
        ran("email"),
    ));
    let satisfaction = feedback.map(|r| r.iter().sum::<f64>() / r.len() as f64);
    criteria.push(Criterion::new(
        "user satisfaction",
        ">= 4.0 / 5",
        satisfaction.map_or("not assessed: no --feedback given".into(), |s| {
            format!("{s:.2} / 5 from {} ratings", feedback.map_or(0, <[f64]>::len))
        }),
        satisfaction.map(|s| s >= 4.0),
    ));

    let mut reasons: Vec<String> = criteria
        .iter()
        .filter(|c| c.passed == Some(false))
        .map(|c| format!("{}: {} (threshold {})", c.name, c.measured, c.threshold))
        .collect();
    for s in scenarios.iter().filter(|s| !s.passed) {
        reasons.push(format!("scenario {} failed", s.name));
    }
    let triggers = [
        ("server error", &tally.server_errors),
        ("lost or duplicate booking", &findings.lost_or_duplicate),
        ("cross-clinic leak", &findings.leaks),
        ("token bypass", &findings.token_bypass),
        ("latency over 1 s", &tally.slow),
    ];
    for (name, seen) in triggers {
        if let Some(first) = seen.first() {
            reasons.push(format!(
                "no-go trigger, {name}: {first}{}",
                if seen.len() > 1 { format!(" (and {} more)", seen.len() - 1) } else { String::new() }
            ));
        }
    }
    // Not assessed: a criterion without its scenario or ratings, and every step skipped (the
    // database outage against a remote target, say), so a GO says what it did not check.
    let mut pending: Vec<String> = criteria.iter().filter(|c| c.passed.is_none()).map(|c| c.name.clone()).collect();
    for s in scenarios {
        pending.extend(s.steps.iter().filter(|st| st.skipped).map(|st| format!("{}: {}", s.name, st.title)));
    }
    Judgement { decision: if reasons.is_empty() { Decision::Go } else { Decision::NoGo }, criteria, reasons, pending }
}
