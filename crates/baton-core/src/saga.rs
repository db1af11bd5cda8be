//! Compensation (sagas): `metadata.baton.compensate` on a call task declares how to undo its
//! effect (see docs/extensions.md).
//!
//! A call task that declares a compensation goes on the instance's saga stack when it starts;
//! it stays there if its effect happened (`ok`) or may have (`unknown`: the answer was lost, or
//! the call was abandoned in flight, also when the whole flow was dropped by a cancel), and
//! leaves it on a definite failure. When the instance faults (an error the flow does not
//! catch) or is cancelled, the stack is unwound in reverse order before the end is journaled.
//! Each compensation first runs its guard, a read that says whether the effect still stands (a
//! person may have undone it by hand already); only then is the compensating call made. Every
//! guard, call and back-off timer is an ordinary effect with its own key, so a compensation is
//! journaled, survives a crash, and is sent again with the same idempotency key after one.
//!
//! The stack lives in the interpreter's shared state and is rebuilt by replay like everything
//! else: no journal entry records a push. What each compensation did is journaled as a
//! `task_note` on the compensated task's key (`{"compensation": "compensated" | "skipped" |
//! "unresolved", …}`).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::effect::EffectRequest;
use crate::interp::{
    At, Ctx, EvalSite, Frame, InTask, Locals, TaskInfo, TaskPhase, expect_ok, workflow_descriptor,
};
use crate::journal::EffectKey;
use crate::problem::{ErrorKind, Problem};
use crate::program::Program;

/// The attempts (guard, then call) a compensation gets when none are declared.
const DEFAULT_ATTEMPTS: u32 = 5;
const DEFAULT_DELAY_MS: u64 = 1_000;
const DEFAULT_MAX_DELAY_MS: u64 = 60_000;
/// More attempts than this would keep a faulted instance open for days.
const ATTEMPTS_MAX: u32 = 20;

/// A declared compensation.
#[derive(Debug, Clone)]
pub(crate) struct Compensation {
    /// The compensating call: a function name as in `call:` (`http`, `provider`, or a
    /// registered function), with its `with:` arguments.
    pub call: String,
    pub with: Value,
    pub guard: Option<Guard>,
    pub attempts: u32,
    pub delay: Value,
    pub max_delay: Value,
}

/// The read that says whether an effect still stands.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub call: String,
    pub with: Value,
    /// jq on the guard's answer: true when the effect still stands (so it must be undone).
    pub stands: String,
}

fn call_of(o: &Map<String, Value>, what: &str) -> Result<(String, Value), String> {
    let call = match o.get("call") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            return Err(format!(
                "`{what}.call` must be a function name, not {other}"
            ));
        }
        None => return Err(format!("`{what}` needs a `call`")),
    };
    if matches!(call.as_str(), "grpc" | "asyncapi" | "a2a" | "mcp") {
        return Err(format!("`{what}.call: {call}` is not supported by Baton"));
    }
    let with = o.get("with").cloned().unwrap_or(Value::Null);
    if !(with.is_null() || with.is_object()) {
        return Err(format!("`{what}.with` must be an object"));
    }
    Ok((call, with))
}

