use crate::helpers::*;
use booking_service::config::Config;
use booking_service::domain::{AppointmentId, OrgId};
use booking_service::startup::Application;
use shared::ApiClient;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The built binary, started in `dir` with only `vars` set, its output piped.
fn service_in(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_booking-service"));
    command
        .current_dir(dir)
        .env_clear()
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the binary in `dir` and reads its output up to the line containing `last`: the
/// process and what it printed.
async fn start_until(dir: &Path, vars: &[(&str, &str)], last: &str) -> (Child, String) {
    let mut vars = vars.to_vec();
    vars.push(("BIND_ADDR", "127.0.0.1:0"));
    let mut child = service_in(dir, &vars).spawn().expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains(last) {
                break;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), read).await.is_err() {
        panic!("no {last:?} within a minute: {printed}");
    }
    // Keep reading what it logs, so it never blocks on (or fails writing to) a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::spawn(async move { while let Ok(Some(_)) = errors.next_line().await {} });
    (child, printed)
}

/// The base URL the banner names.
fn listening_on(banner: &str) -> String {
    banner.split_whitespace().skip_while(|w| *w != "listening").nth(2).expect("the banner names the address").to_owned()
}

/// Starts the binary in dev mode in `dir` and reads its banner: the process, its base URL, the
/// banner's text.
async fn start_dev_mode(dir: &Path, vars: &[(&str, &str)]) -> (Child, String, String) {
    let (child, banner) = start_until(dir, vars, "/openapi.json").await;
    (child, listening_on(&banner), banner)
}

fn printed_token(banner: &str, role: &str) -> String {
    let prefix = format!("export {role}_TOKEN=");
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {role} token in {banner}"))
        .to_owned()
}

fn demo_organization(banner: &str) -> String {
    banner.split("Demo organization: ").nth(1).and_then(|r| r.split_whitespace().next()).expect("demo org").to_owned()
}

#[tokio::test]
async fn dev_mode_on_the_default_database_and_a_loopback_address_prints_working_tokens() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut child, base, banner) = start_dev_mode(dir.path(), &[]).await;
    assert!(banner.contains("DEV MODE"), "{banner}");
    assert!(dir.path().join("data/dev-jwt-secret").exists(), "the generated key is kept");
    assert!(dir.path().join("data/booking.db").exists(), "on the default database");
    for role in ["PLATFORM", "ADMIN", "STAFF", "AGENT"] {
        printed_token(&banner, role);
    }
    let admin = ApiClient::new(base.clone()).with_token(printed_token(&banner, "ADMIN"));
    let provider = admin
        .create_provider(&shared::api::CreateProvider { name: "Dr. Dev".into(), ..Default::default() })
        .await
        .expect("the admin token works");
    let agent = ApiClient::new(base).with_token(printed_token(&banner, "AGENT"));
    agent.book(&booking(provider.id, days_ahead(2), "10:00")).await.expect("the agent token books");
    child.kill().await.expect("stopped");

    // A restart keeps the key and the demo organization, so earlier tokens still work.
    let (mut again, base_again, banner_again) = start_dev_mode(dir.path(), &[]).await;
    assert_eq!(demo_organization(&banner_again), demo_organization(&banner));
    let earlier = ApiClient::new(base_again).with_token(printed_token(&banner, "ADMIN"));
    assert_eq!(earlier.providers().await.expect("the earlier admin token still works").len(), 1);
    again.kill().await.expect("stopped");
}

#[tokio::test]
async fn dev_mode_is_refused_for_a_sqlite_url_other_than_the_default() {
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let err = Application::build(Config::with_database(db.url.clone())).await.err().expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("JWT_SECRET") && message.contains("default database"), "{message}");
}

#[tokio::test]
async fn dev_mode_is_refused_on_an_address_that_is_not_loopback() {
    let dir = tempfile::tempdir().expect("dir");
    let child = service_in(dir.path(), &[("BIND_ADDR", "0.0.0.0:0")]).spawn().expect("the binary starts");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("it stops by itself instead of serving")
        .expect("output");
    assert!(!output.status.success(), "it must refuse to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET") && stderr.contains("BIND_ADDR is 0.0.0.0:0"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("TOKEN="), "no token is printed");
    assert!(!dir.path().join("data").exists(), "a refused start leaves nothing behind");
}

