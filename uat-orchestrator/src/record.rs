//! The plain record of a run: the scenarios, their steps, what they found, the criteria and the
//! judgement. Plain types only (serde; clap reads a scenario's name), importing nothing else of the
//! crate, so that the command line, the code that runs scenarios, the reporters, the judge and the
//! report writers can all depend on them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Basic,
    Concurrent,
    Isolation,
    ErrorHandling,
    Email,
    /// Not part of `all`: SMS, reminders and a webhook; in-process only, and it waits about a
    /// minute for a reminder.
    Notifications,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [Self::Basic, Self::Concurrent, Self::Isolation, Self::ErrorHandling, Self::Email];

    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Concurrent => "concurrent",
            Self::Isolation => "isolation",
            Self::ErrorHandling => "error-handling",
            Self::Email => "email",
            Self::Notifications => "notifications",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Basic => "A caller books through the voice agent",
            Self::Concurrent => "Simultaneous callers race for one slot",
            Self::Isolation => "Clinics cannot see or touch each other",
            Self::ErrorHandling => "Bad input and a lost database are handled",
            Self::Email => "The patient confirms by email",
            Self::Notifications => "Reminders, SMS and webhooks reach the patient and the clinic",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub index: usize,
    pub title: String,
    pub passed: bool,
    /// What was measured, e.g. "1 × 201, 4 × 409" or "143 ms".
    pub measured: String,
    /// A step that could not run (a transport or set-up problem) rather than a failed check.
    pub error: bool,
    pub skipped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub title: &'static str,
    pub passed: bool,
    pub duration_ms: u128,
    pub steps: Vec<Step>,
}

/// What the scenarios found that the criteria judge.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Findings {
    pub bookings_expected: u32,
    pub bookings_succeeded: u32,
    pub isolation_checks: u32,
    pub isolation_passed: u32,
    /// `Some(true)` once the race was run and produced exactly one booking.
    pub atomicity: Option<bool>,
    pub emails_expected: u32,
    pub emails_in_time: u32,
    pub email_latency_ms: Vec<u128>,
    pub lost_or_duplicate: Vec<String>,
    pub leaks: Vec<String>,
    pub token_bypass: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    pub name: String,
    pub threshold: String,
    pub measured: String,
    /// `None`: not assessed (pending).
    pub passed: Option<bool>,
}

impl Criterion {
    pub fn new(name: &str, threshold: impl Into<String>, measured: impl Into<String>, passed: Option<bool>) -> Self {
        Self { name: name.to_owned(), threshold: threshold.into(), measured: measured.into(), passed }
    }

    /// The criteria as a Markdown table for a step summary; `first` heads the name column and
    /// `judged` the last one.
    pub fn markdown_table(criteria: &[Criterion], first: &str, judged: &str) -> String {
        let mut md = format!("| {first} | threshold | measured | {judged} |\n|---|---|---|---|\n");
        for c in criteria {
            let passed = match c.passed {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "not judged",
            };
            md.push_str(&format!("| {} | {} | {} | {passed} |\n", c.name, c.threshold, c.measured));
        }
        md
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Decision {
    Go,
    NoGo,
}

/// The go/no-go judgement: the decision, every criterion, and why. The JSON report holds it as
/// `verdict`.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub decision: Decision,
    pub criteria: Vec<Criterion>,
    /// Why it is NO-GO, each named.
    pub reasons: Vec<String>,
    /// Criteria not assessed.
    pub pending: Vec<String>,
}
