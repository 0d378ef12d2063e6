use booking_service::config::Config;
use booking_service::startup::Application;
use booking_service::telemetry;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init_tracing(config.log_json);
    tracing::info!(?config, "starting");
    let app = Application::build(config).await?;
    println!("{}", app.banner());
    app.run().await
}
