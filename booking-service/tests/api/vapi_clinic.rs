//! The voice agent's clinic (docs/API.md, Voice agent): the Vapi settings, the assistant-request
//! and transfer-destination-request answers, and the call records kept from end-of-call reports
//! with the appointments each call's tool calls changed.

use crate::helpers::*;
use crate::vapi::{call, clinic, message, only, post, CALLER};
use chrono::Utc;
use serde_json::{json, Value};
use shared::api::{VapiSettings, WindowQuery};

fn bare(kind: &str, call_id: &str) -> Value {
    json!({"message": {"type": kind, "timestamp": 1767201234567u64,
        "call": {"id": call_id, "type": "inboundPhoneCall", "customer": {"number": CALLER}},
        "phoneNumber": {"number": "+15557654321"}}})
}

fn report(call_id: &str, summary: &str, started: &str) -> Value {
    json!({"message": {"type": "end-of-call-report", "endedReason": "customer-ended-call",
        "startedAt": started, "endedAt": "2027-01-15T14:05:00.000Z",
        "analysis": {"summary": summary}, "transcript": "AI: Hello. User: Hi.",
        "artifact": {"messages": [{"role": "bot", "message": "Hello"}]},
        "call": {"id": call_id, "type": "inboundPhoneCall", "customer": {"number": CALLER}}}})
}

async fn an_admin_sets_the_assistant_and_the_front_desk_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, _) = clinic(&app).await;
    assert_eq!(org.admin.vapi_settings().await.expect("read"), VapiSettings::default());
    let wanted = VapiSettings {
        assistant_id: Some("5b2c1a9e-5f3d-4c5e-9a57-3f1d2e4b6c7a".into()),
        transfer_number: Some("+1 (555) 010-2000".into()),
    };
    let saved = org.admin.set_vapi_settings(&wanted).await.expect("saved");
    assert_eq!(saved.transfer_number.as_deref(), Some("+15550102000"), "kept as E.164");
    assert_eq!(org.admin.vapi_settings().await.expect("read"), saved);
    for bad in [
        VapiSettings { assistant_id: Some("a b".into()), ..Default::default() },
        VapiSettings { assistant_id: Some("x".repeat(101)), ..Default::default() },
        VapiSettings { transfer_number: Some("front desk".into()), ..Default::default() },
    ] {
        assert_error(org.admin.set_vapi_settings(&bad).await, 422, "validation_failed");
    }
    assert_error(org.staff.set_vapi_settings(&wanted).await, 403, "forbidden");
    assert_error(org.agent.vapi_settings().await, 403, "forbidden");
    let other = app.org("UTC").await;
    assert_eq!(other.admin.vapi_settings().await.expect("read"), VapiSettings::default());
    org.admin.set_vapi_settings(&VapiSettings::default()).await.expect("cleared");
    assert_eq!(org.admin.vapi_settings().await.expect("read"), VapiSettings::default());
}

async fn an_assistant_request_is_answered_with_the_clinics_own_today(backend: Backend) {
    // 08:05 in Auckland, when UTC's date is still the day before.
    let date = (Utc::now() + chrono::Duration::days(30)).date_naive();
    let (app, _clock) =
        crate::voice_time::app_at(backend, crate::voice_time::at("Pacific/Auckland", date, "08:05")).await;
    let org = app.org_named("Harbour Clinic", "Pacific/Auckland").await;
    org.provider_with(shared::api::CreateProvider {
        name: "Dr. Ngata".into(),
        working_hours: Some(nine_to_five(&[
            shared::api::Weekday::Mon,
            shared::api::Weekday::Tue,
            shared::api::Weekday::Wed,
            shared::api::Weekday::Thu,
            shared::api::Weekday::Fri,
        ])),
        ..Default::default()
    })
    .await;
    let unset = post(&org.agent, &bare("assistant-request", "call-a")).await;
    assert!(unset["error"].as_str().is_some_and(|e| e.contains("isn't set up")), "{unset}");
    assert!(unset.get("assistantId").is_none());

    let assistant = "asst-harbour-1";
    let settings = VapiSettings { assistant_id: Some(assistant.into()), transfer_number: None };
    org.admin.set_vapi_settings(&settings).await.expect("saved");
    let answer = post(&org.agent, &bare("assistant-request", "call-a")).await;
    assert_eq!(answer["assistantId"], assistant);
    let vars = &answer["assistantOverrides"]["variableValues"];
    assert_eq!(vars["clinic_name"], "Harbour Clinic");
    assert_eq!(vars["timezone"], "Pacific/Auckland");
    assert_eq!(vars["today"], date.format("%Y-%m-%d").to_string(), "{vars}");
    assert_eq!(vars["weekday"], date.format("%A").to_string(), "{vars}");
    assert_eq!(vars["now"], "08:05", "{vars}");
    assert_eq!(vars["opening_hours"], "Monday to Friday 9 AM to 5 PM; closed Saturday and Sunday");
}

