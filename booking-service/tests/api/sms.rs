//! SMS (docs/API.md, "SMS"): the transport hands messages to Twilio's Messages API (a local stand-in
//! speaking its HTTP) or writes them as files, and `POST /sms/inbound` keeps the opt-outs patients
//! text, only from Twilio when an auth token is set.

use crate::helpers::*;
use booking_service::config::Config;
use booking_service::sms::{Sms, SmsError};
use reqwest::StatusCode;
use shared::api::BookingInput;
use test_kit::twilio::{sign, FakeTwilio, SentSms};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-test-auth-token";
const SENDER: &str = "+15550001000";
const PATIENT: &str = "+15550002000";
const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

fn twilio_config(api_base: &str, token: &str) -> Config {
    let mut config = Config::with_database("sqlite://unused.db");
    config.twilio_account_sid = Some(SID.into());
    config.twilio_auth_token = Some(token.into());
    config.twilio_api_base = api_base.into();
    config
}

#[tokio::test]
async fn an_sms_goes_to_twilio_as_its_form_with_the_accounts_basic_auth() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake Twilio");
    let sms = Sms::from_config(&twilio_config(&twilio.base_url(), TOKEN)).expect("Twilio transport");
    // Characters a form must escape, and a text beyond ASCII.
    let body = "Booked: Mon 09:00 & code K7Q-2P. Manage: https://x.test/manage/abc?x=1+2 — café";
    sms.send(uuid::Uuid::now_v7(), Some(SENDER), PATIENT, body).await.expect("sent");
    assert_eq!(twilio.messages(), [SentSms { to: PATIENT.into(), from: SENDER.into(), body: body.into() }]);
}

#[tokio::test]
async fn twilios_refusals_and_failures_are_errors_naming_the_status() {
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake Twilio");
    let sms = Sms::from_config(&twilio_config(&twilio.base_url(), TOKEN)).expect("Twilio transport");
    let job = uuid::Uuid::now_v7();

    twilio.fail_next(1);
    let err = sms.send(job, Some(SENDER), PATIENT, "hi").await.expect_err("Twilio failed");
    assert!(matches!(err, SmsError::Rejected { status: 500, .. }), "{err:?}");
    assert!(err.to_string().contains("500") && err.to_string().contains("Internal Server Error"), "{err}");
    assert!(!err.is_permanent(), "a 5xx is retried");
    sms.send(job, Some(SENDER), PATIENT, "hi").await.expect("the retry goes through");
    assert_eq!(twilio.messages().len(), 1);

    let wrong = Sms::from_config(&twilio_config(&twilio.base_url(), "another-token")).expect("transport");
    let err = wrong.send(job, Some(SENDER), PATIENT, "hi").await.expect_err("refused");
    assert!(matches!(err, SmsError::Rejected { status: 401, .. }), "{err:?}");
    assert!(!err.to_string().contains("another-token"), "{err}");
    let err = sms.send(job, Some(SENDER), "", "hi").await.expect_err("no recipient");
    assert!(matches!(err, SmsError::Rejected { status: 400, code: Some(21604), .. }) && err.is_permanent(), "{err:?}");
    let err = sms.send(job, Some(SENDER), "5551234", "hi").await.expect_err("not a number");
    assert!(matches!(err, SmsError::Rejected { status: 400, code: Some(21211), .. }) && err.is_permanent(), "{err:?}");
    // Twilio's refusal names the number; the error (logged, kept in last_error) does not.
    assert!(err.to_string().contains("<number>") && !err.to_string().contains("5551234"), "{err}");
    // Another account's path (a wrong TWILIO_ACCOUNT_SID) answers 404: the operator's to fix, retried.
    let mut other_account = twilio_config(&twilio.base_url(), TOKEN);
    other_account.twilio_account_sid = Some("AC0000".into());
    let err = Sms::from_config(&other_account).expect("transport").send(job, Some(SENDER), PATIENT, "hi").await;
    let err = err.expect_err("no such account");
    assert!(matches!(err, SmsError::Rejected { status: 404, .. }) && !err.is_permanent(), "{err:?}");

    // A message without a sender (no clinic sms_from, no SMS_FROM) is not Twilio's: it is a file.
    let dir = tempfile::tempdir().expect("dir");
    let files = Sms::from_config(&Config { sms_dir: dir.path().into(), ..twilio_config(&twilio.base_url(), TOKEN) })
        .expect("Twilio transport");
    files.send(job, None, PATIENT, "no sender").await.expect("written");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("{job}.json"))).expect("the file"))
            .expect("JSON");
    assert_eq!(written, serde_json::json!({ "to": PATIENT, "from": null, "body": "no sender" }));

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("address")
    };
    let gone = Sms::from_config(&twilio_config(&format!("http://{closed}"), TOKEN)).expect("transport");
    let err = gone.send(job, Some(SENDER), PATIENT, "hi").await.expect_err("nobody listens");
    assert!(matches!(err, SmsError::Unreachable(_)), "{err:?}");
    assert!(!err.to_string().contains(SID), "the account stays out of the stored error: {err}");
    assert_eq!(twilio.messages().len(), 1, "nothing else was accepted");
}

