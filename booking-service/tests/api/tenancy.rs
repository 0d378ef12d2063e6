use crate::helpers::*;
use booking_service::domain::AppointmentId;
use booking_service::store::PageRequest;
use shared::api::{
    AppointmentQuery, CreateAppointmentType, CreateClosure, CreateTimeOff, RescheduleRequest, TimeOffQuery,
    UpdateAppointmentType, UpdateProvider,
};
use sqlx::Connection;

/// Every route naming a resource by id answers 404 `not_found` when the caller's organization (B)
/// names one of another's (A), for reads and for every kind of write (providers, appointment
/// types, time off, closures, appointments and their status changes), never 409 or 422, which
/// would tell B the id exists; and none of A's resources changed.
async fn every_route_answers_404_for_another_organizations_resources(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.org("UTC").await;
    let b = app.org("UTC").await;
    let provider = a.provider().await;
    let booked = a.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    let date = date_str(days_ahead(3));
    let kind = CreateAppointmentType { name: "Checkup".into(), duration_minutes: 30, ..Default::default() };
    let kind = a.admin.create_appointment_type(&kind).await.expect("type");
    let away = |day: i64, from: &str, to: &str| CreateTimeOff {
        starts_at: format!("{}T{from}:00Z", date_str(days_ahead(day))),
        ends_at: format!("{}T{to}:00Z", date_str(days_ahead(day))),
        reason: None,
    };
    let time_off = a.staff.create_time_off(provider.id, &away(5, "09:00", "10:00")).await.expect("time off");
    let closure = CreateClosure { date: date_str(days_ahead(20)), end_date: None, reason: None };
    let closure = a.admin.create_closure(&closure).await.expect("closure");
    let a_time_off = |client: &shared::ApiClient| {
        let (client, provider) = (client.clone(), provider.id);
        async move { client.time_off(provider, &TimeOffQuery::default()).await.expect("time off") }
    };
    let time_off_before = a_time_off(&a.staff).await;

    assert_error(b.admin.provider(provider.id).await, 404, "not_found");
    assert_error(
        b.admin.update_provider(provider.id, &UpdateProvider { name: Some("Mine".into()), ..Default::default() }).await,
        404,
        "not_found",
    );
    assert_error(b.admin.deactivate_provider(provider.id).await, 404, "not_found");
    assert_error(b.agent.availability(provider.id, &date).await, 404, "not_found");
    assert_error(b.agent.book(&booking(provider.id, days_ahead(3), "11:00")).await, 404, "not_found");
    assert_error(b.staff.appointment(booked.appointment_id).await, 404, "not_found");
    assert_error(b.staff.cancel(booked.appointment_id, None).await, 404, "not_found");
    let move_it = RescheduleRequest {
        appointment_date: Some(date.clone()),
        appointment_time: Some("12:00".into()),
        duration_minutes: None,
        appointment_type_id: None,
    };
    assert_error(b.staff.reschedule(booked.appointment_id, &move_it).await, 404, "not_found");
    assert_error(b.staff.no_show(booked.appointment_id).await, 404, "not_found");
    assert_error(b.staff.complete(booked.appointment_id).await, 404, "not_found");
    let confirm =
        b.staff.request(reqwest::Method::POST, &format!("/api/appointments/{}/confirm", booked.appointment_id));
    assert_error(b.staff.send::<serde_json::Value>(confirm).await, 404, "not_found");
    let rename = UpdateAppointmentType { name: Some("Mine".into()), duration_minutes: Some(60), ..Default::default() };
    assert_error(b.admin.update_appointment_type(kind.id, &rename).await, 404, "not_found");
    assert_error(b.admin.deactivate_appointment_type(kind.id).await, 404, "not_found");
    assert_error(b.admin.create_time_off(provider.id, &away(6, "09:00", "12:00")).await, 404, "not_found");
    assert_error(b.staff.time_off(provider.id, &TimeOffQuery::default()).await, 404, "not_found");
    assert_error(b.admin.delete_time_off(time_off.id).await, 404, "not_found");
    assert_error(b.admin.delete_closure(closure.id).await, 404, "not_found");
    assert!(b.admin.providers().await.expect("list").is_empty());
    assert!(b.staff.appointments(&AppointmentQuery::default()).await.expect("list").is_empty());
    assert!(b
        .staff
        .appointments(&AppointmentQuery { provider_id: Some(provider.id), ..Default::default() })
        .await
        .expect("list")
        .is_empty());

    // Nothing of A changed, and B could book the same wall-clock time with its own provider.
    let still = a.staff.appointment(booked.appointment_id).await.expect("still there");
    assert_eq!(still.status, shared::api::AppointmentStatus::Pending);
    assert_eq!(still.starts_at, booked.starts_at);
    assert_eq!(a.admin.provider(provider.id).await.expect("provider").name, "Dr. Smith");
    assert_eq!(a.admin.appointment_type(kind.id).await.expect("type"), kind);
    assert_eq!(a_time_off(&a.staff).await, time_off_before);
    assert_eq!(time_off_before.iter().map(|t| t.id).collect::<Vec<_>>(), [time_off.id]);
    assert_eq!(a.admin.closures().await.expect("closures").iter().map(|c| c.id).collect::<Vec<_>>(), [closure.id]);
    let own = b.provider().await;
    b.agent.book(&booking(own.id, days_ahead(3), "10:00")).await.expect("B books its own provider");
}

