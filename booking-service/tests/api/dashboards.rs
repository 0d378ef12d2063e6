//! The alerts (deploy/prometheus/alerts.yml) and the dashboard (deploy/grafana/booking-service.json)
//! name only metrics a running service exports: a renamed metric fails here, not in production.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use shared::api::CreateProvider;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn deploy_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The metric names of a Prometheus text exposition (`_bucket`, `_sum`, `_count` as exported).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// PromQL's functions, aggregations and keywords: every other name in an expression is a metric.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "histogram_quantile",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "last_over_time",
    "absent",
    "absent_over_time",
    "changes",
    "resets",
    "clamp_min",
    "clamp_max",
    "abs",
    "ceil",
    "floor",
    "round",
    "vector",
    "scalar",
    "time",
    "label_replace",
    "label_join",
    "inf",
    "nan",
];

/// The metric names an expression reads: label matchers, ranges, strings and the label lists
/// of `by (…)`, `on (…)` and the like left out; `$variables` of Grafana too.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut skip_labels) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_labels => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                skip_labels = false;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                skip_labels = ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word.as_str());
                if !PROMQL_WORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (with an exponent or a duration unit): not a name.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The expressions and recorded names of a rules file. Its `expr:` values are one line or a
/// `|` block; that is all the file uses, and the count is checked by the caller.
fn rules(yaml: &str) -> (Vec<String>, BTreeSet<String>) {
    let lines: Vec<&str> = yaml.lines().collect();
    let (mut exprs, mut recorded) = (Vec::new(), BTreeSet::new());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some(name) = trimmed.strip_prefix("record:") {
            recorded.insert(name.trim().to_owned());
        }
        if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            if value == "|" || value == ">" {
                let indent = line.len() - line.trim_start().len();
                let mut block = String::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty() || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    block.push_str(lines[i].trim());
                    block.push('\n');
                    i += 1;
                }
                exprs.push(block);
                continue;
            }
            exprs.push(value.to_owned());
        }
        i += 1;
    }
    (exprs, recorded)
}

/// Every `expr` of the dashboard's panels and every metric its variables query.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        ("definition" | "query", Value::String(query)) if query.starts_with("label_values(") => {
                            // label_values(METRIC, LABEL): the metric is an expression.
                            let inner = query.trim_start_matches("label_values(").trim_end_matches(')');
                            out.push(inner.rsplit_once(',').map_or(inner, |(metric, _)| metric).to_owned());
                        }
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

#[test]
fn metric_names_are_found_in_expressions() {
    let expr = r#"histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~"/a|/b", instance=~"$instance"}[$__rate_interval]))) > 0.5 and on (pool) x:y:z offset 5m or vector(0) * 1e3"#;
    let names: Vec<String> = metrics_in(expr).into_iter().collect();
    assert_eq!(names, ["http_request_duration_seconds_bucket", "x:y:z"]);
    let (exprs, recorded) =
        rules("- record: a:b\n  expr: |\n    sum(rate(m1[5m]))\n      / m2\n- alert: A\n  expr: up == 0\n");
    assert_eq!(exprs, ["sum(rate(m1[5m]))\n/ m2\n", "up == 0"]);
    assert_eq!(recorded.into_iter().collect::<Vec<_>>(), ["a:b"]);
}

/// Each alert's runbook is a heading of docs/OPERATIONS.md, named as the alert is.
#[test]
fn every_alert_has_its_section_in_the_operations_guide() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md"))
        .expect("docs/OPERATIONS.md");
    let sections: BTreeSet<String> =
        guide.lines().filter_map(|l| l.strip_prefix("### ")).map(|h| h.trim().to_lowercase()).collect();
    let alerts = deploy_file("prometheus/alerts.yml");
    let mut names = alerts.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).peekable();
    let runbooks: Vec<&str> = alerts.lines().filter_map(|l| l.trim().strip_prefix("runbook: ")).collect();
    assert!(names.peek().is_some(), "no alert found in alerts.yml");
    for (name, runbook) in names.zip(&runbooks) {
        let anchor = name.to_lowercase();
        assert_eq!(*runbook, format!("docs/OPERATIONS.md#{anchor}"), "{name}'s runbook");
        assert!(sections.contains(&anchor), "docs/OPERATIONS.md has no section \"### {name}\"");
    }
    assert_eq!(runbooks.len(), alerts.matches("- alert: ").count(), "an alert without a runbook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported() {
    let app = spawn_app(Backend::Sqlite).await;
    let org = app.org("America/New_York").await;
    let provider = org.provider_with(CreateProvider { name: "Dr. Metrics".into(), ..Default::default() }).await;
    // A booking with mail (bookings_total, emails_total), one refused, and a voice-agent tool
    // call (vapi_tool_calls_total). No server error is needed: the status is a label of
    // http_requests_total, not another metric.
    let mut input = booking(provider.id, days_ahead(3), "10:00");
    input.patient_email = Some("ada@example.com".into());
    org.agent.book(&input).await.expect("booked");
    let _ = org.agent.book(&booking(provider.id, days_ahead(3), "10:00")).await;
    let call = json!({"message": {"type": "tool-calls", "call": {"id": "metrics", "customer": {"number": "+15550001111"}},
        "toolCallList": [{"id": "c1", "type": "function", "function": {"name": "check_availability", "arguments": {}}}]}});
    let answer = org.agent.request(Method::POST, "/api/vapi/tools").json(&call).send().await.expect("sent");
    assert_eq!(answer.status(), 200);

    let alerts = deploy_file("prometheus/alerts.yml");
    let (alert_exprs, recorded) = rules(&alerts);
    assert!(alert_exprs.len() >= 13, "found only {} expressions in alerts.yml", alert_exprs.len());
    let dashboard: Value =
        serde_json::from_str(&deploy_file("grafana/booking-service.json")).expect("the dashboard is JSON");
    let dashboard_exprs = dashboard_exprs(&dashboard);
    assert!(dashboard_exprs.len() >= 20, "found only {} expressions in the dashboard", dashboard_exprs.len());

    // Prometheus' own `up`, and for the alerts the names their recording rules define.
    let wanted = |exprs: &[String], also: &BTreeSet<String>| -> BTreeSet<(String, String)> {
        exprs
            .iter()
            .flat_map(|expr| metrics_in(expr).into_iter().map(move |name| (name, expr.clone())))
            .filter(|(name, _)| name != "up" && !also.contains(name))
            .collect()
    };
    let mut needed = wanted(&alert_exprs, &recorded);
    needed.extend(wanted(&dashboard_exprs, &BTreeSet::new()));

    // The gauges are sampled every few seconds and mail goes out within a poll: wait for both.
    let mut missing = Vec::new();
    for _ in 0..100 {
        let text = app.anon.request(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
        let exported = exported(&text);
        missing = needed.iter().filter(|(name, _)| !exported.contains(name)).cloned().collect();
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("names used but not exported by the service:\n{missing:#?}");
}
