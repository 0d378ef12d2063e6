//! The command line: which scenarios, against which target, where the reports go.

use crate::record::Scenario;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "uat-orchestrator",
    version,
    about = "Runs the acceptance scenarios against the booking service and prints a go/no-go verdict",
    after_help = "Exit codes: 0 GO, 1 NO-GO, 2 could not judge (target down, bad configuration).",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Without a command: the acceptance run.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Which scenario to run.
    #[arg(long, default_value = "all", value_parser = scenario_choice())]
    pub scenario: ScenarioChoice,

    /// Base URL of a deployed service; without it the service is started in-process.
    #[arg(long)]
    pub target: Option<String>,

    /// The target's HS256 key, to mint the platform, admin, staff and agent tokens the run needs.
    /// Credentials are taken only with --target.
    #[arg(long, env = "UAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The `iss` the target takes (its JWT_ISSUER), put in the tokens minted with --jwt-secret.
    #[arg(long, env = "UAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` the target takes (its JWT_AUDIENCE), put in the tokens minted with --jwt-secret.
    #[arg(long, env = "UAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Without --jwt-secret: the admin, staff and agent tokens of an existing clinic the run may
    /// use (it adds a provider there and deactivates it afterwards).
    #[arg(long, env = "UAT_ADMIN_TOKEN", hide_env_values = true, requires_all = ["staff_token", "agent_token"])]
    pub admin_token: Option<String>,
    #[arg(long, env = "UAT_STAFF_TOKEN", hide_env_values = true)]
    pub staff_token: Option<String>,
    #[arg(long, env = "UAT_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,

    /// The same for a second clinic, which the isolation scenario needs.
    #[arg(long, env = "UAT_OTHER_ADMIN_TOKEN", hide_env_values = true, requires_all = ["other_staff_token", "other_agent_token"])]
    pub other_admin_token: Option<String>,
    #[arg(long, env = "UAT_OTHER_STAFF_TOKEN", hide_env_values = true)]
    pub other_staff_token: Option<String>,
    #[arg(long, env = "UAT_OTHER_AGENT_TOKEN", hide_env_values = true)]
    pub other_agent_token: Option<String>,

    /// In-process only: the database to run on (`postgres://…`); a temporary SQLite file otherwise.
    #[arg(long, conflicts_with = "target")]
    pub database_url: Option<String>,

    /// Runs the mail sink on this address (e.g. 0.0.0.0:2525) for a remote target whose mail is
    /// pointed at it.
    #[arg(long, requires = "target")]
    pub smtp_listen: Option<String>,

    /// Ratings collected from clinic staff: a JSON array of numbers from 1 to 5.
    #[arg(long)]
    pub feedback: Option<PathBuf>,

    /// Folder of the JSON and HTML reports.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,

    /// Also writes a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,

    /// Simultaneous callers in the concurrent scenario (2 to 1000: one caller races nobody).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=1000))]
    pub concurrency: usize,

    /// The p95 latency budget, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub budget_ms: u64,

    /// How long a confirmation email may take to arrive, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub email_timeout_secs: u64,
}

impl Cli {
    /// A credential given without --target: a target was meant, and a run in-process instead
    /// would pass without testing it. Checked when the run starts, not by clap: the `report`
    /// command reads `UAT_STAFF_TOKEN` too, and a CI that sets it for that must not be refused.
    pub fn stray_credential(&self) -> Option<&'static str> {
        if self.target.is_some() {
            return None;
        }
        let key = (self.jwt_secret.is_some(), "--jwt-secret (UAT_JWT_SECRET)");
        std::iter::once(key).chain(self.tokens()).find_map(|(given, name)| given.then_some(name))
    }

    /// The clinic tokens given beside --jwt-secret, which the run does not use: with the key it
    /// makes clinics of its own. Told, not refused, for the same reason.
    pub fn unused_tokens(&self) -> Vec<&'static str> {
        let unused = self.tokens().into_iter().filter(|(given, _)| *given && self.jwt_secret.is_some());
        unused.map(|(_, name)| name).collect()
    }

    /// The claims given without --jwt-secret, which no token of the run carries (the given tokens
    /// carry their own): told, not refused, so a CI job that sets them for every run may pass
    /// tokens in some.
    pub fn unused_claims(&self) -> Vec<&'static str> {
        let given = [
            (self.jwt_issuer.is_some(), "--jwt-issuer (UAT_JWT_ISSUER)"),
            (self.jwt_audience.is_some(), "--jwt-audience (UAT_JWT_AUDIENCE)"),
        ];
        given.into_iter().filter(|(given, _)| *given && self.jwt_secret.is_none()).map(|(_, name)| name).collect()
    }

    /// Each clinic token, whether it is given, and its names.
    fn tokens(&self) -> [(bool, &'static str); 6] {
        [
            (self.admin_token.is_some(), "--admin-token (UAT_ADMIN_TOKEN)"),
            (self.staff_token.is_some(), "--staff-token (UAT_STAFF_TOKEN)"),
            (self.agent_token.is_some(), "--agent-token (UAT_AGENT_TOKEN)"),
            (self.other_admin_token.is_some(), "--other-admin-token (UAT_OTHER_ADMIN_TOKEN)"),
            (self.other_staff_token.is_some(), "--other-staff-token (UAT_OTHER_STAFF_TOKEN)"),
            (self.other_agent_token.is_some(), "--other-agent-token (UAT_OTHER_AGENT_TOKEN)"),
        ]
    }
}

