//! Facts with freshness: what Baton knows about an entity (a store's stock of a SKU, a truck's
//! position), when it was observed and where it came from.
//!
//! A fact is a document of kind `fact` whose id is `entity/name`. It is filled by provider reads
//! (`call: fact` with a `source`), whose observation time is what the provider's freshness rule
//! says (`as_of` of a nightly export is hours old by nature, so the fact is born hours old), by
//! events ([`Facts::observe`], for the trigger engine) and by flows (`call: fact_put`). An older
//! observation never replaces a newer one, so events that arrive out of order cannot roll a fact
//! back. The collection is bounded: past [`DEFAULT_MAX_FACTS`] (or the handle's own cap) the facts
//! observed longest ago are evicted and counted.
//!
//! A flow reads a fact with a freshness bound (`call: fact` with `max_age`). A fact within the
//! bound is data. Otherwise the flow's `on_stale` decides: `refresh` reads the declared source
//! again, `hold` waits (durably, on the runtime clock) for a fresher observation up to
//! `hold_for`, `default` answers the flow's declared safe value. When none of them yields a fresh
//! value the answer is `{status: "unknown", reason: "stale:…"}`: the stale value is shown only as
//! `fact.stale_value`, never as `value`, so a flow cannot mistake it for the current one. Every
//! answer carries `fact: {entity, name, version, observed_at, age_ms, source}` (null when nothing
//! was ever observed), so the journal records which observation each step used.
//!
//! A fact's `ttl_ms` is its source's own bound (the catalogue's `freshness.max_age` for provider
//! reads): a reader never accepts a fact older than it, whatever the reader's `max_age`, so the
//! fact store cannot serve as data what the provider layer would have called stale.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::{EffectCall, EffectKey, EffectRequest, ErrorKind, Outcome, Problem};
use baton_expr::{Budget, Expr};
use baton_store::{
    Change, Collection, Doc, DocQuery, DocStore, DocWatch, Entry, KeyRange, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use baton_api::wait::{WaitDoc, human_ms, open_wait, prune_waits};
use baton_api::{Call, Clock, Function, FunctionResult, ProviderReads};
use baton_core::functions::names::PROVIDER as PROVIDER_FUNCTION;
use baton_flow::duration_ms;

/// `call: fact`: read a fact with a freshness bound.
pub const FACT_FUNCTION: &str = baton_core::functions::names::FACT;
/// `call: fact_put`: record an observation from a flow.
pub const FACT_PUT_FUNCTION: &str = baton_core::functions::names::FACT_PUT;
/// The document kind of facts (id `entity/name`).
pub const FACT_KIND: &str = "fact";
/// The document kind of reads holding for a fresher observation (id: the call's idempotency
/// key), so a hold keeps its deadline across a restart and a dashboard can list what waits.
pub const FACT_HOLD_KIND: &str = "fact_hold";
/// How many facts a store keeps before the oldest observations are evicted.
pub const DEFAULT_MAX_FACTS: u64 = 10_000;

const PAGE: usize = 500;
const FACT_STATUS: &str = "fact";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Facts.

/// One fact as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub entity: String,
    pub name: String,
    pub value: Value,
    /// When the world was as `value` says (the provider's `as_of`, the event's time).
    pub observed_at_ms: u64,
    /// Where it came from: `provider:inventory/stock`, `event:maplewood.stock.changed`, …
    pub source: String,
    /// When Baton recorded it.
    pub recorded_at_ms: u64,
    /// How late the observation already was when recorded: the source's lateness by nature
    /// (hours for a nightly export, seconds for a GPS feed).
    pub lateness_ms: u64,
    /// The source's own freshness bound: no reader accepts the fact older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// 1 for the first observation kept, +1 for each newer one.
    pub version: u64,
}

