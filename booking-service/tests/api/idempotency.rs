use crate::helpers::*;
use futures::future::join_all;
use shared::api::{AppointmentQuery, BookingInput, CreateAppointmentType, UpdateAppointmentType};

async fn a_retry_with_the_same_key_returns_the_first_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = booking(provider.id, days_ahead(4), "10:00");
    let first = org.agent.book_idempotent(&input, "call-123-turn-4").await.expect("first");
    let retry = org.agent.book_idempotent(&input, "call-123-turn-4").await.expect("a retry is answered 201 too");
    assert_eq!(retry.appointment_id, first.appointment_id);
    assert_eq!(retry.confirmation_code, first.confirmation_code);
    assert_eq!(retry.starts_at, first.starts_at);
    let all = org.staff.appointments(&AppointmentQuery::default()).await.expect("list");
    assert_eq!(all.len(), 1, "the retry booked nothing new");

    let other_body = booking(provider.id, days_ahead(4), "11:00");
    assert_error(org.agent.book_idempotent(&other_body, "call-123-turn-4").await, 422, "idempotency_conflict");
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1);

    // The voice tools' own keys are not a client's to take (a caller's booking would find its key
    // taken and be refused).
    let tools_key = "vapi-call:call-1:x";
    assert_error(org.staff.book_idempotent(&other_body, tools_key).await, 422, "validation_failed");

    // A quoted key (RFC 8941) is its inner text; a stray quote is part of the key sent, which is
    // then another key than the one without it.
    let quoted = org.agent.book_idempotent(&input, "\"call-123-turn-4\"").await.expect("the same key, quoted");
    assert_eq!(quoted.appointment_id, first.appointment_id);
    let stray = org.agent.book_idempotent(&other_body, "call-123-turn-4\"").await.expect("another key");
    assert_ne!(stray.appointment_id, first.appointment_id);
    assert_error(org.agent.book_idempotent(&input, "\"a\\\"b\"").await, 422, "validation_failed");

    // Keys are scoped by organization: another clinic's identical key is its own.
    let other = app.org("UTC").await;
    let theirs = other.provider().await;
    other
        .agent
        .book_idempotent(&booking(theirs.id, days_ahead(4), "10:00"), "call-123-turn-4")
        .await
        .expect("independent key");
}

async fn concurrent_retries_with_one_key_book_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = booking(provider.id, days_ahead(4), "13:00");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let answers = join_all((0..10).map(|_| {
        let agent = org.agent.clone();
        let input = input.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            agent.book_idempotent(&input, "same-key").await
        })
    }))
    .await;
    let ids: Vec<_> = answers
        .into_iter()
        .map(|a| a.expect("task").expect("every retry is answered with the booking").appointment_id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1);
}

/// A retry whose first answer was lost finds it even when the type it booked has since been
/// closed to voice agents or retired: the client must learn it holds the slot, not that it
/// failed (it was refused 403, then 422, while its booking stood and its messages went out).
async fn a_retry_finds_its_first_answer_after_its_type_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let kind = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            name: "Check-up".into(),
            duration_minutes: 30,
            ..Default::default()
        })
        .await
        .expect("type");
    let input = BookingInput { appointment_type_id: Some(kind.id), ..booking(provider.id, days_ahead(4), "10:00") };
    let first = org.agent.book_idempotent(&input, "call-9-turn-2").await.expect("first");

    let staff_only = UpdateAppointmentType { bookable_by_agent: Some(false), ..Default::default() };
    org.admin.update_appointment_type(kind.id, &staff_only).await.expect("staff only now");
    let retry = org.agent.book_idempotent(&input, "call-9-turn-2").await.expect("the first answer");
    assert_eq!(
        (retry.appointment_id, retry.confirmation_code),
        (first.appointment_id, first.confirmation_code.clone())
    );
    org.admin.deactivate_appointment_type(kind.id).await.expect("retired");
    let retry = org.agent.book_idempotent(&input, "call-9-turn-2").await.expect("the first answer");
    assert_eq!(retry.appointment_id, first.appointment_id);

    // A new request is judged by the type as it is now.
    let later = BookingInput { appointment_type_id: Some(kind.id), ..booking(provider.id, days_ahead(4), "11:00") };
    assert_error(org.agent.book_idempotent(&later, "call-9-turn-3").await, 422, "validation_failed");
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("list").len(), 1);
}

on_both_backends!(
    a_retry_with_the_same_key_returns_the_first_answer,
    concurrent_retries_with_one_key_book_once,
    a_retry_finds_its_first_answer_after_its_type_changed
);
