use clap::Parser;
use uat_orchestrator::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = Cli::try_parse_from(&raw).unwrap_or_else(|e| uat_orchestrator::refused(&raw, e));
    std::process::ExitCode::from(uat_orchestrator::main(cli).await)
}