impl Fact {
    pub fn id(&self) -> String {
        fact_id(&self.entity, &self.name)
    }

    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.observed_at_ms)
    }

    /// The largest age a reader asking for `max_age_ms` accepts for this fact.
    pub fn bound_ms(&self, max_age_ms: u64) -> u64 {
        self.ttl_ms.map_or(max_age_ms, |t| t.min(max_age_ms))
    }

    pub fn is_fresh(&self, max_age_ms: u64, now_ms: u64) -> bool {
        self.age_ms(now_ms) <= self.bound_ms(max_age_ms)
    }

    /// What a step's answer says about the fact it used (journaled with the answer).
    pub fn describe(&self, now_ms: u64) -> Value {
        let mut v = json!({
            "entity": self.entity,
            "name": self.name,
            "version": self.version,
            "observed_at": baton_core::time::iso8601_utc(self.observed_at_ms),
            "observed_at_ms": self.observed_at_ms,
            "age_ms": self.age_ms(now_ms),
            "source": self.source,
            "lateness_ms": self.lateness_ms,
        });
        if let Some(t) = self.ttl_ms {
            v["ttl_ms"] = json!(t);
        }
        v
    }
}

pub fn fact_id(entity: &str, name: &str) -> String {
    format!("{entity}/{name}")
}

/// An observation to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub entity: String,
    pub name: String,
    pub value: Value,
    pub observed_at_ms: u64,
    pub source: String,
    pub ttl_ms: Option<u64>,
}

/// What recording an observation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The fact as stored now.
    pub fact: Fact,
    /// False when a newer (or the same) observation was already stored and was kept.
    pub stored: bool,
}

/// A read holding for a fresher observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactHold {
    /// The call's idempotency key.
    pub key: String,
    pub entity: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub since_ms: u64,
    pub until_ms: u64,
    pub max_age_ms: u64,
    /// `stale:<entity>/<name> …` when the hold began.
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactError {
    #[error("invalid fact: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a read does when the fact is older than its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStale {
    /// Read the declared source again; still too old (or failing): `unknown`.
    Refresh,
    /// Wait up to `hold_for` for a fresher observation; none: `unknown`.
    Hold,
    /// Answer the declared safe default, marked `status: "default"`.
    Default,
}

/// Where a fact is read from on `refresh`: a catalogue operation and a jq path into its answer.
#[derive(Debug, Clone)]
pub struct FactSource {
    pub provider: String,
    pub operation: String,
    pub args: Value,
    /// jq over the answer (with `$args`, `$entity`, `$name`); `.` when absent.
    pub value: Option<Expr>,
}

/// The checked `with:` of `call: fact`.
#[derive(Debug, Clone)]
pub struct FactArgs {
    pub entity: String,
    pub name: String,
    pub max_age_ms: u64,
    pub on_stale: OnStale,
    pub default: Option<Value>,
    pub hold_for_ms: Option<u64>,
    pub source: Option<FactSource>,
    /// The asking instance (`${ $workflow.id }`), shown on holds.
    pub instance: Option<String>,
}

fn check_name(what: &str, v: Option<&Value>, allow_slash: bool) -> Result<String, String> {
    let s = v
        .and_then(Value::as_str)
        .map(str::trim)
        .ok_or_else(|| format!("`{what}` is required (a string)"))?;
    if s.is_empty() {
        return Err(format!("`{what}` is empty"));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("`{what}` holds control characters"));
    }
    // The document id is `entity/name`: a slash in the entity would make two facts one id.
    if !allow_slash && s.contains('/') {
        return Err(format!("`{what}` must not contain `/` (`{s}`)"));
    }
    Ok(s.to_string())
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

