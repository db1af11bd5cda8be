//! The assertions of the assert steps, on a finished run.
//!
//! Task order uses the runtime's task events: a task "runs" when its `Started` event is reported.
//! A task runs first when no task started before it other than its own ancestors (a `do` task
//! starts before its subtasks), and last when no task started after it other than its own
//! descendants. `before`/`after` compare the first start of each task. A task "was cancelled"
//! when it started and never completed, faulted or was skipped (the runtime reports no separate
//! cancelled phase: a losing `fork` branch simply stops).

use baton_core::{Status, TaskEvent, TaskPhase};
use baton_testkit::FakeServer;
use serde_json::Value;

use crate::compare::{at_path, same, show};
use crate::run::Outcome;
use crate::steps::Check;

pub fn check(check: &Check, run: &Outcome, server: &FakeServer) -> Result<(), String> {
    match check {
        Check::Completed { output } => {
            completed(run)?;
            match output {
                Some(expected) => equal("the workflow output", expected, run.output.as_ref()),
                None => Ok(()),
            }
        }
        Check::Faulted { error } => {
            if run.status != Status::Faulted {
                return Err(format!(
                    "expected the workflow to fault, but it {}",
                    describe(run)
                ));
            }
            match error {
                Some(expected) => {
                    fields_match(expected, run.error.as_ref().map(|p| p.to_value()).as_ref())
                }
                None => Ok(()),
            }
        }
        Check::Cancelled => match run.status {
            Status::Cancelled => Ok(()),
            _ => Err(format!(
                "expected the workflow to be cancelled, but it {}",
                describe(run)
            )),
        },
        Check::HasProperties(paths) => {
            let output = completed(run)?;
            let missing: Vec<&str> = paths
                .iter()
                .filter(|p| at_path(output, p).is_none_or(Value::is_null))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the workflow output lacks {}: {}",
                    missing.join(", "),
                    show(output)
                ))
            }
        }
        Check::PropertyValue { path, value } => {
            let output = completed(run)?;
            equal(
                &format!("the output property '{path}'"),
                value,
                at_path(output, path),
            )
        }
        Check::PropertyItems { path, count } => {
            let output = completed(run)?;
            match at_path(output, path) {
                Some(Value::Array(items)) if items.len() == *count => Ok(()),
                Some(Value::Array(items)) => Err(format!(
                    "the output property '{path}' has {} items, expected {count}: {}",
                    items.len(),
                    show(output)
                )),
                other => Err(format!(
                    "the output property '{path}' is not a list: {}",
                    other.map(show).unwrap_or("missing".into())
                )),
            }
        }
        Check::RunFirst(task) => run_first(&run.events, task),
        Check::RunLast(task) => run_last(&run.events, task),
        Check::RunBefore { task, other } => run_order(&run.events, task, other, true),
        Check::RunAfter { task, other } => run_order(&run.events, task, other, false),
        Check::TaskCompleted { task, output } => {
            has_phase(&run.events, task, TaskPhase::Completed)?;
            match output {
                None => Ok(()),
                Some(_) => Err(format!(
                    "cannot check the output of task {task}: the runtime's task events carry no task output"
                )),
            }
        }
        Check::TaskFaulted { task, error } => {
            let reference = has_phase(&run.events, task, TaskPhase::Faulted)?;
            let Some(expected) = error else { return Ok(()) };
            match &run.error {
                Some(p) if p.instance.as_deref() == Some(reference.as_str()) => {
                    fields_match(expected, Some(&p.to_value()))
                }
                _ => Err(format!(
                    "cannot check the error of task {task} ({reference}): only the error that faulted the workflow is reported, and it came from {}",
                    run.error
                        .as_ref()
                        .and_then(|p| p.instance.clone())
                        .unwrap_or_else(|| "nowhere".into())
                )),
            }
        }
        Check::TaskCancelled(task) => task_cancelled(&run.events, task),
        Check::TaskSkipped(task) => has_phase(&run.events, task, TaskPhase::Skipped).map(|_| ()),
        Check::LedgerKeys(n) => ledger_keys(server, *n),
        Check::LedgerRequests(n) => ledger_requests(server, *n),
        Check::FlakyCalls { key, count } => match server.flaky_calls(key) {
            n if n == *count => Ok(()),
            n => Err(format!(
                "the flaky endpoint '{key}' was called {n} times, expected {count}"
            )),
        },
    }
}

