//! The orchestrator against the real service in-process on both databases (it must say GO), and
//! against deliberately broken variants (it must say NO-GO and name why). The broken variants are
//! the real service behind a proxy that breaks one promise.

mod common;
use common::json_report;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use clap::Parser;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_kit::{postgres_admin_url, spawn_app, spawn_app_with, token, Backend, TestApp, TestDatabase, SECRET};
use uat_orchestrator::cli::Cli;
use uat_orchestrator::reporter::Silent;
use uat_orchestrator::Exit;

fn cli(args: &[&str], reports: &Path) -> Cli {
    let mut all = vec!["uat-orchestrator", "--report-dir", reports.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Cli::parse_from(all)
}

fn reasons(report: &Value) -> String {
    report["verdict"]["reasons"].to_string()
}

async fn passes_in_process(backend: Backend) {
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create(Backend::Postgres).await.expect("database")),
    };
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let mut args = vec!["--scenario", "all", "--junit", junit.to_str().expect("path")];
    if let Some(db) = &db {
        args.extend(["--database-url", db.url.as_str()]);
    }
    let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::Go, "{}", reasons(&report));
    assert_eq!(report["verdict"]["decision"], "GO");
    let scenarios: Vec<&str> =
        report["scenarios"].as_array().expect("scenarios").iter().map(|s| s["name"].as_str().expect("name")).collect();
    assert_eq!(scenarios, ["basic", "concurrent", "isolation", "error-handling", "email"]);
    for criterion in report["verdict"]["criteria"].as_array().expect("criteria") {
        assert!(
            criterion["name"].is_string() && criterion["threshold"].is_string() && criterion["measured"].is_string()
        );
        if criterion["name"] == "user satisfaction" {
            assert!(criterion["passed"].is_null(), "pending without --feedback");
        } else {
            assert_eq!(criterion["passed"], true, "{criterion}");
        }
    }
    assert!(report["latency"]["p95_ms"].as_f64().is_some_and(|p| p > 0.0));
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert_eq!(xml.matches("<testcase ").count(), 5, "{xml}");
    assert!(!xml.contains("<failure") && !xml.contains("<error"), "{xml}");
    let html = std::fs::read_dir(reports.path())
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "html"))
        .map(|e| std::fs::read_to_string(e.path()).expect("html"))
        .expect("an HTML report");
    assert!(html.contains("GO") && html.contains("<svg") && html.contains("user satisfaction"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_against_the_service_on_sqlite() {
    passes_in_process(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_against_the_service_on_postgres() {
    if postgres_admin_url().is_some() {
        passes_in_process(Backend::Postgres).await;
    }
}

/// The optional scenario: the booking SMS and webhook, both reminders when due (about a minute
/// of waiting), STOP and START, against the run's own Twilio stand-in and webhook endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifications_scenario_passes_in_process() {
    let reports = tempfile::tempdir().expect("dir");
    let outcome = uat_orchestrator::run(cli(&["--scenario", "notifications"], reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::Go, "{}", reasons(&report));
    let scenario = &report["scenarios"][0];
    assert_eq!((scenario["name"].as_str(), scenario["passed"].as_bool()), (Some("notifications"), Some(true)));
    let steps = scenario["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 10, "{steps:?}");
    assert!(steps.iter().all(|s| s["passed"] == true && s["skipped"] == false), "{steps:?}");
}

/// Against a deployed service the run's receivers are not the service's: the scenario says so and
/// fails rather than passing unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifications_scenario_needs_the_in_process_service() {
    let app = spawn_app(Backend::Sqlite).await;
    let reports = tempfile::tempdir().expect("dir");
    let args = ["--target", &app.base, "--jwt-secret", SECRET, "--scenario", "notifications"];
    let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::NoGo, "{}", reasons(&report));
    let step = &report["scenarios"][0]["steps"][0];
    assert!(step["error"] == true && step["measured"].as_str().is_some_and(|m| m.contains("in-process")), "{step}");
}

#[tokio::test]
async fn a_target_that_is_down_cannot_be_judged() {
    let reports = tempfile::tempdir().expect("dir");
    let outcome = uat_orchestrator::run(cli(
        &["--target", "http://127.0.0.1:9", "--jwt-secret", SECRET, "--scenario", "basic"],
        reports.path(),
    ))
    .await;
    assert_eq!(outcome, Exit::CouldNotJudge);
    let no_secret =
        uat_orchestrator::run(cli(&["--target", "http://127.0.0.1:9", "--scenario", "basic"], reports.path())).await;
    assert_eq!(no_secret, Exit::CouldNotJudge);
}

#[tokio::test]
async fn satisfaction_below_four_is_no_go_and_above_is_assessed() {
    let ratings = tempfile::tempdir().expect("dir");
    let reports = tempfile::tempdir().expect("dir");
    let low = ratings.path().join("low.json");
    std::fs::write(&low, "[3, 4, 3.5]").expect("write");
    // Silent: the verdict and the reports do not depend on what the run prints.
    let outcome = uat_orchestrator::run_with(
        cli(&["--scenario", "basic", "--feedback", low.to_str().expect("path")], reports.path()),
        &Silent,
    )
    .await;
    assert_eq!(outcome, Exit::NoGo);
    assert!(reasons(&json_report(reports.path())).contains("user satisfaction"));

    let reports = tempfile::tempdir().expect("dir");
    let high = ratings.path().join("high.json");
    std::fs::write(&high, "[5, 4, 4.5]").expect("write");
    let outcome = uat_orchestrator::run(cli(
        &["--scenario", "basic", "--feedback", high.to_str().expect("path")],
        reports.path(),
    ))
    .await;
    assert_eq!(outcome, Exit::Go);
    let bad = ratings.path().join("bad.json");
    std::fs::write(&bad, "[9]").expect("write");
    let outcome =
        uat_orchestrator::run(cli(&["--scenario", "basic", "--feedback", bad.to_str().expect("path")], reports.path()))
            .await;
    assert_eq!(outcome, Exit::CouldNotJudge);
}

/// How a broken variant breaks the service behind it.
#[derive(Clone, Copy)]
enum Breakage {
    /// Tells every caller the slot is theirs.
    DoubleBooks,
    /// Serves a 404'd appointment with credentials it saw earlier (a cache keyed without tenant).
    LeaksAcrossClinics,
    /// Takes 1.2 s for every booking.
    AnswersSlowly,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    breakage: Breakage,
    http: reqwest::Client,
    seen_token: Arc<Mutex<Option<String>>>,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let send = |auth: Option<String>| {
        let mut req = proxy.http.request(parts.method.clone(), format!("{}{path}", proxy.upstream)).body(bytes.clone());
        for (name, value) in &parts.headers {
            if name != "host" && name != "authorization" && name != "content-length" {
                req = req.header(name, value);
            }
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if matches!(proxy.breakage, Breakage::AnswersSlowly) && path.starts_with("/api/vapi/") {
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let Ok(mut response) = send(auth.clone()).await else {
        return Response::builder().status(502).body(Body::empty()).expect("response");
    };
    if matches!(proxy.breakage, Breakage::LeaksAcrossClinics) && path.starts_with("/api/appointments/") {
        if response.status() == 200 {
            *proxy.seen_token.lock().expect("lock") = auth;
        } else if response.status() == 404 {
            let remembered = proxy.seen_token.lock().expect("lock").clone();
            if let Ok(leaked) = send(remembered).await {
                response = leaked;
            }
        }
    }
    let status = response.status();
    let mut body = response.bytes().await.unwrap_or_default().to_vec();
    if matches!(proxy.breakage, Breakage::DoubleBooks) && path == "/api/vapi/tools" {
        if let Ok(mut v) = serde_json::from_slice::<Value>(&body) {
            for r in v["results"].as_array_mut().into_iter().flatten() {
                if r["error"].as_str().is_some_and(|e| e.contains("isn't free")) {
                    r["result"] = "You're booked with Dr. Smith. Your confirmation code is A-A-A-A-A-A.".into();
                    r.as_object_mut().expect("object").remove("error");
                }
            }
            body = serde_json::to_vec(&v).expect("json");
        }
    }
    Response::builder()
        .status(status.as_u16())
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("response")
}

/// The real service, and a broken variant of it in front.
async fn broken_service(breakage: Breakage) -> (String, TestApp) {
    let app = spawn_app(Backend::Sqlite).await;
    let proxy = Proxy {
        upstream: app.base.clone(),
        breakage,
        http: reqwest::Client::new(),
        seen_token: Arc::new(Mutex::new(None)),
    };
    let router = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), app)
}

async fn judged_no_go(breakage: Breakage, scenario: &str, reason: &str) {
    let (url, _app) = broken_service(breakage).await;
    let reports = tempfile::tempdir().expect("dir");
    let outcome =
        uat_orchestrator::run(cli(&["--target", &url, "--jwt-secret", SECRET, "--scenario", scenario], reports.path()))
            .await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::NoGo, "{}", reasons(&report));
    assert_eq!(report["verdict"]["decision"], "NO-GO");
    assert!(reasons(&report).contains(reason), "the reason names {reason:?}: {}", reasons(&report));
    let failed = report["scenarios"][0]["passed"].as_bool();
    assert_eq!(failed, Some(false), "the {scenario} scenario itself fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_double_books_is_no_go() {
    judged_no_go(Breakage::DoubleBooks, "concurrent", "lost or duplicate booking").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_leaks_across_clinics_is_no_go() {
    judged_no_go(Breakage::LeaksAcrossClinics, "isolation", "cross-clinic leak").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_answers_slowly_is_no_go() {
    judged_no_go(Breakage::AnswersSlowly, "concurrent", "latency over 1 s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_sends_mail_is_no_go() {
    // The real service, its mail pointed at a port where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.smtp_url = Some(format!("smtp://{dead}"));
    })
    .await;
    let reports = tempfile::tempdir().expect("dir");
    let args = [
        "--target",
        &app.base,
        "--jwt-secret",
        SECRET,
        "--scenario",
        "email",
        "--smtp-listen",
        "127.0.0.1:0",
        "--email-timeout-secs",
        "3",
    ];
    let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::NoGo, "{}", reasons(&report));
    assert!(reasons(&report).contains("email delivered"), "{}", reasons(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_tokens_of_two_existing_clinics_it_runs_without_the_key_and_tidies_up() {
    use shared::Role;
    // The mail of the service goes to the port the run's sink will listen on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.mail_poll_ms = 200;
    })
    .await;
    let mut orgs = Vec::new();
    for name in ["Clinic One", "Clinic Two"] {
        orgs.push(app.org_named(name, "Europe/Paris").await);
    }
    // Each clinic's own work, which the run must neither count as its own nor touch.
    let mut own = Vec::new();
    for org in &orgs {
        let provider =
            org.provider_with(shared::api::CreateProvider { name: "Dr. Own".into(), ..Default::default() }).await;
        let date = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive();
        let booking = shared::api::BookingInput {
            provider_id: Some(provider.id),
            appointment_date: Some(date.format("%Y-%m-%d").to_string()),
            appointment_time: Some("10:00".into()),
            patient_name: Some("Ada Lovelace".into()),
            ..Default::default()
        };
        own.push((provider.id, org.staff.book(&booking).await.expect("the clinic's own booking").appointment_id));
    }
    let tokens: Vec<[String; 3]> = orgs
        .iter()
        .map(|o| [token(Role::Admin, Some(o.id)), token(Role::Staff, Some(o.id)), token(Role::Agent, Some(o.id))])
        .collect();
    let reports = tempfile::tempdir().expect("dir");
    let smtp = format!("127.0.0.1:{port}");
    let args = [
        "--target",
        &app.base,
        "--scenario",
        "all",
        "--smtp-listen",
        &smtp,
        "--admin-token",
        &tokens[0][0],
        "--staff-token",
        &tokens[0][1],
        "--agent-token",
        &tokens[0][2],
        "--other-admin-token",
        &tokens[1][0],
        "--other-staff-token",
        &tokens[1][1],
        "--other-agent-token",
        &tokens[1][2],
    ];
    let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::Go, "{}", reasons(&report));
    // What the run added is gone from the clinics' working set (providers inactive, bookings
    // cancelled); what the clinics had stands.
    for (org, (own_provider, own_booking)) in orgs.iter().zip(own) {
        let providers = org.admin.providers().await.expect("providers");
        let (own_ones, run_ones): (Vec<_>, Vec<_>) = providers.into_iter().partition(|p| p.id == own_provider);
        assert!(own_ones.iter().all(|p| p.active) && own_ones.len() == 1, "{}: {own_ones:?}", org.id);
        assert!(!run_ones.is_empty() && run_ones.iter().all(|p| !p.active), "{}: {run_ones:?}", org.id);
        let left = org.staff.appointments(&Default::default()).await.expect("appointments");
        let (own_ones, run_ones): (Vec<_>, Vec<_>) = left.into_iter().partition(|a| a.id == own_booking);
        assert_eq!(own_ones.iter().map(|a| a.status).collect::<Vec<_>>(), [shared::api::AppointmentStatus::Pending]);
        assert!(
            run_ones.iter().all(|a| a.status == shared::api::AppointmentStatus::Cancelled),
            "{}: {run_ones:?}",
            org.id
        );
    }
}
