//! The patient's manage link (docs/API.md, "Manage link"): the page shows the appointment and up to ten times
//! to move to and changes nothing; cancel and reschedule through it are the booking rules, written
//! to the audit log as `patient`, under the clinic's cut-off; the link opens exactly one appointment.

use crate::attendance::backdate;
use crate::helpers::*;
use booking_service::domain::{AppointmentId, OrgId};
use chrono::{DateTime, Datelike, Duration, FixedOffset, Offset, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use shared::api::{
    self, AppointmentStatus, BookingInput, CreateAppointmentType, CreateProvider, RescheduleRequest, Weekday,
    WorkingHours,
};
use uuid::Uuid;

const EVERY_DAY: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

/// A clinic in Paris whose one provider works 09:00 to 17:00 every day, in 30-minute slots.
async fn clinic(app: &TestApp, name: &str, provider: &str) -> (TestOrg, api::Provider) {
    let org = app.org_named(name, "Europe/Paris").await;
    let provider = org
        .provider_with(CreateProvider {
            name: provider.into(),
            working_hours: Some(nine_to_five(&EVERY_DAY)),
            ..Default::default()
        })
        .await;
    (org, provider)
}

async fn get(link: &str, json: bool) -> reqwest::Response {
    let mut request = browser().get(link);
    if json {
        request = request.header(ACCEPT, "application/json");
    }
    request.send().await.expect("GET the manage page")
}

async fn cancel(link: &str, json: bool) -> reqwest::Response {
    let mut request = browser().post(format!("{link}/cancel"));
    if json {
        request = request.header(ACCEPT, "application/json");
    }
    request.send().await.expect("POST cancel")
}

/// Posts a new start as the page's form does (HTML answer).
async fn move_by_form(link: &str, starts_at: &str) -> reqwest::Response {
    browser().post(format!("{link}/reschedule")).form(&[("starts_at", starts_at)]).send().await.expect("POST form")
}

/// Posts a new start as JSON, asking for JSON.
async fn move_by_json(link: &str, starts_at: &str) -> reqwest::Response {
    browser()
        .post(format!("{link}/reschedule"))
        .header(ACCEPT, "application/json")
        .json(&serde_json::json!({ "starts_at": starts_at }))
        .send()
        .await
        .expect("POST json")
}

/// The `starts_at` of every move form on a page, in order.
fn offered(html: &str) -> Vec<String> {
    html.split("name=\"starts_at\" value=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').expect("a closing quote")].to_owned())
        .collect()
}

fn instant(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("an error body");
    assert_eq!(body["success"], false, "{body}");
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn assert_private(response: &reqwest::Response) {
    let h = response.headers();
    assert_eq!(h.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
    assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
}

async fn audit(app: &TestApp, org: &TestOrg, id: Uuid) -> Vec<(String, String)> {
    let trail = app
        .store
        .audit_trail(OrgId(org.id), AppointmentId(id).into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    trail.into_iter().map(|e| (e.action, e.actor)).collect()
}

async fn outbox_kinds(app: &TestApp, org: &TestOrg, id: Uuid) -> Vec<String> {
    let jobs = app.store.outbox(OrgId(org.id), AppointmentId(id)).await.expect("outbox");
    jobs.into_iter().map(|j| j.kind).collect()
}

async fn set_cutoff(org: &TestOrg, minutes: i64) {
    let settings = org.admin.settings().await.expect("settings");
    org.admin.set_settings(&api::Settings { manage_cutoff_minutes: minutes, ..settings }).await.expect("saved");
}

async fn the_page_shows_the_appointment_and_up_to_ten_times_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Clinique <b>Lumière</b>", "Dr. <script>alert(1)</script>").await;
    let booked = org
        .agent
        .book(&BookingInput {
            patient_email: Some("ada@example.com".into()),
            ..booking(provider.id, days_ahead(5), "10:00")
        })
        .await
        .expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let (audit_before, outbox_before) =
        (audit(&app, &org, booked.appointment_id).await, outbox_kinds(&app, &org, booked.appointment_id).await);

    let page = get(&link, false).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_private(&page);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(html.contains(&booked.confirmation_code), "{html}");
    assert!(html.contains("Europe/Paris"), "the time is local to the provider: {html}");
    assert!(html.contains("Clinique &lt;b&gt;Lumière&lt;/b&gt;"), "{html}");
    assert!(html.contains("Dr. &lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>") && !html.contains("<b>"), "nothing unescaped: {html}");
    assert!(html.contains("/cancel\""), "a Cancel form: {html}");
    assert!(html.contains("Booked, not yet confirmed"), "the status: {html}");

    // Ten times: the provider has 16 a day, so the page stops at ten, all free, outside the
    // default cut-off (a day), within 14 days, in order, 30 minutes long starts.
    let times = offered(&html);
    assert_eq!(times.len(), 10, "{times:?}");
    let now = Utc::now();
    for (i, t) in times.iter().enumerate() {
        let start = instant(t);
        assert!(start >= now + Duration::hours(24), "outside the cut-off: {t}");
        assert!(start <= now + Duration::days(15), "within 14 days: {t}");
        let paris = start.with_timezone(&chrono_tz::Europe::Paris).offset().fix().local_minus_utc();
        assert_eq!(start.offset().local_minus_utc(), paris, "in Paris' offset: {t}");
        if i > 0 {
            assert!(instant(&times[i - 1]) < start, "in order: {times:?}");
        }
    }

    // The JSON view is the appointment as staff see it.
    let json = get(&link, true).await;
    assert_eq!(json.status(), StatusCode::OK);
    assert_private(&json);
    let shown: api::Appointment = json.json().await.expect("appointment json");
    let read = org.staff.appointment(booked.appointment_id).await.expect("read");
    assert_eq!(serde_json::to_value(&shown).expect("json"), serde_json::to_value(&read).expect("json"));

    // Opening it (twice, and as JSON) wrote nothing.
    get(&link, false).await;
    let after = org.staff.appointment(booked.appointment_id).await.expect("read");
    assert_eq!(after.status, AppointmentStatus::Pending);
    assert_eq!(audit(&app, &org, booked.appointment_id).await, audit_before);
    assert_eq!(outbox_kinds(&app, &org, booked.appointment_id).await, outbox_before);
}

/// A patient booked by phone has no confirmation link: the manage page offers Confirm while the
/// appointment is pending, within the cut-off too, audited as the patient's; confirming again is
/// harmless, and from the start, confirmed or not, it is 410 (and the staff's route 409).
async fn the_patient_confirms_through_the_manage_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(3), "11:00")).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let token = link.rsplit('/').next().expect("the token");
    let page = get(&link, false).await.text().await.expect("html");
    assert!(page.contains(&format!("<form method=\"post\" action=\"{token}/confirm\">")), "{page}");
    // Within the cut-off too (a week's, here), where nothing else may change online.
    set_cutoff(&org, 7 * 24 * 60).await;

    let confirm = async |json: bool| {
        let mut request = browser().post(format!("{link}/confirm"));
        if json {
            request = request.header(ACCEPT, "application/json");
        }
        request.send().await.expect("POST confirm")
    };
    let answer = confirm(false).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_private(&answer);
    assert!(answer.text().await.expect("html").contains("Your appointment is confirmed."));
    let again = confirm(true).await;
    assert_eq!(again.status(), StatusCode::OK, "confirming again is harmless");
    let again: api::Appointment = again.json().await.expect("appointment json");
    assert_eq!(again.status, AppointmentStatus::Confirmed);
    assert_eq!(
        audit(&app, &org, booked.appointment_id).await,
        [("booked".to_owned(), "test-agent".to_owned()), ("confirmed".to_owned(), "patient".to_owned())]
    );
    let page = get(&link, false).await.text().await.expect("html");
    assert!(!page.contains("/confirm\""), "no Confirm button once confirmed: {page}");

    // Moved two days back: yesterday's.
    let later = org.agent.book(&booking(provider.id, days_ahead(1), "11:00")).await.expect("booked");
    let link = app.manage_link(org.id, later.appointment_id).await;
    crate::attendance::backdate(&app, later.appointment_id).await;
    let started = browser().post(format!("{link}/confirm")).header(ACCEPT, "application/json").send().await;
    assert_eq!(error_code(started.expect("POST confirm")).await, (StatusCode::GONE, "gone".into()));
    assert_eq!(org.staff.appointment(later.appointment_id).await.expect("read").status, AppointmentStatus::Pending);
    // Marked no-show since, as every manage route answers it (not the 409 of an ended visit).
    org.staff.no_show(later.appointment_id).await.expect("marked");
    let started = browser().post(format!("{link}/confirm")).header(ACCEPT, "application/json").send().await;
    assert_eq!(error_code(started.expect("POST confirm")).await, (StatusCode::GONE, "gone".into()));
    // Confirmed before its start, too: from the start the link is gone whatever the status.
    crate::attendance::shift(&app, booked.appointment_id, Duration::days(5)).await;
    let started = browser().post(format!("{}/confirm", app.manage_link(org.id, booked.appointment_id).await));
    let started = started.header(ACCEPT, "application/json").send().await;
    assert_eq!(error_code(started.expect("POST confirm")).await, (StatusCode::GONE, "gone".into()));
    let id = booked.appointment_id;
    let by_staff = org.staff.request(Method::POST, &format!("/api/appointments/{id}/confirm")).send().await;
    let says = "staff mark a started appointment completed or no-show instead";
    assert_eq!(
        error_code(by_staff.expect("POST confirm")).await,
        (StatusCode::CONFLICT, "invalid_state".into()),
        "{says}"
    );
}

async fn the_patient_cancels_through_the_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org
        .agent
        .book(&BookingInput {
            patient_email: Some("ada@example.com".into()),
            ..booking(provider.id, days_ahead(6), "11:00")
        })
        .await
        .expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;

    // The page's Cancel button asks first: a page that changes nothing, whose form cancels and
    // whose other link leads back (both relative to /manage/{token}/cancel).
    let page = get(&link, false).await.text().await.expect("html");
    let token = link.rsplit('/').next().expect("the token");
    assert!(page.contains(&format!("href=\"{token}/cancel\"")), "the Cancel button asks first: {page}");
    let asked = get(&format!("{link}/cancel"), false).await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert_private(&asked);
    let question = asked.text().await.expect("html");
    assert!(question.contains("<title>Cancel this appointment?</title>"), "{question}");
    assert!(question.contains(&booked.confirmation_code), "{question}");
    assert!(question.contains("<form method=\"post\" action=\"cancel\">"), "{question}");
    assert!(question.contains(&format!("href=\"../{token}\"")), "the way back: {question}");
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").status, AppointmentStatus::Pending);

    let answer = cancel(&link, true).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_private(&answer);
    let cancelled: api::Appointment = answer.json().await.expect("appointment json");
    assert_eq!(cancelled.id, booked.appointment_id);
    assert_eq!(cancelled.status, AppointmentStatus::Cancelled);
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").status, AppointmentStatus::Cancelled);
    assert_eq!(
        audit(&app, &org, booked.appointment_id).await,
        [("booked".to_owned(), "test-agent".to_owned()), ("cancelled".to_owned(), "patient".to_owned())]
    );
    assert!(outbox_kinds(&app, &org, booked.appointment_id).await.contains(&"cancellation_notice".to_owned()));

    // Twice is refused and changes nothing; the page says it is cancelled and offers nothing.
    assert_eq!(error_code(cancel(&link, true).await).await, (StatusCode::CONFLICT, "invalid_state".into()));
    let again = cancel(&link, false).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.expect("html").contains("already cancelled"));
    assert_eq!(audit(&app, &org, booked.appointment_id).await.len(), 2);
    let page = get(&link, false).await.text().await.expect("html");
    assert!(page.contains("was cancelled"), "{page}");
    assert!(!page.contains("<form"), "nothing to do on a cancelled appointment: {page}");
    let asked = get(&format!("{link}/cancel"), false).await.text().await.expect("html");
    assert!(asked.contains("was cancelled") && !asked.contains("<form"), "no question once cancelled: {asked}");

    // The HTML answer of a cancellation.
    let other = org.agent.book(&booking(provider.id, days_ahead(7), "11:00")).await.expect("booked");
    let link = app.manage_link(org.id, other.appointment_id).await;
    let answer = cancel(&link, false).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let html = answer.text().await.expect("html");
    assert!(html.contains("<title>Appointment cancelled</title>") && html.contains(&other.confirmation_code), "{html}");
}

