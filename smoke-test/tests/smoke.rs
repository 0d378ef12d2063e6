//! The smoke test's logic against the real service in-process (SQLite and PostgreSQL), against
//! fake services that break the rules, and against nothing at all.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use clap::Parser;
use serde_json::{json, Value};
use smoke_test::cli::Args;
use smoke_test::report::Verdict;
use std::sync::{Arc, Mutex};
use tempfile::TempDir;
use test_kit::{spawn_app, spawn_app_with, token, Backend, TestDatabase, SECRET};
use uuid::Uuid;

/// Arguments as on the command line, with the report in a temporary folder.
fn args(dir: &TempDir, extra: &[&str]) -> Args {
    let report = dir.path().join("report.json");
    let mut argv = vec!["smoke-test", "--report", report.to_str().expect("utf-8 path")];
    argv.extend_from_slice(extra);
    Args::parse_from(argv)
}

/// Runs the tool's logic, its printed lines discarded.
async fn run(args: Args) -> smoke_test::Run {
    smoke_test::run_with_output(args, smoke_test::Out::to(std::io::sink())).await
}

/// Runs the tool's logic and returns what it printed.
async fn run_capturing(args: Args) -> (smoke_test::Run, String) {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let run = smoke_test::run_with_output(args, smoke_test::Out::to(captured.clone())).await;
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    (run, text)
}

fn read_report(dir: &TempDir) -> Value {
    let text = std::fs::read_to_string(dir.path().join("report.json")).expect("the report exists");
    serde_json::from_str(&text).expect("the report is valid JSON")
}

