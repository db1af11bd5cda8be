//! Baton's task extensions under `metadata.baton` (see docs/extensions.md): completeness rules
//! for fan-outs (`complete`, `branch_ok`), deadlines with safe defaults (`deadline`,
//! `default`, `then`) and compensations (`compensate`, parsed and run in `saga.rs`).
//!
//! They live under the task's `metadata` because that is the extension point the Serverless
//! Workflow DSL gives every task: a flow that does not use them is plain Serverless Workflow and
//! runs exactly as the specification says. This module only parses the keys and computes a
//! fan-out's result from its branches; the racing and the running are in `interp.rs`.

use baton_flow::TaskBase;
use serde_json::{Map, Value, json};

use crate::problem::{ErrorKind, Problem};

/// Marks the effect key of a deadline's timer (`…#deadline`). A journaled outcome for such a key
/// means the deadline was reached before the task (or some of a fan-out's branches) resolved:
/// the declared default was taken. That is how the journal shows `default-taken` without a new
/// kind of entry.
pub const DEADLINE_KEY_MARK: &str = "#deadline";

/// Whether `key` is the timer of a `metadata.baton.deadline`.
pub fn is_deadline_key(key: &str) -> bool {
    key.ends_with(DEADLINE_KEY_MARK)
}

/// How many branches of a fan-out must be OK.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    /// Every branch: anything less is `unknown`.
    All,
    /// At least N branches: fewer is `unknown`.
    AtLeast(u64),
    /// At least `ceil(f × total)` branches.
    Fraction(f64),
    /// More than half of the branches.
    Quorum,
}

impl Rule {
    fn parse(v: &Value) -> Result<Rule, String> {
        match v {
            Value::String(s) if s == "all" => Ok(Rule::All),
            Value::String(s) if s == "quorum" => Ok(Rule::Quorum),
            Value::Object(o) if o.len() == 1 => {
                if let Some(n) = o.get("at_least") {
                    return n
                        .as_u64()
                        .map(Rule::AtLeast)
                        .ok_or_else(|| "`at_least` must be a whole number, 0 or more".to_string());
                }
                if let Some(f) = o.get("fraction") {
                    return match f.as_f64() {
                        Some(f) if f > 0.0 && f <= 1.0 => Ok(Rule::Fraction(f)),
                        _ => Err("`fraction` must be a number above 0 and at most 1".to_string()),
                    };
                }
                Err(format!("unknown completeness rule {v}"))
            }
            other => Err(format!(
                "`complete` must be `all`, `quorum`, {{at_least: N}} or {{fraction: F}}, not {other}"
            )),
        }
    }

    /// The number of OK branches the rule needs out of `total`.
    pub(crate) fn required(&self, total: usize) -> usize {
        let total_u = total as u64;
        let n = match self {
            Rule::All => total_u,
            Rule::AtLeast(n) => *n,
            // The small tolerance keeps 0.9 × 10 at 9 although 0.9 is not exact in binary.
            Rule::Fraction(f) => ((f * total as f64) - 1e-9).ceil().max(0.0) as u64,
            Rule::Quorum => total_u / 2 + 1,
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The rule as declared, for the result (so a reader sees what was required).
    fn to_value(&self) -> Value {
        match self {
            Rule::All => json!("all"),
            Rule::Quorum => json!("quorum"),
            Rule::AtLeast(n) => json!({"at_least": n}),
            Rule::Fraction(f) => json!({"fraction": f}),
        }
    }
}

/// What a deadline leads to.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    /// The declared duration: ISO 8601, the short form (`30s`, `5m`, `250ms`, `2h`, `1d`), the
    /// spec's inline object, or a runtime expression producing ISO 8601.
    pub duration: Value,
    /// The task's output when the deadline is reached (a template evaluated on the task's input).
    pub default: Option<Value>,
    /// The task the flow continues at when the deadline is reached.
    pub then: Option<String>,
}

impl Deadline {
    /// A deadline with neither `default` nor `then` only makes sense on a fan-out with a
    /// completeness rule: the late branches count as missing and the rule decides.
    pub(crate) fn is_fanout_only(&self) -> bool {
        self.default.is_none() && self.then.is_none()
    }
}

/// The `metadata.baton` keys of one task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extension {
    pub complete: Option<Rule>,
    /// jq predicate on a branch's output; without it a branch is OK when it did not fault.
    pub branch_ok: Option<String>,
    pub deadline: Option<Deadline>,
    /// How to undo the task's effect if the instance faults or is cancelled later.
    pub compensate: Option<crate::saga::Compensation>,
}

