//! A clinic reads its own organization and renames it or moves it to another zone: what is read
//! in the clinic's zone (working hours, closed days) follows it, on every instance.

use crate::helpers::*;
use booking_service::domain::{ClosureId, OrgId, ProviderId, Zone};
use booking_service::store::{Actor, Closure};
use chrono::Duration;
use reqwest::Method;
use shared::api::{CreateClosure, UpdateOrganization, WindowQuery};

async fn a_clinic_reads_its_organization_and_only_its_admin_changes_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let other = app.org_named("Other Clinic", "Europe/Paris").await;
    for reader in [&org.admin, &org.staff, &org.agent] {
        let own = reader.organization().await.expect("its own organization");
        assert_eq!((own.id, own.name.as_str(), own.timezone.as_str()), (org.id, "Test Clinic", "UTC"));
    }
    let rename = UpdateOrganization { name: Some("Harbour Clinic".into()), ..Default::default() };
    assert_error(org.staff.update_organization(&rename).await, 403, "forbidden");
    assert_error(org.agent.update_organization(&rename).await, 403, "forbidden");
    assert_error(app.platform.organization().await, 403, "forbidden");
    for (field, body) in [
        ("name", UpdateOrganization { name: Some(" ".into()), ..Default::default() }),
        ("timezone", UpdateOrganization { timezone: Some("EST".into()), ..Default::default() }),
    ] {
        let err = assert_error(org.admin.update_organization(&body).await, 422, "validation_failed").to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    let unknown = org.admin.request(Method::PATCH, "/api/org").json(&serde_json::json!({"time_zone": "Asia/Tokyo"}));
    assert_error(org.admin.send::<serde_json::Value>(unknown).await, 422, "validation_failed");
    assert_eq!(org.admin.organization().await.expect("unchanged").timezone, "UTC", "nothing refused was written");

    let renamed = org.admin.update_organization(&rename).await.expect("renamed");
    assert_eq!((renamed.name.as_str(), renamed.timezone.as_str()), ("Harbour Clinic", "UTC"));
    assert_eq!(org.staff.organization().await.expect("read"), renamed);
    let untouched = other.admin.organization().await.expect("the other clinic");
    assert_eq!((untouched.name.as_str(), untouched.timezone.as_str()), ("Other Clinic", "Europe/Paris"));

    let log = org.admin.audit_log(&WindowQuery::default()).await.expect("log");
    let changed: Vec<_> = log.iter().filter(|e| e.action == "organization_changed").collect();
    assert_eq!(changed.len(), 1, "{log:?}");
    assert_eq!((changed[0].subject.as_str(), changed[0].subject_id), ("settings", org.id));
    assert_eq!(changed[0].details, serde_json::json!({"name": "Harbour Clinic"}));
}

/// A clinic created in UTC that is really in Tokyo (UTC+9, no DST) moves there: a provider
/// without a zone of its own is booked in Tokyo's hours at once, even through an instance that had
/// planned bookings from the UTC copy of it, and a closed day is closed from Tokyo's midnight to
/// the next, not UTC's.
async fn a_clinic_moved_to_another_zone_books_and_closes_in_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    lift_caller_quota(&org).await;
    let provider = org.provider().await;
    let closed = days_ahead(10);
    org.admin
        .create_closure(&CreateClosure { date: date_str(closed), end_date: None, reason: None })
        .await
        .expect("closed");
    let other = app.another_instance().await;
    let agent_there = other.client(token(shared::Role::Agent, Some(org.id)));
    // 21:00 UTC the day before the closed day is 06:00 in Tokyo on it.
    let eve = org.agent.book(&booking(provider.id, closed - Duration::days(1), "21:00")).await.expect("open in UTC");
    let before = agent_there.book(&booking(provider.id, closed + Duration::days(3), "10:00")).await;
    assert_eq!(
        before.expect("booked: that instance now knows the provider").starts_at.to_rfc3339()[10..],
        *"T10:00:00+00:00"
    );

    let tokyo = UpdateOrganization { timezone: Some("Asia/Tokyo".into()), ..Default::default() };
    let moved = org.admin.update_organization(&tokyo).await.expect("moved");
    assert_eq!(moved.timezone, "Asia/Tokyo");
    assert_eq!(moved.conflicts, Some(vec![eve.appointment_id]), "the closed day, moved, now meets it");
    assert_eq!(org.admin.provider(provider.id).await.expect("provider").timezone, "Asia/Tokyo");

    let later = agent_there.book(&booking(provider.id, closed + Duration::days(4), "10:00")).await.expect("booked");
    assert_eq!(later.starts_at.to_rfc3339()[10..], *"T10:00:00+09:00", "planned in the clinic's new zone");

    // 05:00 in Tokyo on the closed day is 20:00 UTC the day before: outside the day as UTC
    // closed it, inside it as Tokyo closes it.
    assert_error(org.agent.book(&booking(provider.id, closed, "05:00")).await, 409, "slot_unavailable");
    // 03:00 in Tokyo the day after is 18:00 UTC on the closed day: inside the UTC day, past Tokyo's.
    let after = org.agent.book(&booking(provider.id, closed + Duration::days(1), "03:00")).await;
    assert_eq!(after.expect("open the day after").starts_at.to_rfc3339()[10..], *"T03:00:00+09:00");

    // A closure worked out in UTC by a request that read the zone just before the move is kept at
    // its date in Tokyo: the store takes the zone it locks, not the one it was given.
    let late = closed + Duration::days(7);
    let stale = Closure {
        id: ClosureId::new(),
        org_id: OrgId(org.id),
        first_day: late,
        last_day: late,
        span: Zone::parse("timezone", "UTC").expect("UTC").whole_days(late, late).expect("a day"),
        reason: None,
    };
    app.store.create_closure(&Actor::new(OrgId(org.id), "admin"), &stale).await.expect("closed");
    assert_error(org.agent.book(&booking(provider.id, late, "05:00")).await, 409, "slot_unavailable");
    let closures = org.admin.closures().await.expect("closures");
    assert_eq!(closures.iter().map(|c| (c.date, c.end_date)).collect::<Vec<_>>(), vec![(closed, closed), (late, late)]);
}