async fn the_patient_moves_to_an_offered_time_by_form_and_by_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org
        .agent
        .book(&BookingInput { duration_minutes: Some(45), ..booking(provider.id, days_ahead(9), "14:00") })
        .await
        .expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    assert_eq!(times.len(), 10);

    // By the page's form: the answer is a page with the new local time.
    let answer = move_by_form(&link, &times[3]).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_private(&answer);
    let html = answer.text().await.expect("html");
    assert!(html.contains("<title>Appointment moved</title>"), "{html}");
    assert!(html.contains(&instant(&times[3]).format("%H:%M").to_string()), "the new time: {html}");
    let moved = org.staff.appointment(booked.appointment_id).await.expect("read");
    assert_eq!(moved.starts_at, instant(&times[3]));
    assert_eq!(moved.ends_at - moved.starts_at, Duration::minutes(45), "its own length is kept");
    assert_eq!(moved.status, AppointmentStatus::Pending);

    // By JSON, with the same link: it is kept across moves.
    let answer = move_by_json(&link, &times[7]).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let moved: api::Appointment = answer.json().await.expect("appointment json");
    assert_eq!(moved.id, booked.appointment_id);
    assert_eq!(moved.starts_at, instant(&times[7]));
    assert_eq!(moved.ends_at - moved.starts_at, Duration::minutes(45));
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").starts_at, instant(&times[7]));
    let trail = audit(&app, &org, booked.appointment_id).await;
    assert_eq!(
        &trail[1..],
        [("rescheduled".to_owned(), "patient".to_owned()), ("rescheduled".into(), "patient".into())]
    );
}

