//! The confirmation email: outbox, delivery over a real SMTP conversation (the in-process sink of
//! the `local-peers` crate, never a mocked transport), retries, links and their pages.

use crate::helpers::*;
use booking_service::domain::{AppointmentId, OrgId};
use booking_service::store::{outbox_kind, ClaimedMail, Delivery, DynStore, MailClaim, OutboxJob};
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use shared::api::{AppointmentStatus, BookingInput};
use sqlx::Connection;
use std::time::Duration;
use test_kit::smtp::{ReceivedMail, SmtpSink};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn with_email(provider: Uuid, days: i64, time: &str) -> BookingInput {
    BookingInput { patient_email: Some("ada@example.com".into()), ..booking(provider, days_ahead(days), time) }
}

/// The confirm link in a message (whatever transfer encoding it used).
pub(crate) fn link_in(text: &str, base: &str) -> String {
    page_link_in(text, base, "confirm")
}

/// The link to `{base}/{page}/…` in a message.
fn page_link_in(text: &str, base: &str, page: &str) -> String {
    let start = text.find(&format!("{base}/{page}/")).unwrap_or_else(|| panic!("no {page} link in:\n{text}"));
    let rest = &text[start..];
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "-_:/.".contains(c))).unwrap_or(rest.len());
    rest[..end].to_owned()
}

fn token_of(link: &str) -> String {
    link.rsplit('/').next().expect("a token").to_owned()
}

/// The emails of the confirmation flow (bookings also queue an SMS and reminders: `notifications.rs`).
const EMAILS: &str = "('booking_confirmation', 'reschedule_notice', 'cancellation_notice')";

/// The appointment's messages of the confirmation flow, in order.
async fn outbox(app: &TestApp, org: Uuid, appointment: Uuid) -> Vec<OutboxJob> {
    let jobs = app.store.outbox(OrgId(org), AppointmentId(appointment)).await.expect("outbox");
    jobs.into_iter().filter(|j| EMAILS.contains(&format!("'{}'", j.kind))).collect()
}

/// Reads with `read` every 50 ms until `done` holds for what it read, and returns that; fails the
/// test when it does not within `WAIT`.
pub(crate) async fn wait_until<T: std::fmt::Debug>(read: impl AsyncFn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = read().await;
        if done(&got) {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "never got there: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the outbox until `done` holds for the appointment's messages.
async fn wait_outbox(
    app: &TestApp,
    org: Uuid,
    appointment: Uuid,
    done: impl Fn(&[OutboxJob]) -> bool,
) -> Vec<OutboxJob> {
    wait_until(async || outbox(app, org, appointment).await, |jobs| done(jobs)).await
}

/// The `.eml` files written so far, oldest first.
fn eml_files(app: &TestApp) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(app.mail_dir.path())
        .expect("mail folder")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    // Named after their UUIDv7 jobs: name order is creation order.
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).expect("readable .eml")).collect()
}

pub(crate) async fn wait_eml(app: &TestApp, count: usize) -> Vec<String> {
    wait_until(async || eml_files(app), |files| files.len() >= count).await
}

pub(crate) fn searchable(eml: &str) -> String {
    ReceivedMail { from: String::new(), to: Vec::new(), data: eml.replace("\r\n", "\n").replace('\n', "\r\n") }
        .searchable()
}

async fn get_page(link: &str) -> reqwest::Response {
    browser().get(link).send().await.expect("GET page")
}

/// Confirms as a browser does, or asking for JSON.
pub(crate) async fn post_confirm(link: &str, json: bool) -> reqwest::Response {
    let mut request = browser().post(link);
    if json {
        request = request.header(ACCEPT, "application/json");
    }
    request.send().await.expect("POST confirm")
}

async fn status_of(org: &TestOrg, id: Uuid) -> AppointmentStatus {
    org.staff.appointment(id).await.expect("appointment").status
}

fn assert_private(response: &reqwest::Response) {
    let h = response.headers();
    assert_eq!(h.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
    assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
}

async fn a_booking_email_arrives_over_smtp_and_its_link_confirms(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    let app = spawn_app_with(backend, |c| c.smtp_url = Some(sink.url())).await;
    let org = app.org("America/New_York").await;
    let provider = org
        .provider_with(shared::api::CreateProvider {
            name: "Dr. \"Bob\" <script>alert(1)</script> Zoë".into(),
            ..Default::default()
        })
        .await;
    let mut input = with_email(provider.id, 9, "14:00");
    input.patient_name = Some("Ada Bcc: evil@example.com".into());
    input.notes = Some("line one\nBcc: evil@example.com\n.\n".into());
    let booked = org.agent.book(&input).await.expect("booked");

    let mails = sink.wait_for(1, WAIT).await.expect("the mail arrives");
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    assert_eq!(mail.from, "bookings@localhost");
    assert!(mail.header("bcc").is_none(), "no header can be injected:\n{}", mail.data);
    let jobs = outbox(&app, org.id, booked.appointment_id).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, "booking_confirmation");
    assert_eq!(
        mail.header("message-id"),
        Some(format!("<{}@localhost>", jobs[0].id)),
        "a stable Message-ID from the job"
    );
    let text = mail.searchable();
    for part in ["multipart/alternative", "text/plain", "text/html", "text/calendar"] {
        assert!(text.contains(part), "{part} missing:\n{text}");
    }
    let html_part = &text[text.find("Content-Type: text/html").expect("an HTML part")..];
    let html_part = &html_part[..html_part.find("\r\n--").unwrap_or(html_part.len())];
    assert!(
        !html_part.contains("<script>") && html_part.contains("&lt;script&gt;"),
        "names are escaped in HTML:\n{html_part}"
    );
    let link = link_in(&text, &app.base);
    assert_eq!(token_of(&link).len(), 43, "256 bits in base64url");

    // The page shows the appointment and changes nothing.
    let page = get_page(&link).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_private(&page);
    let html = page.text().await.expect("html");
    assert!(html.contains(&booked.confirmation_code), "{html}");
    assert!(html.contains("Test Clinic"), "{html}");
    assert!(html.contains("America/New_York"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(html.contains("<form method=\"post\">"), "{html}");
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Pending);

    // POST confirms, once; twice is harmless.
    let confirmed = post_confirm(&link, true).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_private(&confirmed);
    let body: serde_json::Value = confirmed.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"success": true, "appointment_id": booked.appointment_id, "status": "confirmed"})
    );
    let again = post_confirm(&link, false).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(again.text().await.expect("html").contains("confirmed"));
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Confirmed);
    let trail = app
        .store
        .audit_trail(OrgId(org.id), AppointmentId(booked.appointment_id).into(), &every())
        .await
        .map(|page| page.items)
        .expect("audit");
    let actions: Vec<_> = trail.iter().map(|e| (e.action.as_str(), e.actor.as_str())).collect();
    assert_eq!(actions, [("booked", "test-agent"), ("confirmed", "patient")]);
    let jobs = wait_outbox(&app, org.id, booked.appointment_id, |j| j[0].sent_at.is_some()).await;
    assert_eq!(jobs[0].attempts, 0);
}

