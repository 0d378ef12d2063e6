//! The canary gate against real instances of the service, with traffic driven against both during
//! the window: a healthy pair is promoted, a canary whose database is unreachable, or that refuses
//! what the baseline books, is rolled back, a canary restarted in the window is judged on the whole window, and a window without traffic
//! (or an instance that is down) cannot be judged.
//!
//! Each instance runs in a process of its own, as in production: the service's metrics are
//! process-wide, so two instances in one process would report the same figures. The test binary
//! starts itself again as the instance (`instance_process` below, ignored in a normal run), which
//! starts the service through its library on a SQLite database the test owns.

mod common;
use common::json_report;

use booking_service::config::Config;
use booking_service::startup::Application;
use clap::Parser;
use serde_json::{json, Value};
use shared::api::{BookingInput, CreateOrganization, CreateProvider};
use shared::{ApiClient, Role};
use sqlx::Connection;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_kit::{token, Backend, TestDatabase, SECRET};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use uat_orchestrator::cli::Cli;

/// Set in an instance process: the database it serves, and the address to listen on (else a free port).
const INSTANCE_DATABASE: &str = "CANARY_TEST_INSTANCE_DATABASE";
const INSTANCE_ADDRESS: &str = "CANARY_TEST_INSTANCE_ADDRESS";

#[test]
#[ignore = "the body of an instance process, started by the canary tests"]
fn instance_process() {
    let Ok(url) = std::env::var(INSTANCE_DATABASE) else {
        return;
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mail = tempfile::tempdir().expect("a mail folder");
        let mut config = Config::with_database(url);
        if let Ok(address) = std::env::var(INSTANCE_ADDRESS) {
            config.bind_addr = address;
        }
        config.jwt_secret = Some(SECRET.into());
        config.mail_dir = mail.path().to_path_buf();
        config.sms_dir = mail.path().join("sms");
        config.rate_limit_per_minute = 0;
        // A lost database answers 503 within a second.
        config.request_timeout_secs = 1;
        config.vapi_deadline_ms = 800;
        let running = Application::build(config).await.expect("the service starts").spawn();
        println!("INSTANCE {}", running.base_url());
        // Serves until the test closes stdin (or kills the process).
        let _ = tokio::io::stdin().read_to_end(&mut Vec::new()).await;
        let _ = running.stop().await;
    });
}

/// An instance of the service in a process of its own, with a clinic and a provider to book.
struct Instance {
    base: String,
    db: TestDatabase,
    staff: ApiClient,
    provider: uuid::Uuid,
    process: tokio::process::Child,
}

/// Starts an instance process on `db`, listening on `address` (a free port without one); returns
/// it and its base URL.
async fn spawn_process(db: &TestDatabase, address: Option<&str>) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["instance_process", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(INSTANCE_DATABASE, &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(address) = address {
        command.env(INSTANCE_ADDRESS, address);
    }
    let mut process = command.spawn().expect("the instance process starts");
    let mut lines = BufReader::new(process.stdout.take().expect("stdout")).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the instance's output") {
            // The harness has written "test instance_process ... " before it on the line.
            if let Some((_, base)) = line.split_once("INSTANCE ") {
                return base.trim().to_owned();
            }
        }
        panic!("the instance process ended without serving");
    })
    .await
    .expect("the instance serves within a minute");
    (process, base)
}

impl Instance {
    async fn start() -> Self {
        let db = TestDatabase::create(Backend::Sqlite).await.expect("a database");
        let (process, base) = spawn_process(&db, None).await;
        let platform = ApiClient::new(&base).with_token(token(Role::Platform, None));
        let org = platform
            .create_organization(&CreateOrganization { name: "Canary Clinic".into(), timezone: "UTC".into() })
            .await
            .expect("a clinic");
        let admin = platform.with_token(token(Role::Admin, Some(org.id)));
        let provider = admin
            .create_provider(&CreateProvider { name: "Dr. Canary".into(), ..Default::default() })
            .await
            .expect("a provider")
            .id;
        let staff = platform.with_token(token(Role::Staff, Some(org.id)));
        Self { base, db, staff, provider, process }
    }

    /// Kills the process (no graceful stop: its counters are lost with it) and starts a new one
    /// on the same database and address.
    async fn restart(&mut self) {
        self.process.kill().await.expect("kill the instance");
        let address = self.base.trim_start_matches("http://").to_owned();
        let (process, base) = spawn_process(&self.db, Some(&address)).await;
        assert_eq!(base, self.base, "the new process serves at the same address");
        self.process = process;
    }

    /// Takes the database away: another connection holds SQLite's write lock until it is dropped.
    async fn lock_database(&self) -> sqlx::SqliteConnection {
        let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.expect("open the database");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("take the write lock");
        conn
    }
}

