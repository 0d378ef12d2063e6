use crate::helpers::*;
use reqwest::Method;

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.anon.healthz().await.expect("healthz").status, "ok");
    assert_eq!(app.anon.readyz().await.expect("readyz").status, "ready");
}

async fn the_openapi_document_covers_every_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: serde_json::Value = app.anon.send(app.anon.request(Method::GET, "/openapi.json")).await.expect("openapi");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/api/orgs", "post"),
        ("/api/orgs/{id}", "delete"),
        ("/api/org", "get"),
        ("/api/org", "patch"),
        ("/api/providers", "post"),
        ("/api/providers", "get"),
        ("/api/providers/{id}", "get"),
        ("/api/providers/{id}", "patch"),
        ("/api/providers/{id}", "delete"),
        ("/api/providers/{id}/availability", "get"),
        ("/api/appointment-types", "post"),
        ("/api/appointment-types", "get"),
        ("/api/appointment-types/{id}", "get"),
        ("/api/appointment-types/{id}", "patch"),
        ("/api/appointment-types/{id}", "delete"),
        ("/api/providers/{id}/time-off", "post"),
        ("/api/providers/{id}/time-off", "get"),
        ("/api/time-off/{id}", "delete"),
        ("/api/closures", "post"),
        ("/api/closures", "get"),
        ("/api/closures/{id}", "delete"),
        ("/api/vapi/booking", "post"),
        ("/api/vapi/tools", "post"),
        ("/api/vapi/tool-definitions", "get"),
        ("/api/vapi/settings", "get"),
        ("/api/vapi/settings", "put"),
        ("/api/calls", "get"),
        ("/api/audit", "get"),
        ("/api/settings", "get"),
        ("/api/settings", "put"),
        ("/api/webhooks", "post"),
        ("/api/webhooks", "get"),
        ("/api/webhooks/{id}", "delete"),
        ("/api/appointments", "get"),
        ("/api/appointments/{id}", "get"),
        ("/api/appointments/{id}/audit", "get"),
        ("/api/appointments/{id}/confirm", "post"),
        ("/api/appointments/{id}/cancel", "post"),
        ("/api/appointments/{id}/reschedule", "post"),
        ("/api/appointments/{id}/complete", "post"),
        ("/api/appointments/{id}/no-show", "post"),
        ("/confirm/{token}", "get"),
        ("/confirm/{token}", "post"),
        ("/manage/{token}", "get"),
        ("/manage/{token}/cancel", "get"),
        ("/manage/{token}/cancel", "post"),
        ("/manage/{token}/reschedule", "get"),
        ("/manage/{token}/reschedule", "post"),
        ("/manage/{token}/confirm", "get"),
        ("/manage/{token}/confirm", "post"),
        ("/sms/inbound", "post"),
    ];
    for (path, method) in expected {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is missing from /openapi.json");
    }
    let documented: usize =
        doc["paths"].as_object().expect("paths").values().map(|p| p.as_object().map_or(0, |m| m.len())).sum();
    assert_eq!(documented, expected.len(), "a route is documented that this test does not know");
}

async fn unknown_routes_answer_with_the_json_error_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let result: Result<serde_json::Value, _> = app.anon.send(app.anon.request(Method::GET, "/nope")).await;
    assert_error(result, 404, "not_found");
}

/// With `METRICS_TOKEN` set, `/metrics` answers only a scrape bearing it; nothing else changes.
async fn with_a_metrics_token_only_its_bearer_reads_the_metrics(backend: Backend) {
    const TOKEN: &str = "a-metrics-token-of-at-least-32-bytes";
    let app = spawn_app_with(backend, |c| c.metrics_token = Some(TOKEN.into())).await;
    let scrape = async |authorization: Option<String>| {
        let request = app.anon.request(Method::GET, "/metrics");
        let request = match authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        };
        request.send().await.expect("an answer")
    };
    let same_length = format!("Bearer {}", "x".repeat(TOKEN.len()));
    for refused in
        [None, Some("Bearer nope".into()), Some(format!("Bearer {TOKEN}x")), Some(TOKEN.into()), Some(same_length)]
    {
        let answer = scrape(refused.clone()).await;
        assert_eq!(answer.status(), 401, "{refused:?}");
        assert_eq!(answer.headers()["www-authenticate"], "Bearer", "{refused:?}");
        let body: serde_json::Value = answer.json().await.expect("the error body");
        assert_eq!(body["error"]["code"], "unauthorized", "{refused:?}: {body}");
    }
    for scheme in ["Bearer", "bearer"] {
        let answer = scrape(Some(format!("{scheme} {TOKEN}"))).await;
        assert_eq!(answer.status(), 200, "{scheme}");
        assert!(answer.text().await.expect("text").contains("http_requests_total"));
    }
    assert_eq!(app.anon.healthz().await.expect("healthz").status, "ok", "the other operations routes stay open");

    // While scrapers move to a new token, the previous one is taken beside it, and nothing else.
    const NEW: &str = "the-next-metrics-token-of-at-least-32-bytes";
    let rotating = spawn_app_with(backend, |c| {
        c.metrics_token = Some(NEW.into());
        c.metrics_token_previous = Some(TOKEN.into());
    })
    .await;
    for (token, status) in [(NEW, 200), (TOKEN, 200), ("another-token-of-at-least-32-bytes", 401)] {
        let answer = rotating.anon.request(Method::GET, "/metrics").bearer_auth(token).send().await.expect("an answer");
        assert_eq!(answer.status(), status, "{token}");
    }
}

