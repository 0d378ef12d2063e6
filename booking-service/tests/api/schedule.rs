//! A clinic's schedule (docs/API.md, "Schedule"): appointment types and the range each booking blocks,
//! notice and horizon, time off and closed days, availability honouring all of it, and the races
//! between booking and creating time off.

use crate::concurrency::{race, staggered};
use crate::helpers::*;
use booking_service::store::Subject;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use shared::api::{
    AppointmentQuery, AppointmentStatus, AvailabilityQuery, BookingInput, CreateAppointmentType, CreateClosure,
    CreateProvider, CreateTimeOff, Provider, RescheduleRequest, TimeOffQuery, UpdateAppointmentType, Weekday,
};
use std::collections::BTreeSet;
use uuid::Uuid;

const ALL_WEEK: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// A clinic in `zone` with one provider working 9 to 5 every day, 30-minute appointments.
async fn clinic(app: &TestApp, zone: &str) -> (TestOrg, Provider) {
    let org = app.org(zone).await;
    let provider = org
        .provider_with(CreateProvider {
            name: "Dr. Ada Smith".into(),
            working_hours: Some(nine_to_five(&ALL_WEEK)),
            ..Default::default()
        })
        .await;
    (org, provider)
}

fn kind(name: &str, minutes: i64) -> CreateAppointmentType {
    CreateAppointmentType { name: name.into(), duration_minutes: minutes, ..Default::default() }
}

fn typed(provider: Uuid, date: NaiveDate, time: &str, kind: Uuid) -> BookingInput {
    BookingInput { appointment_type_id: Some(kind), ..booking(provider, date, time) }
}

/// An instant in UTC, where the clinics of these stories keep their clocks.
fn utc(date: NaiveDate, hm: &str) -> String {
    format!("{}T{hm}:00Z", date_str(date))
}

fn hm(t: &DateTime<FixedOffset>) -> String {
    t.format("%H:%M").to_string()
}

fn time_off(from: String, to: String) -> CreateTimeOff {
    CreateTimeOff { starts_at: from, ends_at: to, reason: Some("conference".into()) }
}

async fn starts(org: &TestOrg, provider: Uuid, date: NaiveDate, kind: Option<Uuid>) -> Vec<String> {
    let query = AvailabilityQuery { date: date_str(date), appointment_type_id: kind };
    let day = org.staff.availability_for(provider, &query).await.expect("availability");
    day.slots.iter().map(|s| hm(&s.starts_at)).collect()
}

/// The active appointments of a provider, as (start, end) instants.
async fn active(org: &TestOrg, provider: Uuid) -> Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> {
    let query = AppointmentQuery { provider_id: Some(provider), ..Default::default() };
    let all = org.staff.appointments(&query).await.expect("list");
    all.into_iter()
        .filter(|a| a.status != AppointmentStatus::Cancelled)
        .map(|a| (a.id, a.starts_at.to_utc(), a.ends_at.to_utc()))
        .collect()
}

/// An interval left out is "its duration", and stays so when the duration changes; one given
/// stays as given.
async fn an_interval_left_out_follows_the_duration(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, _) = clinic(&app, "UTC").await;
    let follows = org.admin.create_appointment_type(&kind("Check-up", 30)).await.expect("type");
    let longer = UpdateAppointmentType { duration_minutes: Some(60), ..Default::default() };
    let patched = org.admin.update_appointment_type(follows.id, &longer).await.expect("patched");
    assert_eq!((patched.duration_minutes, patched.slot_interval_minutes), (60, 60));
    let given = CreateAppointmentType { slot_interval_minutes: Some(15), ..kind("Vaccination", 15) };
    let given = org.admin.create_appointment_type(&given).await.expect("type");
    let patched = org.admin.update_appointment_type(given.id, &longer).await.expect("patched");
    assert_eq!((patched.duration_minutes, patched.slot_interval_minutes), (60, 60), "15 was its duration too");
    let own = CreateAppointmentType { slot_interval_minutes: Some(20), ..kind("Consultation", 40) };
    let own = org.admin.create_appointment_type(&own).await.expect("type");
    let patched = org.admin.update_appointment_type(own.id, &longer).await.expect("patched");
    assert_eq!((patched.duration_minutes, patched.slot_interval_minutes), (60, 20), "an interval of its own stays");
    let both =
        UpdateAppointmentType { duration_minutes: Some(45), slot_interval_minutes: Some(15), ..Default::default() };
    let patched = org.admin.update_appointment_type(follows.id, &both).await.expect("patched");
    assert_eq!((patched.duration_minutes, patched.slot_interval_minutes), (45, 15), "one given wins");
    let read = org.admin.appointment_type(follows.id).await.expect("read");
    assert_eq!(read.slot_interval_minutes, 15, "as stored");
}

