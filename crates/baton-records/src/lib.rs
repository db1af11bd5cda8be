//! Decision records: for every decision an instance made, what it decided on and why, read from
//! its journal (the journal is the source of truth; nothing here is stored separately).
//!
//! A decision is a `call: decide` (a DMN evaluation: its output, trace and model are journaled
//! with the answer) or a person's answer to `call: approval` (approve, reject, override; the
//! answer records who, when, why and, for an override, the original and the replacement). The
//! journal does not keep a call's arguments — the decision's inputs, the data a person was shown
//! — because they are a pure function of the entries before it. So the journal is replayed
//! through a fresh core instance, exactly as recovery does, and each request is taken as the
//! core makes it. Secrets are not bound during that replay: a record never carries one.
//!
//! Every read the instance made before a decision (facts with their `observed_at` and source,
//! provider answers with their `as_of`, events, the instance's input) is listed with its age at
//! the time of the decision, and each input of the decision names the reads whose answer holds
//! that very value (where in the answer it was found). That match is by value, and says so:
//! it shows where a number could have come from, which is what an auditor asks first.

use std::collections::HashMap;
use std::sync::Arc;

use baton_core::{
    EffectKey, EffectRequest, Env, FlowRef, InstanceId, JournalEntry, Outcome, Program,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use baton_api::Instances;
use baton_core::functions::names::{APPROVAL, PROVIDER as PROVIDER_FUNCTION};
use baton_core::{Fit, Rebuilt};
use baton_store::{InstanceQuery, Store, StoreError};

/// The function of DMN decisions.
pub const DECIDE_FUNCTION: &str = baton_core::functions::names::DECIDE;

/// What made the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    /// A DMN decision (`call: decide`).
    Rules,
    /// A person's answer to an approval task (or Baton's default at the window's end).
    Approval,
}

/// A read the instance made before a decision, with how old its data was then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Read {
    /// The effect key of the read (`started` for the instance's input).
    pub key: String,
    /// `fact`, `provider`, `http`, `event` or `input`.
    pub kind: String,
    /// Where the data came from: the fact's source, `provider/operation`, the URL, the event's
    /// source and type.
    pub source: String,
    /// When the data was true, as its source says (`observed_at`, `as_of`); else when Baton read it.
    pub observed_at: String,
    pub observed_at_ms: u64,
    /// How old the data was when the decision was made.
    pub age_ms: u64,
    /// `ok`, `stale`, `failed` or `unknown`; a fact's own status when it has one (`fresh`,
    /// `refreshed`, `unknown`…).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
}

/// Where an input's value was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSource {
    /// The read's effect key (see [`DecisionRecord::reads`]).
    pub read: String,
    pub kind: String,
    pub source: String,
    /// JSON Pointer into the read's answer where the same value is.
    pub path: String,
    pub observed_at: String,
    pub age_ms: u64,
}

/// One input of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    pub name: String,
    pub value: Value,
    /// Reads whose answer holds this value, newest first (matched by value).
    #[serde(default)]
    pub sources: Vec<InputSource>,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredRule {
    pub decision: String,
    pub table: String,
    pub hit_policy: String,
    /// 1-based, as DMN tools number rules.
    pub index: u64,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
}

/// The record of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// `<instance>:<effect key>`: unique and stable.
    pub id: String,
    pub instance: String,
    pub kind: DecisionKind,
    /// The task's reference in the flow.
    pub task: String,
    pub key: String,
    pub at: String,
    pub at_ms: u64,
    pub flow: FlowRef,
    /// The DMN decision's version: `{file, hash, name, decision}` (rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Value>,
    /// `ok`, `failed`, `unknown`, `stale`.
    pub outcome: String,
    pub inputs: Vec<DecisionInput>,
    /// Why the inputs are not known (the journal could not be replayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_unavailable: Option<String>,
    /// Every read made before the decision, oldest first.
    pub reads: Vec<Read>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FiredRule>,
    /// What the decision produced (an approval's: the output the flow went on with, or null
    /// when rejected).
    pub output: Value,
    /// The approval's answer: task, title, verdict, by, reason, when, late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    /// An override: original, replacement, who asked and why, who confirmed, when.
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<Value>,
    /// Overrides asked for and refused by the second approver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_overrides: Vec<Value>,
    /// What the override cost, where the flow declares it (`cost:` of the approval, read from
    /// the instance's output once it ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Value>,
    /// The approval that reviewed this decision's output (its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// How that approval went, so this record reads on its own in an export: the verdict, who,
    /// why, when, and the override (who asked, who confirmed) when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Value>,
    /// The decision whose output this approval reviewed (its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviews: Option<String>,
}