fn check_keys(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{what}: unknown key `{k}` (expected {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

impl FactArgs {
    pub fn parse(v: &Value) -> Result<FactArgs, String> {
        let obj = v
            .as_object()
            .ok_or("`call: fact` takes `with: {entity, name, max_age, on_stale, …}`")?;
        check_keys(
            obj,
            &[
                "entity", "name", "max_age", "on_stale", "default", "hold_for", "source",
                "instance",
            ],
            "`call: fact`",
        )?;
        let entity = check_name("entity", obj.get("entity"), false)?;
        let name = check_name("name", obj.get("name"), true)?;
        let max_age_ms = duration_ms(obj.get("max_age").ok_or("`max_age` is required")?)
            .map_err(|e| format!("`max_age`: {e}"))?;
        let on_stale = match obj.get("on_stale").and_then(Value::as_str) {
            Some("refresh") => OnStale::Refresh,
            Some("hold") => OnStale::Hold,
            Some("default") => OnStale::Default,
            _ => return Err("`on_stale` must be `refresh`, `hold` or `default`".into()),
        };
        let default = obj.get("default").cloned();
        let hold_for_ms = obj
            .get("hold_for")
            .map(|h| duration_ms(h).map_err(|e| format!("`hold_for`: {e}")))
            .transpose()?;
        let source = obj.get("source").map(parse_source).transpose()?;
        // Each policy needs what it acts on: a hold without a deadline could wait forever, a
        // default without a value has nothing safe to answer.
        match on_stale {
            OnStale::Refresh if source.is_none() => {
                return Err("`on_stale: refresh` needs a `source` to read".into());
            }
            OnStale::Hold if hold_for_ms.is_none() => {
                return Err("`on_stale: hold` needs `hold_for` (how long to wait)".into());
            }
            OnStale::Default if default.is_none() => {
                return Err("`on_stale: default` needs `default` (the safe value)".into());
            }
            _ => {}
        }
        Ok(FactArgs {
            entity,
            name,
            max_age_ms,
            on_stale,
            default,
            hold_for_ms,
            source,
            instance: opt_string(obj, "instance")?,
        })
    }

    pub fn id(&self) -> String {
        fact_id(&self.entity, &self.name)
    }
}

fn parse_source(v: &Value) -> Result<FactSource, String> {
    let obj = v
        .as_object()
        .ok_or("`source` takes `{provider, operation, args, value}`")?;
    check_keys(obj, &["provider", "operation", "args", "value"], "`source`")?;
    let s = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("`source.{k}` is required (a string)"))
    };
    let value = match obj.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::String(src)) => Some(
            Expr::compile(src, &["args", "entity", "name"])
                .map_err(|e| format!("`source.value` is not valid jq: {e}"))?,
        ),
        Some(_) => return Err("`source.value` must be a jq path like `.stock.sku-1`".into()),
    };
    Ok(FactSource {
        provider: s("provider")?,
        operation: s("operation")?,
        args: obj.get("args").cloned().unwrap_or(Value::Null),
        value,
    })
}

/// The fact store of a document store. Cheap to clone.
pub struct Facts<S: DocStore> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    providers: Option<Arc<dyn ProviderReads>>,
    /// Facts this handle (and its clones) evicted to keep the collection under its cap.
    evicted: Arc<AtomicU64>,
    max_facts: u64,
}

impl<S: DocStore> Clone for Facts<S> {
    fn clone(&self) -> Self {
        Facts {
            store: self.store.clone(),
            clock: self.clock.clone(),
            providers: self.providers.clone(),
            evicted: self.evicted.clone(),
            max_facts: self.max_facts,
        }
    }
}

fn fact_of(doc: &Doc) -> Result<Fact, StoreError> {
    serde_json::from_value(doc.body.clone())
        .map_err(|e| StoreError::Corrupt(format!("fact {}: {e}", doc.id)))
}

/// What a refresh through the source gave.
enum Refreshed {
    /// An observation was made (and recorded); `outcome` is the provider layer's (`ok` or
    /// `stale`).
    Observed {
        outcome: &'static str,
        detail: Option<String>,
        notes: Vec<Value>,
    },
    /// Nothing was observed.
    Nothing {
        outcome: &'static str,
        detail: String,
        notes: Vec<Value>,
    },
}

