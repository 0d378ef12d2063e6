use crate::helpers::*;
use booking_service::domain::AppointmentId;
use booking_service::store::outbox_kind;
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone};
use shared::api::{AppointmentStatus, CreateProvider, UpdateProvider, Weekday};

async fn a_booking_is_pending_with_a_code_and_local_times(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let date = days_ahead(10);
    let input = booking(provider.id, date, "14:00");
    let booked = org.agent.book(&input).await.expect("booked");
    assert!(booked.success);
    assert_eq!(booked.status, AppointmentStatus::Pending);
    assert_eq!(booked.confirmation_code.len(), 6);
    assert_eq!(booked.starts_at.date_naive(), date);
    assert_eq!(booked.starts_at.time(), NaiveTime::from_hms_opt(14, 0, 0).expect("time"));
    assert_eq!(booked.ends_at - booked.starts_at, Duration::minutes(30), "the provider's default length");
    let zone = chrono_tz::America::New_York;
    let expected_offset = zone
        .from_local_datetime(&date.and_hms_opt(14, 0, 0).expect("t"))
        .earliest()
        .expect("exists")
        .fixed_offset()
        .offset()
        .to_owned();
    assert_eq!(*booked.starts_at.offset(), expected_offset, "RFC 3339 with the provider's offset");
    assert!(booked.latency_ms > 0.0);

    let stored = org.staff.appointment(booked.appointment_id).await.expect("readable");
    assert_eq!(stored.starts_at, booked.starts_at);
    assert_eq!(stored.patient.phone, input.patient_phone);
    let trail = app
        .store
        .audit_trail(org.id.into(), AppointmentId(booked.appointment_id).into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    assert_eq!(trail.len(), 1);
    assert_eq!((trail[0].action.as_str(), trail[0].actor.as_str()), ("booked", "test-agent"));
}

/// A form's empty phone and email are absent, as an empty name and notes are: the booking stands
/// without them (no SMS or email queued), while a malformed one is still refused.
async fn blank_optional_fields_are_absent(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let mut input = booking(provider.id, days_ahead(10), "14:00");
    input.patient_phone = Some("".into());
    input.patient_email = Some("  ".into());
    let booked = org.staff.book(&input).await.expect("booked without phone or email");
    let stored = org.staff.appointment(booked.appointment_id).await.expect("readable");
    assert_eq!((stored.patient.phone, stored.patient.email), (None, None));
    let queued = app.store.outbox(org.id.into(), AppointmentId(booked.appointment_id)).await.expect("outbox");
    let to_patient: Vec<&str> =
        queued.iter().map(|m| m.kind.as_str()).filter(|k| outbox_kind::TO_PATIENTS.contains(k)).collect();
    assert!(to_patient.is_empty(), "nothing to send the patient: {to_patient:?}");
    input.appointment_time = Some("15:00".into());
    input.patient_phone = Some("not a number".into());
    let refused = assert_error(org.staff.book(&input).await, 422, "validation_failed");
    assert!(refused.to_string().contains("patient_phone"), "{refused}");
}

/// A refused move is offered times that overlap only the appointment's own current time: the move
/// would free it.
async fn a_refused_move_is_offered_times_its_own_appointment_frees(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(5);
    let hour_long = shared::api::BookingInput { duration_minutes: Some(60), ..booking(provider.id, date, "10:00") };
    let moving = org.staff.book(&hour_long).await.expect("10:00 to 11:00");
    org.staff.book(&booking(provider.id, date, "12:00")).await.expect("12:00 to 12:30");
    let to = shared::api::RescheduleRequest {
        appointment_date: Some(date_str(date)),
        appointment_time: Some("11:30".into()),
        ..Default::default()
    };
    let err = assert_error(org.staff.reschedule(moving.appointment_id, &to).await, 409, "slot_unavailable");
    let starts: Vec<String> = err.alternatives().iter().map(|s| s.starts_at.format("%H:%M").to_string()).collect();
    assert!(starts.contains(&"10:30".to_owned()), "10:30 to 11:30 overlaps only the appointment itself: {starts:?}");
}

async fn a_taken_slot_is_refused_with_the_nearest_free_times(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(5);
    org.agent.book(&booking(provider.id, date, "10:00")).await.expect("first");
    let err = assert_error(org.agent.book(&booking(provider.id, date, "10:00")).await, 409, "slot_unavailable");
    let starts: Vec<String> = err.alternatives().iter().map(|s| s.starts_at.format("%H:%M").to_string()).collect();
    assert_eq!(starts, ["09:00", "09:30", "10:30"], "the three nearest free times (ties go to the earlier), in order");
    let overlapping = shared::api::BookingInput { duration_minutes: Some(60), ..booking(provider.id, date, "09:45") };
    assert_error(org.agent.book(&overlapping).await, 409, "slot_unavailable");
}

async fn back_to_back_slots_both_succeed(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(5);
    org.agent.book(&booking(provider.id, date, "10:00")).await.expect("10:00");
    org.agent.book(&booking(provider.id, date, "10:30")).await.expect("10:30 starts when 10:00 ends");
    org.agent.book(&booking(provider.id, date, "09:30")).await.expect("09:30 ends when 10:00 starts");
}

async fn working_hours_are_kept_and_answered_with_alternatives(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org
        .provider_with(CreateProvider {
            name: "Dr. Hours".into(),
            working_hours: Some(nine_to_five(&[Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri])),
            ..Default::default()
        })
        .await;
    let mut date = days_ahead(3);
    while date.weekday().number_from_monday() > 5 {
        date = date.succ_opt().expect("date");
    }
    org.agent.book(&booking(provider.id, date, "09:00")).await.expect("at opening");
    org.agent.book(&booking(provider.id, date, "16:30")).await.expect("ends at closing");
    let err = assert_error(org.agent.book(&booking(provider.id, date, "16:45")).await, 409, "slot_unavailable");
    assert!(!err.alternatives().is_empty());
    for slot in err.alternatives() {
        let local = slot.starts_at.time();
        assert!(
            local >= NaiveTime::from_hms_opt(9, 0, 0).expect("t")
                && slot.ends_at.time() <= NaiveTime::from_hms_opt(17, 0, 0).expect("t")
        );
    }
    assert_error(org.agent.book(&booking(provider.id, date, "07:00")).await, 409, "slot_unavailable");
    let mut weekend = date;
    while weekend.weekday().number_from_monday() != 6 {
        weekend = weekend.succ_opt().expect("date");
    }
    assert_error(org.agent.book(&booking(provider.id, weekend, "10:00")).await, 409, "slot_unavailable");
}

/// The next date from tomorrow on which 02:30 does not exist in New York. A time that does not
/// exist is refused before the booking horizon is asked, so it may lie past it.
fn next_spring_gap() -> NaiveDate {
    let zone = chrono_tz::America::New_York;
    (1..=400)
        .map(days_ahead)
        .find(|d| zone.from_local_datetime(&d.and_hms_opt(2, 30, 0).expect("t")).earliest().is_none())
        .expect("a spring-forward day within a year")
}

/// The next day within the booking horizon on which a local time happens twice, with that time and
/// its zone: 01:30 in New York, or, in the week after New York's clocks fell back (its next fall-back
/// then lies 371 days on, past the horizon), 02:30 in Auckland, whose clocks fall back in April.
fn next_autumn_overlap() -> (&'static str, NaiveDate, &'static str) {
    let twice = |zone: chrono_tz::Tz, time: &str| {
        let time = NaiveTime::parse_from_str(time, "%H:%M").expect("t");
        (1..=364)
            .map(days_ahead)
            .find(|d| matches!(zone.from_local_datetime(&d.and_time(time)), chrono::LocalResult::Ambiguous(..)))
    };
    [(chrono_tz::America::New_York, "01:30"), (chrono_tz::Pacific::Auckland, "02:30")]
        .into_iter()
        .find_map(|(zone, time)| twice(zone, time).map(|day| (zone.name(), day, time)))
        .expect("New York or Auckland falls back within any 364 days")
}

async fn daylight_saving_gaps_are_refused_and_overlaps_take_the_earlier_instant(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let err =
        assert_error(org.agent.book(&booking(provider.id, next_spring_gap(), "02:30")).await, 422, "validation_failed");
    assert!(err.to_string().contains("appointment_time"), "{err}");

    let (zone, fall_back, time) = next_autumn_overlap();
    let org = app.org(zone).await;
    let provider = org.provider().await;
    let overlap = org.agent.book(&booking(provider.id, fall_back, time)).await.expect("ambiguous time");
    let tz: chrono_tz::Tz = zone.parse().expect("zone");
    let local = fall_back.and_time(NaiveTime::parse_from_str(time, "%H:%M").expect("t"));
    let chrono::LocalResult::Ambiguous(earlier, later) = tz.from_local_datetime(&local) else {
        panic!("{time} happens twice in {zone} on {fall_back}");
    };
    use chrono::Offset;
    let offset = |t: chrono::DateTime<chrono_tz::Tz>| t.offset().fix().local_minus_utc();
    assert_eq!(overlap.starts_at.offset().local_minus_utc(), offset(earlier), "the earlier instant");
    // Thirty minutes after the earlier instant is the instant the clocks fall back: the end is on
    // the later offset (01:30 EDT + 30 minutes is 01:00 EST; 02:30 NZDT + 30 minutes, 02:00 NZST).
    assert_eq!(overlap.ends_at.offset().local_minus_utc(), offset(later));
    assert_eq!(overlap.ends_at - overlap.starts_at, Duration::minutes(30));
}

async fn a_providers_own_zone_overrides_the_organizations(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("America/New_York").await;
    let tokyo = org
        .provider_with(CreateProvider {
            name: "Dr. Tanaka".into(),
            timezone: Some("Asia/Tokyo".into()),
            appointment_minutes: Some(45),
            ..Default::default()
        })
        .await;
    assert_eq!(tokyo.timezone, "Asia/Tokyo");
    let date = days_ahead(20);
    let booked = org.agent.book(&booking(tokyo.id, date, "09:00")).await.expect("booked");
    assert_eq!(booked.starts_at.to_rfc3339(), format!("{}T09:00:00+09:00", date_str(date)));
    assert_eq!(booked.ends_at - booked.starts_at, Duration::minutes(45));
    let inherits = org.provider().await;
    assert_eq!(inherits.timezone, "America/New_York");
}

async fn cancel_frees_the_slot_and_reschedule_moves_atomically(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(6);
    let first = org.agent.book(&booking(provider.id, date, "10:00")).await.expect("booked");
    let other = org.agent.book(&booking(provider.id, date, "11:00")).await.expect("booked");

    let cancelled = org.staff.cancel(first.appointment_id, Some("patient called")).await.expect("cancelled");
    assert_eq!(cancelled.status, AppointmentStatus::Cancelled);
    assert_error(org.staff.cancel(first.appointment_id, None).await, 409, "invalid_state");
    let rebooked = org.agent.book(&booking(provider.id, date, "10:00")).await.expect("the slot is free again");

    let onto_other = move_to(date, "11:15");
    assert_error(org.staff.reschedule(rebooked.appointment_id, &onto_other).await, 409, "slot_unavailable");
    let unchanged = org.staff.appointment(rebooked.appointment_id).await.expect("read");
    assert_eq!(unchanged.starts_at, rebooked.starts_at, "a refused move changes nothing");

    let later = move_to(date, "10:15");
    let moved = org.staff.reschedule(rebooked.appointment_id, &later).await.expect("moved onto part of its own time");
    assert_eq!(moved.starts_at.format("%H:%M").to_string(), "10:15");
    assert_eq!(moved.ends_at - moved.starts_at, Duration::minutes(30), "keeps its length");
    // A repeat of the move (a retry, a double-clicked form) answers as the move did and writes
    // nothing: one audit row below, the appointment untouched.
    let again = org.staff.reschedule(rebooked.appointment_id, &later).await.expect("a repeat of the move");
    assert_eq!((again.starts_at, again.ends_at, again.updated_at), (moved.starts_at, moved.ends_at, moved.updated_at));
    assert_error(org.staff.reschedule(first.appointment_id, &later).await, 409, "invalid_state");

    let trail = app
        .store
        .audit_trail(org.id.into(), AppointmentId(rebooked.appointment_id).into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    let actions: Vec<_> = trail.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert_eq!(actions, [("booked", "test-agent"), ("rescheduled", "test-staff")]);
    let trail = app
        .store
        .audit_trail(org.id.into(), AppointmentId(first.appointment_id).into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    assert_eq!(trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["booked", "cancelled"]);
    let _ = other;
}

async fn the_appointment_list_filters_by_provider_time_and_status(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let a = org.provider().await;
    let b = org.provider_with(shared::api::CreateProvider { name: "Dr. Jones".into(), ..Default::default() }).await;
    let date = days_ahead(4);
    let kept = org.agent.book(&booking(a.id, date, "10:00")).await.expect("a");
    let cancelled = org.agent.book(&booking(a.id, date, "12:00")).await.expect("a2");
    org.staff.cancel(cancelled.appointment_id, None).await.expect("cancel");
    org.agent.book(&booking(b.id, date, "10:00")).await.expect("b");
    let of_a = org
        .staff
        .appointments(&shared::api::AppointmentQuery { provider_id: Some(a.id), ..Default::default() })
        .await
        .expect("list");
    assert_eq!(of_a.len(), 2);
    let pending_of_a = org
        .staff
        .appointments(&shared::api::AppointmentQuery {
            provider_id: Some(a.id),
            status: Some("pending".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(pending_of_a.iter().map(|x| x.id).collect::<Vec<_>>(), [kept.appointment_id]);
    let morning = org
        .staff
        .appointments(&shared::api::AppointmentQuery {
            from: Some(kept.starts_at.to_rfc3339()),
            to: Some(kept.ends_at.to_rfc3339()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(morning.len(), 2, "both 10:00 appointments");
    // Swapped, the window is refused, not answered with nothing booked.
    let swapped = shared::api::AppointmentQuery {
        from: Some(kept.ends_at.to_rfc3339()),
        to: Some(kept.starts_at.to_rfc3339()),
        ..Default::default()
    };
    assert_error(org.staff.appointments(&swapped).await, 422, "validation_failed");
    // Equal, they ask what is under way at that instant.
    let at = (kept.starts_at + chrono::Duration::minutes(1)).to_rfc3339();
    let now_on = shared::api::AppointmentQuery { from: Some(at.clone()), to: Some(at), ..Default::default() };
    assert_eq!(org.staff.appointments(&now_on).await.expect("list").len(), 2, "both under way");
    assert_error(
        org.staff
            .appointments(&shared::api::AppointmentQuery { status: Some("lost".into()), ..Default::default() })
            .await,
        422,
        "validation_failed",
    );
    // A filter the list does not have (or a misspelt one) is refused, never ignored: the front
    // desk taking the first of an unfiltered list would act on another patient's appointment.
    for (path, named) in [
        (format!("/api/appointments?confirmation_code={}", kept.confirmation_code), "confirmation_code"),
        (format!("/api/appointments?provider={}", a.id), "provider"),
        ("/api/providers?active=true".to_owned(), "active"),
    ] {
        let refused: Result<serde_json::Value, _> =
            org.staff.send(org.staff.request(reqwest::Method::GET, &path)).await;
        let message = assert_error(refused, 422, "validation_failed").to_string();
        assert!(message.contains(named), "{path}: {message}");
    }
}

/// An instance plans bookings from the copy of a provider it read for an earlier booking; a change
/// made through another instance must still hold for its very next booking.
async fn a_provider_changed_through_another_instance_is_never_booked_past(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let mut monday = days_ahead(10);
    while monday.weekday() != chrono::Weekday::Mon {
        monday += Duration::days(1);
    }
    org.agent
        .book(&booking(provider.id, monday, "09:00"))
        .await
        .expect("booked at any time: this instance now knows the provider");

    let other = app.another_instance().await;
    let admin_there = other.client(token(shared::Role::Admin, Some(org.id)));
    let change = |minutes: i64, days: &[Weekday]| UpdateProvider {
        appointment_minutes: Some(minutes),
        working_hours: Some(nine_to_five(days)),
        ..Default::default()
    };
    admin_there.update_provider(provider.id, &change(30, &[Weekday::Tue])).await.expect("Tuesdays only");
    assert_error(org.agent.book(&booking(provider.id, monday, "11:00")).await, 409, "slot_unavailable");

    admin_there.update_provider(provider.id, &change(60, &[Weekday::Mon])).await.expect("Mondays, an hour each");
    let longer = org.agent.book(&booking(provider.id, monday, "13:00")).await.expect("booked");
    assert_eq!(longer.ends_at - longer.starts_at, Duration::minutes(60));

    admin_there.deactivate_provider(provider.id).await.expect("deactivated");
    assert_error(org.agent.book(&booking(provider.id, monday, "15:00")).await, 404, "not_found");
}

/// Staff read an appointment's audit trail, oldest first and page by page: who booked, moved and
/// cancelled it, with what details. Another clinic's appointment is not found, the voice agent may
/// not read it, and a cursor the list did not give is refused.
async fn the_audit_trail_of_an_appointment_is_read_page_by_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, other) = (app.org("UTC").await, app.org("UTC").await);
    let provider = org.provider().await;
    let id = org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked").appointment_id;
    let later = move_to(days_ahead(3), "11:00");
    org.staff.reschedule(id, &later).await.expect("moved");
    org.staff.cancel(id, Some("patient called")).await.expect("cancelled");

    let read = async |by: &shared::ApiClient, query: &str| {
        let request = by.request(reqwest::Method::GET, &format!("/api/appointments/{id}/audit{query}"));
        by.send::<shared::api::Page<shared::api::AuditEntry>>(request).await
    };
    let first = read(&org.staff, "?limit=2").await.expect("the first page");
    let rows: Vec<_> = first.items.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert_eq!(rows, [("booked", "test-agent"), ("rescheduled", "test-staff")]);
    assert_eq!(first.items[0].details["starts_at"], first.items[1].details["from"]["starts_at"], "{first:?}");
    assert!(first.items[1].details["to"]["starts_at"].as_str().is_some_and(|t| t.contains("T11:00:00")), "{first:?}");
    assert!(first.items.iter().all(|e| e.call_id.is_none()), "no voice call made them");
    let next = first.next.expect("a second page");
    let second = read(&org.admin, &format!("?limit=2&cursor={next}")).await.expect("the second page");
    assert_eq!(second.items.len(), 1, "{second:?}");
    assert_eq!(
        (second.items[0].action.as_str(), &second.items[0].details["reason"]),
        ("cancelled", &serde_json::json!("patient called"))
    );
    assert!(second.next.is_none());
    assert!(first.items[0].at <= first.items[1].at && first.items[1].at <= second.items[0].at);

    assert_error(read(&other.staff, "").await, 404, "not_found");
    assert_error(read(&org.agent, "").await, 403, "forbidden");
    assert_error(read(&org.staff, "?cursor=bm90LWEtY3Vyc29y").await, 422, "validation_failed");
    // A cursor of another list, or of another appointment's trail, is not this list's.
    let another = org.agent.book(&booking(provider.id, days_ahead(4), "10:00")).await.expect("booked").appointment_id;
    org.staff.cancel(another, None).await.expect("cancelled");
    let listed = org.staff.request(reqwest::Method::GET, "/api/appointments?limit=1");
    let listed: shared::api::Page<shared::api::Appointment> = org.staff.send(listed).await.expect("listed");
    let other_list = listed.next.expect("two appointments");
    assert_error(read(&org.staff, &format!("?cursor={other_list}")).await, 422, "validation_failed");
    let theirs = org.staff.request(reqwest::Method::GET, &format!("/api/appointments/{another}/audit?limit=1"));
    let theirs = org.staff.send::<shared::api::Page<shared::api::AuditEntry>>(theirs).await.expect("read");
    let theirs = theirs.next.expect("a second page");
    assert_error(read(&org.staff, &format!("?cursor={theirs}")).await, 422, "validation_failed");
}

/// Staff confirm a pending appointment for the patient: it is confirmed and audited as by the
/// staff member; confirming again changes nothing; a cancelled or started one is refused; the
/// voice agent may not, and another clinic's is not found.
async fn staff_confirm_an_appointment_for_the_patient(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, other) = (app.org("UTC").await, app.org("UTC").await);
    let provider = org.provider().await;
    let id = org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked").appointment_id;
    let confirm = async |by: &shared::ApiClient, id: uuid::Uuid| {
        let request = by.request(reqwest::Method::POST, &format!("/api/appointments/{id}/confirm"));
        by.send::<shared::api::Appointment>(request).await
    };
    let confirmed = confirm(&org.staff, id).await.expect("confirmed");
    assert_eq!(confirmed.status, AppointmentStatus::Confirmed);
    let again = confirm(&org.admin, id).await.expect("confirmed again");
    assert_eq!((again.status, again.updated_at), (AppointmentStatus::Confirmed, confirmed.updated_at));
    let trail = app.store.audit_trail(org.id.into(), AppointmentId(id).into(), &every()).await.expect("audit").items;
    let rows: Vec<_> = trail.iter().map(|e| (e.action.as_str(), e.actor.as_str(), &e.details["via"])).collect();
    let via_staff = serde_json::json!("staff");
    assert_eq!(rows, [("booked", "test-agent", &serde_json::Value::Null), ("confirmed", "test-staff", &via_staff)]);

    assert_error(confirm(&org.agent, id).await, 403, "forbidden");
    assert_error(confirm(&other.staff, id).await, 404, "not_found");
    let cancelled = org.agent.book(&booking(provider.id, days_ahead(3), "11:00")).await.expect("booked").appointment_id;
    org.staff.cancel(cancelled, None).await.expect("cancelled");
    assert_error(confirm(&org.staff, cancelled).await, 409, "invalid_state");
    // After its start an appointment is marked attended or not, not confirmed.
    let started = org.agent.book(&booking(provider.id, days_ahead(1), "12:00")).await.expect("booked").appointment_id;
    crate::attendance::backdate(&app, started).await;
    let refused = assert_error(confirm(&org.staff, started).await, 409, "invalid_state");
    assert!(refused.to_string().contains("has started"), "{refused}");
}

on_both_backends!(
    blank_optional_fields_are_absent,
    the_audit_trail_of_an_appointment_is_read_page_by_page,
    staff_confirm_an_appointment_for_the_patient,
    a_refused_move_is_offered_times_its_own_appointment_frees,
    a_booking_is_pending_with_a_code_and_local_times,
    a_provider_changed_through_another_instance_is_never_booked_past,
    a_taken_slot_is_refused_with_the_nearest_free_times,
    back_to_back_slots_both_succeed,
    working_hours_are_kept_and_answered_with_alternatives,
    daylight_saving_gaps_are_refused_and_overlaps_take_the_earlier_instant,
    a_providers_own_zone_overrides_the_organizations,
    cancel_frees_the_slot_and_reschedule_moves_atomically,
    the_appointment_list_filters_by_provider_time_and_status,
);