#[tokio::test]
async fn without_twilio_each_sms_is_a_json_file_named_after_its_job() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config::with_database("sqlite://unused.db");
    config.sms_dir = dir.path().join("sms");
    let sms = Sms::from_config(&config).expect("files");
    let job = uuid::Uuid::now_v7();
    sms.send(job, Some(SENDER), PATIENT, "first try").await.expect("written");
    sms.send(job, Some(SENDER), PATIENT, "a retry").await.expect("a retry overwrites");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("sms"))
        .expect("created")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [format!("{job}.json")], "one file, no partial one left");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sms").join(format!("{job}.json"))).expect("read"))
            .expect("JSON");
    assert_eq!(written, serde_json::json!({ "to": PATIENT, "from": SENDER, "body": "a retry" }));

    // Without a sender (no SMS_FROM, no clinic sms_from) the file is still written, from null.
    let unsent = uuid::Uuid::now_v7();
    sms.send(unsent, None, PATIENT, "no sender").await.expect("written");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("sms").join(format!("{unsent}.json"))).expect("read"))
            .expect("JSON");
    assert_eq!(written, serde_json::json!({ "to": PATIENT, "from": null, "body": "no sender" }));
}

/// The service with a Twilio account (and `PUBLIC_BASE_URL` when given).
async fn with_twilio(backend: Backend, public_base_url: Option<&str>) -> TestApp {
    spawn_app_with(backend, |c| {
        twilio_account(c);
        c.public_base_url = public_base_url.map(str::to_owned);
    })
    .await
}

fn twilio_account(c: &mut Config) {
    c.twilio_account_sid = Some(SID.into());
    c.twilio_auth_token = Some(TOKEN.into());
    c.sms_from = Some(SENDER.into());
}

/// Twilio's inbound form for a message, with some of the fields it sends besides.
fn inbound<'a>(from: &'a str, to: &'a str, body: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ToCountry", "US"),
        ("SmsMessageSid", "SM11111111111111111111111111111111"),
        ("NumMedia", "0"),
        ("Body", body),
        ("From", from),
        ("To", to),
        ("AccountSid", SID),
        ("ApiVersion", "2010-04-01"),
    ]
}

async fn post_inbound(app: &TestApp, form: &[(&str, &str)], signature: Option<String>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(format!("{}/sms/inbound", app.base)).form(form);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.expect("POST /sms/inbound")
}

/// Posts `form` signed as Twilio signs a request to the service's own address.
async fn post_signed(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    let signature = sign(TOKEN, &format!("{}/sms/inbound", app.base), form);
    post_inbound(app, form, Some(signature)).await
}

async fn opted_out(app: &TestApp, sender: &str, phone: &str) -> bool {
    app.store.sms_opted_out(sender, phone).await.expect("read the opt-outs")
}

#[track_caller]
fn assert_twiml(status: StatusCode, content_type: &str, body: &str) {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(content_type.starts_with("text/xml"), "{content_type}");
    assert_eq!(body, EMPTY_TWIML);
}

