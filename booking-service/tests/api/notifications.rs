//! Reminders (docs/API.md, Notifications): one per offset of the clinic's settings and per way of
//! reaching the patient, queued with the booking and due at its start minus the offset, moved by
//! a reschedule, withdrawn by a cancellation, and delivered once when due.

use crate::email::{link_in, post_confirm, searchable, wait_eml, wait_until};
use crate::helpers::*;
use booking_service::domain::{AppointmentId, OrgId, WebhookId};
use booking_service::store::{event, outbox_kind, MailClaim, OutboxJob};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{json, Value};
use shared::api::{AppointmentStatus, BookingInput, CreateWebhook, RescheduleRequest, Settings};
use test_kit::twilio::{sign, FakeTwilio};
use uuid::Uuid;

const REMINDERS: [&str; 2] = ["reminder_email", "reminder_sms"];

fn with_email(b: BookingInput) -> BookingInput {
    BookingInput { patient_email: Some("ada@example.com".into()), ..b }
}

async fn reminders(app: &TestApp, org: Uuid, appointment: Uuid) -> Vec<OutboxJob> {
    let jobs = app.store.outbox(OrgId(org), AppointmentId(appointment)).await.expect("outbox");
    jobs.into_iter().filter(|j| REMINDERS.contains(&j.kind.as_str())).collect()
}

/// (kind, minutes before the start it is due), sorted.
fn schedule(jobs: &[OutboxJob], start: DateTime<Utc>) -> Vec<(String, i64)> {
    let mut due: Vec<_> = jobs.iter().map(|j| (j.kind.clone(), (start - j.next_attempt_at).num_minutes())).collect();
    due.sort();
    due
}

async fn set_offsets(org: &TestOrg, offsets: &[i64]) {
    let settings = org.admin.settings().await.expect("settings");
    let wanted = Settings { reminder_offsets_minutes: offsets.to_vec(), ..settings };
    org.admin.set_settings(&wanted).await.expect("saved");
}

fn start_of(b: &shared::api::BookingResponse) -> DateTime<Utc> {
    b.starts_at.with_timezone(&Utc)
}

/// Makes the appointment's unsent reminders due now, standing for the hours a real one waits.
async fn make_due(app: &TestApp, appointment: Uuid) {
    let kinds = "kind IN ('reminder_email', 'reminder_sms') AND sent_at IS NULL";
    if app.db.url.starts_with("sqlite:") {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.db.url).await.expect("connect");
        let sql = format!("UPDATE outbox SET next_attempt_at = $2 WHERE appointment_id = $1 AND {kinds}");
        let now = Utc::now().timestamp_micros();
        sqlx::query(&sql).bind(appointment.to_string()).bind(now).execute(&mut conn).await.expect("update");
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await.expect("connect");
        let sql = format!("UPDATE outbox SET next_attempt_at = now() WHERE appointment_id = $1 AND {kinds}");
        sqlx::query(&sql).bind(appointment).execute(&mut conn).await.expect("update");
    }
}

async fn reminders_are_queued_per_offset_and_channel_none_already_due(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    set_offsets(&org, &[1440, 120, 30]).await;
    let far = org.agent.book(&with_email(booking(provider.id, days_ahead(3), "10:00"))).await.expect("booked");
    let want: Vec<(String, i64)> =
        ["reminder_email", "reminder_sms"].iter().flat_map(|k| [30, 120, 1440].map(|m| (k.to_string(), m))).collect();
    assert_eq!(schedule(&reminders(&app, org.id, far.appointment_id).await, start_of(&far)), want);

    // Ninety minutes or so ahead: the 2-hour and 1-day reminders would already be due.
    let soon = Utc::now() + Duration::minutes(100);
    let soon = soon.with_second(0).expect("a time").with_nanosecond(0).expect("a time");
    let mut input = booking(provider.id, soon.date_naive(), &soon.format("%H:%M").to_string());
    input.patient_email = None;
    let near = org.agent.book(&input).await.expect("booked");
    assert_eq!(
        schedule(&reminders(&app, org.id, near.appointment_id).await, start_of(&near)),
        [("reminder_sms".into(), 30)]
    );

    // No offsets, no reminders.
    set_offsets(&org, &[]).await;
    let none = org.agent.book(&with_email(booking(provider.id, days_ahead(4), "10:00"))).await.expect("booked");
    assert!(reminders(&app, org.id, none.appointment_id).await.is_empty());
}