/// SIGTERM with a client holding half a request header and one that sent nothing: the process
/// exits within its grace instead of waiting for them.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_exits_within_the_grace_with_slow_clients_connected() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("dir");
    let slow = [("SHUTDOWN_GRACE_SECS", "1"), ("HEADER_READ_TIMEOUT_SECS", "120"), ("IDLE_TIMEOUT_SECS", "120")];
    let (mut child, base, _) = start_dev_mode(dir.path(), &slow).await;
    let address = base.trim_start_matches("http://").to_owned();
    let mut half_header = tokio::net::TcpStream::connect(&address).await.expect("connect");
    half_header.write_all(b"GET /healthz HTTP/1.1\r\nHost: cli").await.expect("half a header");
    let _silent = tokio::net::TcpStream::connect(&address).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.id().expect("running").to_string();
    let started = std::time::Instant::now();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the process exited despite its slow clients")
        .expect("status");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(4), "exit took {:?} with a grace of 1 s", started.elapsed());
}

#[tokio::test]
async fn postgres_without_a_key_refuses_to_start() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let err = Application::build(Config::with_database(db.url.clone())).await.err().expect("refused");
    assert!(format!("{err:#}").contains("JWT_SECRET"), "{err:#}");
}

/// Settings that need no database are refused before it is opened: the SQLite file a refused
/// start names is never created.
#[tokio::test]
async fn bad_settings_are_refused_before_the_database_is_created() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("data/booking.db");
    let refused = |adjust: fn(&mut Config)| {
        let mut config = Config::with_database(format!("sqlite://{}", file.display()));
        config.jwt_secret = Some(SECRET.into());
        adjust(&mut config);
        async move { format!("{:#}", Application::build(config).await.err().expect("refused")) }
    };
    let short = refused(|c| c.jwt_secret = Some("short".into())).await;
    assert!(short.contains("JWT_SECRET must be at least 32 bytes"), "{short}");
    let algorithm = refused(|c| c.jwt_algorithm = Some("RS256".into())).await;
    assert!(algorithm.contains("JWT_ALGORITHM RS256 does not go with JWT_SECRET"), "{algorithm}");
    let from = refused(|c| c.mail_from = "not an address".into()).await;
    assert!(from.contains("MAIL_FROM"), "{from}");
    let bind = refused(|c| c.bind_addr = "nonsense".into()).await;
    assert!(bind.contains("cannot listen on nonsense"), "{bind}");
    let token = refused(|c| c.metrics_token = Some("short".into())).await;
    assert!(token.contains("METRICS_TOKEN"), "{token}");
    let link = refused(|c| c.confirm_link_secret = Some("short".into())).await;
    assert!(link.contains("CONFIRM_LINK_SECRET must be at least 32 bytes"), "{link}");
    let base = refused(|c| c.public_base_url = Some("not a url".into())).await;
    assert!(base.contains("PUBLIC_BASE_URL"), "{base}");
    let schemeless = refused(|c| c.public_base_url = Some("clinic.example:8443".into())).await;
    assert!(
        schemeless.contains("PUBLIC_BASE_URL clinic.example:8443 is not an http:// or https:// URL"),
        "{schemeless}"
    );
    let query = refused(|c| c.public_base_url = Some("https://clinic.example/?x=1".into())).await;
    assert!(query.contains("has a query or a fragment"), "{query}");
    let fragment = refused(|c| c.public_base_url = Some("https://clinic.example/#".into())).await;
    assert!(fragment.contains("has a query or a fragment"), "{fragment}");
    assert!(!file.exists() && !dir.path().join("data").exists(), "a refused start creates nothing");
}

/// A setting given empty, as a deployment template writes one whose value was left out: one whose
/// absence leaves a check or a default as it is is unset (an empty `JWT_ISSUER` does not refuse
/// every token, an empty `RUST_LOG` does not silence the logs, an empty `PUBLIC_BASE_URL` is the
/// default); one whose absence would weaken the service stops the start, naming it.
#[tokio::test]
async fn empty_settings_count_as_unset() {
    let dir = tempfile::tempdir().expect("dir");
    let database = format!("sqlite://{}", dir.path().join("booking.db").display());
    let mut vars = vec![("DATABASE_URL", database.as_str()), ("JWT_SECRET", SECRET)];
    for unset in [
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_ALGORITHM",
        "JWT_PUBLIC_KEY_FILE",
        "SMS_FROM",
        "PUBLIC_BASE_URL",
        "CONFIRM_LINK_SECRET_PREVIOUS",
        "METRICS_TOKEN_PREVIOUS",
        "RUST_LOG",
    ] {
        vars.push((unset, ""));
    }
    for refused in [
        "SMTP_URL",
        "TWILIO_AUTH_TOKEN",
        "CONFIRM_LINK_SECRET",
        "METRICS_TOKEN",
        "VAPI_HMAC_SECRET",
        "JWT_SECRET",
        "MAIL_DIR",
        "SMS_DIR",
    ] {
        let mut with = vars.clone();
        with.retain(|(name, _)| *name != refused);
        with.push((refused, " "));
        // Were it not refused, the service would start and serve: the wait ends it.
        let ran = tokio::time::timeout(Duration::from_secs(30), service_in(dir.path(), &with).output()).await;
        let out = ran.unwrap_or_else(|_| panic!("{refused} set empty did not stop the start")).expect("the binary ran");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{refused}: {said}");
        assert!(said.contains(&format!("{refused} is set but empty")), "{refused}: {said}");
    }
    let (mut child, printed) = start_until(dir.path(), &vars, "SMS:").await;
    let base = listening_on(&printed);
    assert!(printed.contains("starting"), "the start is logged: {printed}");
    assert!(printed.contains(&format!("(links to {base}/confirm/…)")), "{printed}");
    let platform = ApiClient::new(base).with_token(token(shared::auth::Role::Platform, None));
    let org = platform
        .create_organization(&shared::api::CreateOrganization { name: "Blank Clinic".into(), timezone: "UTC".into() })
        .await
        .expect("a token without iss or aud is taken");
    assert_eq!(org.name, "Blank Clinic");
    child.kill().await.expect("stopped");
}