async fn the_message_carries_the_clinic_the_local_time_the_code_and_an_invitation(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    let app = spawn_app_with(backend, |c| {
        c.smtp_url = Some(sink.url());
        c.public_base_url = Some("https://clinic.example/".into());
        c.mail_from = "Bookings <bookings@clinic.example>".into();
    })
    .await;
    let org = app.org("America/New_York").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 12, "09:30")).await.expect("booked");
    let mails = sink.wait_for(1, WAIT).await.expect("the mail arrives");
    let text = mails[0].searchable();
    let link = link_in(&text, "https://clinic.example");
    assert_eq!(token_of(&link).len(), 43);
    assert_eq!(mails[0].from, "bookings@clinic.example");
    assert!(mails[0].header("message-id").is_some_and(|m| m.ends_with("@clinic.example>")));
    let local = booked.starts_at.format("%H:%M").to_string();
    assert_eq!(local, "09:30");
    for expected in [
        "Test Clinic",
        "Dr. Smith",
        "09:30",
        "America/New_York",
        booked.confirmation_code.as_str(),
        "BEGIN:VCALENDAR",
        "METHOD:REQUEST",
        &format!("UID:{}@booking-service", booked.appointment_id),
        &format!("DTSTART:{}", booked.starts_at.with_timezone(&chrono::Utc).format("%Y%m%dT%H%M%SZ")),
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
}

async fn smtp_down_at_booking_time_still_books_and_the_mail_arrives_once_it_is_back(backend: Backend) {
    // A port nothing listens on yet.
    let address = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let app = spawn_app_with(backend, |c| c.smtp_url = Some(format!("smtp://{address}"))).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked =
        org.agent.book(&with_email(provider.id, 4, "10:00")).await.expect("the booking does not wait for mail");
    let jobs = wait_outbox(&app, org.id, booked.appointment_id, |j| j.first().is_some_and(|j| j.attempts >= 1)).await;
    assert!(jobs[0].last_error.is_some(), "{jobs:?}");
    assert!(jobs[0].sent_at.is_none() && jobs[0].dead_at.is_none());

    let sink = SmtpSink::start_on(address).await.expect("SMTP is back");
    let mails = sink.wait_for(1, WAIT).await.expect("the mail arrives");
    assert!(mails[0].searchable().contains(&booked.confirmation_code));
    wait_outbox(&app, org.id, booked.appointment_id, |j| j[0].sent_at.is_some()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "sent once");
}

/// Mail held up while the SMTP server is down goes as things stand when it is back: a booking the
/// staff confirmed meanwhile is told confirmed (its link shows it, asking nothing), and a
/// cancellation after a move the patient never heard of names the time they knew.
async fn mail_held_up_says_what_happened_meanwhile(backend: Backend) {
    let address = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let app = spawn_app_with(backend, |c| c.smtp_url = Some(format!("smtp://{address}"))).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let confirmed = org.staff.book(&with_email(provider.id, 4, "10:00")).await.expect("booked");
    let id = confirmed.appointment_id;
    let confirm = org.staff.request(reqwest::Method::POST, &format!("/api/appointments/{id}/confirm"));
    org.staff.send::<shared::api::Appointment>(confirm).await.expect("confirmed by the staff");
    let cancelled = org.staff.book(&with_email(provider.id, 5, "09:00")).await.expect("booked");
    let moved = org.staff.reschedule(cancelled.appointment_id, &move_to(days_ahead(5), "11:00")).await.expect("moved");
    org.staff.cancel(moved.id, None).await.expect("cancelled");

    let sink = SmtpSink::start_on(address).await.expect("SMTP is back");
    // The other booking's email and its move's notice were withdrawn: the cancellation tells.
    let mails = sink.wait_for(2, WAIT).await.expect("the confirmed booking's email and the cancellation");
    let about = |code: &str| {
        let mail = mails.iter().map(|m| m.searchable()).find(|m| m.contains(code) && !m.contains("Please confirm"));
        mail.unwrap_or_default()
    };
    let told = about(&confirmed.confirmation_code);
    assert!(told.contains("is booked and confirmed") && told.contains("It is confirmed"), "{told}");
    assert!(told.contains("/confirm/"), "the booking email keeps its link: {told}");
    assert!(!told.contains("Confirm:") && !told.contains("Confirm my"), "asks nothing, the calendar neither: {told}");
    let cancellation = about(&cancelled.confirmation_code);
    assert!(cancellation.contains(", 09:00) was cancelled:") && cancellation.contains("(moved from"), "{cancellation}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 2, "nothing else");
}

async fn a_message_that_keeps_failing_ends_dead_with_its_error(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    sink.refuse_with(451);
    let app = spawn_app_with(backend, |c| {
        c.smtp_url = Some(sink.url());
        c.mail_max_attempts = 3;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 4, "11:00")).await.expect("booked");
    let jobs =
        wait_outbox(&app, org.id, booked.appointment_id, |j| j.first().is_some_and(|j| j.dead_at.is_some())).await;
    assert_eq!(jobs[0].attempts, 3, "{jobs:?}");
    assert!(jobs[0].last_error.as_deref().is_some_and(|e| e.contains("451")), "{jobs:?}");
    assert!(jobs[0].sent_at.is_none());
    // Dead means no more attempts.
    sink.accept();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty());
    assert_eq!(outbox(&app, org.id, booked.appointment_id).await[0].attempts, 3);
}

