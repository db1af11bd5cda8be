//! Shadow runs: a candidate flow version runs beside a live decision (another flow version, or a
//! legacy system's decision posted through the API), performs reads, records but does not perform
//! effects, and its output is compared with the live one field by field.
//!
//! Durable records (documents in the store):
//! - kind `shadow`, id = registration name: what shadows what ([`Registration`]);
//! - kind `shadow_run`, id = instance id: the mark that an instance is a shadow. It is written
//!   before the instance's first journal entry, and a driver that resumes an instance looks for
//!   it, so a shadow instance never performs an effect, even after a crash and a restart;
//! - kind `shadow_case/<name>`, id = case id (the live instance id, or the legacy case id): the
//!   two sides of one comparison and, once both have ended, the comparison itself.
//!
//! The read/effect classification ([`classify`]) is shared with `baton replay`
//! ([`crate::replay`]).
//!
//! The kernel knows none of this: the driver consults an instance's [`EffectPolicy`] before it
//! performs each effect, and the hooks of [`Shadows::hooks`] (installed by the façade as the
//! runtime's [`StartHooks`]) hear of live starts and resumes and give a resumed shadow its
//! policy back.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use baton_core::{
    EffectCall, EffectKey, EffectRequest, ErrorKind, FlowRef, InstanceId, JournalEntry, Outcome,
    Problem,
};
use baton_store::{Collection, Doc, DocQuery, DocStore, DocWrite, Expect, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod replay;

use baton_api::{
    BoxFuture, Clock, EffectPolicy, InstanceEnd, Instances, Intercept, StartError, StartHooks,
};
use baton_core::functions::names::PROVIDER as PROVIDER_FUNCTION;
use baton_provider::Catalog;

/// Registrations (id = name).
pub const SHADOW_KIND: &str = "shadow";
/// The durable mark of a shadow instance (id = instance id).
pub const SHADOW_RUN_KIND: &str = "shadow_run";

/// The document kind of a registration's cases.
pub fn case_kind(name: &str) -> String {
    format!("shadow_case/{name}")
}

/// What an effect request does to the world, as far as shadows and replays are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads only: performed by a shadow.
    Read,
    /// Only waits (a timer, an event listener): changes nothing.
    Wait,
    /// Changes the world, or is not known not to: recorded, not performed.
    Effect,
}

fn is_read_method(method: &str) -> bool {
    method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")
}

/// Whether a catalogue operation named by `{provider, operation}` only reads: its method, and
/// that of the same operation of every fallback the provider layer may send it to instead, is
/// GET or HEAD. Unknown providers or operations are not known to only read.
fn operation_only_reads(args: &Value, providers: Option<&Catalog>) -> bool {
    let Some(catalog) = providers else {
        return false;
    };
    let (Some(provider), Some(operation)) = (
        args.get("provider").and_then(Value::as_str),
        args.get("operation").and_then(Value::as_str),
    ) else {
        return false;
    };
    let reads = |provider: &str| {
        catalog
            .providers
            .get(provider)
            .and_then(|p| p.operations.get(operation))
            .is_some_and(|op| is_read_method(&op.spec.method))
    };
    reads(provider)
        && catalog.providers.get(provider).is_some_and(|p| {
            p.spec
                .fallbacks
                .iter()
                .all(|f| !catalog.providers.contains_key(f) || reads(f))
        })
}

/// Classifies an effect request. Anything not known to be a read or a wait is an effect: a
/// shadow errs on the side of not touching the world.
pub fn classify(request: &EffectRequest, providers: Option<&Catalog>) -> Access {
    match request {
        EffectRequest::Timer { .. } | EffectRequest::Listen { .. } => Access::Wait,
        EffectRequest::Http(req) if is_read_method(&req.method) => Access::Read,
        EffectRequest::Http(_) | EffectRequest::Emit { .. } => Access::Effect,
        EffectRequest::Function { name, args } if name == PROVIDER_FUNCTION => {
            if operation_only_reads(args, providers) {
                Access::Read
            } else {
                Access::Effect
            }
        }
        // A fact read refreshes through its `source` operation when the fact is too old: it is a
        // read only when that operation (and its fallbacks) only read. Without a catalogue no
        // refresh can be sent.
        EffectRequest::Function { name, args } if name == "fact" => {
            match (args.get("source"), providers) {
                (Some(source), Some(_)) if !operation_only_reads(source, providers) => {
                    Access::Effect
                }
                _ => Access::Read,
            }
        }
        EffectRequest::Function { name, .. }
            if baton_core::builtin_function(name).is_some_and(|b| b.reads_only) =>
        {
            Access::Read
        }
        EffectRequest::Function { .. } => Access::Effect,
    }
}

/// The request an effect would have made, for the journal and reports: method, target and body,
/// never credentials (resolved `auth` is left out, and of headers only the names are kept, since
/// a flow may set `Authorization` itself).
pub fn describe(request: &EffectRequest) -> Value {
    match request {
        EffectRequest::Http(req) => json!({
            "effect": "http",
            "method": req.method,
            "uri": req.uri,
            "query": req.query,
            "headers": req.headers.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            "body": req.body,
        }),
        EffectRequest::Function { name, args } => {
            json!({"effect": "function", "function": name, "args": args})
        }
        EffectRequest::Emit { event } => json!({"effect": "emit", "event": event}),
        EffectRequest::Timer { fire_at_ms } => json!({"effect": "timer", "fire_at_ms": fire_at_ms}),
        EffectRequest::Listen { filters } => json!({"effect": "listen", "filters": filters}),
    }
}

/// The answer a flow gets for an effect its shadow did not perform: an object that says so,
/// with the request it would have made. Flows that want to tell can test `.baton_shadow`.
pub fn stand_in(call: &EffectCall) -> Value {
    json!({
        "baton_shadow": {
            "performed": false,
            "request": describe(&call.request),
        }
    })
}

