//! The façade: a kernel ([`baton_runtime`]) assembled with the features that live in crates of
//! their own, so the CLI, the server and tests build one kind of runtime in one place.
//!
//! The kernel knows nothing of the features (they depend on `baton-api`, never on it); this crate
//! registers each feature's functions and end hooks on a fresh kernel and hands out each
//! feature's handle through [`Features`]. Everything else is the kernel's, re-exported here so a
//! caller has one crate to name.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use baton_approvals as approvals;
pub use baton_approvals::guard;
pub use baton_claims as claims;
pub use baton_facts as facts;
pub use baton_records as decisions;
pub use baton_runtime::*;
pub use baton_shadow as shadow;
pub use baton_shadow::replay;
pub use baton_triggers as triggers;

use baton_api::ProviderReads;
use baton_approvals::Approvals;
use baton_claims::Claims;
use baton_facts::Facts;
use baton_records::DecisionRecords;
use baton_shadow::Shadows;
use baton_store::Store;
use baton_triggers::{TriggerError, TriggerSet, Triggers};

/// A runtime over `store` on the wall clock, with every feature installed.
pub fn runtime<S: Store>(store: Arc<S>, options: RuntimeOptions) -> Runtime<S> {
    runtime_with_clock(store, options, Arc::new(SystemClock))
}

/// A runtime over `store` on `clock`, with every feature installed.
pub fn runtime_with_clock<S: Store>(
    store: Arc<S>,
    options: RuntimeOptions,
    clock: Arc<dyn Clock>,
) -> Runtime<S> {
    let runtime = Runtime::with_clock(store, options, clock);
    install_shadows(&runtime);
    install_facts(&runtime);
    // End hooks run in this order: an ended instance's claims go first, then its tasks.
    install_claims(&runtime);
    install_approvals(&runtime);
    runtime
}

/// The handles of the features over a runtime's store and clock.
pub trait Features<S: Store> {
    /// The claims on business entities (`call: claim`, `call: release`).
    fn claims(&self) -> Claims<S>;
    /// The approvals inbox (`call: approval`, and the tasks flap guards open).
    fn approvals(&self) -> Approvals<S>;
    /// The fact store (`call: fact`, `call: fact_put`); reads refresh through the runtime's
    /// provider layer.
    fn facts(&self) -> Facts<S>;
    /// Shadow registrations, legacy decisions, reports and replays.
    fn shadows(&self) -> Shadows<S>;
    /// The decision records of this runtime's instances, read from their journals.
    fn decisions(&self) -> DecisionRecords<S>;
    /// Starts the trigger engine with `set` over this runtime (see [`Triggers::start`]).
    fn triggers(&self, set: TriggerSet) -> TriggersStarting<S>;
}

/// A trigger engine on its way up.
pub type TriggersStarting<S> =
    Pin<Box<dyn Future<Output = Result<Triggers<S>, TriggerError>> + Send + 'static>>;

impl<S: Store> Features<S> for Runtime<S> {
    fn claims(&self) -> Claims<S> {
        Claims::new(self.store().clone(), self.clock().clone())
    }

    fn approvals(&self) -> Approvals<S> {
        Approvals::new(self.store().clone(), self.clock().clone())
    }

    fn facts(&self) -> Facts<S> {
        Facts::new(
            self.store().clone(),
            self.clock().clone(),
            provider_reads(self),
        )
    }

    fn shadows(&self) -> Shadows<S> {
        let state = self.extension(|| {
            // Kept in the runtime: it must not keep the runtime alive in turn.
            baton_shadow::Shared::new(
                self.store().clone(),
                self.clock().clone(),
                Arc::new(self.downgrade()),
                self.providers().map(|layer| layer.catalog().clone()),
            )
        });
        Shadows::new(state)
    }

    fn decisions(&self) -> DecisionRecords<S> {
        DecisionRecords::new(self.store().clone(), Arc::new(self.clone()))
    }