/// A mailbox the server refuses for good (550, unknown: a voice agent mishearing an address is
/// common) is given up on at its first try, with the server's words, not retried for hours; a
/// refusal for now (451) is tried again, and the other patient's mail goes.
async fn a_recipient_refused_for_good_is_given_up_at_once(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    sink.refuse_recipient("nobody@example.com", 550);
    sink.refuse_recipient("busy@example.com", 451);
    let app = spawn_app_with(backend, |c| {
        c.smtp_url = Some(sink.url());
        c.mail_retry_base_ms = 100;
        c.mail_retry_max_ms = 100;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let to = |address: &str, time: &str| BookingInput {
        patient_email: Some(address.into()),
        ..booking(provider.id, days_ahead(4), time)
    };
    let unknown = org.agent.book(&to("nobody@example.com", "10:00")).await.expect("booked").appointment_id;
    let busy = org.agent.book(&to("busy@example.com", "11:00")).await.expect("booked").appointment_id;
    org.agent.book(&to("ada@example.com", "12:00")).await.expect("booked");
    let confirmation = |jobs: &[OutboxJob]| {
        jobs.iter().find(|j| j.kind == outbox_kind::BOOKING_CONFIRMATION).cloned().expect("the confirmation")
    };
    let jobs = wait_outbox(&app, org.id, unknown, |j| confirmation(j).dead_at.is_some()).await;
    let dead = confirmation(&jobs);
    assert_eq!(dead.attempts, 1, "{dead:?}");
    assert!(dead.last_error.as_deref().is_some_and(|e| e.contains("550")), "{dead:?}");
    let jobs = wait_outbox(&app, org.id, busy, |j| confirmation(j).attempts >= 3).await;
    assert!(confirmation(&jobs).dead_at.is_none(), "a refusal for now is retried: {jobs:?}");
    let arrived = sink.wait_for(1, WAIT).await.expect("the other patient's mail");
    assert!(arrived.iter().all(|m| m.to == ["ada@example.com"]), "{arrived:?}");
}

async fn two_instances_on_one_database_send_each_message_once(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    let url = sink.url();
    let first = spawn_app_with(backend, |c| c.smtp_url = Some(url.clone())).await;
    let second = first
        .another_instance_with(|c| {
            c.smtp_url = Some(url.clone());
            c.mail_poll_ms = 50;
            c.mail_retry_base_ms = 100;
            c.mail_retry_max_ms = 400;
        })
        .await;
    let org = first.org("UTC").await;
    let provider = org.provider().await;
    let count = 12;
    for i in 0..count {
        let hour = format!("{:02}:00", 8 + i);
        org.agent.book(&with_email(provider.id, 6, &hour)).await.expect("booked");
    }
    sink.wait_for(count, WAIT).await.expect("all mail arrives");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.messages();
    assert_eq!(mails.len(), count, "each message once");
    let mut ids: Vec<_> = mails.iter().filter_map(|m| m.header("message-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
    drop(second);
}

/// Dispatchers claiming at the same instant never take one message twice, and what they leave
/// stays due for the next round (PostgreSQL skips the rows another claim has locked and checks
/// again that a row it locks is still due; SQLite has one writer). Rounds of eight claims of three
/// at once, until one finds nothing, take every due message exactly once.
async fn dispatchers_claiming_at_once_take_each_message_once(backend: Backend) {
    // The instance's own dispatcher looks for mail only at start, before anything is queued.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let mut appointments = Vec::new();
    for i in 0..12 {
        let booked = org.agent.book(&with_email(provider.id, 6, &format!("{:02}:00", 8 + i))).await.expect("booked");
        appointments.push(booked.appointment_id);
    }
    let now = booking_service::store::now();
    let mut due = Vec::new();
    for &id in &appointments {
        // Every kind: the confirmation SMS is due too.
        let jobs = app.store.outbox(OrgId(org.id), AppointmentId(id)).await.expect("outbox");
        due.extend(jobs.iter().filter(|j| j.next_attempt_at <= now).map(|j| j.id));
    }
    assert_eq!(due.len(), 24, "a confirmation email and SMS of each booking: {due:?}");
    let mut claimed = Vec::new();
    for _round in 0..due.len() {
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let claims = (0..8).map(|_| {
            let (store, start) = (app.store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.claim_mail(&MailClaim::every(now, now + chrono::Duration::minutes(2), 3, 10)).await
            })
        });
        let before = claimed.len();
        for claim in futures::future::join_all(claims).await {
            claimed.extend(claim.expect("joined").expect("claimed").jobs.into_iter().map(|j| j.id));
        }
        if claimed.len() == before {
            break;
        }
    }
    claimed.sort();
    due.sort();
    assert_eq!(claimed, due, "each due message claimed exactly once");
}

/// Every text-like column of every table, on either database, searched for `needle`: the number
/// of cells containing it.
async fn cells_containing(app: &TestApp, backend: Backend, needle: &str) -> i64 {
    let mut found = 0;
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c WHERE m.type = 'table'",
            )
            .fetch_all(&mut conn)
            .await
            .expect("columns");
            assert!(columns.len() > 20, "{columns:?}");
            for (table, column) in columns {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM \"{table}\" WHERE instr(CAST(\"{column}\" AS TEXT), ?1) > 0"
                ))
                .bind(needle)
                .fetch_one(&mut conn)
                .await
                .expect("scan");
                found += n;
            }
        }
        Backend::Postgres => {
            // The owner connection: a superuser, so row-level security hides nothing here.
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .expect("columns");
            assert!(columns.len() > 20, "{columns:?}");
            for (table, column) in columns {
                let n: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM \"{table}\" WHERE strpos(\"{column}\"::text, $1) > 0"
                ))
                .bind(needle)
                .fetch_one(&mut conn)
                .await
                .expect("scan");
                found += n;
            }
        }
    }
    found
}

async fn the_raw_token_appears_nowhere_in_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let files = wait_eml(&app, 1).await;
    let link = link_in(&searchable(&files[0]), &app.base);
    let token = token_of(&link);
    assert_eq!(cells_containing(&app, backend, &token).await, 0);
    // The scan does see what is stored: the token's hash and the appointment.
    let hash = booking_service::links::LinkToken::parse(&token).expect("a token").hash();
    assert_eq!(cells_containing(&app, backend, &hash).await, 1);
    assert!(cells_containing(&app, backend, &booked.appointment_id.to_string()).await >= 3);
    // And the link works, so it is the real token.
    assert_eq!(post_confirm(&link, true).await.status(), StatusCode::OK);
}

/// Makes every confirmation link of the test's database expired, straight in the database.
async fn expire_confirmation_links(app: &TestApp, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
            sqlx::query("UPDATE confirmation_tokens SET expires_at = 0").execute(&mut conn).await.expect("expire");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
            sqlx::query("UPDATE confirmation_tokens SET expires_at = now() - interval '1 minute'")
                .execute(&mut conn)
                .await
                .expect("expire");
        }
    }
}

/// A confirmation email held up past its link's expiry (an SMTP outage longer than
/// `CONFIRM_TOKEN_TTL_HOURS`) goes without that link, which would only answer 410, and with the
/// manage link, which confirms too.
async fn an_email_held_up_past_its_links_expiry_goes_without_it(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    sink.refuse_with(451);
    let app = spawn_app_with(backend, |c| {
        c.smtp_url = Some(sink.url());
        c.mail_retry_base_ms = 100;
        c.mail_retry_max_ms = 100;
        c.mail_max_attempts = 1000;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 4, "11:00")).await.expect("booked");
    let tried =
        |jobs: &[OutboxJob]| jobs.iter().any(|j| j.kind == outbox_kind::BOOKING_CONFIRMATION && j.attempts >= 1);
    wait_outbox(&app, org.id, booked.appointment_id, tried).await;
    expire_confirmation_links(&app, backend).await;
    sink.accept();
    let mail = sink.wait_for(1, WAIT).await.expect("the confirmation goes")[0].searchable();
    assert!(!mail.contains("/confirm/"), "no expired link: {mail}");
    assert!(mail.contains(&format!("{}/manage/", app.base)), "the manage link: {mail}");
}

async fn an_expired_link_is_gone_and_an_unknown_one_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "15:00")).await.expect("booked");
    let link = link_in(&searchable(&wait_eml(&app, 1).await[0]), &app.base);
    expire_confirmation_links(&app, backend).await;
    let page = get_page(&link).await;
    assert_eq!(page.status(), StatusCode::GONE);
    assert_private(&page);
    assert!(page.text().await.expect("html").contains("expired"));
    let json = post_confirm(&link, true).await;
    assert_eq!(json.status(), StatusCode::GONE);
    let body: serde_json::Value = json.json().await.expect("json");
    assert_eq!(body["error"]["code"], "gone");
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Pending);

    let unknown = format!("{}/confirm/{}", app.base, "A".repeat(43));
    let page = get_page(&unknown).await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html")));
    let json = post_confirm(&unknown, true).await;
    assert_eq!(json.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = json.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    // A client that is not a browser gets the API's error body, asked for JSON or not.
    for (link, status, code) in [(&unknown, StatusCode::NOT_FOUND, "not_found"), (&link, StatusCode::GONE, "gone")] {
        let answer = reqwest::Client::new().post(link).header(ACCEPT, "*/*").send().await.expect("POST");
        assert_eq!(answer.status(), status);
        let body: serde_json::Value = answer.json().await.expect("json");
        assert_eq!(body["error"]["code"], code);
    }
    let malformed = format!("{}/confirm/not-a-token", app.base);
    assert_eq!(post_confirm(&malformed, false).await.status(), StatusCode::NOT_FOUND);
}

