//! The daily report against the service in-process: the day's bookings, cancellations and figures,
//! judged against the go/no-go thresholds. This file holds one test, so the process-wide metrics
//! it reads hold this test's traffic only.

use clap::Parser;
use serde_json::Value;
use shared::api::BookingInput;
use shared::Role;
use std::path::{Path, PathBuf};
use test_kit::{spawn_app, token, Backend};
use uat_orchestrator::cli::Cli;

/// Runs the report and returns its exit code, its JSON, and the JSON's path.
async fn report(base: &str, staff_token: &str, dir: &Path, extra: &[&str]) -> (u8, Value, PathBuf) {
    let args = [
        "uat-orchestrator",
        "report",
        "--target",
        base,
        "--staff-token",
        staff_token,
        "--since",
        "24h",
        "--report-dir",
        dir.to_str().expect("utf-8 path"),
        // Latency is the gate runs' to judge (`.ci/run`), not a test's on a noisy machine: these
        // verdicts turn on the counts alone.
        "--budget-ms",
        "60000",
    ];
    let cli = Cli::parse_from(args.iter().chain(extra));
    let code = uat_orchestrator::main(cli).await;
    let newest = std::fs::read_dir(dir)
        .expect("report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .expect("a JSON report");
    (code, serde_json::from_slice(&std::fs::read(&newest).expect("read")).expect("valid JSON"), newest)
}

fn booking(provider: uuid::Uuid, days: u64, time: &str) -> BookingInput {
    let day = chrono::Utc::now().date_naive() + chrono::Days::new(days);
    BookingInput {
        provider_id: Some(provider),
        appointment_date: Some(day.format("%Y-%m-%d").to_string()),
        appointment_time: Some(time.into()),
        patient_name: Some("Ada Lovelace".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_report_counts_the_day_and_judges_it_against_the_thresholds() {
    let app = spawn_app(Backend::Sqlite).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await.id;
    let mut booked = Vec::new();
    for (days, time) in [(3, "09:00"), (3, "10:00"), (4, "09:00"), (5, "11:30"), (6, "14:00")] {
        booked.push(org.staff.book(&booking(provider, days, time)).await.expect("booked").appointment_id);
    }
    // A taken slot is refused with alternatives: the service did its job, not a failure.
    assert!(org.staff.book(&booking(provider, 3, "09:00")).await.is_err());
    org.staff.cancel(booked[0], Some("patient called")).await.expect("cancelled");

    let staff = token(Role::Staff, Some(org.id));
    let dir = tempfile::tempdir().expect("dir");
    let (code, day, _) = report(&app.base, &staff, dir.path(), &[]).await;
    assert_eq!(code, 0, "within the thresholds: {day:#}");
    assert_eq!(day["outcome"], "within");
    let a = &day["appointments"];
    assert_eq!(a["booked"], 5, "{a}");
    assert_eq!(a["booked_by_status"], serde_json::json!({"pending": 4, "cancelled": 1}), "{a}");
    assert_eq!(a["cancelled"], 1, "{a}");
    assert_eq!(a["no_shows"], 0, "{a}");
    assert_eq!(day["metrics"]["bookings_succeeded"], 5, "{day:#}");
    assert_eq!(day["metrics"]["bookings_refused"], 1, "{day:#}");
    assert_eq!(day["success_rate"], 100.0);
    assert!(day["p95_ms"].as_f64().is_some_and(|p| p > 0.0), "{day:#}");

    // Bookings that fail (an unknown provider, twice) take the success rate under 95%.
    for _ in 0..2 {
        assert!(org.staff.book(&booking(uuid::Uuid::new_v4(), 3, "12:00")).await.is_err());
    }
    let (code, day, yesterday) = report(&app.base, &staff, dir.path(), &[]).await;
    assert_eq!(code, 1, "a threshold missed: {day:#}");
    assert_eq!(day["outcome"], "missed");
    assert!(day["reasons"].to_string().contains("booking success rate: 71.4%"), "{day:#}");

    // Counted from that report on, the metrics hold only what happened since: one booking.
    org.staff.book(&booking(provider, 7, "09:00")).await.expect("booked");
    let previous = yesterday.to_str().expect("utf-8 path");
    let (code, day, _) = report(&app.base, &staff, dir.path(), &["--previous", previous]).await;
    assert_eq!(code, 0, "within the thresholds again: {day:#}");
    assert_eq!(
        (day["metrics"]["bookings_succeeded"].as_u64(), day["metrics"]["bookings_failed"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(day["metrics_since"].is_string(), "{day:#}");

    // Counted from a report of a process that has since restarted (its start time differs):
    // everything this process counted is new, though each counter is past the earlier report's.
    let mut earlier: Value = serde_json::from_slice(&std::fs::read(&yesterday).expect("read")).expect("JSON");
    let instances = earlier["metrics_snapshot"]["instances"].as_object_mut().expect("a snapshot");
    for sample in instances.values_mut().flat_map(|samples| samples.as_array_mut().expect("samples")) {
        if sample["name"] == "process_start_time_seconds" {
            sample["value"] = serde_json::json!(1.0);
        }
    }
    let elsewhere = tempfile::tempdir().expect("dir");
    let restarted = elsewhere.path().join("before-a-restart.json");
    std::fs::write(&restarted, earlier.to_string()).expect("write");
    let previous = restarted.to_str().expect("utf-8 path");
    let (_, day, _) = report(&app.base, &staff, dir.path(), &["--previous", previous]).await;
    assert_eq!(
        (day["metrics"]["bookings_succeeded"].as_u64(), day["metrics"]["bookings_failed"].as_u64()),
        (Some(6), Some(2)),
        "{day:#}"
    );

    // A token the service refuses: the report cannot judge the day.
    let (code, day, _) = report(&app.base, "not-a-token", dir.path(), &[]).await;
    assert_eq!(code, 2, "{day:#}");
    assert!(day["reasons"].to_string().contains("could not list the appointments"), "{day:#}");

    // An instance that keeps its metrics behind METRICS_TOKEN: not judged without the token, read
    // with it.
    const METRICS_TOKEN: &str = "a-metrics-token-of-at-least-32-bytes";
    let guarded = test_kit::spawn_on(app.db.clone(), |c| c.metrics_token = Some(METRICS_TOKEN.into())).await;
    let (code, day, _) = report(&guarded.base, &staff, dir.path(), &[]).await;
    assert_eq!(code, 2, "{day:#}");
    assert!(day["reasons"].to_string().contains("answered 401"), "{day:#}");
    let (code, day, _) = report(&guarded.base, &staff, dir.path(), &["--metrics-token", METRICS_TOKEN]).await;
    assert_ne!(code, 2, "{day:#}");
    assert!(day["metrics"]["bookings_succeeded"].as_u64().is_some_and(|n| n >= 6), "{day:#}");
}
