use booking_service::config::Config;
use booking_service::startup::Application;
use booking_service::telemetry;
use clap::Parser;

/// mimalloc: under a burst of thousands of requests glibc's malloc grows and locks its arenas page
/// by page; mimalloc halved the 2,000-request burst's p95 (bench/README.md). It is built without
/// transparent huge pages (`no_thp`): with them, nearly half of a burst's CPU went to the kernel
/// zeroing 2 MiB pages that mimalloc had just released and touched again.
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