async fn a_reschedule_moves_the_reminders_and_a_cancellation_withdraws_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    set_offsets(&org, &[1440, 60]).await;
    let booked = org.agent.book(&with_email(booking(provider.id, days_ahead(3), "10:00"))).await.expect("booked");
    let moved = org
        .staff
        .reschedule(
            booked.appointment_id,
            &RescheduleRequest {
                appointment_date: Some(date_str(days_ahead(5))),
                appointment_time: Some("15:30".into()),
                ..Default::default()
            },
        )
        .await
        .expect("moved");
    let new_start = moved.starts_at.with_timezone(&Utc);
    let jobs = reminders(&app, org.id, booked.appointment_id).await;
    let want: Vec<(String, i64)> =
        [("reminder_email", 60), ("reminder_email", 1440), ("reminder_sms", 60), ("reminder_sms", 1440)]
            .iter()
            .map(|(k, m)| (k.to_string(), *m))
            .collect();
    assert_eq!(schedule(&jobs, new_start), want, "only the new start's reminders remain: {jobs:?}");
    assert!(jobs.iter().all(|j| j.payload["starts_at"].as_str().is_some()));

    // Made longer at the same start, it keeps the very reminders it had: withdrawn and queued
    // anew, one already due and waiting on a retry was lost (none is queued for a past time).
    let longer = RescheduleRequest {
        appointment_date: Some(date_str(new_start.date_naive())),
        appointment_time: Some("15:30".into()),
        duration_minutes: Some(60),
        ..Default::default()
    };
    let longer = org.staff.reschedule(booked.appointment_id, &longer).await.expect("longer");
    assert_eq!((longer.starts_at, longer.ends_at - longer.starts_at), (moved.starts_at, Duration::minutes(60)));
    let kept = reminders(&app, org.id, booked.appointment_id).await;
    let ids = |jobs: &[OutboxJob]| jobs.iter().map(|j| j.id).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(ids(&kept), ids(&jobs), "the same reminders");

    org.staff.cancel(booked.appointment_id, None).await.expect("cancelled");
    assert_eq!(reminders(&app, org.id, booked.appointment_id).await.len(), 0, "withdrawn");
}

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-test-auth-token";
const SENDER: &str = "+15550001000";

/// The service with its SMS going to a Twilio stand-in, from `SENDER`.
async fn with_twilio(backend: Backend) -> (TestApp, FakeTwilio) {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake Twilio");
    let app = spawn_app_with(backend, |c| {
        c.twilio_account_sid = Some(SID.into());
        c.twilio_auth_token = Some(TOKEN.into());
        c.twilio_api_base = twilio.base_url();
        c.sms_from = Some(SENDER.into());
    })
    .await;
    (app, twilio)
}

