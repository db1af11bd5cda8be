//! Replay: a new flow version runs over the inputs of recorded instances of the same flow,
//! without effects, and the report says where its outputs and decisions differ from what
//! happened.
//!
//! The recorded instances are only read. The replayed ones run in a scratch runtime (callers
//! give one over a `MemoryStore`), under the replay policy of the shadow feature:
//! - `decide` and `noop` are evaluated again (the new version's rules are the point);
//! - an effect whose key and request are those of the recorded run gets the recorded outcome
//!   (the requests of the recorded run are rebuilt by feeding its journal through its own
//!   program, sans-IO: the journal keeps outcomes, not requests);
//! - other reads are performed when the scratch runtime may (a provider catalogue was given),
//!   else they fail as `missing` and are counted;
//! - other effects are not performed: they get the shadow's stand-in answer;
//! - timers fire at once; time does not pass in a replay.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use baton_core::{Env, FlowRef, InstanceId, JournalEntry, Program, Status};
use baton_store::{InstanceQuery, InstanceRecord, Store};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{self as shadow, Policy, Recorded, ShadowError, Shadows};
use baton_core::{Fit, Rebuilt};

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Perform reads that the recorded journal cannot answer.
    pub perform_reads: bool,
    /// Only instances created at or after this time.
    pub since_ms: Option<u64>,
    /// How long one replayed instance may run (a read may be slow; nothing else waits).
    pub instance_timeout: Duration,
    /// At most this many recorded instances, newest first.
    pub limit: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            perform_reads: false,
            since_ms: None,
            instance_timeout: Duration::from_secs(60),
            limit: 10_000,
        }
    }
}

/// A field where the new version's output differs from the recorded one.
#[derive(Debug, Clone, Serialize)]
pub struct OutputDiff {
    pub field: String,
    pub recorded: Value,
    pub replayed: Value,
}

/// A `decide` step whose output differs, with the rules that fired on each side.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionDiff {
    /// The step's effect key.
    pub step: String,
    pub recorded: Value,
    pub replayed: Value,
    pub recorded_rules: Vec<String>,
    pub replayed_rules: Vec<String>,
}

/// One recorded instance, replayed.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedInstance {
    pub instance: String,
    pub recorded_version: String,
    pub recorded_status: String,
    pub replayed_status: String,
    /// Same output (and status) as recorded.
    pub same: bool,
    pub differences: Vec<OutputDiff>,
    pub decisions: Vec<DecisionDiff>,
    /// Reads neither recorded nor performed: the replayed output may be wrong because of them.
    pub missing: Vec<Value>,
    /// Effects recorded by the replay but not performed.
    pub not_performed: u64,
    /// Effects answered from the recorded journal.
    pub from_record: u64,
    /// Why the instance could not be replayed (then nothing else is filled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub flow: FlowRef,
    pub since_ms: Option<u64>,
    /// Recorded instances replayed.
    pub instances: u64,
    pub same: u64,
    pub differed: u64,
    /// Instances that could not be replayed (their flow is gone, the journal does not fit it,
    /// the replay did not end in time).
    pub failed: u64,
    /// Recorded instances left out because they have not ended (nothing to compare with).
    pub unfinished_skipped: u64,
    /// Recorded shadow instances left out: their effects were stand-ins, not what happened.
    pub shadows_skipped: u64,
    pub missing_reads: u64,
    pub effects_not_performed: u64,
    /// Instances that differ, per output field.
    pub fields: BTreeMap<String, u64>,
    pub results: Vec<ReplayedInstance>,
}

/// Rebuilds the requests of a recorded run: its journal is fed through its own program, and
/// every request the core makes on the way is kept with the outcome the journal gave it.
pub fn recorded_calls(
    id: &InstanceId,
    program: Arc<Program>,
    env: Env,
    journal: &[JournalEntry],
) -> Result<Recorded, String> {
    let Rebuilt { requests, outcomes } =
        Rebuilt::of(id, program, env, journal, Fit::Lenient).map_err(|e| e.to_string())?;
    let mut recorded = Recorded::default();
    for (key, outcome) in outcomes {
        if let Some(request) = requests.get(&key) {
            recorded.calls.insert(key, (request.clone(), outcome));
        }
    }
    Ok(recorded)
}

