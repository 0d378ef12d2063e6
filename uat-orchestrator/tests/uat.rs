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
use std::sync::atomic::{AtomicUsize, Ordering};
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
    assert!(report["version"].is_string(), "{}", report["version"]);
    assert_eq!(report["left_behind"], serde_json::json!([]), "it tidied up");
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
    assert_eq!(xml.matches("<testcase ").count(), 6, "five scenarios and the verdict: {xml}");
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

/// Against a deployed service the run's receivers are not the service's: asking for the scenario
/// there is the run's configuration, as the email scenario without a mail sink is: it cannot
/// judge, and says so, rather than failing (or passing) unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifications_scenario_needs_the_in_process_service() {
    let app = spawn_app(Backend::Sqlite).await;
    let reports = tempfile::tempdir().expect("dir");
    let args = ["--target", &app.base, "--jwt-secret", SECRET, "--scenario", "notifications"];
    let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::CouldNotJudge, "{}", reasons(&report));
    assert!(reasons(&report).contains("runs only in-process"), "{}", reasons(&report));
}

/// A credential without --target means a target was meant (its variable lost, say): the run
/// refuses to pass in-process in its place, and with --junit the file says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_without_a_target_cannot_be_judged() {
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let junit_arg = junit.to_str().expect("path");
    let args = ["--jwt-secret", SECRET, "--scenario", "basic", "--junit", junit_arg];
    assert_eq!(uat_orchestrator::run(cli(&args, reports.path())).await, Exit::CouldNotJudge);
    let report = json_report(reports.path());
    assert!(reasons(&report).contains("--jwt-secret (UAT_JWT_SECRET) is given without --target"), "{report}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("without --target"), "{xml}");
}

/// A command line the parser refuses still replaces the JUnit file it names, which an earlier
/// run's passing file would otherwise stand in as this run's.
#[test]
fn a_refused_command_line_leaves_no_earlier_junit_standing() {
    let dir = tempfile::tempdir().expect("dir");
    let junit = dir.path().join("junit.xml");
    std::fs::write(&junit, "<testsuites tests=\"1\" failures=\"0\"/>").expect("an earlier file");
    let ran = std::process::Command::new(env!("CARGO_BIN_EXE_uat-orchestrator"))
        .args(["--junit", junit.to_str().expect("utf-8 path"), "--concurrency", "1"])
        .output()
        .expect("the binary ran");
    assert_eq!(ran.status.code(), Some(2), "{}", String::from_utf8_lossy(&ran.stderr));
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("could not judge") && xml.contains("--concurrency"), "{xml}");
}

/// From the run's start its JUnit file says it could not judge, the run not finished (an earlier
/// run's file is gone at once): a run killed outright leaves that. Here the target takes the
/// connection and never answers, so the run is seen mid-way; it then cannot judge, within the
/// readiness check's ten seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_junit_file_says_could_not_judge_until_the_run_replaces_it() {
    let (url, held) = test_kit::silent_server().await;
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    std::fs::write(&junit, "<testsuites tests=\"1\" failures=\"0\"/>").expect("an earlier file");
    let junit_arg = junit.to_str().expect("path").to_owned();
    let args = ["--target", &url, "--jwt-secret", SECRET, "--scenario", "basic", "--junit", &junit_arg];
    let started = std::time::Instant::now();
    let midway = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        std::fs::read_to_string(&junit).expect("junit")
    };
    let (outcome, midway) = tokio::join!(uat_orchestrator::run(cli(&args, reports.path())), midway);
    assert!(midway.contains("the run did not finish"), "{midway}");
    assert_eq!(outcome, Exit::CouldNotJudge);
    assert!(started.elapsed() < Duration::from_secs(20), "waited {:?}", started.elapsed());
    let after = std::fs::read_to_string(&junit).expect("junit");
    assert!(after.contains("did not answer within"), "{after}");
    held.abort();
}

