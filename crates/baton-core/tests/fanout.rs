//! Complete or explicit fan-outs and deadlines with safe defaults (`metadata.baton`, see
//! docs/extensions.md), driven through `Instance` directly: which branches are missing and why,
//! the status the completeness rule gives, that a decision needing every branch is withheld, that
//! a deadline's default is taken only when the journal's timer fires first, and that a replay of
//! the journal gives the same output.

use std::sync::Arc;

use baton_core::{
    EffectCall, EffectKey, EffectRequest, Env, ErrorKind, Instance, InstanceId, JournalEntry,
    Outcome, Problem, Program, Status,
};
use serde_json::{Value, json};

/// One instance and the world around it: the journal the store would hold and the effects in
/// flight.
struct Run {
    id: InstanceId,
    program: Arc<Program>,
    inst: Instance,
    journal: Vec<JournalEntry>,
    outstanding: Vec<EffectCall>,
    /// Every effect ever requested, in order.
    requested: Vec<EffectCall>,
    cancelled: Vec<EffectKey>,
    now_ms: u64,
}

const T0: u64 = 1_000_000;

impl Run {
    fn start(flow: Value, input: Value) -> Run {
        let program = Arc::new(Program::from_json(flow).expect("valid flow"));
        let id = InstanceId("fanout-1".into());
        let inst = Instance::start(id.clone(), program.clone(), Env::default(), input, T0);
        let mut run = Run {
            id,
            program,
            inst,
            journal: Vec::new(),
            outstanding: Vec::new(),
            requested: Vec::new(),
            cancelled: Vec::new(),
            now_ms: T0,
        };
        run.absorb();
        run
    }

    fn absorb(&mut self) -> Status {
        let step = self.inst.step();
        self.journal.extend(step.entries);
        self.outstanding.retain(|c| !step.cancel.contains(&c.key));
        self.cancelled.extend(step.cancel);
        self.requested.extend(step.start.iter().cloned());
        self.outstanding.extend(step.start);
        step.status
    }

    /// The outstanding effect whose key ends with `suffix` (exactly one must).
    fn key(&self, suffix: &str) -> EffectKey {
        let found: Vec<&EffectCall> = self
            .outstanding
            .iter()
            .filter(|c| c.key.0.ends_with(suffix))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one outstanding effect ending with {suffix}: {:?}",
            self.outstanding
                .iter()
                .map(|c| &c.key.0)
                .collect::<Vec<_>>()
        );
        found[0].key.clone()
    }

    fn deliver_at(&mut self, suffix: &str, outcome: Outcome, at_ms: u64) {
        let key = self.key(suffix);
        self.now_ms = self.now_ms.max(at_ms);
        assert!(
            self.inst.deliver(&key, outcome, self.now_ms),
            "{key} accepted"
        );
        self.outstanding.retain(|c| c.key != key);
        self.absorb();
    }

    fn deliver(&mut self, suffix: &str, outcome: Outcome) {
        let at = self.now_ms + 10;
        self.deliver_at(suffix, outcome, at);
    }

    /// Answers every outstanding function call with `answer(args)` (timers are left alone) until
    /// none is left, in key order.
    fn answer_calls(&mut self, answer: impl Fn(&str, &Value) -> Outcome) {
        while let Some(call) = self
            .outstanding
            .iter()
            .find(|c| matches!(c.request, EffectRequest::Function { .. }))
            .cloned()
        {
            let EffectRequest::Function { name, args } = &call.request else {
                unreachable!()
            };
            let outcome = answer(name, args);
            let suffix = call.key.0.clone();
            self.deliver(&suffix, outcome);
        }
    }

    fn output(&self) -> Value {
        match self.journal.last() {
            Some(JournalEntry::Completed { output, .. }) => output.clone(),
            other => panic!("the instance did not complete: {other:?}"),
        }
    }

    fn problem(&self) -> Problem {
        match self.journal.last() {
            Some(JournalEntry::Faulted { problem, .. }) => problem.clone(),
            other => panic!("the instance did not fault: {other:?}"),
        }
    }

    /// The end entry a fresh instance produces from the journal without its end: replay must
    /// reach the same end from the same outcomes.
    fn replayed_end(&self) -> JournalEntry {
        let (end, before) = self.journal.split_last().expect("a journal");
        assert!(end.is_terminal());
        let mut again = Instance::recover(
            self.id.clone(),
            self.program.clone(),
            Env::default(),
            before,
        )
        .expect("replay");
        let step = again.step();
        assert!(
            step.start.is_empty(),
            "nothing is outstanding after the end"
        );
        assert_eq!(step.entries.len(), 1, "{:?}", step.entries);
        step.entries[0].clone()
    }

    fn requested_any(&self, needle: &str) -> bool {
        self.requested.iter().any(|c| c.key.0.contains(needle))
    }
}

