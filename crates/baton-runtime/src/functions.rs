//! The registry of custom `call:` functions. Later features (decisions, approvals, providers,
//! facts) register here; flows name them in `call:`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use baton_core::{InstanceId, Outcome};
use serde_json::Value;

pub type FunctionResult = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A custom function.
pub trait Function: Send + Sync + 'static {
    /// True when the function has no effect outside this process (it may then run between two
    /// durability barriers; see the crate's write-ahead invariant).
    fn is_local(&self) -> bool;
    /// Runs the function. `idempotency_key` is stable across retries and crashes.
    fn call(&self, args: Value, idempotency_key: &str) -> FunctionResult;

    /// Runs the function for `instance`. Functions that keep records about the instance they
    /// serve (approval tasks, claims) override this; the default ignores the instance.
    fn call_for(
        &self,
        instance: &InstanceId,
        args: Value,
        idempotency_key: &str,
    ) -> FunctionResult {
        let _ = instance;
        self.call(args, idempotency_key)
    }
}

#[derive(Clone, Default)]
pub struct FunctionRegistry {
    map: Arc<RwLock<BTreeMap<String, Arc<dyn Function>>>>,
}

/// `call: noop`: returns its arguments. The benchmark's "trivial durable step".
struct Noop;
impl Function for Noop {
    fn is_local(&self) -> bool {
        true
    }
    fn call(&self, args: Value, _key: &str) -> FunctionResult {
        Box::pin(async move { Outcome::ok(args) })
    }
}

impl FunctionRegistry {
    pub fn with_builtins() -> FunctionRegistry {
        let r = FunctionRegistry::default();
        r.register("noop", Noop);
        r
    }

    pub fn register(&self, name: &str, f: impl Function) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(f));
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Function>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// `args` with `instance` set to the calling instance unless the flow gave one: functions that
/// keep records per instance (approval tasks, claims) use it so flows need not pass
/// `instance: ${ $workflow.id }`.
pub fn with_instance_arg(mut args: Value, instance: &InstanceId) -> Value {
    if let Some(obj) = args.as_object_mut()
        && !obj.contains_key("instance")
    {
        obj.insert("instance".into(), Value::String(instance.0.clone()));
    }
    args
}
