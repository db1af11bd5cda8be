//! Step phrases: the text of a Gherkin step turned into what the runner must do. Matching is on
//! the phrase text (the keyword does not matter, as in Gherkin); a phrase that matches nothing is
//! an error, so an unknown step fails its scenario instead of passing silently.
//!
//! The phrases are those of the CTK README (`ctk/README.md`, "Steps") plus a few of our own for
//! what the CTK leaves out: sub-workflows, published events, a crash and resume, skipped tasks and
//! the ledger provider's report.

use serde_json::Value;

use crate::gherkin::Step;

/// What one step asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `a workflow with definition:` (YAML or JSON text, kept as text: the runtime parses it).
    Definition(String),
    /// `a sub-workflow with definition:` — registered before the main flow, for `run: workflow`.
    SubWorkflow(String),
    /// `the workflow input is:` (also `given the workflow input is:`).
    Input(Value),
    /// `the workflow is executed`.
    Execute,
    /// `the workflow is executed and the events are published:` — a YAML list of CloudEvents,
    /// published in order once the instance has started.
    ExecuteWithEvents(Vec<Value>),
    /// `the workflow is executed, the process crashes after N ledger requests and is resumed`.
    ExecuteCrashResume {
        ledger_requests: u64,
    },
    Check(Check),
}

/// An assertion on the finished run.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Completed {
        output: Option<Value>,
    },
    Faulted {
        error: Option<Value>,
    },
    Cancelled,
    HasProperties(Vec<String>),
    PropertyValue {
        path: String,
        value: Value,
    },
    PropertyItems {
        path: String,
        count: usize,
    },
    RunFirst(String),
    RunLast(String),
    RunBefore {
        task: String,
        other: String,
    },
    RunAfter {
        task: String,
        other: String,
    },
    TaskCompleted {
        task: String,
        output: Option<Value>,
    },
    TaskFaulted {
        task: String,
        error: Option<Value>,
    },
    TaskCancelled(String),
    TaskSkipped(String),
    /// `the ledger should have recorded N distinct idempotency keys`.
    LedgerKeys(usize),
    /// `the ledger should have received N requests` (repeats of a key included).
    LedgerRequests(u64),
    /// `the flaky endpoint 'KEY' should have been called N times`.
    FlakyCalls {
        key: String,
        count: u64,
    },
}

/// Reads a step. The error says why the step is not understood.
pub fn parse_step(step: &Step) -> Result<Action, String> {
    let text = normalise(&step.text);
    let text = text.as_str();
    let action = match text {
        "a workflow with definition:" => Action::Definition(doc_text(step)?),
        "a sub-workflow with definition:" => Action::SubWorkflow(doc_text(step)?),
        "the workflow input is:" => Action::Input(doc_yaml(step)?),
        "the workflow is executed" => Action::Execute,
        "the workflow is executed and the events are published:" => match doc_yaml(step)? {
            Value::Array(events) => Action::ExecuteWithEvents(events),
            other => {
                return Err(format!(
                    "expected a YAML list of events, found {}",
                    kind(&other)
                ));
            }
        },
        "the workflow should complete" => Action::Check(Check::Completed { output: None }),
        "the workflow should complete with output:" => Action::Check(Check::Completed {
            output: Some(doc_yaml(step)?),
        }),
        "the workflow should fault" => Action::Check(Check::Faulted { error: None }),
        "the workflow should fault with error:" => Action::Check(Check::Faulted {
            error: Some(doc_yaml(step)?),
        }),
        "the workflow should cancel" | "the workflow should be cancelled" => {
            Action::Check(Check::Cancelled)
        }
        _ => return parse_parameterised(step, text),
    };
    // Phrases ending with a colon take a doc string; the others must not have one, or it would
    // be ignored.
    if !text.ends_with(':') && step.doc.is_some() {
        return Err("this step takes no doc string".into());
    }
    Ok(action)
}

/// Collapses runs of whitespace and drops the `given` the CTK writes after `And`
/// (`And given the workflow input is:`).
fn normalise(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let words = match words.first() {
        Some(w) if w.eq_ignore_ascii_case("given") => &words[1..],
        _ => &words[..],
    };
    words.join(" ")
}

