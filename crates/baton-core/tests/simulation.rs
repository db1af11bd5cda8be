//! Deterministic simulation of the core: seeded random schedules of effect outcomes (reordered,
//! duplicated, unknown strangers), crashes (drop the instance, recover from the journal) and clock
//! jumps. Checks that replay reproduces the state, that no effect is journaled twice, and that the
//! instance ends with the same output as an undisturbed run.
//!
//! A failing seed is printed; `BATON_SIM_SEED=<seed> cargo test -p baton-core --test simulation`
//! replays exactly that schedule.

use std::collections::HashSet;
use std::sync::Arc;

use baton_core::{
    EffectCall, EffectKey, EffectRequest, Env, ErrorKind, Instance, InstanceId, JournalEntry,
    Outcome, Problem, Program, Status,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Flows whose output does not depend on the order effects complete in.
fn flows() -> Vec<(&'static str, Value)> {
    vec![
        (
            "sequence-and-loop",
            json!({
                "document": {"dsl": "1.0.3", "namespace": "sim", "name": "seq", "version": "1.0.0"},
                "do": [
                    {"a": {"call": "noop", "with": {"n": 1}, "output": {"as": "${ {a: .n} }"}}},
                    {"loop": {"for": {"in": "${ [1,2,3] }", "each": "x"}, "do": [
                        {"c": {"call": "noop", "with": {"x": "${ $x }"}, "output": {"as": "${ $input + {(\"x\\($x)\"): .x} }"}}}
                    ]}},
                    {"w": {"wait": {"milliseconds": 10}}}
                ]
            }),
        ),
        (
            "fork-and-retry",
            json!({
                "document": {"dsl": "1.0.3", "namespace": "sim", "name": "fork", "version": "1.0.0"},
                "do": [
                    {"both": {"fork": {"branches": [
                        {"left": {"call": "noop", "with": {"side": "left"}}},
                        {"right": {"try": [{"flaky": {"call": "flaky", "with": {"side": "right"}}}],
                                   "catch": {"retry": {"delay": {"milliseconds": 5}, "backoff": {"exponential": {}}, "limit": {"attempt": {"count": 5}}}}}}
                    ]}}},
                    {"emit": {"emit": {"event": {"with": {"source": "sim", "type": "sim.done", "data": "${ . }"}}}}}
                ]
            }),
        ),
        (
            // Effects that are undone when a later step fails: guards, undos that fail once and
            // wait a back-off, branches of a fork compensated in the order they completed.
            "saga",
            json!({
                "document": {"dsl": "1.0.3", "namespace": "sim", "name": "saga", "version": "1.0.0"},
                "do": [
                    {"reserve": {"call": "noop", "with": {"what": "reserve"}, "metadata": compensate()}},
                    {"both": {"fork": {"branches": [
                        {"bookA": {"call": "noop", "with": {"what": "A"}, "metadata": compensate()}},
                        {"bookB": {"call": "noop", "with": {"what": "B"}, "metadata": compensate()}}
                    ]}}},
                    {"boom": {"call": "boom"}}
                ]
            }),
        ),
    ]
}

fn compensate() -> Value {
    json!({"baton": {"compensate": {
        "guard": {"call": "noop", "with": {"stands": true, "key": "${ $effect.key }"}, "stands": "${ .stands }"},
        "call": "undo",
        "with": {"key": "${ $effect.key }"},
        "retry": {"delay": "5ms"}
    }}})
}

/// The world's answer to an effect: deterministic in the key, so any schedule gets the same
/// answers. `flaky` fails its first two attempts.
fn answer(call: &EffectCall) -> Outcome {
    match &call.request {
        EffectRequest::Function { name, args } if name == "flaky" => {
            // Retry attempts are numbered in the key: `…/try#2/…` is the third attempt.
            let attempt: usize = call
                .key
                .0
                .split("/try#")
                .nth(1)
                .and_then(|s| s.split('/').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if attempt < 2 {
                Outcome::failed(Problem::new(ErrorKind::Communication, "flaky").with_status(503))
            } else {
                Outcome::ok(args.clone())
            }
        }
        EffectRequest::Function { name, .. } if name == "boom" => {
            Outcome::failed(Problem::new(ErrorKind::Communication, "boom").with_status(422))
        }
        // Every undo fails its first attempt and is tried again after a back-off.
        EffectRequest::Function { name, args } if name == "undo" => {
            if call.key.0.contains("/compensate[0]") {
                Outcome::failed(Problem::new(ErrorKind::Communication, "busy").with_status(503))
            } else {
                Outcome::ok(args.clone())
            }
        }
        EffectRequest::Function { args, .. } => Outcome::ok(args.clone()),
        EffectRequest::Timer { .. } => Outcome::ok(Value::Null),
        EffectRequest::Emit { event } => Outcome::ok(event.clone()),
        other => panic!("unexpected effect in simulation: {other:?}"),
    }
}

struct Sim {
    rng: StdRng,
    program: Arc<Program>,
    id: InstanceId,
    journal: Vec<JournalEntry>,
    inst: Instance,
    outstanding: Vec<EffectCall>,
    now_ms: u64,
}

impl Sim {
    fn new(seed: u64, program: Arc<Program>) -> Sim {
        let id = InstanceId(format!("sim-{seed}"));
        let inst = Instance::start(
            id.clone(),
            program.clone(),
            Env::default(),
            json!({}),
            1_000,
        );
        Sim {
            rng: StdRng::seed_from_u64(seed),
            program,
            id,
            journal: Vec::new(),
            inst,
            outstanding: Vec::new(),
            now_ms: 1_000,
        }
    }

    /// Applies a step: entries go to the "store", effects to the outstanding set.
    fn absorb(&mut self) {
        let step = self.inst.step();
        self.journal.extend(step.entries);
        self.outstanding.retain(|c| !step.cancel.contains(&c.key));
        for call in step.start {
            assert!(
                !self.outstanding.iter().any(|c| c.key == call.key),
                "effect {} started twice",
                call.key
            );
            self.outstanding.push(call);
        }
    }

    fn crash_and_recover(&mut self) {
        let before: HashSet<EffectKey> = self.inst.outstanding().into_iter().collect();
        let status_before = self.inst.status();
        self.inst = Instance::recover(
            self.id.clone(),
            self.program.clone(),
            Env::default(),
            &self.journal,
        )
        .unwrap_or_else(|e| panic!("recover failed: {e}"));
        let after: HashSet<EffectKey> = self.inst.outstanding().into_iter().collect();
        assert_eq!(
            before, after,
            "replay must rebuild the same outstanding effects"
        );
        assert_eq!(
            status_before.is_terminal(),
            self.inst.status().is_terminal()
        );
        // The driver re-sends everything outstanding with the same idempotency keys.
        let step = self.inst.step();
        assert!(
            step.entries.is_empty() || !self.journal.last().is_some_and(JournalEntry::is_terminal)
        );
        self.journal.extend(step.entries);
        let keys: HashSet<EffectKey> = step.start.iter().map(|c| c.key.clone()).collect();
        assert_eq!(
            keys, after,
            "recovery must re-request every outstanding effect"
        );
        for c in &step.start {
            if let Some(old) = self.outstanding.iter().find(|o| o.key == c.key) {
                assert_eq!(old.idempotency_key, c.idempotency_key);
            }
        }
        self.outstanding = step.start;
    }

    fn run(&mut self) -> (Status, Option<Value>) {
        self.absorb();
        let mut steps = 0;
        while !self.inst.status().is_terminal() {
            steps += 1;
            assert!(steps < 10_000, "simulation did not converge");
            match self.rng.random_range(0..100) {
                0..=9 => self.crash_and_recover(),
                10..=14 => {
                    // The clock jumps, forwards or backwards; the journal's clock never goes back.
                    let jump: i64 = self.rng.random_range(-5_000..60_000);
                    self.now_ms = (self.now_ms as i64 + jump).max(0) as u64;
                }
                15..=19 => {
                    // A stranger's answer: must be refused and change nothing.
                    let before = self.journal.len();
                    let accepted = self.inst.deliver(
                        &EffectKey("/nowhere#call".into()),
                        Outcome::ok(json!(1)),
                        self.now_ms,
                    );
                    assert!(!accepted);
                    self.absorb();
                    assert_eq!(before, self.journal.len());
                }
                _ => {
                    if self.outstanding.is_empty() {
                        continue;
                    }
                    let i = self.rng.random_range(0..self.outstanding.len());
                    let call = self.outstanding[i].clone();
                    let outcome = answer(&call);
                    assert!(self.inst.deliver(&call.key, outcome.clone(), self.now_ms));
                    self.outstanding.remove(i);
                    // Sometimes the same answer arrives twice (a retried network reply).
                    if self.rng.random_bool(0.3) {
                        assert!(
                            !self.inst.deliver(&call.key, outcome, self.now_ms),
                            "a duplicate answer was accepted"
                        );
                    }
                    self.absorb();
                }
            }
        }
        let output = self.journal.iter().find_map(|e| match e {
            JournalEntry::Completed { output, .. } => Some(output.clone()),
            _ => None,
        });
        // No effect is journaled twice.
        let mut seen = HashSet::new();
        for e in &self.journal {
            if let JournalEntry::EffectCompleted { key, .. } = e {
                assert!(seen.insert(key.clone()), "effect {key} journaled twice");
            }
        }
        // Replaying the whole journal gives the same end.
        let replayed = Instance::recover(
            self.id.clone(),
            self.program.clone(),
            Env::default(),
            &self.journal,
        )
        .expect("final replay");
        assert_eq!(replayed.status(), self.inst.status());
        (self.inst.status(), output)
    }
}

fn undisturbed(program: &Arc<Program>) -> (Status, Option<Value>) {
    let mut sim = Sim::new(0, program.clone());
    sim.absorb();
    while !sim.inst.status().is_terminal() {
        let call = sim.outstanding.remove(0);
        let outcome = answer(&call);
        assert!(sim.inst.deliver(&call.key, outcome, sim.now_ms));
        sim.absorb();
    }
    let output = sim.journal.iter().find_map(|e| match e {
        JournalEntry::Completed { output, .. } => Some(output.clone()),
        _ => None,
    });
    (sim.inst.status(), output)
}

/// The instance ids differ between seeds, so event ids (derived from the instance) are removed
/// before comparing outputs.
fn normalise(v: Option<Value>) -> Option<Value> {
    v.map(|mut v| {
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
            o.remove("time");
        }
        v
    })
}

#[test]
fn seeded_schedules_replay_to_the_same_state() {
    let seeds: Vec<u64> = match std::env::var("BATON_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("BATON_SIM_SEED must be a number")],
        Err(_) => (1..=300).collect(),
    };
    for (name, def) in flows() {
        let program = Arc::new(Program::from_json(def).expect("flow"));
        let (want_status, want_output) = undisturbed(&program);
        // The saga ends faulted by design, after undoing its effects.
        let expected = if name == "saga" {
            Status::Faulted
        } else {
            Status::Completed
        };
        assert_eq!(
            want_status, expected,
            "{name}: the undisturbed run ends {want_status:?}"
        );
        for &seed in &seeds {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Sim::new(seed, program.clone()).run()
            }));
            match result {
                Ok((status, output)) => {
                    assert_eq!(status, want_status, "{name}: seed {seed} ended {status:?}");
                    assert_eq!(
                        normalise(output),
                        normalise(want_output.clone()),
                        "{name}: seed {seed} output differs"
                    );
                }
                Err(_) => panic!("{name}: seed {seed} failed; replay with BATON_SIM_SEED={seed}"),
            }
        }
    }
}