/// Every request the instance made, by effect key, as the core makes it again when the
/// journal is replayed. `Err` when the journal does not fit the program.
pub fn replay_requests(
    id: &InstanceId,
    program: &Arc<Program>,
    env: Env,
    journal: &[JournalEntry],
) -> Result<HashMap<EffectKey, EffectRequest>, String> {
    Rebuilt::of(id, program.clone(), env, journal, Fit::Exact)
        .map(|r| r.requests)
        .map_err(|e| e.to_string())
}

/// The task's key an effect key belongs to: the key without its effect suffix (`#call`).
fn task_key(key: &str) -> String {
    key.rsplit_once('#')
        .map_or(key, |(task, _)| task)
        .to_string()
}

/// When a provider's answer says its data was true (`as_of`, `observed_at`), if it says.
fn stamped_at(v: &Value) -> Option<u64> {
    ["as_of", "observed_at"].iter().find_map(|k| {
        v.get(*k)
            .and_then(Value::as_str)
            .and_then(baton_core::time::parse_time_ms)
    })
}

/// A read and the answer it got (kept to find input values in).
struct Seen {
    read: Read,
    value: Value,
}

fn read_of(
    key: &EffectKey,
    at_ms: u64,
    request: Option<&EffectRequest>,
    outcome: &Outcome,
) -> Option<Seen> {
    let (value, status) = match outcome {
        Outcome::Ok { value } => (value.clone(), "ok".to_string()),
        Outcome::Stale { value, .. } => (value.clone(), "stale".to_string()),
        Outcome::Failed { .. } => (Value::Null, "failed".to_string()),
        Outcome::Unknown { .. } => (Value::Null, "unknown".to_string()),
    };
    let stale_at = match outcome {
        Outcome::Stale { observed_at_ms, .. } => Some(*observed_at_ms),
        _ => None,
    };
    let mk = |kind: &str,
              source: String,
              observed: u64,
              status: String,
              fact: Option<String>,
              value: Value| {
        Some(Seen {
            read: Read {
                key: key.0.clone(),
                kind: kind.into(),
                source,
                observed_at: baton_core::time::iso8601_utc(observed),
                observed_at_ms: observed,
                age_ms: 0,
                status,
                fact,
            },
            value,
        })
    };
    if key.is_listen() {
        let source = format!(
            "{} {}",
            value.get("source").and_then(Value::as_str).unwrap_or("?"),
            value.get("type").and_then(Value::as_str).unwrap_or("?")
        );
        let at = value
            .get("time")
            .and_then(Value::as_str)
            .and_then(baton_core::time::parse_time_ms)
            .unwrap_or(at_ms);
        let data = value.get("data").cloned().unwrap_or(value.clone());
        return mk("event", source, at, status, None, data);
    }
    match request? {
        EffectRequest::Function { name, args } if name == "fact" => {
            let f = value.get("fact").filter(|f| f.is_object());
            let source = f
                .and_then(|f| f.get("source"))
                .and_then(Value::as_str)
                .unwrap_or("fact store")
                .to_string();
            let observed = f
                .and_then(|f| f.get("observed_at_ms"))
                .and_then(Value::as_u64)
                .unwrap_or(at_ms);
            let fact = f.map(|f| {
                format!(
                    "{}/{} v{}",
                    f.get("entity").and_then(Value::as_str).unwrap_or("?"),
                    f.get("name").and_then(Value::as_str).unwrap_or("?"),
                    f.get("version").and_then(Value::as_u64).unwrap_or(0)
                )
            });
            let fact = fact.or_else(|| {
                Some(format!(
                    "{}/{}",
                    args.get("entity").and_then(Value::as_str).unwrap_or("?"),
                    args.get("name").and_then(Value::as_str).unwrap_or("?")
                ))
            });
            let st = value
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(status);
            mk("fact", source, observed, st, fact, value)
        }
        EffectRequest::Function { name, args } if name == PROVIDER_FUNCTION => {
            let source = format!(
                "{}/{}",
                args.get("provider").and_then(Value::as_str).unwrap_or("?"),
                args.get("operation").and_then(Value::as_str).unwrap_or("?")
            );
            let observed = stale_at.or_else(|| stamped_at(&value)).unwrap_or(at_ms);
            mk("provider", source, observed, status, None, value)
        }
        EffectRequest::Http(req) => {
            let observed = stale_at.or_else(|| stamped_at(&value)).unwrap_or(at_ms);
            let body = value.get("body").cloned().unwrap_or(value.clone());
            mk(
                "http",
                format!("{} {}", req.method, req.uri),
                observed,
                status,
                None,
                body,
            )
        }
        _ => None,
    }
}