fn parse_parameterised(step: &Step, text: &str) -> Result<Action, String> {
    if let Some(rest) = text.strip_prefix("the workflow is executed, the process crashes after ") {
        let n = rest
            .strip_suffix(" ledger requests and is resumed")
            .or_else(|| rest.strip_suffix(" ledger request and is resumed"))
            .ok_or_else(|| unknown(text))?;
        let ledger_requests = n.parse().map_err(|_| format!("`{n}` is not a count"))?;
        return no_doc(step, Action::ExecuteCrashResume { ledger_requests });
    }
    if let Some(rest) = text.strip_prefix("the workflow output should have properties ") {
        return no_doc(
            step,
            Action::Check(Check::HasProperties(quoted_list(rest)?)),
        );
    }
    if let Some(rest) = text.strip_prefix("the workflow output should have a ") {
        let (path, rest) = quoted(rest)?;
        if rest == " property with value:" {
            return Ok(Action::Check(Check::PropertyValue {
                path,
                value: doc_yaml(step)?,
            }));
        }
        if let Some(count) = rest
            .strip_prefix(" property containing ")
            .and_then(|r| r.strip_suffix(" items"))
        {
            let count = count
                .parse()
                .map_err(|_| format!("`{count}` is not a count"))?;
            return no_doc(step, Action::Check(Check::PropertyItems { path, count }));
        }
        return Err(unknown(text));
    }
    if let Some(rest) = text.strip_prefix("the ledger should have recorded ") {
        let n = rest
            .strip_suffix(" distinct idempotency keys")
            .ok_or_else(|| unknown(text))?;
        let n = n.parse().map_err(|_| format!("`{n}` is not a count"))?;
        return no_doc(step, Action::Check(Check::LedgerKeys(n)));
    }
    if let Some(rest) = text.strip_prefix("the ledger should have received ") {
        let n = rest
            .strip_suffix(" requests")
            .or_else(|| rest.strip_suffix(" request"))
            .ok_or_else(|| unknown(text))?;
        let n = n.parse().map_err(|_| format!("`{n}` is not a count"))?;
        return no_doc(step, Action::Check(Check::LedgerRequests(n)));
    }
    if let Some(rest) = text.strip_prefix("the flaky endpoint ") {
        let (key, rest) = quoted(rest)?;
        let n = rest
            .strip_prefix(" should have been called ")
            .and_then(|r| r.strip_suffix(" times").or_else(|| r.strip_suffix(" time")))
            .ok_or_else(|| unknown(text))?;
        let count = n.parse().map_err(|_| format!("`{n}` is not a count"))?;
        return no_doc(step, Action::Check(Check::FlakyCalls { key, count }));
    }
    parse_task_phrase(step, text)
}

/// `[task] NAME should …` phrases.
fn parse_task_phrase(step: &Step, text: &str) -> Result<Action, String> {
    let text_no_task = text.strip_prefix("task ").unwrap_or(text);
    let (name, rest) = text_no_task
        .split_once(" should ")
        .ok_or_else(|| unknown(text))?;
    let task = unquote(name);
    if task.is_empty() || task.contains(char::is_whitespace) {
        return Err(unknown(text));
    }
    let check = match rest {
        "run first" => Check::RunFirst(task),
        "run last" => Check::RunLast(task),
        "complete" => Check::TaskCompleted { task, output: None },
        "complete with output:" => {
            return Ok(Action::Check(Check::TaskCompleted {
                task,
                output: Some(doc_yaml(step)?),
            }));
        }
        "fault" => Check::TaskFaulted { task, error: None },
        "fault with error:" => {
            return Ok(Action::Check(Check::TaskFaulted {
                task,
                error: Some(doc_yaml(step)?),
            }));
        }
        "cancel" | "be cancelled" => Check::TaskCancelled(task),
        "be skipped" => Check::TaskSkipped(task),
        _ => {
            if let Some(other) = rest.strip_prefix("run before ") {
                Check::RunBefore {
                    task,
                    other: unquote(other),
                }
            } else if let Some(other) = rest.strip_prefix("run after ") {
                Check::RunAfter {
                    task,
                    other: unquote(other),
                }
            } else {
                return Err(unknown(text));
            }
        }
    };
    no_doc(step, Action::Check(check))
}

fn no_doc(step: &Step, action: Action) -> Result<Action, String> {
    if step.doc.is_some() {
        return Err("this step takes no doc string".into());
    }
    Ok(action)
}