fn flow(tasks: Value) -> Value {
    json!({
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "fanout", "version": "1.0.0"},
        "do": tasks
    })
}

fn rate_limited() -> Outcome {
    Outcome::failed(
        Problem::new(ErrorKind::Communication, "Too Many Requests")
            .with_status(429)
            .with_detail("verify answered 429 six times"),
    )
}

/// A fork of three checks with a rule, then a decision that needs the fan-out to be usable.
fn three_checks(rule: Value) -> Value {
    flow(json!([
        {"checks": {
            "fork": {"branches": [
                {"north": {"call": "check", "with": {"zone": "north"}}},
                {"east": {"call": "check", "with": {"zone": "east"}}},
                {"south": {"call": "check", "with": {"zone": "south"}}}
            ]},
            "metadata": {"baton": {"complete": rule}}
        }},
        {"route": {"switch": [
            {"usable": {"when": "${ .status != \"unknown\" }", "then": "decide"}},
            {"withheld": {"then": "end"}}
        ]}},
        {"decide": {"call": "dispatch", "with": {"zones": "${ [.results[] | select(. != null) | .zone] }"}}}
    ]))
}

fn zone_answer(failing: &'static [&'static str]) -> impl Fn(&str, &Value) -> Outcome {
    move |name, args| {
        if name == "check" && failing.contains(&args["zone"].as_str().unwrap_or("")) {
            rate_limited()
        } else {
            Outcome::ok(args.clone())
        }
    }
}

#[test]
fn fork_with_at_least_met_is_partial_and_lists_the_missing_branch() {
    let mut run = Run::start(three_checks(json!({"at_least": 2})), json!({}));
    assert_eq!(run.outstanding.len(), 3, "all three branches start at once");
    // The east branch faults first; the others must still run to their end.
    run.deliver("/fork/1/east#call", rate_limited());
    assert_eq!(run.inst.status(), Status::Running, "the fork did not fault");
    run.answer_calls(zone_answer(&[]));
    let out = run.output();
    // The decision ran on the two present verdicts only.
    assert_eq!(out, json!({"zones": ["north", "south"]}));
    let decide = run
        .requested
        .iter()
        .find(|c| c.key.0.contains("/decide"))
        .expect("decide ran");
    assert!(
        matches!(&decide.request, EffectRequest::Function { args, .. } if args["zones"] == json!(["north", "south"]))
    );

    // What the fork itself produced, seen through a flow that stops right after it.
    let mut only = Run::start(
        flow(json!([
            three_checks(json!({"at_least": 2}))["do"][0].clone()
        ])),
        json!({}),
    );
    only.deliver("/fork/1/east#call", rate_limited());
    only.answer_calls(zone_answer(&[]));
    let fork = only.output();
    assert_eq!(fork["status"], "partial");
    assert_eq!(
        fork["results"],
        json!([{"zone": "north"}, null, {"zone": "south"}])
    );
    assert_eq!(fork["completed"], json!([0, 2]));
    assert_eq!(fork["rule"], json!({"at_least": 2}));
    assert_eq!(
        fork["counts"],
        json!({"total": 3, "completed": 2, "missing": 1, "required": 2})
    );
    let missing = fork["missing"].as_array().expect("missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["index"], 1);
    assert_eq!(missing[0]["branch"], "east");
    assert_eq!(missing[0]["reason"], "faulted");
    assert_eq!(missing[0]["error"]["status"], 429);
    assert!(
        missing[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("429 six times")),
        "{fork}"
    );
    assert_eq!(only.replayed_end(), *only.journal.last().expect("end"));
}

#[test]
fn fork_with_at_least_not_met_is_unknown_and_the_decision_is_withheld() {
    let mut run = Run::start(three_checks(json!({"at_least": 2})), json!({}));
    run.answer_calls(zone_answer(&["north", "south"]));
    let out = run.output();
    assert_eq!(out["status"], "unknown", "{out}");
    assert_eq!(out["counts"]["completed"], 1);
    let missing: Vec<&str> = out["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .map(|m| m["branch"].as_str().expect("branch"))
        .collect();
    assert_eq!(missing, ["north", "south"]);
    assert_eq!(out["results"], json!([null, {"zone": "east"}, null]));
    assert!(
        !run.requested_any("/decide"),
        "no effect was requested for the decision"
    );
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));
}