async fn a_type_sets_the_length_and_blocks_its_buffers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let new_patient = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            buffer_before_minutes: Some(15),
            buffer_after_minutes: Some(15),
            ..kind("New patient visit", 60)
        })
        .await
        .expect("type");
    assert_eq!((new_patient.slot_interval_minutes, new_patient.max_advance_days), (60, 365), "the defaults");
    assert!(new_patient.active && new_patient.bookable_by_agent && new_patient.provider_ids.is_empty());
    let date = days_ahead(10);

    let booked = org.staff.book(&typed(provider.id, date, "10:00", new_patient.id)).await.expect("typed booking");
    assert_eq!((hm(&booked.starts_at), hm(&booked.ends_at)), ("10:00".into(), "11:00".into()), "the type's hour");
    let shown = org.staff.appointment(booked.appointment_id).await.expect("shown");
    assert_eq!(shown.appointment_type_id, Some(new_patient.id));

    let wrong_length = BookingInput { duration_minutes: Some(30), ..typed(provider.id, date, "14:00", new_patient.id) };
    assert_error(org.staff.book(&wrong_length).await, 422, "validation_failed");

    // The buffer after (11:00 to 11:15) and before (09:45 to 10:00) are the type's to keep.
    let in_buffer_after = org.staff.book(&booking(provider.id, date, "11:00")).await;
    let err = assert_error(in_buffer_after, 409, "slot_unavailable");
    for alt in err.alternatives() {
        let (start, end) = (alt.starts_at.to_utc(), alt.ends_at.to_utc());
        let blocked =
            (booked.starts_at.to_utc() - Duration::minutes(15), booked.ends_at.to_utc() + Duration::minutes(15));
        assert!(end <= blocked.0 || start >= blocked.1, "an alternative inside the buffers: {alt:?}");
    }
    assert_error(org.staff.book(&booking(provider.id, date, "09:30")).await, 409, "slot_unavailable");
    org.staff.book(&booking(provider.id, date, "11:15")).await.expect("just past the buffer");
    org.staff.book(&booking(provider.id, date, "09:15")).await.expect("ends where the buffer begins");

    // A typed visit keeps its own buffer before clear too: at 11:45 it would block from 11:30, into
    // the 11:15 booking; at 12:00 it blocks from 11:45.
    assert_error(org.staff.book(&typed(provider.id, date, "11:45", new_patient.id)).await, 409, "slot_unavailable");
    org.staff.book(&typed(provider.id, date, "12:00", new_patient.id)).await.expect("its buffer is clear");

    // The type changes; an appointment keeps the range it blocked when booked.
    let changed = org
        .admin
        .update_appointment_type(
            new_patient.id,
            &UpdateAppointmentType { buffer_after_minutes: Some(0), ..Default::default() },
        )
        .await
        .expect("patched");
    assert_eq!((changed.buffer_after_minutes, changed.buffer_before_minutes), (0, 15));
    assert_error(org.staff.book(&booking(provider.id, date, "13:00")).await, 409, "slot_unavailable");
}

/// Voice agents asking for a type only staff book, waiting for the same taken time beside staff
/// members, are each refused as agents (403), never given a staff member's "taken" (agents'
/// bookings queue in lanes of their own). Four of each wait behind a staff booking held up by the
/// database, in turn: in one lane, a staff member's attempt after it would answer the agents.
async fn agents_are_refused_a_staff_only_type_even_beside_staff_bookings(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let staff_only = CreateAppointmentType { bookable_by_agent: Some(false), ..kind("Surgery consult", 45) };
    let staff_only = org.admin.create_appointment_type(&staff_only).await.expect("type");
    let asked = typed(provider.id, days_ahead(6), "10:00", staff_only.id);
    org.staff.book(&asked).await.expect("the time is taken");
    let (blocker, locked) =
        hold_the_write_lock(backend, app.db.url.clone(), "appointments", std::time::Duration::from_secs(3));
    locked.await.expect("the lock is taken");
    let (staff, input) = (org.staff.clone(), asked.clone());
    let first = tokio::spawn(async move { staff.book(&input).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!first.is_finished(), "the first staff booking is waiting for the lock");
    let mut waiting = Vec::new();
    for (agent, client) in std::iter::repeat_n([(true, &org.agent), (false, &org.staff)], 4).flatten() {
        let (client, input) = (client.clone(), asked.clone());
        waiting.push((agent, tokio::spawn(async move { client.book(&input).await })));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_error(first.await.expect("task"), 409, "slot_unavailable");
    for (agent, answer) in waiting {
        let answer = answer.await.expect("task");
        if agent {
            assert_error(answer, 403, "forbidden");
        } else {
            assert_error(answer, 409, "slot_unavailable");
        }
    }
    blocker.await.expect("blocker");
}

async fn notice_horizon_and_who_may_book_are_the_types(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let planned = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            min_notice_minutes: Some(3 * 24 * 60),
            max_advance_days: Some(30),
            ..kind("Procedure", 30)
        })
        .await
        .expect("type");
    let soon = org.staff.book(&typed(provider.id, days_ahead(1), "10:00", planned.id)).await;
    let err = assert_error(soon, 409, "slot_unavailable");
    assert!(!err.alternatives().is_empty(), "alternatives are offered");
    let earliest = Utc::now() + Duration::days(3);
    for alt in err.alternatives() {
        assert!(alt.starts_at.to_utc() >= earliest, "an alternative inside the notice: {alt:?}");
    }
    // What is offered is bookable: the first alternative, as the caller would pick it.
    let first = &err.alternatives()[0];
    let pick = typed(provider.id, first.starts_at.date_naive(), &hm(&first.starts_at), planned.id);
    org.staff.book(&pick).await.expect("an alternative offered is bookable");
    let kept = org.staff.book(&typed(provider.id, days_ahead(5), "10:00", planned.id)).await.expect("past the notice");
    let far = org.staff.book(&typed(provider.id, days_ahead(40), "10:00", planned.id)).await;
    assert_error(far, 422, "validation_failed");
    org.staff.book(&booking(provider.id, days_ahead(40), "10:00")).await.expect("untyped keeps the 365 days");

    let staff_only = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            bookable_by_agent: Some(false),
            ..kind("Surgery consult", 45)
        })
        .await
        .expect("type");
    let by_agent = org.agent.book(&typed(provider.id, days_ahead(6), "10:00", staff_only.id)).await;
    let err = assert_error(by_agent, 403, "forbidden");
    assert!(err.to_string().contains("Surgery consult"), "{err}");
    // Nor are its times offered to an agent, only to the staff.
    let its_times = AvailabilityQuery { date: date_str(days_ahead(6)), appointment_type_id: Some(staff_only.id) };
    assert_error(org.agent.availability_for(provider.id, &its_times).await, 403, "forbidden");
    let offered = org.staff.availability_for(provider.id, &its_times).await.expect("offered to the staff");
    assert!(!offered.slots.is_empty());
    org.staff.book(&typed(provider.id, days_ahead(6), "10:00", staff_only.id)).await.expect("staff books it");

    // A deactivated type books nothing more; agents and staff still read the types.
    org.admin.deactivate_appointment_type(planned.id).await.expect("deactivated");
    let gone = org.staff.book(&typed(provider.id, days_ahead(8), "10:00", planned.id)).await;
    assert_error(gone, 422, "validation_failed");
    // What was booked of it still moves as its own type (a move is no new booking of it), keeping
    // its length; asked for by id, the type is refused.
    let later = RescheduleRequest {
        appointment_date: Some(date_str(days_ahead(7))),
        appointment_time: Some("11:00".into()),
        ..Default::default()
    };
    let moved = org.staff.reschedule(kept.appointment_id, &later).await.expect("moved as its own type");
    assert_eq!(
        (moved.appointment_type_id, moved.ends_at - moved.starts_at),
        (Some(planned.id), kept.ends_at - kept.starts_at)
    );
    let as_withdrawn = RescheduleRequest { appointment_type_id: Some(planned.id), ..later.clone() };
    assert_error(org.staff.reschedule(kept.appointment_id, &as_withdrawn).await, 422, "validation_failed");
    // Its notice still holds (no plain move by its own length).
    let too_soon = RescheduleRequest { appointment_date: Some(date_str(days_ahead(1))), ..later.clone() };
    assert_error(org.staff.reschedule(kept.appointment_id, &too_soon).await, 409, "slot_unavailable");
    let listed = org.agent.appointment_types().await.expect("agents read types");
    assert_eq!(listed.len(), 2);
    assert_error(org.staff.create_appointment_type(&kind("Not mine", 30)).await, 403, "forbidden");
}