/// A URL that answers 200 with something other than the service (a web site, a proxy's page) is
/// not a release failing every scenario: the run cannot judge, and asks whether it is the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_not_the_booking_service_cannot_be_judged() {
    use axum::routing::{any, get};
    let page = || async { axum::response::Html("<h1>Welcome</h1>") };
    // A site, and one whose /readyz answers as the service's does but nothing else does.
    let health = || async { axum::Json(serde_json::json!({"status": "ready"})) };
    let sites = [
        (axum::Router::new().fallback(any(page)), "/readyz answered 200 without the booking service's health JSON"),
        (axum::Router::new().route("/readyz", get(health)).fallback(any(page)), "answered 200 without JSON"),
    ];
    for (site, said) in sites {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, site).await });
        let reports = tempfile::tempdir().expect("dir");
        let args = ["--target", &url, "--jwt-secret", SECRET, "--scenario", "basic"];
        let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
        let report = json_report(reports.path());
        assert_eq!(outcome, Exit::CouldNotJudge, "{}", reasons(&report));
        assert!(reasons(&report).contains(said), "{said}: {}", reasons(&report));
        assert!(reasons(&report).contains("is --target the booking service?"), "{}", reasons(&report));
    }
}

/// A key the target does not take is the run's configuration, not the service failing every
/// scenario: the run cannot judge, and says which credentials were refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_the_target_refuses_cannot_be_judged() {
    let app = spawn_app(Backend::Sqlite).await;
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let other_key = "another-key-than-the-services-of-32-bytes";
    let junit_arg = junit.to_str().expect("path");
    let args = ["--target", &app.base, "--jwt-secret", other_key, "--scenario", "basic", "--junit", junit_arg];
    assert_eq!(uat_orchestrator::run(cli(&args, reports.path())).await, Exit::CouldNotJudge);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("refused the admin token the run makes with --jwt-secret (401"), "{xml}");
}

/// A staff token given as the admin's is the run's configuration too (its set-up would be
/// refused), not a NO-GO of the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_the_wrong_role_cannot_be_judged() {
    use shared::Role;
    let app = spawn_app(Backend::Sqlite).await;
    let org = app.org_named("Clinic One", "Europe/Paris").await;
    let (staff, agent) = (token(Role::Staff, Some(org.id)), token(Role::Agent, Some(org.id)));
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let junit_arg = junit.to_str().expect("path");
    let args = [
        "--target",
        &app.base,
        "--scenario",
        "basic",
        "--junit",
        junit_arg,
        "--admin-token",
        &staff,
        "--staff-token",
        &staff,
        "--agent-token",
        &agent,
    ];
    assert_eq!(uat_orchestrator::run(cli(&args, reports.path())).await, Exit::CouldNotJudge);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("refused the first clinic&apos;s admin token (403") && xml.contains("admin role"), "{xml}");
}

/// What the run cannot do against a remote target is its configuration, said before any scenario:
/// the email scenario without a mail sink, and a Vapi route behind a signature the run cannot make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_the_run_cannot_test_fully_cannot_be_judged() {
    let signed = spawn_app_with(Backend::Sqlite, |c| c.vapi_hmac_secret = Some("a-vapi-secret".into())).await;
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let junit_arg = junit.to_str().expect("path");
    let args = ["--target", &signed.base, "--jwt-secret", SECRET, "--scenario", "basic", "--junit", junit_arg];
    assert_eq!(uat_orchestrator::run(cli(&args, reports.path())).await, Exit::CouldNotJudge);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains("refused the agent token") && xml.contains("VAPI_HMAC_SECRET") && !xml.contains("JWT_ISSUER"),
        "{xml}"
    );

    let app = spawn_app(Backend::Sqlite).await;
    let args = ["--target", &app.base, "--jwt-secret", SECRET, "--scenario", "email", "--junit", junit_arg];
    assert_eq!(uat_orchestrator::run(cli(&args, reports.path())).await, Exit::CouldNotJudge);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("the email scenario needs a mail sink"), "{xml}");
}