#[test]
fn fork_with_every_branch_ok_is_complete() {
    let mut run = Run::start(three_checks(json!("all")), json!({}));
    run.answer_calls(zone_answer(&[]));
    assert_eq!(run.output(), json!({"zones": ["north", "east", "south"]}));
    let mut only = Run::start(
        flow(json!([three_checks(json!("all"))["do"][0].clone()])),
        json!({}),
    );
    only.answer_calls(zone_answer(&[]));
    let fork = only.output();
    assert_eq!(fork["status"], "complete");
    assert_eq!(fork["missing"], json!([]));
    assert_eq!(fork["completed"], json!([0, 1, 2]));
}

#[test]
fn with_all_a_single_missing_branch_makes_the_fork_unknown() {
    let mut run = Run::start(
        flow(json!([three_checks(json!("all"))["do"][0].clone()])),
        json!({}),
    );
    run.answer_calls(zone_answer(&["south"]));
    assert_eq!(run.output()["status"], "unknown");
}

/// A `for` over five addresses whose check is a function; `rule` and `branch_ok` as given.
fn five_checks(baton: Value) -> Value {
    flow(json!([
        {"verifyAll": {
            "for": {"each": "item", "in": "${ .addresses }", "at": "i"},
            "do": [
                {"verify": {
                    "call": "verify",
                    "with": {"address": "${ $item }", "seen": "${ .seen }"},
                    "output": {"as": "${ {address: $item, verdict: .verdict, seen: .seen} }"}
                }}
            ],
            "metadata": {"baton": baton}
        }}
    ]))
}

fn addresses() -> Value {
    json!({
        "seen": "the task's input",
        "addresses": ["1 Elm St", "2 Oak Ave", "3 Ash Rd", "4 Fir Ln", "5 Yew Ct"]
    })
}

#[test]
fn for_over_five_items_with_two_faulting_runs_every_iteration_and_names_the_missing() {
    let mut run = Run::start(
        five_checks(json!({"complete": {"fraction": 0.6}})),
        addresses(),
    );
    let answer = |_: &str, args: &Value| {
        let a = args["address"].as_str().unwrap_or("");
        if a.starts_with('2') || a.starts_with('4') {
            rate_limited()
        } else {
            Outcome::ok(json!({"verdict": "deliverable", "seen": args["seen"]}))
        }
    };
    run.answer_calls(answer);
    let out = run.output();
    assert_eq!(out["status"], "partial", "3 of 5 meets 0.6: {out}");
    assert_eq!(out["completed"], json!([0, 2, 4]));
    assert_eq!(out["counts"]["required"], 3);
    let missing = out["missing"].as_array().expect("missing");
    assert_eq!(missing.len(), 2);
    assert_eq!(missing[0]["index"], 1);
    assert_eq!(missing[0]["item"], "2 Oak Ave");
    assert_eq!(missing[0]["reason"], "faulted");
    assert_eq!(missing[1]["item"], "4 Fir Ln");
    assert_eq!(out["results"][1], Value::Null);
    assert_eq!(out["results"][3], Value::Null);
    // Every iteration ran (the loop did not stop at the first fault), and each saw the task's
    // input rather than the previous iteration's output.
    let verifies = run
        .requested
        .iter()
        .filter(|c| c.key.0.contains("/for["))
        .count();
    assert_eq!(verifies, 5);
    assert!(
        out["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| !r.is_null())
            .all(|r| r["seen"] == "the task's input"),
        "{out}"
    );
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));

    // The same answers under `all`: unknown.
    let mut strict = Run::start(five_checks(json!({"complete": "all"})), addresses());
    strict.answer_calls(answer);
    assert_eq!(strict.output()["status"], "unknown");
}