/// Books distinct slots with `workers` callers until stopped, every fifth one asked for twice (a
/// refusal with alternatives, which the gate does not count against the canary).
fn drive(instance: &Instance, workers: usize, pause: Duration, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let (staff, provider) = (instance.staff.clone(), instance.provider);
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        let callers = (0..workers).map(|_| {
            let (staff, next, stop) = (staff.clone(), next.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let day = chrono::Utc::now().date_naive() + chrono::Days::new(2 + n as u64 / 40);
                    let input = BookingInput {
                        provider_id: Some(provider),
                        appointment_date: Some(day.format("%Y-%m-%d").to_string()),
                        appointment_time: Some(format!("{:02}:{:02}", (n % 40) / 2, (n % 2) * 30)),
                        patient_name: Some(format!("Caller {n}")),
                        ..Default::default()
                    };
                    let _ = staff.book(&input).await;
                    if n % 5 == 0 {
                        let _ = staff.book(&input).await;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        });
        futures::future::join_all(callers).await;
    })
}

fn canary_cli(baseline: &str, canary: &str, duration: &str, reports: &Path) -> Cli {
    let dir = reports.to_str().expect("utf-8 path");
    let junit = reports.join("canary.xml");
    Cli::parse_from([
        "uat-orchestrator",
        "canary",
        "--baseline",
        baseline,
        "--canary",
        canary,
        "--duration",
        duration,
        "--interval",
        "1s",
        "--min-requests",
        "20",
        "--min-bookings",
        "10",
        // Latency is judged by the gate's own runs, not by tests on a noisy machine.
        "--budget-ms",
        "30000",
        "--p95-slack-ms",
        "30000",
        "--report-dir",
        dir,
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ])
}

/// Runs the gate over `duration` while each `(instance, callers)` drives bookings of its own, then
/// stops them: the gate's exit code, its JSON report, and the folder it wrote them to.
async fn gate_under_traffic(
    baseline: &Instance,
    canary: &Instance,
    drivers: &[(&Instance, usize)],
    duration: &str,
) -> (u8, Value, tempfile::TempDir) {
    let stop = Arc::new(AtomicBool::new(false));
    let traffic: Vec<_> = drivers
        .iter()
        .map(|(instance, callers)| drive(instance, *callers, Duration::from_millis(25), stop.clone()))
        .collect();
    let reports = tempfile::tempdir().expect("dir");
    let code = uat_orchestrator::main(canary_cli(&baseline.base, &canary.base, duration, reports.path())).await;
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.expect("traffic");
    }
    (code, json_report(reports.path()), reports)
}