async fn a_transfer_goes_to_the_front_desk_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, _) = clinic(&app).await;
    let unset = post(&org.agent, &bare("transfer-destination-request", "call-t")).await;
    assert!(unset["error"].as_str().is_some_and(|e| e.contains("no front-desk number")), "{unset}");
    let settings = VapiSettings { assistant_id: None, transfer_number: Some("+15550102000".into()) };
    org.admin.set_vapi_settings(&settings).await.expect("saved");
    let answer = post(&org.agent, &bare("transfer-destination-request", "call-t")).await;
    assert_eq!(answer["destination"]["type"], "number");
    assert_eq!(answer["destination"]["number"], "+15550102000");
    assert!(answer["destination"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn a_call_is_recorded_once_with_the_appointments_it_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app).await;
    let date = date_str(days_ahead(9));
    let book = |id: &str, time: &str| {
        call(
            id,
            "book_appointment",
            json!({"provider_id": smith.id, "appointment_date": date, "appointment_time": time, "patient_name": "Ada"}),
        )
    };
    only(&post(&org.agent, &message(vec![book("b1", "10:00")], Some(CALLER), "call-1")).await).expect("booked");
    only(&post(&org.agent, &message(vec![book("b2", "11:00")], Some(CALLER), "call-1")).await).expect("booked");
    only(&post(&org.agent, &message(vec![book("b3", "14:00")], Some(CALLER), "call-2")).await).expect("booked");
    let all = org.staff.appointments(&Default::default()).await.expect("list");
    let by_time =
        |hm: &str| all.iter().find(|a| a.starts_at.format("%H:%M").to_string() == hm).expect("booked").clone();
    let (first, second, third) = (by_time("10:00"), by_time("11:00"), by_time("14:00"));
    let cancel = call("c1", "cancel_appointment", json!({"confirmation_code": second.confirmation_code}));
    only(&post(&org.agent, &message(vec![cancel], Some(CALLER), "call-3")).await).expect("cancelled");

    assert_eq!(post(&org.agent, &report("call-1", "Booked twice.", "2027-01-15T14:00:00.000Z")).await, json!({}));
    post(&org.agent, &report("call-1", "A second report changes nothing.", "2027-01-15T15:00:00Z")).await;
    post(&org.agent, &report("call-3", "Cancelled one.", "2027-01-15T16:00:00Z")).await;
    let calls = org.staff.calls(&WindowQuery::default()).await.expect("calls");
    assert_eq!(calls.len(), 2, "call-2 sent no report");
    assert_eq!(calls[0].call_id, "call-1");
    assert_eq!(calls[0].summary.as_deref(), Some("Booked twice."));
    assert_eq!(calls[0].ended_reason.as_deref(), Some("customer-ended-call"));
    assert_eq!(calls[0].customer_number.as_deref(), Some(CALLER));
    assert_eq!(calls[0].appointment_ids, vec![first.id, second.id], "in the order they were booked");
    assert_eq!(calls[1].appointment_ids, vec![second.id], "the call that cancelled it");
    assert!(!calls.iter().any(|c| c.appointment_ids.contains(&third.id)));

    let page = org.staff.calls(&WindowQuery { limit: Some(1), ..Default::default() }).await.expect("paged");
    assert_eq!(page.len(), 2, "every page followed");
    let later = WindowQuery { from: Some("2027-01-15T15:30:00Z".into()), ..Default::default() };
    assert_eq!(org.staff.calls(&later).await.expect("filtered").len(), 1);
    assert_error(org.agent.calls(&WindowQuery::default()).await, 403, "forbidden");
    let other = app.org("UTC").await;
    assert!(other.staff.calls(&WindowQuery::default()).await.expect("calls").is_empty());
}