/// A pending appointment whose start has passed can no longer be confirmed by its link (a
/// `confirmed` after the visit would mislead the clinic): the page says so, with no button, and
/// the POST is 410, changing nothing. A confirmed one still reads as confirmed.
async fn a_link_cannot_confirm_an_appointment_whose_time_has_come(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 1, "15:00")).await.expect("booked");
    let link = link_in(&searchable(&wait_eml(&app, 1).await[0]), &app.base);
    crate::attendance::backdate(&app, booked.appointment_id).await;
    let page = get_page(&link).await;
    assert_eq!(page.status(), StatusCode::GONE);
    let html = page.text().await.expect("html");
    assert!(html.contains("can no longer be confirmed") && !html.contains("<button"), "{html}");
    let json = post_confirm(&link, true).await;
    assert_eq!(json.status(), StatusCode::GONE);
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Pending);
}

async fn rescheduling_sends_a_fresh_link_and_the_old_one_stops_working(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let old = link_in(&searchable(&wait_eml(&app, 1).await[0]), &app.base);
    org.staff.reschedule(booked.appointment_id, &move_to(days_ahead(6), "11:00")).await.expect("rescheduled");
    let files = wait_eml(&app, 2).await;
    let notice = searchable(&files[1]);
    // From the time it had to the new one.
    let from = booked.starts_at.format("%A %-d %B %Y, %H:%M").to_string();
    assert!(notice.contains(&format!("was moved from {from} to")), "{notice}");
    assert!(notice.contains(&format!("<dt>Was</dt><dd>{from}</dd>")), "{notice}");
    let fresh = link_in(&notice, &app.base);
    assert_ne!(old, fresh);
    let kinds: Vec<_> = outbox(&app, org.id, booked.appointment_id).await.into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds, ["booking_confirmation", "reschedule_notice"]);

    assert_eq!(get_page(&old).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(post_confirm(&old, true).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Pending);
    assert_eq!(post_confirm(&fresh, true).await.status(), StatusCode::OK);
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Confirmed);
}

/// A move keeps a confirmed appointment confirmed (statuses go only from pending to confirmed,
/// and either to cancelled): its notice says where it moved and asks for no confirmation.
async fn a_confirmed_appointment_moved_stays_confirmed_and_is_not_asked_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let link = link_in(&searchable(&wait_eml(&app, 1).await[0]), &app.base);
    assert_eq!(post_confirm(&link, true).await.status(), StatusCode::OK);
    let to = move_to(days_ahead(6), "11:00");
    let moved = org.staff.reschedule(booked.appointment_id, &to).await.expect("rescheduled");
    assert_eq!(moved.status, AppointmentStatus::Confirmed);
    assert_eq!(status_of(&org, booked.appointment_id).await, AppointmentStatus::Confirmed);
    let notice = searchable(&wait_eml(&app, 2).await[1]);
    assert!(notice.contains("was moved from") && notice.contains("STATUS:CONFIRMED"), "{notice}");
    assert!(!notice.contains("/confirm/") && notice.contains("/manage/"), "{notice}");
    assert!(!notice.to_lowercase().contains("please confirm"), "{notice}");
}

async fn cancelling_queues_a_notice_and_withdraws_the_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let link = link_in(&searchable(&wait_eml(&app, 1).await[0]), &app.base);
    org.staff.cancel(booked.appointment_id, Some("patient called")).await.expect("cancelled");
    let files = wait_eml(&app, 2).await;
    let notice = searchable(&files[1]);
    assert!(notice.contains("cancelled"), "{notice}");
    assert!(notice.contains("METHOD:CANCEL"), "{notice}");
    assert!(!notice.contains("/confirm/"), "{notice}");
    let kinds: Vec<_> = outbox(&app, org.id, booked.appointment_id).await.into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds, ["booking_confirmation", "cancellation_notice"]);
    assert_eq!(post_confirm(&link, true).await.status(), StatusCode::NOT_FOUND);
}

async fn outbox_rows(app: &TestApp, backend: Backend) -> i64 {
    let sql = format!("SELECT count(*) FROM outbox WHERE kind IN {EMAILS}");
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
            sqlx::query_scalar(&sql).fetch_one(&mut conn).await.expect("count")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
            sqlx::query_scalar(&sql).fetch_one(&mut conn).await.expect("count")
        }
    }
}

async fn a_refused_booking_queues_no_message_and_no_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    assert_error(org.agent.book(&with_email(provider.id, 5, "10:00")).await, 409, "slot_unavailable");
    assert_error(org.agent.book(&with_email(provider.id, -2, "10:00")).await, 422, "validation_failed");
    // Without an email address there is nothing to send.
    org.agent.book(&booking(provider.id, days_ahead(5), "12:00")).await.expect("booked");
    assert_eq!(outbox_rows(&app, backend).await, 1);
    let tokens = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM confirmation_tokens")
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("postgres");
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM confirmation_tokens")
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
    };
    assert_eq!(tokens, 1);
}

async fn shutdown_stops_the_dispatcher(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    wait_eml(&app, 1).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "the service and its dispatcher stop cleanly");
}

async fn the_openapi_path_of_the_confirm_page_is_public(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: serde_json::Value = app.anon.send(app.anon.request(Method::GET, "/openapi.json")).await.expect("openapi");
    let post = &doc["paths"]["/confirm/{token}"]["post"];
    assert!(post.is_object());
    assert!(post.get("security").is_none(), "the token is the credential");
}

/// What a claim of every kind and clinic takes at `at`, its lease `lease` long.
async fn claim_every(
    store: &DynStore,
    at: chrono::DateTime<chrono::Utc>,
    lease: chrono::Duration,
    limit: i64,
    max_claims: i32,
) -> ClaimedMail {
    store.claim_mail(&MailClaim::every(at, at + lease, limit, max_claims)).await.expect("claimed")
}

/// The booking confirmation turned into a message of a kind only a newer release delivers.
const NEWER_KIND: &str = "UPDATE outbox SET kind = 'from_a_newer_release' WHERE kind = 'booking_confirmation'";

/// A message of a kind this release does not deliver (queued by a newer one, during a staged
/// rollout or before a rollback) is not claimed: it waits, unattempted, for a dispatcher that knows
/// it, instead of failing here until it is dead.
async fn a_message_of_a_kind_from_a_newer_release_is_left_for_it(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claim here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    assert_eq!(app.db.execute(NEWER_KIND).await, 1);
    let now = booking_service::store::now();
    let claimed = claim_every(&app.store, now, chrono::Duration::minutes(2), 100, 10).await.jobs;
    assert!(!claimed.is_empty(), "the messages of known kinds are claimed");
    assert!(claimed.iter().all(|j| j.kind != "from_a_newer_release"), "{claimed:?}");
    let left = app.store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox");
    let newer = left.iter().find(|j| j.kind == "from_a_newer_release").expect("still queued");
    assert_eq!((newer.attempts, newer.last_error.as_deref()), (0, None));
}

