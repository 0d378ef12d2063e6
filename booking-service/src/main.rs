use booking_service::config::Config;
use booking_service::startup::Application;
use booking_service::telemetry;
use clap::Parser;

/// mimalloc: under a burst of thousands of requests glibc's malloc spends more time growing and
/// locking its arenas than the service spends answering.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init_tracing(config.log_json);
    tracing::info!(?config, "starting");
    let app = Application::build(config).await?;
    println!("{}", app.banner());
    app.run().await
}
