//! The UAT's reports as people read them: the HTML report opened in a real headless Chromium
//! (Debian's `chromium`, driven over the W3C WebDriver protocol by `chromedriver`) shows the verdict
//! and what each step measured in plain words, and no report (HTML, JSON, JUnit, step summary)
//! shows Rust's debug text. Without Chromium the browser part says so loudly and skips, except
//! under `CI=true`, where it fails (`.ci/run` installs it).

use clap::Parser;
use std::path::{Path, PathBuf};
use test_kit::browser::{self, Browser};
use uat_orchestrator::cli::Cli;
use uat_orchestrator::reporter::Silent;
use uat_orchestrator::Exit;

/// What Rust's debug form of an answer looks like; no report may show it.
const DEBUG_TEXT: [&str; 4] = ["Err(", "Some(", "Ok(", "None"];

fn file_with(dir: &Path, extension: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == extension))
        .unwrap_or_else(|| panic!("a .{extension} report"))
}

fn assert_plain(what: &str, text: &str) {
    for debug in DEBUG_TEXT {
        assert!(!text.contains(debug), "the {what} shows Rust's debug text {debug:?}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_say_what_was_measured_in_plain_words() {
    let reports = tempfile::tempdir().expect("dir");
    let junit = reports.path().join("junit.xml");
    let summary = reports.path().join("summary.md");
    // This file holds this one test, so no other test sees the variable.
    std::env::set_var("GITHUB_STEP_SUMMARY", &summary);
    let cli = Cli::parse_from([
        "uat-orchestrator",
        "--scenario",
        "basic",
        "--report-dir",
        reports.path().to_str().expect("utf-8 path"),
        "--junit",
        junit.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(uat_orchestrator::run_with(cli, &Silent).await, Exit::Go);

    let json = std::fs::read_to_string(file_with(reports.path(), "json")).expect("JSON report");
    let report: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let booked = &report["scenarios"][0]["steps"][0];
    assert_eq!(booked["title"], "a Vapi tool-calls message books a slot");
    let measured = booked["measured"].as_str().expect("measured");
    assert!(measured.starts_with("answered: \"") && measured.contains("confirmation code"), "{measured}");
    let past = &report["scenarios"][0]["steps"][3];
    assert!(past["measured"].as_str().is_some_and(|m| m.starts_with("answered with an error: \"")), "{past}");
    for step in report["scenarios"][0]["steps"].as_array().expect("steps") {
        assert_plain("JSON report", step["measured"].as_str().unwrap_or_default());
    }
    let junit = std::fs::read_to_string(&junit).expect("JUnit report");
    assert!(junit.contains("answered: &quot;") || junit.contains("answered: \""), "{junit}");
    assert_plain("JUnit report", &junit);
    let summary = std::fs::read_to_string(&summary).expect("step summary");
    assert!(summary.contains("answered: \""), "{summary}");
    assert_plain("step summary", &summary);

    if !browser::available("the report's browser check") {
        return;
    }
    let html = file_with(reports.path(), "html");
    let browser = Browser::start().await;
    browser.goto(&format!("file://{}", html.display())).await;
    let verdict = browser.text(".verdict").await;
    let body = browser.text("body").await;
    browser.quit().await;
    assert_eq!(verdict, "GO", "the verdict is visible");
    assert!(body.contains("a Vapi tool-calls message books a slot — answered: \""), "{body}");
    assert!(body.contains("a past date gets a polite error — answered with an error: \""), "{body}");
    assert_plain("HTML report", &body);
}
