//! Where each task of an instance stands, derived from its journal.
//!
//! The journal records effects, not tasks: a `set` or a `switch` leaves no entry of its own. So
//! the journal is folded through a fresh core instance by the core's one replayer
//! ([`Instance::replay`], the fold recovery uses, so a cancellation during compensation means
//! the same here as there), and the core's task events — started, completed, skipped, faulted,
//! compensated, per task reference — say exactly which tasks ran. The effects
//! still outstanding at the end of the replay are the ones in flight now; a task holding only
//! timers, listeners or approvals is waiting rather than running.
//!
//! When the journal cannot be replayed (its flow is not known to this process, or a journal that
//! does not fit the flow), states fall back to what the effect keys alone say, and the page says
//! so.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use baton_core::{
    Advance, EffectKey, EffectRequest, Env, Fit, Instance, InstanceId, JournalEntry, Outcome,
    Program, ReplayObserver, Status, TaskEvent, TaskPhase,
};
use serde_json::Value;

use super::graph::TaskState;

/// The function name of approvals (`call: approval`).
pub const APPROVAL_FUNCTION: &str = baton_engine::approvals::APPROVAL_FUNCTION;

pub struct Progress {
    pub states: HashMap<String, TaskState>,
    /// Effects requested and not answered at the end of the journal (the ones in flight).
    pub outstanding: Vec<(EffectKey, EffectRequest)>,
    /// Why the states come from effect keys alone, when the journal could not be replayed.
    pub approximate: Option<String>,
}

impl Progress {
    /// The state of tasks without an entry: in a finished instance they were never reached.
    pub fn default_state(status: Status) -> TaskState {
        if status == Status::Completed {
            TaskState::Skipped
        } else {
            TaskState::Pending
        }
    }
}

/// The task reference an effect key belongs to: `/do/1/loop/for[2]/do/0/charge#call` →
/// `/do/1/loop/do/0/charge`; `/do/2/par/fork/0/a#call` → `/do/2/par/fork/branches/0/a`;
/// `/do/3/t/try#1/0/x#call` → `/do/3/t/try/0/x`. Keys below a sub-flow (`/run`) or a function
/// defined as a task (`/fn`) belong to the task that ran them.
pub fn key_reference(key: &str) -> String {
    #[derive(PartialEq)]
    enum Expect {
        /// `do`, `try`, `catch`, `for[i]`, `fork`, …: what follows a task.
        Structure,
        Index,
        Name,
    }
    let mut out = String::new();
    let mut expect = Expect::Structure;
    for raw in key.split('/').skip(1) {
        // `#call`, `#retry2`, `@7` (a revisit), `try#1` (an attempt): not part of the reference.
        let seg = raw.split(['#', '@']).next().unwrap_or("");
        match expect {
            Expect::Structure => match seg {
                "do" | "try" => {
                    out.push('/');
                    out.push_str(seg);
                    expect = Expect::Index;
                }
                "catch" => out.push_str("/catch"),
                "fork" => {
                    out.push_str("/fork/branches");
                    expect = Expect::Index;
                }
                // A loop iteration: the body's reference is the task's `do`.
                s if s.starts_with("for[") => {}
                _ => break,
            },
            Expect::Index => {
                if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_digit()) {
                    break;
                }
                out.push('/');
                out.push_str(seg);
                expect = Expect::Name;
            }
            Expect::Name => {
                out.push('/');
                out.push_str(seg);
                expect = Expect::Structure;
            }
        }
    }
    // A key cut short inside a list names no task; drop the dangling list part.
    if expect != Expect::Structure {
        while !out.is_empty() && !ends_with_task(&out) {
            out.truncate(out.rfind('/').unwrap_or(0));
        }
    }
    out
}