/// What the journal says about an effect that was not performed (an `effect_note`).
pub fn not_performed_note(call: &EffectCall, mode: &str) -> Value {
    json!({
        "shadow": "not_performed",
        "mode": mode,
        "request": describe(&call.request),
    })
}

/// Outcomes of a recorded run, by effect key: the request that was made and how it ended.
#[derive(Debug, Default)]
pub struct Recorded {
    pub calls: HashMap<EffectKey, (EffectRequest, Outcome)>,
}

/// How a driver treats the effects of an instance that must not touch the world.
pub(crate) enum Policy {
    /// A shadow run: reads and waits are performed; effects answered with a stand-in.
    Shadow,
    /// A replay of a recorded instance with a new version (see [`crate::replay`]).
    Replay {
        recorded: Arc<Recorded>,
        perform_reads: bool,
    },
}

/// A [`Policy`] with the catalogue its classification reads: what the driver consults.
pub(crate) struct Held {
    pub policy: Policy,
    pub catalog: Option<Arc<Catalog>>,
}

impl EffectPolicy for Held {
    fn intercept(&self, call: &EffectCall) -> Intercept {
        self.policy.intercept(call, self.catalog.as_deref())
    }
}

impl Policy {
    pub(crate) fn intercept(&self, call: &EffectCall, providers: Option<&Catalog>) -> Intercept {
        let access = classify(&call.request, providers);
        match self {
            Policy::Shadow => match access {
                Access::Read | Access::Wait => Intercept::Perform,
                Access::Effect => Intercept::Answer {
                    outcome: Outcome::ok(stand_in(call)),
                    note: not_performed_note(call, "shadow"),
                },
            },
            Policy::Replay {
                recorded,
                perform_reads,
            } => {
                if let EffectRequest::Function { name, .. } = &call.request
                    && baton_core::builtin_function(name).is_some_and(|b| b.pure)
                {
                    return Intercept::Perform;
                }
                if let Some((request, outcome)) = recorded.calls.get(&call.key)
                    && same_request(request, &call.request)
                {
                    return Intercept::Answer {
                        outcome: outcome.clone(),
                        note: json!({"replay": "recorded", "outcome": outcome.label()}),
                    };
                }
                match (access, &call.request) {
                    // Time does not pass in a replay: a timer fires at once.
                    (Access::Wait, EffectRequest::Timer { .. }) => Intercept::Answer {
                        outcome: Outcome::ok(Value::Null),
                        note: json!({"replay": "timer_fired_at_once"}),
                    },
                    (Access::Read, _) if *perform_reads => Intercept::Perform,
                    (Access::Read | Access::Wait, _) => Intercept::Answer {
                        outcome: Outcome::failed(
                            Problem::new(ErrorKind::Communication, "Not in the recorded journal")
                                .with_detail(
                                    "the replay has no recorded answer for this read and may not perform it (give --providers)",
                                ),
                        ),
                        note: json!({"replay": "missing", "request": describe(&call.request)}),
                    },
                    (Access::Effect, _) => Intercept::Answer {
                        outcome: Outcome::ok(stand_in(call)),
                        note: not_performed_note(call, "replay"),
                    },
                }
            }
        }
    }
}

/// Requests are the same when they would do the same thing: resolved credentials do not count.
fn same_request(a: &EffectRequest, b: &EffectRequest) -> bool {
    match (a, b) {
        (EffectRequest::Http(x), EffectRequest::Http(y)) => {
            let mut x = x.clone();
            x.auth = None;
            let mut y = y.clone();
            y.auth = None;
            x == y
        }
        _ => a == b,
    }
}

/// What a candidate is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LiveSide {
    /// Every instance of this flow version that starts gets a shadow.
    Flow {
        namespace: String,
        name: String,
        version: String,
    },
    /// A legacy system's decisions, posted with their inputs.
    Legacy { system: String },
}

/// A candidate flow version registered as the shadow of a live decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    pub candidate: FlowRef,
    pub live: LiveSide,
    /// Leaf paths to compare (`.action`, `.route.driver`); empty = every field.
    #[serde(default)]
    pub fields: Vec<String>,
    pub created_by: String,
    pub created_at_ms: u64,
    /// Set once the shadow is stopped: no new case starts; its cases and report stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_by: Option<String>,
}

/// Why a shadow request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShadowError {
    #[error("no shadow registration `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// The registrations, cached: every start asks whether it has a shadow, and must not pay a
/// store read for it.
#[derive(Default)]
pub(crate) struct Registrations {
    loaded: RwLock<Option<Arc<Vec<Registration>>>>,
}

impl Registrations {
    fn cached(&self) -> Option<Arc<Vec<Registration>>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a start must keep its input for a shadow (false only when surely not).
    pub(crate) fn may_shadow_starts(&self) -> bool {
        self.cached().is_none_or(|r| {
            r.iter()
                .any(|r| r.retired_at_ms.is_none() && matches!(r.live, LiveSide::Flow { .. }))
        })
    }

    async fn get<S: DocStore>(&self, store: &S) -> Result<Arc<Vec<Registration>>, StoreError> {
        if let Some(r) = self.cached() {
            return Ok(r);
        }
        self.reload(store).await
    }

    async fn reload<S: DocStore>(&self, store: &S) -> Result<Arc<Vec<Registration>>, StoreError> {
        let mut out = Vec::new();
        // Read as JSON and decoded one by one: an unreadable registration is skipped (and
        // logged), it does not hide the others.
        let registrations: Collection<Value> = Collection::new(SHADOW_KIND);
        let mut pages = registrations.pages(store, DocQuery::default());
        while let Some(page) = pages.next_page().await? {
            for d in page {
                match serde_json::from_value::<Registration>(d.value) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        tracing::warn!(shadow = %d.id, error = %e, "unreadable shadow registration")
                    }
                }
            }
        }
        let out = Arc::new(out);
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Some(out.clone());
        Ok(out)
    }
}

/// The deterministic id of a case's shadow instance, so that re-posting a case finds it.
fn shadow_instance_id(name: &str, case: &str) -> InstanceId {
    let digest =
        baton_core::idempotency_key(&InstanceId(name.to_string()), &EffectKey(case.to_string()));
    InstanceId(format!("shadow-{}", &digest[..24]))
}

