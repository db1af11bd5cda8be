//! The interface between Baton's kernel (`baton-runtime`: driver, timers, effect loop) and the
//! features beside it (approvals, claims, facts, triggers, and the ones still inside the kernel
//! crate). A feature
//! depends on this crate, the store and the core, never on the kernel: it contributes functions
//! through [`FunctionRegistry`], reads time through [`Clock`], records who acted with [`Actor`],
//! cleans up through an [`EndHook`], keeps its waits as store documents ([`wait`]) and reaches
//! instances through [`Instances`] and providers through [`ProviderReads`], and holds back the
//! effects of instances that must not touch the world with an [`EffectPolicy`]. The
//! façade (`baton-engine`) assembles a kernel with its features.

mod actor;
mod clock;
pub mod events;
pub mod explain;
mod functions;
mod instances;
mod policy;
mod providers;
pub mod wait;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::{InstanceId, Program, Status};

pub use actor::{Actor, Role};
pub use clock::{Clock, ManualClock, SystemClock};
pub use events::{EventBus, SIGNAL_TARGET};
pub use functions::{
    Call, Function, FunctionRegistry, FunctionResult, call_as_instance, with_instance_arg,
};
pub use instances::{Ended, Instances, IsShadow, StartError, StartResult};
pub use policy::{BoxFuture, EffectPolicy, Intercept, StartHooks};
pub use providers::{Notes, ProviderReads};

/// An instance that has ended, as end hooks see it.
#[derive(Clone)]
pub struct InstanceEnd {
    pub id: InstanceId,
    pub status: Status,
    pub program: Arc<Program>,
}

/// What runs when an instance has ended (completed, faulted or cancelled), after its end is
/// durable: the place for a feature to release what the instance held.
pub type EndHook =
    Arc<dyn Fn(InstanceEnd) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;