async fn a_due_reminder_arrives_once_by_email_and_sms_with_the_manage_link(backend: Backend) {
    let (app, twilio) = with_twilio(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    set_offsets(&org, &[120]).await;
    let booked = org.agent.book(&with_email(booking(provider.id, days_ahead(2), "10:00"))).await.expect("booked");
    // The booking's email puts it in the calendar as tentative; confirmed, the reminder's as confirmed.
    let confirmation = searchable(&wait_eml(&app, 1).await[0]);
    assert!(confirmation.contains("STATUS:TENTATIVE"), "{confirmation}");
    let confirmed = post_confirm(&link_in(&confirmation, &app.base), true).await;
    assert_eq!(confirmed.status(), reqwest::StatusCode::OK);
    make_due(&app, booked.appointment_id).await;
    // The confirmation and the reminder.
    let files = wait_eml(&app, 2).await;
    let reminder = files.iter().map(|f| searchable(f)).find(|m| m.contains("Reminder: your appointment"));
    let reminder = reminder.unwrap_or_else(|| panic!("no reminder among {files:?}"));
    assert!(reminder.contains("STATUS:CONFIRMED"), "{reminder}");
    assert!(reminder.contains(&booked.confirmation_code), "{reminder}");
    assert!(reminder.contains(&format!("{}/manage/", app.base)), "{reminder}");
    assert!(!reminder.contains("/confirm/"), "a reminder confirms nothing: {reminder}");
    // The email reminder is marked sent.
    wait_until(
        async || reminders(&app, org.id, booked.appointment_id).await,
        |jobs| jobs.iter().any(|j| j.kind == "reminder_email" && j.sent_at.is_some()),
    )
    .await;
    // The booking's SMS and the reminder.
    let texts = twilio.wait_for(2, std::time::Duration::from_secs(20)).await.expect("both SMS arrive");
    let text = texts.iter().find(|m| m.body.contains("a reminder")).unwrap_or_else(|| panic!("{texts:?}"));
    assert!(text.body.contains(&booked.confirmation_code), "{}", text.body);
    assert!(text.body.contains(&format!("{}/manage/", app.base)), "{}", text.body);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(wait_eml(&app, 2).await.len(), 2, "no other email");
    // A message delivered again would overwrite its own file: its claims say it was sent once.
    let jobs = reminders(&app, org.id, booked.appointment_id).await;
    let reminder = jobs.iter().find(|j| j.kind == "reminder_email").expect("the email reminder");
    assert_eq!((reminder.claims, reminder.attempts), (1, 0), "the email sent once: {reminder:?}");
    assert_eq!(twilio.messages().len(), 2, "the SMS sent once");
}

/// Within the clinic's cut-off the manage link refuses a change (409, "call the clinic"): the
/// messages say to call for that, at the clinic's front-desk number (its Vapi transfer number)
/// once it has one. They still carry the link, which shows the appointment and confirms it (a
/// patient by phone has no other way to). Here the cut-off is 7 days and the appointments 2 and 3
/// days ahead; the email's confirmation link stays too.
async fn messages_too_close_to_change_online_say_to_call_and_keep_the_link(backend: Backend) {
    let (app, twilio) = with_twilio(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let settings = org.admin.settings().await.expect("settings");
    org.admin.set_settings(&Settings { manage_cutoff_minutes: 7 * 24 * 60, ..settings }).await.expect("saved");
    let booked = org.agent.book(&with_email(booking(provider.id, days_ahead(2), "10:00"))).await.expect("booked");
    let files = wait_eml(&app, 1).await;
    let email = searchable(&files[0]);
    assert!(email.contains(&booked.confirmation_code), "{email}");
    assert!(email.contains("please call the clinic"), "{email}");
    assert!(email.contains(&format!("{}/manage/", app.base)), "{email}");
    assert!(email.contains(&format!("{}/confirm/", app.base)), "{email}");
    let sent = twilio.wait_for(1, std::time::Duration::from_secs(20)).await.expect("the SMS arrives");
    assert!(sent[0].body.contains("please call the clinic."), "{}", sent[0].body);
    let link = format!("To confirm it: {}/manage/", app.base);
    assert!(sent[0].body.contains(&link), "{}", sent[0].body);
    let page = reqwest::get(sent[0].body.split(' ').find(|w| w.contains("/manage/")).expect("the link"))
        .await
        .expect("GET the link");
    let html = page.text().await.expect("html");
    assert!(html.contains("Confirm this appointment") && html.contains("too soon to change it online"), "{html}");

    let front_desk = shared::api::VapiSettings { transfer_number: Some("+15550102000".into()), ..Default::default() };
    org.admin.set_vapi_settings(&front_desk).await.expect("saved");
    org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    let sent = twilio.wait_for(2, std::time::Duration::from_secs(20)).await.expect("the second SMS arrives");
    assert!(sent[1].body.contains("please call the clinic at +15550102000."), "{}", sent[1].body);
}

/// A booking's SMS goes through Twilio's Messages API (a local fake speaking it) from the clinic's
/// sender with the code and the manage link; after the phone texts STOP, the next booking's SMS is
/// not sent: it leaves the outbox, not kept as a dead letter for a person to look at.
async fn the_booking_sms_goes_through_twilio_and_never_after_stop(backend: Backend) {
    let (app, twilio) = with_twilio(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = booking(provider.id, days_ahead(3), "10:00");
    let phone = input.patient_phone.clone().expect("a phone");
    let booked = org.agent.book(&input).await.expect("booked");
    let sent = twilio.wait_for(1, std::time::Duration::from_secs(20)).await.expect("the SMS arrives");
    assert_eq!((sent[0].to.as_str(), sent[0].from.as_str()), (phone.as_str(), SENDER));
    assert!(sent[0].body.contains(&booked.confirmation_code), "{}", sent[0].body);
    assert!(sent[0].body.contains(&format!("{}/manage/", app.base)), "{}", sent[0].body);

    let form = [("From", phone.as_str()), ("To", SENDER), ("Body", "STOP")];
    let signature = sign(TOKEN, &format!("{}/sms/inbound", app.base), &form);
    let stopped = reqwest::Client::new()
        .post(format!("{}/sms/inbound", app.base))
        .header("X-Twilio-Signature", signature)
        .form(&form)
        .send()
        .await
        .expect("STOP");
    assert_eq!(stopped.status(), 200);
    let again =
        org.agent.book(&BookingInput { appointment_time: Some("11:00".into()), ..input }).await.expect("booked");
    // The SMS was queued with the booking, then dropped for the opt-out.
    let jobs = wait_until(
        async || app.store.outbox(OrgId(org.id), AppointmentId(again.appointment_id)).await.expect("outbox"),
        |jobs| !jobs.iter().any(|j| j.kind == "booking_sms"),
    )
    .await;
    assert!(jobs.iter().all(|j| j.dead_at.is_none()), "no dead letter: {jobs:?}");
    assert_eq!(twilio.messages().len(), 1, "nothing after STOP");
}

/// A phone that opted out at Twilio without this service hearing of it (a STOP texted before, or
/// a word only Twilio reads) is refused by Twilio (error 21610): the message leaves the outbox as
/// withheld, not as a dead letter paging someone, and the opt-out is kept for the next ones.
async fn a_phone_twilio_knows_opted_out_is_kept_so_and_not_a_dead_letter(backend: Backend) {
    let (app, twilio) = with_twilio(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = booking(provider.id, days_ahead(3), "10:00");
    let phone = input.patient_phone.clone().expect("a phone");
    twilio.opt_out(SENDER, &phone);
    let booked = org.agent.book(&input).await.expect("booked");
    let jobs = wait_until(
        async || app.store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox"),
        |jobs| !jobs.iter().any(|j| j.kind == "booking_sms"),
    )
    .await;
    assert!(jobs.iter().all(|j| j.dead_at.is_none()), "no dead letter: {jobs:?}");
    assert!(app.store.sms_opted_out(SENDER, &phone).await.expect("read"), "the opt-out is kept");
    assert_eq!(app.store.outbox_backlog(Utc::now()).await.expect("backlog").dead, 0);
    assert!(twilio.messages().is_empty(), "Twilio took nothing");
}

/// A patient reached only by phone hears of a move (with the manage link) and of a cancellation
/// (without it) by SMS, as an email patient does by email.
async fn a_move_and_a_cancellation_reach_the_phone_by_sms(backend: Backend) {
    let (app, twilio) = with_twilio(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = booking(provider.id, days_ahead(3), "10:00");
    assert!(input.patient_email.is_none() && input.patient_phone.is_some());
    let booked = org.agent.book(&input).await.expect("booked");
    let wait = |n| twilio.wait_for(n, std::time::Duration::from_secs(20));
    // One change at a time: a message still queued when its appointment is cancelled is not sent.
    wait(1).await.expect("the booking SMS");
    let to = RescheduleRequest {
        appointment_date: Some(date_str(days_ahead(3))),
        appointment_time: Some("15:30".into()),
        ..Default::default()
    };
    org.staff.reschedule(booked.appointment_id, &to).await.expect("moved");
    wait(2).await.expect("the move's SMS");
    org.staff.cancel(booked.appointment_id, None).await.expect("cancelled");
    let sent = wait(3).await.expect("the cancellation's SMS");
    let [_, moved, cancelled] = &sent[..] else { panic!("{sent:?}") };
    assert!(moved.body.contains("on") && moved.body.contains("3:30 PM"), "{}", moved.body);
    // It says which appointment moved: the time it had, then the new one.
    assert!(moved.body.contains("10:00 AM is now on"), "{}", moved.body);
    assert!(moved.body.contains(&format!("{}/manage/", app.base)), "{}", moved.body);
    assert!(cancelled.body.contains("is cancelled") && cancelled.body.contains("3:30 PM"), "{}", cancelled.body);
    assert!(!cancelled.body.contains("/manage/"), "{}", cancelled.body);
    assert!(sent.iter().all(|m| Some(&m.to) == input.patient_phone.as_ref() && m.from == SENDER), "{sent:?}");
}

/// The reminders and webhook messages a booking queues say exactly what the store's rules build
/// (`outbox_kind::reminder`, `event::payload`), as every later change queues them: on PostgreSQL the
/// booking statement queues them itself, on SQLite the rules do.
async fn a_bookings_reminders_and_webhook_messages_say_what_the_rules_build(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.webhook_allow_private = true).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    set_offsets(&org, &[1440, 60]).await;
    let hook = CreateWebhook { url: "http://127.0.0.1:9/hook".into(), events: None };
    let hook = org.admin.create_webhook(&hook).await.expect("created");
    let input = with_email(booking(provider.id, days_ahead(3), "10:00"));
    let booked = org.agent.book(&input).await.expect("booked");
    let (org_id, id) = (OrgId(org.id), AppointmentId(booked.appointment_id));
    let a = app.store.appointment(org_id, id).await.expect("read").expect("stored");

    let start = a.slot.start();
    let mut want: Vec<(String, Value)> = Vec::new();
    for (kind, to) in [("reminder_email", &a.patient_email), ("reminder_sms", &a.patient_phone)] {
        let to = to.as_deref().expect("the patient's address");
        want.extend([1440, 60].map(|m| (kind.to_owned(), outbox_kind::reminder(to, m, start))));
    }
    let body = event::body(event::BOOKED, a.created_at, &a);
    want.push(("webhook".into(), event::payload(WebhookId(hook.id), &body)));

    let jobs = app.store.outbox(org_id, id).await.expect("outbox");
    let mut queued: Vec<(String, Value)> = jobs
        .into_iter()
        .filter(|j| REMINDERS.contains(&j.kind.as_str()) || j.kind == "webhook")
        .map(|j| (j.kind, j.payload))
        .collect();
    let by_text = |m: &(String, Value)| format!("{} {}", m.0, m.1);
    want.sort_by_key(by_text);
    queued.sort_by_key(by_text);
    assert_eq!(queued, want);
    // And in plain words, not only as the rules build them (on SQLite they build both sides).
    let email = input.patient_email.expect("an email");
    let phone = input.patient_phone.expect("a phone");
    let mut reminders: Vec<(&str, &str, i64)> = queued
        .iter()
        .filter(|(kind, _)| kind != "webhook")
        .map(|(kind, p)| {
            (kind.as_str(), p["to"].as_str().unwrap_or_default(), p["offset_minutes"].as_i64().unwrap_or(0))
        })
        .collect();
    reminders.sort();
    let expected = [
        ("reminder_email", email.as_str(), 60),
        ("reminder_email", email.as_str(), 1440),
        ("reminder_sms", phone.as_str(), 60),
        ("reminder_sms", phone.as_str(), 1440),
    ];
    assert_eq!(reminders, expected);
    let starts_at = booked.starts_at.to_utc();
    assert!(queued.iter().filter(|(kind, _)| kind != "webhook").all(|(_, p)| p["starts_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t == starts_at)));
    let webhook = &queued.iter().find(|(kind, _)| kind == "webhook").expect("the webhook message").1;
    assert_eq!(
        (&webhook["type"], &webhook["data"]["id"], &webhook["webhook_id"]),
        (&json!("appointment.booked"), &json!(booked.appointment_id), &json!(hook.id))
    );
}

/// The staff confirm the appointment.
async fn staff_confirms(org: &TestOrg, id: Uuid) {
    let confirm = org.staff.request(reqwest::Method::POST, &format!("/api/appointments/{id}/confirm"));
    org.staff.send::<shared::api::Appointment>(confirm).await.expect("confirmed");
}

/// The appointment's queued notices of a move (email and SMS): kind and payload.
async fn move_notices(app: &TestApp, org: &TestOrg, id: Uuid) -> Vec<(String, Value)> {
    let jobs = app.store.outbox(OrgId(org.id), AppointmentId(id)).await.expect("outbox");
    jobs.into_iter().filter(|j| outbox_kind::MOVES.contains(&j.kind.as_str())).map(|j| (j.kind, j.payload)).collect()
}

/// A clinic whose messages stay queued (the dispatcher looks for them only at start, so what a
/// change queues stays to be read), and an appointment there three days on at 09:00, with an
/// email and a phone, booked and confirmed by the staff.
async fn confirmed_with_messages_held(backend: Backend) -> (TestApp, TestOrg, shared::api::BookingResponse) {
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.staff.book(&with_email(booking(provider.id, days_ahead(3), "09:00"))).await.expect("booked");
    staff_confirms(&org, booked.appointment_id).await;
    (app, org, booked)
}

/// Moves made before their notices go out are told as one, from the time the patient last heard
/// of: A to B to C is one notice "from A" (by email and by SMS); back to A, a confirmed
/// appointment's patient is told nothing, nothing having changed for them.
async fn moves_before_their_notices_go_are_told_as_one(backend: Backend) {
    let (app, org, booked) = confirmed_with_messages_held(backend).await;
    let id = booked.appointment_id;
    let notices = async || move_notices(&app, &org, id).await;
    for time in ["10:00", "11:00"] {
        org.staff.reschedule(id, &move_to(days_ahead(3), time)).await.expect("moved");
    }
    let told = notices().await;
    assert_eq!(told.len(), 2, "one notice a channel: {told:?}");
    let (from, to) = (booked.starts_at.to_utc(), booked.starts_at.to_utc() + Duration::hours(2));
    for (kind, payload) in &told {
        assert_eq!(outbox_kind::moved_from_of(payload), Some(from), "{kind}: from what they heard of");
        let moved_to = payload["starts_at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        assert_eq!(moved_to.map(|t| t.to_utc()), Some(to), "{kind}");
    }
    org.staff.reschedule(id, &move_to(days_ahead(3), "09:00")).await.expect("moved back");
    assert_eq!(notices().await, [], "back where they last heard it is");
}

/// A move back while the notice of the move away is in a dispatcher's hands (being sent, past its
/// last check) is told too: that notice may still reach the patient, who would then wait at the
/// time it named.
async fn a_move_back_while_the_move_away_is_being_sent_is_told(backend: Backend) {
    let (app, org, booked) = confirmed_with_messages_held(backend).await;
    let id = booked.appointment_id;
    let (first, away) = (booked.starts_at.to_utc(), booked.starts_at.to_utc() + Duration::hours(1));
    org.staff.reschedule(id, &move_to(days_ahead(3), "10:00")).await.expect("moved");
    let now = booking_service::store::now();
    let claim = MailClaim::every(now, now + Duration::minutes(2), 100, 10);
    let in_hand = app.store.claim_mail(&claim).await.expect("claimed").jobs;
    assert_eq!(in_hand.iter().filter(|j| outbox_kind::MOVES.contains(&j.kind.as_str())).count(), 2, "{in_hand:?}");
    org.staff.reschedule(id, &move_to(days_ahead(3), "09:00")).await.expect("moved back");
    let starts_at = |payload: &Value| {
        payload["starts_at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc())
    };
    let back: Vec<_> =
        move_notices(&app, &org, id).await.into_iter().filter(|(_, p)| starts_at(p) == Some(first)).collect();
    assert_eq!(back.len(), 2, "told by email and SMS: {back:?}");
    for (kind, payload) in &back {
        assert_eq!(
            outbox_kind::moved_from_of(payload),
            Some(away),
            "{kind}: from where the notice in hand leaves them"
        );
    }
}

/// A confirmed appointment moved away and back before its messages went has nothing to tell of
/// the moves (their notices withdrawn), while the first move withdrew its confirmation link: its
/// booking email still goes, without that link, saying it is booked and confirmed.
async fn a_confirmed_booking_moved_away_and_back_still_gets_its_booking_email(backend: Backend) {
    let (app, org, booked) = confirmed_with_messages_held(backend).await;
    let id = booked.appointment_id;
    for time in ["11:00", "09:00"] {
        org.staff.reschedule(id, &move_to(days_ahead(3), time)).await.expect("moved");
    }
    assert_eq!(move_notices(&app, &org, id).await, [], "nothing to tell of the moves");
    // A second instance's dispatcher sends what is due (the first looks only at its start).
    let sender = app.another_instance().await;
    let mail = searchable(&wait_eml(&sender, 1).await[0]);
    assert!(mail.contains("is booked and confirmed") && mail.contains(&booked.confirmation_code), "{mail}");
    assert!(!mail.contains("/confirm/"), "without the withdrawn link: {mail}");
}

/// A move not yet told when the appointment is cancelled is told with the cancellation: the
/// move's notices are withdrawn, and the cancellation names the time the patient last heard of
/// (the cancelled time alone, one they never heard, would leave them thinking theirs still stands).
async fn a_cancellation_after_an_untold_move_names_the_time_the_patient_knew(backend: Backend) {
    let (app, org, booked) = confirmed_with_messages_held(backend).await;
    let id = booked.appointment_id;
    org.staff.reschedule(id, &move_to(days_ahead(3), "11:00")).await.expect("moved");
    assert_eq!(move_notices(&app, &org, id).await.len(), 2, "queued by email and SMS");
    org.staff.cancel(id, None).await.expect("cancelled");
    assert_eq!(move_notices(&app, &org, id).await, [], "withdrawn: the cancellation tells");
    let jobs = app.store.outbox(OrgId(org.id), AppointmentId(id)).await.expect("outbox");
    let told: Vec<_> = jobs.iter().filter(|j| outbox_kind::CANCELLATIONS.contains(&j.kind.as_str())).collect();
    assert_eq!(told.len(), 2, "{jobs:?}");
    for job in told {
        assert_eq!(outbox_kind::moved_from_of(&job.payload), Some(booked.starts_at.to_utc()), "{}", job.kind);
    }
}

/// A longer visit at the same start is no move for the patient: a confirmed appointment stays
/// confirmed, with no "moved" email or SMS (which said it moved from 2 PM to 2 PM) and its
/// confirmation link kept; a new start tells them, and it stays confirmed.
async fn a_new_length_at_the_same_start_keeps_the_status_and_tells_no_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.staff.book(&with_email(booking(provider.id, days_ahead(3), "14:00"))).await.expect("booked");
    let id = booked.appointment_id;
    staff_confirms(&org, id).await;
    let notices = async || move_notices(&app, &org, id).await.len();
    let longer = RescheduleRequest {
        appointment_date: Some(date_str(days_ahead(3))),
        appointment_time: Some("14:00".into()),
        duration_minutes: Some(60),
        ..Default::default()
    };
    org.staff.reschedule(id, &longer).await.expect("lengthened");
    let kept = org.staff.appointment(id).await.expect("read");
    assert_eq!((kept.status, kept.ends_at - kept.starts_at), (AppointmentStatus::Confirmed, Duration::minutes(60)));
    assert_eq!(notices().await, 0, "no notice of a move");
    let later = RescheduleRequest { appointment_time: Some("15:00".into()), ..longer };
    org.staff.reschedule(id, &later).await.expect("moved");
    assert_eq!(org.staff.appointment(id).await.expect("read").status, AppointmentStatus::Confirmed);
    assert_eq!(notices().await, 2, "told by email and SMS");
}

on_both_backends!(
    moves_before_their_notices_go_are_told_as_one,
    a_move_back_while_the_move_away_is_being_sent_is_told,
    a_confirmed_booking_moved_away_and_back_still_gets_its_booking_email,
    a_cancellation_after_an_untold_move_names_the_time_the_patient_knew,
    a_new_length_at_the_same_start_keeps_the_status_and_tells_no_one,
    a_move_and_a_cancellation_reach_the_phone_by_sms,
    a_bookings_reminders_and_webhook_messages_say_what_the_rules_build,
    reminders_are_queued_per_offset_and_channel_none_already_due,
    a_reschedule_moves_the_reminders_and_a_cancellation_withdraws_them,
    a_due_reminder_arrives_once_by_email_and_sms_with_the_manage_link,
    messages_too_close_to_change_online_say_to_call_and_keep_the_link,
    the_booking_sms_goes_through_twilio_and_never_after_stop,
    a_phone_twilio_knows_opted_out_is_kept_so_and_not_a_dead_letter,
);