/// The rules that fired in an instance's `call: decide` steps, from their journaled traces:
/// `Decision name: rule-id (annotation)`, in journal order.
pub fn fired_rules(journal: &[JournalEntry]) -> Vec<String> {
    let mut out = Vec::new();
    for e in journal {
        let JournalEntry::EffectCompleted {
            outcome: Outcome::Ok { value },
            ..
        } = e
        else {
            continue;
        };
        for (name, rule) in rules_of(value) {
            let line = format!("{name}: {rule}");
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// `(decision name, rule id)` of every fired rule in one `decide` result.
fn rules_of(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(decisions) = value.pointer("/trace/decisions").and_then(Value::as_array) else {
        return out;
    };
    for d in decisions {
        let name = d["name"].as_str().unwrap_or("?").to_string();
        for t in d["tables"].as_array().into_iter().flatten() {
            for r in t["fired"].as_array().into_iter().flatten() {
                if let Some(id) = r["id"].as_str() {
                    // `decide` adds the author's annotation of each fired rule beside the trace.
                    let rule = match value["annotations"][id].as_str() {
                        Some(note) => format!("{id} ({note})"),
                        None => id.to_string(),
                    };
                    out.push((name.clone(), rule));
                }
            }
        }
    }
    out
}

/// The decisions of a journal by effect key: output and fired rules of each `decide` result.
pub fn decisions(journal: &[JournalEntry]) -> BTreeMap<String, (Value, Vec<String>)> {
    let mut out = BTreeMap::new();
    for e in journal {
        if let JournalEntry::EffectCompleted {
            key,
            outcome: Outcome::Ok { value },
            ..
        } = e
            && value.pointer("/trace/decisions").is_some()
        {
            let rules = rules_of(value)
                .into_iter()
                .map(|(n, r)| format!("{n}: {r}"))
                .collect();
            out.insert(
                key.0.clone(),
                (value.get("output").cloned().unwrap_or(Value::Null), rules),
            );
        }
    }
    out
}

/// A JSON value's leaves by path (`.a.b[2]`); empty objects and arrays are leaves too.
pub fn leaves(v: &Value) -> BTreeMap<String, Value> {
    fn walk(path: String, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let plain = !k.is_empty()
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !k.starts_with(|c: char| c.is_ascii_digit());
                    let p = if plain {
                        format!("{path}.{k}")
                    } else {
                        format!("{path}[{}]", Value::String(k.clone()))
                    };
                    walk(p, x, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(format!("{path}[{i}]"), x, out);
                }
            }
            _ => {
                out.insert(if path.is_empty() { ".".into() } else { path }, v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(String::new(), v, &mut out);
    out
}

/// One field where two outputs differ (`null` on a side where the field is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub field: String,
    pub live: Value,
    pub shadow: Value,
}

/// Compares two outputs leaf by leaf, over `fields` (paths or their prefixes) when given.
pub fn compare(live: &Value, shadow: &Value, fields: &[String]) -> Vec<FieldDiff> {
    let wanted = |p: &str| {
        fields.is_empty()
            || fields.iter().any(|f| {
                let f = if f.starts_with('.') {
                    f.clone()
                } else {
                    format!(".{f}")
                };
                p == f || p.starts_with(&format!("{f}.")) || p.starts_with(&format!("{f}["))
            })
    };
    let l = leaves(live);
    let s = leaves(shadow);
    let mut paths: Vec<&String> = l.keys().chain(s.keys()).filter(|p| wanted(p)).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter_map(|p| {
            let a = l.get(p).cloned().unwrap_or(Value::Null);
            let b = s.get(p).cloned().unwrap_or(Value::Null);
            (a != b).then(|| FieldDiff {
                field: p.clone(),
                live: a,
                shadow: b,
            })
        })
        .collect()
}

/// A legacy system's decision, as posted.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LegacyDecision {
    /// The case id, unique within the registration: posting it again is idempotent.
    pub case: String,
    /// What the legacy system decided on (the shadow's input).
    pub inputs: Value,
    /// What it decided (compared with the shadow's output).
    pub decision: Value,
    /// When it decided (ms since the Unix epoch); the case's time in reports. Default: now.
    #[serde(default)]
    pub decided_at_ms: Option<u64>,
    /// Who or what decided (a dispatcher's name), kept with the case.
    #[serde(default)]
    pub decided_by: Option<String>,
}

/// A report over a period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub name: String,
    pub candidate: Option<FlowRef>,
    pub live: Option<LiveSide>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
    /// Cases in the period.
    pub cases: u64,
    /// Cases whose two sides have ended and been compared.
    pub compared: u64,
    pub agreed: u64,
    /// `agreed / compared`; absent when nothing was compared.
    pub agreement_rate: Option<f64>,
    /// Differences per field.
    pub fields: BTreeMap<String, u64>,
    /// Effects the shadows recorded but did not perform.
    pub effects_not_performed: u64,
    pub differences: Vec<CaseDiff>,
}

/// A case where the shadow disagreed, field by field, with why each side decided as it did.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDiff {
    pub case: String,
    pub at_ms: u64,
    /// What both sides decided on.
    pub input: Value,
    pub live_instance: Option<String>,
    pub shadow_instance: Option<String>,
    pub differences: Vec<FieldDiff>,
    /// Rules that fired in the shadow's decisions, and in the live flow's (none for a legacy
    /// system, which keeps its reasons to itself).
    pub why: Value,
}

/// The shadow feature's state over one runtime: one per runtime (the façade keeps it with the
/// runtime), shared by every [`Shadows`] handle and by its hooks.
pub struct Shared<S: Store> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    /// The kernel: starts instances under a policy, resolves flow versions.
    instances: Arc<dyn Instances>,
    /// The provider catalogue, for telling a provider read from an effect.
    providers: Option<Arc<Catalog>>,
    /// Registrations, cached for the start of every instance.
    shadows: Registrations,
}

