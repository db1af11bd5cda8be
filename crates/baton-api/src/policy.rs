//! Effect policies: how a feature holds back the effects of instances that must not touch the
//! world (a shadow run, a replay of a recorded run), and the hooks through which it learns of
//! live starts and resumes. The kernel's driver consults the policy of an instance before it
//! performs each effect; it knows nothing of shadows or replays themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::{EffectCall, FlowRef, InstanceId, Outcome};
use baton_store::StoreError;
use serde_json::Value;

/// A boxed future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the driver does with one effect of an instance under a policy.
#[derive(Debug)]
pub enum Intercept {
    /// Perform it as usual.
    Perform,
    /// Do not perform it: deliver `outcome` at once, journaling `note` first (so the journal
    /// says what was not done, and why).
    Answer { outcome: Outcome, note: Value },
}

/// The policy an instance runs under.
pub trait EffectPolicy: Send + Sync + 'static {
    /// Decides for one effect, before the driver performs anything of it.
    fn intercept(&self, call: &EffectCall) -> Intercept;
}

/// What the kernel tells a feature about live (policy-free) instances, and asks it when it
/// resumes an instance after a restart.
pub trait StartHooks: Send + Sync + 'static {
    /// Whether a live start must keep its input for [`StartHooks::live_started`]. Asked at
    /// every start, so it must answer from memory; false only when surely not.
    fn wants_live_starts(&self) -> bool;
    /// A live instance's start is durable and its driver has not run yet.
    fn live_started<'a>(
        &'a self,
        flow: &'a FlowRef,
        id: &'a InstanceId,
        input: Value,
    ) -> BoxFuture<'a, ()>;
    /// The policy a resumed instance keeps, if it has one that outlives a restart (a shadow
    /// stays a shadow).
    fn resume_policy<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn EffectPolicy>>, StoreError>>;
    /// A live instance was resumed after a restart; it started at `started_at_ms` on `input`.
    fn live_resumed<'a>(
        &'a self,
        flow: &'a FlowRef,
        id: &'a InstanceId,
        started_at_ms: u64,
        input: &'a Value,
    ) -> BoxFuture<'a, ()>;
}
