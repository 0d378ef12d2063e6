//! The retention job deletes idempotency records, remembered tool answers and delivered or dead
//! outbox messages once they are old, and nothing else.

use crate::helpers::*;
use booking_service::retention;
use booking_service::store::Delivery;
use chrono::Duration;
use reqwest::Method;
use serde_json::json;

async fn retention_prunes_only_what_has_served_its_time(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below stay undelivered.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let mut input = booking(provider, days_ahead(3), "10:00");
    input.patient_email = Some("ada@example.com".into());
    let first = org.agent.book_idempotent(&input, "key-1").await.expect("booked");
    let mut later = input.clone();
    later.appointment_time = Some("11:00".into());
    let second = org.agent.book(&later).await.expect("booked");
    // A change's answer is remembered (a read's is not), refusal or not.
    let cancel = json!({"name": "cancel_appointment", "arguments": {"confirmation_code": "ZZZZZZ"}});
    let call = json!({"id": "tc-1", "type": "function", "function": cancel});
    let message = json!({"message": {"type": "tool-calls", "toolCallList": [call], "call": {"id": "call-1"}}});
    let answered = org.agent.request(Method::POST, "/api/vapi/tools").json(&message).send().await.expect("sent");
    assert_eq!(answered.status(), 200);
    let store = &app.store;
    let (org_id, first_id) = (org.id.into(), first.appointment_id.into());
    // Every message of the first booking is delivered (its email, SMS and reminders alike).
    let sent = store.outbox(org_id, first_id).await.expect("outbox");
    for message in &sent {
        store.record_delivery(message, &Delivery::Sent).await.expect("delivered");
    }
    // Of the second booking's, one is given up on (a dead letter) and one dropped on purpose,
    // which removes it at once; the rest wait.
    let second_messages = store.outbox(org_id, second.appointment_id.into()).await.expect("outbox");
    assert!(second_messages.len() > 2);
    let dead = Delivery::Dead { error: "550 no such mailbox".into() };
    store.record_delivery(&second_messages[0], &dead).await.expect("dead");
    let dropped = Delivery::Dropped { reason: "the phone texted STOP to this sender" };
    store.record_delivery(&second_messages[1], &dropped).await.expect("dropped");
    let waiting = second_messages.len() - 2;
    assert_eq!(store.outbox(org_id, second.appointment_id.into()).await.expect("outbox").len(), waiting + 1);

    assert_eq!(retention::prune(store, Duration::days(30)).await.expect("pruned"), 0, "nothing is old yet");
    // With a cut-off in the future, everything of those kinds has served its time.
    // The idempotency record, the remembered tool answer, the delivered messages and the dead one.
    assert_eq!(retention::prune(store, Duration::days(-1)).await.expect("pruned"), 2 + sent.len() as u64 + 1);

    // The delivered and dead messages are gone; the waiting ones, the audit trail and the bookings stay.
    assert!(store.outbox(org_id, first_id).await.expect("outbox").is_empty());
    assert_eq!(store.outbox(org_id, second.appointment_id.into()).await.expect("outbox").len(), waiting);
    assert!(!store
        .audit_trail(org_id, first_id.into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit")
        .is_empty());
    assert_eq!(org.staff.appointments(&Default::default()).await.expect("listed").len(), 2);
    // The idempotency record is gone: the same key no longer replays the first answer.
    assert_error(org.agent.book_idempotent(&input, "key-1").await, 409, "slot_unavailable");
}

on_both_backends!(retention_prunes_only_what_has_served_its_time);