async fn a_type_is_booked_only_with_the_providers_offering_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, smith) = clinic(&app, "UTC").await;
    let jones = org
        .provider_with(CreateProvider {
            name: "Dr. Jane Jones".into(),
            working_hours: Some(nine_to_five(&ALL_WEEK)),
            ..Default::default()
        })
        .await;
    let only_smith = org
        .admin
        .create_appointment_type(&CreateAppointmentType { provider_ids: Some(vec![smith.id]), ..kind("Botox", 20) })
        .await
        .expect("type");
    let date = days_ahead(9);
    let smiths = org.staff.book(&typed(smith.id, date, "10:00", only_smith.id)).await.expect("Smith offers it");
    assert_error(org.staff.book(&typed(jones.id, date, "10:00", only_smith.id)).await, 422, "validation_failed");
    let query = AvailabilityQuery { date: date_str(date), appointment_type_id: Some(only_smith.id) };
    assert_error(org.staff.availability_for(jones.id, &query).await, 422, "validation_failed");
    // Once Smith no longer offers it, what was booked with Smith does not move as it, even as its
    // own type (only a withdrawn type is let through for a move).
    let to_jones = UpdateAppointmentType { provider_ids: Some(vec![jones.id]), ..Default::default() };
    org.admin.update_appointment_type(only_smith.id, &to_jones).await.expect("patched");
    let later = RescheduleRequest {
        appointment_date: Some(date_str(date)),
        appointment_time: Some("11:00".into()),
        ..Default::default()
    };
    assert_error(org.staff.reschedule(smiths.appointment_id, &later).await, 422, "validation_failed");
    let stranger = CreateAppointmentType { provider_ids: Some(vec![Uuid::new_v4()]), ..kind("Ghost", 20) };
    assert_error(org.admin.create_appointment_type(&stranger).await, 422, "validation_failed");
    for bad in [
        CreateAppointmentType { buffer_before_minutes: Some(-1), ..kind("Bad", 30) },
        CreateAppointmentType { max_advance_days: Some(0), ..kind("Bad", 30) },
        CreateAppointmentType { slot_interval_minutes: Some(1), ..kind("Bad", 30) },
        // A notice as long as the horizon: no time could ever be booked.
        CreateAppointmentType { min_notice_minutes: Some(7 * 24 * 60), max_advance_days: Some(7), ..kind("Bad", 30) },
        kind("Bad", 481),
        kind("", 30),
    ] {
        assert_error(org.admin.create_appointment_type(&bad).await, 422, "validation_failed");
    }
    // Nor may a change make it so, on either side; what stands is unchanged.
    let week =
        CreateAppointmentType { min_notice_minutes: Some(24 * 60), max_advance_days: Some(7), ..kind("Week", 30) };
    let week = org.admin.create_appointment_type(&week).await.expect("a notice shorter than the horizon");
    for change in [
        UpdateAppointmentType { min_notice_minutes: Some(7 * 24 * 60), ..Default::default() },
        UpdateAppointmentType { max_advance_days: Some(1), ..Default::default() },
    ] {
        assert_error(org.admin.update_appointment_type(week.id, &change).await, 422, "validation_failed");
    }
    assert_eq!(org.admin.appointment_type(week.id).await.expect("read"), week);
    // One saved so before the rule can still be renamed and withdrawn, not made active again.
    app.db.execute("UPDATE appointment_types SET min_notice_minutes = 10080 WHERE name = 'Week'").await;
    let renamed = UpdateAppointmentType { name: Some("Week (old)".into()), ..Default::default() };
    org.admin.update_appointment_type(week.id, &renamed).await.expect("renamed");
    org.admin.deactivate_appointment_type(week.id).await.expect("withdrawn");
    let again = UpdateAppointmentType { active: Some(true), ..Default::default() };
    assert_error(org.admin.update_appointment_type(week.id, &again).await, 422, "validation_failed");
}

