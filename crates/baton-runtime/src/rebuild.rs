//! Rebuilding what a recorded run asked for. The journal keeps each effect's outcome but not its
//! request, because a request is a pure function of the entries before it: folding the journal
//! through a fresh core instance of the same program ([`Instance::replay`], the fold recovery
//! uses) makes every request again. Decision records ([`crate::decisions`]) and replays
//! ([`crate::replay`]) both need those requests; this is the one place that collects them.

use std::collections::HashMap;
use std::sync::Arc;

use baton_core::{
    Advance, EffectKey, EffectRequest, Env, Fit, Instance, InstanceId, JournalEntry, Outcome,
    Program, ReplayObserver,
};

/// The requests of a recorded run and the outcomes its journal delivered.
#[derive(Debug, Default)]
pub(crate) struct Rebuilt {
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

/// Folds `journal` through a fresh instance of `program` and keeps every request the core
/// makes on the way. `Err` when the journal does not begin with `started`, or (under
/// [`Fit::Exact`]) when it is another flow's or an outcome does not fit the program.
pub(crate) fn rebuild(
    id: &InstanceId,
    program: Arc<Program>,
    env: Env,
    journal: &[JournalEntry],
    fit: Fit,
) -> Result<Rebuilt, String> {
    let mut rebuilt = Rebuilt::default();
    Instance::replay(id.clone(), program, env, journal, fit, &mut rebuilt)
        .map_err(|e| e.to_string())?;
    Ok(rebuilt)
}