impl Compensation {
    pub(crate) fn parse(v: &Value) -> Result<Compensation, String> {
        let Some(o) = v.as_object() else {
            return Err(format!(
                "`compensate` must be an object with a `call`, not {v}"
            ));
        };
        for k in o.keys() {
            if !matches!(k.as_str(), "call" | "with" | "guard" | "retry") {
                return Err(format!("`compensate` has an unknown key `{k}`"));
            }
        }
        let (call, with) = call_of(o, "compensate")?;
        let guard = match o.get("guard") {
            None => None,
            Some(Value::Object(g)) => {
                for k in g.keys() {
                    if !matches!(k.as_str(), "call" | "with" | "stands") {
                        return Err(format!("`compensate.guard` has an unknown key `{k}`"));
                    }
                }
                let (call, with) = call_of(g, "compensate.guard")?;
                let stands = match g.get("stands") {
                    Some(Value::String(s)) => baton_expr::loose_source(s).to_string(),
                    Some(other) => {
                        return Err(format!(
                            "`compensate.guard.stands` must be a jq predicate, not {other}"
                        ));
                    }
                    None => {
                        return Err("`compensate.guard` needs `stands`: a jq predicate on the \
                                    guard's answer, true while the effect still stands"
                            .into());
                    }
                };
                Some(Guard { call, with, stands })
            }
            Some(other) => {
                return Err(format!("`compensate.guard` must be an object, not {other}"));
            }
        };
        let (mut attempts, mut delay, mut max_delay) = (
            DEFAULT_ATTEMPTS,
            json!(format!("{DEFAULT_DELAY_MS}ms")),
            json!(format!("{DEFAULT_MAX_DELAY_MS}ms")),
        );
        match o.get("retry") {
            None => {}
            Some(Value::Object(r)) => {
                for (k, v) in r {
                    match k.as_str() {
                        "attempts" => {
                            attempts = v
                                .as_u64()
                                .filter(|n| (1..=u64::from(ATTEMPTS_MAX)).contains(n))
                                .and_then(|n| u32::try_from(n).ok())
                                .ok_or_else(|| {
                                    format!(
                                        "`compensate.retry.attempts` must be 1 to {ATTEMPTS_MAX}, not {v}"
                                    )
                                })?;
                        }
                        "delay" => delay = v.clone(),
                        "max_delay" => max_delay = v.clone(),
                        other => {
                            return Err(format!("`compensate.retry` has an unknown key `{other}`"));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(format!("`compensate.retry` must be an object, not {other}"));
            }
        }
        Ok(Compensation {
            call,
            with,
            guard,
            attempts,
            delay,
            max_delay,
        })
    }
}

/// An effect that happened, or may have, and declared how to undo it.
pub(crate) struct SagaStep {
    /// The program the task belongs to (a sub-flow's, for a task inside one).
    pub program: Arc<Program>,
    pub name: String,
    pub reference: String,
    /// The task's key; the compensation's effects are keyed under it.
    pub key: String,
    /// `$effect` in the compensation's expressions.
    pub effect: Value,
    /// The task's outcome was `unknown`: only a guard can tell whether there is anything to undo.
    pub unknown: bool,
    /// The task has not ended: its call is (or was, when the task was dropped) in flight.
    pub pending: bool,
    pub spec: Compensation,
}

/// How one compensation ended.
enum Ended {
    Compensated {
        answer: Value,
    },
    /// `reconciled`: what the guard told of an effect whose outcome was unknown: `not-applied`
    /// (it found no such effect), `applied` (it stood), or `no-longer-stands` (it found the
    /// effect undone, or nothing left to undo: whether Baton's call was ever applied, it cannot
    /// say).
    Skipped {
        why: String,
        guard: Option<Value>,
        reconciled: &'static str,
    },
    Unresolved {
        why: String,
        error: Option<Problem>,
    },
}

/// What unwinding the saga stack did, for the instance's end.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Unwound {
    pub compensated: usize,
    pub skipped: usize,
    pub unresolved: usize,
}

impl Unwound {
    /// One sentence for the end of a faulted instance's problem detail, so that whoever reads
    /// the fault (a list, the API) sees at once whether a person must finish the undoing.
    pub(crate) fn sentence(&self) -> String {
        let mut s = format!(
            "compensation: {} undone, {} skipped",
            self.compensated, self.skipped
        );
        if self.unresolved > 0 {
            s.push_str(&format!(
                ", {} unresolved (a person must check)",
                self.unresolved
            ));
        }
        s
    }
}

/// Errors that another attempt cannot mend: the declaration is wrong.
fn is_permanent(p: &Problem) -> bool {
    p.type_ == ErrorKind::Configuration.type_uri() || p.type_ == ErrorKind::Expression.type_uri()
}

impl Ctx {
    /// Called before a task that declares a compensation runs its call: the task goes on the
    /// saga stack as `pending` (in flight), so that if it is dropped before it ends (the
    /// instance is cancelled, a deadline abandons it) the effect is still considered.
    pub(crate) fn effect_starting(
        &self,
        frame: &Frame<'_>,
        name: &str,
        reference: &str,
        key: &str,
        input: &Value,
        spec: &Compensation,
    ) {
        let call_key = EffectKey(format!("{key}#call"));
        let effect = json!({
            "task": name,
            "reference": reference,
            "key": crate::effect::idempotency_key(&self.instance, &call_key),
            "input": input,
            "output": null,
            "outcome": "unknown",
        });
        let mut shared = self.lock();
        debug_assert!(
            !shared.saga.iter().any(|s| s.pending && s.key == key),
            "task `{key}` is on the saga stack twice while its call runs"
        );
        shared.saga.push(SagaStep {
            program: frame.program.clone(),
            name: name.to_string(),
            reference: reference.to_string(),
            key: key.to_string(),
            effect,
            unknown: true,
            pending: true,
            spec: spec.clone(),
        });
    }

    /// Called when the task has run its call: with its answer the effect happened; without one
    /// it may have (the outcome was `unknown`, or a task `timeout` abandoned the call in
    /// flight), or it did not (a definite failure: the task leaves the stack).
    pub(crate) fn effect_ended(&self, key: &str, output: Option<&Value>) {
        let call_key = EffectKey(format!("{key}#call"));
        let mut shared = self.lock();
        let maybe =
            shared.unknown_calls.contains(&call_key) || shared.abandoned.contains(&call_key);
        let Some(at) = shared.saga.iter().rposition(|s| s.pending && s.key == key) else {
            return;
        };
        match output {
            Some(out) => {
                let step = &mut shared.saga[at];
                step.pending = false;
                step.unknown = false;
                step.effect["output"] = out.clone();
                step.effect["outcome"] = json!("ok");
            }
            None if maybe => shared.saga[at].pending = false,
            None => {
                shared.saga.remove(at);
            }
        }
    }

    /// Whether an instance that ends now has effects to undo first.
    pub(crate) fn has_saga(&self) -> bool {
        !self.lock().saga.is_empty()
    }

    /// Unwinds the saga stack, last effect first. Never fails: what could not be undone is
    /// `unresolved` in its task note, for a person to look at.
    pub(crate) async fn compensate_all(&self) -> Unwound {
        let steps: Vec<SagaStep> = {
            let mut shared = self.lock();
            let steps = std::mem::take(&mut shared.saga);
            // A task dropped before it ended: its effect may have happened only if its call was
            // sent (it was outstanding when dropped).
            steps
                .into_iter()
                .filter(|s| {
                    !s.pending
                        || shared
                            .abandoned
                            .contains(&EffectKey(format!("{}#call", s.key)))
                })
                .collect()
        };
        let mut tally = Unwound::default();
        for step in steps.iter().rev() {
            let (ended, attempts) = self.compensate(step).await;
            let mut note = Map::new();
            let (what, reconciled) = match &ended {
                Ended::Compensated { answer } => {
                    tally.compensated += 1;
                    note.insert("answer".into(), answer.clone());
                    ("compensated", "applied")
                }
                Ended::Skipped {
                    why,
                    guard,
                    reconciled,
                } => {
                    tally.skipped += 1;
                    note.insert("reason".into(), json!(why));
                    if let Some(g) = guard {
                        note.insert("guard".into(), g.clone());
                    }
                    ("skipped", *reconciled)
                }
                Ended::Unresolved { why, error } => {
                    tally.unresolved += 1;
                    note.insert("reason".into(), json!(why));
                    if let Some(e) = error {
                        note.insert("error".into(), json!(e));
                    }
                    ("unresolved", "")
                }
            };
            let phase = match &ended {
                Ended::Compensated { .. } => TaskPhase::Compensated,
                Ended::Skipped { .. } => TaskPhase::CompensationSkipped,
                Ended::Unresolved { .. } => TaskPhase::CompensationUnresolved,
            };
            self.event(&step.reference, &step.name, phase);
            note.insert("compensation".into(), json!(what));
            note.insert("task".into(), json!(step.name));
            note.insert("attempts".into(), json!(attempts));
            if step.unknown {
                note.insert("outcome".into(), json!("unknown"));
                if !reconciled.is_empty() {
                    note.insert("reconciled".into(), json!(reconciled));
                }
            }
            self.lock()
                .task_notes
                .push((step.key.clone(), Value::Object(note)));
        }
        debug_assert!(
            self.lock().saga.is_empty(),
            "a compensation put an effect on the saga stack it was unwinding"
        );
        debug_assert_eq!(
            tally.compensated + tally.skipped + tally.unresolved,
            steps.len(),
            "every unwound step ends one way"
        );
        tally
    }

    /// One compensation: guard, then call, retried with back-off. Returns how it ended and the
    /// attempts it took.
    async fn compensate(&self, step: &SagaStep) -> (Ended, u32) {
        let descriptor = workflow_descriptor(
            &self.instance,
            &step.program,
            &self.workflow_input,
            self.started_at_ms,
        );
        let frame = Frame {
            program: &step.program,
            descriptor,
            depth: 0,
        };
        let locals = Locals::default().with("effect", step.effect.clone());
        let output = step.effect.get("output").cloned().unwrap_or(Value::Null);
        let base = format!("{}/metadata/baton/compensate", step.reference);
        let info = TaskInfo {
            name: &step.name,
            reference: &step.reference,
            started_at_ms: self.now_ms(),
            raw_input: &output,
            raw_output: None,
        };
        let spec = &step.spec;
        let (delay_ms, max_delay_ms) = match (
            self.duration_value_ms(&frame, &spec.delay, &format!("{base}/retry/delay"), &output),
            self.duration_value_ms(
                &frame,
                &spec.max_delay,
                &format!("{base}/retry/max_delay"),
                &output,
            ),
        ) {
            (Ok(d), Ok(m)) => (d, m.max(d)),
            (Err(p), _) | (_, Err(p)) => {
                return (
                    Ended::Unresolved {
                        why: "the compensation's retry durations are invalid".into(),
                        error: Some(p),
                    },
                    0,
                );
            }
        };
        let mut last_error: Option<Problem> = None;
        for attempt in 0..spec.attempts {
            let at = format!("{}/compensate[{attempt}]", step.key);
            if attempt > 0 {
                let wait = crate::backoff::Backoff::exponential(delay_ms, 2.0, Some(max_delay_ms))
                    .delay_ms(attempt);
                let fire_at_ms = self.now_ms().saturating_add(wait);
                let timer =
                    self.effect(format!("{at}#backoff"), EffectRequest::Timer { fire_at_ms });
                if let Err(p) = timer.await.and_then(expect_ok) {
                    return (
                        Ended::Unresolved {
                            why: "the back-off timer failed".into(),
                            error: Some(p),
                        },
                        attempt,
                    );
                }
            }
            let n = attempt + 1;
            // The guard's answer is `$guard` in the undo's arguments (what is left to undo).
            let guard_answer = match &spec.guard {
                None if step.unknown => {
                    return (
                        Ended::Unresolved {
                            why: "the outcome is unknown and no guard can tell whether it \
                                  happened: a person must check"
                                .into(),
                            error: None,
                        },
                        0,
                    );
                }
                None => Value::Null,
                Some(g) => {
                    let site = EvalSite {
                        input: &output,
                        task_input: None,
                        output: None,
                        task: Some(&info),
                        secrets: false,
                    };
                    match self
                        .run_call(
                            InTask {
                                at: At {
                                    frame: &frame,
                                    reference: &format!("{base}/guard"),
                                    key: &format!("{at}/guard"),
                                    locals: &locals,
                                },
                                input: &output,
                                info: &info,
                            },
                            &g.call,
                            &g.with,
                        )
                        .await
                    {
                        Ok(answer) => {
                            let site = EvalSite {
                                input: &answer,
                                ..site
                            };
                            match self.truthy(&frame, &g.stands, &locals, site) {
                                Ok(true) => answer,
                                Ok(false) => {
                                    return (
                                        Ended::Skipped {
                                            why: "the guard says the effect no longer stands \
                                                  (already undone)"
                                                .into(),
                                            guard: Some(answer),
                                            reconciled: "no-longer-stands",
                                        },
                                        n,
                                    );
                                }
                                Err(p) => {
                                    return (
                                        Ended::Unresolved {
                                            why: "the guard's `stands` cannot be evaluated".into(),
                                            error: Some(p),
                                        },
                                        n,
                                    );
                                }
                            }
                        }
                        Err(p) if p.status == 404 => {
                            return (
                                Ended::Skipped {
                                    why: "the guard found no such effect (404): nothing to undo"
                                        .into(),
                                    guard: None,
                                    reconciled: "not-applied",
                                },
                                n,
                            );
                        }
                        Err(p) if is_permanent(&p) => {
                            return (
                                Ended::Unresolved {
                                    why: "the guard is misdeclared".into(),
                                    error: Some(p),
                                },
                                n,
                            );
                        }
                        Err(p) => {
                            last_error = Some(p);
                            continue;
                        }
                    }
                }
            };
            let undo_locals = locals.with("guard", guard_answer);
            match self
                .run_call(
                    InTask {
                        at: At {
                            frame: &frame,
                            reference: &base,
                            key: &at,
                            locals: &undo_locals,
                        },
                        input: &output,
                        info: &info,
                    },
                    &spec.call,
                    &spec.with,
                )
                .await
            {
                Ok(answer) => return (Ended::Compensated { answer }, n),
                Err(p) if p.status == 404 => {
                    return (
                        Ended::Skipped {
                            why: "the compensating call found nothing to undo (404)".into(),
                            guard: None,
                            // The guard, if any, had said it stood.
                            reconciled: if spec.guard.is_some() {
                                "applied"
                            } else {
                                "not-applied"
                            },
                        },
                        n,
                    );
                }
                Err(p) if is_permanent(&p) => {
                    return (
                        Ended::Unresolved {
                            why: "the compensating call is misdeclared".into(),
                            error: Some(p),
                        },
                        n,
                    );
                }
                // The undo was sent and its answer lost: it may have been applied. The next
                // attempt has another idempotency key, so only a guard (read first, every
                // attempt) can say whether sending it again would undo twice.
                Err(p)
                    if spec.guard.is_none()
                        && self
                            .lock()
                            .unknown_calls
                            .contains(&EffectKey(format!("{at}#call"))) =>
                {
                    return (
                        Ended::Unresolved {
                            why: "the undo's outcome is unknown and no guard can tell whether it \
                                  happened: a person must check"
                                .into(),
                            error: Some(p),
                        },
                        n,
                    );
                }
                Err(p) => last_error = Some(p),
            }
        }
        (
            Ended::Unresolved {
                why: format!(
                    "not undone after {} attempts: a person must check",
                    spec.attempts
                ),
                error: last_error,
            },
            spec.attempts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_declaration() {
        let c = Compensation::parse(&json!({
            "call": "provider",
            "with": {"provider": "inventory", "operation": "release"},
            "guard": {"call": "provider", "with": {}, "stands": "${ .applied }"},
            "retry": {"attempts": 3, "delay": "2s", "max_delay": "10s"},
        }))
        .unwrap();
        assert_eq!(c.call, "provider");
        assert_eq!(c.attempts, 3);
        assert_eq!(c.guard.unwrap().stands, " .applied ");
    }

    #[test]
    fn refuses_what_would_be_silently_wrong() {
        for (v, needle) in [
            (json!("release"), "must be an object"),
            (json!({"with": {}}), "needs a `call`"),
            (json!({"call": "grpc"}), "not supported"),
            (json!({"call": "http", "undo": 1}), "unknown key `undo`"),
            (
                json!({"call": "http", "guard": {"call": "http"}}),
                "needs `stands`",
            ),
            (json!({"call": "http", "retry": {"attempts": 0}}), "1 to 20"),
            (
                json!({"call": "http", "retry": {"tries": 2}}),
                "unknown key `tries`",
            ),
        ] {
            let e = Compensation::parse(&v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
