use crate::helpers::*;
use shared::api::{CreateAppointmentType, CreateProvider, UpdateProvider, Weekday, WorkingHours};

async fn providers_are_created_read_changed_and_deactivated(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("Europe/Berlin").await;
    let created = org
        .provider_with(CreateProvider {
            name: "Dr. Weber".into(),
            appointment_minutes: Some(20),
            working_hours: Some(nine_to_five(&[Weekday::Mon, Weekday::Wed])),
            ..Default::default()
        })
        .await;
    assert_eq!((created.timezone.as_str(), created.appointment_minutes, created.active), ("Europe/Berlin", 20, true));
    assert_eq!(created.working_hours.len(), 2);
    assert_eq!(org.staff.provider(created.id).await.expect("read"), created);
    assert_eq!(org.agent.providers().await.expect("list"), vec![created.clone()]);

    let changed = org
        .admin
        .update_provider(
            created.id,
            &UpdateProvider {
                name: Some("Dr. Anna Weber".into()),
                timezone: Some(Some("Europe/Lisbon".into())),
                working_hours: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .expect("patched");
    assert_eq!((changed.name.as_str(), changed.timezone.as_str()), ("Dr. Anna Weber", "Europe/Lisbon"));
    assert!(changed.working_hours.is_empty());
    assert_eq!(changed.appointment_minutes, 20, "untouched fields stay");
    let back = org
        .admin
        .update_provider(created.id, &UpdateProvider { timezone: Some(None), ..Default::default() })
        .await
        .expect("patched");
    assert_eq!(back.timezone, "Europe/Berlin", "null falls back to the organization's zone");

    org.admin.deactivate_provider(created.id).await.expect("deactivated");
    let inactive = org.admin.provider(created.id).await.expect("still readable");
    assert!(!inactive.active);
    assert_error(org.agent.book(&booking(created.id, days_ahead(3), "10:00")).await, 404, "not_found");
    let day = org.agent.availability(created.id, &date_str(days_ahead(3))).await.expect("availability");
    assert!(day.slots.is_empty(), "an inactive provider offers nothing");
}

async fn availability_lists_the_free_slots_of_a_local_day(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let date = days_ahead(5);
    let weekday = match chrono::Datelike::weekday(&date) {
        chrono::Weekday::Mon => Weekday::Mon,
        chrono::Weekday::Tue => Weekday::Tue,
        chrono::Weekday::Wed => Weekday::Wed,
        chrono::Weekday::Thu => Weekday::Thu,
        chrono::Weekday::Fri => Weekday::Fri,
        chrono::Weekday::Sat => Weekday::Sat,
        chrono::Weekday::Sun => Weekday::Sun,
    };
    let provider = org
        .provider_with(CreateProvider {
            name: "Dr. Day".into(),
            timezone: Some("America/Chicago".into()),
            appointment_minutes: Some(60),
            working_hours: Some(nine_to_five(&[weekday])),
        })
        .await;
    org.agent.book(&booking(provider.id, date, "11:00")).await.expect("booked");
    let day = org.agent.availability(provider.id, &date_str(date)).await.expect("availability");
    assert_eq!(day.timezone, "America/Chicago");
    assert_eq!(day.date, date);
    let starts: Vec<String> = day.slots.iter().map(|s| s.starts_at.format("%H:%M").to_string()).collect();
    assert_eq!(starts, ["09:00", "10:00", "12:00", "13:00", "14:00", "15:00", "16:00"]);
    let next_day =
        org.agent.availability(provider.id, &date_str(date.succ_opt().expect("date"))).await.expect("availability");
    assert!(next_day.slots.is_empty(), "no hours that weekday");
    // A day gone by has no free slots, on either database (PostgreSQL answered 500 once the
    // day's span, clamped to what is still relevant, ended before it began).
    // Four weeks back: the same weekday, with working hours, so slots could show.
    let past = date - chrono::Days::new(28);
    let gone = org.agent.availability(provider.id, &date_str(past)).await.expect("a past day's availability");
    assert!(gone.slots.is_empty(), "{gone:?}");
}

const WEEK: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

fn period(weekday: Weekday, start: &str, end: &str) -> WorkingHours {
    WorkingHours { weekday, start: start.into(), end: end.into() }
}

/// Four periods a day, every day: the most a provider may have.
fn twenty_eight_periods() -> Vec<WorkingHours> {
    WEEK.iter()
        .flat_map(|&d| {
            [("07:00", "09:00"), ("09:00", "12:00"), ("12:00", "17:00"), ("18:00", "24:00")]
                .map(|(start, end)| period(d, start, end))
        })
        .collect()
}

/// Issue 11's attack: 1,300 copies of one all-day period made each availability read cost
/// seconds. A provider takes at most 28 periods, none overlapping another of its day.
async fn working_hours_are_at_most_28_periods_none_overlapping(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let create = |name: &str, hours: Vec<WorkingHours>| CreateProvider {
        name: name.into(),
        working_hours: Some(hours),
        ..Default::default()
    };
    let mut twenty_nine = twenty_eight_periods();
    twenty_nine.push(period(Weekday::Mon, "17:00", "18:00"));
    let refused = [
        ("29 periods", twenty_nine),
        ("1,000 copies", vec![period(Weekday::Sat, "00:00", "24:00"); 1000]),
        ("overlapping", vec![period(Weekday::Mon, "09:00", "12:00"), period(Weekday::Mon, "11:00", "17:00")]),
        ("the same twice", vec![period(Weekday::Tue, "09:00", "17:00"), period(Weekday::Tue, "09:00", "17:00")]),
        ("one inside another", vec![period(Weekday::Wed, "08:00", "18:00"), period(Weekday::Wed, "12:00", "13:00")]),
    ];
    for (case, hours) in refused {
        let err = assert_error(org.admin.create_provider(&create(case, hours)).await, 422, "validation_failed");
        assert!(err.to_string().contains("working_hours"), "{case}: the message names the field: {err}");
    }
    assert!(org.admin.providers().await.expect("list").is_empty(), "nothing was created");

    let full = org.admin.create_provider(&create("Dr. Full", twenty_eight_periods())).await.expect("28 periods");
    assert_eq!(full.working_hours.len(), 28);
    let split = vec![period(Weekday::Mon, "12:00", "17:00"), period(Weekday::Mon, "09:00", "12:00")];
    let back_to_back = org.admin.create_provider(&create("Dr. Split", split)).await.expect("09-12 and 12-17");
    assert_eq!(back_to_back.working_hours.len(), 2);

    // PATCH holds the same rules, and a refused change leaves the hours as they were.
    let overlap = vec![period(Weekday::Fri, "09:00", "13:00"), period(Weekday::Fri, "12:59", "17:00")];
    let patch = UpdateProvider { working_hours: Some(overlap), ..Default::default() };
    let err = assert_error(org.admin.update_provider(full.id, &patch).await, 422, "validation_failed");
    assert!(err.to_string().contains("working_hours"), "{err}");
    let mut too_many = twenty_eight_periods();
    too_many.push(period(Weekday::Sun, "17:00", "18:00"));
    let patch = UpdateProvider { working_hours: Some(too_many), ..Default::default() };
    assert_error(org.admin.update_provider(full.id, &patch).await, 422, "validation_failed");
    assert_eq!(org.admin.provider(full.id).await.expect("read").working_hours, full.working_hours);
}

/// Hours stored before the limits existed (written here straight into the database: 1,300 copies
/// of one all-day period) still read, merged into the one period they amount to, and a day of them
/// is each slot once, no more than a five-minute grid around the clock holds.
async fn hours_stored_before_the_limits_still_read_and_yield_a_bounded_day(backend: Backend) {
    use sqlx::Connection;
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let date = days_ahead(5);
    let weekday = WEEK[chrono::Datelike::weekday(&date).num_days_from_monday() as usize];
    let provider = org
        .provider_with(CreateProvider {
            name: "Dr. Legacy".into(),
            appointment_minutes: Some(5),
            working_hours: Some(vec![period(weekday, "09:00", "10:00")]),
            ..Default::default()
        })
        .await;
    let copies = serde_json::to_string(&vec![period(weekday, "00:00", "24:00"); 1300]).expect("json");
    let id = provider.id.to_string();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
            sqlx::query("UPDATE providers SET working_hours = ?, version = version + 1 WHERE id = ?")
                .bind(&copies)
                .bind(&id)
                .execute(&mut conn)
                .await
                .expect("stored");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
            sqlx::query("UPDATE providers SET working_hours = $1::jsonb, version = version + 1 WHERE id = $2::uuid")
                .bind(&copies)
                .bind(&id)
                .execute(&mut conn)
                .await
                .expect("stored");
        }
    }
    // Another instance, so nothing the first one remembers of the provider stands in for the rows.
    let fresh = app.another_instance().await;
    let agent = fresh.client(token(shared::Role::Agent, Some(org.id)));
    let read = agent.provider(provider.id).await.expect("the provider still reads");
    assert_eq!(read.working_hours, [period(weekday, "00:00", "24:00")]);
    let day = agent.availability(provider.id, &date_str(date)).await.expect("availability");
    assert_eq!(day.slots.len(), 288, "one every five minutes, each once");
    assert!(day.slots.windows(2).all(|w| w[0].starts_at < w[1].starts_at), "in order, no repeats");
}

