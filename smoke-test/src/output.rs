//! What a person reads: one line per booking (as the README shows it), the verification block and the
//! verdict. Colored on a terminal, plain text otherwise (pipes, CI logs, files).

use crate::race::{Answer, Sample};
use crate::report::{Check, Report, Verdict};
use crate::stats::ms;
use colored::Colorize;

pub fn booking_line(s: &Sample) -> String {
    let at = format!("[slot {} #{}]", s.slot + 1, s.worker + 1);
    let took = ms(s.from_release.as_micros() as u64);
    match &s.answer {
        Answer::Created { confirmation_code, service_ms, .. } => format!(
            "{at} {} in {took} ms (service {service_ms:.1} ms) code {confirmation_code}",
            "SUCCESS".green().bold()
        ),
        Answer::Conflict => format!("{at} {} in {took} ms", "CONFLICT (expected)".yellow()),
        Answer::Unexpected { status, error } => {
            format!("{at} {} {status} {error} in {took} ms", "FAILED".red().bold())
        }
        Answer::Transport(e) => format!("{at} {} transport error in {took} ms: {e}", "FAILED".red().bold()),
    }
}

pub fn check_line(c: &Check) -> String {
    let mark = if c.passed { "PASS".green().bold() } else { "FAIL".red().bold() };
    format!("  {mark} {:<34} {}", c.name, c.detail)
}

/// The verification block, the figures and the verdict.
pub fn summary(report: &Report, report_path: Option<&std::path::Path>) -> String {
    let mut out = String::new();
    if !report.checks.is_empty() {
        out.push_str(&format!("\n{}\n", "Verification".bold()));
        for c in &report.checks {
            out.push_str(&check_line(c));
            out.push('\n');
        }
    }
    if !report.latency.is_empty() {
        out.push_str(&format!("\n{}\n", "Latency".bold()));
        for (name, label) in [
            ("from_release", "from the common release to the last byte"),
            ("from_intended", "from the intended send time to the last byte"),
            ("per_request", "per request, own send to last byte (uncorrected)"),
            ("service", "the service's own latency_ms (201 answers)"),
        ] {
            if let Some(s) = report.latency.get(name) {
                out.push_str(&format!("  {label}:\n    {}\n", s.line()));
            }
        }
        out.push_str(&format!("  throughput: {:.1} answers/s over {:.0} ms\n", report.throughput_rps, report.wall_ms));
    }
    if let Some(l) = &report.load {
        out.push_str(&format!(
            "  load: {} planned at {}/s for {}s; {} answered, {} created; send rate {:.1}/s, success rate {:.1}/s; {} late (> {} ms), max send delay {} ms\n",
            l.planned, l.target_rate, l.duration_s, l.completed, l.created, l.send_rate, l.success_rate, l.late, l.late_after_ms, ms(l.max_send_delay_us)
        ));
        for (class, n) in &l.errors_by_class {
            out.push_str(&format!("  errors: {n} × {class}\n"));
        }
    }
    if !report.cleanup.is_empty() {
        out.push_str(&format!("\ncleanup: {}\n", report.cleanup));
    }
    if let Some(p) = report_path {
        out.push_str(&format!("report: {}\n", p.display()));
    }
    let verdict = match report.verdict {
        Verdict::Pass => "PASS".green().bold(),
        Verdict::Fail => "FAIL".red().bold(),
        Verdict::CouldNotJudge => "COULD NOT JUDGE".magenta().bold(),
    };
    let passed = report.checks.iter().filter(|c| c.passed).count();
    out.push_str(&format!(
        "\n{verdict} (exit {}): {}\n{passed} passed, {} failed\n",
        report.exit_code,
        report.reason.as_deref().unwrap_or(match report.mode.as_str() {
            "load" => "every booking created within budget and on schedule",
            _ => "exactly one booking per slot, every other request rejected, within budget",
        }),
        report.checks.len() - passed
    ));
    out
}
