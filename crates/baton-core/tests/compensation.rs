//! Compensation (`metadata.baton.compensate`): completed effects are undone in reverse order when
//! the instance faults or is cancelled; each undo is guarded by a read, retried with back-off,
//! journaled, and replays to the same state.

use std::sync::Arc;

use baton_core::{
    EffectCall, EffectRequest, Env, Instance, InstanceId, JournalEntry, Outcome, Problem, Program,
    Status, TaskEvent, TaskPhase, idempotency_key,
};
use serde_json::{Value, json};

/// reserve (compensable) → book (compensable) → notify; each step calls the `fx` function.
fn program(extra_step: Option<Value>) -> Arc<Program> {
    let compensate = |what: &str| {
        json!({"baton": {"compensate": {
            "guard": {"call": "fx", "with": {"op": format!("find-{what}"), "key": "${ $effect.key }"},
                      "stands": "${ .status == \"held\" }"},
            "call": "fx",
            "with": {"op": format!("undo-{what}"), "key": "${ $effect.key }", "id": "${ .id }"},
            "retry": {"attempts": 3, "delay": "1s", "max_delay": "2s"}
        }}})
    };
    let mut steps = vec![
        json!({"reserve": {"call": "fx", "with": {"op": "reserve"}, "metadata": compensate("reserve")}}),
        json!({"book": {"call": "fx", "with": {"op": "book"}, "metadata": compensate("book")}}),
    ];
    if let Some(s) = extra_step {
        steps.push(s);
    }
    steps.push(json!({"notify": {"call": "fx", "with": {"op": "notify"}}}));
    Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "saga", "version": "1.0.0"},
            "do": steps
        }))
        .expect("valid flow"),
    )
}

fn op(call: &EffectCall) -> String {
    match &call.request {
        EffectRequest::Function { args, .. } => args["op"].as_str().unwrap_or("?").to_string(),
        EffectRequest::Timer { .. } => "timer".into(),
        other => format!("{other:?}"),
    }
}

fn args(call: &EffectCall) -> Value {
    match &call.request {
        EffectRequest::Function { args, .. } => args.clone(),
        _ => Value::Null,
    }
}

fn failed(status: u16, title: &str) -> Outcome {
    let mut p = Problem::new(baton_core::ErrorKind::Communication, title);
    p.status = status;
    Outcome::Failed { problem: p }
}

/// Drives an instance: each started effect is answered by `answer(op, call)`; returns the journal
/// and the ops in the order they were started.
struct Run {
    inst: Instance,
    journal: Vec<JournalEntry>,
    started: Vec<EffectCall>,
    events: Vec<TaskEvent>,
    now: u64,
}

impl Run {
    fn new(program: Arc<Program>) -> Run {
        let inst = Instance::start(
            InstanceId("i-1".into()),
            program,
            Env::default(),
            json!({}),
            1,
        );
        Run {
            inst,
            journal: Vec::new(),
            started: Vec::new(),
            events: Vec::new(),
            now: 1,
        }
    }

    /// Steps and returns the effects started.
    fn step(&mut self) -> Vec<EffectCall> {
        let s = self.inst.step();
        self.journal.extend(s.entries);
        self.started.extend(s.start.iter().cloned());
        self.events.extend(s.events);
        s.start
    }

    fn answer(&mut self, call: &EffectCall, outcome: Outcome) {
        self.now += 10;
        assert!(
            self.inst.deliver(&call.key, outcome, self.now),
            "{} outstanding",
            call.key
        );
    }

    /// Answers every effect with `f` until the instance ends.
    fn drive(&mut self, mut f: impl FnMut(&str, &EffectCall) -> Outcome) {
        for _ in 0..100 {
            let started = self.step();
            if self.inst.status().is_terminal() {
                return;
            }
            assert!(
                !started.is_empty(),
                "stuck: nothing started, status {:?}",
                self.inst.status()
            );
            for call in started {
                let o = f(&op(&call), &call);
                self.answer(&call, o);
            }
        }
        panic!("did not end");
    }

    fn ops(&self) -> Vec<String> {
        self.started.iter().map(op).collect()
    }