/// With `LOG_JSON` every line on stdout is JSON, the banner too, which no `RUST_LOG` hides.
#[tokio::test]
async fn json_logs_print_only_json_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let database = format!("sqlite://{}", dir.path().join("booking.db").display());
    // A filter that would hide the banner were it a log line.
    let vars =
        [("DATABASE_URL", database.as_str()), ("JWT_SECRET", SECRET), ("LOG_JSON", "true"), ("RUST_LOG", "warn")];
    let (mut child, printed) = start_until(dir.path(), &vars, "listening").await;
    for line in printed.lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not JSON: {line}");
    }
    assert!(printed.contains("booking-service listening on http://127.0.0.1:"), "{printed}");
    child.kill().await.expect("stopped");
}

/// With JWT_SECRET set it is the only key accepted: a public key file set besides is not read
/// (here it does not exist), nor the algorithm pinned for it, and the start goes on.
#[tokio::test]
async fn with_jwt_secret_set_a_public_key_file_is_not_read() {
    let dir = tempfile::tempdir().expect("dir");
    for algorithm in [None, Some("RS256")] {
        let mut config = Config::with_database(format!("sqlite://{}", dir.path().join("booking.db").display()));
        config.jwt_secret = Some(SECRET.into());
        config.jwt_public_key_file = Some("/nonexistent.pem".into());
        config.jwt_algorithm = algorithm.map(str::to_owned);
        let started = Application::build(config).await;
        assert!(started.is_ok(), "{algorithm:?}: {:#}", started.err().expect("the error"));
    }
}

/// A booking held up by the database when shutdown begins still gets its answer.
async fn shutdown_finishes_requests_in_flight(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    // Hold the database's write lock so the booking has to wait.
    let (blocker, locked) =
        hold_the_write_lock(backend, app.db.url.clone(), "appointments", Duration::from_millis(1500));
    locked.await.expect("the lock is taken");
    let agent = org.agent.clone();
    let input = booking(provider.id, days_ahead(3), "10:00");
    let in_flight = tokio::spawn(async move { agent.book(&input).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the booking is waiting for the lock");
    let stopped = tokio::spawn(app.stop());
    let answer = in_flight.await.expect("task");
    answer.expect("the in-flight booking was answered, not cut off");
    stopped.await.expect("task").expect("the server stopped cleanly");
    blocker.await.expect("blocker");
}

/// Once stopped, the mail dispatcher waits for no claim (held up by the database here): a claim
/// answered late in the grace would have its messages cut mid-send at its end, to go again once
/// their lease ended.
async fn shutdown_waits_for_no_claim_of_mail(backend: Backend) {
    let app = spawn_app(backend).await;
    let second = app.another_instance_with(|c| c.shutdown_grace_secs = 8).await;
    let (blocker, locked) = hold_the_write_lock(backend, app.db.url.clone(), "outbox", Duration::from_secs(10));
    locked.await.expect("the lock is taken");
    // Its dispatcher claims every 50 ms: a claim is now waiting on the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = tokio::time::Instant::now();
    second.stop().await.expect("the server stopped cleanly");
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(4), "the stop waited {took:?} for a claim");
    blocker.await.expect("blocker");
}

/// A message still being sent as the grace ends is recorded as a try before it does, so that it
/// goes again after its backoff (from another instance, or this one restarted), not cut with
/// nothing recorded, to wait for its claim's lease to end.
async fn a_message_still_being_sent_when_the_grace_ends_is_recorded_as_a_try(backend: Backend) {
    // An endpoint that takes the message and answers long after the grace.
    let slow = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        reqwest::StatusCode::NO_CONTENT
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, slow).await });
    let app = spawn_app_with(backend, |c| (c.webhook_allow_private, c.shutdown_grace_secs) = (true, 4)).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let hook = shared::api::CreateWebhook { url, events: None };
    org.admin.create_webhook(&hook).await.expect("made");
    let booked = org.staff.book(&booking(provider.id, days_ahead(3), "10:00")).await.expect("booked");
    // The database outlives the service (the last holder of it drops it).
    let (_db, store) = (app.db.clone(), app.store.clone());
    let (org_id, id) = (OrgId(org.id), AppointmentId(booked.appointment_id));
    let webhook = async || {
        let all = store.outbox(org_id, id).await.expect("outbox");
        all.into_iter().find(|m| m.kind == "webhook").expect("the webhook's message")
    };
    let claimed = tokio::time::Instant::now();
    while webhook().await.claims == 0 {
        assert!(claimed.elapsed() < Duration::from_secs(10), "the message was never claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = tokio::time::Instant::now();
    app.stop().await.expect("the server stopped cleanly");
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "the stop took {took:?}, past its grace");
    let tried = webhook().await;
    assert_eq!((tried.attempts, tried.sent_at, tried.dead_at), (1, None, None), "{tried:?}");
    assert_eq!(tried.last_error.as_deref(), Some("the service stopped while it was being sent"));
}

