//! [`Instance`]: the sans-IO state machine of one workflow run.
//!
//! The driver calls [`Instance::start`] or [`Instance::recover`], then alternates
//! [`Instance::step`] (append the returned entries durably, then perform the returned effects) and
//! [`Instance::deliver`] (an effect's outcome). The instance never blocks, never reads a clock and
//! never does IO.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use crate::effect::EffectCall;
use crate::interp::{BoxFut, Ctx, Frame, Shared, TaskEvent, workflow_descriptor};
use crate::journal::{EffectKey, InstanceId, JournalEntry, Outcome, Status};
use crate::problem::Problem;
use crate::program::{Env, Program};

mod replay;
pub use replay::{Advance, Fit, Rebuilt, ReplayObserver};

/// What the driver must do after a step.
#[derive(Debug, Default)]
pub struct Step {
    /// Append these to the journal; they must be durable before any effect below is performed
    /// and before the instance's end is acknowledged.
    pub entries: Vec<JournalEntry>,
    /// Effects to start.
    pub start: Vec<EffectCall>,
    /// Effects no longer awaited (a lost race, a timeout): stop them if possible; their results
    /// will be ignored.
    pub cancel: Vec<EffectKey>,
    /// Task progress since the last step (for live display; not journaled).
    pub events: Vec<TaskEvent>,
    pub status: Status,
}

/// Why a journal could not be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    #[error("the journal is empty or does not begin with `started`")]
    NoStart,
    #[error("journal entry {index} ({kind}) does not fit the flow: {why}")]
    Diverged {
        index: usize,
        kind: &'static str,
        why: String,
    },
    #[error("the journal belongs to flow {found}, not {expected}")]
    WrongFlow { expected: String, found: String },
}

type Root = BoxFut<'static, Result<Value, Problem>>;

/// How an instance whose flow stopped will end once its compensations have run.
enum Ending {
    Fault(Problem),
    Cancel(String),
}

/// One running instance.
pub struct Instance {
    id: InstanceId,
    program: Arc<Program>,
    ctx: Arc<Ctx>,
    root: Option<Root>,
    status: Status,
    entries: Vec<JournalEntry>,
    journal_len: usize,
    /// Set while the saga stack is unwound (the root is then the compensation): the end to
    /// journal when it is done.
    ending: Option<Ending>,
    /// While true, outcomes are accepted and journaled but the flow is not polled.
    suspended: bool,
    /// True while `recover` replays a journal: the task notes it produces are journaled already.
    replaying: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("status", &self.status)
            .finish()
    }
}

impl Instance {
    /// Starts a new instance; the first step returns the `started` entry.
    pub fn start(
        id: InstanceId,
        program: Arc<Program>,
        env: Env,
        input: Value,
        now_ms: u64,
    ) -> Instance {
        let entry = JournalEntry::Started {
            at_ms: now_ms,
            flow: program.flow.clone(),
            input: input.clone(),
        };
        let mut inst = Instance::build(id, program, env, input, now_ms);
        inst.append(entry);
        inst.poll();
        inst
    }

    fn build(
        id: InstanceId,
        program: Arc<Program>,
        env: Env,
        input: Value,
        now_ms: u64,
    ) -> Instance {
        let shared = Arc::new(Mutex::new(Shared {
            now_ms,
            context: Value::Object(Default::default()),
            ..Shared::default()
        }));
        let ctx = Arc::new(Ctx {
            instance: id.clone(),
            shared,
            env,
            started_at_ms: now_ms,
            workflow_input: input.clone(),
        });
        let root = Self::root_future(ctx.clone(), program.clone(), input);
        Instance {
            id,
            program,
            ctx,
            root: Some(root),
            status: Status::Running,
            entries: Vec::new(),
            journal_len: 0,
            ending: None,
            suspended: false,
            replaying: false,
        }
    }

    fn root_future(ctx: Arc<Ctx>, program: Arc<Program>, input: Value) -> Root {
        Box::pin(async move {
            let descriptor = workflow_descriptor(
                &ctx.instance,
                &program,
                &ctx.workflow_input,
                ctx.started_at_ms,
            );
            let frame = Frame {
                program: &program,
                descriptor,
                depth: 0,
            };
            ctx.run_workflow(&frame, input, "").await
        })
    }

    /// Rebuilds an instance from its journal. The returned instance's next [`Instance::step`]
    /// returns every effect that was outstanding at the end of the journal (to be re-sent with the
    /// same idempotency keys) and no entries already journaled.
    pub fn recover(
        id: InstanceId,
        program: Arc<Program>,
        env: Env,
        journal: &[JournalEntry],
    ) -> Result<Instance, RecoverError> {
        let mut inst = Instance::replay(id, program, env, journal, Fit::Exact, &mut ())?;
        // Entries the replay produced are already in the journal when it has an end; without
        // one (the end was not yet durable at the crash) they are the missing end.
        if journal.last().is_some_and(JournalEntry::is_terminal) {
            inst.entries.clear();
        }
        // Everything outstanding now must be (re)started by the driver; what was requested and
        // cancelled during replay already happened (the replay drained it).
        {
            let mut shared = inst.ctx.lock();
            // Notes the replay produced are in the journal already (a note is appended with the
            // outcome that led to it).
            shared.task_notes.clear();
            // An outstanding effect with a journaled result (delivered while the instance was
            // suspended) is answered already: it must not be performed again.
            let outstanding: Vec<EffectCall> = shared
                .outstanding
                .iter()
                .filter(|(k, _)| !shared.results.contains_key(*k))
                .map(|(k, r)| EffectCall::new(&inst.id, k.clone(), r.clone()))
                .collect();
            shared.new_requests = outstanding;
        }
        Ok(inst)
    }

