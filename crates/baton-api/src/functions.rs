//! The registry of `call:` functions. The kernel registers `noop`; each feature registers its
//! own (see `baton_core::BUILTIN_FUNCTIONS` for the list), and flows name them in `call:`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use baton_core::{InstanceId, Outcome};
use serde_json::Value;

pub type FunctionResult = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One call of a function: who calls, and the key that makes a repeat recognisable.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The calling instance; `None` when the function is called directly (a feature, a test).
    /// Functions that keep records per instance (approval tasks, claims) act for it.
    pub instance: Option<&'a InstanceId>,
    /// Stable across retries and crashes: the same call performed again has the same key.
    pub idempotency_key: &'a str,
}

impl<'a> Call<'a> {
    /// A call from `instance`'s effect.
    pub fn of(instance: &'a InstanceId, idempotency_key: &'a str) -> Call<'a> {
        Call {
            instance: Some(instance),
            idempotency_key,
        }
    }

    /// A direct call, for no instance.
    pub fn keyed(idempotency_key: &'a str) -> Call<'a> {
        Call {
            instance: None,
            idempotency_key,
        }
    }
}

/// A custom function.
pub trait Function: Send + Sync + 'static {
    /// True when the function has no effect outside this process (it may then run between two
    /// durability barriers; see the crate's write-ahead invariant).
    fn is_local(&self) -> bool;

    /// Runs the function for `call` with `args`.
    fn invoke(&self, call: Call<'_>, args: Value) -> FunctionResult;

    /// Runs the function directly, for no instance: [`Function::invoke`] with
    /// [`Call::keyed`].
    fn call(&self, args: Value, idempotency_key: &str) -> FunctionResult {
        self.invoke(Call::keyed(idempotency_key), args)
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
    fn invoke(&self, _call: Call<'_>, args: Value) -> FunctionResult {
        Box::pin(async move { Outcome::ok(args) })
    }
}

impl FunctionRegistry {
    pub fn with_builtins() -> FunctionRegistry {
        let r = FunctionRegistry::default();
        r.register(baton_core::functions::names::NOOP, Noop);
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

/// `args` with `instance` set to the calling instance: functions that keep records per
/// instance (approval tasks, claims) use it so flows need not pass `instance: ${ $workflow.id }`.
/// A flow may pass its own id, never another's: the records decide who may override a task
/// (the policy is looked up through its instance's flow) and who holds or releases a claim, so
/// naming another instance would borrow its rights. The error says so.
/// `run` with `args` made the calling instance's (see [`with_instance_arg`]); a flow that names
/// another instance gets a validation failure titled `refused` instead. A direct call (no
/// instance) runs with `args` as given. What functions keeping records per instance do.
pub fn call_as_instance(
    call: Call<'_>,
    args: Value,
    refused: &str,
    run: impl FnOnce(Value) -> FunctionResult,
) -> FunctionResult {
    let Some(instance) = call.instance else {
        return run(args);
    };
    match with_instance_arg(args, instance) {
        Ok(args) => run(args),
        Err(why) => {
            let problem = baton_core::Problem::new(baton_core::ErrorKind::Validation, refused)
                .with_detail(why);
            Box::pin(std::future::ready(Outcome::failed(problem)))
        }
    }
}

pub fn with_instance_arg(mut args: Value, instance: &InstanceId) -> Result<Value, String> {
    if let Some(obj) = args.as_object_mut() {
        match obj.get("instance") {
            None => {
                obj.insert("instance".into(), Value::String(instance.0.clone()));
            }
            Some(Value::String(s)) if *s == instance.0 => {}
            Some(other) => {
                return Err(format!(
                    "`instance` is {other}, not the calling instance `{}`: a function acts for \
                     the instance that calls it (leave `instance` out)",
                    instance.0
                ));
            }
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_function_acts_for_the_calling_instance_only() {
        let me = InstanceId("i-1".into());
        assert_eq!(
            with_instance_arg(json!({"title": "t"}), &me).unwrap(),
            json!({"title": "t", "instance": "i-1"})
        );
        assert_eq!(
            with_instance_arg(json!({"instance": "i-1"}), &me).unwrap(),
            json!({"instance": "i-1"})
        );
        // Another instance's id would borrow its rights (its flow's override policy, its claims).
        let err = with_instance_arg(json!({"instance": "i-2"}), &me).unwrap_err();
        assert!(err.contains("not the calling instance"), "{err}");
        assert!(with_instance_arg(json!({"instance": 7}), &me).is_err());
    }
}