impl<S: Store> Shared<S> {
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        instances: Arc<dyn Instances>,
        providers: Option<Arc<Catalog>>,
    ) -> Shared<S> {
        Shared {
            store,
            clock,
            instances,
            providers,
            shadows: Registrations::default(),
        }
    }

    fn policy(&self, policy: Policy) -> Arc<dyn EffectPolicy> {
        Arc::new(Held {
            policy,
            catalog: self.providers.clone(),
        })
    }
}

/// The public face of shadow runs over a runtime: registrations, legacy decisions and reports.
pub struct Shadows<S: Store> {
    shared: Arc<Shared<S>>,
}

impl<S: Store> Clone for Shadows<S> {
    fn clone(&self) -> Self {
        Shadows {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Store> Shadows<S> {
    /// The handle over the feature's state of one runtime.
    pub fn new(shared: Arc<Shared<S>>) -> Shadows<S> {
        Shadows { shared }
    }

    /// The hooks the runtime must call on live starts and resumes.
    pub fn hooks(&self) -> Arc<dyn StartHooks> {
        Arc::new(ShadowHooks {
            shared: self.shared.clone(),
        })
    }

    /// The end hook that records each side of a case as it ends and compares them.
    pub fn end_hook(&self) -> baton_api::EndHook {
        let shared = self.shared.clone();
        Arc::new(move |end: InstanceEnd| {
            let shared = shared.clone();
            Box::pin(async move {
                if let Err(e) = on_end(&shared, &end).await {
                    tracing::warn!(instance = %end.id, error = %e, "could not record a shadow comparison");
                }
            })
        })
    }
}

/// What the kernel calls on live starts and resumes (see [`StartHooks`]).
struct ShadowHooks<S: Store> {
    shared: Arc<Shared<S>>,
}

impl<S: Store> StartHooks for ShadowHooks<S> {
    fn wants_live_starts(&self) -> bool {
        self.shared.shadows.may_shadow_starts()
    }

    fn live_started<'a>(
        &'a self,
        flow: &'a FlowRef,
        id: &'a InstanceId,
        input: Value,
    ) -> BoxFuture<'a, ()> {
        Box::pin(after_live_start(&self.shared, flow, id, input))
    }

    fn resume_policy<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn EffectPolicy>>, StoreError>> {
        Box::pin(async move {
            Ok(is_shadow(&self.shared, id)
                .await?
                .then(|| self.shared.policy(Policy::Shadow)))
        })
    }

    fn live_resumed<'a>(
        &'a self,
        flow: &'a FlowRef,
        id: &'a InstanceId,
        started_at_ms: u64,
        input: &'a Value,
    ) -> BoxFuture<'a, ()> {
        Box::pin(after_live_resume(
            &self.shared,
            flow,
            id,
            started_at_ms,
            input,
        ))
    }
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("shadow {id}: {e}"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl<S: Store> Shadows<S> {
    /// Registers `candidate` (namespace, name, version of a registered flow) as the shadow of
    /// `live`. Registering a name again with the same content is idempotent; with another content
    /// it is a conflict.
    pub async fn register(
        &self,
        name: &str,
        candidate: (&str, &str, &str),
        live: LiveSide,
        fields: Vec<String>,
        by: &str,
    ) -> Result<(Registration, bool), ShadowError> {
        if !valid_name(name) {
            return Err(ShadowError::Invalid(format!(
                "a shadow's name has 1 to 100 letters, digits, `-`, `_` or `.`; `{name}` does not"
            )));
        }
        let program = self
            .shared
            .instances
            .resolve_flow(candidate.0, candidate.1, candidate.2)
            .ok_or_else(|| {
                ShadowError::Invalid(format!(
                    "no registered flow {}/{}:{} to run in shadow",
                    candidate.0, candidate.1, candidate.2
                ))
            })?;
        match &live {
            LiveSide::Flow {
                namespace,
                name: flow,
                version,
            } => {
                let live_program = self
                    .shared
                    .instances
                    .resolve_flow(namespace, flow, version)
                    .ok_or_else(|| {
                        ShadowError::Invalid(format!(
                            "no registered live flow {namespace}/{flow}:{version}"
                        ))
                    })?;
                if live_program.flow.hash == program.flow.hash {
                    return Err(ShadowError::Invalid(
                        "a flow version cannot shadow itself".into(),
                    ));
                }
                if version == "latest" {
                    return Err(ShadowError::Invalid(
                        "name the live flow's exact version, not `latest`".into(),
                    ));
                }
            }
            LiveSide::Legacy { system } if system.trim().is_empty() => {
                return Err(ShadowError::Invalid(
                    "name the legacy system (`live: {legacy: NAME}`)".into(),
                ));
            }
            LiveSide::Legacy { .. } => {}
        }
        for f in &fields {
            if f.trim().is_empty() {
                return Err(ShadowError::Invalid("an empty field path".into()));
            }
        }
        let reg = Registration {
            name: name.to_string(),
            candidate: program.flow.clone(),
            live,
            fields,
            created_by: by.to_string(),
            created_at_ms: self.shared.clock.now_ms(),
            retired_at_ms: None,
            retired_by: None,
        };
        let write = self
            .shared
            .store
            .put_doc(DocWrite {
                kind: SHADOW_KIND.into(),
                id: name.to_string(),
                status: "active".into(),
                at_ms: reg.created_at_ms,
                body: serde_json::to_value(&reg).map_err(|e| corrupt(name, e))?,
                expect: Expect::Absent,
            })
            .await;
        let created = match write {
            Ok(_) => true,
            Err(StoreError::DocConflict { .. }) => {
                let old = self.get(name).await?;
                if old.candidate != reg.candidate
                    || old.live != reg.live
                    || old.fields != reg.fields
                {
                    return Err(ShadowError::Conflict(format!(
                        "a shadow named `{name}` is already registered with another candidate, live side or fields"
                    )));
                }
                if old.retired_at_ms.is_some() {
                    return Err(ShadowError::Conflict(format!(
                        "the shadow `{name}` was stopped; register the trial again under a new name"
                    )));
                }
                self.shared.shadows.reload(&*self.shared.store).await?;
                return Ok((old, false));
            }
            Err(e) => return Err(e.into()),
        };
        self.shared.shadows.reload(&*self.shared.store).await?;
        Ok((reg, created))
    }

    /// Stops a shadow: live starts no longer get one and legacy decisions are refused; its
    /// cases, running shadows and report stay. Stopping it again changes nothing (false).
    pub async fn retire(&self, name: &str, by: &str) -> Result<(Registration, bool), ShadowError> {
        for _ in 0..8 {
            let doc = self
                .shared
                .store
                .doc(SHADOW_KIND, name)
                .await?
                .ok_or_else(|| ShadowError::NotFound(name.to_string()))?;
            let mut reg: Registration =
                serde_json::from_value(doc.body).map_err(|e| corrupt(name, e))?;
            if reg.retired_at_ms.is_some() {
                return Ok((reg, false));
            }
            let now = self.shared.clock.now_ms();
            reg.retired_at_ms = Some(now);
            reg.retired_by = Some(by.to_string());
            let write = self
                .shared
                .store
                .put_doc(DocWrite {
                    kind: SHADOW_KIND.into(),
                    id: name.to_string(),
                    status: "retired".into(),
                    at_ms: doc.at_ms,
                    body: serde_json::to_value(&reg).map_err(|e| corrupt(name, e))?,
                    expect: Expect::Version(doc.version),
                })
                .await;
            match write {
                Ok(_) => {
                    self.shared.shadows.reload(&*self.shared.store).await?;
                    return Ok((reg, true));
                }
                Err(StoreError::DocConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ShadowError::Conflict(format!(
            "the shadow `{name}` kept changing"
        )))
    }

    /// Whether an instance is a shadow: `{registration, case}` from its durable mark.
    pub async fn mark_of(&self, id: &InstanceId) -> Result<Option<Value>, ShadowError> {
        if !is_shadow(&self.shared, id).await? {
            return Ok(None);
        }
        Ok(self
            .shared
            .store
            .doc(SHADOW_RUN_KIND, &id.0)
            .await?
            .map(|d| d.body))
    }

    pub async fn get(&self, name: &str) -> Result<Registration, ShadowError> {
        let doc = self
            .shared
            .store
            .doc(SHADOW_KIND, name)
            .await?
            .ok_or_else(|| ShadowError::NotFound(name.to_string()))?;
        Ok(serde_json::from_value(doc.body).map_err(|e| corrupt(name, e))?)
    }

    pub async fn list(&self) -> Result<Vec<Registration>, ShadowError> {
        Ok(self
            .shared
            .shadows
            .reload(&*self.shared.store)
            .await?
            .as_ref()
            .clone())
    }

    /// Records a legacy system's decision and starts the shadow on its inputs. Posting a case
    /// again with the same inputs and decision returns the case (false: not new); with others it
    /// is a conflict.
    pub async fn post_legacy(
        &self,
        name: &str,
        decision: LegacyDecision,
        by: &str,
    ) -> Result<(Value, bool), ShadowError> {
        let reg = self.get(name).await?;
        if reg.retired_at_ms.is_some() {
            return Err(ShadowError::Conflict(format!(
                "the shadow `{name}` was stopped: it takes no new decisions"
            )));
        }
        if !matches!(reg.live, LiveSide::Legacy { .. }) {
            return Err(ShadowError::Invalid(format!(
                "shadow `{name}` compares with a live flow, not with posted decisions"
            )));
        }
        if decision.case.is_empty() || decision.case.len() > 200 {
            return Err(ShadowError::Invalid(
                "a case id has 1 to 200 characters".into(),
            ));
        }
        let now = self.shared.clock.now_ms();
        let at_ms = decision.decided_at_ms.unwrap_or(now);
        if at_ms > baton_core::time::TIME_MAX_MS {
            return Err(ShadowError::Invalid(format!(
                "`decided_at_ms` {at_ms} is not a time (after the year 9999)"
            )));
        }
        let sid = shadow_instance_id(name, &decision.case);
        let kind = case_kind(name);
        let body = json!({
            "registration": name,
            "case": decision.case,
            "input": decision.inputs,
            "posted_by": by,
            "live": {
                "ended": true,
                "status": "completed",
                "output": decision.decision,
                "decided_by": decision.decided_by,
                "rules": [],
            },
            "shadow": {"instance": sid.0, "ended": false},
        });
        let write = self
            .shared
            .store
            .put_doc(DocWrite {
                kind: kind.clone(),
                id: decision.case.clone(),
                status: "running".into(),
                at_ms,
                body,
                expect: Expect::Absent,
            })
            .await;
        let created = match write {
            Ok(_) => true,
            Err(StoreError::DocConflict { .. }) => {
                let old = self
                    .shared
                    .store
                    .doc(&kind, &decision.case)
                    .await?
                    .ok_or_else(|| ShadowError::Conflict("the case is changing".into()))?;
                if old.body["input"] != decision.inputs
                    || old.body["live"]["output"] != decision.decision
                {
                    return Err(ShadowError::Conflict(format!(
                        "case `{}` was posted before with other inputs or another decision",
                        decision.case
                    )));
                }
                false
            }
            Err(e) => return Err(e.into()),
        };
        // A crash after the case was written and before its shadow started is healed here, by
        // posting the case again.
        if self.shared.store.instance(&sid).await?.is_none()
            && let Err(e) = start_shadow(
                &self.shared,
                &reg,
                &decision.case,
                sid.clone(),
                decision.inputs,
            )
            .await
        {
            // Another post of the same case may have started it in between: that is no error.
            let running = self.shared.instances.is_running(&sid);
            if !running && self.shared.store.instance(&sid).await?.is_none() {
                return Err(e.into());
            }
        }
        let doc = self
            .shared
            .store
            .doc(&kind, &decision.case)
            .await?
            .ok_or_else(|| ShadowError::Conflict("the case went away".into()))?;
        Ok((case_view(&doc), created))
    }

    /// One case, as stored.
    pub async fn case(&self, name: &str, case: &str) -> Result<Value, ShadowError> {
        self.get(name).await?;
        let doc = self
            .shared
            .store
            .doc(&case_kind(name), case)
            .await?
            .ok_or_else(|| ShadowError::NotFound(format!("{name} case {case}")))?;
        Ok(case_view(&doc))
    }

    /// The agreement report of a registration over `[since, until)` (case times).
    pub async fn report(
        &self,
        name: &str,
        since_ms: Option<u64>,
        until_ms: Option<u64>,
    ) -> Result<Report, ShadowError> {
        let reg = self.get(name).await?;
        let mut report = Report {
            name: name.to_string(),
            candidate: Some(reg.candidate.clone()),
            live: Some(reg.live.clone()),
            since_ms,
            until_ms,
            ..Report::default()
        };
        let kind = case_kind(name);
        let mut after = since_ms.map(|s| (s, String::new()));
        'pages: loop {
            let page = self
                .shared
                .store
                .docs(
                    &kind,
                    &DocQuery {
                        after: after.clone(),
                        limit: 500,
                        ..DocQuery::default()
                    },
                )
                .await?;
            for d in &page {
                if until_ms.is_some_and(|u| d.at_ms >= u) {
                    break 'pages;
                }
                add_case(&mut report, d);
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some((last.at_ms, last.id.clone())),
                _ => break,
            }
        }
        report.agreement_rate =
            (report.compared > 0).then(|| report.agreed as f64 / report.compared as f64);
        Ok(report)
    }
}

fn case_view(doc: &Doc) -> Value {
    let mut v = doc.body.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), json!(doc.status));
        o.insert("at_ms".into(), json!(doc.at_ms));
    }
    v
}