/// A claim takes the due messages of its lane in turn (each clinic's oldest, then each one's
/// second, …), of one clinic no more than its share, and none of a clinic the dispatcher has its
/// share of in hand already: one clinic's backlog, or its endpoints that hang, hold up no other
/// clinic's messages.
async fn a_claim_shares_its_places_between_clinics(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claims here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let (busy, quiet) = (app.org("UTC").await, app.org("UTC").await);
    let provider = busy.provider().await;
    for time in ["09:00", "10:00", "11:00"] {
        busy.agent.book(&with_email(provider.id, 5, time)).await.expect("booked");
    }
    let theirs = quiet.provider().await;
    quiet.agent.book(&with_email(theirs.id, 5, "09:00")).await.expect("booked");
    let now = booking_service::store::now();
    let patients = MailClaim {
        kinds: &outbox_kind::TO_PATIENTS,
        ..MailClaim::every(now, now + chrono::Duration::minutes(2), 4, 10)
    };
    let of = |jobs: &[OutboxJob]| {
        let count = |org: Uuid| jobs.iter().filter(|j| j.org == OrgId(org)).count();
        (count(busy.id), count(quiet.id))
    };
    let first = app.store.claim_mail(&MailClaim { limit: 3, per_org: 3, ..patients.clone() }).await.expect("claimed");
    assert_eq!(of(&first.jobs), (2, 1), "in turn, though the oldest three are the busy clinic's: {first:?}");
    let second = app.store.claim_mail(&MailClaim { per_org: 1, ..patients.clone() }).await.expect("claimed").jobs;
    assert_eq!(of(&second), (1, 1), "one of each: {second:?}");
    let skip = [OrgId(busy.id)];
    let all = MailClaim { limit: 100, per_org: 100, ..patients.clone() };
    let skipping = app.store.claim_mail(&MailClaim { skip: &skip, ..all.clone() }).await.expect("claimed").jobs;
    let left = app.store.claim_mail(&all).await.expect("claimed").jobs;
    assert_eq!((of(&skipping).0, of(&left).1), (0, 0), "{skipping:?} {left:?}");
    assert!(of(&left).0 > 0, "what the busy clinic has left waited for a claim that does not skip it");
    let booked = quiet.agent.book(&with_email(theirs.id, 5, "10:00")).await.expect("booked");
    let now = MailClaim { now: booking_service::store::now(), ..all };
    let webhooks = MailClaim { kinds: &outbox_kind::TO_WEBHOOKS, ..now.clone() };
    assert!(app.store.claim_mail(&webhooks).await.expect("claimed").jobs.is_empty(), "the webhooks' lane");
    let later = app.store.claim_mail(&now).await.expect("claimed").jobs;
    assert!(later.iter().all(|j| j.appointment == AppointmentId(booked.appointment_id)) && !later.is_empty());
}

/// Behind more due messages than a claim reads to tell the clinics with any due (1,000: it then
/// steps through every clinic with messages pending instead), a claim still takes each clinic's
/// oldest in turn: 1,200 of the busy clinic's due keep none of the quiet clinic's waiting.
async fn behind_thousands_due_a_claim_still_takes_each_clinic_in_turn(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claims here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let (busy, quiet) = (app.org("UTC").await, app.org("UTC").await);
    let provider = busy.provider().await;
    busy.agent.book(&with_email(provider.id, 5, "09:00")).await.expect("booked");
    let theirs = quiet.provider().await;
    quiet.agent.book(&with_email(theirs.id, 5, "09:00")).await.expect("booked");
    let id = match backend {
        Backend::Postgres => "gen_random_uuid()",
        Backend::Sqlite => "printf('00000000-0000-4000-8000-%012d', n)",
    };
    let copies = format!(
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1200)
         INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
         SELECT {id}, org_id, appointment_id, kind, payload, next_attempt_at, created_at FROM outbox CROSS JOIN g
         WHERE org_id = '{}' AND kind = 'booking_confirmation'",
        busy.id
    );
    assert_eq!(app.db.execute(&copies).await, 1200);
    let now = booking_service::store::now();
    let claim = MailClaim {
        kinds: &outbox_kind::TO_PATIENTS,
        per_org: 1,
        ..MailClaim::every(now, now + chrono::Duration::minutes(2), 4, 10)
    };
    let jobs = app.store.claim_mail(&claim).await.expect("claimed").jobs;
    let count = |org: Uuid| jobs.iter().filter(|j| j.org == OrgId(org)).count();
    assert_eq!((count(busy.id), count(quiet.id)), (1, 1), "{jobs:?}");
}

/// One clinic's backlog, several times its share of a lane, goes out without waiting for a poll:
/// a claim that took a clinic's whole share is followed by another as soon as half the places are
/// free (the polls here are an hour apart, and only the first comes at start).
async fn a_clinics_backlog_goes_out_without_waiting_for_polls(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    lift_caller_quota(&org).await;
    let provider = org.provider().await;
    for hour in 9..17 {
        org.agent.book(&with_email(provider.id, 5, &format!("{hour:02}:00"))).await.expect("booked");
    }
    // Sixteen messages (each booking's email and SMS) wait for a dispatcher that starts now.
    let sender = app.another_instance_with(|c| c.mail_poll_ms = 3_600_000).await;
    let sent = tokio::time::timeout(Duration::from_secs(20), wait_eml(&sender, 8)).await;
    assert!(sent.is_ok(), "every email out, well before the next poll");
}

/// The backlog gauges count what a dispatcher would claim now: a message in a dispatcher's hands,
/// or of a kind only a newer release delivers, is not due (the stuck-outbox alert would fire for
/// it); a message given up on counts as dead. On SQLite the count is a read: it answers while a
/// booking holds the one writer.
async fn the_backlog_counts_what_a_dispatcher_would_claim(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claims here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let now = booking_service::store::now();
    let due = app.store.outbox_backlog(now).await.expect("backlog").due;
    assert!(due >= 2, "the confirmation email and SMS are due: {due}");

    assert_eq!(app.db.execute(NEWER_KIND).await, 1);
    assert_eq!(app.store.outbox_backlog(now).await.expect("backlog").due, due - 1, "a newer release's kind");

    let claimed = claim_every(&app.store, now, chrono::Duration::minutes(2), 100, 10).await.jobs;
    assert_eq!(claimed.len() as i64, due - 1);
    let backlog = app.store.outbox_backlog(now).await.expect("backlog");
    assert_eq!((backlog.due, backlog.oldest_due_seconds, backlog.dead), (0, 0.0, 0), "all in a dispatcher's hands");

    let dead = Delivery::Dead { error: "refused".into() };
    app.store.record_delivery(&claimed[0], &dead).await.expect("recorded");
    assert_eq!(app.store.outbox_backlog(now).await.expect("backlog").dead, 1);

    if backend == Backend::Sqlite {
        let mut writer = sqlx::SqliteConnection::connect(&app.db.url).await.expect("sqlite");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.expect("take the writer");
        let sampled = tokio::time::timeout(Duration::from_millis(500), app.store.outbox_backlog(now)).await;
        assert!(matches!(sampled, Ok(Ok(_))), "the count waited for the writer: {sampled:?}");
        sqlx::query("COMMIT").execute(&mut writer).await.expect("release the writer");
    }
}