/// A deactivated provider's appointment cannot be moved, and the refusal offers no times of it,
/// which could never be booked either.
async fn an_inactive_providers_appointment_is_offered_no_other_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(5);
    let booked = org.agent.book(&booking(provider.id, date, "10:00")).await.expect("booked");
    org.admin.deactivate_provider(provider.id).await.expect("deactivated");
    let to_eleven = shared::api::RescheduleRequest {
        appointment_date: Some(date_str(date)),
        appointment_time: Some("11:00".into()),
        ..Default::default()
    };
    let err = assert_error(org.staff.reschedule(booked.appointment_id, &to_eleven).await, 409, "slot_unavailable");
    assert!(err.alternatives().is_empty(), "{err}");
}

/// Two active providers, or two active appointment types, whose names have the same words (titles,
/// case, punctuation and filler aside) would leave the voice agent asking "Dr. Smith or Smith?"
/// for ever: the second is refused, whether created, renamed or reactivated, and two created at
/// once are not both kept.
async fn names_a_caller_could_not_tell_apart_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let named = |name: &str| CreateProvider { name: name.into(), ..Default::default() };
    let smith = org.provider_with(named("Dr. Smith")).await;
    for same in ["smith", "Doctor SMITH", "Smith."] {
        let err = assert_error(org.admin.create_provider(&named(same)).await, 409, "invalid_state").to_string();
        assert!(err.contains("\"Dr. Smith\""), "{same}: {err}");
    }
    let err = assert_error(org.admin.create_provider(&named("Dr.")).await, 422, "validation_failed").to_string();
    assert!(err.contains("name"), "{err}");
    let jane = org.provider_with(named("Dr. Jane Smith")).await;
    let rename = UpdateProvider { name: Some("Smith".into()), ..Default::default() };
    assert_error(org.admin.update_provider(jane.id, &rename).await, 409, "invalid_state");
    let longer = UpdateProvider { appointment_minutes: Some(45), ..Default::default() };
    org.admin.update_provider(smith.id, &longer).await.expect("a change that names nothing");

    org.admin.deactivate_provider(smith.id).await.expect("deactivated");
    let successor = org.provider_with(named("Smith")).await;
    let back = UpdateProvider { active: Some(true), ..Default::default() };
    assert_error(org.admin.update_provider(smith.id, &back).await, 409, "invalid_state");
    assert!(!org.admin.provider(smith.id).await.expect("read").active);
    let names: Vec<String> = org.admin.providers().await.expect("list").into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["Dr. Jane Smith", "Dr. Smith", "Smith"]);
    assert!(org.admin.provider(successor.id).await.expect("read").active);

    let kind = |name: &str| CreateAppointmentType { name: name.into(), duration_minutes: 20, ..Default::default() };
    org.admin.create_appointment_type(&kind("Follow-up")).await.expect("a type");
    assert_error(org.admin.create_appointment_type(&kind("a follow up visit")).await, 409, "invalid_state");
    org.admin.create_appointment_type(&kind("New patient")).await.expect("another type");

    for round in 0..8 {
        let (titled, plain) = (named(&format!("Dr. Lee {round}")), named(&format!("lee {round}")));
        let (a, b) = tokio::join!(org.admin.create_provider(&titled), org.admin.create_provider(&plain));
        assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "round {round}: {a:?} {b:?}");
    }
}

/// Every active provider is a name the voice agent reads out: a clinic has at most 200 at once.
async fn a_clinic_has_at_most_200_active_providers(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let named = |n: usize| CreateProvider { name: format!("Provider {n}"), ..Default::default() };
    let mut first = None;
    for n in 0..200 {
        let created = org.admin.create_provider(&named(n)).await.expect("room for it");
        first.get_or_insert(created.id);
    }
    let err = assert_error(org.admin.create_provider(&named(200)).await, 409, "invalid_state").to_string();
    assert!(err.contains("200 active providers"), "{err}");
    org.admin.deactivate_provider(first.expect("created")).await.expect("deactivated");
    org.admin.create_provider(&named(200)).await.expect("room again");
}

on_both_backends!(
    names_a_caller_could_not_tell_apart_are_refused,
    a_clinic_has_at_most_200_active_providers,
    an_inactive_providers_appointment_is_offered_no_other_time,
    hours_stored_before_the_limits_still_read_and_yield_a_bounded_day,
    providers_are_created_read_changed_and_deactivated,
    availability_lists_the_free_slots_of_a_local_day,
    working_hours_are_at_most_28_periods_none_overlapping,
);