async fn availability_steps_by_the_interval_around_buffers_time_off_and_closed_days(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let quick = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            slot_interval_minutes: Some(15),
            buffer_after_minutes: Some(15),
            ..kind("Quick check", 30)
        })
        .await
        .expect("type");
    let date = days_ahead(12);
    org.staff.book(&typed(provider.id, date, "10:00", quick.id)).await.expect("booked");
    let free = starts(&org, provider.id, date, Some(quick.id)).await;
    assert_eq!(free[..4], ["09:00", "09:15", "10:45", "11:00"], "every 15 minutes, clear of 10:00 to 10:45");
    assert_eq!(free.last().map(String::as_str), Some("16:30"));
    assert!(free.contains(&"12:30".to_owned()));

    org.staff.create_time_off(provider.id, &time_off(utc(date, "13:00"), utc(date, "14:00"))).await.expect("time off");
    let free = starts(&org, provider.id, date, Some(quick.id)).await;
    for gone in ["12:30", "12:45", "13:00", "13:45"] {
        assert!(!free.contains(&gone.to_owned()), "{gone} meets the time off: {free:?}");
    }
    assert!(free.contains(&"12:15".to_owned()) && free.contains(&"14:00".to_owned()), "{free:?}");
    let plain = starts(&org, provider.id, date, None).await;
    assert!(plain.contains(&"12:30".to_owned()) && !plain.contains(&"13:30".to_owned()), "{plain:?}");

    let closed = date + Duration::days(1);
    org.admin
        .create_closure(&CreateClosure { date: date_str(closed), end_date: None, reason: Some("holiday".into()) })
        .await
        .expect("closed");
    assert!(starts(&org, provider.id, closed, Some(quick.id)).await.is_empty());
    assert!(starts(&org, provider.id, closed, None).await.is_empty());
    assert!(!starts(&org, provider.id, closed + Duration::days(1), None).await.is_empty());
}

async fn time_off_lists_its_conflicts_and_refuses_what_meets_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let date = days_ahead(15);
    let morning = org.staff.book(&booking(provider.id, date, "10:00")).await.expect("booked");
    let afternoon = org.staff.book(&booking(provider.id, date, "15:00")).await.expect("booked");
    let away = org
        .staff
        .create_time_off(provider.id, &time_off(utc(date, "09:00"), utc(date, "12:00")))
        .await
        .expect("time off");
    assert_eq!(away.conflicts, Some(vec![morning.appointment_id]));
    assert_eq!(away.reason.as_deref(), Some("conference"));

    let err = assert_error(org.staff.book(&booking(provider.id, date, "11:00")).await, 409, "slot_unavailable");
    assert!(!err.alternatives().is_empty());
    for alt in err.alternatives() {
        let start = alt.starts_at.to_utc();
        let outside = alt.ends_at.to_utc() <= away.starts_at.to_utc() || start >= away.ends_at.to_utc();
        assert!(outside, "an alternative inside the time off: {alt:?}");
    }
    let last = err.alternatives().last().expect("an alternative");
    let pick = booking(provider.id, last.starts_at.date_naive(), &hm(&last.starts_at));
    let picked = org.staff.book(&pick).await.expect("an alternative offered is bookable");
    org.staff.cancel(picked.appointment_id, None).await.expect("made room again");
    let into = RescheduleRequest {
        appointment_date: Some(date_str(date)),
        appointment_time: Some("11:30".into()),
        ..Default::default()
    };
    assert_error(org.staff.reschedule(afternoon.appointment_id, &into).await, 409, "slot_unavailable");
    // Its conflict "moved" to the time it has is not told that time stands: refused, unchanged.
    let stay = RescheduleRequest {
        appointment_date: Some(date_str(date)),
        appointment_time: Some("10:00".into()),
        ..Default::default()
    };
    assert_error(org.staff.reschedule(morning.appointment_id, &stay).await, 409, "slot_unavailable");
    let standing = org.staff.appointment(morning.appointment_id).await.expect("read");
    assert_eq!((standing.status, standing.starts_at), (morning.status, morning.starts_at));

    let listed = org.staff.time_off(provider.id, &TimeOffQuery::default()).await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].conflicts, None, "lists do not recompute conflicts");
    let before = TimeOffQuery { to: Some(utc(date, "08:00")), ..Default::default() };
    assert!(org.staff.time_off(provider.id, &before).await.expect("listed").is_empty());

    assert_error(
        org.agent.create_time_off(provider.id, &time_off(utc(date, "16:00"), utc(date, "17:00"))).await,
        403,
        "forbidden",
    );
    for (from, to) in [
        (utc(date, "12:00"), utc(date, "11:00")),
        ("yesterday".to_owned(), utc(date, "11:00")),
        (utc(days_ahead(-3), "09:00"), utc(days_ahead(-2), "09:00")),
        (utc(date, "09:00"), utc(date + Duration::days(400), "09:00")),
    ] {
        assert_error(org.staff.create_time_off(provider.id, &time_off(from, to)).await, 422, "validation_failed");
    }
    assert_error(
        org.staff.create_time_off(Uuid::new_v4(), &time_off(utc(date, "16:00"), utc(date, "17:00"))).await,
        404,
        "not_found",
    );

    org.staff.delete_time_off(away.id).await.expect("removed");
    assert_error(org.staff.delete_time_off(away.id).await, 404, "not_found");
    org.staff.book(&booking(provider.id, date, "11:00")).await.expect("free again");
    org.staff.reschedule(afternoon.appointment_id, &into).await.expect("moved into the freed morning");
    let trail = app
        .store
        .audit_trail(org.id.into(), Subject::TimeOff(away.id.into()), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["time_off_added", "time_off_removed"]);
}

