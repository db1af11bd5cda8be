//! The DMN TCK runner: finds every test case under a `TestCases` folder,
//! evaluates it, compares results with the expected values, and reports per
//! compliance level and in the TCK's CSV format.
//!
//! Number comparison: exact, except that an expected value written with 15
//! or more significant digits (the TCK's expected values often come from
//! binary floating point, and Baton computes with 28-digit decimals, see
//! DESIGN.md) matches within a relative tolerance of 1e-12, about what a
//! double-precision computation of the same formula guarantees. Every other
//! comparison is exact.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use roxmltree::Node;
use rust_decimal::Decimal;

use crate::dmn::{DecisionModel, EvalOptions};
use crate::feel::temporal::{self, Date, DateTime, ParsedDuration, Time, Zone};
use crate::feel::value::{Context, Value, equals};

/// Outcome of one test case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
    Ignored,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Error => "ERROR",
            Outcome::Ignored => "IGNORED",
        }
    }
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The compliance level folder (`compliance-level-2`, ...).
    pub level: String,
    pub folder: String,
    pub file: String,
    pub id: String,
    pub outcome: Outcome,
    /// Why it failed (empty on success).
    pub detail: String,
}

#[derive(Clone, Debug, Default)]
pub struct TckReport {
    pub results: Vec<CaseResult>,
}

impl TckReport {
    /// (passed, total) for one compliance level folder name.
    pub fn level(&self, level: &str) -> (usize, usize) {
        let in_level = self.results.iter().filter(|r| r.level == level);
        let total = in_level.clone().count();
        (
            in_level.filter(|r| r.outcome == Outcome::Success).count(),
            total,
        )
    }

    /// Level folder names in sorted order.
    pub fn levels(&self) -> Vec<String> {
        let mut l: Vec<String> = self.results.iter().map(|r| r.level.clone()).collect();
        l.sort();
        l.dedup();
        l
    }

    /// The TCK results CSV: `"folder","file","id","SUCCESS|ERROR|IGNORED","detail"`.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            let q = |s: &str| s.replace('"', "\"\"").replace('\n', " ");
            let _ = writeln!(
                out,
                "\"{}\",\"{}\",\"{}\",\"{}\",\"{}\"",
                q(&r.folder),
                q(&r.file),
                q(&r.id),
                r.outcome.as_str(),
                q(&r.detail)
            );
        }
        out
    }
}