    fn finish_from(&mut self, entry: &JournalEntry) {
        self.root = None;
        self.ending = None;
        self.status = match entry {
            JournalEntry::Completed { .. } => Status::Completed,
            JournalEntry::Faulted { .. } => Status::Faulted,
            _ => Status::Cancelled,
        };
    }

    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// Number of journal entries produced so far (including ones not yet returned by `step`).
    pub fn journal_len(&self) -> usize {
        self.journal_len
    }

    fn set_now(&self, now_ms: u64) {
        let mut s = self.ctx.lock();
        // The clock of the journal never goes backwards, even if the driver's clock jumps back.
        if now_ms > s.now_ms {
            s.now_ms = now_ms;
        }
    }

    fn accept(&mut self, key: &EffectKey, outcome: Outcome) -> bool {
        let mut s = self.ctx.lock();
        if !s.outstanding.contains_key(key) || s.results.contains_key(key) {
            return false;
        }
        s.results.insert(key.clone(), outcome);
        true
    }

    /// Delivers an effect's outcome. Returns false (and changes nothing) for an effect that is not
    /// outstanding: a duplicate, a late answer to a cancelled effect, or a stranger.
    pub fn deliver(&mut self, key: &EffectKey, outcome: Outcome, now_ms: u64) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        self.set_now(now_ms);
        let at_ms = self.ctx.lock().now_ms;
        if !self.accept(key, outcome.clone()) {
            return false;
        }
        self.append(JournalEntry::EffectCompleted {
            at_ms,
            key: key.clone(),
            outcome,
            facts: Vec::new(),
        });
        if !self.suspended {
            self.poll();
        }
        true
    }

    /// Pauses the instance (see [`JournalEntry::Suspended`]). False when it has ended or is
    /// already suspended.
    pub fn suspend(&mut self, by: &str, reason: Option<&str>, now_ms: u64) -> bool {
        if self.status.is_terminal() || self.suspended {
            return false;
        }
        self.set_now(now_ms);
        let at_ms = self.ctx.lock().now_ms;
        self.append(JournalEntry::Suspended {
            at_ms,
            by: by.to_string(),
            reason: reason.map(str::to_string),
        });
        self.suspended = true;
        true
    }

    /// Lets a suspended instance go on with whatever arrived meanwhile. False when it is not
    /// suspended.
    pub fn resume(&mut self, by: &str, now_ms: u64) -> bool {
        if self.status.is_terminal() || !self.suspended {
            return false;
        }
        self.set_now(now_ms);
        let at_ms = self.ctx.lock().now_ms;
        self.append(JournalEntry::Resumed {
            at_ms,
            by: by.to_string(),
        });
        self.suspended = false;
        self.poll();
        true
    }

    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Journals a note about an outstanding effect (see [`JournalEntry::EffectNote`]). Notes
    /// about effects that are no longer outstanding are dropped: they would describe work whose
    /// result can no longer matter.
    pub fn note(&mut self, key: &EffectKey, note: Value, now_ms: u64) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        self.set_now(now_ms);
        let at_ms = {
            let s = self.ctx.lock();
            if !s.outstanding.contains_key(key) || s.results.contains_key(key) {
                return false;
            }
            s.now_ms
        };
        self.append(JournalEntry::EffectNote {
            at_ms,
            key: key.clone(),
            note,
        });
        true
    }

    /// Asks the instance to stop: outstanding effects are cancelled and it ends `cancelled`.
    pub fn cancel(&mut self, reason: &str, now_ms: u64) {
        self.cancel_by(reason, None, now_ms);
    }

    /// Like [`Instance::cancel`], recording who asked. False (and nothing journaled) when the
    /// instance has ended, or is already undoing its effects after a fault or a cancel: that
    /// unwinding ends it, and stopping it half way would leave effects standing.
    pub fn cancel_by(&mut self, reason: &str, by: Option<&str>, now_ms: u64) -> bool {
        if self.status.is_terminal() || self.ending.is_some() {
            return false;
        }
        self.set_now(now_ms);
        let at_ms = self.ctx.lock().now_ms;
        self.append(JournalEntry::CancelRequested {
            at_ms,
            reason: reason.to_string(),
            by: by.map(str::to_string),
        });
        self.begin_cancel(reason, true);
        true
    }

    /// Whether the instance is undoing its effects (see `saga.rs`) before its end.
    pub fn is_compensating(&self) -> bool {
        self.ending.is_some()
    }

    /// Stops the flow (dropping its future cancels every outstanding effect) and either ends
    /// the instance or, when it has effects to undo, starts compensating them. `journal` is
    /// false while replaying: the end, if any, is in the journal already.
    fn begin_cancel(&mut self, reason: &str, journal: bool) {
        if self.ending.is_some() || self.root.is_none() {
            return;
        }
        self.root = None;
        // A cancelled instance is not paused any more: its compensations must run.
        self.suspended = false;
        if self.ctx.has_saga() {
            self.unwind(Ending::Cancel(reason.to_string()));
            return;
        }
        if journal {
            let at_ms = self.ctx.lock().now_ms;
            self.append(JournalEntry::Cancelled {
                at_ms,
                reason: reason.to_string(),
            });
        }
        self.status = Status::Cancelled;
    }

    /// Replaces the root with the unwinding of the saga stack; `ending` is journaled after it.
    fn unwind(&mut self, ending: Ending) {
        let ctx = self.ctx.clone();
        self.ending = Some(ending);
        self.root = Some(Box::pin(async move {
            let unwound = ctx.compensate_all().await;
            Ok(Value::String(unwound.sentence()))
        }));
        self.poll();
    }

    /// Polls the workflow future once; records the end if it finished.
    fn poll(&mut self) {
        let Some(root) = self.root.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        let ready = Pin::as_mut(root).poll(&mut cx);
        if !self.replaying {
            let (at_ms, notes) = {
                let mut s = self.ctx.lock();
                (s.now_ms, std::mem::take(&mut s.task_notes))
            };
            for (task, note) in notes {
                self.append(JournalEntry::TaskNote { at_ms, task, note });
            }
        }
        if let Poll::Ready(result) = ready {
            self.root = None;
            let at_ms = self.ctx.lock().now_ms;
            let (status, entry) = match (self.ending.take(), result) {
                (Some(Ending::Fault(mut problem)), unwound) => {
                    // The fault stays the one that started the unwinding; its detail ends with
                    // what the unwinding did.
                    if let Ok(Value::String(sentence)) = unwound {
                        problem.detail = Some(match problem.detail.take() {
                            Some(d) => format!("{d}; {sentence}"),
                            None => sentence,
                        });
                    }
                    (Status::Faulted, JournalEntry::Faulted { at_ms, problem })
                }
                (Some(Ending::Cancel(reason)), _) => {
                    (Status::Cancelled, JournalEntry::Cancelled { at_ms, reason })
                }
                (None, Ok(output)) => {
                    (Status::Completed, JournalEntry::Completed { at_ms, output })
                }
                (None, Err(problem)) if self.ctx.has_saga() => {
                    // Effects that happened are undone before the fault is final.
                    self.unwind(Ending::Fault(problem));
                    return;
                }
                (None, Err(problem)) => (Status::Faulted, JournalEntry::Faulted { at_ms, problem }),
            };
            self.append(entry);
            self.status = status;
        }
    }

    /// Journals `entry`. Every entry the machine makes passes here, so the journal's invariants
    /// are checked in one place.
    fn append(&mut self, entry: JournalEntry) {
        debug_assert!(
            !self.status.is_terminal(),
            "an ended instance journals nothing more (got `{}`)",
            entry.kind()
        );
        debug_assert_eq!(
            matches!(entry, JournalEntry::Started { .. }),
            self.journal_len == 0,
            "`started` comes first and only once"
        );
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|last| last.at_ms() <= entry.at_ms()),
            "the journal's clock went back at `{}`",
            entry.kind()
        );
        self.entries.push(entry);
        self.journal_len += 1;
    }

    /// Runs the instance as far as it can go without the outside world, and says what to do.
    pub fn step(&mut self) -> Step {
        debug_assert!(
            self.root.is_none() || !self.status.is_terminal(),
            "an ended instance has nothing left to run"
        );
        debug_assert!(
            !(self.suspended && self.status.is_terminal()),
            "an ended instance is not suspended"
        );
        let mut shared = self.ctx.lock();
        let start = std::mem::take(&mut shared.new_requests);
        let cancel = std::mem::take(&mut shared.cancelled);
        let events = std::mem::take(&mut shared.events);
        let status = if self.status.is_terminal() {
            self.status
        } else if self.suspended {
            Status::Suspended
        } else if !shared.outstanding.is_empty() && shared.outstanding.values().all(|r| r.is_wait())
        {
            Status::Waiting
        } else {
            Status::Running
        };
        drop(shared);
        Step {
            entries: std::mem::take(&mut self.entries),
            start,
            cancel,
            events,
            status,
        }
    }

    /// Effects requested and not yet answered.
    pub fn outstanding(&self) -> Vec<EffectKey> {
        self.ctx.lock().outstanding.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    /// The driver moves instances between threads; this fails to compile if that breaks.
    #[test]
    fn instance_is_send() {
        fn is_send<T: Send>() {}
        is_send::<super::Instance>();
    }
}