/// What an instance ended with, as one value to compare: its output, or its error.
fn end_value(status: Status, output: Option<&Value>, error: Option<&Value>) -> Value {
    match status {
        Status::Completed => output.cloned().unwrap_or(Value::Null),
        _ => json!({"status": status.as_str(), "error": error.cloned()}),
    }
}

impl<S: Store> Shadows<S> {
    /// Replays the ended instances of `new`'s flow (same namespace and name, other versions)
    /// recorded in `production` with `new`, in this handle's runtime, which must be a scratch
    /// runtime (an in-memory store): nothing is written to `production`.
    pub async fn replay_recorded<P: Store>(
        &self,
        production: &P,
        new: Arc<Program>,
        options: &ReplayOptions,
    ) -> Result<ReplayReport, ShadowError> {
        let mut report = ReplayReport {
            flow: new.flow.clone(),
            since_ms: options.since_ms,
            instances: 0,
            same: 0,
            differed: 0,
            failed: 0,
            unfinished_skipped: 0,
            shadows_skipped: 0,
            missing_reads: 0,
            effects_not_performed: 0,
            fields: BTreeMap::new(),
            results: Vec::new(),
        };
        let mut before = None;
        let mut records = Vec::new();
        'pages: loop {
            let page = production
                .instances(&InstanceQuery {
                    flow: Some(new.flow.name.clone()),
                    before: before.clone(),
                    limit: 500,
                    ..InstanceQuery::default()
                })
                .await?;
            for rec in &page {
                if options.since_ms.is_some_and(|s| rec.created_at_ms < s) {
                    // Newest first: everything after this one is older still.
                    break 'pages;
                }
                if rec.flow.namespace != new.flow.namespace || rec.flow.version == new.flow.version
                {
                    continue;
                }
                if !rec.status.is_terminal() {
                    report.unfinished_skipped += 1;
                    continue;
                }
                if production
                    .doc(shadow::SHADOW_RUN_KIND, &rec.id.0)
                    .await?
                    .is_some()
                {
                    report.shadows_skipped += 1;
                    continue;
                }
                records.push(rec.clone());
                if records.len() >= options.limit {
                    break 'pages;
                }
            }
            match page.last() {
                Some(last) if page.len() == 500 => before = Some(last.id.clone()),
                _ => break,
            }
        }
        // Oldest first, as they happened.
        records.reverse();
        let mut programs: HashMap<String, Arc<Program>> = HashMap::new();
        for rec in records {
            let one = self
                .replay_one(production, &rec, new.clone(), &mut programs, options)
                .await;
            let one = match one {
                Ok(r) => r,
                Err(e) => ReplayedInstance {
                    instance: rec.id.0.clone(),
                    recorded_version: rec.flow.version.clone(),
                    recorded_status: rec.status.as_str().into(),
                    replayed_status: "not replayed".into(),
                    same: false,
                    differences: Vec::new(),
                    decisions: Vec::new(),
                    missing: Vec::new(),
                    not_performed: 0,
                    from_record: 0,
                    error: Some(e),
                },
            };
            report.instances += 1;
            if one.error.is_some() {
                report.failed += 1;
            } else if one.same {
                report.same += 1;
            } else {
                report.differed += 1;
            }
            report.missing_reads += one.missing.len() as u64;
            report.effects_not_performed += one.not_performed;
            for d in &one.differences {
                *report.fields.entry(d.field.clone()).or_default() += 1;
            }
            report.results.push(one);
        }
        Ok(report)
    }

    async fn replay_one<P: Store>(
        &self,
        production: &P,
        rec: &InstanceRecord,
        new: Arc<Program>,
        programs: &mut HashMap<String, Arc<Program>>,
        options: &ReplayOptions,
    ) -> Result<ReplayedInstance, String> {
        let old = match programs.get(&rec.flow.hash) {
            Some(p) => p.clone(),
            None => {
                let source = production
                    .flow_source(&rec.flow.hash)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "the recorded flow version {} is not in the store",
                            rec.flow.version
                        )
                    })?;
                let opts = baton_flow::ValidateOptions {
                    known_functions: self.shared.instances.function_names(),
                };
                let loaded = baton_flow::load_flow(&source, &opts).map_err(|ds| {
                    ds.iter()
                        .map(|d| d.render("recorded flow"))
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
                let p = Arc::new(Program::new(loaded.workflow, loaded.raw, &source));
                programs.insert(rec.flow.hash.clone(), p.clone());
                p
            }
        };
        let journal = production
            .journal(&rec.id)
            .await
            .map_err(|e| e.to_string())?;
        let Some(JournalEntry::Started { input, .. }) = journal.first() else {
            return Err("the journal does not begin with `started`".into());
        };
        let recorded = recorded_calls(&rec.id, old, self.shared.instances.env(), &journal)?;
        let policy = Policy::Replay {
            recorded: Arc::new(recorded),
            perform_reads: options.perform_reads,
        };
        let instances = &self.shared.instances;
        let id = instances
            .start_under(
                Some(rec.id.clone()),
                new,
                input.clone(),
                self.shared.policy(policy),
            )
            .await
            .map_err(|e| e.to_string())?;
        let ended = tokio::time::timeout(options.instance_timeout, instances.wait_end(&id)).await;
        let result = match ended {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(format!("the replay's end is not known: {e}")),
            Err(_) => {
                let _ = instances
                    .cancel(&id, "the replay did not end in time", "replay")
                    .await;
                return Err(format!(
                    "the replay did not end within {}s",
                    options.instance_timeout.as_secs()
                ));
            }
        };
        let replayed_journal = self
            .shared
            .store
            .journal(&id)
            .await
            .map_err(|e| e.to_string())?;
        let recorded_end = end_value(
            rec.status,
            rec.output.as_ref(),
            rec.error.as_ref().map(|p| json!(p)).as_ref(),
        );
        let replayed_end = end_value(
            result.status,
            result.output.as_ref(),
            result.error.as_ref().map(|p| json!(p)).as_ref(),
        );
        let differences: Vec<OutputDiff> = shadow::compare(&recorded_end, &replayed_end, &[])
            .into_iter()
            .map(|d| OutputDiff {
                field: d.field,
                recorded: d.live,
                replayed: d.shadow,
            })
            .collect();
        let before = shadow::decisions(&journal);
        let after = shadow::decisions(&replayed_journal);
        let mut decisions = Vec::new();
        for key in before.keys().chain(after.keys()) {
            if decisions.iter().any(|d: &DecisionDiff| &d.step == key) {
                continue;
            }
            let (a, ra) = before.get(key).cloned().unwrap_or_default();
            let (b, rb) = after.get(key).cloned().unwrap_or_default();
            if a != b || ra != rb {
                decisions.push(DecisionDiff {
                    step: key.clone(),
                    recorded: a,
                    replayed: b,
                    recorded_rules: ra,
                    replayed_rules: rb,
                });
            }
        }
        let mut missing = Vec::new();
        let mut not_performed = 0;
        let mut from_record = 0;
        for e in &replayed_journal {
            if let JournalEntry::EffectNote { key, note, .. } = e {
                if note["replay"] == "missing" {
                    missing.push(json!({"step": key.0, "request": note["request"]}));
                } else if note["replay"] == "recorded" {
                    from_record += 1;
                } else if note["shadow"] == "not_performed" {
                    not_performed += 1;
                }
            }
        }
        Ok(ReplayedInstance {
            instance: rec.id.0.clone(),
            recorded_version: rec.flow.version.clone(),
            recorded_status: rec.status.as_str().into(),
            replayed_status: result.status.as_str().into(),
            same: differences.is_empty(),
            differences,
            decisions,
            missing,
            not_performed,
            from_record,
            error: None,
        })
    }
}