impl<S: DocStore> Facts<S> {
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        providers: Option<Arc<dyn ProviderReads>>,
    ) -> Facts<S> {
        Facts {
            store,
            clock,
            providers,
            evicted: Arc::default(),
            max_facts: DEFAULT_MAX_FACTS,
        }
    }

    /// Sets the cap on the number of facts this handle keeps when it records (at least 1).
    pub fn with_max_facts(mut self, max: u64) -> Facts<S> {
        self.max_facts = max.max(1);
        self
    }

    /// Records an observation from an event (the trigger engine's entry point).
    pub async fn observe(
        &self,
        entity: &str,
        name: &str,
        value: Value,
        observed_at_ms: u64,
        source: &str,
    ) -> Result<Recorded, FactError> {
        self.record(Observation {
            entity: entity.to_string(),
            name: name.to_string(),
            value,
            observed_at_ms,
            source: source.to_string(),
            ttl_ms: None,
        })
        .await
    }

    /// Records an observation unless a newer one is stored; wakes reads holding for it.
    pub async fn record(&self, obs: Observation) -> Result<Recorded, FactError> {
        let entity =
            check_name("entity", Some(&json!(obs.entity)), false).map_err(FactError::Invalid)?;
        let name = check_name("name", Some(&json!(obs.name)), true).map_err(FactError::Invalid)?;
        let id = fact_id(&entity, &name);
        let facts: Collection<Fact> = Collection::new(FACT_KIND);
        // The decision is made again on what another writer stored if it got there first.
        let (recorded, created) = facts
            .update(&*self.store, &id, |existing| {
                let version = match existing {
                    Some(old) => {
                        let old = &old.value;
                        // A late or repeated observation (events out of order, a slow read,
                        // an event delivered twice) never rolls a fact back.
                        if old.observed_at_ms > obs.observed_at_ms
                            || (old.observed_at_ms == obs.observed_at_ms && old.value == obs.value)
                        {
                            let kept = Recorded {
                                fact: old.clone(),
                                stored: false,
                            };
                            return Change::Keep((kept, false));
                        }
                        old.version + 1
                    }
                    None => 1,
                };
                let now = self.clock.now_ms();
                let fact = Fact {
                    entity: entity.clone(),
                    name: name.clone(),
                    value: obs.value.clone(),
                    observed_at_ms: obs.observed_at_ms,
                    source: obs.source.clone(),
                    recorded_at_ms: now,
                    lateness_ms: now.saturating_sub(obs.observed_at_ms),
                    ttl_ms: obs.ttl_ms,
                    version,
                };
                // Listed by observation time: the eviction takes the oldest observations first.
                let entry = Entry::new(FACT_STATUS, fact.observed_at_ms, fact.clone());
                let stored = Recorded { fact, stored: true };
                Change::Put(entry, (stored, existing.is_none()))
            })
            .await?;
        if created {
            self.enforce_cap(&id).await?;
        }
        Ok(recorded)
    }

    /// Evicts the facts observed longest ago beyond the cap, never the one just written.
    /// Eviction is not conditional: a fact updated at the very moment it is evicted loses that
    /// update, which costs a re-read, never a wrong answer (a missing fact is `unknown`).
    async fn enforce_cap(&self, keep: &str) -> Result<(), StoreError> {
        let n = self.store.count_docs(FACT_KIND, None).await?;
        if n <= self.max_facts {
            return Ok(());
        }
        let excess = usize::try_from(n - self.max_facts).unwrap_or(usize::MAX);
        let oldest = self
            .store
            .docs(
                FACT_KIND,
                &DocQuery {
                    status: None,
                    newest_first: false,
                    after: None,
                    limit: excess.saturating_add(1),
                },
            )
            .await?;
        let mut removed = 0;
        for d in oldest {
            if removed == excess {
                break;
            }
            if d.id == keep {
                continue;
            }
            if self.store.delete_doc(FACT_KIND, &d.id).await? {
                removed += 1;
                self.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(fact = %d.id, "fact evicted: the fact store is full");
            }
        }
        Ok(())
    }

    pub async fn get(&self, entity: &str, name: &str) -> Result<Option<Fact>, StoreError> {
        match self.store.doc(FACT_KIND, &fact_id(entity, name)).await? {
            Some(d) => Ok(Some(fact_of(&d)?)),
            None => Ok(None),
        }
    }

    /// The facts, most recently observed first (at most `limit`; 0 for all), for the dashboard
    /// and `baton show` (ages from [`Fact::age_ms`]).
    pub async fn list(&self, limit: usize) -> Result<Vec<Fact>, StoreError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = if limit == 0 {
                PAGE
            } else {
                (limit - out.len()).min(PAGE)
            };
            let docs = self
                .store
                .docs(
                    FACT_KIND,
                    &DocQuery {
                        status: None,
                        newest_first: true,
                        after: after.clone(),
                        limit: page,
                    },
                )
                .await?;
            let n = docs.len();
            for d in &docs {
                after = Some((d.at_ms, d.id.clone()));
                out.push(fact_of(d)?);
            }
            if n < page || (limit != 0 && out.len() >= limit) {
                return Ok(out);
            }
        }
    }

    /// How many facts are stored.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.store.count_docs(FACT_KIND, None).await
    }

    /// How many facts this handle (and its clones) evicted to keep the store within its cap.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Reads holding for a fresher observation now (their deadline not passed), soonest
    /// deadline first: the instances waiting with reason `stale:<fact>`.
    pub async fn holds(&self) -> Result<Vec<FactHold>, StoreError> {
        let now = self.clock.now_ms();
        let docs = self
            .store
            .docs(FACT_HOLD_KIND, &DocQuery::from_time(now, 1000))
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| serde_json::from_value(d.body.clone()).ok())
            .collect())
    }

    /// Wakes whenever a fact is recorded or evicted, or a hold begins or ends, by this process
    /// or another over the same store (for live views).
    pub fn changes(&self) -> DocWatch {
        self.store
            .watch(&[(FACT_KIND, KeyRange::All), (FACT_HOLD_KIND, KeyRange::All)])
    }

    /// `call: fact`: the answer for the flow (always `ok` data with a `status`, so the flow
    /// branches on `.status`), or a store failure.
    pub async fn read(&self, args: &FactArgs, key: &str) -> Result<Value, StoreError> {
        let now = self.clock.now_ms();
        let stored = self.get(&args.entity, &args.name).await?;
        if let Some(f) = &stored
            && f.is_fresh(args.max_age_ms, now)
        {
            return Ok(ok_answer(f, "store", now));
        }
        match args.on_stale {
            OnStale::Default => Ok(json!({
                "status": "default",
                "value": args.default.clone().unwrap_or(Value::Null),
                "reason": stale_reason(args, stored.as_ref(), now),
                "fact": stored.as_ref().map(|f| stale_fact(f, now)),
            })),
            OnStale::Hold => self.hold(args, key, stored).await,
            OnStale::Refresh => {
                let Some(src) = &args.source else {
                    return Ok(unknown_answer(args, stored.as_ref(), now, Map::new()));
                };
                let refreshed = self.refresh(args, src, key).await?;
                let now = self.clock.now_ms();
                // The stored fact is the newest observation, whichever read or event made it.
                let fact = self.get(&args.entity, &args.name).await?;
                let mut extra = Map::new();
                let (outcome, detail, notes) = match refreshed {
                    Refreshed::Observed {
                        outcome,
                        detail,
                        notes,
                    } => (outcome, detail, notes),
                    Refreshed::Nothing {
                        outcome,
                        detail,
                        notes,
                    } => (outcome, Some(detail), notes),
                };
                if let Some(f) = &fact
                    && f.is_fresh(args.max_age_ms, now)
                {
                    return Ok(ok_answer(f, "refresh", now));
                }
                let mut r = json!({"outcome": outcome, "detail": detail});
                if !notes.is_empty() {
                    r["notes"] = Value::Array(notes);
                }
                extra.insert("refresh".into(), r);
                Ok(unknown_answer(args, fact.as_ref(), now, extra))
            }
        }
    }

    /// Reads the source through the provider layer (its gate, retries and freshness rule) and
    /// records what was observed, stale or not: an old observation is still the newest thing
    /// known, and its age stays explicit.
    async fn refresh(
        &self,
        args: &FactArgs,
        src: &FactSource,
        key: &str,
    ) -> Result<Refreshed, StoreError> {
        let Some(layer) = &self.providers else {
            return Ok(Refreshed::Nothing {
                outcome: "failed",
                detail: "no provider catalogue is loaded (--providers FILE)".into(),
                notes: Vec::new(),
            });
        };
        let call = EffectCall {
            key: EffectKey(format!("fact:{}", args.id())),
            request: EffectRequest::Function {
                name: PROVIDER_FUNCTION.into(),
                args: json!({"provider": src.provider, "operation": src.operation, "args": src.args}),
            },
            idempotency_key: key.to_string(),
            causation_id: key.to_string(),
        };
        // The function cannot journal notes itself; they travel in the answer instead.
        let notes: Mutex<Vec<Value>> = Mutex::new(Vec::new());
        let sink = |n: Value| lock(&notes).push(n);
        let outcome = layer
            .read(
                &*self.clock,
                &src.provider,
                &src.operation,
                &src.args,
                &call,
                &sink,
            )
            .await;
        let notes = std::mem::take(&mut *lock(&notes));
        let now = self.clock.now_ms();
        let op = layer
            .catalog()
            .providers
            .get(&src.provider)
            .and_then(|p| p.operations.get(&src.operation));
        let ttl_ms = op
            .and_then(|o| o.spec.freshness.as_ref())
            .map(|f| f.max_age.ms());
        let (answer, observed_at_ms, outcome, detail) = match outcome {
            Outcome::Ok { value } => {
                let observed = observed_at(op, &value, now);
                (value, observed, "ok", None)
            }
            // An answer whose age cannot be read is not an observation at any known time.
            Outcome::Stale {
                observed_at_ms: 0,
                reason,
                ..
            } => {
                return Ok(Refreshed::Nothing {
                    outcome: "stale",
                    detail: reason,
                    notes,
                });
            }
            Outcome::Stale {
                value,
                observed_at_ms,
                reason,
            } => (value, observed_at_ms, "stale", Some(reason)),
            Outcome::Failed { problem } => {
                return Ok(Refreshed::Nothing {
                    outcome: "failed",
                    detail: problem.to_string(),
                    notes,
                });
            }
            Outcome::Unknown { reason } => {
                return Ok(Refreshed::Nothing {
                    outcome: "unknown",
                    detail: reason,
                    notes,
                });
            }
        };
        let value = match &src.value {
            None => answer,
            Some(e) => match e.eval(
                &answer,
                &[
                    src.args.clone(),
                    json!(args.entity.clone()),
                    json!(args.name.clone()),
                ],
                &Budget::default(),
            ) {
                Ok(v) => v,
                Err(err) => {
                    return Ok(Refreshed::Nothing {
                        outcome: "failed",
                        detail: format!(
                            "`source.value` ({}) failed on the answer: {err}",
                            e.source()
                        ),
                        notes,
                    });
                }
            },
        };
        let recorded = self
            .record(Observation {
                entity: args.entity.clone(),
                name: args.name.clone(),
                value,
                observed_at_ms,
                source: format!("provider:{}/{}", src.provider, src.operation),
                ttl_ms,
            })
            .await;
        match recorded {
            Ok(_) => Ok(Refreshed::Observed {
                outcome,
                detail,
                notes,
            }),
            Err(FactError::Store(e)) => Err(e),
            Err(FactError::Invalid(why)) => Ok(Refreshed::Nothing {
                outcome: "failed",
                detail: why,
                notes,
            }),
        }
    }

    /// Waits for an observation within the bound, up to `hold_for` from when the hold first
    /// began (kept in a document, so a restart does not stretch it).
    async fn hold(
        &self,
        args: &FactArgs,
        key: &str,
        first: Option<Fact>,
    ) -> Result<Value, StoreError> {
        let id = args.id();
        // Subscribed before the first read, so an observation recorded after it (by any process)
        // is not missed.
        let mut sub = self
            .store
            .watch(&[(FACT_KIND, KeyRange::Exact(id.clone()))]);
        let now = self.clock.now_ms();
        let hold_for = args.hold_for_ms.unwrap_or(0);
        prune_waits(
            &*self.store,
            FACT_HOLD_KIND,
            now.saturating_sub(24 * 3_600_000),
        )
        .await?;
        let hold = FactHold {
            key: key.to_string(),
            entity: args.entity.clone(),
            name: args.name.clone(),
            instance: args.instance.clone(),
            since_ms: now,
            until_ms: now.saturating_add(hold_for),
            max_age_ms: args.max_age_ms,
            reason: stale_reason(args, first.as_ref(), now),
        };
        let body = serde_json::to_value(&hold).unwrap_or(Value::Null);
        let until = open_wait(&*self.store, FACT_HOLD_KIND, key, body, hold.until_ms).await?;
        let wait = WaitDoc::new(self.store.clone(), FACT_HOLD_KIND, key);
        let since = until.saturating_sub(hold_for);
        loop {
            let fact = self.get(&args.entity, &args.name).await?;
            let now = self.clock.now_ms();
            if let Some(f) = &fact
                && f.is_fresh(args.max_age_ms, now)
            {
                wait.finish().await?;
                let mut a = ok_answer(f, "hold", now);
                a["held_ms"] = json!(now.saturating_sub(since));
                return Ok(a);
            }
            if now >= until {
                wait.finish().await?;
                let mut extra = Map::new();
                extra.insert(
                    "held_ms".into(),
                    json!(now.saturating_sub(since).min(hold_for)),
                );
                extra.insert(
                    "hold_ended_at".into(),
                    json!(baton_core::time::iso8601_utc(until)),
                );
                return Ok(unknown_answer(args, fact.as_ref(), now, extra));
            }
            tokio::select! {
                r = sub.changed() => r?,
                _ = self.clock.sleep_until(until) => {}
            }
        }
    }
}