impl Extension {
    /// Reads `metadata.baton` of a task. Keys this module does not know are left alone: other
    /// Baton features keep their own keys in the same object.
    pub(crate) fn of(base: &TaskBase) -> Result<Extension, Problem> {
        let Some(baton) = base.metadata.as_ref().and_then(|m| m.get("baton")) else {
            return Ok(Extension::default());
        };
        let Some(baton) = baton.as_object() else {
            return Err(invalid("`metadata.baton` must be an object"));
        };
        Extension::parse(baton).map_err(invalid)
    }

    fn parse(baton: &Map<String, Value>) -> Result<Extension, String> {
        let complete = baton.get("complete").map(Rule::parse).transpose()?;
        let branch_ok = match baton.get("branch_ok") {
            None => None,
            Some(Value::String(s)) => Some(baton_expr::loose_source(s).to_string()),
            Some(other) => return Err(format!("`branch_ok` must be a jq expression, not {other}")),
        };
        if branch_ok.is_some() && complete.is_none() {
            return Err("`branch_ok` needs a `complete` rule beside it".into());
        }
        let then = match baton.get("then") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("`then` must be a task name, not {other}")),
        };
        // `default: null` is a real default (null), so presence is what counts.
        let default = baton.get("default").cloned();
        let deadline = match baton.get("deadline") {
            None => {
                if default.is_some() || then.is_some() {
                    return Err("`default` and `then` need a `deadline` beside them".into());
                }
                None
            }
            Some(duration) => {
                let d = Deadline {
                    duration: duration.clone(),
                    default,
                    then,
                };
                if d.is_fanout_only() && complete.is_none() {
                    return Err(
                        "a `deadline` needs a `default` value or a `then` task (or, on a \
                                fan-out, a `complete` rule)"
                            .into(),
                    );
                }
                Some(d)
            }
        };
        let compensate = baton
            .get("compensate")
            .map(crate::saga::Compensation::parse)
            .transpose()?;
        Ok(Extension {
            complete,
            branch_ok,
            deadline,
            compensate,
        })
    }
}