fn criterion<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["criteria"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted() {
    let (baseline, canary) = tokio::join!(Instance::start(), Instance::start());
    let (code, report, reports) = gate_under_traffic(&baseline, &canary, &[(&baseline, 2), (&canary, 2)], "3s").await;
    assert_eq!(code, 0, "promote: {report:#}");
    assert_eq!(report["decision"], "promote");
    for name in ["booking success rate", "p95 latency", "server errors (5xx)", "stayed up", "bookings refused (409)"] {
        assert_eq!(criterion(&report, name)["passed"], true, "{name}: {report:#}");
    }
    for side in ["baseline", "canary"] {
        let f = &report[side]["figures"];
        assert!(f["bookings_succeeded"].as_u64() >= Some(10), "{side} booked in the window: {f}");
        assert!(f["bookings_refused"].as_u64() >= Some(1), "{side} refused a taken slot: {f}");
        assert_eq!(f["bookings_failed"], 0, "{side}: {f}");
        assert!(report[side]["scrapes"].as_u64() >= Some(3), "scraped at the start, between and at the end");
    }
    let xml = std::fs::read_to_string(reports.path().join("canary.xml")).expect("junit written");
    assert_eq!(xml.matches("<testcase ").count(), 7, "{xml}");
    assert!(xml.contains("<testcase name=\"decision\" classname=\"canary\"/>"), "the decision, passed: {xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_lost_its_database_is_rolled_back() {
    let (baseline, canary) = tokio::join!(Instance::start(), Instance::start());
    let lock = canary.lock_database().await;
    // The broken side's bookings each wait a second for their 503: more callers keep its
    // booking attempts above the gate's minimum.
    let (code, report, reports) = gate_under_traffic(&baseline, &canary, &[(&baseline, 2), (&canary, 12)], "4s").await;
    drop(lock);
    assert_eq!(code, 1, "roll back: {report:#}");
    assert_eq!(report["decision"], "rollback");
    assert_eq!(criterion(&report, "booking success rate")["passed"], false, "{report:#}");
    assert_eq!(criterion(&report, "server errors (5xx)")["passed"], false, "{report:#}");
    assert!(report["canary"]["figures"]["server_errors"].as_u64() >= Some(10), "{report:#}");
    let reasons = report["reasons"].to_string();
    assert!(reasons.contains("booking success rate") && reasons.contains("server errors"), "{reasons}");
    let xml = std::fs::read_to_string(reports.path().join("canary.xml")).expect("junit written");
    assert!(xml.contains("<failure"), "{xml}");
}

/// A canary that refuses half its bookings books everything it does not refuse: its success rate
/// holds, and only comparing its share of refusals with the baseline's rolls it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_refusing_what_the_baseline_books_is_rolled_back() {
    let (baseline, canary) = tokio::join!(Instance::start(), Instance::start());
    // Two drivers walk the canary's slots in the same order: one of them finds each slot taken.
    let drivers = [(&baseline, 2), (&canary, 1), (&canary, 1)];
    let (code, report, _reports) = gate_under_traffic(&baseline, &canary, &drivers, "3s").await;
    assert_eq!(code, 1, "roll back: {report:#}");
    assert_eq!(criterion(&report, "bookings refused (409)")["passed"], false, "{report:#}");
    for held in ["booking success rate", "server errors (5xx)", "stayed up"] {
        assert_eq!(criterion(&report, held)["passed"], true, "{held}: {report:#}");
    }
    let voice = criterion(&report, "voice booking errors");
    assert_eq!((&voice["name"], &voice["passed"]), (&json!("voice booking errors"), &Value::Null), "no voice traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_restarted_in_the_window_is_counted_whole_and_rolled_back() {
    let (baseline, mut canary) = tokio::join!(Instance::start(), Instance::start());
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = [
        drive(&baseline, 2, Duration::from_millis(25), stop.clone()),
        drive(&canary, 2, Duration::from_millis(25), stop.clone()),
    ];
    let reports = tempfile::tempdir().expect("dir");
    let gate = uat_orchestrator::main(canary_cli(&baseline.base, &canary.base, "6s", reports.path()));
    let restart = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        canary.restart().await;
    };
    let (code, ()) = tokio::join!(gate, restart);
    stop.store(true, Ordering::Relaxed);
    for t in traffic {
        t.await.expect("traffic");
    }
    let report = json_report(reports.path());
    // Its counters held up, but a canary that restarted in its window is not one to promote.
    assert_eq!(code, 1, "roll back: {report:#}");
    assert_eq!(report["canary"]["restarts"], 1, "{report:#}");
    assert_eq!(criterion(&report, "stayed up")["passed"], false, "{report:#}");
    for held in ["booking success rate", "server errors (5xx)"] {
        assert_eq!(criterion(&report, held)["passed"], true, "{held}: {report:#}");
    }
    // The new process counts only what came after the restart; the window also kept what came before.
    let since_restart =
        reqwest::get(format!("{}/metrics", canary.base)).await.expect("scrape").text().await.expect("text");
    let since_restart = uat_orchestrator::metrics::Figures::from_samples(
        uat_orchestrator::metrics::parse(&since_restart).expect("Prometheus text"),
    );
    let in_window = report["canary"]["figures"]["bookings_succeeded"].as_u64().expect("a count");
    assert!(
        in_window > since_restart.bookings_succeeded + 20,
        "the window holds the bookings of both processes: {in_window} in the window, {} since the restart",
        since_restart.bookings_succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_it_cannot_judge_and_a_canary_down_is_rolled_back() {
    let (baseline, canary) = tokio::join!(Instance::start(), Instance::start());
    let reports = tempfile::tempdir().expect("dir");
    let code = uat_orchestrator::main(canary_cli(&baseline.base, &canary.base, "1s", reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["decision"], "could_not_judge");
    assert!(report["reasons"].to_string().contains("too little traffic"), "{report:#}");

    // A canary that answers no scrape while the baseline does is down: a roll back, not a step
    // held with its traffic on a release that is not there.
    let reports = tempfile::tempdir().expect("dir");
    let code = uat_orchestrator::main(canary_cli(&baseline.base, "http://127.0.0.1:9", "1s", reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["decision"], "rollback");
    assert!(report["reasons"].to_string().contains("the canary is down: its last 2 scrapes failed"), "{report:#}");

    // With neither answering, nothing says which is at fault.
    let reports = tempfile::tempdir().expect("dir");
    let code =
        uat_orchestrator::main(canary_cli("http://127.0.0.1:9", "http://127.0.0.1:9", "1s", reports.path())).await;
    let report = json_report(reports.path());
    assert_eq!(code, 2, "{report:#}");
    assert!(report["reasons"].to_string().contains("the canary did not answer"), "{report:#}");
}

/// A URL that is not http(s), or a report folder that cannot be written, is told at once instead
/// of after watching the whole window.
#[tokio::test]
async fn bad_urls_and_report_folders_are_refused_before_the_window() {
    let reports = tempfile::tempdir().expect("dir");
    let at_once = Duration::from_secs(30);
    let bad_urls = canary_cli("notaurl", "ftp://127.0.0.1:9", "15m", reports.path());
    let code = tokio::time::timeout(at_once, uat_orchestrator::main(bad_urls)).await.expect("refused at once");
    assert_eq!(code, 2);
    std::fs::write(reports.path().join("a-file"), "x").expect("a file");
    let below_a_file = reports.path().join("a-file/reports");
    let unwritable = canary_cli("http://127.0.0.1:9", "http://127.0.0.1:9", "15m", &below_a_file);
    let code = tokio::time::timeout(at_once, uat_orchestrator::main(unwritable)).await.expect("refused at once");
    assert_eq!(code, 2);
    assert_eq!(std::fs::read_dir(reports.path()).expect("the folder").count(), 1, "no report was written");
}