async fn answer(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

#[track_caller]
fn assert_error_body(status: StatusCode, body: &str, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    let json: serde_json::Value = serde_json::from_str(body).expect("the API's error JSON");
    assert_eq!(json["success"], false, "{body}");
    assert_eq!(json["error"]["code"], code, "{body}");
}

async fn stop_then_start_from_twilio_opts_the_phone_out_and_back_in(backend: Backend) {
    let app = with_twilio(backend, None).await;
    assert!(!opted_out(&app, SENDER, PATIENT).await);

    let (status, content_type, body) = answer(post_signed(&app, &inbound(PATIENT, SENDER, "STOP")).await).await;
    assert_twiml(status, &content_type, &body);
    assert!(opted_out(&app, SENDER, PATIENT).await, "STOP keeps the opt-out");
    assert!(!opted_out(&app, "+15550009999", PATIENT).await, "only for the sender texted");
    assert!(!opted_out(&app, SENDER, "+15550009999").await, "only for the phone that texted");

    // Twilio forwards whatever number the patient texted, not only SMS_FROM.
    let clinic_number = "+15550003000";
    let (status, ..) = answer(post_signed(&app, &inbound(PATIENT, clinic_number, " unsubscribe\n")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(opted_out(&app, clinic_number, PATIENT).await, "any synonym, any case");
    let (status, ..) = answer(post_signed(&app, &inbound(PATIENT, SENDER, "stop")).await).await;
    assert_eq!(status, StatusCode::OK, "stopping twice is harmless");

    let (status, content_type, body) = answer(post_signed(&app, &inbound(PATIENT, SENDER, " Start ")).await).await;
    assert_twiml(status, &content_type, &body);
    assert!(!opted_out(&app, SENDER, PATIENT).await, "START resumes");
    assert!(opted_out(&app, clinic_number, PATIENT).await, "from that sender only");

    // REVOKE is one of Twilio's own opt-out words: Twilio blocks the pair, so must we.
    post_signed(&app, &inbound(PATIENT, SENDER, "Revoke")).await;
    assert!(opted_out(&app, SENDER, PATIENT).await, "REVOKE stops");
    post_signed(&app, &inbound(PATIENT, SENDER, "yes")).await;
    assert!(!opted_out(&app, SENDER, PATIENT).await, "YES resumes");

    // With Advanced Opt-Out, Twilio's reading decides: a clinic's own keyword, and not the body.
    let mut own_word = inbound(PATIENT, SENDER, "ARRET");
    own_word.push(("OptOutType", "STOP"));
    post_signed(&app, &own_word).await;
    assert!(opted_out(&app, SENDER, PATIENT).await, "OptOutType STOP stops");
    let mut resume = inbound(PATIENT, SENDER, "JE REVIENS");
    resume.push(("OptOutType", "START"));
    post_signed(&app, &resume).await;
    assert!(!opted_out(&app, SENDER, PATIENT).await, "OptOutType START resumes");
    let mut help = inbound(PATIENT, SENDER, "STOP");
    help.push(("OptOutType", "HELP"));
    post_signed(&app, &help).await;
    assert!(!opted_out(&app, SENDER, PATIENT).await, "Twilio read it as HELP: nothing stops");
}

async fn a_missing_or_wrong_signature_is_refused_and_nothing_kept(backend: Backend) {
    // Twilio signs the public URL it was given, whatever address the service listens on.
    let public = "https://clinic.example/booking";
    let app = with_twilio(backend, Some(public)).await;
    let form = inbound(PATIENT, SENDER, "STOP");
    let public_url = format!("{public}/sms/inbound");

    let refused = [
        ("no signature", None),
        ("another account's token", Some(sign("another-token", &public_url, &form))),
        ("signed over the listening address", Some(sign(TOKEN, &format!("{}/sms/inbound", app.base), &form))),
        ("signed over other fields", Some(sign(TOKEN, &public_url, &inbound(PATIENT, SENDER, "START")))),
        ("not base64", Some("%%%".to_owned())),
    ];
    for (case, signature) in refused {
        let (status, _, body) = answer(post_inbound(&app, &form, signature).await).await;
        assert_error_body(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert!(!opted_out(&app, SENDER, PATIENT).await, "{case}: nothing kept");
    }

    let (status, content_type, body) =
        answer(post_inbound(&app, &form, Some(sign(TOKEN, &public_url, &form))).await).await;
    assert_twiml(status, &content_type, &body);
    assert!(opted_out(&app, SENDER, PATIENT).await, "the public URL's signature is Twilio's");
}

async fn numbers_that_are_not_phone_numbers_are_refused(backend: Backend) {
    let app = with_twilio(backend, None).await;
    for (case, form, field) in [
        ("From is a word", inbound("hello", SENDER, "STOP"), "From"),
        ("To is too short", inbound(PATIENT, "+123", "STOP"), "To"),
        ("To is missing", vec![("From", PATIENT), ("Body", "STOP")], "To"),
        ("From is missing", vec![("To", SENDER), ("Body", "STOP")], "From"),
    ] {
        let (status, _, body) = answer(post_signed(&app, &form).await).await;
        assert_error_body(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(body.contains(field), "{case}: {body}");
    }
    assert!(!opted_out(&app, SENDER, PATIENT).await);
}

async fn other_messages_are_acknowledged_and_change_nothing(backend: Backend) {
    let app = with_twilio(backend, None).await;
    for text in ["HELP", "please stop texting me", "STOP!", ""] {
        let (status, content_type, body) = answer(post_signed(&app, &inbound(PATIENT, SENDER, text)).await).await;
        assert_twiml(status, &content_type, &body);
        assert!(!opted_out(&app, SENDER, PATIENT).await, "{text:?} stops nothing");
    }
    post_signed(&app, &inbound(PATIENT, SENDER, "STOP")).await;
    let (status, ..) = answer(post_signed(&app, &inbound(PATIENT, SENDER, "hello again")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(opted_out(&app, SENDER, PATIENT).await, "only START resumes");
}

async fn an_oversized_or_unformed_body_is_refused(backend: Backend) {
    let app = with_twilio(backend, None).await;
    // Up to the 64 KiB every route takes, a message is read.
    let (status, content_type, body) =
        answer(post_signed(&app, &inbound(PATIENT, SENDER, &"x".repeat(32 * 1024))).await).await;
    assert_twiml(status, &content_type, &body);
    let long = "x".repeat(64 * 1024);
    let (status, _, body) = answer(post_signed(&app, &inbound(PATIENT, SENDER, &long)).await).await;
    assert_error_body(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let json = reqwest::Client::new()
        .post(format!("{}/sms/inbound", app.base))
        .json(&serde_json::json!({ "From": PATIENT, "To": SENDER, "Body": "STOP" }))
        .send()
        .await
        .expect("POST");
    let (status, _, body) = answer(json).await;
    assert_error_body(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(!opted_out(&app, SENDER, PATIENT).await);
}

/// Without an auth token nothing can be checked and no SMS leaves the machine (they are files):
/// an opt-out is kept for whichever sender it was texted to, a clinic's `sms_from` as well as
/// `SMS_FROM`, or none configured yet.
async fn without_an_auth_token_an_opt_out_to_any_sender_is_kept(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.sms_from = Some(SENDER.into())).await;
    let clinic_sender = "+15550003000";
    for sender in [SENDER, clinic_sender] {
        let (status, content_type, body) =
            answer(post_inbound(&app, &inbound(PATIENT, sender, "STOP"), None).await).await;
        assert_twiml(status, &content_type, &body);
        assert!(opted_out(&app, sender, PATIENT).await, "{sender}");
    }
    let bare = spawn_app(backend).await;
    let (status, content_type, body) = answer(post_inbound(&bare, &inbound(PATIENT, SENDER, "STOP"), None).await).await;
    assert_twiml(status, &content_type, &body);
    assert!(opted_out(&bare, SENDER, PATIENT).await);
}

/// Without an auth token a message is taken only from this machine: one a proxy relayed (a proxy
/// on this machine connects from loopback for every client on the internet) is refused and keeps
/// nothing, whatever address it names, so no one can keep opt-outs of made-up phones for the
/// service to honour once Twilio is set. A request made here directly is taken.
async fn without_an_auth_token_only_this_machine_may_post(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.sms_from = Some(SENDER.into())).await;
    let post = |header: Option<(&'static str, &'static str)>, phone: &'static str| {
        let request = reqwest::Client::new().post(format!("{}/sms/inbound", app.base));
        let request = match header {
            Some((name, value)) => request.header(name, value),
            None => request,
        };
        request.form(&inbound(phone, SENDER, "STOP")).send()
    };
    let relayed = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-for", "127.0.0.1"),
        ("forwarded", "for=203.0.113.7;proto=https"),
        ("x-real-ip", "203.0.113.7"),
    ];
    for header in relayed {
        let (status, _, body) = answer(post(Some(header), PATIENT).await.expect("POST")).await;
        assert_error_body(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    assert!(!opted_out(&app, SENDER, PATIENT).await, "nothing kept from a proxy");
    let (status, content_type, body) = answer(post(None, PATIENT).await.expect("POST")).await;
    assert_twiml(status, &content_type, &body);
    assert!(opted_out(&app, SENDER, PATIENT).await, "taken from this machine");
}

/// Without an auth token each message taken spends one of the client address's link guesses:
/// past them 429, and nothing kept; signed messages are never limited.
async fn unsigned_messages_are_limited_per_client_address(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.sms_from = Some(SENDER.into());
        c.link_guesses_per_minute = 2;
    })
    .await;
    for patient in ["+15550002001", "+15550002002"] {
        let (status, content_type, body) =
            answer(post_inbound(&app, &inbound(patient, SENDER, "STOP"), None).await).await;
        assert_twiml(status, &content_type, &body);
    }
    let (status, _, body) = answer(post_inbound(&app, &inbound(PATIENT, SENDER, "STOP"), None).await).await;
    assert_error_body(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(!opted_out(&app, SENDER, PATIENT).await);

    let signed = spawn_app_with(backend, |c| {
        twilio_account(c);
        c.link_guesses_per_minute = 1;
    })
    .await;
    for text in ["STOP", "START", "STOP"] {
        let (status, content_type, body) = answer(post_signed(&signed, &inbound(PATIENT, SENDER, text)).await).await;
        assert_twiml(status, &content_type, &body);
    }
    assert!(opted_out(&signed, SENDER, PATIENT).await);
}

/// On a machine with neither Twilio nor any sender number set (the first session's), a booking's
/// SMS is still written as a file, `from` null, not given up.
async fn without_any_sender_the_bookings_sms_is_still_a_file(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let input = BookingInput { patient_phone: Some(PATIENT.into()), ..booking(provider.id, days_ahead(3), "10:00") };
    let booked = org.agent.book(&input).await.expect("booked");
    let folder = app.mail_dir.path().join("sms");
    let read = async || -> Vec<serde_json::Value> {
        let Ok(entries) = std::fs::read_dir(&folder) else { return Vec::new() };
        let files = entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".json"));
        files.filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()).collect()
    };
    let texts = crate::email::wait_until(read, |texts| !texts.is_empty()).await;
    assert_eq!((&texts[0]["to"], &texts[0]["from"]), (&serde_json::json!(PATIENT), &serde_json::Value::Null));
    assert!(texts[0]["body"].as_str().is_some_and(|b| b.contains(&booked.confirmation_code)), "{texts:?}");
}

on_both_backends!(
    without_any_sender_the_bookings_sms_is_still_a_file,
    stop_then_start_from_twilio_opts_the_phone_out_and_back_in,
    a_missing_or_wrong_signature_is_refused_and_nothing_kept,
    numbers_that_are_not_phone_numbers_are_refused,
    other_messages_are_acknowledged_and_change_nothing,
    an_oversized_or_unformed_body_is_refused,
    without_an_auth_token_an_opt_out_to_any_sender_is_kept,
    without_an_auth_token_only_this_machine_may_post,
    unsigned_messages_are_limited_per_client_address,
);