impl Extension {
    /// The checks that depend on the task the keys are on: a completeness rule needs a fan-out,
    /// and a compensation undoes one call sent directly (`http`, `provider` or a registered
    /// function; a `use.functions` entry is a task of its own). `direct_call` is true for such
    /// a `call` task.
    pub(crate) fn fits(&self, kind: &str, direct_call: bool) -> Result<(), String> {
        if self.complete.is_some() && !matches!(kind, "for" | "fork") {
            return Err("`complete` applies to `for` and `fork` tasks only".into());
        }
        if self.compensate.is_some() && !direct_call {
            return Err(
                "`compensate` applies to a task that calls `http`, `provider` or a \
                        registered function directly"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Every static check of a flow, in one place: parsing, the DSL schema, the semantic checks
/// (with `known_functions` the names it may call) and Baton's extensions. What `baton validate`,
/// `baton run`, flow registration and the API's validation all answer with.
pub fn check_flow(
    text: &str,
    known_functions: Vec<String>,
) -> Result<baton_flow::LoadedFlow, Vec<baton_flow::Diagnostic>> {
    let opts = baton_flow::ValidateOptions { known_functions };
    let loaded = baton_flow::load_flow(text, &opts)?;
    let extensions = extension_diagnostics(&loaded);
    if extensions.is_empty() {
        Ok(loaded)
    } else {
        Err(extensions)
    }
}

/// Checks every task's `metadata.baton` in a flow definition without running it, for
/// `baton validate` and flow registration: a misdeclared extension is reported with its
/// location before any instance runs, not when the task is reached.
pub fn extension_diagnostics(loaded: &baton_flow::LoadedFlow) -> Vec<baton_flow::Diagnostic> {
    let mut out = Vec::new();
    let root = &loaded.raw;
    let functions: Vec<&str> = root
        .pointer("/use/functions")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut check = |pointer: &str, task: &Value| {
        let Some(t) = task.as_object() else { return };
        let Some(baton) = t.get("metadata").and_then(|m| m.get("baton")) else {
            return;
        };
        let at = format!("{pointer}/metadata/baton");
        // `for` and `try` tasks also hold a `do`/`catch`: their own keyword comes first.
        let kind = [
            "for", "fork", "try", "call", "do", "emit", "listen", "raise", "run", "set", "switch",
            "wait",
        ]
        .into_iter()
        .find(|k| t.contains_key(*k))
        .unwrap_or("");
        let direct_call = t
            .get("call")
            .and_then(Value::as_str)
            .is_some_and(|f| !functions.contains(&f));
        let checked = match baton.as_object() {
            None => Err("`metadata.baton` must be an object".to_string()),
            Some(b) => Extension::parse(b).and_then(|ext| ext.fits(kind, direct_call)),
        };
        if let Err(message) = checked {
            out.push(baton_flow::Diagnostic::extension(
                format!("invalid `metadata.baton`: {message}"),
                &at,
                &loaded.spans,
            ));
        }
    };
    // Task lists nest under `do`, `for.do`, `fork.branches`, `try` and `catch.do`.
    fn walk(list: &Value, pointer: &str, check: &mut dyn FnMut(&str, &Value)) {
        let Some(items) = list.as_array() else { return };
        for (i, item) in items.iter().enumerate() {
            let Some((name, task)) = item.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            let p = format!(
                "{pointer}/{i}/{}",
                name.replace('~', "~0").replace('/', "~1")
            );
            check(&p, task);
            // A `for` keeps its task list under `do` too.
            for path in ["/do", "/fork/branches", "/try", "/catch/do"] {
                if let Some(l) = task.pointer(path) {
                    walk(l, &format!("{p}{path}"), check);
                }
            }
        }
    }
    if let Some(list) = root.get("do") {
        walk(list, "/do", &mut check);
    }
    if let Some(fns) = root.pointer("/use/functions").and_then(Value::as_object) {
        for (name, task) in fns {
            let escaped = name.replace('~', "~0").replace('/', "~1");
            check(&format!("/use/functions/{escaped}"), task);
        }
    }
    out
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::Configuration, "Invalid `metadata.baton`").with_detail(detail)
}

/// How one branch of a fan-out ended.
#[derive(Debug, Clone)]
pub(crate) enum BranchEnd {
    /// It finished and passed `branch_ok` (or there is none).
    Ok(Value),
    /// It faulted: the problem, as data.
    Faulted(Value),
    /// It finished but `branch_ok` did not hold (or could not be evaluated): why.
    NotOk { output: Value, detail: String },
    /// The deadline came first.
    Late,
}

/// The result of a fan-out under a completeness rule. Missing branches are `null` in `results`
/// and listed with their reason, never merged as if present.
///
/// `label(i)` gives what names branch `i` for a reader (the branch's name for a `fork`, the item
/// for a `for`).
pub(crate) fn summarise(
    rule: &Rule,
    ends: Vec<BranchEnd>,
    label: impl Fn(usize) -> (&'static str, Value),
) -> Value {
    let total = ends.len();
    let mut results = Vec::with_capacity(total);
    let mut completed = Vec::new();
    let mut missing = Vec::new();
    for (index, end) in ends.into_iter().enumerate() {
        let (label_key, label_value) = label(index);
        let mut entry = Map::new();
        entry.insert("index".into(), json!(index));
        entry.insert(label_key.into(), label_value);
        match end {
            BranchEnd::Ok(v) => {
                results.push(v);
                completed.push(index);
                continue;
            }
            BranchEnd::Faulted(problem) => {
                entry.insert("reason".into(), json!("faulted"));
                let detail = problem_line(&problem);
                entry.insert("detail".into(), json!(detail));
                entry.insert("error".into(), problem);
            }
            BranchEnd::NotOk { output, detail } => {
                entry.insert("reason".into(), json!("not_ok"));
                entry.insert("detail".into(), json!(detail));
                // What the branch did answer stays visible beside the reason, but out of
                // `results`: an answer the flow declared unusable is not a result.
                entry.insert("output".into(), output);
            }
            BranchEnd::Late => {
                entry.insert("reason".into(), json!("deadline"));
                entry.insert(
                    "detail".into(),
                    json!("not finished when the deadline was reached"),
                );
            }
        }
        results.push(Value::Null);
        missing.push(Value::Object(entry));
    }
    let ok = completed.len();
    let required = rule.required(total);
    let status = if ok == total {
        "complete"
    } else if ok >= required {
        "partial"
    } else {
        "unknown"
    };
    json!({
        "status": status,
        "results": results,
        "completed": completed,
        "missing": missing,
        "rule": rule.to_value(),
        "counts": {
            "total": total,
            "completed": ok,
            "missing": total - ok,
            "required": required.min(total),
        },
    })
}

/// One line for a faulted branch: `title: detail`.
fn problem_line(problem: &Value) -> String {
    let title = problem.get("title").and_then(Value::as_str).unwrap_or("");
    match problem.get("detail").and_then(Value::as_str) {
        Some(d) if !title.is_empty() => format!("{title}: {d}"),
        Some(d) => d.to_string(),
        None => title.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(v: Value) -> Result<Extension, String> {
        Extension::parse(v.as_object().expect("object"))
    }

    #[test]
    fn misdeclared_extensions_are_found_before_running_with_their_location() {
        let text = r#"
document: { dsl: '1.0.3', namespace: t, name: ext, version: '1.0.0' }
use:
  functions:
    helper:
      call: noop
do:
  - fine:
      call: noop
      metadata: { baton: { compensate: { call: noop } } }
  - loop:
      for: { each: x, in: '${ [1] }' }
      metadata: { baton: { complete: all } }
      do:
        - inner:
            set: { a: 1 }
            metadata:
              baton:
                compensate: { call: noop }
  - viaFunction:
      call: helper
      metadata: { baton: { compensate: { call: noop, undo: 1 } } }
  - plain:
      set: { b: 2 }
      metadata: { baton: { complete: all } }
"#;
        let opts = baton_flow::ValidateOptions {
            known_functions: vec!["noop".into()],
        };
        let loaded = baton_flow::load_flow(text, &opts).expect("schema-valid");
        let diags = extension_diagnostics(&loaded);
        let got: Vec<(&str, u32)> = diags.iter().map(|d| (d.pointer.as_str(), d.line)).collect();
        assert_eq!(
            got,
            [
                ("/do/1/loop/do/0/inner/metadata/baton", 19),
                ("/do/2/viaFunction/metadata/baton", 22),
                ("/do/3/plain/metadata/baton", 25),
            ],
            "{diags:?}"
        );
        assert!(diags.iter().all(|d| d.code == "BATON-FLOW-032"));
        assert!(
            diags[0].message.contains("directly"),
            "{}",
            diags[0].message
        );
        assert!(
            diags[1].message.contains("unknown key `undo`"),
            "{}",
            diags[1].message
        );
        assert!(
            diags[2].message.contains("`for` and `fork`"),
            "{}",
            diags[2].message
        );
    }

    #[test]
    fn rules_need_what_they_say() {
        assert_eq!(Rule::All.required(50), 50);
        assert_eq!(Rule::AtLeast(30).required(50), 30);
        assert_eq!(Rule::Fraction(0.9).required(10), 9);
        assert_eq!(Rule::Fraction(0.9).required(11), 10);
        assert_eq!(Rule::Fraction(1.0).required(3), 3);
        assert_eq!(Rule::Quorum.required(4), 3);
        assert_eq!(Rule::Quorum.required(5), 3);
    }

    #[test]
    fn status_follows_the_rule_and_missing_are_null() {
        let ends = vec![
            BranchEnd::Ok(json!(1)),
            BranchEnd::Faulted(json!({"title": "Too Many Requests", "detail": "429"})),
            BranchEnd::NotOk {
                output: json!({"verdict": null}),
                detail: "no".into(),
            },
            BranchEnd::Ok(json!(4)),
        ];
        let label = |i: usize| ("branch", json!(format!("b{i}")));
        let partial = summarise(&Rule::AtLeast(2), ends.clone(), label);
        assert_eq!(partial["status"], "partial");
        assert_eq!(partial["results"], json!([1, null, null, 4]));
        assert_eq!(partial["completed"], json!([0, 3]));
        assert_eq!(partial["missing"][0]["reason"], "faulted");
        assert_eq!(partial["missing"][0]["detail"], "Too Many Requests: 429");
        assert_eq!(partial["missing"][1]["reason"], "not_ok");
        assert_eq!(partial["missing"][1]["branch"], "b2");
        assert_eq!(
            partial["counts"],
            json!({"total": 4, "completed": 2, "missing": 2, "required": 2})
        );
        assert_eq!(
            summarise(&Rule::All, ends.clone(), label)["status"],
            "unknown"
        );
        assert_eq!(summarise(&Rule::Quorum, ends, label)["status"], "unknown");
        let all_ok = vec![BranchEnd::Ok(json!(1)), BranchEnd::Ok(json!(2))];
        assert_eq!(summarise(&Rule::All, all_ok, label)["status"], "complete");
        assert_eq!(
            summarise(&Rule::All, Vec::new(), label)["status"],
            "complete"
        );
    }

    #[test]
    fn extension_keys_are_checked() {
        let e = ext(json!({"complete": {"at_least": 3}, "branch_ok": "${ .ok }"})).expect("ok");
        assert_eq!(e.complete, Some(Rule::AtLeast(3)));
        assert_eq!(e.branch_ok.as_deref(), Some(" .ok "));
        let e = ext(json!({"deadline": "PT5M", "default": null})).expect("ok");
        let d = e.deadline.expect("deadline");
        assert_eq!(
            d.default,
            Some(Value::Null),
            "an explicit null is a default"
        );
        assert!(
            ext(json!({"deadline": "5m"})).is_err(),
            "no default, no fan-out"
        );
        assert!(ext(json!({"complete": "all", "deadline": "5m"})).is_ok());
        assert!(ext(json!({"default": 1})).is_err());
        assert!(ext(json!({"branch_ok": ".x"})).is_err());
        assert!(ext(json!({"complete": {"fraction": 1.5}})).is_err());
        assert!(ext(json!({"complete": "most"})).is_err());
        assert!(
            ext(json!({"claims": {"x": 1}})).is_ok(),
            "other features' keys"
        );
    }
}