on_both_backends!(
    shutdown_finishes_requests_in_flight,
    shutdown_waits_for_no_claim_of_mail,
    a_message_still_being_sent_when_the_grace_ends_is_recorded_as_a_try
);

/// A key pair made for this test only.
const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHNnKVqYRVb77lcB3RnL3N50x1jFAviEUYLqOzocLMLU\n-----END PRIVATE KEY-----\n";
const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAf7rewTjknPcFMJK7wzGLmN/5MEqMfwW9HMudgWms640=\n-----END PUBLIC KEY-----\n";

#[tokio::test]
async fn a_public_key_needs_an_audience_pins_its_algorithm_and_issuer_and_audience_are_enforced() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let db = TestDatabase::create(Backend::Sqlite).await.expect("sqlite");
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("jwt.pub");
    std::fs::write(&key_file, ED25519_PUBLIC).expect("write key");
    let mut config = Config::with_database(db.url.clone());
    config.jwt_public_key_file = Some(key_file);
    config.jwt_issuer = Some("https://auth.clinic.example".into());
    // An identity provider's key signs other services' tokens too: one without an audience to
    // check does not start.
    let unbound = Application::build(config.clone()).await.err().expect("refused without JWT_AUDIENCE");
    assert!(format!("{unbound:#}").contains("JWT_AUDIENCE must be set"), "{unbound:#}");
    config.jwt_audience = Some("booking".into());
    let app = Application::build(config).await.expect("starts with a public key");
    assert!(app.dev_mode().is_none());
    let base = app.base_url();
    tokio::spawn(app.run_until(std::future::pending()));

    let signing = EncodingKey::from_ed_pem(ED25519_PRIVATE.as_bytes()).expect("private key");
    let claims = |iss: &str, aud: &str| serde_json::json!({"sub": "ops", "role": "platform", "exp": chrono::Utc::now().timestamp() + 600, "iss": iss, "aud": aud});
    let good = encode(&Header::new(Algorithm::EdDSA), &claims("https://auth.clinic.example", "booking"), &signing)
        .expect("sign");
    let client = ApiClient::new(base.clone());
    let org = client
        .with_token(good)
        .create_organization(&shared::api::CreateOrganization { name: "Keyed Clinic".into(), timezone: "UTC".into() })
        .await
        .expect("an EdDSA token with the right issuer and audience works");
    assert_eq!(org.name, "Keyed Clinic");
    for (case, token, said) in [
        (
            "foreign issuer",
            encode(&Header::new(Algorithm::EdDSA), &claims("https://evil.example", "booking"), &signing).expect("sign"),
            "JWT_ISSUER",
        ),
        (
            "foreign audience",
            encode(&Header::new(Algorithm::EdDSA), &claims("https://auth.clinic.example", "other"), &signing)
                .expect("sign"),
            "JWT_AUDIENCE",
        ),
        (
            "HS256 signed with the public key as secret",
            encode(
                &Header::new(Algorithm::HS256),
                &claims("https://auth.clinic.example", "booking"),
                &EncodingKey::from_secret(ED25519_PUBLIC.as_bytes()),
            )
            .expect("sign"),
            "algorithm not accepted",
        ),
    ] {
        let err = client.with_token(token).providers().await.expect_err(case);
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{case}");
        assert!(err.to_string().contains(said), "{case}: {err}");
    }
}