async fn a_typed_appointment_is_offered_and_moved_as_its_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let kind = org
        .admin
        .create_appointment_type(&CreateAppointmentType {
            name: "Check-up".into(),
            duration_minutes: 60,
            buffer_after_minutes: Some(30),
            slot_interval_minutes: Some(90),
            ..Default::default()
        })
        .await
        .expect("a type");
    let booked = org
        .staff
        .book(&BookingInput { appointment_type_id: Some(kind.id), ..booking(provider.id, days_ahead(10), "09:00") })
        .await
        .expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    assert_eq!(times.len(), 10);
    // Every 90 minutes from 09:00 (09:00, 10:30, 12:00, 13:30, 15:00): the type's interval, and
    // its hour with its buffer fits before 17:00.
    for t in &times {
        let local = instant(t).format("%H:%M").to_string();
        assert!(["09:00", "10:30", "12:00", "13:30", "15:00"].contains(&local.as_str()), "{t}");
    }
    // Withdrawn since it was booked, the type still moves the appointment (a move is no new
    // booking of it): the same times offered, and moved as before.
    org.admin.deactivate_appointment_type(kind.id).await.expect("withdrawn");
    assert_eq!(offered(&get(&link, false).await.text().await.expect("html")), times, "offered as before");
    let answer = move_by_json(&link, &times[0]).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let moved: api::Appointment = answer.json().await.expect("json");
    assert_eq!(moved.appointment_type_id, Some(kind.id));
    assert_eq!(moved.ends_at - moved.starts_at, Duration::minutes(60));
}