/// The output of a completed run, or why there is none.
fn completed(run: &Outcome) -> Result<&Value, String> {
    if run.status != Status::Completed {
        return Err(format!(
            "expected the workflow to complete, but it {}",
            describe(run)
        ));
    }
    run.output
        .as_ref()
        .ok_or_else(|| "the workflow completed without an output".to_string())
}

fn describe(run: &Outcome) -> String {
    match (&run.status, &run.error) {
        (Status::Faulted, Some(p)) => format!("faulted: {p}"),
        (Status::Completed, _) => format!(
            "completed with output {}",
            run.output.as_ref().map(show).unwrap_or("(none)".into())
        ),
        (status, _) => format!("ended {}", status.as_str()),
    }
}

fn equal(what: &str, expected: &Value, actual: Option<&Value>) -> Result<(), String> {
    match actual {
        Some(a) if same(expected, a) => Ok(()),
        Some(a) => Err(format!(
            "{what} is {}, expected {}",
            show(a),
            show(expected)
        )),
        None => Err(format!("{what} is missing, expected {}", show(expected))),
    }
}

/// Every field of the expected error equals the same field of the actual one.
fn fields_match(expected: &Value, actual: Option<&Value>) -> Result<(), String> {
    let Some(actual) = actual else {
        return Err("the workflow faulted without an error".into());
    };
    let Value::Object(fields) = expected else {
        return Err(format!(
            "the expected error must be a mapping, found {}",
            show(expected)
        ));
    };
    let wrong: Vec<String> = fields
        .iter()
        .filter(|(k, v)| !actual.get(k.as_str()).is_some_and(|a| same(v, a)))
        .map(|(k, v)| {
            format!(
                "{k} is {}, expected {}",
                actual.get(k.as_str()).map(show).unwrap_or("missing".into()),
                show(v)
            )
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the error differs: {} (error: {})",
            wrong.join("; "),
            show(actual)
        ))
    }
}

/// `(index, reference)` of each `Started` event of the task named `task`.
fn starts<'a>(events: &'a [TaskEvent], task: &str) -> Vec<(usize, &'a str)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.phase == TaskPhase::Started && e.name == task)
        .map(|(i, e)| (i, e.reference.as_str()))
        .collect()
}

fn started_names(events: &[TaskEvent]) -> String {
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e.phase == TaskPhase::Started)
        .map(|e| e.name.as_str())
        .collect();
    if names.is_empty() {
        "no task started".into()
    } else {
        format!("tasks started in order: {}", names.join(", "))
    }
}