/// A target that is down cannot be judged; the JUnit file says so, replacing an earlier run's, and
/// a JSON report says so (a CI reading the newest one reads this run's).
#[tokio::test]
async fn a_target_that_is_down_cannot_be_judged() {
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    std::fs::write(&junit, "an earlier run's GO").expect("a stale report");
    let earlier = r#"{"tool": "uat-orchestrator", "verdict": {"decision": "GO"}}"#;
    std::fs::write(reports.path().join("uat-report-1.json"), earlier).expect("an earlier run's report");
    let outcome = uat_orchestrator::run(cli(
        &[
            "--target",
            "http://127.0.0.1:9",
            "--jwt-secret",
            SECRET,
            "--scenario",
            "basic",
            "--junit",
            junit.to_str().expect("path"),
        ],
        reports.path(),
    ))
    .await;
    assert_eq!(outcome, Exit::CouldNotJudge);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("could_not_judge") && xml.contains("127.0.0.1:9") && xml.contains("<error"), "{xml}");
    // The newest report, by the time in its name, is this run's.
    let newest = std::fs::read_dir(reports.path())
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max_by_key(|p| {
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            name.trim_start_matches("uat-report-").parse::<u64>().unwrap_or(0)
        })
        .expect("a JSON report");
    let report: Value = serde_json::from_slice(&std::fs::read(newest).expect("read")).expect("JSON");
    assert_eq!(report["verdict"]["decision"], "COULD-NOT-JUDGE", "a JSON report too: {report}");
    assert!(report["verdict"]["reasons"][0].as_str().is_some_and(|r| r.contains("127.0.0.1:9")), "{report}");
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
    let criteria = json_report(reports.path())["verdict"]["criteria"].clone();
    let satisfaction = criteria.as_array().into_iter().flatten().find(|c| c["name"] == "user satisfaction");
    let satisfaction = satisfaction.unwrap_or_else(|| panic!("no user satisfaction criterion: {criteria:#}"));
    assert_eq!(satisfaction["passed"], true, "assessed and met: {satisfaction}");
    assert!(satisfaction["measured"].as_str().is_some_and(|m| m.contains("4.50 / 5")), "{satisfaction}");
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
    /// Serves a 404'd appointment with the first credentials it saw that read it (a cache keyed
    /// without the tenant).
    LeaksAcrossClinics,
    /// Takes 1.2 s for every booking.
    AnswersSlowly,
    /// Answers 503 to every provider created, after the clinic was.
    RefusesProviders,
    /// Answers 503 to the first removal of each clinic, without passing it on.
    DropsFirstRemoval,
    /// Lists every clinic's appointments to whoever lists (with the tokens it has seen), at most
    /// `PAGE_AT_MOST` to a page: a tenant-blind list.
    ListsEveryClinic,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    breakage: Breakage,
    http: reqwest::Client,
    /// Answers of another caller's credentials served in place of a 404.
    leaked: Arc<AtomicUsize>,
    /// Every token seen, in order.
    tokens: Arc<Mutex<Vec<String>>>,
    /// The clinics created through it.
    created_clinics: Arc<Mutex<Vec<uuid::Uuid>>>,
    /// The clinics whose first removal was dropped.
    dropped_removals: Arc<Mutex<Vec<String>>>,
}

fn refused() -> Response {
    Response::builder()
        .status(503)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"success": false, "error": {"code": "unavailable", "message": "refused"}}"#))
        .expect("response")
}

/// The largest page the tenant-blind list gives.
const PAGE_AT_MOST: usize = 2;