/// Which scenarios a run takes: `all` (the five a release needs) or one by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioChoice {
    All,
    One(Scenario),
}

impl ScenarioChoice {
    pub fn scenarios(self) -> Vec<Scenario> {
        match self {
            Self::All => Scenario::ALL.to_vec(),
            Self::One(scenario) => vec![scenario],
        }
    }
}

/// Reads `--scenario`: `all` or a scenario's name, each listed in `--help`.
fn scenario_choice() -> impl TypedValueParser<Value = ScenarioChoice> {
    let all = PossibleValue::new("all").help("The five scenarios a release needs");
    let one = Scenario::value_variants().iter().filter_map(ValueEnum::to_possible_value);
    PossibleValuesParser::new(std::iter::once(all).chain(one))
        .map(|name| Scenario::from_str(&name, false).map_or(ScenarioChoice::All, ScenarioChoice::One))
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Compares a canary with the baseline from their /metrics over a window: promote or roll back.
    #[command(after_help = "Exit codes: 0 promote, 1 roll back (a criterion failed, or the canary is down \
                            while the baseline answers), 2 could not judge (too little traffic, the baseline \
                            unreachable or one missed last scrape, no metrics).")]
    Canary(CanaryArgs),
    /// The figures of the last day (or --since) against the go/no-go thresholds.
    #[command(after_help = "Exit codes: 0 every figure within its threshold, 1 a threshold missed, 2 could \
                            not judge (target unreachable, token refused).")]
    Report(DailyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CanaryArgs {
    /// Base URL of an instance of the current release.
    #[arg(long)]
    pub baseline: String,

    /// Base URL of an instance of the new release.
    #[arg(long)]
    pub canary: String,

    /// How long to watch both, e.g. 15m, 90s.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,

    /// How often to scrape between the first and the last scrape, so that a restart in the window
    /// loses little.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub interval: Duration,

    /// The service's METRICS_TOKEN, when it sets one: each scrape bears it.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Fewer requests than this on either side in the window: could not judge (at least 1: a
    /// window without traffic shows nothing to promote on).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_requests: u64,

    /// Fewer booking requests (booked, refused or failed) than this on either side, or voice
    /// bookings on one side only: could not judge. With 0, a window without bookings leaves the
    /// booking criteria unjudged.
    #[arg(long, default_value_t = 10)]
    pub min_bookings: u64,

    /// The p95 latency budget, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub budget_ms: u64,

    /// How far past 1.2 × the baseline's p95 the canary's may be, in milliseconds.
    #[arg(long, default_value_t = 25)]
    pub p95_slack_ms: u64,

    /// Folder of the JSON report.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,

    /// Also writes a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DailyArgs {
    /// Base URL of the deployed service.
    #[arg(long)]
    pub target: String,

    /// A staff (or admin) token of the clinic to report on.
    #[arg(long, env = "UAT_STAFF_TOKEN", hide_env_values = true)]
    pub staff_token: String,

    /// The window: bookings made, and appointments due, since this long ago (e.g. 24h, 7d).
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    pub since: Duration,

    /// Where to read the metrics; repeat it for each instance behind a load balancer.
    /// Default: the target's /metrics.
    #[arg(long = "metrics-url")]
    pub metrics_urls: Vec<String>,

    /// The service's METRICS_TOKEN, when it sets one: each scrape bears it.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// The JSON of an earlier daily report: the metrics are then what happened since it (restarts
    /// in between are noticed), rather than since each instance started.
    #[arg(long)]
    pub previous: Option<PathBuf>,

    /// The p95 latency budget, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub budget_ms: u64,

    /// Folder of the JSON report.
    #[arg(long, default_value = "reports")]
    pub report_dir: PathBuf,
}

/// A duration such as `500ms`, `90s`, `15m`, `24h` or `7d` (a bare number is seconds), from 1 ms to
/// 366 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    shared::duration::parse(s, Duration::from_millis(1)..=Duration::from_secs(366 * 86_400))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The canary command's arguments for `--baseline http://a --canary http://b --duration D`.
    pub(crate) fn canary_args(duration: &str) -> CanaryArgs {
        let cli = Cli::parse_from([
            "uat-orchestrator",
            "canary",
            "--baseline",
            "http://a",
            "--canary",
            "http://b",
            "--duration",
            duration,
        ]);
        match cli.command {
            Some(Command::Canary(args)) => args,
            other => panic!("not the canary command: {other:?}"),
        }
    }

    /// Clinic tokens given beside --jwt-secret are named as not used (the run makes its own
    /// clinics); without a key they are the run's credentials.
    #[test]
    fn tokens_beside_a_key_are_named_unused() {
        let remote = |flags: &[&str]| {
            Cli::parse_from(["uat-orchestrator", "--target", "http://x"].into_iter().chain(flags.iter().copied()))
        };
        let unused = |flags: &[&str]| remote(flags).unused_tokens();
        let given = unused(&["--jwt-secret", "k", "--admin-token", "a", "--staff-token", "s", "--agent-token", "b"]);
        let named =
            ["--admin-token (UAT_ADMIN_TOKEN)", "--staff-token (UAT_STAFF_TOKEN)", "--agent-token (UAT_AGENT_TOKEN)"];
        assert_eq!(given, named);
        assert!(unused(&["--admin-token", "a", "--staff-token", "s", "--agent-token", "b"]).is_empty());
        assert!(unused(&["--jwt-secret", "k"]).is_empty());
        // Claims set beside tokens (a CI job's variables for every run) are named, not refused.
        let claims = |flags: &[&str]| remote(flags).unused_claims();
        let beside_tokens = claims(&["--agent-token", "b", "--jwt-issuer", "i", "--jwt-audience", "a"]);
        assert_eq!(beside_tokens, ["--jwt-issuer (UAT_JWT_ISSUER)", "--jwt-audience (UAT_JWT_AUDIENCE)"]);
        assert!(claims(&["--jwt-secret", "k", "--jwt-issuer", "i"]).is_empty());
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err() && parse_duration("5 parsecs").is_err() && parse_duration("h").is_err());
    }

    /// `all` by default and by name, each scenario by its name, anything else refused.
    #[test]
    fn scenarios_are_chosen_by_name_or_all() {
        let choice = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("uat-orchestrator").chain(args.iter().copied())).map(|c| c.scenario)
        };
        assert_eq!(choice(&[]).expect("default"), ScenarioChoice::All);
        assert_eq!(choice(&["--scenario", "all"]).expect("all").scenarios(), Scenario::ALL.to_vec());
        for scenario in Scenario::value_variants() {
            let name = scenario.name();
            assert_eq!(choice(&["--scenario", name]).expect(name).scenarios(), vec![*scenario]);
        }
        assert!(choice(&["--scenario", "everything"]).is_err());
    }

    #[test]
    fn the_acceptance_run_stays_the_default_and_the_commands_parse() {
        let run = Cli::parse_from(["uat-orchestrator", "--scenario", "basic"]);
        assert!(run.command.is_none());
        assert_eq!(canary_args("10m").duration, Duration::from_secs(600));
        let report = Cli::parse_from(["uat-orchestrator", "report", "--target", "http://a", "--staff-token", "t"]);
        assert!(matches!(report.command, Some(Command::Report(r)) if r.since == Duration::from_secs(86_400)));
    }
}
