//! A real headless Chromium (Debian's `chromium`), driven over the W3C WebDriver protocol by
//! `chromedriver`: the protocol is a handful of JSON calls, made with reqwest. Tests that open a
//! page in it ask [`available`] first: without Chromium it says so loudly and the test skips,
//! except under `CI=true`, where it fails (`.ci/run` installs it).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether Chromium and ChromeDriver are installed; `what` names the test that needs them.
pub fn available(what: &str) -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    let message = format!(
        "{what} needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); \
         .ci/run installs them (apt-get install chromium chromium-driver)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{message}");
    }
    eprintln!("\n**********\n*** SKIPPING: {message}\n**********\n");
    false
}

/// One headless browser session, ended by [`Browser::quit`] (or by dropping it).
pub struct Browser {
    driver: tokio::process::Child,
    endpoint: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
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
        // Without the background-networking flags Chromium tries Google's hosts, which this
        // machine's closed network refuses.
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

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", serde_json::json!({ "url": url })).await;
    }

    pub async fn title(&self) -> String {
        self.call(reqwest::Method::GET, "/title", serde_json::Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let element = self
            .call(reqwest::Method::POST, "/element", serde_json::json!({ "using": "css selector", "value": css }))
            .await;
        element[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {element}")).to_owned()
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), serde_json::json!({})).await;
    }

    /// The rendered text of the first element matching `css`, as a person sees it.
    pub async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        let text = self.call(reqwest::Method::GET, &format!("/element/{id}/text"), serde_json::Value::Null).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute of the first element matching `css` (empty when it has none).
    pub async fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.element(css).await;
        let value =
            self.call(reqwest::Method::GET, &format!("/element/{id}/attribute/{name}"), serde_json::Value::Null).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Waits up to 15 s for the page's title to become `wanted`.
    pub async fn wait_for_title(&self, wanted: &str) {
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

    pub async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.endpoint, self.session)).send().await;
        let _ = self.driver.kill().await;
    }
}