/// When the answer of a source read was observed: its operation's `as_of` when it has one;
/// when its age is only known to be within a header-based bound, the oldest it may be (never
/// younger than the data can be); otherwise the read itself (the provider declared no lateness).
fn observed_at(op: Option<&baton_provider::Operation>, value: &Value, now: u64) -> u64 {
    let Some(op) = op else { return now };
    if let Some(e) = &op.as_of
        && let Ok(v) = e.eval(value, &[], &Budget::default())
    {
        let ms = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => baton_core::time::parse_time_ms(s),
            _ => None,
        };
        if let Some(ms) = ms {
            return ms;
        }
    }
    match &op.spec.freshness {
        Some(f) => now.saturating_sub(f.max_age.ms()),
        None => now,
    }
}

fn ok_answer(f: &Fact, via: &str, now: u64) -> Value {
    json!({
        "status": "ok",
        "value": f.value,
        "via": via,
        "fact": f.describe(now),
    })
}

/// The fact behind an `unknown` or `default` answer, for display: its value under
/// `stale_value`, where no flow reading `.value` can take it for the current one.
fn stale_fact(f: &Fact, now: u64) -> Value {
    let mut d = f.describe(now);
    d["stale_value"] = f.value.clone();
    d
}

fn stale_reason(args: &FactArgs, fact: Option<&Fact>, now: u64) -> String {
    match fact {
        Some(f) => format!(
            "stale:{} {} old, max {}",
            args.id(),
            human_ms(f.age_ms(now)),
            human_ms(f.bound_ms(args.max_age_ms))
        ),
        None => format!(
            "stale:{} never observed, max {}",
            args.id(),
            human_ms(args.max_age_ms)
        ),
    }
}

