//! What a feature may ask of the kernel about instances: find a registered flow, start an
//! instance, tell listeners an event was stored, tell a shadow run from a live one. The kernel's `Runtime` implements it; a feature
//! holds an `Arc<dyn Instances>` and never names the kernel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::{Env, FlowRef, InstanceId, Problem, Program, Status};
use baton_store::StoreError;
use serde_json::Value;

use crate::events::EventBus;
use crate::policy::{BoxFuture, EffectPolicy};

/// Why the kernel did not start an instance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store failed; trying again later may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The instance's state does not allow it (already running, already ended).
    #[error("{0}")]
    Refused(String),
    /// Anything else the kernel failed at (a flow version it cannot load, a journal it cannot
    /// read back): a failure that would repeat.
    #[error("{0}")]
    Failed(String),
}

/// How an instance ended (or, if it has not, where it stands).
#[derive(Debug, Clone)]
pub struct Ended {
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<Problem>,
}

/// Whether an instance is a shadow run, or the store failed to say.
pub type IsShadow<'a> = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>>;

/// A started instance, or why not.
pub type StartResult<'a> =
    Pin<Box<dyn Future<Output = Result<InstanceId, StartError>> + Send + 'a>>;

/// The kernel's instances, as features see them.
pub trait Instances: Send + Sync + 'static {
    /// The registered flow `namespace/name` at `version` (`latest` or a version string).
    fn resolve_flow(&self, namespace: &str, name: &str, version: &str) -> Option<Arc<Program>>;
    /// Starts an instance of `program` with a caller-chosen id; resolves once its start is
    /// durable.
    fn start_with_id(&self, id: InstanceId, program: Arc<Program>, input: Value)
    -> StartResult<'_>;
    /// Starts an instance of `program` under `policy` (with `id`, or a new one); resolves once
    /// its start is durable. Its start tells no [`crate::StartHooks`]: it is not live.
    fn start_under(
        &self,
        id: Option<InstanceId>,
        program: Arc<Program>,
        input: Value,
        policy: Arc<dyn EffectPolicy>,
    ) -> StartResult<'_>;
    /// Whether instance `id` is being driven in this process (its start may not be durable yet).
    fn is_running(&self, id: &InstanceId) -> bool;
    /// Cancels instance `id`; resolves once the cancellation is durable.
    fn cancel<'a>(
        &'a self,
        id: &'a InstanceId,
        reason: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Status, StartError>>;
    /// Waits until instance `id` ends (or says where it stands if it is not running here).
    fn wait_end<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<Ended, StartError>>;
    /// The program of a flow version: the registered one, or loaded from the store's copy.
    fn program_for<'a>(
        &'a self,
        flow: &'a FlowRef,
    ) -> BoxFuture<'a, Result<Arc<Program>, StartError>>;
    /// The bus that wakes listening instances when an event has been stored.
    fn events(&self) -> &EventBus;
    /// A registered program by its flow hash (the one a journal's `started` names).
    fn program_by_hash(&self, hash: &str) -> Option<Arc<Program>>;
    /// The names a flow run here may call (for loading a stored flow's source again).
    fn function_names(&self) -> Vec<String>;
    /// The environment instances run in (secrets included: a reader strips what it must not
    /// show).
    fn env(&self) -> Env;
    /// Whether `id` runs under a policy that outlives a restart (a shadow run): its effects
    /// were stand-ins, so its decisions were never acted on.
    fn is_shadow<'a>(&'a self, id: &'a InstanceId) -> IsShadow<'a>;
}