/// Whether a reference ends with `<index>/<name>` (a task), not a list.
fn ends_with_task(reference: &str) -> bool {
    let mut it = reference.rsplit('/');
    let _name = it.next();
    it.next()
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `reference` is `ancestor` or a task inside it.
pub fn is_within(reference: &str, ancestor: &str) -> bool {
    reference == ancestor
        || (reference.starts_with(ancestor) && reference[ancestor.len()..].starts_with('/'))
}

/// Derives task states from `journal`. `program` is the flow the instance runs, if known.
pub fn derive(
    id: &InstanceId,
    program: Option<&Arc<Program>>,
    env: Env,
    journal: &[JournalEntry],
    status: Status,
) -> Progress {
    let replayed = match program {
        Some(p) => replay(id, p, env, journal),
        None => Err("the flow of this instance is not loaded".to_string()),
    };
    let mut progress = match replayed {
        Ok(p) => p,
        Err(why) => from_keys(journal, why),
    };
    settle(&mut progress, status);
    progress
}

fn replay(
    id: &InstanceId,
    program: &Arc<Program>,
    env: Env,
    journal: &[JournalEntry],
) -> Result<Progress, String> {
    let mut acc = Replay {
        program,
        states: HashMap::new(),
        outstanding: BTreeMap::new(),
        active_runs: Vec::new(),
    };
    Instance::replay(
        id.clone(),
        program.clone(),
        env,
        journal,
        Fit::Exact,
        &mut acc,
    )
    .map_err(|e| e.to_string())?;
    Ok(Progress {
        states: acc.states,
        outstanding: acc.outstanding.into_iter().collect(),
        approximate: None,
    })
}

struct Replay<'a> {
    program: &'a Program,
    states: HashMap<String, TaskState>,
    outstanding: BTreeMap<EffectKey, EffectRequest>,
    /// `run: workflow` tasks in progress. The sub-flow's task events carry references into the
    /// sub-flow's own definition, which could name tasks of this flow; while one runs, only
    /// events of the running task itself are taken.
    active_runs: Vec<String>,
}

impl ReplayObserver for Replay<'_> {
    fn advanced(&mut self, _index: usize, advance: Advance) {
        for call in advance.start {
            self.outstanding.insert(call.key, call.request);
        }
        for key in &advance.cancel {
            self.outstanding.remove(key);
        }
        for ev in advance.events {
            self.event(ev);
        }
    }

    fn outcome(&mut self, _index: usize, key: &EffectKey, _outcome: &Outcome, fitted: bool) {
        if fitted {
            self.outstanding.remove(key);
        }
    }
}

impl Replay<'_> {
    fn event(&mut self, ev: TaskEvent) {
        if let Some(pos) = self.active_runs.iter().position(|r| *r == ev.reference) {
            if ev.phase != TaskPhase::Started {
                self.active_runs.remove(pos);
            }
        } else if !self.active_runs.is_empty() {
            return;
        } else if ev.phase == TaskPhase::Started && self.runs_sub_flow(&ev.reference) {
            self.active_runs.push(ev.reference.clone());
        }
        let state = match ev.phase {
            TaskPhase::Started => TaskState::Running,
            TaskPhase::Completed => TaskState::Completed,
            TaskPhase::Skipped => TaskState::Skipped,
            TaskPhase::Faulted => TaskState::Faulted,
            TaskPhase::Compensated => TaskState::Compensated,
            // Nothing was undone: the task keeps the state it ended in.
            TaskPhase::CompensationSkipped => return,
            // Its effect may still stand: as loud as a fault (the timeline says why).
            TaskPhase::CompensationUnresolved => TaskState::Faulted,
        };
        self.states.insert(ev.reference, state);
    }

    fn runs_sub_flow(&self, reference: &str) -> bool {
        self.program
            .definition
            .pointer(reference)
            .and_then(|t| t.get("run"))
            .is_some_and(|r| r.get("workflow").is_some())
    }
}

/// What the effect keys alone say: a task with an answered effect ran (completed, or faulted
/// when the answer was a failure). Tasks without effects stay unknown (pending).
fn from_keys(journal: &[JournalEntry], why: String) -> Progress {
    let mut states = HashMap::new();
    for e in journal {
        if let JournalEntry::EffectCompleted { key, outcome, .. } = e {
            let state = match outcome {
                Outcome::Ok { .. } => TaskState::Completed,
                _ => TaskState::Faulted,
            };
            states.insert(key_reference(&key.0), state);
        }
    }
    Progress {
        states,
        outstanding: Vec::new(),
        approximate: Some(why),
    }
}

