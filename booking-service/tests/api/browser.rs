//! The patient's pages in a real headless Chromium (test_kit::browser): a patient opens the link
//! from the email, sees the appointment, and confirms it with the button; a patient opens the
//! manage link and moves the appointment by clicking one of the offered times.

use crate::helpers::*;
use shared::api::{AppointmentStatus, BookingInput, Weekday};
use std::time::Duration;
use test_kit::browser::{self, Browser};

async fn a_patient_confirms_in_a_real_browser(backend: Backend) {
    if !browser::available("the confirm-page test") {
        return;
    }
    let app = spawn_app(backend).await;
    let org = app.org("Europe/Paris").await;
    let provider = org.provider().await;
    let booked = org
        .agent
        .book(&BookingInput {
            patient_email: Some("ada@example.com".into()),
            ..booking(provider.id, days_ahead(8), "16:00")
        })
        .await
        .expect("booked");
    // The link as the patient gets it: from the .eml the service wrote.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let eml = loop {
        let found = std::fs::read_dir(app.mail_dir.path())
            .expect("mail folder")
            .filter_map(|e| e.ok())
            .find(|e| e.path().extension().is_some_and(|x| x == "eml"));
        if let Some(entry) = found {
            break std::fs::read_to_string(entry.path()).expect("readable .eml");
        }
        assert!(tokio::time::Instant::now() < deadline, "no .eml written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let unfolded = eml.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = unfolded.find(&format!("{}/confirm/", app.base)).expect("a confirm link");
    let link: String =
        unfolded[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_:/.".contains(*c)).collect();

    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_for_title("Confirm your appointment").await;
    assert_eq!(
        org.staff.appointment(booked.appointment_id).await.expect("appointment").status,
        AppointmentStatus::Pending,
        "opening the page confirms nothing"
    );
    browser.click("form button[type=submit]").await;
    browser.wait_for_title("Appointment confirmed").await;
    browser.quit().await;
    assert_eq!(
        org.staff.appointment(booked.appointment_id).await.expect("appointment").status,
        AppointmentStatus::Confirmed
    );
}

async fn a_patient_moves_the_appointment_in_a_real_browser(backend: Backend) {
    if !browser::available("the manage-page test") {
        return;
    }
    let app = spawn_app(backend).await;
    let org = app.org("Europe/Paris").await;
    let provider = org
        .provider_with(shared::api::CreateProvider {
            name: "Dr. Smith".into(),
            working_hours: Some(nine_to_five(&[
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ])),
            ..Default::default()
        })
        .await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(10), "16:00")).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;

    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_for_title("Your appointment").await;
    let first = browser.attribute("form.move input[name=starts_at]", "value").await;
    let first = chrono::DateTime::parse_from_rfc3339(&first).expect("an offered start");
    assert_eq!(
        org.staff.appointment(booked.appointment_id).await.expect("appointment").starts_at,
        booked.starts_at,
        "opening the page moves nothing"
    );
    browser.click("form.move button[type=submit]").await;
    browser.wait_for_title("Appointment moved").await;
    let shown = browser.text("dl").await;
    assert!(shown.contains(&first.format("%H:%M").to_string()), "the new time on the page: {shown}");
    assert!(shown.contains(&first.format("%-d %B %Y").to_string()), "the new day on the page: {shown}");
    browser.quit().await;
    let moved = org.staff.appointment(booked.appointment_id).await.expect("appointment");
    assert_eq!(moved.starts_at, first);
    assert_ne!(moved.starts_at, booked.starts_at);
}

on_both_backends!(a_patient_confirms_in_a_real_browser, a_patient_moves_the_appointment_in_a_real_browser);