/// A message sent but whose outcome could never be recorded comes back at the end of each lease;
/// once claimed as often as it may be tried it is a dead letter (it may have been sent), not sent
/// yet again. Claims three minutes apart with two-minute leases, none of them recorded.
async fn a_message_claimed_again_and_again_with_no_outcome_recorded_ends_dead(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claims here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let (store, max) = (&app.store, 3);
    let start = booking_service::store::now();
    let confirmation = |jobs: &[OutboxJob]| jobs.iter().find(|j| j.kind == "booking_confirmation").cloned();
    for claim in 0..max {
        let at = start + chrono::Duration::minutes(3 * i64::from(claim));
        let claimed = claim_every(store, at, chrono::Duration::minutes(2), 100, max).await;
        assert!(claimed.abandoned.is_empty(), "claim {claim}: {:?}", claimed.abandoned);
        let job = confirmation(&claimed.jobs).expect("claimed again once its lease ended");
        assert_eq!((job.claims, job.attempts), (claim + 1, 0));
    }
    let at = start + chrono::Duration::minutes(3 * i64::from(max));
    let claimed = claim_every(store, at, chrono::Duration::minutes(2), 100, max).await;
    assert!(claimed.abandoned.iter().any(|kind| kind == "booking_confirmation"), "{:?}", claimed.abandoned);
    assert!(confirmation(&claimed.jobs).is_none(), "sent yet again: {claimed:?}");
    let outbox = store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox");
    let dead = confirmation(&outbox).expect("kept");
    assert!(dead.dead_at.is_some() && dead.sent_at.is_none(), "{dead:?}");
    let error = dead.last_error.unwrap_or_default();
    assert!(error.contains("claimed 3 times with no outcome recorded"), "{error}");
    assert!(store.outbox_backlog(at).await.expect("backlog").dead >= 1, "the dead-letter alert sees it");
}

/// Messages already tried as often as the attempt limit allows once it was lowered (a redeploy
/// with a smaller MAIL_MAX_ATTEMPTS) are given up with their last error, instead of waiting
/// forever neither claimed nor dead (and counted as due): all at the next claim, however many
/// more than the clinic's share of a claim.
async fn a_message_tried_as_often_as_a_lowered_limit_allows_ends_dead(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claims here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    org.agent.book(&with_email(provider.id, 5, "11:00")).await.expect("booked");
    let store = &app.store;
    let start = booking_service::store::now();
    let confirmations =
        |jobs: &[OutboxJob]| jobs.iter().filter(|j| j.kind == "booking_confirmation").cloned().collect::<Vec<_>>();
    for failure in 0..2 {
        let at = start + chrono::Duration::minutes(3 * failure);
        let jobs = confirmations(&claim_every(store, at, chrono::Duration::minutes(2), 100, 5).await.jobs);
        assert_eq!(jobs.len(), 2, "both due: {jobs:?}");
        for job in jobs {
            let retry = Delivery::Retry { error: format!("refused {failure}"), at: at + chrono::Duration::minutes(1) };
            assert!(store.record_delivery(&job, &retry).await.expect("recorded"));
        }
    }
    let at = start + chrono::Duration::minutes(6);
    let lowered = MailClaim { per_org: 1, ..MailClaim::every(at, at + chrono::Duration::minutes(2), 100, 2) };
    let claimed = store.claim_mail(&lowered).await.expect("claimed");
    let given_up = claimed.abandoned.iter().filter(|kind| *kind == "booking_confirmation").count();
    assert_eq!(given_up, 2, "both at once, with a share of one: {:?}", claimed.abandoned);
    let confirmation = |jobs: &[OutboxJob]| confirmations(jobs).into_iter().next();
    assert!(confirmation(&claimed.jobs).is_none(), "tried a third time: {claimed:?}");
    let outbox = store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox");
    let dead = confirmation(&outbox).expect("kept");
    assert!(dead.dead_at.is_some() && dead.sent_at.is_none(), "{dead:?}");
    assert_eq!((dead.attempts, dead.last_error.as_deref()), (2, Some("refused 1")));
}

/// A dispatcher whose lease ran out while it was sending cannot record a failure over a message
/// another dispatcher has claimed since (it would hand it to a third while the second sends); a
/// sending it records is kept.
async fn a_failure_from_an_ended_claim_is_not_recorded(backend: Backend) {
    // Mail is looked for only at start, so the messages queued below wait for the claims here.
    let app = spawn_app_with(backend, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let store = &app.store;
    let first_at = booking_service::store::now();
    let second_at = first_at + chrono::Duration::minutes(3);
    let confirmation = |jobs: Vec<OutboxJob>| jobs.into_iter().find(|j| j.kind == "booking_confirmation");
    let lease = chrono::Duration::minutes(2);
    let claim = |at| async move { claim_every(store, at, lease, 100, 10).await.jobs };
    let first = confirmation(claim(first_at).await).expect("claimed");
    let second = confirmation(claim(second_at).await).expect("claimed again once the first lease ended");
    let stored = || async {
        let outbox = store.outbox(OrgId(org.id), AppointmentId(booked.appointment_id)).await.expect("outbox");
        confirmation(outbox).expect("kept")
    };
    let retry = Delivery::Retry { error: "timed out".into(), at: second_at };
    assert!(!store.record_delivery(&first, &retry).await.expect("asked"), "said to be recorded");
    let after_first = stored().await;
    assert_eq!((after_first.attempts, after_first.last_error), (0, None), "the ended claim's failure");
    assert!(store.record_delivery(&second, &retry).await.expect("recorded"));
    assert_eq!(stored().await.attempts, 1, "the current claim's failure");
    assert!(store.record_delivery(&first, &Delivery::Sent).await.expect("recorded"));
    assert!(stored().await.sent_at.is_some(), "a sending is recorded whichever claim made it");
}

/// The dead letters and the messages sent are found through indexes of their own, not by reading
/// the whole outbox: the gauge's count of dead letters every 5 s, and retention's pruning of both;
/// so are the idempotency records and the voice tools' answers retention prunes. On SQLite, a time
/// off's conflicts are read through its provider's appointments by time, a closure's through the
/// clinic's (PostgreSQL's exclusion constraint's index serves both).
async fn the_outbox_is_counted_and_pruned_through_indexes(backend: Backend) {
    let app = spawn_app(backend).await;
    let conflicts = |whose: &str| {
        format!(
            "SELECT id FROM appointments WHERE org_id = ?1 AND {whose} AND status IN ('pending', 'confirmed')
             AND blocked_from < ?4 AND blocked_until > ?3 AND blocked_from >= ?3 - 57600000000 ORDER BY starts_at, id"
        )
    };
    let sqlite_only = [
        (conflicts("provider_id = ?2"), "appointments_provider_blocked"),
        (conflicts("?2 IS NULL"), "appointments_org_blocked"),
    ];
    let sqlite_only = sqlite_only.iter().filter(|_| backend == Backend::Sqlite).map(|(q, i)| (q.as_str(), *i));
    for (query, index) in [
        ("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NOT NULL", "outbox_dead"),
        ("SELECT id FROM outbox WHERE dead_at < '2026-01-01' LIMIT 500", "outbox_dead"),
        ("SELECT id FROM outbox WHERE sent_at < '2026-01-01' LIMIT 500", "outbox_sent"),
        ("SELECT key FROM idempotency_keys WHERE created_at < '2026-01-01' LIMIT 500", "idempotency_keys_created"),
        (
            "SELECT call_id FROM vapi_tool_results WHERE created_at < '2026-01-01' LIMIT 500",
            "vapi_tool_results_created",
        ),
    ]
    .into_iter()
    .chain(sqlite_only)
    {
        let plan: Vec<String> = match backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
                // An empty table is read whole whatever its indexes: ask whether one can serve.
                sqlx::query("SET enable_seqscan = off").execute(&mut conn).await.expect("set");
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("EXPLAIN {query}")).fetch_all(&mut conn).await.expect("plan");
                rows.into_iter().map(|(line,)| line).collect()
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.expect("connect");
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(&format!("EXPLAIN QUERY PLAN {query}")).fetch_all(&mut conn).await.expect("plan");
                rows.into_iter().map(|(.., detail)| detail).collect()
            }
        };
        assert!(plan.iter().any(|line| line.contains(index)), "{query}: {plan:#?}");
    }
}