#[test]
fn branch_ok_marks_null_verdicts_missing_and_keeps_what_they_said() {
    let mut run = Run::start(
        five_checks(json!({"complete": "all", "branch_ok": ".verdict != null"})),
        addresses(),
    );
    run.answer_calls(|_, args| {
        let a = args["address"].as_str().unwrap_or("");
        let verdict = if a.starts_with('3') {
            Value::Null
        } else {
            json!("deliverable")
        };
        Outcome::ok(json!({"verdict": verdict}))
    });
    let out = run.output();
    assert_eq!(out["status"], "unknown", "{out}");
    let missing = out["missing"].as_array().expect("missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["index"], 2);
    assert_eq!(missing[0]["item"], "3 Ash Rd");
    assert_eq!(missing[0]["reason"], "not_ok");
    assert!(
        missing[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(".verdict != null")),
        "{out}"
    );
    // The null verdict is not merged as a result; what was answered stays beside the reason.
    assert_eq!(out["results"][2], Value::Null);
    assert_eq!(missing[0]["output"]["verdict"], Value::Null);
    assert_eq!(out["counts"]["completed"], 4);
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));
}

#[test]
fn a_replay_from_any_point_of_the_journal_reaches_the_same_output() {
    let mut run = Run::start(
        five_checks(json!({"complete": {"at_least": 3}, "branch_ok": ".verdict != null"})),
        addresses(),
    );
    run.answer_calls(|_, args| {
        let a = args["address"].as_str().unwrap_or("");
        match a.as_bytes()[0] {
            b'1' => rate_limited(),
            b'5' => Outcome::ok(json!({"verdict": null})),
            _ => Outcome::ok(json!({"verdict": "deliverable"})),
        }
    });
    let live = run.output();
    assert_eq!(live["status"], "partial");
    // A crash after any entry: recover from the prefix, answer what is outstanding from the
    // live journal, and end with the same output.
    for cut in 1..run.journal.len() {
        let mut again = Instance::recover(
            run.id.clone(),
            run.program.clone(),
            Env::default(),
            &run.journal[..cut],
        )
        .expect("replay");
        let mut journal: Vec<JournalEntry> = run.journal[..cut].to_vec();
        loop {
            let step = again.step();
            journal.extend(step.entries);
            if step.status.is_terminal() {
                break;
            }
            let Some(call) = again.outstanding().into_iter().next() else {
                panic!("stuck after cut {cut}");
            };
            let outcome = run
                .journal
                .iter()
                .find_map(|e| match e {
                    JournalEntry::EffectCompleted { key, outcome, .. } if *key == call => {
                        Some(outcome.clone())
                    }
                    _ => None,
                })
                .expect("the live run answered it");
            assert!(again.deliver(&call, outcome, T0 + 10_000));
        }
        match journal.last() {
            Some(JournalEntry::Completed { output, .. }) => assert_eq!(*output, live, "cut {cut}"),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn without_metadata_a_faulting_branch_still_faults_the_fork_and_stops_the_loop() {
    let mut fork = Run::start(
        flow(json!([{"checks": {"fork": {"branches": [
            {"north": {"call": "check", "with": {"zone": "north"}}},
            {"east": {"call": "check", "with": {"zone": "east"}}}
        ]}}}])),
        json!({}),
    );
    fork.deliver("/fork/1/east#call", rate_limited());
    assert_eq!(fork.inst.status(), Status::Faulted);
    assert_eq!(fork.problem().status, 429);
    assert!(
        fork.cancelled.iter().any(|k| k.0.contains("/fork/0/north")),
        "the other branch is cancelled"
    );

    let mut each = Run::start(
        flow(json!([{"verifyAll": {
            "for": {"each": "item", "in": "${ .addresses }"},
            "do": [{"verify": {"call": "verify", "with": {"address": "${ $item }"}}}]
        }}])),
        addresses(),
    );
    each.deliver("/for[0]/do/0/verify#call", rate_limited());
    assert_eq!(each.inst.status(), Status::Faulted);
    assert!(
        !each.requested_any("/for[1]"),
        "the loop stopped at the fault"
    );
}

#[test]
fn a_completeness_rule_on_a_competing_fork_is_a_configuration_error() {
    let run = Run::start(
        flow(json!([{"race": {
            "fork": {"compete": true, "branches": [
                {"a": {"call": "check", "with": {}}},
                {"b": {"call": "check", "with": {}}}
            ]},
            "metadata": {"baton": {"complete": "all"}}
        }}])),
        json!({}),
    );
    let p = run.problem();
    assert_eq!(p.kind(), Some(ErrorKind::Configuration), "{p:?}");
    assert!(run.requested.is_empty(), "nothing ran");
}

#[test]
fn a_misspelt_rule_faults_the_task_with_the_reason() {
    let run = Run::start(five_checks(json!({"complete": "most"})), addresses());
    let p = run.problem();
    assert_eq!(p.kind(), Some(ErrorKind::Configuration));
    assert!(
        p.detail.as_deref().is_some_and(|d| d.contains("most")),
        "{p:?}"
    );
    assert_eq!(p.instance.as_deref(), Some("/do/0/verifyAll"));
}

#[test]
fn a_rule_on_a_task_that_does_not_fan_out_is_refused() {
    let run = Run::start(
        flow(json!([{"one": {
            "call": "check",
            "with": {},
            "metadata": {"baton": {"complete": "all"}}
        }}])),
        json!({}),
    );
    let p = run.problem();
    assert_eq!(p.kind(), Some(ErrorKind::Configuration));
    assert!(run.requested.is_empty());
}

/// A flow that waits for an approval with a deadline, then records what it got.
fn approval_with_deadline(baton: Value) -> Value {
    flow(json!([
        {"approve": {
            "call": "approval",
            "with": {"assignees": ["dispatcher"]},
            "metadata": {"baton": baton}
        }},
        {"next": {"set": {"approved": "${ .approved }", "via": "next"}}},
        {"escalate": {"set": {"approved": "${ .approved }", "via": "escalate"}}}
    ]))
}

#[test]
fn a_deadline_takes_the_default_when_its_timer_fires_first() {
    let mut run = Run::start(
        approval_with_deadline(json!({
            "deadline": "PT5M",
            "default": "${ . + {approved: false, reason: \"no answer in time\"} }"
        })),
        json!({"order": "o-7"}),
    );
    let timer = run
        .outstanding
        .iter()
        .find(|c| c.key.0.ends_with("#deadline"))
        .expect("a deadline timer");
    assert_eq!(timer.key.0, "/do/0/approve#deadline");
    assert_eq!(
        timer.request,
        EffectRequest::Timer {
            fire_at_ms: T0 + 300_000
        },
        "measured on the journal's clock from the task's start"
    );
    run.deliver_at("#deadline", Outcome::ok(Value::Null), T0 + 300_000);
    assert!(
        run.cancelled.iter().any(|k| k.0 == "/do/0/approve#call"),
        "the approval is abandoned"
    );
    let out = run.output();
    // The default replaced the task's output and the flow went on to the next task.
    assert_eq!(out, json!({"approved": false, "via": "escalate"}));
    // The journal shows the default taken: the deadline's timer completed.
    assert!(run.journal.iter().any(|e| matches!(e,
        JournalEntry::EffectCompleted { key, .. } if baton_core::is_deadline_key(&key.0))));
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));
}

#[test]
fn a_deadline_not_reached_gives_the_normal_output_and_cancels_its_timer() {
    let mut run = Run::start(
        approval_with_deadline(json!({"deadline": "5m", "default": {"approved": false}})),
        json!({}),
    );
    run.deliver("#call", Outcome::ok(json!({"approved": true})));
    assert_eq!(run.output(), json!({"approved": true, "via": "escalate"}));
    assert!(
        run.cancelled
            .iter()
            .any(|k| k.0 == "/do/0/approve#deadline"),
        "the timer is no longer awaited"
    );
    assert!(!run.journal.iter().any(|e| matches!(e,
        JournalEntry::EffectCompleted { key, .. } if key.0.ends_with("#deadline"))));
    // A late firing of the cancelled timer is refused.
    assert!(!run.inst.deliver(
        &EffectKey("/do/0/approve#deadline".into()),
        Outcome::ok(Value::Null),
        T0 + 400_000
    ));
}

#[test]
fn a_deadline_with_then_continues_at_that_task() {
    let mut run = Run::start(
        approval_with_deadline(json!({"deadline": "PT1H", "then": "escalate"})),
        json!({"approved": "pending"}),
    );
    run.deliver_at("#deadline", Outcome::ok(Value::Null), T0 + 3_600_000);
    // `next` was skipped; without a default the task's input passed through.
    assert_eq!(
        run.output(),
        json!({"approved": "pending", "via": "escalate"})
    );
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));
}