    fn notes(&self) -> Vec<Value> {
        self.journal
            .iter()
            .filter_map(|e| match e {
                JournalEntry::TaskNote { note, .. } if note.get("compensation").is_some() => {
                    Some(note.clone())
                }
                _ => None,
            })
            .collect()
    }
}

fn held(id: &str) -> Outcome {
    Outcome::ok(json!({"id": id, "status": "held"}))
}

#[test]
fn a_failed_step_undoes_the_completed_ones_last_first_after_their_guards() {
    let mut run = Run::new(program(None));
    run.drive(|op, _| match op {
        "reserve" => Outcome::ok(json!({"id": "r-1"})),
        "book" => Outcome::ok(json!({"id": "b-1"})),
        "notify" => failed(503, "notify is down"),
        "find-book" | "find-reserve" => held("x"),
        _ => Outcome::ok(json!({"undone": true})),
    });
    assert_eq!(run.inst.status(), Status::Faulted);
    assert_eq!(
        run.ops(),
        [
            "reserve",
            "book",
            "notify",
            "find-book",
            "undo-book",
            "find-reserve",
            "undo-reserve"
        ]
    );
    // The undo is keyed by the original effect's idempotency key and sees its output.
    let undo_reserve = &run.started[6];
    let reserve_key = idempotency_key(&InstanceId("i-1".into()), &run.started[0].key);
    assert_eq!(args(undo_reserve)["key"], json!(reserve_key));
    assert_eq!(args(undo_reserve)["id"], json!("r-1"));
    let notes = run.notes();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["task"], "book");
    // Progress reports say so too (the CLI's progress lines, the dashboard, the metric).
    let undone: Vec<&str> = run
        .events
        .iter()
        .filter(|e| e.phase == TaskPhase::Compensated)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(undone, ["book", "reserve"]);
    assert!(notes.iter().all(|n| n["compensation"] == "compensated"));
    // The fault is the one that caused the unwinding.
    match run.journal.last() {
        Some(JournalEntry::Faulted { problem, .. }) => {
            assert_eq!(problem.title.as_deref(), Some("notify is down"));
            assert_eq!(
                problem.detail.as_deref(),
                Some("compensation: 2 undone, 0 skipped")
            );
        }
        other => panic!("ends {other:?}"),
    }
    // A replay of the whole journal reaches the same end and asks for nothing.
    let mut replayed = Instance::recover(
        InstanceId("i-1".into()),
        program(None),
        Env::default(),
        &run.journal,
    )
    .expect("replay");
    assert_eq!(replayed.status(), Status::Faulted);
    assert!(replayed.step().start.is_empty());
}

#[test]
fn a_guard_that_finds_the_effect_already_undone_skips_the_undo() {
    let mut run = Run::new(program(None));
    run.drive(|op, _| match op {
        "reserve" => Outcome::ok(json!({"id": "r-1"})),
        "book" => failed(409, "no truck"),
        // A person released the reservation by hand.
        "find-reserve" => Outcome::ok(json!({"id": "r-1", "status": "released"})),
        other => panic!("unexpected {other}"),
    });
    assert_eq!(run.inst.status(), Status::Faulted);
    assert_eq!(run.ops(), ["reserve", "book", "find-reserve"]);
    let notes = run.notes();
    assert_eq!(notes[0]["compensation"], "skipped");
    assert_eq!(notes[0]["guard"]["status"], "released");
}

#[test]
fn an_unknown_outcome_is_reconciled_by_the_guard_before_anything_is_undone() {
    // The booking's answer was lost: the guard is asked whether it happened.
    let mut run = Run::new(program(None));
    run.drive(|op, _| match op {
        "reserve" => Outcome::ok(json!({"id": "r-1"})),
        "book" => Outcome::Unknown {
            reason: "timed out after sending".into(),
        },
        "find-book" => held("b-9"),
        "find-reserve" => failed(404, "no such reservation"),
        "undo-book" => Outcome::ok(json!({"cancelled": true})),
        other => panic!("unexpected {other}"),
    });
    assert_eq!(
        run.ops(),
        ["reserve", "book", "find-book", "undo-book", "find-reserve"]
    );
    let notes = run.notes();
    assert_eq!(notes[0]["outcome"], "unknown");
    assert_eq!(notes[0]["reconciled"], "applied");
    assert_eq!(notes[0]["compensation"], "compensated");
    assert_eq!(
        notes[1]["compensation"], "skipped",
        "a 404 guard: nothing to undo"
    );
}

