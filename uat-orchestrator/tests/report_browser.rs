//! The UAT's reports as people read them: the HTML report opened in a real headless Chromium
//! (Debian's `chromium`, driven over the W3C WebDriver protocol by `chromedriver`) shows the verdict
//! and what each step measured in plain words, and no report (HTML, JSON, JUnit, step summary)
//! shows Rust's debug text. Without Chromium the browser part says so loudly and skips, except
//! under `CI=true`, where it fails (`.ci/run` installs it).

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use uat_orchestrator::cli::Cli;
use uat_orchestrator::reporter::Silent;
use uat_orchestrator::Exit;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// What Rust's debug form of an answer looks like; no report may show it.
const DEBUG_TEXT: [&str; 4] = ["Err(", "Some(", "Ok(", "None"];

fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let message = format!(
        "the report's browser test needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); \
         .ci/run installs them (apt-get install chromium chromium-driver)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{message}");
    }
    eprintln!("\n**********\n*** SKIPPING the browser check of the report: {message}\n**********\n");
    false
}

/// A headless Chromium session.
struct Browser {
    driver: tokio::process::Child,
    endpoint: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{endpoint}/status")).send().await {
                Ok(r) => r.json::<serde_json::Value>().await.is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let capabilities = serde_json::json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--no-first-run", format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }},
        });
        let created: serde_json::Value = http
            .post(format!("{endpoint}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Self { driver, endpoint, session, http, _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}/session/{}{path}", self.endpoint, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("webdriver call");
        let status = response.status();
        let value: serde_json::Value = response.json().await.expect("webdriver json");
        assert!(status.is_success(), "webdriver {path}: {status} {value}");
        value["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", serde_json::json!({ "url": url })).await;
    }

    /// The rendered text of the first element matching `css`, as a person sees it.
    async fn text(&self, css: &str) -> String {
        let element = self
            .call(reqwest::Method::POST, "/element", serde_json::json!({ "using": "css selector", "value": css }))
            .await;
        let id = element[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {element}")).to_owned();
        let text = self.call(reqwest::Method::GET, &format!("/element/{id}/text"), serde_json::Value::Null).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.endpoint, self.session)).send().await;
        let _ = self.driver.kill().await;
    }
}

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

    if !browser_available() {
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
