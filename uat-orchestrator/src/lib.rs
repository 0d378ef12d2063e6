//! `uat-orchestrator`: drives the booking service the way the voice agent and the patient do,
//! through five release scenarios (and a notifications one run on its own), and decides go or no-go
//! from what it measured; `canary` judges a staged rollout and `report` the last day's figures.

pub mod canary;
pub mod cli;
pub mod criteria;
pub mod daily;
pub mod metrics;
mod output;
pub mod plain;
pub mod probe;
pub mod record;
pub mod report;
pub mod reporter;
pub mod scenarios;
pub mod target;

use cli::{Cli, Command};
use output::Terminal;
use probe::Probe;
use record::{Decision, Findings, Scenario};
use reporter::Reporter;
use reqwest::Method;
use scenarios::{run_scenario, Run};
use shared::Role;
use std::time::{Duration, Instant};
use target::Target;

/// How the run ended, as the process exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Go,
    NoGo,
    CouldNotJudge,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Self::Go => 0,
            Self::NoGo => 1,
            Self::CouldNotJudge => 2,
        }
    }
}

/// Waits up to `patience` for `/readyz` to answer 200 with the service's health JSON (a 200 from
/// something else, a web site behind the URL, is not the booking service being ready).
async fn environment_check(probe: &Probe, patience: Duration) -> Result<String, String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < patience {
        let asked = probe.send_uncounted("readyz", probe.request(Method::GET, "/readyz", None));
        // A target that takes the connection and never answers is waited for `patience` in all.
        let remaining = patience.saturating_sub(started.elapsed());
        let Ok(answered) = tokio::time::timeout(remaining, asked).await else {
            // Cut short by the patience's end, a try says nothing beside an earlier answer.
            if last.is_empty() {
                last = format!("/readyz did not answer within {patience:?}");
            }
            break;
        };
        match answered {
            Ok(r) if r.status == 200 && r.body["status"].is_string() => {
                return Ok(format!("ready ({} ms)", r.latency.as_millis()))
            }
            Ok(r) if r.status == 200 => {
                return Err("/readyz answered 200 without the booking service's health JSON: is --target the \
                            booking service?"
                    .into())
            }
            Ok(r) => last = format!("/readyz answered {}", r.status),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500).min(patience.saturating_sub(started.elapsed()))).await;
    }
    Err(format!("the target is not ready: {last}"))
}

/// What a remote target must allow before the scenarios run, checked with one request per
/// token: its refusal is the run's configuration (a wrong key or token, a Vapi signature the run
/// cannot make, no mail sink for the email scenario), not the service failing: could not judge.
/// The in-process service is the run's own.
async fn configuration_check(target: &Target, probe: &Probe, scenarios: &[Scenario]) -> Result<(), String> {
    if target.is_in_process() {
        return Ok(());
    }
    if scenarios.contains(&Scenario::Notifications) {
        return Err("the notifications scenario runs only in-process (without --target): its Twilio and webhook \
                    endpoint are the run's own"
            .into());
    }
    if scenarios.contains(&Scenario::Email) && target.mail().is_none() {
        return Err("the email scenario needs a mail sink against a remote target: pass --smtp-listen and point \
                    the target's SMTP_URL at it"
            .into());
    }
    // Given clinics' tokens (the second only serves isolation, and must be given for it), else
    // the ones the run mints with the key.
    let clinics = if scenarios.contains(&Scenario::Isolation) { 2 } else { 1 };
    let mut tokens = Vec::new();
    for (index, which) in [(0, "first clinic's"), (1, "second clinic's")].into_iter().take(clinics) {
        if let Some(c) = target.given_clinic(index)? {
            tokens.extend([
                (format!("the {which} admin token"), c.admin.clone(), Role::Admin),
                (format!("the {which} staff token"), c.staff.clone(), Role::Staff),
                (format!("the {which} agent token"), c.agent.clone(), Role::Agent),
            ]);
        }
    }
    if tokens.is_empty() {
        let org = Some(uuid::Uuid::new_v4());
        for role in [Role::Admin, Role::Agent] {
            let minted = target.token(role, org).unwrap_or_default();
            tokens.push((format!("the {} token the run makes with --jwt-secret", role.as_str()), minted, role));
        }
    }
    for (which, token, role) in tokens {
        // A request that changes nothing and that the role may make but the roles below it may
        // not (a staff token given as the admin's is refused here, not when a scenario sets up);
        // the agent's passes the Vapi route's signature check, when the target has one.
        let request = match role {
            Role::Agent => probe
                .request(Method::POST, "/api/vapi/tools", Some(&token))
                .json(&serde_json::json!({"message": {"type": "status-update"}})),
            Role::Staff => probe.request(Method::GET, "/api/appointments?limit=1", Some(&token)),
            _ => probe.request(Method::GET, "/api/settings", Some(&token)),
        };
        let reply = probe.send_uncounted("credentials", request).await?;
        if reply.status == 403 {
            let said = reply.body["error"]["message"].as_str().unwrap_or_default().to_owned();
            return Err(format!(
                "the target refused {which} (403: {said}): is it a token of the {} role?",
                role.as_str()
            ));
        }
        if reply.status == 401 {
            let said = reply.body["error"]["message"].as_str().unwrap_or_default().to_owned();
            let why = if said.starts_with("invalid Vapi signature") {
                "the target checks a Vapi signature (VAPI_HMAC_SECRET) that this run cannot make"
            } else {
                "check --jwt-secret (and --jwt-issuer and --jwt-audience against the target's JWT_ISSUER and JWT_AUDIENCE) or the given tokens"
            };
            return Err(format!("the target refused {which} (401: {said}): {why}"));
        }
        // The service answers JSON, errors included: an answer without it is from something else
        // behind the URL (a web site, a proxy's error page), which no scenario could judge. A
        // failing service (a 5xx with the API's error body) is left to the scenarios: NO-GO.
        if reply.body.is_null() {
            return Err(format!(
                "{which} was answered {} without JSON: is --target the booking service?",
                reply.status
            ));
        }
    }
    Ok(())
}

