//! What the tests of uat-orchestrator share.

use serde_json::Value;
use std::path::Path;

/// The JSON report a run wrote into `dir`.
pub fn json_report(dir: &Path) -> Value {
    let path = std::fs::read_dir(dir)
        .expect("report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("valid JSON")
}