fn add_case(report: &mut Report, d: &Doc) {
    report.cases += 1;
    report.effects_not_performed += d.body["shadow"]["not_performed"].as_u64().unwrap_or(0);
    if d.status != "compared" {
        return;
    }
    report.compared += 1;
    let diffs: Vec<FieldDiff> =
        serde_json::from_value(d.body["comparison"]["differences"].clone()).unwrap_or_default();
    if diffs.is_empty() {
        report.agreed += 1;
        return;
    }
    for f in &diffs {
        *report.fields.entry(f.field.clone()).or_default() += 1;
    }
    report.differences.push(CaseDiff {
        case: d.id.clone(),
        at_ms: d.at_ms,
        input: d.body["input"].clone(),
        live_instance: d.body["live"]["instance"].as_str().map(str::to_string),
        shadow_instance: d.body["shadow"]["instance"].as_str().map(str::to_string),
        differences: diffs,
        why: json!({
            "shadow": d.body["shadow"]["rules"],
            "live": d.body["live"]["rules"],
        }),
    });
}

/// Marks `id` as a shadow instance of `reg` for `case` (durably), then starts it. Boxed: a
/// start may start shadows, so the futures are recursive.
fn start_shadow<'a, S: Store>(
    shared: &'a Arc<Shared<S>>,
    reg: &'a Registration,
    case: &'a str,
    id: InstanceId,
    input: Value,
) -> Pin<Box<dyn Future<Output = Result<(), StartError>> + Send + 'a>> {
    Box::pin(async move {
        let program = shared.instances.program_for(&reg.candidate).await?;
        shared
            .store
            .put_doc(DocWrite {
                kind: SHADOW_RUN_KIND.into(),
                id: id.0.clone(),
                status: "shadow".into(),
                at_ms: shared.clock.now_ms(),
                body: json!({"registration": reg.name, "case": case}),
                expect: Expect::Any,
            })
            .await?;
        shared
            .instances
            .start_under(Some(id), program, input, shared.policy(Policy::Shadow))
            .await
            .map(|_| ())
    })
}