#[test]
fn an_unknown_outcome_without_a_guard_is_left_for_a_person() {
    let p = Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "blind", "version": "1.0.0"},
            "do": [{"charge": {"call": "fx", "with": {"op": "charge"},
                               "metadata": {"baton": {"compensate": {"call": "fx", "with": {"op": "refund"}}}}}}]
        }))
        .unwrap(),
    );
    let mut run = Run::new(p);
    run.drive(|op, _| match op {
        "charge" => Outcome::Unknown {
            reason: "connection reset".into(),
        },
        other => panic!("unexpected {other}"),
    });
    assert_eq!(run.inst.status(), Status::Faulted);
    assert_eq!(run.ops(), ["charge"], "no blind refund");
    assert_eq!(run.notes()[0]["compensation"], "unresolved");
    let Some(JournalEntry::Faulted { problem, .. }) = run.journal.last() else {
        panic!("faulted")
    };
    let detail = problem.detail.as_deref().unwrap_or("");
    assert!(
        detail.ends_with("compensation: 0 undone, 0 skipped, 1 unresolved (a person must check)"),
        "{detail}"
    );
}

#[test]
fn a_failing_undo_is_retried_after_a_durable_back_off_and_guarded_again() {
    let mut run = Run::new(program(None));
    let mut undo_calls = 0;
    run.drive(|op, call| match op {
        "reserve" => Outcome::ok(json!({"id": "r-1"})),
        "book" => failed(400, "bad booking"),
        "find-reserve" => held("r-1"),
        "undo-reserve" => {
            undo_calls += 1;
            if undo_calls == 1 {
                failed(503, "inventory is down")
            } else {
                Outcome::ok(json!({"released": true}))
            }
        }
        "timer" => {
            let EffectRequest::Timer { fire_at_ms } = call.request else {
                unreachable!()
            };
            assert!(
                call.key.0.ends_with("/compensate[1]#backoff"),
                "{}",
                call.key
            );
            assert!(fire_at_ms >= 1000, "waits the declared delay");
            Outcome::ok(Value::Null)
        }
        other => panic!("unexpected {other}"),
    });
    assert_eq!(
        run.ops(),
        [
            "reserve",
            "book",
            "find-reserve",
            "undo-reserve",
            "timer",
            "find-reserve",
            "undo-reserve"
        ]
    );
    // Each attempt has its own effect keys.
    let keys: Vec<&str> = run.started.iter().map(|c| c.key.0.as_str()).collect();
    assert!(keys[3].contains("/compensate[0]") && keys[6].contains("/compensate[1]"));
    assert_eq!(run.notes()[0]["attempts"], 2);
}

#[test]
fn a_crash_during_compensation_resumes_the_same_undo_with_the_same_key() {
    let mut run = Run::new(program(None));
    for _ in 0..3 {
        let started = run.step();
        for call in started {
            let o = match op(&call).as_str() {
                "reserve" => Outcome::ok(json!({"id": "r-1"})),
                "book" => failed(422, "refused"),
                "find-reserve" => held("r-1"),
                other => panic!("unexpected {other}"),
            };
            run.answer(&call, o);
        }
    }
    // The undo was asked for (and its request made durable) when the process died.
    let started = run.step();
    assert_eq!(started.iter().map(op).collect::<Vec<_>>(), ["undo-reserve"]);
    let mut recovered = Instance::recover(
        InstanceId("i-1".into()),
        program(None),
        Env::default(),
        &run.journal,
    )
    .expect("replay");
    let again = recovered.step();
    assert!(again.entries.is_empty());
    assert_eq!(again.start.len(), 1);
    assert_eq!(again.start[0].key, started[0].key);
    assert_eq!(again.start[0].idempotency_key, started[0].idempotency_key);
    assert!(recovered.deliver(&again.start[0].key, Outcome::ok(json!({})), 99));
    let end = recovered.step();
    assert_eq!(end.status, Status::Faulted);
    assert!(end.entries.iter().any(
        |e| matches!(e, JournalEntry::TaskNote { note, .. } if note["compensation"] == "compensated")
    ));
}