/// `GET /api/appointments` as a tenant-blind service answers it: the lists of every token seen
/// (with the request's filters), merged by start and paged again.
async fn list_every_clinic(proxy: &Proxy, path: &str) -> Response {
    let url = url::Url::parse(&format!("http://proxy{path}")).expect("a URL");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let filters: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "limit" && k != "cursor").collect();
    let mut merged: Vec<Value> = Vec::new();
    let tokens = proxy.tokens.lock().expect("lock").clone();
    for auth in tokens {
        let request = proxy
            .http
            .get(format!("{}/api/appointments", proxy.upstream))
            .query(&filters)
            .query(&[("limit", "500")])
            .header("authorization", auth);
        let Ok(response) = request.send().await else { continue };
        if response.status() != 200 {
            continue;
        }
        let page: Value = response.json().await.unwrap_or_default();
        for item in page["items"].as_array().into_iter().flatten() {
            if !merged.iter().any(|m| m["id"] == item["id"]) {
                merged.push(item.clone());
            }
        }
    }
    let start = |a: &Value| chrono::DateTime::parse_from_rfc3339(a["starts_at"].as_str().unwrap_or_default()).ok();
    merged.sort_by_key(start);
    // Like a server that clamps the page size, at most PAGE_AT_MOST items a page whatever the
    // caller asks: a lister that stops after its first page misses what comes after.
    let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(100).min(PAGE_AT_MOST);
    let offset: usize = param("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let items: Vec<Value> = merged.iter().skip(offset).take(limit).cloned().collect();
    let next = (offset + limit < merged.len()).then(|| (offset + limit).to_string());
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::json!({"items": items, "next": next}).to_string()))
        .expect("response")
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
    if let Some(auth) = &auth {
        let mut tokens = proxy.tokens.lock().expect("lock");
        if !tokens.contains(auth) {
            tokens.push(auth.clone());
        }
    }
    if matches!(proxy.breakage, Breakage::AnswersSlowly) && path.starts_with("/api/vapi/") {
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    if matches!(proxy.breakage, Breakage::RefusesProviders) && parts.method == "POST" && path == "/api/providers" {
        return refused();
    }
    if matches!(proxy.breakage, Breakage::DropsFirstRemoval)
        && parts.method == "DELETE"
        && path.starts_with("/api/orgs/")
    {
        let mut dropped = proxy.dropped_removals.lock().expect("lock");
        if !dropped.contains(&path) {
            dropped.push(path.clone());
            return refused();
        }
    }
    let Ok(mut response) = send(auth.clone()).await else {
        return Response::builder().status(502).body(Body::empty()).expect("response");
    };
    if matches!(proxy.breakage, Breakage::ListsEveryClinic)
        && parts.method == "GET"
        && (path == "/api/appointments" || path.starts_with("/api/appointments?"))
        // Whoever may list: the service answered the list, or refused only the proxy's own cursor.
        && (response.status() == 200 || (response.status() == 422 && path.contains("cursor=")))
    {
        return list_every_clinic(&proxy, &path).await;
    }
    if matches!(proxy.breakage, Breakage::LeaksAcrossClinics)
        && path.starts_with("/api/appointments/")
        && response.status() == 404
    {
        let others: Vec<String> =
            proxy.tokens.lock().expect("lock").iter().filter(|t| Some(*t) != auth.as_ref()).cloned().collect();
        for other in others {
            if let Ok(leaked) = send(Some(other)).await {
                if leaked.status() == 200 {
                    proxy.leaked.fetch_add(1, Ordering::SeqCst);
                    response = leaked;
                    break;
                }
            }
        }
    }
    let status = response.status();
    let mut body = response.bytes().await.unwrap_or_default().to_vec();
    if parts.method == "POST" && path == "/api/orgs" && status == 201 {
        if let Some(id) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["id"].as_str()?.parse().ok()) {
            proxy.created_clinics.lock().expect("lock").push(id);
        }
    }
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

/// The real service, and a broken variant of it in front (with what the variant saw).
async fn broken_service(breakage: Breakage) -> (String, TestApp, Proxy) {
    let app = spawn_app(Backend::Sqlite).await;
    let proxy = Proxy {
        upstream: app.base.clone(),
        breakage,
        http: reqwest::Client::new(),
        leaked: Arc::default(),
        tokens: Arc::default(),
        created_clinics: Arc::default(),
        dropped_removals: Arc::default(),
    };
    let router = axum::Router::new().fallback(forward).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), app, proxy)
}

