use clap::Parser;
use uat_orchestrator::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    std::process::ExitCode::from(uat_orchestrator::main(cli).await)
}