/// The times next to the appointment's own, whose ranges meet only what it blocks now, are free to
/// it: offered, and taken.
async fn the_times_next_to_its_own_are_offered(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("Europe/Paris").await;
    let day = days_ahead(3);
    let weekday = EVERY_DAY[day.weekday().num_days_from_monday() as usize];
    let morning = WorkingHours { weekday, start: "09:00".into(), end: "12:00".into() };
    let provider = org
        .provider_with(CreateProvider {
            name: "Dr. Smith".into(),
            working_hours: Some(vec![morning]),
            ..Default::default()
        })
        .await;
    let hour = BookingInput { duration_minutes: Some(60), ..booking(provider.id, day, "10:00") };
    let booked = org.staff.book(&hour).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    let first: Vec<String> = times.iter().take(4).map(|t| instant(t).format("%Y-%m-%d %H:%M").to_string()).collect();
    assert_eq!(first, ["09:00", "09:30", "10:30", "11:00"].map(|hm| format!("{day} {hm}")), "{times:?}");
    let answer = move_by_json(&link, &times[1]).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let moved: api::Appointment = answer.json().await.expect("json");
    assert_eq!((moved.starts_at, moved.ends_at - moved.starts_at), (instant(&times[1]), Duration::minutes(60)));
}

async fn a_taken_time_is_refused_with_alternatives(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(9), "10:00")).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    // Someone else books the first offered time after the page was shown.
    let taken = instant(&times[0]);
    org.staff
        .book(&BookingInput {
            appointment_date: Some(taken.format("%Y-%m-%d").to_string()),
            appointment_time: Some(taken.format("%H:%M").to_string()),
            ..booking(provider.id, days_ahead(1), "00:00")
        })
        .await
        .expect("the other booking");

    let answer = move_by_json(&link, &times[0]).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["code"], "slot_unavailable");
    let alternatives = body["alternatives"].as_array().expect("alternatives");
    assert!(!alternatives.is_empty(), "{body}");
    let now = Utc::now();
    for a in alternatives {
        let start = instant(a["starts_at"].as_str().expect("starts_at"));
        assert!(start >= now + Duration::hours(24), "alternatives respect the cut-off: {body}");
        assert_ne!(start, taken);
    }
    let page = move_by_form(&link, &times[0]).await;
    assert_eq!(page.status(), StatusCode::CONFLICT);
    let html = page.text().await.expect("html");
    assert!(html.contains("no longer free") && !offered(&html).is_empty(), "other times to pick: {html}");
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").starts_at, booked.starts_at);
    assert_eq!(audit(&app, &org, booked.appointment_id).await.len(), 1, "nothing written");
}

