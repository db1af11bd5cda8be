//! The flap guard (`call: guard`): a cap on how often one entity is re-decided in a sliding
//! window, so that a decision that keeps being taken again (a shipment rerouted on every new
//! delay or ETA) stops and asks a person instead of moving the entity around without end.
//!
//! ```yaml
//! - guard:
//!     call: guard
//!     with:
//!       entity: ${ .shipment }
//!       max: 3                 # decisions allowed in any window
//!       window: 1h
//!       approval:              # optional: who decides past the cap (the `call: approval` arguments)
//!         title: Shipment keeps being rerouted
//!         assignees: group:dispatchers
//!         window: 4h
//! ```
//!
//! Each call is one decision about the entity, counted in a document of kind `flap` (id: the
//! entity) that keeps the recent decisions with their time and the call's idempotency key. The
//! document changes only by conditional writes on the version read, so concurrent instances
//! deciding about the same entity each count (the loser of a race reads again and counts again);
//! and a call performed again after a crash (the same idempotency key) finds its decision and
//! answers what it answered, without counting twice.
//!
//! Under the cap the answer is `{allowed: true, held: false, entity, count, max}`. Past it, with
//! `approval`, the call holds: it opens an approval task for the instance (the approval
//! machinery, under a key derived from the call's) and waits for the answer, so the instance is
//! `waiting`; then `{allowed: <approved>, held: true, reason: "flapping: …", entity, count, max,
//! approval: <the answer>}` (a task whose window ends without answer fails the call, as
//! `call: approval` does). Without `approval` nobody can be asked: `{allowed: false, held: false, reason, …}`
//! and the flow decides what to do. Every call counts, allowed or not: a decision attempted past
//! the cap is still one more attempt to move the entity.

use std::sync::Arc;

use baton_core::{ErrorKind, InstanceId, Outcome, Problem};
use baton_store::{Doc, DocStore, DocWrite, Expect, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{APPROVAL_KIND, ApprovalArgs, ApprovalFunction};
use baton_api::{Call, Clock, Function, FunctionResult};
use baton_flow::duration_ms;

/// `call: guard`.
pub const GUARD_FUNCTION: &str = baton_core::functions::names::GUARD;
/// The document kind of the decision counts (id: the entity).
pub const FLAP_KIND: &str = "flap";
/// The word that starts the reason of a hold.
pub const FLAPPING: &str = "flapping";

/// Decisions kept per entity beyond those any window still needs: the document stays small
/// whatever the caps.
const DECISIONS_MAX: usize = 1000;

const KEYS: [&str; 4] = ["entity", "max", "window", "approval"];

/// One counted decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The idempotency key of the call that counted it.
    pub key: String,
    pub at_ms: u64,
    /// Decisions in the window when it was counted, itself included.
    pub count: u64,
}

/// The checked arguments.
#[derive(Debug, Clone)]
struct GuardArgs {
    entity: String,
    max: u64,
    window_ms: u64,
    /// The `call: approval` arguments, checked (with the defaults filled in when held).
    approval: Option<Map<String, Value>>,
}

fn invalid(why: String) -> Outcome {
    Outcome::failed(Problem::new(ErrorKind::Validation, "Invalid guard arguments").with_detail(why))
}

impl GuardArgs {
    fn parse(args: &Value) -> Result<GuardArgs, String> {
        let obj = args
            .as_object()
            .ok_or("`call: guard` takes `with: {entity, max, window, approval?}`")?;
        for k in obj.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "unknown argument `{k}` (expected one of {})",
                    KEYS.join(", ")
                ));
            }
        }
        let entity = match obj.get("entity") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return Err("`entity` must be a non-empty string or a number".into()),
            None => return Err("`entity` is required: what is being re-decided".into()),
        };
        let max = match obj.get("max") {
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => n,
                _ => return Err("`max` must be a whole number of at least 1".into()),
            },
            None => return Err("`max` is required: how many decisions a window allows".into()),
        };
        let window_ms = match obj.get("window") {
            Some(v) => match duration_ms(v) {
                Ok(0) => return Err("`window`: must be longer than zero".into()),
                Ok(ms) => ms,
                Err(e) => return Err(format!("`window`: {e}")),
            },
            None => return Err("`window` is required (e.g. `1h` or `PT1H`)".into()),
        };
        let approval = match obj.get("approval") {
            None | Some(Value::Null) => None,
            Some(Value::Object(a)) => {
                // Checked now, with a stand-in title if none is given, so that a task that could
                // not be created fails the first call and not the one that flaps, hours later.
                let mut probe = a.clone();
                probe
                    .entry("title")
                    .or_insert_with(|| Value::String(FLAPPING.into()));
                ApprovalArgs::parse(&Value::Object(probe))
                    .map_err(|e| format!("`approval`: {e}"))?;
                Some(a.clone())
            }
            Some(_) => {
                return Err(
                    "`approval` must be the arguments of `call: approval` ({title, assignees, window, …})"
                        .into(),
                );
            }
        };
        Ok(GuardArgs {
            entity,
            max,
            window_ms,
            approval,
        })
    }
}