/// A rotated link key with the old one as `CONFIRM_LINK_SECRET_PREVIOUS`: a confirmation queued
/// before the rotation still goes out (it would be dropped as superseded), and both of its links,
/// derived with the key they were issued under, open their pages.
async fn links_issued_before_a_key_rotation_work_with_the_previous_key(backend: Backend) {
    const OLD: &str = "the-link-secret-before-the-rotation-0001";
    const NEW: &str = "the-link-secret-after-the-rotation-000002";
    let before = spawn_app_with(backend, |c| {
        c.confirm_link_secret = Some(OLD.into());
        // Mail is looked for only at start: the message waits for the next instance.
        c.mail_poll_ms = 3_600_000;
    })
    .await;
    let org = before.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    let db = before.db.clone();
    before.stop().await.expect("stopped");

    let after = spawn_on(db, |c| {
        c.confirm_link_secret = Some(NEW.into());
        c.confirm_link_secret_previous = Some(OLD.into());
    })
    .await;
    let mail = searchable(&wait_eml(&after, 1).await[0]);
    let manage = get_page(&page_link_in(&mail, &after.base, "manage")).await;
    assert_eq!(manage.status(), StatusCode::OK, "the manage link");
    let confirmed = post_confirm(&link_in(&mail, &after.base), true).await;
    assert_eq!(confirmed.status(), StatusCode::OK, "the confirm link");
    let body: serde_json::Value = confirmed.json().await.expect("json");
    assert_eq!(body["appointment_id"], serde_json::json!(booked.appointment_id));
}

on_both_backends!(
    mail_held_up_says_what_happened_meanwhile,
    a_recipient_refused_for_good_is_given_up_at_once,
    an_email_held_up_past_its_links_expiry_goes_without_it,
    the_outbox_is_counted_and_pruned_through_indexes,
    a_message_claimed_again_and_again_with_no_outcome_recorded_ends_dead,
    a_message_tried_as_often_as_a_lowered_limit_allows_ends_dead,
    a_failure_from_an_ended_claim_is_not_recorded,
    a_message_of_a_kind_from_a_newer_release_is_left_for_it,
    a_claim_shares_its_places_between_clinics,
    behind_thousands_due_a_claim_still_takes_each_clinic_in_turn,
    a_clinics_backlog_goes_out_without_waiting_for_polls,
    links_issued_before_a_key_rotation_work_with_the_previous_key,
    the_backlog_counts_what_a_dispatcher_would_claim,
    a_booking_email_arrives_over_smtp_and_its_link_confirms,
    the_message_carries_the_clinic_the_local_time_the_code_and_an_invitation,
    smtp_down_at_booking_time_still_books_and_the_mail_arrives_once_it_is_back,
    a_message_that_keeps_failing_ends_dead_with_its_error,
    two_instances_on_one_database_send_each_message_once,
    dispatchers_claiming_at_once_take_each_message_once,
    the_raw_token_appears_nowhere_in_the_database,
    an_expired_link_is_gone_and_an_unknown_one_is_not_found,
    a_link_cannot_confirm_an_appointment_whose_time_has_come,
    rescheduling_sends_a_fresh_link_and_the_old_one_stops_working,
    a_confirmed_appointment_moved_stays_confirmed_and_is_not_asked_again,
    a_confirmation_superseded_before_delivery_is_not_sent,
    cancelling_queues_a_notice_and_withdraws_the_link,
    a_refused_booking_queues_no_message_and_no_link,
    shutdown_stops_the_dispatcher,
    the_openapi_path_of_the_confirm_page_is_public,
);

async fn a_confirmation_superseded_before_delivery_is_not_sent(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    sink.refuse_with(451);
    let app = spawn_app_with(backend, |c| c.smtp_url = Some(sink.url())).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 5, "10:00")).await.expect("booked");
    wait_outbox(&app, org.id, booked.appointment_id, |j| j.first().is_some_and(|j| j.attempts >= 1)).await;
    org.staff.reschedule(booked.appointment_id, &move_to(days_ahead(6), "11:00")).await.expect("rescheduled");
    sink.accept();
    let mails = sink.wait_for(1, WAIT).await.expect("the notice arrives");
    // The superseded confirmation is dropped (no dead letter), the notice sent.
    let jobs = wait_outbox(&app, org.id, booked.appointment_id, |j| j.len() == 1 && j[0].sent_at.is_some()).await;
    assert_eq!(jobs[0].kind, "reschedule_notice", "{jobs:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "only the notice: {mails:?}");
    let link = link_in(&mails[0].searchable(), &app.base);
    assert_eq!(post_confirm(&link, true).await.status(), StatusCode::OK);
}

/// A dispatcher that claimed messages and died: they come back to another once the lease ends,
/// and are delivered then, once.
async fn a_crashed_dispatchers_messages_come_back_when_its_lease_ends(backend: Backend) {
    let sink = SmtpSink::start().await.expect("SMTP sink");
    // The live dispatcher looks every 1.5 s (it looked once at start), so the "crashed" one below
    // claims the message first.
    let app = spawn_app_with(backend, |c| {
        c.smtp_url = Some(sink.url());
        c.mail_poll_ms = 1_500;
    })
    .await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let booked = org.agent.book(&with_email(provider.id, 4, "10:00")).await.expect("booked");
    // The "crashed" dispatcher: claims with a 2 s lease and never reports back.
    let now = booking_service::store::now();
    let claimed = claim_every(&app.store, now, chrono::Duration::seconds(2), 10, 10).await.jobs;
    let claimed_at = tokio::time::Instant::now();
    let confirmation = |j: &OutboxJob| j.kind == "booking_confirmation" && j.appointment.0 == booked.appointment_id;
    assert!(claimed.iter().any(confirmation), "the crashed dispatcher holds the message: {claimed:?}");
    let mails = sink.wait_for(1, WAIT).await.expect("the mail comes back");
    assert!(claimed_at.elapsed() >= Duration::from_millis(1_900), "not before the lease ended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "{mails:?}");
    let jobs = outbox(&app, org.id, booked.appointment_id).await;
    assert!(jobs[0].sent_at.is_some() && jobs[0].attempts == 0, "{jobs:?}");
}

/// A dispatcher claiming while another holds the oldest messages (PostgreSQL: the other's claim
/// has locked them and not yet committed) takes the next ones its clinics' shares allow, not
/// nothing: under a backlog, instances claiming at once each come away with work.
async fn a_claim_passes_over_messages_another_is_claiming_to_the_next() {
    let app = spawn_app_with(Backend::Postgres, |c| c.mail_poll_ms = 3_600_000).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    for time in ["09:00", "10:00", "11:00", "12:00"] {
        org.agent.book(&with_email(provider.id, 5, time)).await.expect("booked");
    }
    let mut other = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
    let mut claiming = other.begin().await.expect("begin");
    let oldest = "SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY next_attempt_at, id LIMIT 2 FOR UPDATE";
    let held: Vec<Uuid> = sqlx::query_scalar(oldest).fetch_all(&mut *claiming).await.expect("locked");
    assert_eq!(held.len(), 2);
    let now = booking_service::store::now();
    // Two places, and room for the clinic's four in its share.
    let claim = MailClaim { per_org: 4, ..MailClaim::every(now, now + chrono::Duration::minutes(2), 2, 10) };
    let claimed = app.store.claim_mail(&claim).await.expect("claimed").jobs;
    let ids: Vec<Uuid> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 2, "the next two: {claimed:?}");
    assert!(ids.iter().all(|id| !held.contains(id)), "{ids:?} {held:?}");
    claiming.rollback().await.expect("rolled back");
}