async fn a_closure_shuts_whole_local_days_for_every_provider(backend: Backend) {
    let app = spawn_app(backend).await;
    // Auckland's day starts 11 to 13 hours before UTC's: the closure follows the clinic's clock.
    let org = app.org("Pacific/Auckland").await;
    let provider = org.provider().await;
    let second = org.provider_with(CreateProvider { name: "Dr. Second".into(), ..Default::default() }).await;
    let day = days_ahead(20);
    let on_the_day = org.staff.book(&booking(provider.id, day, "08:00")).await.expect("booked");
    let seconds = org.staff.book(&booking(second.id, day + Duration::days(1), "12:00")).await.expect("booked");
    let eve = org.staff.book(&booking(provider.id, day - Duration::days(1), "23:00")).await.expect("booked");
    let closure = org
        .admin
        .create_closure(&CreateClosure {
            date: date_str(day),
            end_date: Some(date_str(day + Duration::days(1))),
            reason: None,
        })
        .await
        .expect("closed");
    let mut conflicts = closure.conflicts.clone().expect("conflicts");
    conflicts.sort();
    let mut expected = vec![on_the_day.appointment_id, seconds.appointment_id];
    expected.sort();
    assert_eq!(conflicts, expected, "both providers' on the closed days, not the eve's 23:00");
    assert_eq!((closure.date, closure.end_date), (day, day + Duration::days(1)));

    for (who, date, time) in
        [(&provider, day, "00:00"), (&provider, day + Duration::days(1), "23:30"), (&second, day, "10:00")]
    {
        let err = assert_error(org.staff.book(&booking(who.id, date, time)).await, 409, "slot_unavailable");
        for alt in err.alternatives() {
            let local = alt.starts_at.date_naive();
            assert!(local < day || local > day + Duration::days(1), "an alternative on a closed day: {alt:?}");
        }
    }
    org.staff.book(&booking(provider.id, day + Duration::days(2), "00:00")).await.expect("open again");
    assert_ne!(eve.appointment_id, on_the_day.appointment_id);

    assert_error(
        org.staff.create_closure(&CreateClosure { date: date_str(day), end_date: None, reason: None }).await,
        403,
        "forbidden",
    );
    let backwards =
        CreateClosure { date: date_str(day), end_date: Some(date_str(day - Duration::days(1))), reason: None };
    assert_error(org.admin.create_closure(&backwards).await, 422, "validation_failed");
    let past = CreateClosure { date: date_str(days_ahead(-5)), end_date: None, reason: None };
    assert_error(org.admin.create_closure(&past).await, 422, "validation_failed");

    assert_eq!(org.admin.closures().await.expect("listed").len(), 1);
    org.admin.delete_closure(closure.id).await.expect("removed");
    org.staff.book(&booking(provider.id, day, "09:00")).await.expect("open after removal");
    let trail = app
        .store
        .audit_trail(org.id.into(), Subject::Closure(closure.id.into()), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["closure_added", "closure_removed"]);
}

async fn another_clinic_sees_and_touches_none_of_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mine, provider) = clinic(&app, "UTC").await;
    let (theirs, their_provider) = clinic(&app, "UTC").await;
    let kind = mine.admin.create_appointment_type(&kind("Mine", 30)).await.expect("type");
    let date = days_ahead(11);
    let away = mine
        .staff
        .create_time_off(provider.id, &time_off(utc(date, "09:00"), utc(date, "17:00")))
        .await
        .expect("time off");
    let closure = mine
        .admin
        .create_closure(&CreateClosure { date: date_str(date + Duration::days(1)), end_date: None, reason: None })
        .await
        .expect("closed");

    assert_error(theirs.admin.appointment_type(kind.id).await, 404, "not_found");
    assert!(theirs.admin.appointment_types().await.expect("list").is_empty());
    assert_error(theirs.staff.book(&typed(their_provider.id, date, "10:00", kind.id)).await, 422, "validation_failed");
    assert_error(theirs.staff.time_off(provider.id, &TimeOffQuery::default()).await, 404, "not_found");
    assert_error(theirs.staff.delete_time_off(away.id).await, 404, "not_found");
    assert_error(theirs.admin.delete_closure(closure.id).await, 404, "not_found");
    assert!(theirs.admin.closures().await.expect("list").is_empty());
    theirs.staff.book(&booking(their_provider.id, date, "10:00")).await.expect("their day is open");
    theirs.staff.book(&booking(their_provider.id, date + Duration::days(1), "10:00")).await.expect("and the next");
    assert_eq!(mine.staff.time_off(provider.id, &TimeOffQuery::default()).await.expect("still there").len(), 1);
}

/// 50 buffered bookings released together over one morning: the blocked ranges of those that
/// succeed never overlap.
async fn concurrent_buffered_bookings_never_overlap_their_blocked_ranges(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let buffered = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            buffer_before_minutes: Some(10),
            buffer_after_minutes: Some(10),
            slot_interval_minutes: Some(5),
            ..kind("Buffered", 30)
        })
        .await
        .expect("type");
    let date = days_ahead(14);
    let inputs: Vec<BookingInput> = (0..50)
        .map(|i| {
            let minute = 9 * 60 + i * 5;
            typed(provider.id, date, &format!("{:02}:{:02}", minute / 60, minute % 60), buffered.id)
        })
        .collect();
    let statuses = race(&[org.staff.clone(), org.admin.clone()], inputs).await;
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    let booked = active(&org, provider.id).await;
    assert_eq!(booked.len(), statuses.iter().filter(|s| **s == 201).count());
    // Starts over four hours, each block 50 minutes: however the race falls, at least three fit
    // (each booked block keeps starts within 50 minutes either side of its own away).
    assert!(booked.len() >= 3, "too few booked for the race to mean anything: {}", booked.len());
    let margin = Duration::minutes(10);
    for (i, a) in booked.iter().enumerate() {
        for b in &booked[i + 1..] {
            let apart = a.2 + margin <= b.1 - margin || b.2 + margin <= a.1 - margin;
            assert!(apart, "blocked ranges overlap: {a:?} and {b:?}");
        }
    }
}