/// A duration as people write it (`1h`, `90m`, `30s`).
fn human(ms: u64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// The idempotency key of the approval task a held call opens: derived from the call's, so the
/// same call performed again finds the same task.
fn approval_key(key: &str) -> String {
    format!("{key}.{FLAPPING}")
}

fn decisions_of(doc: &Doc) -> Result<Vec<Decision>, StoreError> {
    match doc.body.get("decisions") {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| StoreError::Corrupt(format!("flap count of {}: {e}", doc.id))),
    }
}

/// The recent decisions about an entity, oldest first (for `baton show` and tests).
pub async fn decisions<S: DocStore>(store: &S, entity: &str) -> Result<Vec<Decision>, StoreError> {
    match store.doc(FLAP_KIND, entity).await? {
        Some(d) => decisions_of(&d),
        None => Ok(Vec::new()),
    }
}

/// Counts the decision of the call `key` about `entity` (once, however often the call is
/// performed) and returns how many decisions the window held when it was counted.
async fn count<S: DocStore>(
    store: &S,
    clock: &dyn Clock,
    args: &GuardArgs,
    key: &str,
) -> Result<u64, StoreError> {
    loop {
        let doc = store.doc(FLAP_KIND, &args.entity).await?;
        let (mut list, keep_ms, expect) = match &doc {
            Some(d) => (
                decisions_of(d)?,
                d.body.get("keep_ms").and_then(Value::as_u64).unwrap_or(0),
                Expect::Version(d.version),
            ),
            None => (Vec::new(), 0, Expect::Absent),
        };
        if let Some(d) = list.iter().find(|d| d.key == key) {
            return Ok(d.count);
        }
        // Counted before but pruned since (a call held by a person longer than the window, then
        // performed again after a restart): its task remembers the count it was held at.
        if let Some(task) = store.doc(APPROVAL_KIND, &approval_key(key)).await?
            && let Some(n) = task
                .body
                .pointer("/data/flap/count")
                .or_else(|| task.body.pointer("/data/count"))
                .and_then(Value::as_u64)
        {
            return Ok(n);
        }
        let now = clock.now_ms();
        let since = now.saturating_sub(args.window_ms);
        let count = list.iter().filter(|d| d.at_ms > since).count() as u64 + 1;
        list.push(Decision {
            key: key.to_string(),
            at_ms: now,
            count,
        });
        // Other flows may guard the same entity with a longer window: keep what the longest
        // window seen needs.
        let keep_ms = keep_ms.max(args.window_ms);
        list.retain(|d| d.at_ms > now.saturating_sub(keep_ms));
        if list.len() > DECISIONS_MAX {
            let extra = list.len() - DECISIONS_MAX;
            list.drain(..extra);
        }
        let written = store
            .put_doc(DocWrite {
                kind: FLAP_KIND.into(),
                id: args.entity.clone(),
                status: "active".into(),
                at_ms: now,
                body: json!({
                    "entity": args.entity,
                    "keep_ms": keep_ms,
                    "decisions": list,
                }),
                expect,
            })
            .await;
        match written {
            Ok(_) => return Ok(count),
            // Another instance counted a decision meanwhile: count again on top of it.
            Err(StoreError::DocConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The `call: guard` function.
pub struct GuardFunction<S: DocStore> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    approval: Arc<ApprovalFunction<S>>,
}

impl<S: DocStore> GuardFunction<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> GuardFunction<S> {
        let approval = Arc::new(ApprovalFunction::new(store.clone(), clock.clone()));
        GuardFunction {
            store,
            clock,
            approval,
        }
    }
}

impl<S: DocStore> Function for GuardFunction<S> {
    /// The count is durable and a held call waits for a person: performed after the barrier.
    fn is_local(&self) -> bool {
        false
    }

    /// The task of a held call belongs to the calling instance, as if it had called `approval`
    /// itself (the inbox links to it, and it is closed when the instance ends).
    fn invoke(&self, call: Call<'_>, args: Value) -> FunctionResult {
        self.guard(call.instance.cloned(), args, call.idempotency_key)
    }
}

impl<S: DocStore> GuardFunction<S> {
    fn guard(
        &self,
        instance: Option<InstanceId>,
        args: Value,
        idempotency_key: &str,
    ) -> FunctionResult {
        let store = self.store.clone();
        let clock = self.clock.clone();
        let approval = self.approval.clone();
        let key = idempotency_key.to_string();
        Box::pin(async move {
            let args = match GuardArgs::parse(&args) {
                Ok(a) => a,
                Err(why) => return invalid(why),
            };
            let count = match count(&*store, &*clock, &args, &key).await {
                Ok(n) => n,
                Err(e) => {
                    return Outcome::failed(
                        Problem::new(ErrorKind::Runtime, "Flap guard store failure")
                            .with_detail(e.to_string()),
                    );
                }
            };
            let mut answer = json!({
                "entity": args.entity,
                "count": count,
                "max": args.max,
            });
            if count <= args.max {
                answer["allowed"] = json!(true);
                answer["held"] = json!(false);
                return Outcome::ok(answer);
            }
            let reason = format!(
                "{FLAPPING}: {} re-decided {count} times in {}",
                args.entity,
                human(args.window_ms)
            );
            answer["reason"] = json!(reason);
            let Some(mut with) = args.approval else {
                answer["allowed"] = json!(false);
                answer["held"] = json!(false);
                return Outcome::ok(answer);
            };
            with.entry("title")
                .or_insert_with(|| Value::String(reason.clone()));
            // The person sees why they are asked; data the flow gives is kept beside it.
            let flap = json!({
                "entity": args.entity,
                "count": count,
                "max": args.max,
                "window": human(args.window_ms),
                "reason": reason,
            });
            let data = match with.remove("data") {
                None | Some(Value::Null) => flap,
                Some(Value::Object(mut d)) => {
                    d.insert("flap".into(), flap);
                    Value::Object(d)
                }
                Some(other) => {
                    let mut f = flap;
                    f["proposed"] = other;
                    f
                }
            };
            with.insert("data".into(), data);
            let with = Value::Object(with);
            let asked = match &instance {
                Some(i) => approval.invoke(Call::of(i, &approval_key(&key)), with),
                None => approval.call(with, &approval_key(&key)),
            };
            match asked.await {
                Outcome::Ok { value } => {
                    answer["allowed"] = value.get("approved").cloned().unwrap_or(json!(false));
                    answer["held"] = json!(true);
                    answer["approval"] = value;
                    Outcome::ok(answer)
                }
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_and_named() {
        let ok = GuardArgs::parse(&json!({"entity": "s-1", "max": 3, "window": "1h"})).unwrap();
        assert_eq!((ok.max, ok.window_ms), (3, 3_600_000));
        assert_eq!(
            GuardArgs::parse(&json!({"entity": 42, "max": 1, "window": "PT30M"}))
                .unwrap()
                .entity,
            "42"
        );
        let err = |v: Value| GuardArgs::parse(&v).unwrap_err();
        assert!(err(json!({"max": 3, "window": "1h"})).contains("`entity`"));
        assert!(err(json!({"entity": "", "max": 3, "window": "1h"})).contains("`entity`"));
        assert!(err(json!({"entity": "s", "max": 0, "window": "1h"})).contains("`max`"));
        assert!(err(json!({"entity": "s", "max": 3, "window": "soon"})).contains("`window`"));
        assert!(err(json!({"entity": "s", "max": 3, "window": "1h", "cap": 2})).contains("`cap`"));
        // A task that could not be opened is refused at the first call, not when flapping.
        assert!(
            err(json!({"entity": "s", "max": 3, "window": "1h", "approval": {"window": "4h"}}))
                .contains("`approval`: `assignees`")
        );
        assert!(
            GuardArgs::parse(&json!({"entity": "s", "max": 3, "window": "1h",
                "approval": {"assignees": "group:dispatchers", "window": "4h"}}))
            .is_ok()
        );
    }

    #[test]
    fn windows_read_as_people_write_them() {
        assert_eq!(human(3_600_000), "1h");
        assert_eq!(human(90 * 60_000), "90m");
        assert_eq!(human(45_000), "45s");
        assert_eq!(human(1_500), "1500ms");
    }
}