/// Accepts a standards folder, a `dmn-tck` folder or a `TestCases` folder.
fn test_cases_dir(dir: &Path) -> PathBuf {
    for cand in [dir.join("dmn-tck").join("TestCases"), dir.join("TestCases")] {
        if cand.is_dir() {
            return cand;
        }
    }
    dir.to_path_buf()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs every test case found under `dir`.
pub fn run_tck(dir: &Path) -> TckReport {
    let root = test_cases_dir(dir);
    let mut report = TckReport::default();
    for level_dir in sorted_entries(&root).into_iter().filter(|p| p.is_dir()) {
        let level = file_name(&level_dir);
        for case_dir in sorted_entries(&level_dir)
            .into_iter()
            .filter(|p| p.is_dir())
        {
            run_case_dir(&level, &case_dir, &mut report);
        }
    }
    report
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn run_case_dir(level: &str, case_dir: &Path, report: &mut TckReport) {
    let folder = file_name(case_dir);
    let files = sorted_entries(case_dir);
    let mut models: HashMap<String, Result<DecisionModel, String>> = HashMap::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "dmn"))
    {
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|x| DecisionModel::parse(&x).map_err(|e| e.to_string()));
        models.insert(file_name(f), parsed);
    }
    for tf in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "xml") && file_name(f).contains("-test-"))
    {
        let file = file_name(tf);
        let text = match std::fs::read_to_string(tf) {
            Ok(t) => t,
            Err(e) => {
                report.results.push(CaseResult {
                    level: level.into(),
                    folder: folder.clone(),
                    file,
                    id: String::new(),
                    outcome: Outcome::Error,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let doc = match roxmltree::Document::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                report.results.push(CaseResult {
                    level: level.into(),
                    folder: folder.clone(),
                    file,
                    id: String::new(),
                    outcome: Outcome::Error,
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let root = doc.root_element();
        let model_name = elements(root, "modelName")
            .next()
            .and_then(|n| n.text())
            .unwrap_or("")
            .trim()
            .to_string();
        let model = models
            .get(&model_name)
            .cloned()
            .unwrap_or_else(|| Err(format!("model file `{model_name}` not found")));
        for (i, tc) in elements(root, "testCase").enumerate() {
            let id = tc
                .attribute("id")
                .map(str::to_string)
                .unwrap_or_else(|| (i + 1).to_string());
            let (outcome, detail) = match &model {
                Ok(m) => run_test_case(m, tc),
                Err(e) => (Outcome::Error, e.clone()),
            };
            report.results.push(CaseResult {
                level: level.into(),
                folder: folder.clone(),
                file: file.clone(),
                id,
                outcome,
                detail,
            });
        }
    }
}

fn elements<'a, 'i: 'a>(
    n: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + Clone + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The real clock: the TCK runner is an outer layer (like the CLI), and the
/// `now()` / `today()` test cases need the actual time.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Option<DateTime> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let n = since.as_nanos() as i128;
    DateTime::from_local_nanos(n, Zone::Offset(0))
}

fn run_test_case(model: &DecisionModel, tc: Node<'_, '_>) -> (Outcome, String) {
    let mut input = Context::default();
    for n in elements(tc, "inputNode") {
        let name = n.attribute("name").unwrap_or("");
        input.put(Arc::from(name), read_value(n));
    }
    let kind = tc.attribute("type").unwrap_or("decision");
    let opts = EvalOptions {
        now: wall_clock(),
        ..EvalOptions::default()
    };
    let mut failures = Vec::new();
    for rn in elements(tc, "resultNode") {
        let name = rn.attribute("name").unwrap_or("");
        let expected = if rn.attribute("errorResult") == Some("true") {
            Value::Null
        } else {
            match elements(rn, "expected").next() {
                Some(e) => read_value(e),
                None => Value::Null,
            }
        };
        let actual = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match kind {
            "bkm" => model
                .invoke_bkm(tc.attribute("invocableName").unwrap_or(name), &input)
                .map_err(|e| e.to_string()),
            "decisionService" => model
                .evaluate_feel(tc.attribute("invocableName").unwrap_or(name), &input, &opts)
                .map(|r| match r.0 {
                    // A service with several outputs answers with a context
                    // keyed by output decision; each result node names one.
                    Value::Context(c) if c.get(name).is_some() => {
                        c.get(name).cloned().unwrap_or_default()
                    }
                    v => v,
                })
                .map_err(|e| e.to_string()),
            _ => model
                .evaluate_feel(name, &input, &opts)
                .map(|r| r.0)
                .map_err(|e| e.to_string()),
        }));
        match actual {
            Ok(Ok(v)) => {
                if !same(&v, &expected) {
                    failures.push(format!("{name}: expected {expected:#}, got {v:#}"));
                }
            }
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(_) => failures.push(format!("{name}: evaluation panicked")),
        }
    }
    if failures.is_empty() {
        (Outcome::Success, String::new())
    } else {
        (Outcome::Error, failures.join("; "))
    }
}

/// Reads a TCK `valueType` element (`value`, `component`s or `list`).
fn read_value(n: Node<'_, '_>) -> Value {
    let comps: Vec<Node<'_, '_>> = elements(n, "component").collect();
    if !comps.is_empty() {
        return Value::context(
            comps
                .iter()
                .map(|c| (Arc::from(c.attribute("name").unwrap_or("")), read_value(*c)))
                .collect(),
        );
    }
    if let Some(l) = elements(n, "list").next() {
        if is_nil(l) {
            return Value::Null;
        }
        return Value::list(elements(l, "item").map(read_value).collect());
    }
    match elements(n, "value").next() {
        Some(v) => scalar(v),
        None => Value::Null,
    }
}

fn is_nil(n: Node<'_, '_>) -> bool {
    n.attributes()
        .any(|a| a.name() == "nil" && a.value() == "true")
}

fn scalar(v: Node<'_, '_>) -> Value {
    if is_nil(v) {
        return Value::Null;
    }
    let text = v.text().unwrap_or("");
    let ty = v
        .attributes()
        .find(|a| a.name() == "type")
        .map(|a| a.value().rsplit(':').next().unwrap_or("").to_string());
    let t = text.trim();
    match ty.as_deref() {
        Some("decimal" | "double" | "integer" | "int" | "long" | "float" | "short") => {
            read_decimal(t).map(Value::Number).unwrap_or(Value::Null)
        }
        Some("boolean") => Value::Bool(t == "true"),
        Some("date") => Date::parse(t).map(Value::Date).unwrap_or(Value::Null),
        Some("time") => Time::parse(t).map(Value::Time).unwrap_or(Value::Null),
        Some("dateTime") => DateTime::parse(t)
            .map(Value::DateTime)
            .unwrap_or(Value::Null),
        Some("duration" | "dayTimeDuration" | "yearMonthDuration") => {
            match temporal::parse_duration(t) {
                Some(ParsedDuration::YearsMonths(m)) => Value::YmDuration(m),
                Some(ParsedDuration::DaysTime(n)) => Value::DtDuration(n),
                None => Value::Null,
            }
        }
        _ => Value::str(text),
    }
}

/// Parses a decimal, rounding away digits beyond what the type holds.
fn read_decimal(t: &str) -> Option<Decimal> {
    if t.contains(['e', 'E']) {
        return Decimal::from_scientific(t).ok();
    }
    Decimal::from_str(t).ok().or_else(|| {
        let (int, frac) = t.split_once('.')?;
        let keep = 28usize.saturating_sub(int.trim_start_matches('-').len());
        Decimal::from_str(&format!("{int}.{}", &frac[..frac.len().min(keep)])).ok()
    })
}

fn significant_digits(d: &Decimal) -> usize {
    d.normalize().mantissa().unsigned_abs().to_string().len()
}

fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(e)) => {
            if a == e {
                return true;
            }
            // Expected values with 15+ significant digits were usually
            // produced by binary floating point (or exceed our 28 digits):
            // compare at the expected value's own precision.
            let digits = significant_digits(e);
            if digits < 15 {
                return false;
            }
            let tolerance = e
                .abs()
                .checked_mul(Decimal::new(1, 12))
                .unwrap_or(Decimal::ZERO);
            a.checked_sub(*e).is_some_and(|d| d.abs() <= tolerance)
        }
        (Value::List(a), Value::List(e)) => {
            a.len() == e.len() && a.iter().zip(e.iter()).all(|(x, y)| same(x, y))
        }
        (Value::Context(a), Value::Context(e)) => {
            a.entries.len() == e.entries.len()
                && e.entries
                    .iter()
                    .all(|(k, ev)| a.get(k).is_some_and(|av| same(av, ev)))
        }
        (Value::Time(a), Value::Time(e)) => {
            a.to_string() == e.to_string()
                || (a.zone == e.zone && equals(actual, expected) == Some(true))
        }
        (Value::DateTime(a), Value::DateTime(e)) => {
            a.to_string() == e.to_string()
                || (a.time.zone == e.time.zone && equals(actual, expected) == Some(true))
        }
        (a, e) => a.type_name() == e.type_name() && equals(a, e) == Some(true),
    }
}

/// Runs the TCK and prints a line per compliance level and a closing
/// `N passed, M failed` line; writes the CSV when asked. For the CLI.
pub fn run_conformance_cli(dir: &Path, csv_out: Option<&Path>) -> (usize, usize) {
    let report = run_tck(dir);
    let mut passed = 0;
    let mut total = 0;
    for level in report.levels() {
        let (p, t) = report.level(&level);
        println!("{level}: {p}/{t}");
        passed += p;
        total += t;
    }
    if let Some(path) = csv_out
        && let Err(e) = std::fs::write(path, report.csv())
    {
        eprintln!("cannot write {}: {e}", path.display());
    }
    println!("{passed} passed, {} failed", total - passed);
    (passed, total - passed)
}