    fn triggers(&self, set: TriggerSet) -> TriggersStarting<S> {
        let (store, clock) = (self.store().clone(), self.clock().clone());
        let instances: Arc<dyn Instances> = Arc::new(self.clone());
        Box::pin(Triggers::start(store, clock, instances, set))
    }
}

/// Shadows: the start hooks that start a live instance's shadows and keep a resumed shadow a
/// shadow, and the end hook that records and compares each side of a case. First, so a case's
/// sides are recorded before anything else hears of an end.
fn install_shadows<S: Store>(runtime: &Runtime<S>) {
    let shadows = runtime.shadows();
    runtime.set_start_hooks(shadows.hooks());
    runtime.on_instance_end(shadows.end_hook());
}

/// The runtime's provider layer, as the fact store reads through it.
fn provider_reads<S: Store>(runtime: &Runtime<S>) -> Option<Arc<dyn ProviderReads>> {
    runtime
        .providers()
        .map(|layer| layer.clone() as Arc<dyn ProviderReads>)
}

/// `fact` and `fact_put`.
fn install_facts<S: Store>(runtime: &Runtime<S>) {
    let (store, clock) = (runtime.store().clone(), runtime.clock().clone());
    let functions = runtime.functions();
    functions.register(
        facts::FACT_FUNCTION,
        facts::FactFunction::new(store.clone(), clock.clone(), provider_reads(runtime)),
    );
    functions.register(
        facts::FACT_PUT_FUNCTION,
        facts::FactPutFunction::new(store, clock),
    );
}

/// `approval` and `guard`, and the closing of an ended instance's open tasks (they leave the
/// inbox).
fn install_approvals<S: Store>(runtime: &Runtime<S>) {
    let (store, clock) = (runtime.store().clone(), runtime.clock().clone());
    let functions = runtime.functions();
    functions.register(
        approvals::APPROVAL_FUNCTION,
        approvals::ApprovalFunction::new(store.clone(), clock.clone()),
    );
    functions.register(
        guard::GUARD_FUNCTION,
        guard::GuardFunction::new(store, clock),
    );
    let approvals = runtime.approvals();
    runtime.on_instance_end(Arc::new(move |end: InstanceEnd| {
        let approvals = approvals.clone();
        Box::pin(async move {
            // Only flows that can ask a person (directly, or through a flap guard) have tasks
            // to close.
            if !end.program.calls(approvals::APPROVAL_FUNCTION)
                && !end.program.calls(guard::GUARD_FUNCTION)
            {
                return;
            }
            let id = end.id;
            if let Err(e) = approvals.close_for_ended_instance(&id.0, end.status).await {
                tracing::warn!(instance = %id, error = %e, "could not close the approval tasks of an ended instance");
            }
        })
    }));
}

/// `claim` and `release`, and the release of an ended instance's claims at once (a lease only
/// bounds how long a crashed holder keeps an entity).
fn install_claims<S: Store>(runtime: &Runtime<S>) {
    let (store, clock) = (runtime.store().clone(), runtime.clock().clone());
    let functions = runtime.functions();
    functions.register(
        claims::CLAIM_FUNCTION,
        claims::ClaimFunction::new(store.clone(), clock.clone()),
    );
    functions.register(
        claims::RELEASE_FUNCTION,
        claims::ReleaseFunction::new(store, clock),
    );
    let claims = runtime.claims();
    runtime.on_instance_end(Arc::new(move |end: InstanceEnd| {
        let claims = claims.clone();
        Box::pin(async move {
            // Most flows never claim: their end costs no read.
            if !end.program.calls(baton_claims::CLAIM_FUNCTION) {
                return;
            }
            let id = end.id;
            if let Err(e) = claims.release_all_of(&id.0).await {
                tracing::warn!(instance = %id, error = %e, "could not release the claims of an ended instance; their leases will");
            }
        })
    }));
}
