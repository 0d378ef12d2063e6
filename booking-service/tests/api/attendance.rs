//! Attendance (docs/API.md, Appointments): after its start an appointment is marked `completed` or
//! `no_show`, once, from `pending` or `confirmed` only; before its start, never.

use crate::helpers::*;
use booking_service::domain::{AppointmentId, OrgId};
use booking_service::store::outbox_kind;
use shared::api::{AppointmentQuery, AppointmentStatus, BookingInput, RescheduleRequest};
use uuid::Uuid;

/// Moves an appointment two days into the past, straight in the database: the API books only in
/// the future, and the tests do not wait for time to pass.
pub(crate) async fn backdate(app: &TestApp, id: Uuid) {
    shift(app, id, chrono::Duration::days(2)).await;
}

/// Moves an appointment `by` earlier, straight in the database.
pub(crate) async fn shift(app: &TestApp, id: Uuid, by: chrono::Duration) {
    let sql = "UPDATE appointments SET starts_at = starts_at - $2, ends_at = ends_at - $2,
               blocked_from = blocked_from - $2, blocked_until = blocked_until - $2 WHERE id = $1";
    // Instants are kept to the microsecond.
    let by_us = by.num_microseconds().expect("a shift of less than 292,000 years");
    let changed = if app.db.url.starts_with("sqlite:") {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.db.url).await.expect("connect");
        sqlx::query(sql).bind(id.to_string()).bind(by_us).execute(&mut conn).await.expect("update").rows_affected()
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await.expect("connect");
        let by = sqlx::postgres::types::PgInterval { months: 0, days: 0, microseconds: by_us };
        sqlx::query(sql).bind(id).bind(by).execute(&mut conn).await.expect("update").rows_affected()
    };
    assert_eq!(changed, 1);
}

async fn attendance_is_marked_once_after_the_start(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("America/Chicago").await;
    let provider = org.provider().await;
    let came = org.staff.book(&booking(provider.id, days_ahead(1), "10:00")).await.expect("booked").appointment_id;
    let missed = org.staff.book(&booking(provider.id, days_ahead(1), "11:00")).await.expect("booked").appointment_id;
    assert_error(org.staff.complete(came).await, 409, "invalid_state");
    assert_error(org.staff.no_show(came).await, 409, "invalid_state");

    backdate(&app, came).await;
    backdate(&app, missed).await;
    assert_error(org.agent.complete(came).await, 403, "forbidden");
    let done = org.staff.complete(came).await.expect("completed");
    assert_eq!(done.status, AppointmentStatus::Completed);
    assert_error(org.staff.no_show(came).await, 409, "invalid_state");
    assert_error(org.staff.cancel(came, None).await, 409, "invalid_state");
    let back = RescheduleRequest {
        appointment_date: Some(date_str(days_ahead(5))),
        appointment_time: Some("10:00".into()),
        ..Default::default()
    };
    assert_error(org.staff.reschedule(came, &back).await, 409, "invalid_state");
    assert_eq!(org.admin.no_show(missed).await.expect("marked").status, AppointmentStatus::NoShow);

    let query = AppointmentQuery { status: Some("no_show".into()), ..Default::default() };
    let listed = org.staff.appointments(&query).await.expect("listed");
    assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), [missed]);
    let trail = app
        .store
        .audit_trail(org.id.into(), booking_service::domain::AppointmentId(came).into(), &every())
        .await
        .map(|page| page.items);
    let actions: Vec<String> = trail.expect("audit").into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["booked", "completed"]);

    let other = app.org("UTC").await;
    assert_error(other.staff.complete(missed).await, 404, "not_found");
    assert_error(org.staff.complete(Uuid::new_v4()).await, 404, "not_found");
}

/// A clinic tidying up an appointment whose time has passed (never marked) cancels it without
/// telling the patient, by email or SMS, of a cancelled time already behind them.
async fn a_past_appointment_cancelled_is_not_announced_to_the_patient(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let mut input = booking(provider.id, days_ahead(1), "10:00");
    input.patient_email = Some("ada@example.com".into());
    let past = org.staff.book(&input).await.expect("booked").appointment_id;
    let upcoming = org.staff.book(&BookingInput { appointment_time: Some("11:00".into()), ..input }).await;
    let upcoming = upcoming.expect("booked").appointment_id;
    backdate(&app, past).await;
    for id in [past, upcoming] {
        org.staff.cancel(id, None).await.expect("cancelled");
    }
    let notices = async |id| {
        let jobs = app.store.outbox(OrgId(org.id), AppointmentId(id)).await.expect("outbox");
        let mut kinds: Vec<_> =
            jobs.into_iter().map(|j| j.kind).filter(|k| outbox_kind::CANCELLATIONS.contains(&k.as_str())).collect();
        kinds.sort();
        kinds
    };
    assert_eq!(notices(upcoming).await.len(), 2, "an upcoming one is announced by email and SMS");
    assert_eq!(notices(past).await, Vec::<String>::new());
}

on_both_backends!(
    attendance_is_marked_once_after_the_start,
    a_past_appointment_cancelled_is_not_announced_to_the_patient
);
