//! What `/metrics` counts, counted exactly. The recorder is the process's, shared by every
//! instance a test binary starts, so these tests have a binary of their own and take turns: what
//! a test reads is what its own requests and deliveries added, not what a test beside it did.

#[allow(unused)] // the API suite's vocabulary, of which these tests use a part
#[macro_use]
#[path = "api/helpers.rs"]
mod helpers;

use booking_service::domain::{AppointmentId, OrgId};
use booking_service::store::MailClaim;
use helpers::*;
use reqwest::Method;
use shared::api::BookingInput;
use std::time::Duration;

/// Held for the whole of each test, so that no two count at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The value of each series named, as the service exports it now (0 for one not exported yet).
async fn exported<const N: usize>(app: &TestApp, series: [&str; N]) -> [f64; N] {
    let text = app.anon.request(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    series.map(|name| {
        let value = text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')));
        value.map_or(0.0, |v| v.trim().parse().expect("a number"))
    })
}

async fn metrics_count_requests_by_route_and_bookings_by_outcome(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let series = [
        r#"http_requests_total{method="POST",route="/api/vapi/booking",status="201"}"#,
        r#"http_request_duration_seconds_count{method="POST",route="/api/vapi/booking",status="409"}"#,
        r#"bookings_total{outcome="booked"}"#,
        r#"bookings_total{outcome="slot_unavailable"}"#,
    ];
    let before = exported(&app, series).await;
    org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    let taken = org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await;
    assert_error(taken, 409, "slot_unavailable");
    let after = exported(&app, series).await;
    let added: Vec<f64> = after.iter().zip(before).map(|(after, before)| after - before).collect();
    assert_eq!(added, [1.0; 4], "{series:?}");
}

/// A message given up on as unsettled is counted with the dead deliveries the alerts and the
/// dashboard read, as one whose delivery gave up is. A "crashed" dispatcher claims the only try
/// (`MAIL_MAX_ATTEMPTS=1`) and never reports back; another instance's gives up on it when the
/// lease ends, and counts it once.
async fn a_message_given_up_on_as_unsettled_is_counted_dead(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    // This instance's dispatcher looks for mail only at start: the claim below is the first.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input =
        BookingInput { patient_email: Some("ada@example.com".into()), ..booking(provider.id, days_ahead(4), "10:00") };
    let booked = org.agent.book(&input).await.expect("booked");
    let now = booking_service::store::now();
    let claim = MailClaim::every(now, now + chrono::Duration::seconds(1), 10, 1);
    let claimed = app.store.claim_mail(&claim).await.expect("claimed").jobs;
    assert!(claimed.iter().any(|j| j.kind == "booking_confirmation"), "{claimed:?}");

    const DEAD_EMAILS: &str = r#"emails_total{outcome="dead"}"#;
    let [before] = exported(&app, [DEAD_EMAILS]).await;
    let _giving_up = app.another_instance_with(|c| c.mail_max_attempts = 1).await;
    let (org_id, id) = (OrgId(org.id), AppointmentId(booked.appointment_id));
    for _ in 0..100 {
        let jobs = app.store.outbox(org_id, id).await.expect("outbox");
        if jobs.iter().any(|j| j.kind == "booking_confirmation" && j.dead_at.is_some()) {
            // Counted as it is recorded; nothing else of this test's can die.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let [after] = exported(&app, [DEAD_EMAILS]).await;
            assert_eq!(after - before, 1.0, "the message given up on is counted once in {DEAD_EMAILS}");
            // An instance starting in the same process takes back nothing counted.
            let _third = app.another_instance().await;
            assert_eq!(exported(&app, [DEAD_EMAILS]).await, [after], "counted before another instance started");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the message was not given up on");
}

on_both_backends!(
    metrics_count_requests_by_route_and_bookings_by_outcome,
    a_message_given_up_on_as_unsettled_is_counted_dead
);