fn unknown(text: &str) -> String {
    format!("unknown step `{text}`")
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(s)
        .to_string()
}

/// `'a.b' rest` -> (`a.b`, ` rest`).
fn quoted(s: &str) -> Result<(String, &str), String> {
    let inner = s
        .strip_prefix('\'')
        .ok_or_else(|| format!("expected a quoted property path at `{s}`"))?;
    let end = inner
        .find('\'')
        .ok_or_else(|| format!("unclosed quote in `{s}`"))?;
    Ok((inner[..end].to_string(), &inner[end + 1..]))
}

/// `'a', 'b.c'` -> [`a`, `b.c`].
fn quoted_list(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    loop {
        let (item, after) = quoted(rest)?;
        out.push(item);
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(out);
        }
        rest = after
            .strip_prefix(',')
            .ok_or_else(|| format!("expected `,` at `{after}`"))?
            .trim_start();
    }
}

fn doc_text(step: &Step) -> Result<String, String> {
    step.doc
        .as_ref()
        .map(|d| d.content.clone())
        .ok_or_else(|| "this step needs a doc string".to_string())
}

/// The step's doc string read as YAML (JSON is YAML too).
fn doc_yaml(step: &Step) -> Result<Value, String> {
    parse_yaml(&doc_text(step)?)
}

/// YAML data to JSON, with the flow parser's YAML reader (YAML 1.2 core schema, no anchors).
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    baton_flow::parse::parse_document(text)
        .map(|d| d.value)
        .map_err(|ds| {
            ds.iter()
                .map(|d| d.render("doc string"))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gherkin::DocString;
    use serde_json::json;

    fn step(text: &str, doc: Option<&str>) -> Step {
        Step {
            keyword: "And".into(),
            text: text.into(),
            line: 1,
            doc: doc.map(|c| DocString {
                media_type: Some("yaml".into()),
                content: c.into(),
            }),
        }
    }

    fn check(text: &str) -> Check {
        match parse_step(&step(text, None)) {
            Ok(Action::Check(c)) => c,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn ctk_phrases() {
        assert_eq!(
            parse_step(&step("given the workflow input is:", Some("a: 1"))),
            Ok(Action::Input(json!({"a": 1})))
        );
        assert_eq!(
            parse_step(&step("the workflow is executed", None)),
            Ok(Action::Execute)
        );
        assert_eq!(
            check("the workflow output should have properties 'id', 'request.method'"),
            Check::HasProperties(vec!["id".into(), "request.method".into()])
        );
        assert_eq!(
            check("the workflow output should have a 'colors' property containing 1 items"),
            Check::PropertyItems {
                path: "colors".into(),
                count: 1
            }
        );
        assert_eq!(
            check("setRed should run first"),
            Check::RunFirst("setRed".into())
        );
        assert_eq!(
            check("setGreen should run after setRed"),
            Check::RunAfter {
                task: "setGreen".into(),
                other: "setRed".into()
            }
        );
        assert_eq!(
            check("task a should be cancelled"),
            Check::TaskCancelled("a".into())
        );
        assert_eq!(check("a should cancel"), Check::TaskCancelled("a".into()));
        assert_eq!(
            check("the flaky endpoint 'k-1' should have been called 3 times"),
            Check::FlakyCalls {
                key: "k-1".into(),
                count: 3
            }
        );
        assert_eq!(
            check("the ledger should have recorded 2 distinct idempotency keys"),
            Check::LedgerKeys(2)
        );
        assert_eq!(
            parse_step(&step(
                "the workflow output should have a 'error.instance' property with value:",
                Some("/do/0")
            )),
            Ok(Action::Check(Check::PropertyValue {
                path: "error.instance".into(),
                value: json!("/do/0")
            }))
        );
    }

    #[test]
    fn unknown_or_malformed_steps_are_errors() {
        assert!(parse_step(&step("the workflow should maybe complete", None)).is_err());
        assert!(parse_step(&step("the workflow should complete with output:", None)).is_err());
        assert!(parse_step(&step("the workflow should complete", Some("a: 1"))).is_err());
        assert!(parse_step(&step("setRed should run sideways", None)).is_err());
        assert!(parse_step(&step("the workflow output should have properties id", None)).is_err());
    }
}