/// A closure is moved by its dates, not by its instants: today's, closed in Kiritimati (UTC+14),
/// is over there, yet today in Pago Pago (UTC-11, the same date 25 hours later) is not, and
/// moving the clinic there must close the rest of it. (Chosen by the instants that matter to a
/// booking, from four hours back, it would be missed whenever Kiritimati's day ended more than
/// four hours ago: 21 hours of every 24, so this test says so on most runs.)
async fn a_closure_over_in_the_old_zone_but_not_in_the_new_moves_with_the_clinic(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("Pacific/Kiritimati").await;
    let provider = org.provider().await;
    let pago_pago = Zone::parse("timezone", "Pacific/Pago_Pago").expect("a zone");
    let today = pago_pago.today();
    let kiritimati = Zone::parse("timezone", "Pacific/Kiritimati").expect("a zone");
    let closure = Closure {
        id: ClosureId::new(),
        org_id: OrgId(org.id),
        first_day: today,
        last_day: today,
        span: kiritimati.whole_days(today, today).expect("a day"),
        reason: None,
    };
    let (store, actor) = (&app.store, Actor::new(OrgId(org.id), "admin"));
    store.create_closure(&actor, &closure).await.expect("closed");
    let pago = UpdateOrganization { timezone: Some("Pacific/Pago_Pago".into()), ..Default::default() };
    org.admin.update_organization(&pago).await.expect("moved");
    let day = pago_pago.whole_days(today, today).expect("a day");
    let busy = store.busy(OrgId(org.id), &[ProviderId(provider.id)], day.start(), day.end()).await.expect("busy");
    assert!(busy[0].contains(&day), "Pago Pago's {today} is closed whole: {busy:?}");
}

/// A move asked for while the clinic changes its zone, and held back by that change, is planned in
/// the new zone: the local time asked for is that time there, not in the zone the move's first
/// read saw. PostgreSQL only: SQLite takes one writer at a time, so there the move begins after.
async fn a_move_held_back_by_a_change_of_zone_is_planned_in_the_new_zone() {
    use sqlx::Connection;
    let app = spawn_app(Backend::Postgres).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let booked = org.staff.book(&booking(provider.id, days_ahead(10), "10:00")).await.expect("booked");
    let day = CreateClosure { date: date_str(days_ahead(30)), end_date: None, reason: None };
    org.admin.create_closure(&day).await.expect("closed");
    // The change of zone, held once it has locked every provider: at the closure it moves.
    let mut holder = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    let hold = "SELECT 1 FROM closures WHERE org_id = $1 FOR UPDATE";
    sqlx::query(hold).bind(org.id).execute(&mut holder).await.expect("the closure, held");
    let mut watcher = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    let admin = org.admin.clone();
    let los_angeles = UpdateOrganization { timezone: Some("America/Los_Angeles".into()), ..Default::default() };
    let clinic_moving = tokio::spawn(async move { admin.update_organization(&los_angeles).await });
    until_waiting_on_locks(&mut watcher, 1).await;
    let (staff, date) = (org.staff.clone(), days_ahead(11));
    let moving = tokio::spawn(async move { staff.reschedule(booked.appointment_id, &move_to(date, "14:00")).await });
    until_waiting_on_locks(&mut watcher, 2).await;
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");
    clinic_moving.await.expect("task").expect("the clinic moved");
    let moved = moving.await.expect("task").expect("moved");
    let zone = Zone::parse("timezone", "America/Los_Angeles").expect("a zone");
    let two_pm = zone.resolve(date, chrono::NaiveTime::from_hms_opt(14, 0, 0).expect("a time")).expect("an instant");
    assert_eq!(moved.starts_at.to_utc(), two_pm, "{moved:?}");
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").starts_at, moved.starts_at);
}

on_both_backends!(
    a_closure_over_in_the_old_zone_but_not_in_the_new_moves_with_the_clinic,
    a_clinic_reads_its_organization_and_only_its_admin_changes_it,
    a_clinic_moved_to_another_zone_books_and_closes_in_it
);

on_postgres_only!(a_move_held_back_by_a_change_of_zone_is_planned_in_the_new_zone);
