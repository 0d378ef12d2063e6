//! Terminal output in the shape the manual (README.md) shows: a header per scenario, numbered
//! steps with ✓/✗ and the measured figure, the criteria, the verdict and "N passed, N failed".
//! Colored on a terminal, plain otherwise.

use crate::record::{Decision, Judgement, Scenario, ScenarioReport, Step};
use crate::reporter::Reporter;
use colored::Colorize;
use std::path::Path;

/// Prints to stdout.
pub struct Terminal(());

impl Terminal {
    /// `colored` itself colors only a terminal, and follows `NO_COLOR` and `CLICOLOR_FORCE`.
    pub fn new() -> Self {
        Self(())
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for Terminal {
    fn banner(&self, target: &str, in_process: bool) {
        println!("{}", "UAT orchestrator: booking service acceptance".bold());
        let how = if in_process { " (started in-process)" } else { "" };
        println!("Target: {target}{how}");
    }

    fn environment(&self, ok: bool, detail: &str) {
        let mark = if ok { "✓".green() } else { "✗".red() };
        println!("\nEnvironment check: {mark} {detail}");
    }

    fn scenario(&self, s: Scenario) {
        println!("\n{} {}", format!("▶ {}", s.name()).bold().cyan(), s.title());
    }

    fn step(&self, step: &Step, total: usize) {
        let mark = match (step.skipped, step.passed) {
            (true, _) => "–".yellow(),
            (false, true) => "✓".green(),
            (false, false) => "✗".red(),
        };
        let total = total.max(step.index);
        println!("  [{}/{}] {} {} {}", step.index, total, step.title, mark, step.measured.dimmed());
    }

    fn summary(&self, scenarios: &[ScenarioReport], judgement: &Judgement) {
        println!("\n{}", "Go/no-go criteria".bold());
        for c in &judgement.criteria {
            let mark = match c.passed {
                Some(true) => "✓".green(),
                Some(false) => "✗".red(),
                None => "pending".yellow(),
            };
            println!("  {mark} {:<30} {:<42} threshold {}", c.name, c.measured, c.threshold);
        }
        for reason in &judgement.reasons {
            println!("  {} {reason}", "•".red());
        }
        let verdict_line = match judgement.decision {
            Decision::Go if judgement.pending.is_empty() => "VERDICT: GO".green().bold(),
            Decision::Go => format!("VERDICT: GO (pending: {})", judgement.pending.join(", ")).green().bold(),
            Decision::NoGo => "VERDICT: NO-GO".red().bold(),
        };
        println!("\n{verdict_line}");
        let passed = scenarios.iter().filter(|s| s.passed).count();
        println!("{passed} passed, {} failed", scenarios.len() - passed);
    }

    fn reports_written(&self, json: &Path, html: &Path) {
        println!("Reports: {} and {}", json.display(), html.display());
    }
}