#[test]
fn a_listen_that_never_hears_its_event_ends_at_the_deadline() {
    let mut run = Run::start(
        flow(json!([{"awaitEta": {
            "listen": {"to": {"one": {"with": {"type": "maplewood.eta.updated"}}}},
            "metadata": {"baton": {"deadline": {"minutes": 10}, "default": [{"eta": null}]}}
        }}])),
        json!({}),
    );
    assert_eq!(run.absorb(), Status::Waiting, "only waits are outstanding");
    assert!(run.outstanding.iter().any(|c| c.key.0.contains("#event")));
    run.deliver_at("#deadline", Outcome::ok(Value::Null), T0 + 600_000);
    assert_eq!(run.output(), json!([{"eta": null}]));
    assert!(run.cancelled.iter().any(|k| k.0.contains("#event")));
    assert!(run.outstanding.is_empty());
}

#[test]
fn a_task_that_finishes_at_once_starts_no_deadline_timer() {
    let run = Run::start(
        flow(json!([{"quick": {
            "set": {"ok": true},
            "metadata": {"baton": {"deadline": "1s", "default": {"ok": false}}}
        }}])),
        json!({}),
    );
    assert_eq!(run.output(), json!({"ok": true}));
    assert!(run.requested.is_empty());
}

#[test]
fn a_deadline_reached_while_suspended_wins_over_an_answer_that_came_with_it() {
    let mut run = Run::start(
        approval_with_deadline(json!({"deadline": "5m", "default": {"approved": false}})),
        json!({}),
    );
    assert!(run.inst.suspend("ops", None, T0 + 1));
    let answer = run.key("#call");
    let timer = run.key("#deadline");
    assert!(run.inst.deliver(
        &answer,
        Outcome::ok(json!({"approved": true})),
        T0 + 300_000
    ));
    assert!(
        run.inst
            .deliver(&timer, Outcome::ok(Value::Null), T0 + 300_001)
    );
    assert!(run.inst.resume("ops", T0 + 300_002));
    run.absorb();
    // The journal holds a `#deadline` outcome, so the default must be what was taken: one
    // meaning for that record, live and in replay.
    assert_eq!(run.output(), json!({"approved": false, "via": "escalate"}));
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));
}

