use booking_service::config::{redact, Cli, Command};
use booking_service::startup::Application;
use booking_service::{migrate, telemetry};
use clap::Parser;

/// mimalloc: under a burst of thousands of requests glibc's malloc grows and locks its arenas page
/// by page; mimalloc halved the 2,000-request burst's p95 (bench/README.md). It is built without
/// transparent huge pages (`no_thp`): with them, nearly half of a burst's CPU went to the kernel
/// zeroing 2 MiB pages that mimalloc had just released and touched again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the runtime waits, once the service has stopped, for its blocking threads: a webhook's
/// name lookup may hold one until the system's resolver gives up (many seconds), and the
/// shutdown's grace is over by then.
const LEFT_BEHIND: std::time::Duration = std::time::Duration::from_millis(500);

/// A refused start prints its reason and the causes behind it on one line, and exits 1 (no
/// backtrace: it is a setting or a database to fix, not a bug).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let ran = runtime.block_on(run(cli));
    runtime.shutdown_timeout(LEFT_BEHIND);
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", shared::client::with_causes(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Migrate(args)) => {
            telemetry::init_tracing(args.log_json);
            let database = redact(&args.database_url);
            let applied = migrate::database(&args.database_url).await?;
            for migration in &applied {
                println!("applied {migration}");
            }
            match applied.len() {
                0 => println!("{database} is up to date: nothing to apply"),
                n => println!("{database}: {n} migration(s) applied"),
            }
            Ok(())
        }
        None => {
            let config = cli.config;
            telemetry::init_tracing(config.log_json);
            tracing::info!(?config, "starting");
            let json = config.log_json;
            let app = Application::build(config).await?;
            if json {
                // One JSON line like the logs, which a log collector can parse, and printed as the
                // banner always is: no RUST_LOG hides the address it listens on.
                let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let line = serde_json::json!({"timestamp": at, "level": "INFO", "fields": {"message": app.banner()}});
                println!("{line}");
            } else {
                println!("{}", app.banner());
            }
            app.run().await
        }
    }
}