/// Each move tells the patient by email and SMS: a loop of moves through one link (an attack
/// found it pumping 600 SMS a minute on the clinic's account) stops at five, counted in the audit
/// log, and the page then offers no times but still a Cancel; a repeated request where it
/// already is still answers, and staff can still move it. (Moves made before their notices go
/// out are told as one: here, with the dispatcher idle, one SMS from the booked time.)
async fn the_patient_moves_one_appointment_five_times_at_most(backend: Backend) {
    // The dispatcher looks for messages only at start: what the moves queue stays to be read.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(9), "14:00")).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    for n in 0..5 {
        let answer = move_by_json(&link, &times[n % 2]).await;
        assert_eq!(answer.status(), StatusCode::OK, "move {}", n + 1);
        if n == 3 {
            let html = get(&link, false).await.text().await.expect("html");
            assert!(!offered(&html).is_empty(), "times offered while a move is left: {html}");
        }
    }
    let again = move_by_json(&link, &times[1]).await;
    let (status, code) = error_code(again).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "invalid_state"), "a sixth move");
    let page = move_by_form(&link, &times[1]).await;
    assert_eq!(page.status(), StatusCode::CONFLICT);
    assert!(page.text().await.expect("html").contains("please speak to the clinic"), "the page says what to do");
    let html = get(&link, false).await.text().await.expect("html");
    assert!(offered(&html).is_empty(), "no times offered once the moves are spent: {html}");
    assert!(html.contains("call the clinic to move it again") && html.contains("/cancel\""), "{html}");
    let read = org.staff.appointment(booked.appointment_id).await.expect("read");
    assert_eq!(read.starts_at, instant(&times[0]), "the sixth moved nothing");
    assert_eq!(move_by_json(&link, &times[0]).await.status(), StatusCode::OK, "already there: nothing to count");
    let sent = outbox_kinds(&app, &org, booked.appointment_id).await;
    assert_eq!(sent.iter().filter(|k| *k == "reschedule_sms").count(), 1, "{sent:?}");
    assert_eq!(audit(&app, &org, booked.appointment_id).await.len(), 6, "booked and moved five times");

    let by_staff = RescheduleRequest {
        appointment_date: Some(date_str(days_ahead(10))),
        appointment_time: Some("10:00".into()),
        ..Default::default()
    };
    org.staff.reschedule(booked.appointment_id, &by_staff).await.expect("staff are not capped");
}