/// Whether a stored instance is a shadow (its mark is durable; see the module's notes).
async fn is_shadow<S: Store>(shared: &Shared<S>, id: &InstanceId) -> Result<bool, StoreError> {
    // Registrations are never deleted (a stopped one stays): without any, no instance is a
    // shadow, and a resume costs no read of its own.
    if shared.shadows.get(&*shared.store).await?.is_empty() {
        return Ok(false);
    }
    Ok(shared.store.doc(SHADOW_RUN_KIND, &id.0).await?.is_some())
}

/// Called once a live instance's start is durable: starts the shadows registered for its flow
/// version on the same input. A shadow that cannot start is logged; the live start stands.
async fn after_live_start<S: Store>(
    shared: &Arc<Shared<S>>,
    flow: &FlowRef,
    id: &InstanceId,
    input: Value,
) {
    let regs = match shared.shadows.get(&*shared.store).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(instance = %id, error = %e, "cannot read the shadow registrations");
            return;
        }
    };
    for reg in regs
        .iter()
        .filter(|r| r.retired_at_ms.is_none() && shadows_flow(r, flow))
    {
        if let Err(e) = begin_case(shared, reg, id, &input).await {
            tracing::warn!(instance = %id, shadow = %reg.name, error = %e, "the shadow did not start");
        }
    }
}

/// Whether `reg` shadows starts of the live flow version `flow`.
fn shadows_flow(reg: &Registration, flow: &FlowRef) -> bool {
    matches!(&reg.live, LiveSide::Flow { namespace, name, version }
        if namespace == &flow.namespace && name == &flow.name && version == &flow.version)
}

/// Writes the case of live instance `id` under `reg` and starts its shadow (whose id derives from
/// both, so a second attempt finds the first).
async fn begin_case<S: Store>(
    shared: &Arc<Shared<S>>,
    reg: &Registration,
    id: &InstanceId,
    input: &Value,
) -> Result<(), StartError> {
    let sid = shadow_id(id, &reg.name);
    let case = json!({
        "registration": reg.name,
        "case": id.0,
        "input": input,
        "live": {"instance": id.0, "ended": false},
        "shadow": {"instance": sid.0, "ended": false},
    });
    shared
        .store
        .put_doc(DocWrite {
            kind: case_kind(&reg.name),
            id: id.0.clone(),
            status: "running".into(),
            at_ms: shared.clock.now_ms(),
            body: case,
            expect: Expect::Absent,
        })
        .await?;
    start_shadow(shared, reg, &id.0, sid, input.clone()).await
}