fn unknown_answer(
    args: &FactArgs,
    fact: Option<&Fact>,
    now: u64,
    extra: Map<String, Value>,
) -> Value {
    let mut v = json!({
        "status": "unknown",
        "reason": stale_reason(args, fact, now),
        "fact": fact.map(|f| stale_fact(f, now)),
    });
    if let Some(o) = v.as_object_mut() {
        o.extend(extra);
    }
    v
}

fn invalid(title: &str, why: String) -> Outcome {
    Outcome::failed(Problem::new(ErrorKind::Validation, title).with_detail(why))
}

fn store_failure(e: impl std::fmt::Display) -> Outcome {
    Outcome::failed(
        Problem::new(ErrorKind::Runtime, "Fact store failure").with_detail(e.to_string()),
    )
}

/// The `call: fact` function.
pub struct FactFunction<S: DocStore> {
    facts: Facts<S>,
}

impl<S: DocStore> FactFunction<S> {
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        providers: Option<Arc<dyn ProviderReads>>,
    ) -> FactFunction<S> {
        FactFunction {
            facts: Facts::new(store, clock, providers),
        }
    }
}

impl<S: DocStore> Function for FactFunction<S> {
    /// A read may go to a provider or hold for minutes: it runs after the barrier, like HTTP.
    fn is_local(&self) -> bool {
        false
    }