async fn within_the_cutoff_the_patient_is_sent_to_the_clinic(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let soon = org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    let later = org.agent.book(&booking(provider.id, days_ahead(12), "10:00")).await.expect("booked");
    // A week's cut-off: the first is within it.
    set_cutoff(&org, 7 * 24 * 60).await;
    let link = app.manage_link(org.id, soon.appointment_id).await;
    let page = get(&link, false).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("call the clinic") && html.contains("7 days"), "{html}");
    assert!(!html.contains("Clinic phone"), "no number set, none shown: {html}");
    // Nothing to cancel or move with; confirming changes nothing of the clinic's day.
    assert_eq!(html.matches("<form").count(), 1, "only Confirm within the cut-off: {html}");
    assert!(html.contains("/confirm\"><button"), "{html}");
    assert!(!html.contains("/cancel") && !html.contains("/reschedule"), "{html}");
    // The question, asked for once the cut-off has come (its page opened before): the patient is
    // sent to the appointment's own page, where its relative Confirm button posts to the link's.
    let not_following = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let asked = not_following.get(format!("{link}/cancel")).send().await.expect("GET the question");
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    let token = link.rsplit('/').next().expect("the token");
    assert_eq!(asked.headers()[reqwest::header::LOCATION], format!("../{token}").as_str());
    let followed = get(&format!("{link}/cancel"), false).await;
    let at = followed.url().clone();
    let html = followed.text().await.expect("html");
    let action = html.split("action=\"").nth(1).and_then(|rest| rest.split('"').next()).expect("the Confirm form");
    assert_eq!(at.join(action).expect("an address").as_str(), format!("{link}/confirm"), "{html}");
    assert_eq!(error_code(cancel(&link, true).await).await, (StatusCode::CONFLICT, "invalid_state".into()));
    let refused = cancel(&link, false).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.expect("html").contains("call the clinic"));
    let elsewhere = (Utc::now() + Duration::days(20)).to_rfc3339();
    assert_eq!(error_code(move_by_json(&link, &elsewhere).await).await, (StatusCode::CONFLICT, "invalid_state".into()));
    let read = org.staff.appointment(soon.appointment_id).await.expect("read");
    assert_eq!((read.status, read.starts_at), (AppointmentStatus::Pending, soon.starts_at));
    // With a front-desk number (the Vapi transfer number) the page gives it to call.
    let front_desk = api::VapiSettings { transfer_number: Some("+15550102000".into()), ..Default::default() };
    org.admin.set_vapi_settings(&front_desk).await.expect("saved");
    let html = get(&link, false).await.text().await.expect("html");
    assert!(html.contains("<a href=\"tel:+15550102000\">+15550102000</a>"), "{html}");

    // Two days' cut-off: the later one may move, but not to a time within two days.
    set_cutoff(&org, 2 * 24 * 60).await;
    let link = app.manage_link(org.id, later.appointment_id).await;
    let tomorrow = org.staff.availability(provider.id, &date_str(days_ahead(1))).await.expect("availability");
    let too_soon = tomorrow.slots.iter().find(|s| s.starts_at > Utc::now()).expect("a free time tomorrow");
    let answer = move_by_json(&link, &too_soon.starts_at.to_rfc3339()).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["code"], "slot_unavailable");
    for a in body["alternatives"].as_array().expect("alternatives") {
        let start = instant(a["starts_at"].as_str().expect("starts_at"));
        assert!(start >= Utc::now() + Duration::hours(48), "alternatives outside the cut-off: {body}");
    }
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    assert!(times.iter().all(|t| instant(t) >= Utc::now() + Duration::hours(48)), "{times:?}");
    assert_eq!(org.staff.appointment(later.appointment_id).await.expect("read").starts_at, later.starts_at);
}

/// The service books only in the future and tests do not wait for a start, so the appointment is
/// moved into the past in the database (`attendance::backdate`).
async fn after_the_start_the_link_is_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(1), "10:00")).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    backdate(&app, booked.appointment_id).await;

    let page = get(&link, false).await;
    assert_eq!(page.status(), StatusCode::GONE);
    assert_private(&page);
    assert!(page.text().await.expect("html").contains("already started"));
    assert_eq!(error_code(get(&link, true).await).await, (StatusCode::GONE, "gone".into()));
    assert_eq!(error_code(cancel(&link, true).await).await, (StatusCode::GONE, "gone".into()));
    let later = (Utc::now() + Duration::days(9)).to_rfc3339();
    assert_eq!(error_code(move_by_json(&link, &later).await).await, (StatusCode::GONE, "gone".into()));
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").status, AppointmentStatus::Pending);
    assert_eq!(audit(&app, &org, booked.appointment_id).await.len(), 1);
}