/// Bookings racing the creation of time off over the same hours: once the time off has
/// answered, every active appointment meeting it is one of its conflicts (it committed first),
/// and no booking meeting it succeeds afterwards.
async fn bookings_racing_time_off_are_either_its_conflicts_or_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let mut interleaved = 0;
    let mut tally = Vec::new();
    for round in 0..6 {
        let date = days_ahead(30 + round);
        let (from, to) = (utc(date, "09:00"), utc(date, "17:00"));
        let inputs: Vec<BookingInput> =
            (0..16).map(|i| booking(provider.id, date, &format!("{:02}:{:02}", 9 + i / 2, (i % 2) * 30))).collect();
        let racers = tokio::spawn(staggered(org.staff.clone(), inputs));
        // Among the bookings, a little later each round.
        tokio::time::sleep(std::time::Duration::from_millis(10 + 8 * (round % 3) as u64)).await;
        let away = org.admin.create_time_off(provider.id, &time_off(from, to)).await.expect("time off");
        let after = org.staff.book(&booking(provider.id, date, "12:00")).await;
        assert_error(after, 409, "slot_unavailable");
        let statuses = racers.await.expect("racers");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
        let overlapping: BTreeSet<Uuid> = active(&org, provider.id)
            .await
            .into_iter()
            .filter(|(_, start, _)| start.date_naive() == date)
            .map(|(id, _, _)| id)
            .collect();
        let conflicts: BTreeSet<Uuid> = away.conflicts.expect("conflicts").into_iter().collect();
        assert_eq!(overlapping, conflicts, "round {round}: statuses {statuses:?}");
        // Booked before the time off (its conflicts) and refused after it, in one round.
        interleaved += usize::from(statuses.contains(&201) && statuses.contains(&409));
        tally.push((statuses.iter().filter(|s| **s == 201).count(), statuses.len()));
    }
    assert!(interleaved > 0, "no round raced: every round's bookings all came before or all after: {tally:?}");
}

/// A closure racing bookings of two providers: the same rule, for the whole clinic.
async fn bookings_racing_a_closure_are_either_its_conflicts_or_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, first) = clinic(&app, "UTC").await;
    let second = org
        .provider_with(CreateProvider {
            name: "Dr. Jane Jones".into(),
            working_hours: Some(nine_to_five(&ALL_WEEK)),
            ..Default::default()
        })
        .await;
    let mut interleaved = 0;
    let mut tally = Vec::new();
    for round in 0..4 {
        let date = days_ahead(45 + round);
        let inputs: Vec<BookingInput> = (0..16)
            .map(|i| {
                let provider = if i % 2 == 0 { first.id } else { second.id };
                booking(provider, date, &format!("{:02}:00", 9 + i / 2))
            })
            .collect();
        let racers = tokio::spawn(staggered(org.staff.clone(), inputs));
        tokio::time::sleep(std::time::Duration::from_millis(10 + 8 * (round % 2) as u64)).await;
        let closure = org
            .admin
            .create_closure(&CreateClosure { date: date_str(date), end_date: None, reason: None })
            .await
            .expect("closed");
        assert_error(org.staff.book(&booking(second.id, date, "16:30")).await, 409, "slot_unavailable");
        let statuses = racers.await.expect("racers");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
        let mut overlapping: BTreeSet<Uuid> = BTreeSet::new();
        for provider in [first.id, second.id] {
            let on_the_day =
                active(&org, provider).await.into_iter().filter(|(_, start, _)| start.date_naive() == date);
            overlapping.extend(on_the_day.map(|(id, _, _)| id));
        }
        let conflicts: BTreeSet<Uuid> = closure.conflicts.expect("conflicts").into_iter().collect();
        assert_eq!(overlapping, conflicts, "round {round}: statuses {statuses:?}");
        interleaved += usize::from(statuses.contains(&201) && statuses.contains(&409));
        tally.push((statuses.iter().filter(|s| **s == 201).count(), statuses.len()));
    }
    assert!(interleaved > 0, "no round raced: every round's bookings all came before or all after: {tally:?}");
}

/// The attack from a review: time off that has just ended no longer counted against the limit of
/// 500, yet every read of today's availability still read it, so a staff token could pile up rows
/// a few hundred a minute. An entry counts until it can matter to no booking (4 hours, the longest
/// buffer, after its end).
async fn time_off_that_just_ended_still_counts_against_the_limit(backend: Backend) {
    use sqlx::Connection;
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    // 500 entries that ended an hour ago, written as the store writes them.
    let (org_id, provider_id) = (org.id.to_string(), provider.id.to_string());
    match backend {
        Backend::Sqlite => {
            let hour = 3_600_000_000i64;
            let now = Utc::now().timestamp_micros();
            let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                       INSERT INTO time_off (id, org_id, provider_id, starts_at, ends_at, created_at)
                       SELECT printf('00000000-0000-4000-8000-%012d', i), $1, $2, $3, $4, $3 FROM n";
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
            let query = sqlx::query(sql).bind(&org_id).bind(&provider_id).bind(now - 2 * hour).bind(now - hour);
            query.execute(&mut conn).await.expect("inserted");
        }
        Backend::Postgres => {
            let sql = "INSERT INTO time_off (id, org_id, provider_id, starts_at, ends_at, created_at)
                       SELECT gen_random_uuid(), $1::uuid, $2::uuid, now() - interval '2 hours', now() - interval '1 hour', now()
                       FROM generate_series(1, 500)";
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
            sqlx::query(sql).bind(&org_id).bind(&provider_id).execute(&mut conn).await.expect("inserted");
        }
    }
    let tomorrow = days_ahead(1);
    let refused =
        org.staff.create_time_off(provider.id, &time_off(utc(tomorrow, "09:00"), utc(tomorrow, "10:00"))).await;
    assert_error(refused, 409, "invalid_state");
}

/// A closure of 366 calendar days is allowed even when the clocks fall back once more than they
/// spring forward within it (its instants then span 366 days and an hour).
async fn a_closure_of_366_days_is_counted_in_days_not_hours(backend: Backend) {
    use chrono::Datelike;
    let app = spawn_app(backend).await;
    let (org, _) = clinic(&app, "America/New_York").await;
    // The Saturday before New York's clocks fall back (the first Sunday of November), far enough ahead.
    let today = days_ahead(0);
    let start = (today.year()..=today.year() + 1)
        .filter_map(|year| {
            let november = NaiveDate::from_ymd_opt(year, 11, 1)?;
            let sunday = november + Duration::days(i64::from((7 - november.weekday().num_days_from_sunday()) % 7));
            Some(sunday - Duration::days(1))
        })
        .find(|saturday| *saturday > today + Duration::days(2))
        .expect("a November ahead");
    let end = start + Duration::days(365);
    let closure = CreateClosure { date: date_str(start), end_date: Some(date_str(end)), reason: None };
    org.admin.create_closure(&closure).await.expect("366 days");
    let longer =
        CreateClosure { date: date_str(start), end_date: Some(date_str(end + Duration::days(1))), reason: None };
    let refused = assert_error(org.admin.create_closure(&longer).await, 422, "validation_failed");
    assert!(refused.to_string().contains("end_date: may be at most 366 days after date"), "{refused}");
}