/// On PostgreSQL the dispatcher and the link lookup work across organizations, each under a role
/// that reaches exactly what it needs and nothing else.
async fn the_dispatcher_and_link_roles_reach_only_what_they_need() {
    let app = spawn_app(Backend::Postgres).await;
    for _ in 0..2 {
        let org = app.org("UTC").await;
        let provider = org.provider().await;
        org.agent.book(&with_email(provider.id, 4, "10:00")).await.expect("booked");
    }
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.expect("connect");
    async fn run(conn: &mut sqlx::PgConnection, role: &str, sql: &str) -> Result<i64, String> {
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query(&format!("SET LOCAL ROLE {role}")).execute(&mut *tx).await.expect("role");
        let result = if sql.starts_with("SELECT") {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut *tx).await
        } else {
            sqlx::query(sql).execute(&mut *tx).await.map(|r| r.rows_affected() as i64)
        };
        tx.rollback().await.ok();
        result.map_err(|e| sqlstate(Err::<(), _>(e)))
    }
    // The dispatcher: every organization's outbox, its delivery columns only, nothing else.
    let (count, update) = (
        "SELECT count(*) FROM outbox WHERE kind = 'booking_confirmation'",
        "UPDATE outbox SET last_error = 'x' WHERE kind = 'booking_confirmation'",
    );
    assert_eq!(run(&mut conn, "booking_worker", count).await, Ok(2));
    assert_eq!(run(&mut conn, "booking_worker", update).await, Ok(2));
    let claim = "UPDATE outbox SET claims = claims + 1 WHERE kind = 'booking_confirmation'";
    assert_eq!(run(&mut conn, "booking_worker", claim).await, Ok(2));
    for denied in [
        "UPDATE outbox SET payload = '{}'",
        "UPDATE outbox SET org_id = gen_random_uuid()",
        "DELETE FROM outbox",
        "SELECT count(*) FROM appointments",
        "SELECT count(*) FROM providers",
        "SELECT count(*) FROM organizations",
        "SELECT count(*) FROM audit_log",
        "SELECT count(*) FROM idempotency_keys",
        "SELECT count(*) FROM confirmation_tokens",
        "SELECT count(*) FROM manage_links",
    ] {
        let refused = run(&mut conn, "booking_worker", denied).await;
        assert_eq!(refused, Err("42501".into()), "booking_worker may not: {denied}");
    }
    // The link lookup: token hashes of every organization, read-only, nothing else.
    assert_eq!(run(&mut conn, "booking_link", "SELECT count(*) FROM confirmation_tokens").await, Ok(2));
    assert_eq!(run(&mut conn, "booking_link", "SELECT count(*) FROM manage_links").await, Ok(2));
    for denied in [
        "DELETE FROM manage_links",
        "DELETE FROM confirmation_tokens",
        "UPDATE confirmation_tokens SET expires_at = now() + interval '1 year'",
        "SELECT count(*) FROM outbox",
        "SELECT count(*) FROM appointments",
        "SELECT count(*) FROM organizations",
    ] {
        let refused = run(&mut conn, "booking_link", denied).await;
        assert_eq!(refused, Err("42501".into()), "booking_link may not: {denied}");
    }
    // The request role still sees no organization's tokens or messages without its own set.
    for table in ["confirmation_tokens", "manage_links", "outbox"] {
        assert_eq!(run(&mut conn, "booking_app", &format!("SELECT count(*) FROM {table}")).await, Ok(0), "{table}");
    }
    let attributes: Vec<(bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname IN ('booking_worker', 'booking_link')",
    )
    .fetch_all(&mut conn)
    .await
    .expect("roles");
    assert_eq!(attributes, [(false, false), (false, false)]);
}

mod lease {
    use super::*;
    on_both_backends!(a_crashed_dispatchers_messages_come_back_when_its_lease_ends);
}

/// An Ed25519 public key: start-up only needs a valid one.
const ED25519_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAUo+UwzrEUlKXZXRRW01I1pJ6n74Yu/ZBHY584AhGars=
-----END PUBLIC KEY-----
";

fn public_key_config(db: &TestDatabase, dir: &tempfile::TempDir) -> booking_service::config::Config {
    let key = dir.path().join("jwt.pem");
    std::fs::write(&key, ED25519_PUBLIC_KEY).expect("key file");
    let mut config = booking_service::config::Config::with_database(db.url.clone());
    config.jwt_public_key_file = Some(key);
    config.jwt_audience = Some("booking".into());
    config.mail_dir = dir.path().join("mail");
    config
}

/// With a public JWT key there is no shared secret to derive links from: on PostgreSQL, where
/// several instances share the database, a per-host key would break the links another instance
/// issued, so the service asks for CONFIRM_LINK_SECRET.
async fn with_a_public_key_on_postgres_a_shared_link_secret_is_required() {
    let db = TestDatabase::create(Backend::Postgres).await.expect("postgres");
    let dir = tempfile::tempdir().expect("dir");
    let mut config = public_key_config(&db, &dir);
    let err = booking_service::startup::Application::build(config.clone()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("CONFIRM_LINK_SECRET"), "{err:#}");
    // Refused before the database is opened: a misconfigured instance migrates nothing.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let (table,): (Option<String>,) =
        sqlx::query_as("SELECT to_regclass('appointments')::text").fetch_one(&mut conn).await.expect("asked");
    assert_eq!(table, None, "migrated before refusing");
    config.confirm_link_secret = Some("a-shared-link-secret-of-at-least-32-bytes".into());
    assert!(booking_service::startup::Application::build(config).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_public_key_on_sqlite_the_link_secret_is_kept_beside_the_database() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let dir = tempfile::tempdir().expect("dir");
    let app = booking_service::startup::Application::build(public_key_config(&db, &dir))
        .await
        .map_err(|e| format!("{e:#}"))
        .expect("starts");
    let database = db.url.trim_start_matches("sqlite://");
    let beside = std::path::Path::new(database).parent().expect("a folder").join("confirm-link-secret");
    assert!(beside.is_file(), "{}", beside.display());
    drop(app);
}

on_postgres_only!(
    a_claim_passes_over_messages_another_is_claiming_to_the_next,
    the_dispatcher_and_link_roles_reach_only_what_they_need,
    with_a_public_key_on_postgres_a_shared_link_secret_is_required
);