/// Runs the command, or without one the selected scenarios, printing to the terminal. Returns the
/// process exit code.
pub async fn main(cli: Cli) -> u8 {
    let terminal = Terminal::new();
    match cli.command.clone() {
        Some(Command::Canary(args)) => canary::run(args).await.code(),
        Some(Command::Report(args)) => daily::run(args).await.code(),
        None => run_with(cli, &terminal).await.code(),
    }
}

/// Whether the reports of a run can be written where its flags say, checked before it starts.
pub(crate) fn reports_writable(dir: &std::path::Path, junit: Option<&std::path::Path>) -> Result<(), String> {
    use shared::report_file::{can_write, can_write_in};
    can_write_in(dir).map_err(|e| format!("cannot write reports in {}: {e}", dir.display()))?;
    junit.map_or(Ok(()), |path| can_write(path).map_err(|e| format!("cannot write {}: {e}", path.display())))
}

/// Runs the selected scenarios, printing to the terminal.
pub async fn run(cli: Cli) -> Exit {
    run_with(cli, &Terminal::new()).await
}

/// A command line the parser refuses (`--concurrency 1`, an unknown scenario): its message and
/// exit 2, as clap gives them, after the JUnit file named by `--junit` is rewritten to say the
/// run could not judge, so an earlier run's result does not stand there as this one's.
pub fn refused(raw: &[std::ffi::OsString], e: clap::Error) -> ! {
    // Help and the version are printed to stdout: no refusal.
    if e.use_stderr() {
        if let Some(path) = shared::report_file::flag_path(raw, "--junit") {
            let why = shared::report_file::refusal(&e.render().to_string());
            if let Err(error) = report::junit_could_not_judge(&path, &why) {
                eprintln!("could not write the JUnit report {}: {error}", path.display());
            }
        }
    }
    e.exit()
}

/// Says why the run could not judge (and what it left behind), and with `--junit` writes it there
/// (replacing an earlier run's file, which a CI would otherwise read as this run's).
fn could_not_judge(cli: &Cli, why: &str) -> Exit {
    could_not_judge_leaving(cli, why, &[])
}

fn could_not_judge_leaving(cli: &Cli, why: &str, left_behind: &[String]) -> Exit {
    eprintln!("could not judge: {why}");
    match report::write_could_not_judge(&cli.report_dir, why, left_behind) {
        Ok(path) => eprintln!("report: {}", path.display()),
        Err(e) => eprintln!("could not write the report to {}: {e}", cli.report_dir.display()),
    }
    if let Some(path) = &cli.junit {
        if let Err(e) = report::junit_could_not_judge(path, why) {
            eprintln!("could not write the JUnit report {}: {e}", path.display());
        }
    }
    Exit::CouldNotJudge
}