/// Paths in `hay` where `needle` is, shallowest first (at most a few).
fn find_value(hay: &Value, needle: &Value, path: &mut String, found: &mut Vec<String>) {
    if found.len() >= 3 {
        return;
    }
    if hay == needle {
        found.push(if path.is_empty() {
            "/".into()
        } else {
            path.clone()
        });
        return;
    }
    let len = path.len();
    match hay {
        Value::Object(o) => {
            for (k, v) in o {
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                find_value(v, needle, path, found);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push_str(&format!("/{i}"));
                find_value(v, needle, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Values too common to say anything about where they came from: booleans, short strings,
/// and small whole numbers (a count of 7 is found in any answer with a 7 in it).
fn is_telling(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) => false,
        Value::String(s) => s.chars().count() >= 3,
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| f.fract() != 0.0 || f.abs() >= 1000.0),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn sources_of(value: &Value, reads: &[Seen]) -> Vec<InputSource> {
    if !is_telling(value) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for seen in reads.iter().rev() {
        let mut found = Vec::new();
        find_value(&seen.value, value, &mut String::new(), &mut found);
        if let Some(path) = found.into_iter().next() {
            out.push(InputSource {
                read: seen.read.key.clone(),
                kind: seen.read.kind.clone(),
                source: seen.read.source.clone(),
                path,
                observed_at: seen.read.observed_at.clone(),
                age_ms: seen.read.age_ms,
            });
        }
        if out.len() >= 3 {
            break;
        }
    }
    out
}

fn fired_rules(value: &Value) -> Vec<FiredRule> {
    let annotations = value.get("annotations");
    let mut out = Vec::new();
    for d in value["trace"]["decisions"].as_array().into_iter().flatten() {
        for t in d["tables"].as_array().into_iter().flatten() {
            for r in t["fired"].as_array().into_iter().flatten() {
                let id = r["id"].as_str().unwrap_or("").to_string();
                out.push(FiredRule {
                    decision: d["name"].as_str().unwrap_or("").to_string(),
                    table: t["id"].as_str().unwrap_or("").to_string(),
                    hit_policy: t["hit_policy"].as_str().unwrap_or("").to_string(),
                    index: r["index"].as_u64().unwrap_or(0),
                    annotation: annotations
                        .and_then(|a| a.get(&id))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    id,
                });
            }
        }
    }
    out
}

/// Whether `part` equals `whole` or a value inside it.
fn contains(whole: &Value, part: &Value) -> bool {
    let mut found = Vec::new();
    find_value(whole, part, &mut String::new(), &mut found);
    !found.is_empty()
}

/// The shape of an approval's answer (also recognised without a replay).
fn is_approval_answer(v: &Value) -> bool {
    v.get("task").is_some() && v.get("verdict").is_some() && v.get("approved").is_some()
}

fn is_rules_answer(v: &Value) -> bool {
    v.get("trace").is_some_and(|t| t.get("decisions").is_some()) && v.get("output").is_some()
}

/// The records of one instance's decisions, oldest first. `program` is the flow it runs, when
/// known: without it (or when the journal does not fit it) the records are still made from
/// the journal, without the inputs, and say why.
pub fn records(
    id: &InstanceId,
    program: Option<&Arc<Program>>,
    env: Env,
    journal: &[JournalEntry],
) -> Vec<DecisionRecord> {
    let Some(JournalEntry::Started {
        at_ms: started_at,
        flow,
        input,
    }) = journal.first()
    else {
        return Vec::new();
    };
    let replayed = match program {
        Some(p) => replay_requests(id, p, env, journal),
        None => Err("the flow of this instance is not loaded".to_string()),
    };
    let (requests, unavailable) = match replayed {
        Ok(r) => (r, None),
        Err(why) => (HashMap::new(), Some(why)),
    };
    let output_at_end = journal.iter().rev().find_map(|e| match e {
        JournalEntry::Completed { output, .. } => Some(output.clone()),
        _ => None,
    });
    let mut reads: Vec<Seen> = vec![Seen {
        read: Read {
            key: "started".into(),
            kind: "input".into(),
            source: "the instance's input".into(),
            observed_at: baton_core::time::iso8601_utc(*started_at),
            observed_at_ms: *started_at,
            age_ms: 0,
            status: "ok".into(),
            fact: None,
        },
        value: input.clone(),
    }];
    let mut out: Vec<DecisionRecord> = Vec::new();
    for entry in journal {
        let JournalEntry::EffectCompleted {
            at_ms,
            key,
            outcome,
            ..
        } = entry
        else {
            continue;
        };
        let request = requests.get(key);
        let function = match request {
            Some(EffectRequest::Function { name, args }) => Some((name.as_str(), args)),
            _ => None,
        };
        let value = match outcome {
            Outcome::Ok { value } => Some(value),
            _ => None,
        };
        let kind = match (function, value) {
            (Some((DECIDE_FUNCTION, _)), _) => Some(DecisionKind::Rules),
            (Some((APPROVAL, _)), _) => Some(DecisionKind::Approval),
            (None, Some(v)) if unavailable.is_some() && is_rules_answer(v) => {
                Some(DecisionKind::Rules)
            }
            (None, Some(v)) if unavailable.is_some() && is_approval_answer(v) => {
                Some(DecisionKind::Approval)
            }
            _ => None,
        };
        let Some(kind) = kind else {
            if let Some(seen) = read_of(key, *at_ms, request, outcome) {
                reads.push(seen);
            }
            continue;
        };
        for r in &mut reads {
            r.read.age_ms = at_ms.saturating_sub(r.read.observed_at_ms);
        }
        let args = function.map(|(_, a)| a);
        let mut rec = DecisionRecord {
            id: format!("{}:{}", id.0, key.0),
            instance: id.0.clone(),
            kind,
            task: task_key(&key.0),
            key: key.0.clone(),
            at: baton_core::time::iso8601_utc(*at_ms),
            at_ms: *at_ms,
            flow: flow.clone(),
            decision: None,
            outcome: outcome.label().to_string(),
            inputs: Vec::new(),
            inputs_unavailable: unavailable.clone(),
            reads: reads.iter().map(|s| s.read.clone()).collect(),
            rules: Vec::new(),
            output: Value::Null,
            approval: None,
            override_: None,
            refused_overrides: Vec::new(),
            cost: None,
            reviewed_by: None,
            review: None,
            reviews: None,
        };
        let input_of = |name: &str, v: &Value| DecisionInput {
            name: name.to_string(),
            value: v.clone(),
            sources: sources_of(v, &reads),
        };
        match kind {
            DecisionKind::Rules => {
                if let Some(a) = args {
                    if let Some(obj) = a.get("input").and_then(Value::as_object) {
                        rec.inputs = obj.iter().map(|(k, v)| input_of(k, v)).collect();
                    } else if let Some(v) = a.get("input") {
                        rec.inputs = vec![input_of("input", v)];
                    }
                }
                let mut version = value
                    .and_then(|v| v.get("model"))
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                if version.get("file").is_none()
                    && let Some(m) = args.and_then(|a| a.get("model"))
                {
                    version["file"] = m.clone();
                }
                if let Some(d) = args.and_then(|a| a.get("decision")).or_else(|| {
                    value
                        .and_then(|v| v.get("trace"))
                        .and_then(|t| t.get("decision"))
                }) {
                    version["decision"] = d.clone();
                }
                rec.decision = Some(version);
                if let Some(v) = value {
                    rec.rules = fired_rules(v);
                    rec.output = v.get("output").cloned().unwrap_or(Value::Null);
                } else if let Outcome::Failed { problem } = outcome {
                    rec.output = json!({"error": problem.to_value()});
                }
            }
            DecisionKind::Approval => {
                if let Some(data) = args.and_then(|a| a.get("data")) {
                    rec.inputs = vec![input_of("proposed", data)];
                }
                match value {
                    Some(v) => {
                        rec.output = v.get("output").cloned().unwrap_or(Value::Null);
                        let mut answer = serde_json::Map::new();
                        for k in ["task", "verdict", "approved", "by", "reason", "at", "late"] {
                            if let Some(x) = v.get(k) {
                                answer.insert(k.into(), x.clone());
                            }
                        }
                        if let Some(t) = args.and_then(|a| a.get("title")) {
                            answer.insert("title".into(), t.clone());
                        }
                        if let Some(d) = args.and_then(|a| a.get("decision")) {
                            answer.insert("decision".into(), d.clone());
                        }
                        rec.approval = Some(Value::Object(answer));
                        rec.override_ = v.get("override").cloned();
                        rec.refused_overrides = v
                            .get("refused_overrides")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        if rec.override_.is_some()
                            && let Some(ptr) =
                                args.and_then(|a| a.get("cost")).and_then(Value::as_str)
                        {
                            rec.cost = Some(match &output_at_end {
                                Some(o) => o.pointer(ptr).cloned().unwrap_or(Value::Null),
                                None => {
                                    json!({"pending": "the instance has not ended; its cost is read from its output"})
                                }
                            });
                        }
                    }
                    None => {
                        if let Outcome::Failed { problem } = outcome {
                            rec.approval = Some(json!({"error": problem.to_value()}));
                        }
                    }
                }
                // The rules decision whose output this approval was asked about.
                if let Some(data) = args.and_then(|a| a.get("data")).filter(|d| is_telling(d))
                    && let Some(prior) = out.iter_mut().rev().find(|r| {
                        r.kind == DecisionKind::Rules
                            && r.reviewed_by.is_none()
                            && is_telling(&r.output)
                            && contains(data, &r.output)
                    })
                {
                    prior.reviewed_by = Some(key.0.clone());
                    let mut review = rec.approval.clone().unwrap_or_else(|| json!({}));
                    review["key"] = json!(key.0);
                    if let Some(o) = &rec.override_ {
                        review["override"] = json!({
                            "by": o.get("by"), "reason": o.get("reason"),
                            "confirmed_by": o.get("confirmed_by"),
                            "replacement": o.get("replacement"),
                        });
                    }
                    prior.review = Some(review);
                    rec.reviews = Some(prior.key.clone());
                }
            }
        }
        out.push(rec);
    }
    out
}

/// Why decision records could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown instance {0}")]
    UnknownInstance(String),
}

/// The decision records of a store's instances, read from their journals. Cheap to clone.
pub struct DecisionRecords<S: Store> {
    store: Arc<S>,
    /// The kernel: programs by hash, the functions flows may call, the environment, shadows.
    instances: Arc<dyn Instances>,
}

impl<S: Store> Clone for DecisionRecords<S> {
    fn clone(&self) -> Self {
        DecisionRecords {
            store: self.store.clone(),
            instances: self.instances.clone(),
        }
    }
}

impl<S: Store> DecisionRecords<S> {
    pub fn new(store: Arc<S>, instances: Arc<dyn Instances>) -> DecisionRecords<S> {
        DecisionRecords { store, instances }
    }

    /// The program of a flow version for replaying its journals: the registered one, or loaded
    /// from the store's copy. Only replayed, never run, so a flow that calls `provider` loads
    /// even where no provider catalogue is bound (a CLI reading the store).
    async fn program_for_records(&self, flow: &FlowRef) -> Option<Arc<Program>> {
        if let Some(p) = self.instances.program_by_hash(&flow.hash) {
            return Some(p);
        }
        let source = self.store.flow_source(&flow.hash).await.ok()??;
        let mut known = self.instances.function_names();
        known.push(PROVIDER_FUNCTION.to_string());
        let opts = baton_flow::ValidateOptions {
            known_functions: known,
        };
        let loaded = baton_flow::load_flow(&source, &opts).ok()?;
        Some(Arc::new(Program::new(loaded.workflow, loaded.raw, &source)))
    }

    /// The decision records of one instance (see [`records`]).
    pub async fn of(&self, id: &InstanceId) -> Result<Vec<DecisionRecord>, RecordsError> {
        let rec = self
            .store
            .instance(id)
            .await?
            .ok_or_else(|| RecordsError::UnknownInstance(id.0.clone()))?;
        let journal = self.store.journal(id).await?;
        let program = self.program_for_records(&rec.flow).await;
        let env = Env {
            secrets: Value::Object(Default::default()),
            ..self.instances.env()
        };
        Ok(records(id, program.as_ref(), env, &journal))
    }

    /// Decision records made in `[since_ms, until_ms)`, of instances of `flow` (a name) when
    /// given, shadow runs left out, oldest instance last; `each` receives them instance by
    /// instance and answers whether to go on; it is awaited, so an export streams at the pace
    /// of its reader and holds one instance's records at a time. Scans at most `max_instances`
    /// instance summaries; returns how many instances had records and whether the scan stopped
    /// at the bound.
    pub async fn export<F: std::future::Future<Output = bool>>(
        &self,
        since_ms: u64,
        until_ms: u64,
        flow: Option<&str>,
        max_instances: usize,
        mut each: impl FnMut(Vec<DecisionRecord>) -> F,
    ) -> Result<(usize, bool), RecordsError> {
        const PAGE: usize = 200;
        let mut before = None;
        let mut scanned = 0;
        let mut with_records = 0;
        loop {
            let page = self
                .store
                .instances(&InstanceQuery {
                    flow: flow.map(str::to_string),
                    before: before.clone(),
                    limit: PAGE,
                    ..InstanceQuery::default()
                })
                .await?;
            let n = page.len();
            for inst in page {
                before = Some(inst.id.clone());
                scanned += 1;
                if scanned > max_instances {
                    return Ok((with_records, true));
                }
                // Decisions happen between an instance's creation and its last update.
                if inst.created_at_ms >= until_ms || inst.updated_at_ms < since_ms {
                    continue;
                }
                // A shadow's decisions were never acted on (its effects were stand-ins): they
                // are in its shadow's report, not in the audit export of decisions made.
                if self.instances.is_shadow(&inst.id).await? {
                    continue;
                }
                let recs: Vec<DecisionRecord> = self
                    .of(&inst.id)
                    .await?
                    .into_iter()
                    .filter(|r| r.at_ms >= since_ms && r.at_ms < until_ms)
                    .collect();
                if !recs.is_empty() {
                    with_records += 1;
                    if !each(recs).await {
                        return Ok((with_records, false));
                    }
                }
            }
            if n < PAGE {
                return Ok((with_records, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::Instance;

    const FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: records, version: '1.0.0' }
do:
  - stock:
      call: fact
      with: { entity: store-01, name: stock, max_age: 1h }
  - policy:
      call: decide
      with:
        model: policy.dmn
        decision: Reorder
        input:
          stock: ${ .value }
          store: store-01
      output:
        as: .output
  - ask:
      call: approval
      with:
        title: Reorder at store-01
        decision: reorder
        assignees: [ ann ]
        window: PT1H
        data: { order: '${ . }' }
        cost: /cost
  - done:
      set: { cost: { extra: 12.5 } }
"#;

    fn program() -> Arc<Program> {
        let opts = baton_flow::ValidateOptions {
            known_functions: vec!["fact".into(), "decide".into(), "approval".into()],
        };
        let loaded = baton_flow::load_flow(FLOW, &opts).expect("the flow loads");
        Arc::new(Program::new(loaded.workflow, loaded.raw, FLOW))
    }

    /// Runs the flow with the answers given, as the driver would, and returns its journal.
    fn journal(p: &Arc<Program>, id: &InstanceId) -> Vec<JournalEntry> {
        const T0: u64 = 1_700_000_000_000;
        let mut inst = Instance::start(id.clone(), p.clone(), Env::default(), json!({}), T0);
        let mut out = Vec::new();
        let answers = [
            // A fact observed two hours before it was read.
            json!({"value": 4.5, "status": "fresh", "fact": {"entity": "store-01", "name": "stock",
                   "version": 3, "observed_at_ms": T0 - 7_200_000, "source": "inventory"}}),
            json!({"output": {"reorder": 40.25}, "model": {"file": "policy.dmn", "hash": "abc", "name": "Stock policy"},
                   "annotations": {"low": "below five units: order a pallet"},
                   "trace": {"decision": "Reorder", "decisions": [{"id": "d", "name": "Reorder", "output": {"reorder": 40.25},
                     "tables": [{"id": "t", "hit_policy": "FIRST", "inputs": [], "matched": [{"index": 2, "id": "low"}],
                                 "fired": [{"index": 2, "id": "low"}], "output": {"reorder": 40.25}}]}]}}),
            json!({"task": "k", "approved": true, "verdict": "overridden", "by": "rhea", "reason": "big event",
                   "at": "2023-11-14T22:20:00Z", "late": false, "output": {"order": {"reorder": 80}},
                   "override": {"decision": "reorder", "original": {"order": {"reorder": 40.25}},
                                "replacement": {"order": {"reorder": 80}}, "by": "rhea", "reason": "big event",
                                "confirmed_by": "finn"}}),
        ];
        let mut answers = answers.into_iter();
        let mut now = T0;
        loop {
            let step = inst.step();
            out.extend(step.entries);
            if step.status.is_terminal() {
                return out;
            }
            let call = step.start.into_iter().next().expect("one effect at a time");
            now += 60_000;
            assert!(inst.deliver(&call.key, Outcome::ok(answers.next().unwrap()), now));
        }
    }

    #[test]
    fn records_name_inputs_sources_rules_and_overrides() {
        let p = program();
        let id = InstanceId("i-1".into());
        let j = journal(&p, &id);
        let recs = records(&id, Some(&p), Env::default(), &j);
        assert_eq!(recs.len(), 2, "{recs:#?}");
        let (rules, approval) = (&recs[0], &recs[1]);
        assert_eq!(rules.kind, DecisionKind::Rules);
        assert_eq!(rules.decision.as_ref().unwrap()["hash"], json!("abc"));
        assert_eq!(
            rules.decision.as_ref().unwrap()["decision"],
            json!("Reorder")
        );
        let stock = &rules.inputs[0];
        assert_eq!((stock.name.as_str(), &stock.value), ("stock", &json!(4.5)));
        let src = &stock.sources[0];
        assert_eq!(
            (src.kind.as_str(), src.source.as_str(), src.path.as_str()),
            ("fact", "inventory", "/value")
        );
        // Read at T0+1min, observed two hours before, decided one minute after the read.
        assert_eq!(src.age_ms, 7_200_000 + 120_000);
        assert_eq!(rules.reads[1].fact.as_deref(), Some("store-01/stock v3"));
        assert_eq!(
            rules.rules[0].annotation.as_deref(),
            Some("below five units: order a pallet")
        );
        assert_eq!(rules.output, json!({"reorder": 40.25}));
        assert_eq!(rules.reviewed_by.as_deref(), Some(approval.key.as_str()));
        let review = rules
            .review
            .as_ref()
            .expect("the review is on the rules record");
        assert_eq!(review["verdict"], json!("overridden"));
        assert_eq!(review["override"]["confirmed_by"], json!("finn"));
        assert_eq!(approval.reviews.as_deref(), Some(rules.key.as_str()));
        assert_eq!(
            approval.override_.as_ref().unwrap()["confirmed_by"],
            json!("finn")
        );
        assert_eq!(approval.output, json!({"order": {"reorder": 80}}));
        // The declared cost is read from the ended instance's output.
        assert_eq!(approval.cost, Some(json!({"extra": 12.5})));

        // Without the flow the records still come from the journal, and say what is missing.
        let bare = records(&id, None, Env::default(), &j);
        assert_eq!(bare.len(), 2);
        assert!(bare[0].inputs.is_empty() && bare[0].inputs_unavailable.is_some());
        assert_eq!(bare[1].kind, DecisionKind::Approval);
        assert_eq!(bare[1].override_, approval.override_);
    }
}
