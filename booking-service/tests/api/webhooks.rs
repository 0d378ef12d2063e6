//! Webhooks (docs/API.md, Webhooks): every change of an appointment, by REST, the voice agent, the
//! confirmation link and attendance, reaches a clinic's endpoint signed as Standard Webhooks have it, retried with the
//! same id until it is taken; endpoints inside the network are refused unless allowed.

use crate::attendance::backdate;
use crate::email::{link_in, post_confirm, searchable, wait_eml};
use crate::helpers::*;
use crate::vapi::{call, message, post, CALLER};
use booking_service::domain::{AppointmentId, OrgId};
use serde_json::{json, Value};
use shared::api::{BookingInput, CreateWebhook, RescheduleRequest};
use std::time::Duration;
use test_kit::http::{HttpSink, ReceivedRequest};

/// A webhook endpoint on a loopback port that refuses its first `failures` requests with 500, and
/// its URL.
async fn endpoint(failures: u32) -> (HttpSink, String) {
    let sink = HttpSink::start().await.expect("an endpoint");
    sink.fail_next(failures);
    let url = format!("{}/hook", sink.url());
    (sink, url)
}

/// The `type` of each message, sorted.
fn types(messages: &[ReceivedRequest]) -> Vec<String> {
    let mut seen: Vec<String> = messages.iter().map(|r| body(r)["type"].as_str().unwrap_or("").to_owned()).collect();
    seen.sort();
    seen
}

fn body(r: &ReceivedRequest) -> Value {
    r.json().unwrap_or(Value::Null)
}

/// Waits until the messages taken are of `wanted` (in any order), and returns them.
async fn wait_for(endpoint: &HttpSink, wanted: &[&str]) -> Vec<ReceivedRequest> {
    let mut wanted: Vec<String> = wanted.iter().map(|t| t.to_string()).collect();
    wanted.sort();
    let taken = endpoint.wait_until(|taken| types(taken) == wanted, Duration::from_secs(20)).await;
    assert_eq!(types(&taken), wanted, "the messages taken");
    taken
}

/// Checks a message as a receiver does, with the Standard Webhooks authors' library (signature and
/// timestamp), which shares no code with the service's signing.
fn verify(secret: &str, r: &ReceivedRequest) -> Result<(), standardwebhooks::WebhookError> {
    standardwebhooks::Webhook::new(secret)?.verify(&r.body, &r.header_map())
}

async fn allowing_private(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| c.webhook_allow_private = true).await
}

async fn every_change_reaches_the_endpoint_signed_and_retried_with_one_id(backend: Backend) {
    let app = allowing_private(backend).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let (receiver, url) = endpoint(2).await;
    let hook = org.admin.create_webhook(&CreateWebhook { url: url.clone(), events: None }).await.expect("created");
    let secret = hook.secret.clone().expect("the secret, shown once");
    assert!(secret.starts_with("whsec_"));
    let listed = org.admin.webhooks().await.expect("listed");
    assert_eq!((listed.len(), listed[0].secret.clone()), (1, None), "never shown again");

    let booked = org.staff.book(&booking(provider.id, days_ahead(6), "10:00")).await.expect("booked");
    let first = wait_for(&receiver, &["appointment.booked"]).await;
    let refused: Vec<ReceivedRequest> = receiver.requests().into_iter().filter(|r| !r.taken()).collect();
    assert_eq!(refused.len(), 2, "refused twice, then taken");
    let id = |r: &ReceivedRequest| r.header("webhook-id").unwrap_or_default().to_owned();
    assert!(refused.iter().all(|r| id(r) == id(&first[0])), "every retry carries the same webhook-id");
    assert_eq!(body(&first[0])["data"]["id"], json!(booked.appointment_id));
    assert_eq!(body(&first[0])["data"]["status"], "pending");

    let to = RescheduleRequest {
        appointment_date: Some(date_str(days_ahead(7))),
        appointment_time: Some("11:00".into()),
        ..Default::default()
    };
    org.staff.reschedule(booked.appointment_id, &to).await.expect("moved");
    org.staff.cancel(booked.appointment_id, None).await.expect("cancelled");
    let by_phone = call(
        "w1",
        "book_appointment",
        json!({"provider_id": provider.id, "appointment_date": date_str(days_ahead(8)), "appointment_time": "09:00", "patient_name": "Ada"}),
    );
    post(&org.agent, &message(vec![by_phone], Some(CALLER), "call-w")).await;
    let kept = org.staff.book(&booking(provider.id, days_ahead(1), "10:00")).await.expect("booked");
    backdate(&app, kept.appointment_id).await;
    org.staff.no_show(kept.appointment_id).await.expect("marked");

    let all = wait_for(
        &receiver,
        &[
            "appointment.booked",
            "appointment.rescheduled",
            "appointment.cancelled",
            "appointment.booked",
            "appointment.booked",
            "appointment.no_show",
        ],
    )
    .await;
    let mut ids: Vec<String> = all.iter().map(id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "one id per message");
    for r in &all {
        let timestamp: i64 = r.header("webhook-timestamp").unwrap_or_default().parse().expect("Unix seconds");
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 120);
        verify(&secret, r).expect("the signature verifies with the secret");
        assert!(verify("whsec_b3RoZXIgc2VjcmV0", r).is_err(), "and with no other");
    }
    let moved = all.iter().map(body).find(|b| b["type"] == "appointment.rescheduled").expect("moved");
    assert!(moved["data"]["starts_at"].as_str().is_some_and(|s| s.contains("T11:00:00")), "{moved}");
}

