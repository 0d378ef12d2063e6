//! The command line: the flags a CI job sets per environment (the target or database, the
//! credentials, the report's path) also read an environment variable, so CI can configure them
//! either way.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "smoke-test",
    version,
    about = "Races conflicting bookings against the booking service and proves exactly one wins per slot.",
    long_about = "Races conflicting bookings against the booking service and proves exactly one wins per slot.\n\n\
        Without --target it starts the service in-process on a temporary SQLite database (or on \
        --database-url). With --rate and --duration it runs the open-loop load mode instead.\n\n\
        Exit codes: 0 pass, 1 fail (a check failed), 2 could not judge (bad configuration, target down)."
)]
pub struct Args {
    /// Base URL of a running service to test (e.g. http://127.0.0.1:8080). Without it the service
    /// is started in-process.
    #[arg(long, env = "SMOKE_TARGET")]
    pub target: Option<String>,

    /// Database of the in-process service: `postgres://…` or `sqlite://PATH`. Default: a temporary
    /// SQLite file, deleted afterwards.
    #[arg(long, env = "SMOKE_DATABASE_URL", conflicts_with = "target")]
    pub database_url: Option<String>,

    /// HS256 secret of the target; the tool mints the platform, admin and agent tokens it needs.
    /// Credentials are taken only with --target.
    #[arg(long, env = "SMOKE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The `iss` the target takes (its JWT_ISSUER), put in the tokens minted with --jwt-secret.
    #[arg(long, env = "SMOKE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` the target takes (its JWT_AUDIENCE), put in the tokens minted with --jwt-secret.
    #[arg(long, env = "SMOKE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Platform token, accepted beside --admin-token and --agent-token (instead of --jwt-secret);
    /// the run still works in their organization and creates none.
    #[arg(long, env = "SMOKE_PLATFORM_TOKEN", hide_env_values = true)]
    pub platform_token: Option<String>,

    /// Admin token of an existing organization, with --agent-token (instead of --jwt-secret): the
    /// run works there.
    #[arg(long, env = "SMOKE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Agent token of the same organization as --admin-token.
    #[arg(long, env = "SMOKE_AGENT_TOKEN", hide_env_values = true)]
    pub agent_token: Option<String>,

    /// Concurrent conflicting bookings per slot (its start, for 30, 25 or 20 minutes in turn).
    #[arg(long, short = 'c', default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Distinct slots contested at once (slots × concurrency requests in all).
    #[arg(long, short = 's', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub slots: u32,

    /// Latency budget for p95, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub budget_ms: u64,

    /// Where to write the JSON report. Default: reports/smoke-<unix_ms>.json.
    #[arg(long, env = "SMOKE_REPORT")]
    pub report: Option<PathBuf>,

    /// Load mode: bookings per second at a constant arrival rate (open loop).
    #[arg(long, requires = "duration")]
    pub rate: Option<f64>,

    /// Load mode: how long to send, e.g. `30s`, `500ms`, `2m` (a bare number is seconds).
    #[arg(long, requires = "rate", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Load mode: most requests in flight (and connections) at once.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,

    /// Load mode: a send this many milliseconds behind its intended time counts as late; more than
    /// 1% late sends fail the run (the offered rate was not really offered).
    #[arg(long, default_value_t = 10)]
    pub late_ms: u64,

    /// Load mode: providers the bookings are spread over (a clinic has at most 200 active).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub providers: u32,

    /// Seconds before one racing or load request is given up as a transport error (set-up,
    /// read-back and clean-up requests wait 30 s, the health probe 5 s).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_secs: u64,

    /// Print no line per booking (the verification block and verdict still print).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Leave the test organization in place (for inspection): with --target or --database-url, as
    /// the in-process default database is deleted anyway.
    #[arg(long)]
    pub keep: bool,
}

impl Args {
    /// What was given that only a target (or a kept database) gives sense to: a credential without
    /// --target means a target was meant (its variable lost, say), and a run in-process would pass
    /// without testing it; --keep of the temporary database, which goes anyway. Checked when the
    /// run starts, not by clap, so that the refusal is a could-not-judge report like any other.
    pub fn stray(&self) -> Option<String> {
        if self.target.is_some() {
            return None;
        }
        let key = (self.jwt_secret.is_some(), "--jwt-secret (SMOKE_JWT_SECRET)");
        let credential = std::iter::once(key).chain(self.tokens()).find_map(|(given, name)| given.then_some(name));
        match credential {
            Some(name) => Some(format!("{name} is given without --target")),
            None if self.keep && self.database_url.is_none() => Some("--keep needs --target or --database-url".into()),
            None => None,
        }
    }