#[test]
fn a_fan_out_deadline_counts_the_late_branches_as_missing() {
    let mut run = Run::start(
        flow(json!([{"checks": {
            "fork": {"branches": [
                {"north": {"call": "check", "with": {"zone": "north"}}},
                {"east": {"call": "check", "with": {"zone": "east"}}},
                {"south": {"call": "check", "with": {"zone": "south"}}}
            ]},
            "metadata": {"baton": {"complete": {"at_least": 2}, "deadline": "30s"}}
        }}])),
        json!({}),
    );
    run.deliver("/fork/0/north#call", Outcome::ok(json!({"zone": "north"})));
    run.deliver("/fork/2/south#call", Outcome::ok(json!({"zone": "south"})));
    assert_eq!(run.inst.status(), Status::Running);
    run.deliver_at(
        "/do/0/checks#deadline",
        Outcome::ok(Value::Null),
        T0 + 30_000,
    );
    let out = run.output();
    assert_eq!(out["status"], "partial", "{out}");
    assert_eq!(out["missing"][0]["branch"], "east");
    assert_eq!(out["missing"][0]["reason"], "deadline");
    assert!(run.cancelled.iter().any(|k| k.0.contains("/fork/1/east")));
    assert_eq!(run.replayed_end(), *run.journal.last().expect("end"));

    // In a `for`, the iteration running at the deadline and those not started are missing.
    let mut each = Run::start(
        five_checks(json!({"complete": "all", "deadline": "30s"})),
        addresses(),
    );
    each.deliver(
        "/for[0]/do/0/verify#call",
        Outcome::ok(json!({"verdict": "deliverable"})),
    );
    each.deliver_at(
        "/do/0/verifyAll#deadline",
        Outcome::ok(Value::Null),
        T0 + 30_000,
    );
    let out = each.output();
    assert_eq!(out["status"], "unknown");
    assert_eq!(out["completed"], json!([0]));
    let reasons: Vec<&str> = out["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .map(|m| m["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(reasons, ["deadline"; 4]);
    assert!(
        !each.requested_any("/for[2]"),
        "nothing starts after the deadline"
    );
}