fn failed_checks(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] == json!(false))
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn passes_against_the_real_service(backend: Backend, extra: &[&str]) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    // The tests share two cores and a debug build, so the pass cases judge correctness with a
    // generous latency budget; the budget check itself has a test of its own, and CI's gate runs
    // alone with the default budget.
    let mut argv = vec!["--database-url", db.url.as_str(), "--budget-ms", "30000"];
    argv.extend_from_slice(extra);
    let run = run(args(&dir, &argv)).await;
    let report = read_report(&dir);
    assert_eq!(run.exit_code(), 0, "failed: {:?}, reason {:?}", failed_checks(&report), report["reason"]);
    assert_eq!(report["verdict"], json!("pass"));
    assert!(failed_checks(&report).is_empty());
    assert!(report["checks"].as_array().expect("checks").len() >= 7);
    assert_eq!(report["cleanup"].as_str().map(|c| c.starts_with("done")), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_racers_on_sqlite_pass_with_exit_0() {
    passes_against_the_real_service(Backend::Sqlite, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_racers_on_postgres_pass_with_exit_0() {
    passes_against_the_real_service(Backend::Postgres, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racers_on_five_slots_pass_on_postgres() {
    passes_against_the_real_service(Backend::Postgres, &["--concurrency", "50", "--slots", "5"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_racers_for_one_slot_yield_exactly_one_winner_on_sqlite() {
    passes_against_the_real_service(Backend::Sqlite, &["--concurrency", "1000", "--quiet"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_argument_it_starts_the_service_on_a_temporary_sqlite_and_passes() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--budget-ms", "30000"])).await;
    assert_eq!(run.exit_code(), 0, "{:?}", run.report.reason);
    assert_eq!(run.report.target_kind, "in-process (sqlite, temporary)");
    assert_eq!(run.report.requests, 5);
    assert_eq!(run.report.outcomes.get("created"), Some(&1));
    assert_eq!(run.report.outcomes.get("conflict"), Some(&4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_valid_json_with_the_documented_fields() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--concurrency", "8", "--slots", "2", "--budget-ms", "30000"])).await;
    assert_eq!(run.exit_code(), 0, "{:?}", run.report.reason);
    let report = read_report(&dir);
    for field in [
        "tool",
        "version",
        "mode",
        "started_at",
        "target",
        "target_kind",
        "verdict",
        "exit_code",
        "reason",
        "settings",
        "requests",
        "outcomes",
        "latency",
        "throughput_rps",
        "wall_ms",
        "checks",
        "cleanup",
        "request_log",
    ] {
        assert!(report.get(field).is_some(), "no `{field}` in {report:#}");
    }
    assert_eq!(report["mode"], json!("race"));
    assert_eq!(report["exit_code"], json!(0));
    assert_eq!(report["requests"], json!(16));
    for histogram in ["from_release", "per_request", "service"] {
        let h = &report["latency"][histogram];
        for figure in ["unit", "count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"] {
            assert!(h.get(figure).is_some(), "no latency.{histogram}.{figure}");
        }
        assert!(h["min"].as_u64() <= h["p50"].as_u64() && h["p50"].as_u64() <= h["max"].as_u64());
    }
    assert_eq!(report["latency"]["from_release"]["count"], json!(16));
    assert_eq!(report["latency"]["service"]["count"], json!(2));
    for check in report["checks"].as_array().expect("checks") {
        for key in ["name", "threshold", "measured", "passed", "detail"] {
            assert!(check.get(key).is_some(), "no `{key}` in {check}");
        }
        assert_eq!(check["passed"], json!(true), "{check}");
    }
    let names: Vec<&str> =
        report["checks"].as_array().expect("checks").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "one_201_per_slot",
            "others_409_slot_unavailable",
            "no_other_status",
            "no_transport_error",
            "one_active_appointment_per_slot",
            "winners_codes_unique",
            "p95_within_budget_ms"
        ]
    );
    assert_eq!(report["request_log"].as_array().map(Vec::len), Some(16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_budget_nobody_can_meet_fails_with_exit_1() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--budget-ms", "0"])).await;
    assert_eq!(run.exit_code(), 1);
    assert_eq!(failed_checks(&read_report(&dir)), ["p95_within_budget_ms"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_gives_exit_2() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let target = format!("http://127.0.0.1:{port}");
    let run = run(args(&dir, &["--target", &target, "--jwt-secret", SECRET])).await;
    assert_eq!(run.exit_code(), 2);
    let report = read_report(&dir);
    assert_eq!(report["verdict"], json!("could_not_judge"));
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("target down"), "{reason}");
}

/// A load run too large for the booking horizon is told at once, before anything is set up (a
/// target down would otherwise be reported first: the check comes before the health probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_beyond_the_booking_horizon_gives_exit_2_before_any_set_up() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let argv = ["--target", "http://127.0.0.1:9", "--jwt-secret", SECRET, "--rate", "5000", "--duration", "1h"];
    let refused = run(args(&dir, &argv)).await;
    assert_eq!(refused.exit_code(), 2);
    let reason = refused.report.reason.unwrap_or_default();
    assert!(reason.contains("booking horizon") && reason.contains("--rate"), "{reason}");

    // Past what one run makes at all, however many providers spread it.
    let argv = ["--target", "http://127.0.0.1:9", "--jwt-secret", SECRET, "--rate", "1000", "--duration", "10m"];
    let refused = run(args(&dir, &[&argv[..], &["--providers", "200"]].concat())).await;
    assert_eq!(refused.exit_code(), 2);
    let reason = refused.report.reason.unwrap_or_default();
    assert!(reason.contains("600000 bookings, more than the 500000"), "{reason}");
}

/// A command line the parser refuses still replaces the report it names, which an earlier run's
/// passing report would otherwise stand in as this run's.
#[test]
fn a_refused_command_line_leaves_no_earlier_report_standing() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let report = dir.path().join("report.json");
    std::fs::write(&report, r#"{"verdict": "pass"}"#).expect("an earlier report");
    let ran = std::process::Command::new(env!("CARGO_BIN_EXE_smoke-test"))
        .args(["--report", report.to_str().expect("utf-8 path"), "--concurrency", "0"])
        .output()
        .expect("the binary ran");
    assert_eq!(ran.status.code(), Some(2), "{}", String::from_utf8_lossy(&ran.stderr));
    let written: Value = serde_json::from_slice(&std::fs::read(&report).expect("the report")).expect("JSON");
    assert_eq!(written["verdict"], "could_not_judge", "{written}");
    assert!(written["reason"].as_str().is_some_and(|r| r.contains("--concurrency")), "{written}");
}

/// The in-process service's mail and SMS files (a load run's confirmations) go with the run on a
/// database it was given too, not into a folder of the machine's that every run adds to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_given_database_leaves_no_files_behind() {
    let Some(db) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let (tmp, dir) = (tempfile::tempdir().expect("a temporary folder"), tempfile::tempdir().expect("another"));
    let report = dir.path().join("report.json");
    let (url, tmp_path) = (db.url.clone(), tmp.path().to_owned());
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_smoke-test"))
            // A load run, long enough for the service to send confirmations.
            .args(["--database-url", &url, "--rate", "20", "--duration", "3s", "--budget-ms", "30000"])
            .args(["--report", report.to_str().expect("utf-8")])
            .env("TMPDIR", &tmp_path)
            .output()
            .expect("the binary ran")
    })
    .await
    .expect("joined");
    assert_eq!(ran.status.code(), Some(0), "{}", String::from_utf8_lossy(&ran.stderr));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("the folder").flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// From the run's start its report file says it could not judge, the run not finished (an earlier
/// run's passing report, there before, is gone at once): a run killed outright leaves that. Here
/// the target takes the connection and never answers, so the run is seen mid-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_says_could_not_judge_until_the_run_replaces_it() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("report.json"), r#"{"verdict": "pass"}"#).expect("an earlier report");
    let (target, held) = test_kit::silent_server().await;
    let running = tokio::spawn(run(args(&dir, &["--target", &target, "--jwt-secret", SECRET])));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let midway = read_report(&dir);
    assert_eq!(midway["verdict"], json!("could_not_judge"), "{midway}");
    assert!(midway["reason"].as_str().is_some_and(|r| r.contains("did not finish")), "{midway}");
    let done = running.await.expect("the run ends");
    assert_eq!(done.exit_code(), 2);
    assert!(read_report(&dir)["reason"].as_str().is_some_and(|r| r.contains("target down")));
    held.abort();
}

/// A credential without --target means a target was meant (its variable lost, say): the run does
/// not pass in-process in its place, and its report says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_without_a_target_gives_exit_2() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--jwt-secret", SECRET])).await;
    assert_eq!(run.exit_code(), 2);
    let reason = read_report(&dir)["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("--jwt-secret (SMOKE_JWT_SECRET) is given without --target"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_without_credentials_gives_exit_2() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--target", "http://127.0.0.1:9"])).await;
    assert_eq!(run.exit_code(), 2);
    assert!(run.report.reason.unwrap_or_default().contains("--jwt-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_target_with_its_secret_passes() {
    let app = spawn_app(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--target", &app.base, "--jwt-secret", SECRET, "--budget-ms", "30000"])).await;
    assert_eq!(run.exit_code(), 0, "{:?}", run.report.reason);
    assert_eq!(run.report.target_kind, "remote");
}

/// A target that checks `iss` and `aud`: the tokens minted with --jwt-issuer and --jwt-audience
/// are taken, those without are refused (could not judge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_checking_issuer_and_audience_takes_the_minted_tokens_given_them() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.jwt_issuer = Some("https://auth.clinic.example".into());
        config.jwt_audience = Some("booking".into());
    })
    .await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let remote = ["--target", &app.base, "--jwt-secret", SECRET, "--budget-ms", "30000"];
    let without = run(args(&dir, &remote)).await;
    assert_eq!(without.exit_code(), 2, "{:?}", without.report.reason);
    let issued = [&remote[..], &["--jwt-issuer", "https://auth.clinic.example", "--jwt-audience", "booking"]].concat();
    let with = run(args(&dir, &issued)).await;
    assert_eq!(with.exit_code(), 0, "{:?}", with.report.reason);
}

/// A target whose rate limit refuses part of the burst is configured for less than the run, not
/// failing: could not judge (exit 2), saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_rate_limit_refuses_the_burst_gives_exit_2() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.rate_limit_per_minute = 20).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let argv =
        ["--target", &app.base, "--jwt-secret", SECRET, "--concurrency", "30", "--slots", "1", "--budget-ms", "30000"];
    let run = run(args(&dir, &argv)).await;
    assert_eq!(run.exit_code(), 2, "{:?}", run.report.reason);
    let reason = run.report.reason.unwrap_or_default();
    assert!(reason.contains("rate limit refused") && reason.contains("RATE_LIMIT_PER_MINUTE"), "{reason}");
}

/// How a fake service misbehaves on `POST /api/vapi/booking`.
#[derive(Clone, Copy)]
enum Broken {
    /// 201 to every booking: the double-booking bug the smoke test exists to catch.
    DoubleBooks,
    /// 500 to every booking.
    Answers500,
    /// 201 to every booking, and keeps none of them: a lost write.
    Forgets,
    /// Books as DoubleBooks does, and its list hands out the cursor it was asked with, for ever.
    EndlessList,
}

#[derive(Clone)]
struct Fake {
    broken: Broken,
    booked: Arc<Mutex<Vec<Value>>>,
}

/// Just the routes the smoke test calls, with the API's bodies.
async fn spawn_fake(broken: Broken) -> String {
    let fake = Fake { broken, booked: Arc::default() };
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/closures", get(|| async { Json(json!({"items": [], "next": null})) }))
        .route(
            "/api/orgs",
            post(|Json(body): Json<Value>| async move {
                (
                    StatusCode::CREATED,
                    Json(json!({"id": Uuid::new_v4(), "name": body["name"], "timezone": body["timezone"],
                                "created_at": "2026-01-01T00:00:00Z"})),
                )
            }),
        )
        .route("/api/orgs/{id}", delete(|Path(_id): Path<Uuid>| async { StatusCode::NO_CONTENT }))
        .route(
            "/api/providers",
            post(|Json(body): Json<Value>| async move {
                (
                    StatusCode::CREATED,
                    Json(json!({"id": Uuid::new_v4(), "org_id": Uuid::new_v4(), "name": body["name"],
                                "timezone": "UTC", "appointment_minutes": 30, "working_hours": [], "active": true})),
                )
            }),
        )
        .route(
            "/api/providers/{id}",
            get(|Path(id): Path<Uuid>| async move {
                Json(json!({"id": id, "org_id": Uuid::new_v4(), "name": "Dr. Fake", "timezone": "UTC",
                            "appointment_minutes": 30, "working_hours": [], "active": true}))
            }),
        )
        .route("/api/vapi/booking", post(book))
        .route(
            "/api/appointments",
            get(|State(fake): State<Fake>| async move {
                let next = matches!(fake.broken, Broken::EndlessList).then_some("the same cursor");
                Json(json!({"items": fake.booked.lock().expect("lock").clone(), "next": next}))
            }),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn book(State(fake): State<Fake>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    match fake.broken {
        Broken::Answers500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"success": false, "error": {"code": "internal", "message": "boom"}})),
        ),
        Broken::DoubleBooks | Broken::Forgets | Broken::EndlessList => {
            let input = &body["tool_input"];
            let starts = format!(
                "{}T{}:00Z",
                input["appointment_date"].as_str().unwrap_or_default(),
                input["appointment_time"].as_str().unwrap_or_default()
            );
            let starts_at = chrono::DateTime::parse_from_rfc3339(&starts).expect("a time");
            let ends_at = starts_at + chrono::Duration::minutes(30);
            let id = Uuid::new_v4();
            let code = format!("C{}", &id.simple().to_string()[..6]);
            let kept = matches!(fake.broken, Broken::DoubleBooks | Broken::EndlessList).then_some(json!({
                "id": id, "org_id": Uuid::new_v4(), "provider_id": input["provider_id"],
                "starts_at": starts_at, "ends_at": ends_at, "status": "pending",
                "confirmation_code": code, "patient": {"name": null, "phone": null, "email": null},
                "notes": null, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
            }));
            fake.booked.lock().expect("lock").extend(kept);
            (
                StatusCode::CREATED,
                Json(json!({"success": true, "appointment_id": id, "status": "pending",
                            "starts_at": starts_at, "ends_at": ends_at, "confirmation_code": code,
                            "latency_ms": 0.3})),
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_double_books_fails_with_exit_1_and_says_why() {
    let base = spawn_fake(Broken::DoubleBooks).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (run, printed) = run_capturing(args(&dir, &["--target", &base, "--jwt-secret", SECRET])).await;
    assert_eq!(run.exit_code(), 1);
    assert_eq!(printed.matches("SUCCESS in").count(), 5, "{printed}");
    assert!(printed.contains("FAIL one_201_per_slot"), "{printed}");
    assert!(printed.contains("DOUBLE BOOKING"), "{printed}");
    assert!(printed.contains("FAIL (exit 1)"), "{printed}");
    let report = read_report(&dir);
    assert_eq!(report["verdict"], json!("fail"));
    assert_eq!(
        failed_checks(&report),
        ["one_201_per_slot", "others_409_slot_unavailable", "one_active_appointment_per_slot"]
    );
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("DOUBLE BOOKING"), "{reason}");
    assert_eq!(report["checks"][0]["measured"]["max"], json!(5));
    // Read back through the API: the five bookings of the one slot are all stored.
    assert_eq!(report["checks"][4]["measured"]["max"], json!(5), "{:#}", report["checks"][4]);
}

/// A list whose cursor never ends cannot hold the run for ever: its read-back gives up, and the
/// run cannot be judged as passing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_never_ends_does_not_hold_the_run() {
    let base = spawn_fake(Broken::EndlessList).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let ran = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        run(args(&dir, &["--target", &base, "--jwt-secret", SECRET])),
    );
    let ran = ran.await.expect("the run ended");
    assert_ne!(ran.exit_code(), 0);
    let report = read_report(&dir);
    assert!(report.to_string().contains("the cursor it was asked for"), "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answering_500_fails_with_exit_1_and_says_why() {
    let base = spawn_fake(Broken::Answers500).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (run, printed) = run_capturing(args(&dir, &["--target", &base, "--jwt-secret", SECRET])).await;
    assert_eq!(run.exit_code(), 1);
    assert_eq!(printed.matches("FAILED 500 internal").count(), 5, "{printed}");
    let report = read_report(&dir);
    assert!(failed_checks(&report).contains(&"no_other_status".to_owned()));
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("5 × 500 internal"), "{reason}");
}

async fn load_mode_runs_briefly_and_reports(backend: Backend) {
    let Some(db) = TestDatabase::create(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run =
        // Latency and the generator's schedule are the gate runs' to judge, not a test's.
        run(args(&dir, &["--database-url", &db.url, "--rate", "20", "--duration", "2s", "--providers", "3",
                         "--budget-ms", "30000", "--late-ms", "1000"]))
        .await;
    let report = read_report(&dir);
    assert_eq!(run.exit_code(), 0, "{:?}", report["reason"]);
    assert_eq!(report["mode"], json!("load"));
    let load = &report["load"];
    assert_eq!(load["planned"], json!(40));
    assert_eq!(load["created"], json!(40));
    assert_eq!(load["errors_by_class"], json!({}));
    for key in ["late", "send_rate", "success_rate", "max_send_delay_us"] {
        assert!(load.get(key).is_some(), "no load.{key}");
    }
    assert_eq!(report["latency"]["from_intended"]["count"], json!(40));
    // What the throughput came to is the gate runs' to judge, not a test's on a noisy machine.
    assert!(report["throughput_rps"].as_f64().is_some_and(|rate| rate > 0.0), "{report:#}");
    assert_eq!(run.report.verdict, Verdict::Pass);
}

/// Load mode reads back what it booked: a service that answers 201 and keeps nothing fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_fails_a_service_that_loses_what_it_answered_201() {
    let base = spawn_fake(Broken::Forgets).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let argv = ["--target", &base, "--jwt-secret", SECRET, "--rate", "10", "--duration", "1s", "--budget-ms", "30000"];
    let run = run(args(&dir, &[&argv[..], &["--late-ms", "1000"]].concat())).await;
    assert_eq!(run.exit_code(), 1);
    let report = read_report(&dir);
    assert_eq!(report["load"]["created"], json!(10));
    assert_eq!(failed_checks(&report), ["one_active_appointment_per_slot"]);
    assert_eq!(report["checks"][3]["measured"]["total"], json!(0), "{:#}", report["checks"][3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_runs_briefly_and_reports_on_sqlite() {
    load_mode_runs_briefly_and_reports(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_runs_briefly_and_reports_on_postgres() {
    load_mode_runs_briefly_and_reports(Backend::Postgres).await;
}

/// The organization's appointments left active: a run's leftovers would stay in a real clinic's
/// calendar, and their patients would get reminders.
async fn active_appointments(org: &test_kit::TestOrg) -> usize {
    let all = org.staff.appointments(&Default::default()).await.expect("the appointments");
    all.iter().filter(|a| a.status.is_active()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_tokens_of_an_existing_organization_it_races_there_cancels_its_booking_and_deactivates_its_provider() {
    use shared::Role;
    let app = spawn_app(Backend::Sqlite).await;
    let org = app.org_named("Staging Clinic", "America/New_York").await;
    // Closed over every day the run may pick first (20 to 120 days ahead): it races on open days.
    let today = chrono::Utc::now().date_naive();
    let day = |n| (today + chrono::Days::new(n)).to_string();
    let closed = shared::api::CreateClosure { date: day(15), end_date: Some(day(125)), reason: Some("refit".into()) };
    org.admin.create_closure(&closed).await.expect("closed");
    let (admin, agent) = (token(Role::Admin, Some(org.id)), token(Role::Agent, Some(org.id)));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(
        &dir,
        &["--target", &app.base, "--admin-token", &admin, "--agent-token", &agent, "--budget-ms", "30000"],
    ))
    .await;
    assert_eq!(run.exit_code(), 0, "{:?}", run.report.reason);
    assert_eq!(run.report.cleanup, "done: 1 appointment(s) cancelled, 1 provider(s) deactivated");
    assert_eq!(active_appointments(&org).await, 0);
    let providers = org.admin.providers().await.expect("the providers");
    assert_eq!(providers.len(), 1);
    assert!(!providers[0].active);
}

/// In a live clinic the run's provider, bookable at any time, may be offered to a real caller
/// meanwhile: the clean-up cancels the run's bookings (its notes) and leaves that one active,
/// saying so, never cancelling a real patient's appointment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_tokens_the_clean_up_cancels_only_what_the_run_booked() {
    use shared::Role;
    use smoke_test::setup::{Fixture, PlannedSlot};
    use smoke_test::target::Credentials;
    let app = spawn_app(Backend::Sqlite).await;
    let org = app.org_named("Live Clinic", "UTC").await;
    let (admin, agent) = (token(Role::Admin, Some(org.id)), token(Role::Agent, Some(org.id)));
    let base = shared::ApiClient::new(app.base.clone());
    let mut fixture = Fixture::default();
    let credentials = Credentials::Tokens { platform: None, admin, agent };
    fixture.setup(&base, &credentials, 1).await.expect("set up");
    let provider = fixture.providers[0];
    let day = chrono::Utc::now().date_naive() + chrono::Days::new(3);
    let slot = |hour| PlannedSlot {
        provider,
        date: day,
        time: chrono::NaiveTime::from_hms_opt(hour, 0, 0).expect("a time"),
        patients_from: 0,
    };
    let runs = org.agent.book(&slot(10).input(1)).await.expect("the run's booking");
    let real =
        shared::api::BookingInput { notes: None, patient_name: Some("Real Patient".into()), ..slot(11).input(2) };
    let real = org.agent.book(&real).await.expect("a real caller's booking");
    let said = fixture.cleanup(&base).await.expect_err("a booking not the run's is said");
    assert!(said.contains(&format!("1 not the run's left active, e.g. {}", real.appointment_id)), "{said}");
    assert!(said.contains("1 appointment(s) cancelled"), "{said}");
    let status = async |id| org.staff.appointment(id).await.expect("read").status;
    assert!(!status(runs.appointment_id).await.is_active(), "the run's booking is cancelled");
    assert!(status(real.appointment_id).await.is_active(), "the real patient's stands");
}

/// A load run with given tokens, `rate` bookings a second for a second on two providers, against
/// a service allowing each token `per_minute` requests (0: no limit) of which the admin token has
/// already spent `spent`: its clean-up cancels every booking it made (waiting out the rate limit
/// when `waits`, and saying so).
async fn given_tokens_a_load_run_cancels_every_booking(per_minute: u32, spent: u32, rate: u32, waits: bool) {
    use shared::Role;
    let app = spawn_app_with(Backend::Sqlite, |config| config.rate_limit_per_minute = per_minute).await;
    let org = app.org_named("Staging Clinic", "Europe/Paris").await;
    for _ in 0..spent {
        org.admin.providers().await.expect("within the limit");
    }
    let (admin, agent) = (token(Role::Admin, Some(org.id)), token(Role::Agent, Some(org.id)));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let rate = rate.to_string();
    let argv = [
        "--target",
        &app.base,
        "--admin-token",
        &admin,
        "--agent-token",
        &agent,
        "--rate",
        &rate,
        "--duration",
        "1s",
        "--providers",
        "2",
        "--budget-ms",
        "30000",
        "--late-ms",
        "1000",
    ];
    let run = run(args(&dir, &argv)).await;
    assert_eq!(run.exit_code(), 0, "{:?}", run.report.reason);
    let done = format!("done: {rate} appointment(s) cancelled, 2 provider(s) deactivated");
    if waits {
        let said = &run.report.cleanup;
        assert!(
            said.starts_with(&format!("{done}, after waiting ")) && said.ends_with(" s for the rate limit"),
            "{said}"
        );
    } else {
        assert_eq!(run.report.cleanup, done);
    }
    assert_eq!(active_appointments(&org).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_tokens_in_load_mode_it_cancels_every_booking_it_made() {
    given_tokens_a_load_run_cancels_every_booking(0, 0, 10, false).await;
}

/// A run that booked more than the admin token may send in a minute still cancels every booking:
/// the clean-up waits out the service's 429s (Retry-After) instead of leaving the rest behind.
/// At 60 a minute (one more each second), with 53 already spent, the admin's set-up, read-back and
/// clean-up (two providers created and deactivated, four lists, 15 cancellations) go past the limit
/// by 16 requests: no run is slow enough for the seconds it takes to give them back, so the
/// clean-up meets 429s and must wait them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_tokens_the_clean_up_waits_out_the_rate_limit() {
    given_tokens_a_load_run_cancels_every_booking(60, 53, 15, true).await;
}

/// Another clinic's agent token has every booking refused: that is the configuration, not the
/// service failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_token_of_another_organization_gives_exit_2_and_says_so() {
    use shared::Role;
    let app = spawn_app(Backend::Sqlite).await;
    let org = app.org_named("Staging Clinic", "America/New_York").await;
    let other = app.org_named("Another Clinic", "America/New_York").await;
    let (admin, agent) = (token(Role::Admin, Some(org.id)), token(Role::Agent, Some(other.id)));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = run(args(&dir, &["--target", &app.base, "--admin-token", &admin, "--agent-token", &agent])).await;
    assert_eq!(run.exit_code(), 2, "{:?}", run.report.reason);
    let reason = run.report.reason.unwrap_or_default();
    assert!(reason.contains("agent token"), "{reason}");
    assert!(run.report.cleanup.contains("1 provider(s) deactivated"), "{}", run.report.cleanup);
    assert!(org.admin.providers().await.expect("the providers").iter().all(|p| !p.active));
}

/// Told before the run, not after it: nothing is booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_cannot_be_written_gives_exit_2_before_the_run() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // Its folder would have to be a file.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").expect("a file");
    let report = blocker.join("report.json");
    let run =
        run(Args::parse_from(["smoke-test", "--report", report.to_str().expect("utf-8 path"), "--budget-ms", "30000"]))
            .await;
    assert_eq!(run.report_path, None);
    assert_eq!(run.exit_code(), 2, "{:?}", run.report.reason);
    assert_eq!(run.report.requests, 0, "nothing was booked");
    let reason = run.report.reason.unwrap_or_default();
    assert!(reason.contains("cannot write the report") && reason.contains("a-file"), "{reason}");
}
