//! A lost database, for real (PostgreSQL only: SQLite is a file in the process). The service
//! reaches PostgreSQL through a TCP proxy that cuts every connection and refuses new ones, or has
//! its connections terminated by an administrator (SQLSTATE 57P01) under load: every request in
//! flight answers 503 `unavailable` or succeeds, never 500, and the service recovers by itself.

use crate::helpers::*;
use futures::future::join_all;
use shared::client::ClientResult;
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_kit::proxy::TcpProxy;

/// Books distinct slots from `workers` clients until `until`, and returns every status seen.
async fn load(org: &TestOrg, provider: uuid::Uuid, workers: usize, until: Instant) -> Vec<ClientResult<u16>> {
    let runs = (0..workers).map(|w| {
        let agent = org.agent.clone();
        async move {
            let mut seen = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                let minute = (w * 10_000 + i) as i64 * 5;
                let mut input = booking(provider, days_ahead(3 + minute / (24 * 60)), "00:00");
                input.appointment_time = Some(format!("{:02}:{:02}", (minute / 60) % 24, minute % 60));
                input.duration_minutes = Some(5);
                seen.push(match agent.book(&input).await {
                    Ok(_) => Ok(201),
                    Err(e) if e.status().is_some() => Ok(e.status().map_or(0, |s| s.as_u16())),
                    Err(e) => Err(e),
                });
                i += 1;
            }
            seen
        }
    });
    join_all(runs).await.into_iter().flatten().collect()
}

#[track_caller]
fn assert_never_500(seen: &[ClientResult<u16>]) {
    let statuses: Vec<u16> = seen.iter().map(|r| *r.as_ref().expect("every request is answered")).collect();
    assert!(statuses.iter().all(|s| [201, 503].contains(s)), "{statuses:?}");
}

/// Waits until a booking succeeds again, without restarting anything.
async fn recovers(app: &TestApp, org: &TestOrg, provider: uuid::Uuid) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = app.anon.readyz().await.is_ok();
        if ready && org.agent.book(&booking(provider, days_ahead(30), "12:00")).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "the service did not recover within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_database_answers_503_then_recovers_by_itself() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else { return };
    let mut url = url::Url::parse(&db.url).expect("a URL");
    let upstream = format!("{}:{}", url.host_str().expect("a host"), url.port().unwrap_or(5432));
    let proxy = TcpProxy::start(upstream).await.expect("a proxy");
    url.set_port(Some(proxy.addr.port())).expect("a port");
    let app = spawn_on(Arc::new(db), |c| {
        c.database_url = url.to_string();
        c.request_timeout_secs = 8;
        c.vapi_deadline_ms = 6000;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;

    let cut = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            proxy.cut();
        })
    };
    let seen = load(&org, provider, 6, Instant::now() + Duration::from_millis(1500)).await;
    cut.await.expect("cut");
    assert_never_500(&seen);
    assert!(seen.iter().any(|s| matches!(s, Ok(503))), "the outage was not noticed: {seen:?}");
    let not_ready = app.anon.readyz().await.expect_err("not ready while the database is away");
    assert_eq!(not_ready.status().map(|s| s.as_u16()), Some(503), "{not_ready}");

    proxy.restore();
    recovers(&app, &org, provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_terminated_by_an_administrator_answer_503_not_500() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else { return };
    let admin = test_kit::postgres_admin_url().expect("an admin URL");
    let name = url::Url::parse(&db.url).expect("a URL").path().trim_start_matches('/').to_owned();
    let app = spawn_on(Arc::new(db), |_| {}).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;

    let terminate = tokio::spawn(async move {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect as admin");
        let mut terminated = 0;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let done: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&name)
            .fetch_all(&mut conn)
            .await
            .expect("terminate");
            terminated += done.into_iter().filter(|d| *d).count();
        }
        terminated
    });
    let seen = load(&org, provider, 6, Instant::now() + Duration::from_millis(1500)).await;
    let terminated = terminate.await.expect("terminate");
    assert!(terminated > 0, "no connection of the service was terminated");
    assert_never_500(&seen);
    assert!(seen.iter().any(|s| matches!(s, Ok(503))), "no request in flight met a terminated connection: {seen:?}");
    recovers(&app, &org, provider).await;
}