    fn invoke(&self, call: Call<'_>, args: Value) -> FunctionResult {
        let facts = self.facts.clone();
        let key = call.idempotency_key.to_string();
        Box::pin(async move {
            let args = match FactArgs::parse(&args) {
                Ok(a) => a,
                Err(why) => return invalid("Invalid fact arguments", why),
            };
            match facts.read(&args, &key).await {
                Ok(v) => Outcome::ok(v),
                Err(e) => store_failure(e),
            }
        })
    }
}

/// The `call: fact_put` function: `with: {entity, name, value, observed_at?, source?, ttl?}`
/// records an observation a flow made (default time: now; default source: `flow`). Answers
/// `{stored, fact}`; `stored: false` when a newer observation was kept.
pub struct FactPutFunction<S: DocStore> {
    facts: Facts<S>,
}

impl<S: DocStore> FactPutFunction<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> FactPutFunction<S> {
        FactPutFunction {
            facts: Facts::new(store, clock, None),
        }
    }
}

fn parse_put(v: &Value, now: u64) -> Result<Observation, String> {
    let obj = v.as_object().ok_or(
        "`call: fact_put` takes `with: {entity, name, value, observed_at?, source?, ttl?}`",
    )?;
    check_keys(
        obj,
        &["entity", "name", "value", "observed_at", "source", "ttl"],
        "`call: fact_put`",
    )?;
    let observed_at_ms = match obj.get("observed_at") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or("`observed_at` must be epoch milliseconds")?,
        Some(Value::String(s)) => baton_core::time::parse_time_ms(s)
            .ok_or_else(|| format!("`observed_at`: `{s}` is not an RFC 3339 time"))?,
        Some(_) => return Err("`observed_at` must be an RFC 3339 time or epoch ms".into()),
    };
    Ok(Observation {
        entity: check_name("entity", obj.get("entity"), false)?,
        name: check_name("name", obj.get("name"), true)?,
        value: obj.get("value").cloned().ok_or("`value` is required")?,
        observed_at_ms,
        source: opt_string(obj, "source")?.unwrap_or_else(|| "flow".into()),
        ttl_ms: obj
            .get("ttl")
            .map(|t| duration_ms(t).map_err(|e| format!("`ttl`: {e}")))
            .transpose()?,
    })
}