/// How many rows of `org` each table with an `org_id` column holds, read through the test
/// database's own URL (a superuser on PostgreSQL, past the row-level security forced on the
/// tables' owner too), the tables found in the catalogue so that a new one is counted too.
async fn rows_of(app: &TestApp, backend: Backend, org: uuid::Uuid) -> Vec<(String, i64)> {
    let mut counts = Vec::new();
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND column_name = 'org_id' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("tables");
            for (table,) in tables {
                let sql = format!("SELECT count(*) FROM {table} WHERE org_id = $1");
                let (n,): (i64,) = sqlx::query_as(&sql).bind(org).fetch_one(&mut conn).await.expect("count");
                counts.push((table, n));
            }
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("connect");
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c
                 WHERE m.type = 'table' AND c.name = 'org_id' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .expect("tables");
            for (table,) in tables {
                let sql = format!("SELECT count(*) FROM {table} WHERE org_id = $1");
                let (n,): (i64,) =
                    sqlx::query_as(&sql).bind(org.to_string()).fetch_one(&mut conn).await.expect("count");
                counts.push((table, n));
            }
        }
    }
    assert!(counts.len() >= 10, "tables with an org_id: {counts:?}");
    counts
}

/// A "Checkup" type of the organization, and an appointment of it with `provider` four days on.
async fn booked_as_a_type(org: &TestOrg, provider: uuid::Uuid) -> shared::api::BookingResponse {
    let kind = CreateAppointmentType { name: "Checkup".into(), duration_minutes: 30, ..Default::default() };
    let kind = org.admin.create_appointment_type(&kind).await.expect("type");
    let typed =
        shared::api::BookingInput { appointment_type_id: Some(kind.id), ..booking(provider, days_ahead(4), "10:00") };
    org.agent.book(&typed).await.expect("booked as the type")
}

async fn deleting_an_organization_removes_everything_of_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.org("UTC").await;
    let b = app.org("UTC").await;
    let provider = a.provider().await;
    let booked = a.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    // An appointment of a kind of visit too: its type goes with the organization, and no foreign
    // key from the appointment holds the deletion up.
    booked_as_a_type(&a, provider.id).await;
    let kept = b.provider().await;
    let before = rows_of(&app, backend, a.id).await;
    for table in ["providers", "appointments", "appointment_types", "audit_log", "outbox"] {
        assert!(before.iter().any(|(t, n)| t == table && *n > 0), "{table} holds rows of it: {before:?}");
    }
    app.platform.delete_organization(a.id).await.expect("deleted");
    let after = rows_of(&app, backend, a.id).await;
    assert!(after.iter().all(|(_, n)| *n == 0), "rows left behind: {after:?}");
    assert!(rows_of(&app, backend, b.id).await.iter().any(|(_, n)| *n > 0), "the other organization's stay");
    assert_error(app.platform.delete_organization(a.id).await, 404, "not_found");
    assert!(app
        .store
        .audit_trail(a.id.into(), AppointmentId(booked.appointment_id).into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit")
        .is_empty());
    assert!(app.store.appointment(a.id.into(), AppointmentId(booked.appointment_id)).await.expect("read").is_none());
    let page = app.store.providers(a.id.into(), &PageRequest::first(10)).await.expect("read");
    assert!(page.items.is_empty());
    b.admin.provider(kept.id).await.expect("the other organization is untouched");
}

on_both_backends!(
    every_route_answers_404_for_another_organizations_resources,
    deleting_an_organization_removes_everything_of_it,
);