fn shadow_id(live: &InstanceId, registration: &str) -> InstanceId {
    InstanceId(format!("{}.shadow.{registration}", live.0))
}

/// A live instance resumed after a restart: the live start is acknowledged before its shadows
/// start, so a crash in between (or a registration this process had not seen yet, made by
/// another process on the same store before the live instance started) leaves a live instance
/// without its shadow. The missing case is begun now; a case whose shadow never made its first
/// entry gets its shadow. A registration made after the live instance started does not apply to
/// it, and nothing here starts twice: the case is written only if absent, and a shadow only if
/// the store has no instance of its id.
async fn after_live_resume<S: Store>(
    shared: &Arc<Shared<S>>,
    flow: &FlowRef,
    id: &InstanceId,
    started_at_ms: u64,
    input: &Value,
) {
    let regs = match shared.shadows.get(&*shared.store).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(instance = %id, error = %e, "cannot read the shadow registrations");
            return;
        }
    };
    for reg in regs.iter().filter(|r| {
        r.retired_at_ms.is_none() && r.created_at_ms <= started_at_ms && shadows_flow(r, flow)
    }) {
        let begun = match shared.store.doc(&case_kind(&reg.name), &id.0).await {
            Ok(None) => begin_case(shared, reg, id, input).await,
            Ok(Some(_)) => {
                let sid = shadow_id(id, &reg.name);
                match shared.store.instance(&sid).await {
                    Ok(None) => start_shadow(shared, reg, &id.0, sid, input.clone()).await,
                    Ok(Some(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = begun {
            tracing::warn!(instance = %id, shadow = %reg.name, error = %e, "the shadow did not start after the restart");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SideName {
    Live,
    Shadow,
}

async fn on_end<S: Store>(shared: &Arc<Shared<S>>, end: &InstanceEnd) -> Result<(), StoreError> {
    // Most runtimes have no registration: their ends cost nothing.
    if shared.shadows.cached().is_some_and(|r| r.is_empty()) {
        return Ok(());
    }
    let regs = shared.shadows.get(&*shared.store).await?;
    let flow = &end.program.flow;
    if regs.iter().any(|r| r.candidate.hash == flow.hash)
        && let Some(mark) = shared.store.doc(SHADOW_RUN_KIND, &end.id.0).await?
    {
        let (Some(name), Some(case)) = (
            mark.body["registration"].as_str(),
            mark.body["case"].as_str(),
        ) else {
            return Err(corrupt(&end.id.0, "a shadow mark without its case"));
        };
        if let Some(reg) = regs.iter().find(|r| r.name == name) {
            record_side(shared, reg, case, SideName::Shadow, &end.id).await?;
        }
        return Ok(());
    }
    for reg in regs.iter() {
        if let LiveSide::Flow {
            namespace,
            name,
            version,
        } = &reg.live
            && namespace == &flow.namespace
            && name == &flow.name
            && version == &flow.version
        {
            record_side(shared, reg, &end.id.0, SideName::Live, &end.id).await?;
        }
    }
    Ok(())
}

/// Writes how one side of a case ended and, when the other has ended too, the comparison.
/// Conditional writes: the two sides may end at the same moment.
async fn record_side<S: Store>(
    shared: &Arc<Shared<S>>,
    reg: &Registration,
    case: &str,
    side: SideName,
    id: &InstanceId,
) -> Result<(), StoreError> {
    let kind = case_kind(&reg.name);
    // A live instance started before its flow had a shadow has no case: nothing to read.
    if shared.store.doc(&kind, case).await?.is_none() {
        return Ok(());
    }
    let rec = shared.store.instance(id).await?;
    let journal = shared.store.journal(id).await?;
    let rules = fired_rules(&journal);
    let not_performed = journal
        .iter()
        .filter(|e| {
            matches!(e, JournalEntry::EffectNote { note, .. } if note["shadow"] == "not_performed")
        })
        .count();
    let (status, output, error) = match rec {
        Some(r) => (
            r.status.as_str().to_string(),
            r.output.unwrap_or(Value::Null),
            r.error.map(|p| json!(p)),
        ),
        None => ("unknown".into(), Value::Null, None),
    };
    let mut state = json!({
        "instance": id.0,
        "ended": true,
        "status": status,
        "output": output,
        "rules": rules,
    });
    if let Some(e) = error {
        state["error"] = e;
    }
    if side == SideName::Shadow {
        state["not_performed"] = json!(not_performed);
    }
    for _ in 0..8 {
        let Some(doc) = shared.store.doc(&kind, case).await? else {
            // A live instance started before its flow had a shadow has no case.
            return Ok(());
        };
        let mut body = doc.body.clone();
        body[match side {
            SideName::Live => "live",
            SideName::Shadow => "shadow",
        }] = state.clone();
        let both = body["live"]["ended"] == true && body["shadow"]["ended"] == true;
        let status = if both {
            let mut diffs = compare(
                &body["live"]["output"],
                &body["shadow"]["output"],
                &reg.fields,
            );
            // A side that faulted (or was cancelled) where the other completed does not agree
            // with it, whatever the compared fields hold (a missing field reads as `null` on
            // both sides).
            if body["live"]["status"] != body["shadow"]["status"] {
                diffs.insert(
                    0,
                    FieldDiff {
                        field: "status".into(),
                        live: body["live"]["status"].clone(),
                        shadow: body["shadow"]["status"].clone(),
                    },
                );
            }
            body["comparison"] = json!({
                "agreed": diffs.is_empty(),
                "differences": diffs,
                "at_ms": shared.clock.now_ms(),
            });
            "compared"
        } else {
            "running"
        };
        match shared
            .store
            .put_doc(DocWrite {
                kind: kind.clone(),
                id: case.to_string(),
                status: status.into(),
                at_ms: doc.at_ms,
                body,
                expect: Expect::Version(doc.version),
            })
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::DocConflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Corrupt(format!(
        "case {case} of shadow {} kept changing",
        reg.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_name_nested_paths() {
        let v = json!({"a": {"b": 1, "c": [true, {"d": null}]}, "odd key": "x", "e": {}});
        let l = leaves(&v);
        assert_eq!(l[".a.b"], json!(1));
        assert_eq!(l[".a.c[0]"], json!(true));
        assert_eq!(l[".a.c[1].d"], Value::Null);
        assert_eq!(l["[\"odd key\"]"], json!("x"));
        assert_eq!(l[".e"], json!({}));
        assert_eq!(leaves(&json!(3))["."], json!(3));
    }

    #[test]
    fn compare_lists_differing_leaves_within_the_fields_asked() {
        let live = json!({"action": "reroute", "driver": "d-1", "eta": "10:40"});
        let shadow = json!({"action": "hold", "driver": "d-1", "eta": "11:40", "extra": 1});
        let all = compare(&live, &shadow, &[]);
        let fields: Vec<&str> = all.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, [".action", ".eta", ".extra"]);
        assert_eq!(all[2].live, Value::Null);
        let some = compare(&live, &shadow, &["action".into(), ".driver".into()]);
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].field, ".action");
        assert_eq!(some[0].shadow, json!("hold"));
    }

    fn http(method: &str) -> EffectRequest {
        EffectRequest::Http(baton_core::HttpRequest {
            method: method.into(),
            uri: "http://127.0.0.1:1/x".into(),
            headers: vec![("Authorization".into(), "Bearer secret-token".into())],
            query: vec![],
            body: None,
            output: Default::default(),
            redirect: false,
            auth: Some(baton_core::HttpAuth::Bearer {
                token: "another-secret".into(),
            }),
        })
    }

    #[test]
    fn classification_reads_waits_and_effects() {
        assert_eq!(classify(&http("GET"), None), Access::Read);
        assert_eq!(classify(&http("head"), None), Access::Read);
        assert_eq!(classify(&http("POST"), None), Access::Effect);
        assert_eq!(classify(&http("DELETE"), None), Access::Effect);
        assert_eq!(
            classify(&EffectRequest::Timer { fire_at_ms: 1 }, None),
            Access::Wait
        );
        assert_eq!(
            classify(&EffectRequest::Emit { event: json!({}) }, None),
            Access::Effect
        );
        let f = |name: &str| EffectRequest::Function {
            name: name.into(),
            args: json!({}),
        };
        assert_eq!(classify(&f("decide"), None), Access::Read);
        assert_eq!(classify(&f("fact"), None), Access::Read);
        for effect in [
            "fact_put", "claim", "release", "guard", "approval", "openapi", "mine",
        ] {
            assert_eq!(classify(&f(effect), None), Access::Effect, "{effect}");
        }
        // Without a catalogue nobody can say an operation only reads.
        assert_eq!(
            classify(
                &EffectRequest::Function {
                    name: PROVIDER_FUNCTION.into(),
                    args: json!({"provider": "gps", "operation": "position"})
                },
                None
            ),
            Access::Effect
        );
    }

    #[test]
    fn an_operation_reads_only_when_its_fallbacks_read_too() {
        let catalog = baton_provider::load_catalog(
            r#"
providers:
  gps:
    base_url: http://127.0.0.1:1/gps
    fallbacks: [backup]
    operations:
      position: { method: GET, path: /position }
  backup:
    base_url: http://127.0.0.1:1/backup
    operations:
      position: { method: POST, path: /lookup }
  orders:
    base_url: http://127.0.0.1:1/orders
    operations:
      get: { method: GET, path: /order }
      book: { method: POST, path: /book }
"#,
        )
        .expect("the catalogue loads");
        let layer = &catalog;
        let provider = |p: &str, op: &str| EffectRequest::Function {
            name: PROVIDER_FUNCTION.into(),
            args: json!({"provider": p, "operation": op}),
        };
        assert_eq!(
            classify(&provider("orders", "get"), Some(layer)),
            Access::Read
        );
        assert_eq!(
            classify(&provider("orders", "book"), Some(layer)),
            Access::Effect
        );
        // A GET whose fallback is a POST may end up sending the POST.
        assert_eq!(
            classify(&provider("gps", "position"), Some(layer)),
            Access::Effect
        );
        // A fact too old is refreshed through its source: a POST source is an effect.
        let fact = |op: &str| EffectRequest::Function {
            name: "fact".into(),
            args: json!({"entity": "o1", "name": "x", "max_age": "PT1M", "on_stale": "refresh",
                         "source": {"provider": "orders", "operation": op, "args": {}}}),
        };
        assert_eq!(classify(&fact("get"), Some(layer)), Access::Read);
        assert_eq!(classify(&fact("book"), Some(layer)), Access::Effect);
        assert_eq!(classify(&fact("book"), None), Access::Read);
    }

    #[test]
    fn a_not_performed_effect_is_explained_in_one_line() {
        let call = EffectCall::new(
            &InstanceId("i".into()),
            EffectKey("/do/2/tellDriver#call".into()),
            EffectRequest::Function {
                name: PROVIDER_FUNCTION.into(),
                args: json!({"provider": "notify", "operation": "send", "args": {}}),
            },
        );
        let entry = JournalEntry::EffectNote {
            at_ms: 1,
            key: call.key.clone(),
            note: not_performed_note(&call, "shadow"),
        };
        assert_eq!(
            baton_api::explain::explain(&entry).as_deref(),
            Some("not performed (shadow): notify send; the flow got a stand-in answer")
        );
    }

    #[test]
    fn a_described_request_carries_no_secret() {
        let d = describe(&http("POST")).to_string();
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("Authorization"));
    }
}