async fn unknown_and_malformed_links_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(4), "10:00")).await.expect("booked");
    let unknown = format!("{}/manage/{}", app.base, "A".repeat(43));
    let page = get(&unknown, false).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_private(&page);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    assert_eq!(error_code(get(&unknown, true).await).await, (StatusCode::NOT_FOUND, "not_found".into()));
    // A client that is not a browser (curl's `*/*`, none at all) gets the API's error body.
    for accept in ["*/*", ""] {
        let answer = reqwest::Client::new().get(&unknown).header(ACCEPT, accept).send().await.expect("GET");
        assert_eq!(error_code(answer).await, (StatusCode::NOT_FOUND, "not_found".into()), "{accept:?}");
    }
    assert_eq!(error_code(cancel(&unknown, true).await).await, (StatusCode::NOT_FOUND, "not_found".into()));
    let later = (Utc::now() + Duration::days(9)).to_rfc3339();
    assert_eq!(error_code(move_by_json(&unknown, &later).await).await, (StatusCode::NOT_FOUND, "not_found".into()));
    for malformed in ["not-a-token", &"A".repeat(44), &"=".repeat(43), &"A".repeat(5000)] {
        let link = format!("{}/manage/{malformed}", app.base);
        assert_eq!(get(&link, false).await.status(), StatusCode::NOT_FOUND, "{malformed}");
        assert_eq!(cancel(&link, true).await.status(), StatusCode::NOT_FOUND, "{malformed}");
    }
    // The manage token is not a confirmation token (one purpose each).
    let link = app.manage_link(org.id, booked.appointment_id).await;
    // Answers the router gives rather than the pages (a path with a segment added) are private
    // too: the token is in their address.
    let answer = get(&format!("{link}/nothing-here"), false).await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert_private(&answer);
    // A change's address opened again (from the history) leads back to the appointment's page,
    // changing nothing; with a malformed token, nowhere.
    let token = link.rsplit('/').next().expect("token");
    let unfollowed = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    for change in ["reschedule", "confirm"] {
        let answer = unfollowed.get(format!("{link}/{change}")).send().await.expect("GET");
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{change}");
        assert_eq!(answer.headers()["location"], format!("../{token}").as_str(), "{change}");
        assert_private(&answer);
        let malformed = format!("{}/manage/not-a-token/{change}", app.base);
        assert_eq!(error_code(unfollowed.get(malformed).send().await.expect("GET")).await.0, StatusCode::NOT_FOUND);
    }
    let as_confirm = browser().post(format!("{}/confirm/{token}", app.base)).send().await.expect("POST");
    assert_eq!(as_confirm.status(), StatusCode::NOT_FOUND);
    assert_eq!(org.staff.appointment(booked.appointment_id).await.expect("read").status, AppointmentStatus::Pending);
}

async fn a_link_opens_its_own_clinics_appointment_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (north, north_provider) = clinic(&app, "North Clinic", "Dr. Northway").await;
    let (south, south_provider) = clinic(&app, "South Clinic", "Dr. Southby").await;
    let a = north.agent.book(&booking(north_provider.id, days_ahead(5), "10:00")).await.expect("booked");
    let b = south.agent.book(&booking(south_provider.id, days_ahead(5), "10:00")).await.expect("booked");
    let link_a = app.manage_link(north.id, a.appointment_id).await;
    let link_b = app.manage_link(south.id, b.appointment_id).await;
    assert_ne!(link_a, link_b);

    let html = get(&link_a, false).await.text().await.expect("html");
    assert!(html.contains("North Clinic") && html.contains("Dr. Northway") && html.contains(&a.confirmation_code));
    assert!(!html.contains("South") && !html.contains(&b.confirmation_code), "{html}");
    let shown: api::Appointment = get(&link_a, true).await.json().await.expect("json");
    assert_eq!((shown.id, shown.org_id, shown.provider_id), (a.appointment_id, north.id, north_provider.id));

    // Cancelling through one link leaves the other clinic's appointment alone.
    assert_eq!(cancel(&link_a, true).await.status(), StatusCode::OK);
    assert_eq!(south.staff.appointment(b.appointment_id).await.expect("read").status, AppointmentStatus::Pending);
    let html = get(&link_b, false).await.text().await.expect("html");
    assert!(html.contains("South Clinic") && !html.contains("North"), "{html}");
}