/// A booking in flight when its organization is deleted (its row inserted, not yet committed, so
/// unseen by the deletion's first statement) is waited for and deleted with the rest, an
/// appointment of a type among them: 204 and nothing left, whatever order PostgreSQL runs the
/// cascades from the organization in (the type's foreign key from the appointment has none).
async fn a_booking_in_flight_is_deleted_with_its_organization() {
    let app = spawn_app(Backend::Postgres).await;
    let a = app.org("UTC").await;
    let provider = a.provider().await;
    let booked = booked_as_a_type(&a, provider.id).await;

    // Another of the type, written as a booking writes it, its transaction still open.
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
    let mut flight = conn.begin().await.expect("begin");
    let day = "interval '1 day'";
    for sql in [
        "CREATE TEMP TABLE flight ON COMMIT DROP AS SELECT * FROM appointments WHERE id = $1".to_owned(),
        format!(
            "UPDATE flight SET id = gen_random_uuid(), confirmation_code = 'ZZZZZZ', starts_at = starts_at + {day},
                    ends_at = ends_at + {day}, blocked_from = blocked_from + {day}, blocked_until = blocked_until + {day}"
        ),
        "INSERT INTO appointments SELECT * FROM flight".to_owned(),
    ] {
        sqlx::query(&sql).bind(booked.appointment_id).execute(&mut *flight).await.expect("in flight");
    }
    let deleting = tokio::spawn({
        let (platform, id) = (app.platform.clone(), a.id);
        async move { platform.delete_organization(id).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!deleting.is_finished(), "the deletion waits for the booking in flight");
    flight.commit().await.expect("the booking commits");
    deleting.await.expect("joined").expect("deleted");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments WHERE org_id = $1")
        .bind(a.id)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(left, 0, "the booking in flight went with its organization");
}

/// Row-level security proven, not assumed: under the request role with organization A set, a
/// query that names organization B explicitly still sees nothing of it, and cannot write into it.
async fn row_level_security_hides_other_organizations_from_the_request_role() {
    let app = spawn_app(Backend::Postgres).await;
    let a = app.org("UTC").await;
    let b = app.org("UTC").await;
    let provider_b = b.provider().await;
    let input = shared::api::BookingInput {
        patient_email: Some("ada@example.com".into()),
        ..booking(provider_b.id, days_ahead(3), "10:00")
    };
    b.agent.book_idempotent(&input, "tenancy-b").await.expect("booked");
    let tables = ["providers", "appointments", "audit_log", "outbox", "idempotency_keys"];
    let count_b = |table: &str| format!("SELECT count(*) FROM {table} WHERE org_id = $1");

    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
    for table in tables {
        let held: i64 = sqlx::query_scalar(&count_b(table)).bind(b.id).fetch_one(&mut conn).await.expect("count");
        assert!(held > 0, "organization B has rows in {table} for the request role not to see");
    }
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('role', 'booking_app', true), set_config('app.org_id', $1, true)")
        .bind(a.id.to_string())
        .execute(&mut *tx)
        .await
        .expect("set role and organization");
    let role: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut *tx).await.expect("role");
    assert_eq!(role, "booking_app");
    for table in tables {
        let seen: i64 = sqlx::query_scalar(&count_b(table)).bind(b.id).fetch_one(&mut *tx).await.expect("count");
        assert_eq!(seen, 0, "{table} leaks organization B's rows");
    }
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations").fetch_one(&mut *tx).await.expect("count");
    assert_eq!(orgs, 1, "only its own organization is visible");
    let write = sqlx::query("INSERT INTO providers (id, org_id, name, appointment_minutes, created_at, updated_at) VALUES (gen_random_uuid(), $1, 'x', 30, now(), now())")
        .bind(b.id)
        .execute(&mut *tx)
        .await;
    assert_eq!(sqlstate(write), "42501", "writing into another organization must be refused by the policy");
    tx.rollback().await.ok();

    // Without an organization set, the request role sees nothing at all.
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL ROLE booking_app").execute(&mut *tx).await.expect("role");
    let any: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments").fetch_one(&mut *tx).await.expect("count");
    assert_eq!(any, 0);
    // And the audit log is append-only for it.
    let update = sqlx::query("UPDATE audit_log SET actor = 'mallory'").execute(&mut *tx).await;
    assert_eq!(sqlstate(update), "42501", "the request role may not rewrite the audit log");
    tx.rollback().await.ok();

    // The role really cannot bypass RLS.
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'booking_app'")
            .fetch_one(&mut conn)
            .await
            .expect("role attributes");
    assert!(!superuser && !bypass);
}

/// What a statement expected to be refused was told (or "allowed").
fn refusal(result: Result<(), sqlx::Error>) -> String {
    result.err().map_or_else(|| "allowed".into(), |e| e.to_string())
}

/// Even the table owner cannot rewrite history: the trigger refuses updates and deletes of audit
/// rows while their organization exists.
async fn the_audit_log_is_append_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    // Refused by the trigger, not for any other reason (a misspelt column, a locked file).
    let (update, delete) = match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
            let u = sqlx::query("UPDATE audit_log SET actor = 'mallory'").execute(&mut conn).await;
            let d = sqlx::query("DELETE FROM audit_log").execute(&mut conn).await;
            (refusal(u.map(drop)), refusal(d.map(drop)))
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("connect");
            let u = sqlx::query("UPDATE audit_log SET actor = 'mallory'").execute(&mut conn).await;
            let d = sqlx::query("DELETE FROM audit_log").execute(&mut conn).await;
            (refusal(u.map(drop)), refusal(d.map(drop)))
        }
    };
    for said in [&update, &delete] {
        assert!(said.contains("audit_log is append-only"), "update: {update}; delete: {delete}");
    }
}