/// A metrics token shorter than the service's other secrets, or one no header could carry as it is,
/// stops the service at start, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_metrics_token_stops_the_service_at_start() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let mut config = booking_service::config::Config::with_database(db.service_url.clone());
    config.jwt_secret = Some(SECRET.into());
    config.metrics_token = Some("too-short".into());
    let err = booking_service::startup::Application::build(config.clone()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("METRICS_TOKEN must be at least 32 bytes"), "{err:#}");
    config.metrics_token = Some("a-metrics-token-of-at-least-32-bytes\n".into());
    let err = booking_service::startup::Application::build(config.clone()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("METRICS_TOKEN must be printable ASCII"), "{err:#}");
    // The previous token is held to the same, and never stands alone (that would leave /metrics open).
    config.metrics_token = Some("a-metrics-token-of-at-least-32-bytes".into());
    config.metrics_token_previous = Some("too-short".into());
    let err = booking_service::startup::Application::build(config.clone()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("METRICS_TOKEN_PREVIOUS must be at least 32 bytes"), "{err:#}");
    config.metrics_token = None;
    config.metrics_token_previous = Some("a-previous-metrics-token-of-32-bytes".into());
    let err = booking_service::startup::Application::build(config).await.err().expect("refused");
    assert!(format!("{err:#}").contains("METRICS_TOKEN_PREVIOUS is set without METRICS_TOKEN"), "{err:#}");
}

on_both_backends!(
    health_and_readiness_answer,
    the_openapi_document_covers_every_route,
    unknown_routes_answer_with_the_json_error_body,
    with_a_metrics_token_only_its_bearer_reads_the_metrics,
);

/// Readiness proves the database takes writes: with SQLite's write lock held by another process,
/// reads still work (WAL) but no booking could commit, so the instance is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_not_ready_while_it_cannot_write() {
    use sqlx::Connection;
    let app = spawn_app(Backend::Sqlite).await;
    assert_eq!(app.anon.readyz().await.expect("ready").status, "ready");
    let mut other = sqlx::SqliteConnection::connect(&app.db.url).await.expect("another connection");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.expect("take the write lock");
    // An answer is kept for a second (a flood of probes asks the database once).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let not_ready = app.anon.readyz().await.expect_err("not ready while it cannot write");
    assert_eq!(not_ready.status().map(|s| s.as_u16()), Some(503), "{not_ready}");
    sqlx::query("ROLLBACK").execute(&mut other).await.expect("release it");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(app.anon.readyz().await.expect("ready again").status, "ready");
}

/// Readiness does not queue behind requests: with every connection of the pool held by requests
/// that wait on a lock, `/readyz` still answers at once, 200 (PostgreSQL; it waited for a pooled
/// connection and answered 503 after a second, so a load balancer dropped busy instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_does_not_wait_behind_a_busy_pool() {
    use sqlx::Connection;
    let Some(db) = TestDatabase::create(Backend::Postgres).await else { return };
    let app = spawn_on(std::sync::Arc::new(db), |c| c.pool_size = 2).await;
    let org = app.org("UTC").await;
    let mut holder = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("LOCK TABLE providers IN ACCESS EXCLUSIVE MODE").execute(&mut holder).await.expect("lock");
    // Two requests take the pool's two connections and wait on the lock.
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let staff = org.staff.clone();
            tokio::spawn(async move { staff.providers().await })
        })
        .collect();
    // Past the second an answer is kept, so that this one asks the database.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(waiting.iter().all(|r| !r.is_finished()), "the two requests still hold the pool");
    assert_eq!(app.anon.readyz().await.expect("ready while the pool is busy").status, "ready");
    sqlx::query("ROLLBACK").execute(&mut holder).await.expect("release");
    for request in waiting {
        request.await.expect("joined").expect("answered once the lock is gone");
    }
}