/// The longest blocked range (a 480-minute visit with a 240-minute buffer on each side) and the
/// longest time off still meet a booking at their far end: how far back an overlap looks (on
/// SQLite a bound on its index walk) is no shorter than what can be stored.
async fn the_longest_visit_and_time_off_still_meet_a_booking_at_their_far_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let longest = CreateAppointmentType {
        buffer_before_minutes: Some(240),
        buffer_after_minutes: Some(240),
        ..kind("Long surgery", 480)
    };
    let longest = org.admin.create_appointment_type(&longest).await.expect("type");
    let date = days_ahead(10);
    org.staff.book(&typed(provider.id, date, "10:00", longest.id)).await.expect("booked");
    // It blocks 06:00 to 22:00: 21:59 is 959 minutes after the start of that.
    let short = |time| BookingInput { duration_minutes: Some(5), ..booking(provider.id, date, time) };
    assert_error(org.staff.book(&short("21:59")).await, 409, "slot_unavailable");
    org.staff.book(&short("22:00")).await.expect("past its buffer");
    // Listed from a minute before its end: it began 479 minutes before that.
    let from = format!("{}T17:59:00Z", date_str(date));
    let listed = org.staff.appointments(&AppointmentQuery { from: Some(from), ..Default::default() }).await;
    let lengths: Vec<i64> = listed.expect("listed").iter().map(|a| (a.ends_at - a.starts_at).num_minutes()).collect();
    assert_eq!(lengths, [480, 5]);

    let away = org.provider_with(CreateProvider { name: "Dr. Jones".into(), ..Default::default() }).await;
    let now = Utc::now();
    let stamp = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let year = time_off(stamp(now - Duration::days(360)), stamp(now + Duration::days(6)));
    org.staff.create_time_off(away.id, &year).await.expect("366 days of time off");
    assert_error(org.staff.book(&booking(away.id, days_ahead(4), "10:00")).await, 409, "slot_unavailable");
}

/// What is wrong with a span is said of the field the client sent: a closure of one day sent
/// without `end_date` is told about its `date`; time off too far ahead about its `starts_at`.
async fn a_span_out_of_bounds_names_the_field_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let past = CreateClosure { date: date_str(days_ahead(-3)), end_date: None, reason: None };
    let refused = assert_error(org.admin.create_closure(&past).await, 422, "validation_failed");
    assert!(refused.to_string().contains("date: must be in the future"), "{refused}");
    assert!(!refused.to_string().contains("end_date"), "{refused}");
    let far = CreateClosure { date: date_str(days_ahead(800)), end_date: None, reason: None };
    let refused = assert_error(org.admin.create_closure(&far).await, 422, "validation_failed");
    assert!(refused.to_string().contains("date: may be at most 732 days ahead"), "{refused}");
    let far = days_ahead(800);
    let refused = org.staff.create_time_off(provider.id, &time_off(utc(far, "09:00"), utc(far, "10:00"))).await;
    let refused = assert_error(refused, 422, "validation_failed");
    assert!(refused.to_string().contains("starts_at: may be at most 732 days ahead"), "{refused}");
    let (from, to) = (days_ahead(1), days_ahead(400));
    let refused = org.staff.create_time_off(provider.id, &time_off(utc(from, "09:00"), utc(to, "10:00"))).await;
    let refused = assert_error(refused, 422, "validation_failed");
    assert!(refused.to_string().contains("ends_at: may be at most 366 days after starts_at"), "{refused}");
}

/// PostgreSQL: a closure being created locks its organization's row against providers being
/// created (a provider committed after the closure read its list could be booked past it, unlocked
/// and missing from its conflicts), but not against bookings. A transaction holding that lock
/// stands in for a closure in flight (a provider waits for it, a booking does not), then for a
/// provider being created (a closure waits for it).
/// (On SQLite every write holds the one write lock, so nothing slips between.)
async fn a_closure_and_a_new_provider_wait_for_each_other_but_not_bookings_on_postgres() {
    use sqlx::Connection;
    let app = spawn_app(Backend::Postgres).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let mut holder = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    let mut watcher = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    let hold = async |holder: &mut sqlx::PgConnection| {
        sqlx::query("BEGIN").execute(&mut *holder).await.expect("begin");
        sqlx::query("SELECT 1 FROM organizations o WHERE o.id = $1 FOR NO KEY UPDATE OF o")
            .bind(org.id)
            .execute(&mut *holder)
            .await
            .expect("the organization's lock");
    };

    hold(&mut holder).await;
    let booked = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        org.agent.book(&booking(provider.id, days_ahead(3), "10:00")),
    )
    .await;
    assert!(matches!(booked, Ok(Ok(_))), "a booking goes on: {booked:?}");
    let admin = org.admin.clone();
    let created = tokio::spawn(async move {
        admin.create_provider(&CreateProvider { name: "Dr. New".into(), ..Default::default() }).await
    });
    until_waiting_on_locks(&mut watcher, 1).await;
    assert!(!created.is_finished(), "a new provider waits for the closure");
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");
    let created = tokio::time::timeout(std::time::Duration::from_secs(5), created).await;
    assert!(matches!(created, Ok(Ok(Ok(_)))), "then it is created: {created:?}");

    // And a closure takes that lock: it waits for a provider being created (held here likewise).
    hold(&mut holder).await;
    let admin = org.admin.clone();
    let closing = tokio::spawn(async move {
        let day = CreateClosure { date: date_str(days_ahead(20)), end_date: None, reason: None };
        admin.create_closure(&day).await
    });
    until_waiting_on_locks(&mut watcher, 1).await;
    assert!(!closing.is_finished(), "a closure waits for the provider being created");
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), closing).await;
    assert!(matches!(closed, Ok(Ok(Ok(_)))), "then it is created: {closed:?}");
}

