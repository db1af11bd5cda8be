//! Suspend and resume: a suspended instance journals what arrives but does not go on, resumes
//! from there, and a replay of its journal gives the same state.

use std::sync::Arc;

use baton_core::{Env, Instance, InstanceId, JournalEntry, Outcome, Program, Status};
use serde_json::json;

fn program() -> Arc<Program> {
    Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "two", "version": "1.0.0"},
            "do": [
                {"a": {"call": "noop", "with": {"n": 1}}},
                {"b": {"call": "noop", "with": {"n": 2}}}
            ]
        }))
        .expect("valid flow"),
    )
}

#[test]
fn suspended_instance_journals_outcomes_but_starts_nothing_until_resumed() {
    let id = InstanceId("s1".into());
    let mut inst = Instance::start(id.clone(), program(), Env::default(), json!({}), 1);
    let mut journal: Vec<JournalEntry> = Vec::new();
    let first = inst.step();
    journal.extend(first.entries);
    assert_eq!(first.start.len(), 1, "step a starts");
    let a = first.start[0].key.clone();

    assert!(inst.suspend("ops@maplewood", Some("carrier outage"), 2));
    assert!(!inst.suspend("ops@maplewood", None, 2), "already suspended");
    assert!(inst.deliver(&a, Outcome::ok(json!({"n": 1})), 3));
    let paused = inst.step();
    assert_eq!(paused.status, Status::Suspended);
    assert!(
        paused.start.is_empty(),
        "nothing new starts while suspended"
    );
    journal.extend(paused.entries);

    // A replay of the journal so far is suspended too and starts nothing.
    let mut replayed =
        Instance::recover(id.clone(), program(), Env::default(), &journal).expect("replay");
    let r = replayed.step();
    assert_eq!(r.status, Status::Suspended);
    assert!(r.start.is_empty());

    assert!(inst.resume("ops@maplewood", 4));
    let resumed = inst.step();
    assert_eq!(resumed.start.len(), 1, "step b starts after the resume");
    journal.extend(resumed.entries);
    assert!(
        journal
            .iter()
            .any(|e| matches!(e, JournalEntry::Resumed { by, .. } if by == "ops@maplewood"))
    );

    let b = resumed.start[0].key.clone();
    assert!(inst.deliver(&b, Outcome::ok(json!({"n": 2})), 5));
    let end = inst.step();
    assert_eq!(end.status, Status::Completed);
    journal.extend(end.entries);

    let done = Instance::recover(id, program(), Env::default(), &journal).expect("replay");
    assert_eq!(done.status(), Status::Completed);
}

#[test]
fn a_program_knows_which_functions_its_tasks_call() {
    let p = Program::from_json(json!({
        "document": {"dsl": "1.0.3", "namespace": "t", "name": "c", "version": "1.0.0"},
        "do": [
            {"outer": {"do": [{"ask": {"call": "approval", "with": {"title": "x"}}}]}},
            {"b": {"call": "noop"}}
        ]
    }))
    .expect("valid flow");
    assert!(p.calls("approval") && p.calls("noop"));
    assert!(!p.calls("claim"));
}