mod audit {
    use super::*;
    on_both_backends!(the_audit_log_is_append_only, an_appointment_is_only_of_its_own_clinics_type);
}

/// The database itself keeps an appointment to a type of its own clinic (PostgreSQL by its key,
/// SQLite by a trigger): a write that does not go through the store's checks still cannot file one
/// clinic's appointment under another's type.
async fn an_appointment_is_only_of_its_own_clinics_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.org("UTC").await;
    let b = app.org("UTC").await;
    let ours = booked_as_a_type(&a, a.provider().await.id).await;
    let theirs = booked_as_a_type(&b, b.provider().await.id).await;
    let own_type = "SELECT appointment_type_id FROM appointments WHERE id = $1";
    let file_under = "UPDATE appointments SET appointment_type_id = $1 WHERE id = $2";
    let (refused, kept) = match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
            let kind: uuid::Uuid =
                sqlx::query_scalar(own_type).bind(theirs.appointment_id).fetch_one(&mut conn).await.expect("type");
            let update = sqlx::query(file_under).bind(kind).bind(ours.appointment_id).execute(&mut conn).await;
            let ok = sqlx::query(file_under).bind(kind).bind(theirs.appointment_id).execute(&mut conn).await;
            (refusal(update.map(drop)), refusal(ok.map(drop)))
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("connect");
            let kind: String = sqlx::query_scalar(own_type)
                .bind(theirs.appointment_id.to_string())
                .fetch_one(&mut conn)
                .await
                .expect("type");
            let update =
                sqlx::query(file_under).bind(&kind).bind(ours.appointment_id.to_string()).execute(&mut conn).await;
            let ok =
                sqlx::query(file_under).bind(&kind).bind(theirs.appointment_id.to_string()).execute(&mut conn).await;
            (refusal(update.map(drop)), refusal(ok.map(drop)))
        }
    };
    let said = if backend == Backend::Postgres { "foreign key" } else { "an appointment type of another organization" };
    assert!(refused.contains(said), "{refused}");
    assert_eq!(kept, "allowed", "its own clinic's type is kept");
}

/// Retention's role may delete only messages that have gone: even a statement without the
/// retention query's predicate leaves a message still to be sent.
async fn retention_cannot_delete_a_message_still_to_go() {
    let app = spawn_app(Backend::Postgres).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = shared::api::BookingInput {
        patient_email: Some("ada@example.com".into()),
        ..booking(provider.id, days_ahead(3), "10:00")
    };
    org.agent.book(&input).await.expect("booked");
    // With the service stopped, its dispatcher sends nothing more: one message is marked sent, one
    // given up on, the rest (a reminder at least) still to go.
    let db = app.db.clone();
    app.stop().await.expect("stopped");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let states = "UPDATE outbox SET sent_at = NULL, dead_at = NULL;
                  UPDATE outbox SET sent_at = now() WHERE id = (SELECT min(id::text)::uuid FROM outbox);
                  UPDATE outbox SET dead_at = now() WHERE id = (SELECT max(id::text)::uuid FROM outbox)";
    sqlx::raw_sql(states).execute(&mut conn).await.expect("states set");
    let messages = "SELECT count(*) FROM outbox";
    let queued: i64 = sqlx::query_scalar(messages).fetch_one(&mut conn).await.expect("count");
    assert!(queued >= 3, "the booking queued a message to be sent and its reminders: {queued}");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SET LOCAL ROLE booking_janitor").execute(&mut *tx).await.expect("role");
    let deleted = sqlx::query("DELETE FROM outbox").execute(&mut *tx).await.expect("delete").rows_affected();
    tx.commit().await.expect("commit");
    assert_eq!(deleted, 2, "only the sent message and the one given up on");
    let pending = "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL";
    let left: i64 = sqlx::query_scalar(pending).fetch_one(&mut conn).await.expect("count");
    assert_eq!(left, queued - 2);
}

on_postgres_only!(
    a_booking_in_flight_is_deleted_with_its_organization,
    row_level_security_hides_other_organizations_from_the_request_role,
    retention_cannot_delete_a_message_still_to_go
);
