//! The Serverless Workflow conformance runner: reads Gherkin feature files (the CTK's and our
//! own), runs each scenario against a fresh Baton runtime over SQLite and a local fake server,
//! and reports one result per scenario.
//!
//! A scenario passes only when every step is understood and holds: an unknown step, a parse
//! error or a step that cannot be checked is a failure with the reason, never a silent pass.

pub mod checks;
pub mod compare;
pub mod gherkin;
pub mod run;
pub mod steps;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::gherkin::{Feature, Scenario, Step};
use crate::run::World;
use crate::steps::{Action, parse_step};

/// Longest a scenario may run. Every scenario takes milliseconds; this only turns a hang into a
/// failure that names the scenario.
pub const SCENARIO_TIMEOUT_MS: u64 = 60_000;

/// The result of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioResult {
    /// The feature file's name without `.feature` (CTK feature titles repeat across files).
    pub feature: String,
    pub name: String,
    pub passed: bool,
    /// Why the scenario failed (`None` when it passed).
    pub message: Option<String>,
}

/// The directories `baton conformance serverless-workflow` runs by default: the CTK features
/// under `$BATON_STANDARDS_DIR` (default `../shared/standards`) and our own
/// `conformance/features`, both relative to the working directory.
pub fn default_dirs() -> Vec<PathBuf> {
    let standards = std::env::var_os("BATON_STANDARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/standards"));
    vec![
        standards.join("sw-spec/ctk/features"),
        PathBuf::from("conformance/features"),
    ]
}

/// Runs every `*.feature` file of each directory (files sorted by name), one scenario at a time.
/// A directory or file that cannot be read or parsed gives one failed result saying why.
pub async fn run_features(dirs: &[PathBuf]) -> Vec<ScenarioResult> {
    let mut results = Vec::new();
    for dir in dirs {
        match feature_files(dir) {
            Ok(files) => {
                for file in files {
                    results.extend(run_feature_file(&file).await);
                }
            }
            Err(message) => results.push(ScenarioResult {
                feature: dir.display().to_string(),
                name: "(directory)".into(),
                passed: false,
                message: Some(message),
            }),
        }
    }
    results
}

/// Runs the features and prints one line per scenario to stdout, a count per directory, and
/// last the line `N passed, M failed`. Returns true when nothing failed.
pub async fn run_cli(dirs: &[PathBuf]) -> bool {
    let mut passed = 0;
    let mut failed = 0;
    let mut per_dir = Vec::new();
    for dir in dirs {
        let results = run_features(std::slice::from_ref(dir)).await;
        for r in &results {
            match &r.message {
                None if r.passed => println!("PASS {}: {}", r.feature, r.name),
                message => println!(
                    "FAIL {}: {} — {}",
                    r.feature,
                    r.name,
                    one_line(message.as_deref().unwrap_or("failed"))
                ),
            }
        }
        let ok = results.iter().filter(|r| r.passed).count();
        per_dir.push((dir.display().to_string(), ok, results.len() - ok));
        passed += ok;
        failed += results.len() - ok;
    }
    for (dir, ok, bad) in per_dir {
        println!("{dir}: {ok} passed, {bad} failed");
    }
    println!("{passed} passed, {failed} failed");
    failed == 0
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn feature_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "feature"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs the scenarios of one file.
pub async fn run_feature_file(path: &Path) -> Vec<ScenarioResult> {
    let feature_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let failed = |name: &str, message: String| ScenarioResult {
        feature: feature_name.clone(),
        name: name.to_string(),
        passed: false,
        message: Some(message),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![failed(
                "(file)",
                format!("cannot read {}: {e}", path.display()),
            )];
        }
    };
    let feature = match gherkin::parse_feature(&text) {
        Ok(f) => f,
        Err(e) => return vec![failed("(file)", format!("{}: {e}", path.display()))],
    };
    if feature.scenarios.is_empty() {
        return vec![failed(
            "(file)",
            format!("{}: no scenarios", path.display()),
        )];
    }
    let mut results = Vec::new();
    for scenario in &feature.scenarios {
        let message = run_scenario(&feature, scenario).await.err();
        results.push(ScenarioResult {
            feature: feature_name.clone(),
            name: scenario.name.clone(),
            passed: message.is_none(),
            message,
        });
    }
    results
}

/// Runs one scenario: its steps are all read first (an unknown step fails the scenario before
/// anything runs), then performed in order; the first failing step ends it.
pub async fn run_scenario(feature: &Feature, scenario: &Scenario) -> Result<(), String> {
    let steps: Vec<&Step> = feature.background.iter().chain(&scenario.steps).collect();
    let mut actions = Vec::with_capacity(steps.len());
    for step in &steps {
        actions.push(parse_step(step).map_err(|e| at_step(step, &e))?);
    }
    let timeout = Duration::from_millis(SCENARIO_TIMEOUT_MS);
    match tokio::time::timeout(timeout, perform(&steps, actions)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the scenario did not finish within {SCENARIO_TIMEOUT_MS} ms"
        )),
    }
}

async fn perform(steps: &[&Step], actions: Vec<Action>) -> Result<(), String> {
    let mut world = World::new().await?;
    let mut checked = 0;
    for (step, action) in steps.iter().zip(actions) {
        match action {
            Action::Check(check) => {
                let outcome = world.outcome.as_ref().ok_or_else(|| {
                    at_step(step, "an assertion before the workflow was executed")
                })?;
                checks::check(&check, outcome, &world.server).map_err(|e| at_step(step, &e))?;
                checked += 1;
            }
            other => world.act(other).await.map_err(|e| at_step(step, &e))?,
        }
    }
    if world.outcome.is_none() {
        return Err("the scenario never executes the workflow".into());
    }
    if checked == 0 {
        return Err("the scenario asserts nothing".into());
    }
    Ok(())
}

fn at_step(step: &Step, message: &str) -> String {
    format!(
        "line {}, `{} {}`: {message}",
        step.line, step.keyword, step.text
    )
}