/// Whether `reference` is strictly inside the task at `ancestor`.
fn inside(reference: &str, ancestor: &str) -> bool {
    reference
        .strip_prefix(ancestor)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn never_started(events: &[TaskEvent], task: &str) -> String {
    format!("task {task} never started ({})", started_names(events))
}

fn run_first(events: &[TaskEvent], task: &str) -> Result<(), String> {
    let &(at, reference) = starts(events, task)
        .first()
        .ok_or_else(|| never_started(events, task))?;
    let earlier = events[..at]
        .iter()
        .find(|e| e.phase == TaskPhase::Started && !inside(reference, &e.reference));
    match earlier {
        None => Ok(()),
        Some(e) => Err(format!(
            "task {} started before {task} ({})",
            e.name,
            started_names(events)
        )),
    }
}

fn run_last(events: &[TaskEvent], task: &str) -> Result<(), String> {
    let &(at, reference) = starts(events, task)
        .last()
        .ok_or_else(|| never_started(events, task))?;
    let later = events[at + 1..]
        .iter()
        .find(|e| e.phase == TaskPhase::Started && !inside(&e.reference, reference));
    match later {
        None => Ok(()),
        Some(e) => Err(format!(
            "task {} started after {task} ({})",
            e.name,
            started_names(events)
        )),
    }
}

fn run_order(events: &[TaskEvent], task: &str, other: &str, before: bool) -> Result<(), String> {
    let &(a, _) = starts(events, task)
        .first()
        .ok_or_else(|| never_started(events, task))?;
    let &(b, _) = starts(events, other)
        .first()
        .ok_or_else(|| never_started(events, other))?;
    if (a < b) == before {
        return Ok(());
    }
    let relation = if before { "before" } else { "after" };
    Err(format!(
        "task {task} did not run {relation} {other} ({})",
        started_names(events)
    ))
}

/// The reference of the task's first event in `phase`.
fn has_phase(events: &[TaskEvent], task: &str, phase: TaskPhase) -> Result<String, String> {
    if let Some(e) = events.iter().find(|e| e.name == task && e.phase == phase) {
        return Ok(e.reference.clone());
    }
    let seen: Vec<String> = events
        .iter()
        .filter(|e| e.name == task)
        .map(|e| format!("{:?}", e.phase))
        .collect();
    Err(if seen.is_empty() {
        format!("task {task} never ran ({})", started_names(events))
    } else {
        format!(
            "task {task} was never {phase:?} (its events: {})",
            seen.join(", ")
        )
    })
}

fn task_cancelled(events: &[TaskEvent], task: &str) -> Result<(), String> {
    let started = starts(events, task);
    if started.is_empty() {
        return Err(never_started(events, task));
    }
    let ended: Vec<&TaskEvent> = events
        .iter()
        .filter(|e| e.phase != TaskPhase::Started && started.iter().any(|(_, r)| *r == e.reference))
        .collect();
    match ended.first() {
        None => Ok(()),
        Some(e) => Err(format!("task {task} was not cancelled: it {:?}", e.phase)),
    }
}

fn ledger_keys(server: &FakeServer, n: usize) -> Result<(), String> {
    let report = server.ledger_report();
    let keys = report
        .get("keys")
        .and_then(Value::as_object)
        .map(|k| k.len())
        .unwrap_or(0);
    if keys == n {
        Ok(())
    } else {
        Err(format!(
            "the ledger recorded {keys} distinct keys, expected {n}: {}",
            show(&report)
        ))
    }
}

fn ledger_requests(server: &FakeServer, n: u64) -> Result<(), String> {
    let report = server.ledger_report();
    let seen: u64 = report
        .get("keys")
        .and_then(Value::as_object)
        .map(|keys| {
            keys.values()
                .filter_map(|k| k.get("seen").and_then(Value::as_u64))
                .sum()
        })
        .unwrap_or(0);
    if seen == n {
        Ok(())
    } else {
        Err(format!(
            "the ledger received {seen} requests, expected {n}: {}",
            show(&report)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(reference: &str, phase: TaskPhase) -> TaskEvent {
        let name = reference.rsplit('/').next().unwrap_or_default().to_string();
        TaskEvent {
            reference: reference.into(),
            name,
            phase,
        }
    }

    fn nested() -> Vec<TaskEvent> {
        use TaskPhase::*;
        vec![
            ev("/do/0/outer", Started),
            ev("/do/0/outer/do/0/a", Started),
            ev("/do/0/outer/do/0/a", Completed),
            ev("/do/0/outer/do/1/b", Started),
            ev("/do/0/outer/do/1/b", Completed),
            ev("/do/0/outer", Completed),
        ]
    }

    #[test]
    fn order_ignores_ancestors_and_descendants() {
        let events = nested();
        assert!(run_first(&events, "outer").is_ok());
        assert!(run_first(&events, "a").is_ok());
        assert!(run_first(&events, "b").is_err());
        assert!(run_last(&events, "outer").is_ok());
        assert!(run_last(&events, "b").is_ok());
        assert!(run_last(&events, "a").is_err());
        assert!(run_order(&events, "a", "b", true).is_ok());
        assert!(run_order(&events, "b", "a", false).is_ok());
        assert!(run_order(&events, "b", "a", true).is_err());
        assert!(run_first(&events, "missing").is_err());
    }

    #[test]
    fn cancelled_means_started_and_never_ended() {
        use TaskPhase::*;
        let events = vec![
            ev("/do/0/f/fork/branches/0/x", Started),
            ev("/do/0/f/fork/branches/1/y", Started),
            ev("/do/0/f/fork/branches/1/y", Completed),
        ];
        assert!(task_cancelled(&events, "x").is_ok());
        assert!(task_cancelled(&events, "y").is_err());
        assert!(task_cancelled(&events, "z").is_err());
    }
}