async fn judged_no_go(breakage: Breakage, scenario: &str, reason: &str) -> Proxy {
    let (url, _app, proxy) = broken_service(breakage).await;
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
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_double_books_is_no_go() {
    judged_no_go(Breakage::DoubleBooks, "concurrent", "lost or duplicate booking").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_leaks_across_clinics_is_no_go() {
    let proxy = judged_no_go(Breakage::LeaksAcrossClinics, "isolation", "cross-clinic leak").await;
    assert!(proxy.leaked.load(Ordering::SeqCst) > 0, "the proxy served no other clinic's appointment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_answers_slowly_is_no_go() {
    judged_no_go(Breakage::AnswersSlowly, "concurrent", "latency over 1 s").await;
}

/// On a populated target a tenant-blind list shows the other clinic's appointment on a later page
/// than the first: the isolation scenario still finds it. A busy clinic (in the scenario's zone)
/// has more appointments at the scenario's own slot (11 days ahead, 10:00) than one page holds,
/// and they come first, so clinic A's appointment is on the second page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_leaks_on_a_later_page_of_its_list_is_no_go() {
    let (url, app, proxy) = broken_service(Breakage::ListsEveryClinic).await;
    let other = app.org_named("Busy Clinic", "America/New_York").await;
    let date = (chrono::Utc::now() + chrono::Duration::days(11)).date_naive();
    for i in 0..=PAGE_AT_MOST {
        let provider = other
            .provider_with(shared::api::CreateProvider { name: format!("Dr. Busy {i}"), ..Default::default() })
            .await;
        let booking = shared::api::BookingInput {
            provider_id: Some(provider.id),
            appointment_date: Some(date.format("%Y-%m-%d").to_string()),
            appointment_time: Some("10:00".into()),
            patient_name: Some("Busy Patient".into()),
            ..Default::default()
        };
        other.staff.book(&booking).await.expect("a booking of the busy clinic");
    }
    // The proxy learns the busy clinic's staff token, as a shared cache would.
    let staff = token(shared::Role::Staff, Some(other.id));
    let primed = reqwest::Client::new().get(format!("{url}/api/appointments")).bearer_auth(&staff).send().await;
    assert_eq!(primed.expect("listed").status(), 200);
    let reports = tempfile::tempdir().expect("dir");
    let outcome = uat_orchestrator::run(cli(
        &["--target", &url, "--jwt-secret", SECRET, "--scenario", "isolation"],
        reports.path(),
    ))
    .await;
    let report = json_report(reports.path());
    assert_eq!(outcome, Exit::NoGo, "{}", reasons(&report));
    assert!(reasons(&report).contains("B's list shows A's appointment"), "{}", reasons(&report));
    drop(proxy);
}

/// Every clinic the run created is gone: deleting it again finds nothing.
async fn assert_removed(app: &TestApp, proxy: &Proxy) {
    let created = proxy.created_clinics.lock().expect("lock").clone();
    assert!(!created.is_empty());
    for clinic in created {
        let again = app.platform.delete_organization(clinic).await;
        assert_eq!(again.err().and_then(|e| e.status()).map(|s| s.as_u16()), Some(404), "clinic {clinic} left behind");
    }
}

/// A scenario whose provider cannot be created stops after creating its clinic; the run still
/// removes the clinic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinics_whose_set_up_failed_half_way_are_removed() {
    let (url, app, proxy) = broken_service(Breakage::RefusesProviders).await;
    let reports = tempfile::tempdir().expect("dir");
    let args = ["--target", &url, "--jwt-secret", SECRET, "--scenario", "all", "--smtp-listen", "127.0.0.1:0"];
    let outcome = uat_orchestrator::run(cli(&args, reports.path())).await;
    assert_eq!(outcome, Exit::NoGo);
    assert_removed(&app, &proxy).await;
}

/// A removal that failed keeps the clinic listed, and the end of the run removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_whose_removal_failed_is_removed_at_the_end() {
    let (url, app, proxy) = broken_service(Breakage::DropsFirstRemoval).await;
    let reports = tempfile::tempdir().expect("dir");
    uat_orchestrator::run(cli(&["--target", &url, "--jwt-secret", SECRET, "--scenario", "basic"], reports.path()))
        .await;
    assert_eq!(proxy.dropped_removals.lock().expect("lock").len(), 1);
    assert_removed(&app, &proxy).await;
}

