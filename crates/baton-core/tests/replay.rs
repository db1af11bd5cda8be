//! One fold of a journal, whoever reads it. Random runs of a flow with compensation, a fork and a
//! timer are driven through the machine with random answers, cancellations (also during
//! compensation), suspensions and crashes; then the journal they wrote is folded again by
//! [`Instance::replay`] (what decision records, replays and the dashboard read) and by
//! [`Instance::recover`] (what the driver resumes from). Every reader must find what the live
//! run did: the same requests, the same task events in the same order, the same status and the
//! same effects still outstanding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use baton_core::{
    Advance, EffectCall, EffectKey, EffectRequest, Env, ErrorKind, Fit, Instance, InstanceId,
    JournalEntry, Outcome, Problem, Program, ReplayObserver, Status, TaskEvent,
};
use proptest::prelude::*;
use serde_json::json;

fn compensate(what: &str) -> serde_json::Value {
    json!({"baton": {"compensate": {
        "guard": {"call": "fx", "with": {"op": format!("find-{what}")}, "stands": "${ .held == true }"},
        "call": "fx",
        "with": {"op": format!("undo-{what}")},
        "retry": {"attempts": 2, "delay": "1s"}
    }}})
}

/// reserve (undoable) → fork of two undoable bookings → a timer → notify.
fn program() -> Arc<Program> {
    Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "fold", "version": "1.0.0"},
            "do": [
                {"reserve": {"call": "fx", "with": {"op": "reserve"}, "metadata": compensate("reserve")}},
                {"both": {"fork": {"branches": [
                    {"bookA": {"call": "fx", "with": {"op": "A"}, "metadata": compensate("A")}},
                    {"bookB": {"call": "fx", "with": {"op": "B"}, "metadata": compensate("B")}}
                ]}}},
                {"pause": {"wait": {"seconds": 5}}},
                {"notify": {"call": "fx", "with": {"op": "notify"}}}
            ]
        }))
        .expect("valid flow"),
    )
}

#[derive(Debug, Clone)]
enum Action {
    /// Answer the outstanding effect at this position (sorted by key), with a success, a
    /// failure, or a guard's "it stands".
    Answer {
        pick: usize,
        answer: Answer,
    },
    Cancel,
    Suspend,
    Resume,
    /// Drop the instance and recover it from the journal written so far.
    Crash,
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    Held,
    Failed,
}

fn action() -> impl Strategy<Value = Action> {
    let answer = prop_oneof![
        4 => Just(Answer::Ok),
        2 => Just(Answer::Held),
        1 => Just(Answer::Failed),
    ];
    prop_oneof![
        12 => (0usize..4, answer).prop_map(|(pick, answer)| Action::Answer { pick, answer }),
        1 => Just(Action::Cancel),
        1 => Just(Action::Suspend),
        2 => Just(Action::Resume),
        1 => Just(Action::Crash),
    ]
}

fn outcome(answer: Answer) -> Outcome {
    match answer {
        Answer::Ok => Outcome::ok(json!({"held": false, "id": "x"})),
        Answer::Held => Outcome::ok(json!({"held": true, "id": "x"})),
        Answer::Failed => {
            let mut p = Problem::new(ErrorKind::Communication, "down");
            p.status = 503;
            Outcome::Failed { problem: p }
        }
    }
}

fn id() -> InstanceId {
    InstanceId("i-fold".into())
}

/// What the live run did, as its driver saw it.
#[derive(Default)]
struct Live {
    journal: Vec<JournalEntry>,
    requests: BTreeMap<EffectKey, EffectRequest>,
    events: Vec<TaskEvent>,
    /// Effects started and neither answered nor given up.
    open: BTreeSet<EffectKey>,
}

impl Live {
    fn take(&mut self, inst: &mut Instance) -> Status {
        let step = inst.step();
        self.journal.extend(step.entries);
        for call in step.start {
            self.open.insert(call.key.clone());
            self.requests.insert(call.key, call.request);
        }
        for key in &step.cancel {
            self.open.remove(key);
        }
        self.events.extend(step.events);
        step.status
    }
}

/// What a reader of the journal finds.
#[derive(Default)]
struct Folded {
    requests: BTreeMap<EffectKey, EffectRequest>,
    events: Vec<TaskEvent>,
    misfits: usize,
}

impl ReplayObserver for Folded {
    fn advanced(&mut self, _index: usize, advance: Advance) {
        for call in advance.start {
            self.requests.insert(call.key, call.request);
        }
        self.events.extend(advance.events);
    }

    fn outcome(&mut self, _index: usize, _key: &EffectKey, _outcome: &Outcome, fitted: bool) {
        if !fitted {
            self.misfits += 1;
        }
    }
}

