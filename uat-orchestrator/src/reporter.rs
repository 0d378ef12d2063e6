//! What the run says while it goes: the scenarios are handed a [`Reporter`] and tell it each step
//! as they record it, so they depend on this trait and not on how (or whether) it is printed.

use crate::record::{Judgement, Scenario, ScenarioReport, Step};
use std::path::Path;

pub trait Reporter: Sync {
    /// The run is about to check `target`; `in_process` when the run started it itself.
    fn banner(&self, target: &str, in_process: bool);
    /// Whether the target answered ready, and what it said.
    fn environment(&self, ok: bool, detail: &str);
    fn scenario(&self, scenario: Scenario);
    /// A step just recorded; `total` is how many steps the scenario plans.
    fn step(&self, step: &Step, total: usize);
    fn summary(&self, scenarios: &[ScenarioReport], judgement: &Judgement);
    fn reports_written(&self, json: &Path, html: &Path);
}

/// Says nothing: for embedding a run whose caller reads the reports instead.
pub struct Silent;

impl Reporter for Silent {
    fn banner(&self, _: &str, _: bool) {}
    fn environment(&self, _: bool, _: &str) {}
    fn scenario(&self, _: Scenario) {}
    fn step(&self, _: &Step, _: usize) {}
    fn summary(&self, _: &[ScenarioReport], _: &Judgement) {}
    fn reports_written(&self, _: &Path, _: &Path) {}
}