/// PostgreSQL: a change of an appointment type that has answered stops every booking and move
/// planned from the type before it. A transaction holding the type's row as a change does (locked,
/// changed, its version raised) stands in for a change in flight: a booking and a move of the type
/// wait for it, then meet the type as changed.
/// (On SQLite every write holds the one write lock, and both read the type under it.)
async fn a_booking_or_move_in_flight_meets_its_type_as_changed_on_postgres() {
    use sqlx::Connection;
    let app = spawn_app(Backend::Postgres).await;
    let (org, provider) = clinic(&app, "UTC").await;
    let consult = org.admin.create_appointment_type(&kind("Consult", 30)).await.expect("type");
    let booked = org.staff.book(&booking(provider.id, days_ahead(2), "10:00")).await.expect("booked");
    let mut holder = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    let mut watcher = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    for change in ["bookable_by_agent = false", "active = false"] {
        sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
        sqlx::query("SELECT 1 FROM appointment_types t WHERE t.id = $1 FOR UPDATE OF t")
            .bind(consult.id)
            .execute(&mut holder)
            .await
            .expect("the type's lock");
        let sql = format!("UPDATE appointment_types SET {change}, version = version + 1 WHERE id = $1");
        sqlx::query(&sql).bind(consult.id).execute(&mut holder).await.expect("changed");
        let (agent, staff) = (org.agent.clone(), org.staff.clone());
        let input = typed(provider.id, days_ahead(3), "10:00", consult.id);
        let as_consult = RescheduleRequest {
            appointment_date: Some(date_str(days_ahead(4))),
            appointment_time: Some("10:00".into()),
            appointment_type_id: Some(consult.id),
            ..Default::default()
        };
        let asked = tokio::spawn(async move {
            match change {
                "bookable_by_agent = false" => agent.book(&input).await.map(|_| ()),
                _ => staff.reschedule(booked.appointment_id, &as_consult).await.map(|_| ()),
            }
        });
        until_waiting_on_locks(&mut watcher, 1).await;
        sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), asked).await;
        let Ok(Ok(answered)) = answered else { panic!("no answer: {answered:?}") };
        match change {
            "bookable_by_agent = false" => assert_error(answered, 403, "forbidden"),
            _ => assert_error(answered, 422, "validation_failed"),
        };
    }
}

/// PostgreSQL: a closure locks the clinic's active providers only. A departed provider cannot be
/// booked, and bringing one back waits for the organization's lock the closure holds, so its row
/// is left alone: a clinic's departed providers, however many, add nothing to a closure's work,
/// and one held by another transaction does not hold the closure up; one coming back waits for it.
async fn a_closure_passes_over_departed_providers_on_postgres() {
    use sqlx::Connection;
    let app = spawn_app(Backend::Postgres).await;
    let (org, _) = clinic(&app, "UTC").await;
    let gone = CreateProvider { name: "Dr. Gone".into(), ..Default::default() };
    let departed = org.admin.create_provider(&gone).await.expect("created").id;
    org.admin.deactivate_provider(departed).await.expect("departed");
    let mut holder = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM providers p WHERE p.id = $1 FOR UPDATE OF p")
        .bind(departed)
        .execute(&mut holder)
        .await
        .expect("the departed provider's row, held");
    let day = CreateClosure { date: date_str(days_ahead(20)), end_date: None, reason: None };
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), org.admin.create_closure(&day)).await;
    assert!(matches!(closed, Ok(Ok(_))), "the closure does not wait for it: {closed:?}");
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");

    // Coming back waits for a closure in flight (the organization's lock, held here likewise).
    let mut watcher = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
    sqlx::query("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT 1 FROM organizations o WHERE o.id = $1 FOR NO KEY UPDATE OF o")
        .bind(org.id)
        .execute(&mut holder)
        .await
        .expect("the organization's lock");
    let admin = org.admin.clone();
    let back = shared::api::UpdateProvider { active: Some(true), ..Default::default() };
    let back = tokio::spawn(async move { admin.update_provider(departed, &back).await });
    until_waiting_on_locks(&mut watcher, 1).await;
    assert!(!back.is_finished(), "a provider coming back waits for the closure");
    sqlx::query("COMMIT").execute(&mut holder).await.expect("commit");
    let back = tokio::time::timeout(std::time::Duration::from_secs(5), back).await;
    assert!(matches!(back, Ok(Ok(Ok(_)))), "then it is back: {back:?}");
}

on_both_backends!(
    an_interval_left_out_follows_the_duration,
    a_closure_of_366_days_is_counted_in_days_not_hours,
    the_longest_visit_and_time_off_still_meet_a_booking_at_their_far_end,
    a_span_out_of_bounds_names_the_field_sent,
    time_off_that_just_ended_still_counts_against_the_limit,
    a_type_sets_the_length_and_blocks_its_buffers,
    notice_horizon_and_who_may_book_are_the_types,
    agents_are_refused_a_staff_only_type_even_beside_staff_bookings,
    a_type_is_booked_only_with_the_providers_offering_it,
    availability_steps_by_the_interval_around_buffers_time_off_and_closed_days,
    time_off_lists_its_conflicts_and_refuses_what_meets_it,
    a_closure_shuts_whole_local_days_for_every_provider,
    another_clinic_sees_and_touches_none_of_it,
    concurrent_buffered_bookings_never_overlap_their_blocked_ranges,
    bookings_racing_time_off_are_either_its_conflicts_or_refused,
    bookings_racing_a_closure_are_either_its_conflicts_or_refused,
);

on_postgres_only!(
    a_closure_and_a_new_provider_wait_for_each_other_but_not_bookings_on_postgres,
    a_booking_or_move_in_flight_meets_its_type_as_changed_on_postgres,
    a_closure_passes_over_departed_providers_on_postgres
);