impl<S: DocStore> Function for FactPutFunction<S> {
    /// Other instances read the fact at once: it is written after the barrier, like any effect.
    fn is_local(&self) -> bool {
        false
    }

    fn invoke(&self, _call: Call<'_>, args: Value) -> FunctionResult {
        let facts = self.facts.clone();
        Box::pin(async move {
            let now = facts.clock.now_ms();
            let obs = match parse_put(&args, now) {
                Ok(o) => o,
                Err(why) => return invalid("Invalid fact_put arguments", why),
            };
            match facts.record(obs).await {
                Ok(r) => Outcome::ok(json!({
                    "stored": r.stored,
                    "fact": r.fact.describe(facts.clock.now_ms()),
                })),
                Err(FactError::Invalid(why)) => invalid("Invalid fact_put arguments", why),
                Err(FactError::Store(e)) => store_failure(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_needs_what_it_acts_on() {
        let base = json!({"entity": "store-01", "name": "stock", "max_age": "15m"});
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            FactArgs::parse(&v)
        };
        assert!(with(json!({"on_stale": "refresh"})).is_err());
        assert!(with(json!({"on_stale": "hold"})).is_err());
        assert!(with(json!({"on_stale": "default"})).is_err());
        assert!(with(json!({"on_stale": "default", "default": 0})).is_ok());
        assert!(with(json!({"on_stale": "hold", "hold_for": "10m"})).is_ok());
        assert!(with(json!({"on_stale": "later"})).is_err());
        assert!(with(json!({"on_stale": "hold", "hold_for": "1m", "oops": 1})).is_err());
        let e = FactArgs::parse(
            &json!({"entity": "a/b", "name": "n", "max_age": "1m", "on_stale": "default", "default": 1}),
        );
        assert!(e.is_err());
        let src = with(json!({"on_stale": "refresh", "source": {"provider": "inventory", "operation": "stock", "args": {"store": "s"}, "value": ".stock[$args.sku]"}}))
            .expect("valid");
        assert_eq!(src.max_age_ms, 15 * 60_000);
        assert!(src.source.is_some());
    }

    #[test]
    fn a_source_bound_narrows_the_reader_bound() {
        let f = Fact {
            entity: "s".into(),
            name: "n".into(),
            value: json!(1),
            observed_at_ms: 1_000,
            source: "x".into(),
            recorded_at_ms: 1_000,
            lateness_ms: 0,
            ttl_ms: Some(60_000),
            version: 1,
        };
        assert!(f.is_fresh(3_600_000, 61_000));
        assert!(
            !f.is_fresh(3_600_000, 61_001),
            "the source's own bound holds"
        );
        assert!(!f.is_fresh(10_000, 20_000));
    }
}