/// Runs the selected scenarios, telling `reporter` what happens; the reports are written either way.
pub async fn run_with(cli: Cli, reporter: &dyn Reporter) -> Exit {
    let interrupts = shared::interrupt::Interrupts::listen();
    if let Err(e) = reports_writable(&cli.report_dir, cli.junit.as_deref()) {
        return could_not_judge(&cli, &e);
    }
    if let Some(credential) = cli.stray_credential() {
        return could_not_judge(
            &cli,
            &format!(
                "{credential} is given without --target: a target was meant, and a run in-process would not test it"
            ),
        );
    }
    for (unused, why) in [
        (cli.unused_tokens(), "with --jwt-secret the run makes clinics of its own"),
        (cli.unused_claims(), "only tokens minted with --jwt-secret carry them"),
    ] {
        if !unused.is_empty() {
            eprintln!("note: {} not used: {why}", unused.join(", "));
        }
    }
    // Until this run's JUnit report replaces it, the file says the run did not finish: a run
    // killed outright (SIGKILL, a runner's timeout) leaves that, never an earlier verdict.
    if let Some(path) = &cli.junit {
        if let Err(e) = report::junit_could_not_judge(path, "the run did not finish: it was stopped before its end") {
            return could_not_judge(&cli, &format!("cannot write {}: {e}", path.display()));
        }
    }
    let feedback = match cli.feedback.as_deref().map(criteria::read_feedback).transpose() {
        Ok(f) => f,
        Err(e) => return could_not_judge(&cli, &e.to_string()),
    };
    let target = match Target::start(&cli).await {
        Ok(t) => t,
        Err(e) => return could_not_judge(&cli, &format!("{e:#}")),
    };
    reporter.banner(&target.base, target.is_in_process());
    let probe = Probe::new(&target.base);
    match environment_check(&probe, Duration::from_secs(10)).await {
        Ok(detail) => reporter.environment(true, &detail),
        Err(why) => {
            reporter.environment(false, &why);
            target.stop().await;
            return could_not_judge(&cli, &why);
        }
    }
    if let Err(why) = configuration_check(&target, &probe, &cli.scenario.scenarios()).await {
        target.stop().await;
        return could_not_judge(&cli, &why);
    }
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut findings = Findings::default();
    let mut reports = Vec::new();
    let scenarios = cli.scenario.scenarios();
    let leftovers = scenarios::Leftovers::default();
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
                reporter,
                leftovers: &leftovers,
            };
            reports.push(run_scenario(scenario, &mut run).await);
        }
    };
    let interrupted = tokio::select! {
        _ = all => None,
        signal = interrupts.nth(1) => Some(signal),
    };
    // A scenario that stopped after creating its clinic (its provider refused, say) leaves it
    // listed; so does a removal that failed or was interrupted. A second signal gives the removal
    // up: what it would have removed is left behind, and said so.
    if let Some(signal) = interrupted {
        eprintln!("\ninterrupted ({signal}): cleaning up the test clinics (a second signal gives up)");
    }
    let left = tokio::select! {
        left = scenarios::remove_leftovers(&target, &probe, &leftovers) => left,
        signal = interrupts.nth(2) => {
            eprintln!("cleaning up given up ({signal})");
            leftovers.listed()
        }
    };
    if !left.is_empty() {
        eprintln!("could not remove what the run made: {}", left.join(", "));
    }
    if let Some(signal) = interrupted {
        target.stop().await;
        return could_not_judge_leaving(&cli, &format!("interrupted ({signal})"), &left);
    }

    let tally = probe.snapshot();
    let judgement =
        criteria::judge(&reports, &findings, &tally, cli.budget_ms, cli.email_timeout_secs, feedback.as_deref());
    // A signal heard while removing (CI cancelling the job) withholds a GO, whose test data may have
    // been given up on; a NO-GO stands, with its reasons.
    let heard = interrupts.heard().filter(|_| matches!(judgement.decision, Decision::Go));
    if let Some(signal) = heard {
        target.stop().await;
        return could_not_judge_leaving(&cli, &format!("interrupted while removing the test data ({signal})"), &left);
    }
    reporter.summary(&reports, &judgement);
    let report = report::Report {
        tool: "uat-orchestrator",
        version: env!("CARGO_PKG_VERSION"),
        target: &target.base,
        started_at,
        duration_ms: started.elapsed().as_millis(),
        verdict: &judgement,
        scenarios: &reports,
        findings: &findings,
        latency: report::Latency::from(&tally),
        server_errors: &tally.server_errors,
        transport_errors: &tally.transport_errors,
        slow_requests: &tally.slow,
        left_behind: &left,
    };
    let mut wrote_all = true;
    match report::write(&cli.report_dir, &report) {
        Ok((json, html)) => reporter.reports_written(&json, &html),
        Err(e) => {
            eprintln!("could not write the reports to {}: {e}", cli.report_dir.display());
            wrote_all = false;
        }
    }
    if let Some(path) = &cli.junit {
        if let Err(e) = report::junit(path, &reports, &judgement) {
            eprintln!("could not write the JUnit report {}: {e}", path.display());
            wrote_all = false;
        }
    }
    report::append_step_summary(&report::markdown(&report));
    target.stop().await;
    match (judgement.decision, wrote_all) {
        (Decision::NoGo, _) => Exit::NoGo,
        (Decision::Go, true) => Exit::Go,
        (Decision::Go, false) => could_not_judge(&cli, "the reports could not all be written"),
    }
}
