//! Terminal output as in the seed: a header per scenario, numbered steps with ✓/✗ and the measured
//! figure, the criteria, the verdict and "N passed, N failed". Colored on a terminal, plain
//! otherwise.

use crate::scenarios::{Scenario, ScenarioReport, Step};
use crate::verdict::{Decision, Verdict};
use colored::Colorize;
use std::io::IsTerminal;

pub fn init() {
    if !std::io::stdout().is_terminal() || std::env::var_os("NO_COLOR").is_some() {
        colored::control::set_override(false);
    }
}

pub fn banner(target: &str, in_process: bool) {
    println!("{}", "UAT orchestrator: booking service acceptance".bold());
    let how = if in_process {
        " (started in-process)"
    } else {
        ""
    };
    println!("Target: {target}{how}");
}

pub fn environment(ok: bool, detail: &str) {
    let mark = if ok { "✓".green() } else { "✗".red() };
    println!("\nEnvironment check: {mark} {detail}");
}

pub fn scenario_header(s: Scenario) {
    println!(
        "\n{} {}",
        format!("▶ {}", s.name()).bold().cyan(),
        s.title()
    );
}

pub fn step(step: &Step, total: usize) {
    let mark = match (step.skipped, step.passed) {
        (true, _) => "–".yellow(),
        (false, true) => "✓".green(),
        (false, false) => "✗".red(),
    };
    let total = total.max(step.index);
    println!(
        "  [{}/{}] {} {} {}",
        step.index,
        total,
        step.title,
        mark,
        step.measured.dimmed()
    );
}

pub fn summary(scenarios: &[ScenarioReport], verdict: &Verdict) {
    println!("\n{}", "Go/no-go criteria".bold());
    for c in &verdict.criteria {
        let mark = match c.passed {
            Some(true) => "✓".green(),
            Some(false) => "✗".red(),
            None => "pending".yellow(),
        };
        println!(
            "  {mark} {:<30} {:<42} threshold {}",
            c.name, c.measured, c.threshold
        );
    }
    for reason in &verdict.reasons {
        println!("  {} {reason}", "•".red());
    }
    let verdict_line = match verdict.decision {
        Decision::Go if verdict.pending.is_empty() => "VERDICT: GO".green().bold(),
        Decision::Go => format!("VERDICT: GO (pending: {})", verdict.pending.join(", "))
            .green()
            .bold(),
        Decision::NoGo => "VERDICT: NO-GO".red().bold(),
    };
    println!("\n{verdict_line}");
    let passed = scenarios.iter().filter(|s| s.passed).count();
    println!("{passed} passed, {} failed", scenarios.len() - passed);
}
