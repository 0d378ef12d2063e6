//! The JSON report: every measured figure, and each check with its threshold, its measured value
//! and an explicit `passed`.

use crate::stats::Summary;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::report_file::write_whole;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the run concluded, and the process exit code that says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check passed: exit 0.
    Pass,
    /// A check failed: exit 1.
    Fail,
    /// The run could not judge (bad configuration, target down, interrupted): exit 2.
    CouldNotJudge,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Pass => 0,
            Self::Fail => 1,
            Self::CouldNotJudge => 2,
        }
    }

    pub fn from_checks(checks: &[Check]) -> Self {
        if checks.iter().all(|c| c.passed) {
            Self::Pass
        } else {
            Self::Fail
        }
    }
}

/// One gate: `measured` compared with `threshold` gave `passed`; `detail` says why in words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub threshold: Value,
    pub measured: Value,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(
        name: &str,
        threshold: impl Into<Value>,
        measured: impl Into<Value>,
        passed: bool,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            threshold: threshold.into(),
            measured: measured.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// One request of the race, as the report lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    pub slot: u32,
    pub worker: u32,
    /// HTTP status, or `null` for a transport error.
    pub status: Option<u16>,
    /// `created`, `conflict`, `unexpected` or `transport`.
    pub outcome: String,
    pub from_release_us: u64,
    pub per_request_us: u64,
    /// The service's own `latency_ms` (201 answers carry it).
    pub service_ms: Option<f64>,
    pub confirmation_code: Option<String>,
    /// Error code or message of anything unexpected.
    pub error: Option<String>,
}

/// The load mode's own figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LoadFigures {
    pub target_rate: f64,
    pub duration_s: f64,
    pub planned: u64,
    pub sent: u64,
    pub completed: u64,
    pub created: u64,
    /// Requests the generator started more than `late_after_ms` after their intended time.
    pub late: u64,
    pub late_after_ms: u64,
    /// Largest delay of an actual send behind its intended time.
    pub max_send_delay_us: u64,
    /// Sent per second over the sending period.
    pub send_rate: f64,
    /// 201 answers per second, from the first intended send to the last answer.
    pub success_rate: f64,
    pub errors_by_class: BTreeMap<String, u64>,
    pub max_in_flight: usize,
    pub providers: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub tool: String,
    pub version: String,
    /// `race` (conflicting bookings) or `load` (constant arrival rate).
    pub mode: String,
    pub started_at: String,
    pub target: String,
    pub target_kind: String,
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Why the run failed or could not judge; `null` on a pass.
    pub reason: Option<String>,
    pub settings: Value,
    pub requests: u64,
    /// Answers by kind: `created`, `conflict`, `unexpected`, `transport`.
    pub outcomes: BTreeMap<String, u64>,
    /// `from_release` / `from_intended` (the corrected figure), `per_request` (own send to last
    /// byte, uncorrected), `service` (the service's `latency_ms`), all in µs.
    pub latency: BTreeMap<String, Summary>,
    /// Answers per second over the wall time.
    pub throughput_rps: f64,
    pub wall_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub load: Option<LoadFigures>,
    pub checks: Vec<Check>,
    /// `done`, `kept` (--keep), `nothing to remove`, or what was left behind.
    pub cleanup: String,
    #[serde(default)]
    pub request_log: Vec<RequestRecord>,
}

impl Report {
    /// A report of a run that could not judge: no figures, the reason.
    pub fn could_not_judge(mode: &str, target: &str, settings: Value, reason: String) -> Self {
        Self {
            tool: "smoke-test".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            mode: mode.into(),
            started_at: now_rfc3339(),
            target: target.into(),
            target_kind: String::new(),
            verdict: Verdict::CouldNotJudge,
            exit_code: Verdict::CouldNotJudge.exit_code(),
            reason: Some(reason),
            settings,
            requests: 0,
            outcomes: BTreeMap::new(),
            latency: BTreeMap::new(),
            throughput_rps: 0.0,
            wall_ms: 0.0,
            load: None,
            checks: Vec::new(),
            cleanup: String::new(),
            request_log: Vec::new(),
        }
    }

    /// Sets the verdict from the checks, with the failed checks' details as the reason.
    pub fn conclude(&mut self) {
        self.verdict = Verdict::from_checks(&self.checks);
        self.exit_code = self.verdict.exit_code();
        let failed: Vec<String> =
            self.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect();
        self.reason = (!failed.is_empty()).then(|| failed.join("; "));
    }

    /// Writes the report as pretty JSON, creating the folder.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_vec_pretty(self)?;
        write_whole(path, &json).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Could not judge when the stored appointments could not be read back and nothing else failed:
/// no double booking was seen, and none could be ruled out (a listing refused or cut by the
/// target is not a failed release).
pub fn unread(checks: &[Check]) -> Result<(), String> {
    let mut failed = checks.iter().filter(|c| !c.passed);
    match (failed.next(), failed.next()) {
        (Some(c), None) if c.name == "one_active_appointment_per_slot" && c.measured.is_null() => {
            Err(format!("the run passed its other checks, but {}", c.detail))
        }
        _ => Ok(()),
    }
}

/// `reports/smoke-<unix_ms>.json`.
pub fn default_path() -> PathBuf {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
    PathBuf::from("reports").join(format!("smoke-{ms}.json"))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    /// A read-back that failed alone cannot judge; beside another failure, the run fails as it stands.
    #[test]
    fn a_failed_read_back_alone_cannot_be_judged() {
        let failed_read =
            Check::new("one_active_appointment_per_slot", json!({}), Value::Null, false, "listing failed");
        let passed = Check::new("one_201_per_slot", json!({}), json!({"max": 1}), true, "");
        assert!(unread(&[passed.clone(), failed_read.clone()]).is_err_and(|e| e.contains("listing failed")));
        let twice = Check::new("one_201_per_slot", json!({}), json!({"max": 2}), false, "two 201s");
        assert_eq!(unread(&[twice, failed_read]), Ok(()));
        assert_eq!(unread(&[passed]), Ok(()));
    }

    /// A report is written whole to a new file and renamed into place, never truncated and written
    /// again: whoever holds the previous file (here, a second name of it) still reads it whole.
    #[test]
    fn a_report_replaces_the_previous_file_instead_of_rewriting_it() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("report.json");
        std::fs::write(&path, "previous").expect("a previous report");
        let held = dir.path().join("held.json");
        std::fs::hard_link(&path, &held).expect("a second name");
        let report = Report::could_not_judge("race", "in-process", Value::Null, "a reason".into());
        report.write(&path).expect("written");
        let written: Report = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("whole JSON");
        assert_eq!(written, report);
        assert_eq!(std::fs::read_to_string(&held).expect("read"), "previous");
        assert_eq!(std::fs::read_dir(dir.path()).expect("the folder").count(), 2, "no temporary file left");
    }
}
