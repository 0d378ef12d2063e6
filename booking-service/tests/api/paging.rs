//! Lists come in pages (`limit`, `cursor`, `{"items", "next"}`): nothing is cut silently, and
//! paging through a list gives every row exactly once, in order.

use crate::helpers::*;
use futures::stream::{self, StreamExt};
use shared::api::{AppointmentQuery, CreateProvider, PageQuery};
use std::collections::HashSet;

async fn twelve_hundred_appointments_page_through_exactly_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    // 1,200 five-minute appointments, more than the 1,000 a list used to stop at.
    let booked: Vec<uuid::Uuid> = stream::iter(0..1200i64)
        .map(|i| {
            let (agent, minute) = (org.agent.clone(), i * 5);
            async move {
                let mut input = booking(provider, days_ahead(3 + minute / (24 * 60)), "00:00");
                input.appointment_time = Some(format!("{:02}:{:02}", (minute / 60) % 24, minute % 60));
                input.duration_minutes = Some(5);
                agent.book(&input).await.expect("booked").appointment_id
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;

    let mut query = AppointmentQuery { limit: Some(500), ..Default::default() };
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let page = org.staff.appointments_page(&query).await.expect("a page");
        sizes.push(page.items.len());
        seen.extend(page.items);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [500, 500, 200]);
    let ids: HashSet<_> = seen.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 1200, "every appointment once");
    assert_eq!(ids, booked.into_iter().collect::<HashSet<_>>());
    assert!(seen.windows(2).all(|w| w[0].starts_at < w[1].starts_at), "in order of start");

    // The default page is 100, and the client follows every page.
    let first = org.staff.appointments_page(&AppointmentQuery::default()).await.expect("a page");
    assert_eq!(first.items.len(), 100);
    assert_eq!(org.staff.appointments(&AppointmentQuery::default()).await.expect("all").len(), 1200);
}

async fn page_sizes_and_cursors_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    for limit in [0, 501] {
        let query = AppointmentQuery { limit: Some(limit), ..Default::default() };
        assert_error(org.staff.appointments_page(&query).await, 422, "validation_failed");
        let query = PageQuery { limit: Some(limit), ..Default::default() };
        assert_error(org.staff.providers_page(&query).await, 422, "validation_failed");
    }
    for cursor in ["not a cursor", "eyJ4IjoxfQ", &"A".repeat(5000)] {
        let query = AppointmentQuery { cursor: Some(cursor.into()), ..Default::default() };
        let err = assert_error(org.staff.appointments_page(&query).await, 422, "validation_failed");
        assert!(err.to_string().contains("cursor"), "{err}");
    }
}

async fn providers_page_by_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    for name in ["Dr. C", "Dr. A", "Dr. B"] {
        org.provider_with(CreateProvider { name: name.into(), ..Default::default() }).await;
    }
    // A second "Dr. A", once the first has left (two active ones could not be told apart).
    let first_a = org.admin.providers().await.expect("list").into_iter().find(|p| p.name == "Dr. A").expect("Dr. A");
    org.admin.deactivate_provider(first_a.id).await.expect("left");
    org.provider_with(CreateProvider { name: "Dr. A".into(), ..Default::default() }).await;
    let mut query = PageQuery { limit: Some(3), cursor: None };
    let first = org.agent.providers_page(&query).await.expect("a page");
    query.cursor = first.next.clone();
    let second = org.agent.providers_page(&query).await.expect("a page");
    let names: Vec<_> = first.items.iter().chain(&second.items).map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Dr. A", "Dr. A", "Dr. B", "Dr. C"]);
    assert!(second.next.is_none());
    // After the longest name, of two-byte characters: its cursor is taken back too.
    let longest = "Ж".repeat(200);
    org.provider_with(CreateProvider { name: longest.clone(), ..Default::default() }).await;
    org.provider_with(CreateProvider { name: "Я".into(), ..Default::default() }).await;
    let mut names = Vec::new();
    let mut one = PageQuery { limit: Some(1), cursor: None };
    loop {
        let page = org.agent.providers_page(&one).await.expect("a page, from every cursor given");
        names.extend(page.items.into_iter().map(|p| p.name));
        match page.next {
            Some(next) => one.cursor = Some(next),
            None => break,
        }
    }
    names.sort();
    assert_eq!(names[3..], ["Dr. C".to_owned(), longest, "Я".to_owned()], "each once: {names:?}");
    assert_eq!(names.len(), 6);
    // A cursor reads only its own organization's rows.
    let other = app.org("UTC").await;
    let foreign = other.agent.providers_page(&query).await.expect("a page");
    assert!(foreign.items.is_empty(), "{foreign:?}");
}

on_both_backends!(
    twelve_hundred_appointments_page_through_exactly_once,
    page_sizes_and_cursors_are_checked,
    providers_page_by_name
);
