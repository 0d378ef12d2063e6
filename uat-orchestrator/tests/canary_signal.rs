//! The canary gate cancelled mid-window, as a CI runner cancels a job (SIGTERM): it stops at
//! once, cannot judge, and says why in its reports. Until then its JUnit file says that it did not
//! finish, never an earlier run's decision. In a test binary of its own, since the signal goes to
//! the whole process.

mod common;
use common::json_report;

use clap::Parser;
use std::time::Duration;
use uat_orchestrator::cli::Cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_cancelled_by_sigterm_stops_and_cannot_judge() {
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("canary.xml");
    std::fs::write(&junit, "<testsuites tests=\"1\" failures=\"0\"/>").expect("an earlier file");
    let (dir, junit_arg) = (reports.path().to_str().expect("utf-8"), junit.to_str().expect("utf-8"));
    let nothing = "http://127.0.0.1:9";
    let cli = Cli::parse_from([
        "uat-orchestrator",
        "canary",
        "--baseline",
        nothing,
        "--canary",
        nothing,
        "--duration",
        "15m",
        "--interval",
        "1s",
        "--report-dir",
        dir,
        "--junit",
        junit_arg,
    ]);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let meanwhile = std::fs::read_to_string(&junit).expect("junit");
        assert!(meanwhile.contains("did not finish"), "{meanwhile}");
        let me = std::process::id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &me]).status().expect("kill");
        assert!(sent.success());
    };
    let gate = async { tokio::join!(uat_orchestrator::main(cli), cancel).0 };
    let code = tokio::time::timeout(Duration::from_secs(30), gate).await.expect("stopped well before 15m");
    let report = json_report(reports.path());
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["decision"], "could_not_judge");
    assert!(report["reasons"].to_string().contains("stopped by SIGTERM"), "{report:#}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains("stopped by SIGTERM"), "{xml}");
}