async fn an_endpoint_gets_only_the_events_it_asked_for(backend: Backend) {
    let app = allowing_private(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let (receiver, url) = endpoint(0).await;
    let only = CreateWebhook { url, events: Some(vec!["appointment.cancelled".into()]) };
    org.admin.create_webhook(&only).await.expect("created");
    let a = org.staff.book(&booking(provider.id, days_ahead(4), "10:00")).await.expect("booked");
    org.staff.cancel(a.appointment_id, None).await.expect("cancelled");
    let got = wait_for(&receiver, &["appointment.cancelled"]).await;
    assert_eq!(body(&got[0])["data"]["status"], "cancelled");
    // Another clinic's changes reach none of this clinic's endpoints.
    let other = app.org("UTC").await;
    let theirs = other.provider().await;
    let b = other.staff.book(&booking(theirs.id, days_ahead(4), "10:00")).await.expect("booked");
    other.staff.cancel(b.appointment_id, None).await.expect("cancelled");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.requests().len(), 1);
    assert!(other.admin.webhooks().await.expect("listed").is_empty());
}

/// An endpoint that takes every connection and never answers; aborting the task lets them go.
async fn hanging_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let (base, held) = test_kit::silent_server().await;
    (format!("{base}/hook"), held)
}

/// Endpoints that take the connection and never answer hold up no other delivery: the messages in
/// hand go out side by side, so a working endpoint gets its message while the others still hang
/// (one by one, each would first wait out its 10 s timeout).
async fn endpoints_that_hang_delay_no_other_message(backend: Backend) {
    let app = allowing_private(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let (hanging_url, held) = hanging_endpoint().await;
    for _ in 0..4 {
        org.admin.create_webhook(&CreateWebhook { url: hanging_url.clone(), events: None }).await.expect("created");
    }
    let (receiver, url) = endpoint(0).await;
    org.admin.create_webhook(&CreateWebhook { url, events: None }).await.expect("created");
    org.staff.book(&booking(provider.id, days_ahead(4), "10:00")).await.expect("booked");
    let got = receiver.wait_for(1, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "delivered while four endpoints hang");
    held.abort();
}

/// Two clinics whose ten endpoints all hang, with forty messages each due to them before anyone
/// else's, hold up neither another clinic's webhook nor any patient's email: webhooks have a lane
/// of their own (in one lane, the two would take every place), and a clinic only a share of its
/// places (without it, the first forty would take all 32); either way the other clinic's messages
/// would wait out a 10 s timeout first.
async fn clinics_whose_endpoints_hang_hold_up_no_other_clinic_and_no_patient(backend: Backend) {
    let app = allowing_private(backend).await;
    let (hanging_url, held) = hanging_endpoint().await;
    for _ in 0..2 {
        let greedy = app.org("UTC").await;
        let provider = greedy.provider().await;
        for _ in 0..10 {
            let hook = CreateWebhook { url: hanging_url.clone(), events: None };
            greedy.admin.create_webhook(&hook).await.expect("created");
        }
        for time in ["09:00", "10:00", "11:00", "12:00"] {
            greedy.staff.book(&booking(provider.id, days_ahead(4), time)).await.expect("booked");
        }
    }
    let other = app.org("UTC").await;
    let theirs = other.provider().await;
    let (receiver, url) = endpoint(0).await;
    other.admin.create_webhook(&CreateWebhook { url, events: None }).await.expect("created");
    let input =
        BookingInput { patient_email: Some("ada@example.com".into()), ..booking(theirs.id, days_ahead(4), "10:00") };
    other.staff.book(&input).await.expect("booked");
    // Both well within the 10 s a hanging endpoint's message takes to end.
    let by = tokio::time::Instant::now() + Duration::from_secs(8);
    let got = receiver.wait_for(1, by - tokio::time::Instant::now()).await;
    assert_eq!(got.len(), 1, "the other clinic's webhook, delivered while eighty hang");
    let email = tokio::time::timeout_at(by, wait_eml(&app, 1)).await;
    assert!(email.is_ok(), "the patient's email, sent while eighty webhooks hang");
    held.abort();
}

/// The patient's confirmation link is a path that changes an appointment too.
async fn confirming_through_the_link_is_announced(backend: Backend) {
    let app = allowing_private(backend).await;
    let org = app.org("Europe/Paris").await;
    let provider = org.provider().await;
    let (receiver, url) = endpoint(0).await;
    org.admin.create_webhook(&CreateWebhook { url, events: None }).await.expect("created");
    let input =
        BookingInput { patient_email: Some("ada@example.com".into()), ..booking(provider.id, days_ahead(5), "10:00") };
    let booked = org.staff.book(&input).await.expect("booked");
    let eml = wait_eml(&app, 1).await;
    let link = link_in(&searchable(&eml[0]), &app.base);
    assert!(post_confirm(&link, true).await.status().is_success());
    let got = wait_for(&receiver, &["appointment.booked", "appointment.confirmed"]).await;
    let confirmed = got.iter().map(body).find(|b| b["type"] == "appointment.confirmed").expect("confirmed");
    assert_eq!(
        (confirmed["data"]["id"].clone(), confirmed["data"]["status"].clone()),
        (json!(booked.appointment_id), json!("confirmed"))
    );
}

async fn endpoints_inside_the_network_and_bad_requests_are_refused(backend: Backend) {
    // A request outlasts a name lookup that times out (10 s), should the resolver not answer.
    let app = spawn_app_with(backend, |c| c.request_timeout_secs = 30).await;
    let org = app.org("UTC").await;
    let (_endpoint, loopback) = endpoint(0).await;
    for url in [
        loopback.as_str(),
        "http://localhost/hook",
        "http://169.254.169.254/latest",
        "http://10.0.0.7/x",
        "ftp://example.com/x",
        "not a url",
    ] {
        let refused = org.admin.create_webhook(&CreateWebhook { url: url.into(), events: None }).await;
        let err = assert_error(refused, 422, "validation_failed");
        let said = err.to_string();
        if url.contains("localhost") {
            assert!(
                !said.contains("127.0.0.1") && !said.contains("::1"),
                "the address a name resolves to is not told: {said}"
            );
        }
    }
    // A name of the service's own network and a name that does not resolve are refused alike, so
    // that an admin cannot find out which names the service's network knows.
    let refusal = async |host: &str| {
        let url = format!("http://{host}/hook");
        let refused = org.admin.create_webhook(&CreateWebhook { url, events: None }).await;
        assert_error(refused, 422, "validation_failed").to_string().replace(host, "HOST")
    };
    assert_eq!(refusal("localhost").await, refusal("no-such-host.invalid").await);
    let open = allowing_private(backend).await;
    let org = open.org("UTC").await;
    let unknown = CreateWebhook { url: loopback.clone(), events: Some(vec!["appointment.exploded".into()]) };
    assert_error(org.admin.create_webhook(&unknown).await, 422, "validation_failed");
    // Under 2000 bytes as sent, over 2000 characters once percent-encoded as it would be stored.
    let long = CreateWebhook { url: format!("{loopback}{}", "é".repeat(900)), events: None };
    let said = assert_error(org.admin.create_webhook(&long).await, 422, "validation_failed").to_string();
    assert!(said.contains("at most 2000 characters"), "{said}");
    assert_error(
        org.staff.create_webhook(&CreateWebhook { url: loopback.clone(), events: None }).await,
        403,
        "forbidden",
    );
    let mut made = Vec::new();
    for _ in 0..10 {
        made.push(
            org.admin.create_webhook(&CreateWebhook { url: loopback.clone(), events: None }).await.expect("made").id,
        );
    }
    let eleventh = org.admin.create_webhook(&CreateWebhook { url: loopback.clone(), events: None }).await;
    assert_error(eleventh, 409, "invalid_state");
    // With room for one, eight created at once: one is made, never more than ten in all.
    org.admin.delete_webhook(made.pop().expect("made")).await.expect("removed");
    let one_more = CreateWebhook { url: loopback.clone(), events: None };
    let racing = (0..8).map(|_| org.admin.create_webhook(&one_more));
    let made_now = futures::future::join_all(racing).await.into_iter().filter_map(Result::ok).count();
    assert_eq!((made_now, org.admin.webhooks().await.expect("listed").len()), (1, 10));
    made = org.admin.webhooks().await.expect("listed").into_iter().map(|w| w.id).collect();
    let other = open.org("UTC").await;
    assert_error(other.admin.delete_webhook(made[0]).await, 404, "not_found");
    org.admin.delete_webhook(made[0]).await.expect("removed");
    assert_eq!(org.admin.webhooks().await.expect("listed").len(), 9);
}

/// Removing a webhook drops its messages still queued at once, not at their turn: the other
/// webhook's stay.
async fn a_removed_webhooks_queued_messages_go_with_it(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait.
    let app = spawn_app_with(backend, |c| (c.webhook_allow_private, c.mail_poll_ms) = (true, 3_600_000)).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let (_receiver, url) = endpoint(0).await;
    let hook = CreateWebhook { url, events: None };
    let (removed, kept) =
        (org.admin.create_webhook(&hook).await.expect("made"), org.admin.create_webhook(&hook).await.expect("made"));
    let booked = org.staff.book(&booking(provider.id, days_ahead(6), "10:00")).await.expect("booked");
    let queued = async || {
        let all = app.store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox");
        let mut of: Vec<String> =
            all.iter().filter_map(|m| m.payload["webhook_id"].as_str().map(str::to_owned)).collect();
        of.sort();
        of
    };
    let mut both = vec![removed.id.to_string(), kept.id.to_string()];
    both.sort();
    assert_eq!(queued().await, both);
    org.admin.delete_webhook(removed.id).await.expect("removed");
    assert_eq!(queued().await, [kept.id.to_string()]);
}

/// A claim must answer in time for its messages to be sent and recorded within its lease. One held
/// up (here behind a lock on the outbox, as in a saturated pool or PgBouncer's queue) and answered
/// late would send a message still on its way when the lease ends, and the next claim would send
/// it again. Given up in time instead, it claims nothing, and the message goes once. PostgreSQL
/// only: on SQLite the lock would hold up the instance's start as well.
async fn a_claim_held_up_past_its_time_sends_nothing_so_no_message_goes_twice() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // An endpoint that takes 5 s to answer (well within the webhook's 10 s), counting what arrives.
    let arrived = std::sync::Arc::new(AtomicUsize::new(0));
    let slow = axum::Router::new().fallback({
        let arrived = arrived.clone();
        move || async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(5)).await;
            reqwest::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("its address"));
    let endpoint = tokio::spawn(async move { axum::serve(listener, slow).await });
    // The first instance looked for messages once, at start: the booking's wait for the second.
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.mail_poll_ms = 3_600_000;
        c.webhook_allow_private = true;
    })
    .await;
    let org = app.org("UTC").await;
    let booked_only = CreateWebhook { url, events: Some(vec!["appointment.booked".into()]) };
    org.admin.create_webhook(&booked_only).await.expect("created");
    let provider = org.provider().await;
    org.agent.book(&booking(provider.id, days_ahead(4), "10:00")).await.expect("booked");

    // Held 21 s: the first claim, answered then, would post until 26 s, past its 25 s lease.
    let (held, locked) = hold_the_write_lock(Backend::Postgres, app.db.url.clone(), "outbox", Duration::from_secs(21));
    locked.await.expect("the outbox is locked");
    let started = tokio::time::Instant::now();
    // A delivery may take 20 s (a webhook's lookup and POST): a claim with a 25 s lease has 4 s.
    let second = app
        .another_instance_with(|c| {
            c.mail_lease_secs = 25;
            c.webhook_allow_private = true;
        })
        .await;
    // Meanwhile each claim given up ends its statement too (its statement_timeout is the time it
    // had), so none is still waiting on the lock long past its 4 s: a claim given up does not keep
    // a connection out of the pool until the lock goes.
    tokio::time::sleep_until(started + Duration::from_secs(15)).await;
    let mut watcher = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await.expect("connect");
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND state = 'active'
                     AND query LIKE 'UPDATE outbox SET dead_at%' AND now() - query_start > interval '9 seconds'";
    let (stale,): (i64,) = sqlx::query_as(waiting).fetch_one(&mut watcher).await.expect("activity");
    assert_eq!(stale, 0, "a claim given up still waits on the lock");
    held.await.expect("unlocked");
    // Until 50 s: also a claim given up just as it committed (its messages then wait for its
    // lease, past 42 s) has posted by then.
    tokio::time::sleep_until(started + Duration::from_secs(50)).await;
    assert_eq!(arrived.load(Ordering::SeqCst), 1, "the message went once");
    drop(second);
    endpoint.abort();
}

on_both_backends!(
    every_change_reaches_the_endpoint_signed_and_retried_with_one_id,
    an_endpoint_gets_only_the_events_it_asked_for,
    confirming_through_the_link_is_announced,
    endpoints_inside_the_network_and_bad_requests_are_refused,
    endpoints_that_hang_delay_no_other_message,
    clinics_whose_endpoints_hang_hold_up_no_other_clinic_and_no_patient,
    a_removed_webhooks_queued_messages_go_with_it,
);

on_postgres_only!(a_claim_held_up_past_its_time_sends_nothing_so_no_message_goes_twice);