/// Running tasks that only wait are waiting; in a finished instance, tasks still running were
/// stopped (a cancellation, a lost race).
fn settle(progress: &mut Progress, status: Status) {
    for (reference, state) in progress.states.iter_mut() {
        if *state != TaskState::Running {
            continue;
        }
        if status.is_terminal() {
            *state = TaskState::Cancelled;
            continue;
        }
        let mut inside = progress
            .outstanding
            .iter()
            .filter(|(k, _)| is_within(&key_reference(&k.0), reference))
            .peekable();
        if inside.peek().is_some() && inside.all(|(_, r)| r.is_wait()) {
            *state = TaskState::Waiting;
        }
    }
}

/// The task definition at a reference (for what a task calls).
pub fn task_definition<'a>(program: &'a Program, reference: &str) -> Option<&'a Value> {
    if reference.is_empty() {
        return None;
    }
    program.definition.pointer(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effect_keys_map_to_task_references() {
        for (key, reference) in [
            ("/do/0/reserve#call", "/do/0/reserve"),
            (
                "/do/1/loop/for[2]/do/0/charge#call",
                "/do/1/loop/do/0/charge",
            ),
            ("/do/2/par/fork/0/a#call", "/do/2/par/fork/branches/0/a"),
            ("/do/3/t/try#1/0/x#call", "/do/3/t/try/0/x"),
            ("/do/3/t/try/0/x#call", "/do/3/t/try/0/x"),
            ("/do/3/t#retry2", "/do/3/t"),
            ("/do/3/t/catch/do/0/fix#wait", "/do/3/t/catch/do/0/fix"),
            ("/do/4/again@7#call", "/do/4/again"),
            ("/do/5/sub/run/do/0/inner#call", "/do/5/sub"),
            ("/do/6/f/fn/do/0/g#call", "/do/6/f"),
            ("/do/7/l#event0", "/do/7/l"),
            ("/do/8/slow#timeout", "/do/8/slow"),
            ("/timeout", ""),
            // A task may be called `fork` or `do`: position, not spelling, says what a segment is.
            ("/do/0/fork#call", "/do/0/fork"),
            ("/do/0/do/do/1/try#call", "/do/0/do/do/1/try"),
        ] {
            assert_eq!(key_reference(key), reference, "{key}");
        }
        assert!(is_within("/do/1/a/do/0/b", "/do/1/a"));
        assert!(!is_within("/do/1/ab", "/do/1/a"));
    }

    fn program(yaml: &str) -> Arc<Program> {
        let opts = baton_flow::ValidateOptions {
            known_functions: vec![APPROVAL_FUNCTION.into()],
        };
        let loaded = baton_flow::load_flow(yaml, &opts).unwrap_or_else(|d| panic!("{d:?}"));
        Arc::new(Program::new(loaded.workflow, loaded.raw, yaml))
    }

    const FLOW: &str = r#"
document: {dsl: '1.0.0', namespace: test, name: p, version: '1.0.0'}
do:
  - pick:
      switch:
        - skip:
            when: ${ .fast }
            then: done
        - slow:
            then: continue
  - ask:
      call: approval
      with: {title: t, assignees: ann, window: PT1H}
  - done:
      set: {ok: true}
"#;

    /// Runs an instance of `FLOW` in the core alone, answering its effects with `answers`,
    /// and returns its journal.
    fn run(input: Value, answers: &[(&str, Value)]) -> Vec<JournalEntry> {
        let p = program(FLOW);
        let id = InstanceId("i-1".into());
        let mut inst = Instance::start(id, p, Env::default(), input, 1_000);
        let mut journal = Vec::new();
        let mut step = inst.step();
        journal.append(&mut step.entries);
        for (key, value) in answers {
            assert!(inst.deliver(&EffectKey((*key).into()), Outcome::ok(value.clone()), 2_000));
            journal.append(&mut inst.step().entries);
        }
        journal
    }

    #[test]
    fn the_replay_gives_every_task_its_state() {
        let p = program(FLOW);
        let id = InstanceId("i-1".into());
        // Waiting for the approval: the switch ran (no journal entry of its own), the approval
        // waits, the last task is not reached.
        let journal = run(serde_json::json!({"fast": false}), &[]);
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Running);
        assert!(got.approximate.is_none());
        assert_eq!(got.states["/do/0/pick"], TaskState::Completed);
        assert_eq!(got.states["/do/1/ask"], TaskState::Waiting);
        assert!(!got.states.contains_key("/do/2/done"));
        assert_eq!(got.outstanding.len(), 1);
        assert_eq!(got.outstanding[0].0.0, "/do/1/ask#call");

        // Answered: everything completed.
        let journal = run(
            serde_json::json!({"fast": false}),
            &[("/do/1/ask#call", serde_json::json!({"approved": true}))],
        );
        assert!(matches!(
            journal.last(),
            Some(JournalEntry::Completed { .. })
        ));
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Completed);
        for r in ["/do/0/pick", "/do/1/ask", "/do/2/done"] {
            assert_eq!(got.states[r], TaskState::Completed, "{r}");
        }
        assert!(got.outstanding.is_empty());

        // The switch jumped over the approval: it was never reached.
        let journal = run(serde_json::json!({"fast": true}), &[]);
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Completed);
        assert!(!got.states.contains_key("/do/1/ask"));
        assert_eq!(
            Progress::default_state(Status::Completed),
            TaskState::Skipped
        );

        // Without the flow, effect keys alone: the answered approval, nothing about the rest.
        let journal = run(
            serde_json::json!({"fast": false}),
            &[("/do/1/ask#call", serde_json::json!({"approved": true}))],
        );
        let got = derive(&id, None, Env::default(), &journal, Status::Completed);
        assert!(got.approximate.is_some());
        assert_eq!(got.states.len(), 1);
        assert_eq!(got.states["/do/1/ask"], TaskState::Completed);
    }

    #[test]
    fn a_cancelled_instance_shows_the_interrupted_task() {
        let p = program(FLOW);
        let id = InstanceId("i-1".into());
        let mut journal = run(serde_json::json!({"fast": false}), &[]);
        journal.push(JournalEntry::CancelRequested {
            at_ms: 3_000,
            reason: "no".into(),
            by: Some("ann".into()),
        });
        journal.push(JournalEntry::Cancelled {
            at_ms: 3_000,
            reason: "no".into(),
        });
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Cancelled);
        assert_eq!(got.states["/do/1/ask"], TaskState::Cancelled);
        assert_eq!(got.states["/do/0/pick"], TaskState::Completed);
    }

    #[test]
    fn a_cancellation_that_undoes_an_effect_shows_the_task_compensated() {
        // reserve ran and is undoable; the instance is cancelled while it waits for the
        // approval, so the undo runs after `cancel_requested`. The page must read past it.
        let yaml = r#"
document: {dsl: '1.0.0', namespace: test, name: c, version: '1.0.0'}
do:
  - reserve:
      call: fx
      metadata: {baton: {compensate: {call: fx, with: {undo: true}}}}
  - ask:
      call: approval
      with: {title: t, assignees: ann, window: PT1H}
"#;
        let opts = baton_flow::ValidateOptions {
            known_functions: vec![APPROVAL_FUNCTION.into(), "fx".into()],
        };
        let loaded = baton_flow::load_flow(yaml, &opts).unwrap_or_else(|d| panic!("{d:?}"));
        let p = Arc::new(Program::new(loaded.workflow, loaded.raw, yaml));
        let id = InstanceId("i-3".into());
        let mut inst = Instance::start(id.clone(), p.clone(), Env::default(), Value::Null, 1_000);
        let mut journal = inst.step().entries;
        let reserve = EffectKey("/do/0/reserve#call".into());
        assert!(inst.deliver(&reserve, Outcome::ok(serde_json::json!({})), 1_100));
        journal.append(&mut inst.step().entries);
        assert!(inst.cancel_by("no", Some("ann"), 1_200));
        let step = inst.step();
        journal.extend(step.entries);
        let undo = step
            .start
            .first()
            .expect("the undo is asked for")
            .key
            .clone();
        let during = derive(&id, Some(&p), Env::default(), &journal, Status::Running);
        assert_eq!(
            during
                .outstanding
                .iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            [&undo],
            "what is in flight is the undo, not the cancelled approval"
        );
        assert!(inst.deliver(&undo, Outcome::ok(serde_json::json!({})), 1_300));
        journal.append(&mut inst.step().entries);
        assert!(matches!(
            journal.last(),
            Some(JournalEntry::Cancelled { .. })
        ));
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Cancelled);
        assert!(got.approximate.is_none(), "{:?}", got.approximate);
        assert_eq!(got.states["/do/0/reserve"], TaskState::Compensated);
        assert_eq!(got.states["/do/1/ask"], TaskState::Cancelled);
        assert!(got.outstanding.is_empty());
    }

    #[test]
    fn tasks_after_a_fan_outs_note_get_their_state() {
        // A fan-out under a completeness rule journals a task note when it ends; what came
        // after it (an approval answered, the last task) ran, and the graph must say so.
        let p = program(
            r#"
document: {dsl: '1.0.0', namespace: test, name: n, version: '1.0.0'}
do:
  - each:
      for: {each: x, in: '${ [1, 2] }'}
      do:
        - one:
            set: {x: '${ $x }'}
      metadata: {baton: {complete: all}}
  - ask:
      call: approval
      with: {title: t, assignees: ann, window: PT1H}
  - done:
      set: {ok: true}
"#,
        );
        let id = InstanceId("i-2".into());
        let mut inst = Instance::start(id.clone(), p.clone(), Env::default(), Value::Null, 1_000);
        let mut journal = inst.step().entries;
        let ask = EffectKey("/do/1/ask#call".into());
        assert!(inst.deliver(
            &ask,
            Outcome::ok(serde_json::json!({"approved": true})),
            2_000
        ));
        journal.append(&mut inst.step().entries);
        assert!(
            matches!(journal[1], JournalEntry::TaskNote { .. }),
            "{journal:?}"
        );
        assert!(matches!(
            journal.last(),
            Some(JournalEntry::Completed { .. })
        ));
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Completed);
        for r in ["/do/0/each", "/do/1/ask", "/do/2/done"] {
            assert_eq!(got.states.get(r), Some(&TaskState::Completed), "{r}");
        }
    }

    #[test]
    fn a_compensated_task_is_shown_as_compensated() {
        let p = program(
            r#"
document: {dsl: '1.0.0', namespace: test, name: c, version: '1.0.0'}
do:
  - hold:
      call: approval
      with: {title: t, assignees: ann, window: PT1H}
      metadata:
        baton:
          compensate: {call: approval, with: {title: undo, assignees: ann, window: PT1H}}
  - boom:
      raise:
        error: {type: 'https://example.com/boom', status: 500}
"#,
        );
        let id = InstanceId("i-3".into());
        let mut inst = Instance::start(id.clone(), p.clone(), Env::default(), Value::Null, 1_000);
        let mut journal = inst.step().entries;
        for key in ["/do/0/hold#call", "/do/0/hold/compensate[0]#call"] {
            assert!(inst.deliver(&EffectKey(key.into()), Outcome::ok(Value::Null), 2_000));
            journal.append(&mut inst.step().entries);
        }
        assert!(matches!(journal.last(), Some(JournalEntry::Faulted { .. })));
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Faulted);
        assert_eq!(got.states["/do/0/hold"], TaskState::Compensated);
        assert_eq!(got.states["/do/1/boom"], TaskState::Faulted);
    }

    #[test]
    fn a_journal_that_does_not_fit_falls_back_to_keys() {
        let p = program(FLOW);
        let id = InstanceId("i-1".into());
        let mut journal = run(serde_json::json!({"fast": false}), &[]);
        journal.push(JournalEntry::EffectCompleted {
            at_ms: 2_000,
            key: EffectKey("/do/9/nope#call".into()),
            outcome: Outcome::ok(Value::Null),
            facts: Vec::new(),
        });
        let got = derive(&id, Some(&p), Env::default(), &journal, Status::Running);
        assert!(got.approximate.unwrap().contains("does not fit"));
        assert_eq!(got.states["/do/9/nope"], TaskState::Completed);
    }
}