#[test]
fn cancelling_undoes_what_happened_and_stops_what_is_in_flight() {
    let mut run = Run::new(program(None));
    let first = run.step();
    run.answer(&first[0], Outcome::ok(json!({"id": "r-1"})));
    let book = run.step();
    assert_eq!(op(&book[0]), "book");
    assert!(run.inst.cancel_by("customer cancelled", Some("olu"), 50));
    assert!(run.inst.is_compensating());
    // A second cancel while undoing changes nothing and says so.
    assert!(!run.inst.cancel_by("again", Some("olu"), 51));
    let s = run.inst.step();
    assert!(
        s.cancel.contains(&book[0].key),
        "the booking in flight is stopped"
    );
    // The booking may have been applied before it was stopped: its guard is asked first.
    assert_eq!(s.start.iter().map(op).collect::<Vec<_>>(), ["find-book"]);
    assert_ne!(s.status, Status::Cancelled, "not ended before the undo");
    run.journal.extend(s.entries);
    run.answer(&s.start[0], failed(404, "no such booking"));
    run.drive(|op, _| match op {
        "find-reserve" => held("r-1"),
        "undo-reserve" => Outcome::ok(json!({"released": true})),
        other => panic!("unexpected {other}"),
    });
    let notes = run.notes();
    assert_eq!(
        notes[0]["compensation"], "skipped",
        "the booking never happened"
    );
    assert_eq!(
        notes[1]["compensation"], "compensated",
        "the reservation is released"
    );
    assert_eq!(run.inst.status(), Status::Cancelled);
    assert!(
        matches!(run.journal.last(), Some(JournalEntry::Cancelled { reason, .. }) if reason == "customer cancelled")
    );
    let replayed = Instance::recover(
        InstanceId("i-1".into()),
        program(None),
        Env::default(),
        &run.journal,
    )
    .expect("replay");
    assert_eq!(replayed.status(), Status::Cancelled);
}

#[test]
fn a_fault_the_flow_catches_undoes_nothing() {
    let caught = json!({"tryBook": {
        "try": [{"again": {"call": "fx", "with": {"op": "fail"}}}],
        "catch": {"as": "e", "do": [{"log": {"set": {"caught": true}}}]}
    }});
    let mut run = Run::new(program(Some(caught)));
    run.drive(|op, _| match op {
        "fail" => failed(500, "boom"),
        _ => Outcome::ok(json!({"id": "x"})),
    });
    assert_eq!(run.inst.status(), Status::Completed);
    assert_eq!(run.ops(), ["reserve", "book", "fail", "notify"]);
}

#[test]
fn a_malformed_compensation_faults_the_task_before_its_effect() {
    let p = Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "bad", "version": "1.0.0"},
            "do": [{"charge": {"call": "fx", "with": {"op": "charge"},
                               "metadata": {"baton": {"compensate": {"call": "fx", "guard": {"call": "fx"}}}}}}]
        }))
        .unwrap(),
    );
    let mut run = Run::new(p);
    run.step();
    assert_eq!(run.inst.status(), Status::Faulted);
    assert!(run.started.is_empty(), "nothing was charged");
    match run.journal.last() {
        Some(JournalEntry::Faulted { problem, .. }) => {
            assert!(
                problem
                    .detail
                    .as_deref()
                    .unwrap_or("")
                    .contains("needs `stands`")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cancel_while_the_call_is_in_flight_asks_the_guard_whether_it_happened() {
    let mut run = Run::new(program(None));
    let first = run.step();
    assert_eq!(op(&first[0]), "reserve");
    // Cancelled before the reservation answered: it may have been applied.
    run.inst.cancel_by("changed my mind", None, 20);
    let s = run.inst.step();
    assert!(s.cancel.contains(&first[0].key));
    assert_eq!(s.start.iter().map(op).collect::<Vec<_>>(), ["find-reserve"]);
    run.journal.extend(s.entries);
    run.started.extend(s.start.iter().cloned());
    run.answer(&s.start[0], failed(404, "no such reservation"));
    run.step();
    assert_eq!(run.inst.status(), Status::Cancelled);
    let notes = run.notes();
    assert_eq!(notes[0]["outcome"], "unknown");
    assert_eq!(notes[0]["reconciled"], "not-applied");
    assert_eq!(notes[0]["compensation"], "skipped");
}

#[test]
fn a_cancel_before_the_call_was_sent_has_nothing_to_undo() {
    // The first step waits; the compensable call after it never starts.
    let wait = json!({"nap": {"wait": {"seconds": 60}}});
    let p = Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "later", "version": "1.0.0"},
            "do": [wait, {"charge": {"call": "fx", "with": {"op": "charge"},
                   "metadata": {"baton": {"compensate": {"call": "fx", "with": {"op": "refund"}}}}}}]
        }))
        .unwrap(),
    );
    let mut run = Run::new(p);
    run.step();
    run.inst.cancel_by("no", None, 5);
    run.step();
    assert_eq!(run.inst.status(), Status::Cancelled);
    assert_eq!(run.ops(), ["timer"]);
    assert!(run.notes().is_empty());
}

