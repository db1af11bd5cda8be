//! The one fold of a journal into an instance's state.
//!
//! Recovery, decision records, replays of recorded runs and the dashboard's progress view all
//! need to know what a journal means for a program: which effects it asked for, which answers
//! fitted, which tasks ran, where compensation stands. They all read it here, so that a
//! cancellation during compensation (say) cannot mean one thing to recovery and another to the
//! page an operator looks at. The fold feeds each entry to a fresh [`Instance`] exactly as the
//! live run received it (same clock, same suspensions, same cancellation) and tells an
//! [`ReplayObserver`] what the instance did after each one.

use std::collections::HashMap;

use crate::effect::{EffectCall, EffectRequest};
use crate::interp::TaskEvent;
use crate::journal::{EffectKey, InstanceId, JournalEntry, Outcome};
use crate::machine::{Instance, RecoverError};
use crate::program::{Env, Program};
use std::sync::Arc;

/// How a replay treats a journal that stops fitting the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// The journal is this program's own: its `started` names the program's flow hash, every
    /// outcome answers an effect that was outstanding, there is one `started`. Anything else is
    /// a [`RecoverError`]. Recovery, decision records and the progress view read this way.
    Exact,
    /// The journal may have been written by another version of the flow (or one that diverged):
    /// outcomes are delivered where they fit and reported as misfits where they do not, and every
    /// entry is read. A replay compares with whatever the recorded run was answered.
    Lenient,
}

/// What the instance did after one journal entry was applied.
#[derive(Debug, Default)]
pub struct Advance {
    /// Effects it asked for.
    pub start: Vec<EffectCall>,
    /// Effects it no longer awaits (a lost race, a timeout, a cancellation).
    pub cancel: Vec<EffectKey>,
    /// Task progress on the way.
    pub events: Vec<TaskEvent>,
}

/// Told what a replay finds, entry by entry. Both methods default to doing nothing, so `()`
/// observes nothing (recovery needs only the instance at the end).
pub trait ReplayObserver {
    /// After entry `index` of the journal was applied (index 0: the start).
    fn advanced(&mut self, index: usize, advance: Advance) {
        let _ = (index, advance);
    }

    /// Entry `index` is an outcome; `fitted` says whether it answered an outstanding effect.
    /// Under [`Fit::Exact`] a misfit ends the replay with an error right after this call.
    fn outcome(&mut self, index: usize, key: &EffectKey, outcome: &Outcome, fitted: bool) {
        let _ = (index, key, outcome, fitted);
    }
}

impl ReplayObserver for () {}

/// What a recorded run asked for, rebuilt by a fold. The journal keeps each effect's outcome but
/// not its request, because a request is a pure function of the entries before it; decision
/// records and replays of recorded runs need the requests, and this observer collects them
/// (see [`Rebuilt::of`]).
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// Every request the core made, by effect key.
    pub requests: HashMap<EffectKey, EffectRequest>,
    /// The journal's outcomes in order (under [`Fit::Exact`] all of them fitted).
    pub outcomes: Vec<(EffectKey, Outcome)>,
}

impl ReplayObserver for Rebuilt {
    fn advanced(&mut self, _index: usize, advance: Advance) {
        for call in advance.start {
            self.requests.insert(call.key, call.request);
        }
    }

    fn outcome(&mut self, _index: usize, key: &EffectKey, outcome: &Outcome, _fitted: bool) {
        self.outcomes.push((key.clone(), outcome.clone()));
    }
}

impl Rebuilt {
    /// Folds `journal` through a fresh instance of `program` and keeps every request the core
    /// makes on the way. `Err` when the journal does not begin with `started`, or (under
    /// [`Fit::Exact`]) when it is another flow's or an outcome does not fit the program.
    pub fn of(
        id: &InstanceId,
        program: Arc<Program>,
        env: Env,
        journal: &[JournalEntry],
        fit: Fit,
    ) -> Result<Rebuilt, RecoverError> {
        let mut rebuilt = Rebuilt::default();
        Instance::replay(id.clone(), program, env, journal, fit, &mut rebuilt)?;
        Ok(rebuilt)
    }
}

impl Instance {
    /// Folds `journal` into a fresh instance of `program`, telling `observer` what happens on
    /// the way. The instance returned stands where the journal ends; its pending requests and
    /// events were handed to the observer (use [`Instance::recover`] to go on running it).
    pub fn replay(
        id: InstanceId,
        program: Arc<Program>,
        env: Env,
        journal: &[JournalEntry],
        fit: Fit,
        observer: &mut dyn ReplayObserver,
    ) -> Result<Instance, RecoverError> {
        let Some(JournalEntry::Started { at_ms, flow, input }) = journal.first() else {
            return Err(RecoverError::NoStart);
        };
        if fit == Fit::Exact && flow.hash != program.flow.hash {
            return Err(RecoverError::WrongFlow {
                expected: program.flow.hash.clone(),
                found: flow.hash.clone(),
            });
        }
        let mut inst = Instance::build(id, program, env, input.clone(), *at_ms);
        // `started` is journaled; what the fold produces comes after it.
        inst.journal_len = 1;
        // The task notes the replay produces are in the journal already.
        inst.replaying = true;
        inst.poll();
        observer.advanced(0, inst.drain());
        for (index, entry) in journal.iter().enumerate().skip(1) {
            inst.set_now(entry.at_ms());
            match entry {
                JournalEntry::EffectCompleted { key, outcome, .. } => {
                    let fitted = inst.accept(key, outcome.clone());
                    observer.outcome(index, key, outcome, fitted);
                    if !fitted && fit == Fit::Exact {
                        return Err(RecoverError::Diverged {
                            index,
                            kind: entry.kind(),
                            why: format!("effect `{key}` was not outstanding"),
                        });
                    }
                    if fitted && !inst.suspended {
                        inst.poll();
                    }
                }
                JournalEntry::CancelRequested { reason, .. } => {
                    inst.begin_cancel(reason, false);
                }
                JournalEntry::Suspended { .. } => inst.suspended = true,
                JournalEntry::Resumed { .. } => {
                    inst.suspended = false;
                    inst.poll();
                }
                // Notes say how something went (a fan-out's missing branches, a compensation);
                // the instance makes them again as it goes.
                JournalEntry::EffectNote { .. } | JournalEntry::TaskNote { .. } => {}
                JournalEntry::Completed { .. }
                | JournalEntry::Faulted { .. }
                | JournalEntry::Cancelled { .. } => {
                    inst.finish_from(entry);
                }
                JournalEntry::Started { .. } => {
                    if fit == Fit::Exact {
                        return Err(RecoverError::Diverged {
                            index,
                            kind: entry.kind(),
                            why: "a second `started`".into(),
                        });
                    }
                }
            }
            observer.advanced(index, inst.drain());
        }
        inst.replaying = false;
        inst.journal_len = journal.len();
        Ok(inst)
    }

    /// Takes what the instance asked for, gave up and reported since the last drain.
    fn drain(&mut self) -> Advance {
        let mut shared = self.ctx.lock();
        Advance {
            start: std::mem::take(&mut shared.new_requests),
            cancel: std::mem::take(&mut shared.cancelled),
            events: std::mem::take(&mut shared.events),
        }
    }
}