async fn the_reschedule_body_is_bounded_and_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let (org, provider) = clinic(&app, "Test Clinic", "Dr. Smith").await;
    let booked = org.agent.book(&booking(provider.id, days_ahead(4), "10:00")).await.expect("booked");
    let link = app.manage_link(org.id, booked.appointment_id).await;
    let url = format!("{link}/reschedule");
    let json = |request: reqwest::RequestBuilder| request.header(ACCEPT, "application/json");

    // Up to the 64 KiB every route takes, a body is read (and this one's value refused).
    let large = format!("starts_at={}", "9".repeat(32 * 1024));
    let answer = json(browser().post(&url).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(large));
    assert_eq!(error_code(answer.send().await.expect("POST")).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let huge = format!("starts_at={}", "9".repeat(64 * 1024));
    let answer = json(browser().post(&url).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(huge));
    assert_eq!(
        error_code(answer.send().await.expect("POST")).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let answer = json(browser().post(&url).header(CONTENT_TYPE, "text/plain").body("starts_at=x"));
    assert_eq!(
        error_code(answer.send().await.expect("POST")).await,
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into())
    );
    let answer = json(browser().post(&url).form(&[("starts_at", "next tuesday")])).send().await.expect("POST");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("starts_at")), "{body}");
    let answer = json(browser().post(&url).form(&[("when", "x")])).send().await.expect("POST");
    assert_eq!(error_code(answer).await, (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into()));
    // Seconds past a minute would run the appointment past closing time, or over two slots.
    let times = offered(&get(&link, false).await.text().await.expect("html"));
    // A JSON body takes the new start alone: a length sent beside it would be ignored unsaid.
    let longer = serde_json::json!({"starts_at": times[0], "duration_minutes": 90});
    let answer = json(browser().post(&url).json(&longer)).send().await.expect("POST");
    assert_eq!(error_code(answer).await, (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into()));
    for off_the_minute in [Duration::seconds(59), Duration::milliseconds(1)] {
        let answer = move_by_json(&link, &(instant(&times[0]) + off_the_minute).to_rfc3339()).await;
        assert_eq!(error_code(answer).await, (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into()));
    }
    // On a whole minute, so that it is the past that is refused.
    let past = (instant(&times[0]) - Duration::days(10)).to_rfc3339();
    let answer = move_by_json(&link, &past).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("must be in the future")), "{body}");
    // The page's form may carry more: the start is what it reads.
    let answer = json(browser().post(&url).form(&[("starts_at", past.as_str()), ("submit", "Move")]));
    let body: serde_json::Value = answer.send().await.expect("POST").json().await.expect("json");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("must be in the future")), "{body}");
    // A page for a person, not JSON, when the form is wrong, in words without the field's name
    // (a page left open until its times passed).
    let page = move_by_form(&link, "soon").await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let page = move_by_form(&link, &past).await.text().await.expect("html");
    assert!(page.contains("The appointment must be in the future.") && !page.contains("tarts_at"), "{page}");
    assert_eq!(audit(&app, &org, booked.appointment_id).await.len(), 1, "nothing written");
}

async fn the_openapi_document_lists_the_manage_routes_as_public(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: serde_json::Value = app.anon.send(app.anon.request(Method::GET, "/openapi.json")).await.expect("openapi");
    for (path, method) in [
        ("/manage/{token}", "get"),
        ("/manage/{token}/cancel", "get"),
        ("/manage/{token}/cancel", "post"),
        ("/manage/{token}/reschedule", "post"),
        ("/manage/{token}/reschedule", "get"),
        ("/manage/{token}/confirm", "post"),
        ("/manage/{token}/confirm", "get"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{path} {method}");
        assert!(operation.get("security").is_none(), "the token is the credential: {path}");
    }
}

on_both_backends!(
    the_page_shows_the_appointment_and_up_to_ten_times_and_changes_nothing,
    the_patient_cancels_through_the_link,
    the_patient_confirms_through_the_manage_link,
    the_patient_moves_to_an_offered_time_by_form_and_by_json,
    a_typed_appointment_is_offered_and_moved_as_its_type,
    the_times_next_to_its_own_are_offered,
    a_taken_time_is_refused_with_alternatives,
    the_patient_moves_one_appointment_five_times_at_most,
    within_the_cutoff_the_patient_is_sent_to_the_clinic,
    after_the_start_the_link_is_gone,
    unknown_and_malformed_links_are_not_found,
    a_link_opens_its_own_clinics_appointment_only,
    the_reschedule_body_is_bounded_and_checked,
    the_openapi_document_lists_the_manage_routes_as_public,
);