#[test]
fn the_undo_sees_what_the_guard_found() {
    // A person refunded part of the charge by hand: only the rest is refunded.
    let p = Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "refund", "version": "1.0.0"},
            "do": [
                {"charge": {"call": "fx", "with": {"op": "charge", "amount": "${ .amount }"},
                    "metadata": {"baton": {"compensate": {
                        "guard": {"call": "fx", "with": {"op": "refunds"}, "stands": "${ .total < $effect.input.amount }"},
                        "call": "fx",
                        "with": {"op": "refund", "amount": "${ $effect.input.amount - $guard.total }"}
                    }}}}},
                {"deliver": {"call": "fx", "with": {"op": "deliver"}}}
            ]
        }))
        .unwrap(),
    );
    let mut run = Run {
        inst: Instance::start(
            InstanceId("i-2".into()),
            p,
            Env::default(),
            json!({"amount": 80}),
            1,
        ),
        journal: Vec::new(),
        started: Vec::new(),
        events: Vec::new(),
        now: 1,
    };
    run.drive(|op, _| match op {
        "charge" => Outcome::ok(json!({"charged": 80})),
        "deliver" => failed(422, "nobody home"),
        "refunds" => Outcome::ok(json!({"total": 30})),
        "refund" => Outcome::ok(json!({"refunded": true})),
        other => panic!("unexpected {other}"),
    });
    assert_eq!(run.ops(), ["charge", "deliver", "refunds", "refund"]);
    assert_eq!(args(&run.started[3])["amount"], json!(50));
}

#[test]
fn an_undo_whose_answer_was_lost_is_not_sent_again_blindly() {
    // No guard: another attempt would carry another idempotency key and could refund twice.
    let p = Arc::new(
        Program::from_json(json!({
            "document": {"dsl": "1.0.3", "namespace": "t", "name": "blind-undo", "version": "1.0.0"},
            "do": [
                {"charge": {"call": "fx", "with": {"op": "charge"},
                            "metadata": {"baton": {"compensate": {"call": "fx", "with": {"op": "refund"},
                                                                  "retry": {"attempts": 3, "delay": "1s"}}}}}},
                {"ship": {"call": "fx", "with": {"op": "ship"}}}
            ]
        }))
        .unwrap(),
    );
    let mut run = Run::new(p);
    run.drive(|op, _| match op {
        "charge" => Outcome::ok(json!({"id": "ch-1"})),
        "ship" => failed(503, "no truck"),
        "refund" => Outcome::Unknown {
            reason: "timed out after sending".into(),
        },
        other => panic!("unexpected {other}"),
    });
    assert_eq!(run.inst.status(), Status::Faulted);
    assert_eq!(run.ops(), ["charge", "ship", "refund"], "one refund sent");
    let note = &run.notes()[0];
    assert_eq!(note["compensation"], "unresolved", "{note}");
    assert_eq!(note["attempts"], 1);
}