/// An end-of-call report carries the call's transcript: a long call's is read (up to 1 MiB), and
/// a report without a call id is answered and kept nowhere.
async fn a_long_calls_report_is_read_and_an_anonymous_one_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, _) = clinic(&app).await;
    let mut long = report("call-long", "Long call.", "2027-01-15T14:00:00Z");
    long["message"]["transcript"] = Value::String("User: hello. ".repeat(20_000));
    assert_eq!(post(&org.agent, &long).await, json!({}));
    let anonymous = json!({"message": {"type": "end-of-call-report", "summary": "who?"}});
    assert_eq!(post(&org.agent, &anonymous).await, json!({}));
    let calls = org.staff.calls(&WindowQuery::default()).await.expect("calls");
    assert_eq!(calls.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(), ["call-long"]);
}

/// Vapi waits 7.5 s for an assistant-request, then fails the call without a word (as on any status
/// but 200): a database too slow to answer within the deadline gets a sentence Vapi can speak. (PostgreSQL: a
/// table lock holds the read back; SQLite's readers are never held.)
async fn a_slow_assistant_request_is_answered_with_a_sentence_in_time_on_postgres() {
    use sqlx::Connection;
    let app = spawn_app_with(Backend::Postgres, |c| c.vapi_deadline_ms = 1000).await;
    let (org, _) = clinic(&app).await;
    let settings = VapiSettings { assistant_id: Some("asst-1".into()), transfer_number: None };
    org.admin.set_vapi_settings(&settings).await.expect("saved");
    let mut lock = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    sqlx::query("BEGIN").execute(&mut lock).await.expect("begin");
    sqlx::query("LOCK TABLE providers IN ACCESS EXCLUSIVE MODE").execute(&mut lock).await.expect("lock");
    let started = std::time::Instant::now();
    let answer = post(&org.agent, &bare("assistant-request", "call-slow")).await;
    let waited = started.elapsed();
    sqlx::query("ROLLBACK").execute(&mut lock).await.expect("unlock");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("isn't answering right now")), "{answer}");
    let at_the_deadline = std::time::Duration::from_millis(900)..std::time::Duration::from_secs(5);
    assert!(
        at_the_deadline.contains(&waited),
        "held by the lock until the deadline, not the request timeout: {waited:?}"
    );
    let answer = post(&org.agent, &bare("assistant-request", "call-slow")).await;
    assert_eq!(answer["assistantId"], "asst-1", "and in full once the database answers");
    // A failure (here, the clinic deleted under its agent's token) is a sentence too.
    app.platform.delete_organization(org.id).await.expect("deleted");
    let answer = post(&org.agent, &bare("assistant-request", "call-gone")).await;
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("isn't answering right now")), "{answer}");
}

on_both_backends!(
    an_admin_sets_the_assistant_and_the_front_desk_number,
    an_assistant_request_is_answered_with_the_clinics_own_today,
    a_transfer_goes_to_the_front_desk_number,
    a_call_is_recorded_once_with_the_appointments_it_changed,
    a_long_calls_report_is_read_and_an_anonymous_one_ignored,
);

on_postgres_only!(a_slow_assistant_request_is_answered_with_a_sentence_in_time_on_postgres);