/// An outage dropped without its restore (Ctrl-C during the outage step) gives the database back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_postgres_outage_gives_the_database_back() {
    if postgres_admin_url().is_none() {
        return;
    }
    let db = TestDatabase::create(Backend::Postgres).await.expect("database");
    let reports = tempfile::tempdir().expect("dir");
    let target = uat_orchestrator::target::Target::start(&cli(&["--database-url", db.url.as_str()], reports.path()))
        .await
        .expect("the service in-process");
    let ready = async |wanted: bool| {
        let http = reqwest::Client::new();
        for _ in 0..80 {
            let status = http.get(format!("{}/readyz", target.base)).send().await.map(|r| r.status().as_u16());
            if (status.as_ref().ok() == Some(&200)) == wanted {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    };
    assert!(ready(true).await, "ready before the outage");
    let outage = target.cut_database().await.expect("in-process").expect("cut");
    assert!(ready(false).await, "the outage is real");
    drop(outage);
    assert!(ready(true).await, "the database came back when the outage was dropped");
    target.stop().await;
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
    // The criterion is named after the time it was judged against.
    assert!(reasons(&report).contains("email delivered within 3 s"), "{}", reasons(&report));
    // Booked, and then no mail: not a booking or a set-up that failed first.
    let steps = &report["scenarios"][0]["steps"];
    assert_eq!(steps[0]["title"], "a booking with an email address is accepted", "{steps:#}");
    assert_eq!(steps[0]["passed"], true, "{steps:#}");
    assert_eq!(steps[1]["title"], "the confirmation email arrives in time", "{steps:#}");
    assert_eq!(steps[1]["passed"], false, "{steps:#}");
    assert!(steps[1]["measured"].as_str().is_some_and(|m| m.starts_with("nothing for")), "{steps:#}");
}

/// The same clinic given as both: isolation would read "the other's" data, its own, as a leak. It
/// is the configuration, not the service: could not judge, saying so.
#[tokio::test]
async fn the_same_clinic_given_twice_cannot_be_judged() {
    use shared::Role;
    let org = uuid::Uuid::new_v4();
    let [admin, staff, agent] = [Role::Admin, Role::Staff, Role::Agent].map(|role| token(role, Some(org)));
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let mut args = vec!["--target", "http://127.0.0.1:9", "--scenario", "isolation"];
    args.extend(["--admin-token", &admin, "--staff-token", &staff, "--agent-token", &agent]);
    args.extend(["--other-admin-token", &admin, "--other-staff-token", &staff, "--other-agent-token", &agent]);
    args.extend(["--junit", junit.to_str().expect("path")]);
    assert_eq!(uat_orchestrator::run(cli(&args, reports.path())).await, Exit::CouldNotJudge);
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("are of the first clinic&apos;s organization"), "{xml}");
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
        // Closed on days the run would book were it not to read the closures: it books around them.
        let today = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Paris).date_naive();
        for (from, to) in [(3, 3), (7, 20)] {
            let day = |ahead| (today + chrono::Duration::days(ahead)).format("%Y-%m-%d").to_string();
            let closure = shared::api::CreateClosure { date: day(from), end_date: Some(day(to)), reason: None };
            org.admin.create_closure(&closure).await.expect("a closure");
        }
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
    // A GO says what it could not check: the expired token (it needs the key) and the outage.
    let pending: Vec<&str> =
        report["verdict"]["pending"].as_array().expect("pending").iter().flat_map(Value::as_str).collect();
    assert!(pending.contains(&"isolation: an expired token is refused with 401"), "{pending:?}");
    assert_eq!(pending.iter().filter(|p| p.starts_with("error-handling: ")).count(), 3, "{pending:?}");
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
