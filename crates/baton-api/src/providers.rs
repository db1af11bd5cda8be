//! Provider operations a feature may read through the kernel's provider layer, with its gates
//! (breaker, slots, rate limit), retries and contract checks, without naming the kernel: the
//! fact store refreshes a stale fact here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::{EffectCall, Outcome};
use baton_provider::Catalog;
use serde_json::Value;

use crate::Clock;

/// Where notes about a call under way go (retries, breaker, reconciliation); the driver
/// journals them, a feature hands them back in its answer.
pub type Notes<'a> = &'a (dyn Fn(Value) + Send + Sync);

/// The kernel's provider layer, as features see it.
pub trait ProviderReads: Send + Sync + 'static {
    /// The catalogue the layer was built from (operation specs: contracts, freshness).
    fn catalog(&self) -> &Arc<Catalog>;
    /// Calls `operation` of `provider` with `args`, as the effect `call` (its idempotency key
    /// and causation id travel with the request).
    fn read<'a>(
        &'a self,
        clock: &'a dyn Clock,
        provider: &'a str,
        operation: &'a str,
        args: &'a Value,
        call: &'a EffectCall,
        notes: Notes<'a>,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;
}
