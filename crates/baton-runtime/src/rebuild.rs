//! Rebuilding what a recorded run asked for. The journal keeps each effect's outcome but not its
//! request, because a request is a pure function of the entries before it: feeding the journal
//! through a fresh core instance of the same program (sans-IO, as recovery does) makes every
//! request again. Decision records ([`crate::decisions`]) and replays ([`crate::replay`]) both
//! need those requests; this is the one place that feeds a journal to collect them.

use std::collections::HashMap;
use std::sync::Arc;

use baton_core::{
    EffectKey, EffectRequest, Env, Instance, InstanceId, JournalEntry, Outcome, Program,
};

/// How a rebuild treats a journal that stops fitting the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// An outcome the program did not ask for is an error; the rebuild stops at the first entry
    /// that is not an outcome, a note, a suspension or a resumption (the end, a cancellation).
    Strict,
    /// Outcomes are delivered where they fit and skipped where they do not; every entry of the
    /// journal is read (a replay compares with whatever the recorded run was answered).
    Lenient,
}

/// The requests of a recorded run and the outcomes its journal delivered.
#[derive(Debug, Default)]
pub(crate) struct Rebuilt {
    /// Every request the core made, by effect key.
    pub requests: HashMap<EffectKey, EffectRequest>,
    /// The journal's outcomes in order (under [`Fit::Strict`], only those that fitted).
    pub outcomes: Vec<(EffectKey, Outcome)>,
}

/// Feeds `journal` through a fresh instance of `program` and keeps every request the core
/// makes on the way. `Err` when the journal does not begin with `started`, or (under
/// [`Fit::Strict`]) when an outcome does not fit the program.
pub(crate) fn rebuild(
    id: &InstanceId,
    program: Arc<Program>,
    env: Env,
    journal: &[JournalEntry],
    fit: Fit,
) -> Result<Rebuilt, String> {
    let Some(JournalEntry::Started { at_ms, input, .. }) = journal.first() else {
        return Err("the journal does not begin with `started`".into());
    };
    let mut inst = Instance::start(id.clone(), program, env, input.clone(), *at_ms);
    let mut rebuilt = Rebuilt::default();
    let collect = |inst: &mut Instance, rebuilt: &mut Rebuilt| {
        for call in inst.step().start {
            rebuilt.requests.insert(call.key, call.request);
        }
    };
    collect(&mut inst, &mut rebuilt);
    for (index, entry) in journal.iter().enumerate().skip(1) {
        match entry {
            JournalEntry::EffectCompleted {
                at_ms,
                key,
                outcome,
                ..
            } => {
                if !inst.deliver(key, outcome.clone(), *at_ms) && fit == Fit::Strict {
                    return Err(format!(
                        "journal entry {index} (effect `{key}`) does not fit the flow"
                    ));
                }
                rebuilt.outcomes.push((key.clone(), outcome.clone()));
            }
            JournalEntry::Suspended { at_ms, by, reason } => {
                inst.suspend(by, reason.as_deref(), *at_ms);
            }
            JournalEntry::Resumed { at_ms, by } => {
                inst.resume(by, *at_ms);
            }
            JournalEntry::EffectNote { .. } | JournalEntry::TaskNote { .. } => {}
            _ => {
                if fit == Fit::Strict {
                    break;
                }
            }
        }
        collect(&mut inst, &mut rebuilt);
    }
    Ok(rebuilt)
}
