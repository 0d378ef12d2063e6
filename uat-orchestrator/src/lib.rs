//! `uat-orchestrator`: drives the booking service the way the voice agent and the patient do,
//! through five scenarios, and decides go or no-go from what it measured.

pub mod cli;
mod output;
pub mod probe;
pub mod report;
pub mod scenarios;
pub mod target;
pub mod verdict;

use cli::{Cli, ScenarioChoice};
use probe::Probe;
use reqwest::Method;
use scenarios::{run_scenario, Findings, Run, Scenario};
use std::time::{Duration, Instant};
use target::Target;
use verdict::Decision;

/// How the run ended: the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Go,
    NoGo,
    CouldNotJudge,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Self::Go => 0,
            Self::NoGo => 1,
            Self::CouldNotJudge => 2,
        }
    }
}

fn selected(choice: ScenarioChoice) -> Vec<Scenario> {
    match choice {
        ScenarioChoice::All => Scenario::ALL.to_vec(),
        ScenarioChoice::Basic => vec![Scenario::Basic],
        ScenarioChoice::Concurrent => vec![Scenario::Concurrent],
        ScenarioChoice::Isolation => vec![Scenario::Isolation],
        ScenarioChoice::ErrorHandling => vec![Scenario::ErrorHandling],
        ScenarioChoice::Email => vec![Scenario::Email],
    }
}

/// Waits up to `patience` for `/readyz` to answer 200.
async fn environment_check(probe: &Probe, patience: Duration) -> Result<String, String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < patience {
        match probe
            .send_during_outage("readyz", probe.request(Method::GET, "/readyz", None))
            .await
        {
            Ok(r) if r.status == 200 => return Ok(format!("ready ({} ms)", r.latency.as_millis())),
            Ok(r) => last = format!("/readyz answered {}", r.status),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("the target is not ready: {last}"))
}

pub async fn run(cli: Cli) -> Outcome {
    output::init();
    let feedback = match cli
        .feedback
        .as_deref()
        .map(verdict::read_feedback)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("could not judge: {e}");
            return Outcome::CouldNotJudge;
        }
    };
    let target = match Target::start(&cli).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("could not judge: {e}");
            return Outcome::CouldNotJudge;
        }
    };
    output::banner(&target.base, target.is_in_process());
    let probe = Probe::new(&target.base);
    match environment_check(&probe, Duration::from_secs(10)).await {
        Ok(detail) => output::environment(true, &detail),
        Err(why) => {
            output::environment(false, &why);
            eprintln!("could not judge: {why}");
            target.stop().await;
            return Outcome::CouldNotJudge;
        }
    }
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut findings = Findings::default();
    let mut reports = Vec::new();
    let scenarios = selected(cli.scenario);
    let all = async {
        for scenario in scenarios {
            let mut run = Run {
                target: &target,
                probe: &probe,
                findings: &mut findings,
                concurrency: cli.concurrency,
                budget: Duration::from_millis(cli.budget_ms),
                email_timeout: Duration::from_secs(cli.email_timeout_secs),
                mail: target.mail(),
            };
            reports.push(run_scenario(scenario, &mut run).await);
        }
    };
    let interrupted = tokio::select! {
        _ = all => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    if interrupted {
        eprintln!("\ninterrupted: cleaning up the test clinics");
        scenarios::remove_leftovers(&target, &probe).await;
        target.stop().await;
        return Outcome::CouldNotJudge;
    }

    let tally = probe.snapshot();
    let verdict = verdict::judge(
        &reports,
        &findings,
        &tally,
        cli.budget_ms,
        feedback.as_deref(),
    );
    output::summary(&reports, &verdict);
    let report = report::Report {
        tool: "uat-orchestrator",
        target: &target.base,
        started_at,
        duration_ms: started.elapsed().as_millis(),
        verdict: &verdict,
        scenarios: &reports,
        findings: &findings,
        latency: report::Latency::from(&tally),
        server_errors: &tally.server_errors,
        transport_errors: &tally.transport_errors,
        slow_requests: &tally.slow,
    };
    let mut wrote_all = true;
    match report::write(&cli.report_dir, &report) {
        Ok((json, html)) => println!("Reports: {} and {}", json.display(), html.display()),
        Err(e) => {
            eprintln!(
                "could not write the reports to {}: {e}",
                cli.report_dir.display()
            );
            wrote_all = false;
        }
    }
    if let Some(path) = &cli.junit {
        if let Err(e) = report::junit(path, &reports) {
            eprintln!("could not write the JUnit report {}: {e}", path.display());
            wrote_all = false;
        }
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .and_then(|mut f| f.write_all(report::markdown(&report).as_bytes()));
        if let Err(e) = appended {
            eprintln!("could not append to $GITHUB_STEP_SUMMARY: {e}");
        }
    }
    target.stop().await;
    match (verdict.decision, wrote_all) {
        (Decision::NoGo, _) => Outcome::NoGo,
        (Decision::Go, true) => Outcome::Go,
        (Decision::Go, false) => Outcome::CouldNotJudge,
    }
}