/// Runs `actions` against a live instance; returns the live record and its last status.
fn run_live(actions: &[Action]) -> (Live, Instance) {
    let mut live = Live::default();
    let mut now = 1_000;
    let mut inst = Instance::start(id(), program(), Env::default(), json!({}), now);
    live.take(&mut inst);
    for action in actions {
        now += 700;
        match action {
            Action::Answer { pick, answer } => {
                let keys: Vec<EffectKey> = live.open.iter().cloned().collect();
                if keys.is_empty() {
                    continue;
                }
                let key = &keys[pick % keys.len()];
                // A timer is answered by the clock, never with a failure.
                let o = match live.requests.get(key) {
                    Some(EffectRequest::Timer { .. }) => Outcome::ok(json!(null)),
                    _ => outcome(*answer),
                };
                if inst.deliver(key, o, now) {
                    live.open.remove(key);
                }
            }
            Action::Cancel => {
                inst.cancel_by("tester", Some("prop"), now);
            }
            Action::Suspend => {
                inst.suspend("prop", None, now);
            }
            Action::Resume => {
                inst.resume("prop", now);
            }
            Action::Crash => {
                inst = Instance::recover(id(), program(), Env::default(), &live.journal)
                    .expect("a journal the machine wrote recovers");
                // The driver re-sends what was outstanding: same keys, same requests.
                live.open.clear();
            }
        }
        live.take(&mut inst);
    }
    (live, inst)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_reader_folds_a_journal_to_what_the_live_run_did(
        actions in prop::collection::vec(action(), 0..40)
    ) {
        let (live, mut inst) = run_live(&actions);
        let live_status = inst.step().status;

        // The strict fold (recovery, decision records, the dashboard).
        let mut folded = Folded::default();
        let replayed = Instance::replay(
            id(), program(), Env::default(), &live.journal, Fit::Exact, &mut folded,
        );
        prop_assert!(replayed.is_ok(), "{:?}", replayed.err());
        prop_assert_eq!(&folded.requests, &live.requests);
        prop_assert_eq!(&folded.events, &live.events);
        prop_assert_eq!(folded.misfits, 0);

        // The lenient fold (a replay of a recorded run) finds the same in an own journal.
        let mut lenient = Folded::default();
        Instance::replay(
            id(), program(), Env::default(), &live.journal, Fit::Lenient, &mut lenient,
        ).expect("lenient fold");
        prop_assert_eq!(&lenient.requests, &live.requests);
        prop_assert_eq!(&lenient.events, &live.events);

        // Recovery stands where the live run stands and re-sends exactly what is open.
        let mut recovered = Instance::recover(id(), program(), Env::default(), &live.journal)
            .expect("recover");
        let step = recovered.step();
        // The live run journaled all it produced, so recovery has nothing to add.
        prop_assert!(step.entries.is_empty(), "{:?}", step.entries);
        prop_assert_eq!(step.status, live_status);
        let resent: BTreeSet<EffectKey> = step.start.iter().map(|c: &EffectCall| c.key.clone()).collect();
        prop_assert_eq!(resent, live.open.clone());
        prop_assert_eq!(recovered.is_compensating(), inst.is_compensating());
        prop_assert_eq!(recovered.is_suspended(), inst.is_suspended());

        // No effect is answered twice in the journal.
        let mut seen = BTreeSet::new();
        for e in &live.journal {
            if let JournalEntry::EffectCompleted { key, .. } = e {
                prop_assert!(seen.insert(key.clone()), "{} answered twice", key);
            }
        }
    }
}

/// The case the three old loops disagreed on: a cancellation while effects stand, whose
/// compensation is then answered. A reader that stops at `cancel_requested` misses the undo
/// requests and the compensated tasks.
#[test]
fn a_fold_reads_past_a_cancellation_into_its_compensation() {
    // reserve answers, the bookings are in flight when the cancellation comes; every guard
    // then finds its effect standing and every undo succeeds.
    let mut actions = vec![
        Action::Answer {
            pick: 0,
            answer: Answer::Ok,
        },
        Action::Cancel,
    ];
    actions.extend(std::iter::repeat_n(
        Action::Answer {
            pick: 0,
            answer: Answer::Held,
        },
        12,
    ));
    let (live, mut inst) = run_live(&actions);
    assert_eq!(inst.step().status, Status::Cancelled);
    let mut folded = Folded::default();
    Instance::replay(
        id(),
        program(),
        Env::default(),
        &live.journal,
        Fit::Exact,
        &mut folded,
    )
    .expect("fold");
    let ops: Vec<String> = folded
        .requests
        .values()
        .filter_map(|r| match r {
            EffectRequest::Function { args, .. } => args["op"].as_str().map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(ops.contains(&"undo-reserve".to_string()), "{ops:?}");
    assert!(
        folded
            .events
            .iter()
            .any(|e| e.name == "reserve" && e.phase == baton_core::TaskPhase::Compensated),
        "{:?}",
        folded.events
    );
}
