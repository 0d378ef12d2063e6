//! The command line: which scenarios, against which target, where the reports go.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "uat-orchestrator",
    version,
    about = "Runs the acceptance scenarios against the booking service and prints a go/no-go verdict",
    after_help = "Exit codes: 0 GO, 1 NO-GO, 2 could not judge (target down, bad configuration)."
)]
pub struct Cli {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = ScenarioChoice::All)]
    pub scenario: ScenarioChoice,

    /// Base URL of a deployed service; without it the service is started in-process.
    #[arg(long)]
    pub target: Option<String>,

    /// The target's HS256 key, to mint the platform, admin, staff and agent tokens the run needs.
    #[arg(long, env = "UAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

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
    #[arg(long)]
    pub database_url: Option<String>,

    /// Runs the mail sink on this address (e.g. 0.0.0.0:2525) for a remote target whose mail is
    /// pointed at it.
    #[arg(long)]
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

    /// Simultaneous callers in the concurrent scenario.
    #[arg(long, default_value_t = 5)]
    pub concurrency: usize,

    /// The p95 latency budget, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub budget_ms: u64,

    /// How long a confirmation email may take to arrive, in seconds.
    #[arg(long, default_value_t = 30)]
    pub email_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioChoice {
    All,
    Basic,
    Concurrent,
    Isolation,
    ErrorHandling,
    Email,
}
