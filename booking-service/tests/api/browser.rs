//! The confirm page in a real headless Chromium (Debian's `chromium`), driven over the W3C
//! WebDriver protocol by `chromedriver`. The protocol is a handful of JSON calls, made here with
//! the reqwest client the tests already use. Without Chromium the test says so loudly and skips,
//! except under `CI=true`, where it fails (`.ci/run` installs it).

use crate::helpers::*;
use shared::api::{AppointmentStatus, BookingInput};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let message = format!(
        "the browser test needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); \
         .ci/run installs them (apt-get install chromium chromium-driver)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{message}");
    }
    eprintln!("\n**********\n*** SKIPPING the browser test: {message}\n**********\n");
    false
}

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
                        "--disable-quic", "--no-first-run",
                        format!("--user-data-dir={}", profile.path().display()),
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

    async fn title(&self) -> String {
        self.call(reqwest::Method::GET, "/title", serde_json::Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self
            .call(reqwest::Method::POST, "/element", serde_json::json!({ "using": "css selector", "value": css }))
            .await;
        let id = element[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {element}")).to_owned();
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), serde_json::json!({})).await;
    }

    async fn wait_for_title(&self, wanted: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let title = self.title().await;
            if title == wanted {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "title stayed {title:?}, wanted {wanted:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.endpoint, self.session)).send().await;
        let _ = self.driver.kill().await;
    }
}

async fn a_patient_confirms_in_a_real_browser(backend: Backend) {
    if !browser_available() {
        return;
    }
    let app = spawn_app(backend).await;
    let org = app.org("Europe/Paris").await;
    let provider = org.provider().await;
    let booked = org
        .agent
        .book(&BookingInput {
            patient_email: Some("ada@example.com".into()),
            ..booking(provider.id, days_ahead(8), "16:00")
        })
        .await
        .expect("booked");
    // The link as the patient gets it: from the .eml the service wrote.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let eml = loop {
        let found = std::fs::read_dir(app.mail_dir.path())
            .expect("mail folder")
            .filter_map(|e| e.ok())
            .find(|e| e.path().extension().is_some_and(|x| x == "eml"));
        if let Some(entry) = found {
            break std::fs::read_to_string(entry.path()).expect("readable .eml");
        }
        assert!(tokio::time::Instant::now() < deadline, "no .eml written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let unfolded = eml.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = unfolded.find(&format!("{}/confirm/", app.base)).expect("a confirm link");
    let link: String =
        unfolded[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || "-_:/.".contains(*c)).collect();

    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_for_title("Confirm your appointment").await;
    assert_eq!(
        org.staff.appointment(booked.appointment_id).await.expect("appointment").status,
        AppointmentStatus::Pending,
        "opening the page confirms nothing"
    );
    browser.click("form button[type=submit]").await;
    browser.wait_for_title("Appointment confirmed").await;
    browser.quit().await;
    assert_eq!(
        org.staff.appointment(booked.appointment_id).await.expect("appointment").status,
        AppointmentStatus::Confirmed
    );
}

on_both_backends!(a_patient_confirms_in_a_real_browser);
