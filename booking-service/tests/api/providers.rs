use crate::helpers::*;
use shared::api::{CreateProvider, UpdateProvider, Weekday};

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
}

on_both_backends!(providers_are_created_read_changed_and_deactivated, availability_lists_the_free_slots_of_a_local_day);