    /// The tokens given beside --jwt-secret, which the run does not use: with the key it makes an
    /// organization of its own. Told, not refused: a CI job may set the variables of both.
    pub fn unused_tokens(&self) -> Vec<&'static str> {
        let unused = self.tokens().into_iter().filter(|(given, _)| *given && self.jwt_secret.is_some());
        unused.map(|(_, name)| name).collect()
    }

    /// The claims given without --jwt-secret, which no token of the run carries (the given tokens
    /// carry their own): told, not refused, so a CI job that sets them for every run may pass
    /// tokens in some.
    pub fn unused_claims(&self) -> Vec<&'static str> {
        let given = [
            (self.jwt_issuer.is_some(), "--jwt-issuer (SMOKE_JWT_ISSUER)"),
            (self.jwt_audience.is_some(), "--jwt-audience (SMOKE_JWT_AUDIENCE)"),
        ];
        given.into_iter().filter(|(given, _)| *given && self.jwt_secret.is_none()).map(|(_, name)| name).collect()
    }

    /// Each token, whether it is given, and its names.
    fn tokens(&self) -> [(bool, &'static str); 3] {
        [
            (self.platform_token.is_some(), "--platform-token (SMOKE_PLATFORM_TOKEN)"),
            (self.admin_token.is_some(), "--admin-token (SMOKE_ADMIN_TOKEN)"),
            (self.agent_token.is_some(), "--agent-token (SMOKE_AGENT_TOKEN)"),
        ]
    }

    /// The defaults, as `smoke-test` with no argument would run.
    pub fn defaults() -> Self {
        Self::parse_from(["smoke-test"])
    }

    /// The connections the run holds open at once: every racer's, or the load's most in flight.
    pub fn connections(&self) -> usize {
        if self.is_load() {
            self.max_in_flight
        } else {
            self.concurrency as usize * self.slots as usize
        }
    }

    pub fn is_load(&self) -> bool {
        self.rate.is_some()
    }

    /// The mode as the report names it.
    pub fn mode(&self) -> &'static str {
        if self.is_load() {
            "load"
        } else {
            "race"
        }
    }
}

/// `30s`, `500ms`, `2m`, `1h`, `1.5s` or a bare number of seconds (units ms, s, m, h, d); from 1 ms
/// to 1 h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    shared::duration::parse(s, Duration::from_millis(1)..=Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0.0001ms").is_err(), "below the 1 ms it says");
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn values_that_would_be_changed_silently_are_refused() {
        for (flag, value) in [("--providers", "0"), ("--timeout-secs", "0")] {
            assert!(Args::try_parse_from(["smoke-test", flag, value]).is_err(), "{flag} {value}");
        }
        assert!(Args::try_parse_from(["smoke-test", "--providers", "1", "--timeout-secs", "1"]).is_ok());
    }

    /// A credential without --target means a target was meant: run in-process, the run would pass
    /// without testing it. So does --keep of the temporary database, which goes anyway.
    #[test]
    fn credentials_and_keep_without_a_target_are_stray() {
        let stray =
            |flags: &[&str]| Args::parse_from(std::iter::once("smoke-test").chain(flags.iter().copied())).stray();
        for flags in [&["--jwt-secret", "k"][..], &["--admin-token", "a", "--agent-token", "b"], &["--keep"]] {
            assert!(stray(flags).is_some(), "{flags:?}");
        }
        assert_eq!(stray(&["--target", "http://x", "--jwt-secret", "k", "--keep"]), None);
        assert_eq!(stray(&["--database-url", "sqlite://x.db", "--keep"]), None);
    }

    /// Tokens given beside --jwt-secret are named as not used (the run makes its own organization).
    #[test]
    fn tokens_beside_a_key_are_named_unused() {
        let remote = |flags: &[&str]| {
            Args::parse_from(["smoke-test", "--target", "http://x"].into_iter().chain(flags.iter().copied()))
        };
        let unused = |flags: &[&str]| remote(flags).unused_tokens();
        let both = unused(&["--jwt-secret", "k", "--admin-token", "a", "--agent-token", "b"]);
        assert_eq!(both, ["--admin-token (SMOKE_ADMIN_TOKEN)", "--agent-token (SMOKE_AGENT_TOKEN)"]);
        assert!(unused(&["--admin-token", "a", "--agent-token", "b"]).is_empty());
        assert!(unused(&["--jwt-secret", "k"]).is_empty());
        // Claims set beside tokens (a CI job's variables for every run) are named, not refused.
        let claims = |flags: &[&str]| remote(flags).unused_claims();
        let beside_tokens = claims(&["--agent-token", "b", "--jwt-issuer", "i", "--jwt-audience", "a"]);
        assert_eq!(beside_tokens, ["--jwt-issuer (SMOKE_JWT_ISSUER)", "--jwt-audience (SMOKE_JWT_AUDIENCE)"]);
        assert!(claims(&["--jwt-secret", "k", "--jwt-issuer", "i"]).is_empty());
    }

    #[test]
    fn no_argument_means_five_bookings_of_one_slot() {
        let args = Args::defaults();
        assert_eq!((args.concurrency, args.slots, args.budget_ms), (5, 1, 500));
        assert!(!args.is_load());
    }
}
