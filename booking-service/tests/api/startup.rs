use crate::helpers::*;
use booking_service::config::Config;
use booking_service::startup::Application;
use shared::{ApiClient, Role};
use sqlx::Connection;

#[tokio::test]
async fn dev_mode_on_the_embedded_database_prints_working_tokens() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let app = Application::build(Config::with_database(db.url.clone()))
        .await
        .expect("starts without a key");
    let dev = app.dev_mode().expect("dev mode is on").clone();
    let banner = app.banner();
    assert!(banner.contains("DEV MODE"), "{banner}");
    assert!(dev.secret_file.exists(), "the generated key is kept");
    let base = app.base_url();
    tokio::spawn(app.run_until(std::future::pending()));
    let token_of = |role: Role| {
        dev.tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.clone())
            .expect("token")
    };
    for role in [Role::Platform, Role::Admin, Role::Staff, Role::Agent] {
        assert!(banner.contains(&token_of(role)), "{role:?} token printed");
    }
    let admin = ApiClient::new(base.clone()).with_token(token_of(Role::Admin));
    let provider = admin
        .create_provider(&shared::api::CreateProvider {
            name: "Dr. Dev".into(),
            ..Default::default()
        })
        .await
        .expect("the admin token works");
    let agent = ApiClient::new(base).with_token(token_of(Role::Agent));
    agent
        .book(&booking(provider.id, days_ahead(2), "10:00"))
        .await
        .expect("the agent token books");

    // A restart keeps the key and the demo organization, so earlier tokens still work.
    let again = Application::build(Config::with_database(db.url.clone()))
        .await
        .expect("restarts");
    assert_eq!(again.dev_mode().expect("dev mode").org_id, dev.org_id);
}

#[tokio::test]
async fn postgres_without_a_key_refuses_to_start() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let err = Application::build(Config::with_database(db.url.clone()))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("JWT_SECRET"), "{err:#}");
}

#[tokio::test]
async fn a_short_secret_is_refused() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let mut config = Config::with_database(db.url.clone());
    config.jwt_secret = Some("short".into());
    let err = Application::build(config).await.err().expect("refused");
    assert!(format!("{err:#}").contains("32 bytes"), "{err:#}");
}

/// A booking held up by the database when shutdown begins still gets its answer.
async fn shutdown_finishes_requests_in_flight(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let url = app.db.url.clone();
    // Hold the database's write lock so the booking has to wait.
    let blocker = tokio::spawn(async move {
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("lock");
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                sqlx::query("COMMIT")
                    .execute(&mut conn)
                    .await
                    .expect("unlock");
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                let mut tx = conn.begin().await.expect("begin");
                sqlx::query("LOCK TABLE appointments IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .expect("lock");
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                tx.commit().await.expect("unlock");
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let agent = org.agent.clone();
    let input = booking(provider.id, days_ahead(3), "10:00");
    let in_flight = tokio::spawn(async move { agent.book(&input).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !in_flight.is_finished(),
        "the booking is waiting for the lock"
    );
    let stopped = tokio::spawn(app.stop());
    let answer = in_flight.await.expect("task");
    answer.expect("the in-flight booking was answered, not cut off");
    stopped
        .await
        .expect("task")
        .expect("the server stopped cleanly");
    blocker.await.expect("blocker");
}

on_both_backends!(shutdown_finishes_requests_in_flight);
