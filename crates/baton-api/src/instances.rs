//! What a feature may ask of the kernel about instances: find a registered flow, start an
//! instance, tell listeners an event was stored, tell a shadow run from a live one. The kernel's `Runtime` implements it; a feature
//! holds an `Arc<dyn Instances>` and never names the kernel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::{Env, InstanceId, Program};
use baton_store::StoreError;
use serde_json::Value;

use crate::events::EventBus;

/// Why the kernel did not start an instance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store failed; trying again later may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kernel refused the start (a failure that would repeat).
    #[error("{0}")]
    Refused(String),
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
    /// The bus that wakes listening instances when an event has been stored.
    fn events(&self) -> &EventBus;
    /// A registered program by its flow hash (the one a journal's `started` names).
    fn program_by_hash(&self, hash: &str) -> Option<Arc<Program>>;
    /// The names a flow run here may call (for loading a stored flow's source again).
    fn function_names(&self) -> Vec<String>;
    /// The environment instances run in (secrets included: a reader strips what it must not
    /// show).
    fn env(&self) -> Env;
    /// Whether `id` is a shadow run: its effects were stand-ins, so its decisions were never
    /// acted on.
    fn is_shadow<'a>(&'a self, id: &'a InstanceId) -> IsShadow<'a>;
}
