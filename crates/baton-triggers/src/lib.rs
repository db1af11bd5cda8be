//! Triggers: rules that start or signal instances from inbound events, with a context gate,
//! dedupe, debounce and a quarantine for events that cannot be processed.
//!
//! How an event goes through ([`Triggers::ingest`]):
//! 1. It is checked (JSON, a CloudEvents 1.0 structured event, size) and planned against the
//!    rules (`on`, the `when` gate, the start input, the signal target, the debounce key). An
//!    event that fails any of that is quarantined with the reason, before it is stored, so that
//!    a corrected copy with the same `source` + `id` can be replayed. Nothing is dropped.
//! 2. It is stored (durable; a repeat of `source` + `id` is a duplicate while the store
//!    remembers it, see [`Triggers::prune`]). An event that a signal rule routes (aimed at one
//!    instance, or debounced) is stored held back from listeners (`batoninstance: ""` and
//!    `batonheld: true`); the rule delivers it later as a derived event.
//! 3. The rules act on it in a processing pass over the event log, behind a durable cursor. The
//!    pass is at-least-once and every action is idempotent, so a crash between storing and
//!    acting loses nothing: instance ids derive from the rule and the stored event, derived
//!    events keep a stable identity, debounce holds are keyed documents. Events stored by other
//!    paths (`Runtime::publish_event`, `emit`) go through the same pass.
//!
//! Debounce holds are documents (`trigger-hold`) due at the end of their quiet window; a
//! background task owned by [`Triggers`] fires them on the runtime's clock.
//!
//! Echoes: an event caused by one of Baton's own effects (a driver's tablet answering the
//! notification of a reroute with a new ETA) must not start the decision again, or Baton talks
//! to itself in a loop. When the pass processes an event it marks it as an echo
//! - by lineage: it carries back a causation id ([`CAUSATION_ATTRIBUTE`] `batoncausation`, or
//!   `data.causation_id`; Baton sends it with every effect as `X-Baton-Causation-Id`) that
//!   begins with the id of an instance the store knows; or
//! - by expectation: a rule's `echo: {entity, expect_within}` finds a change of the event's
//!   entity that Baton announced ([`Triggers::expect_change`], or a flow emitting an event of
//!   type [`EXPECT_TYPE`] before its effect) within the window and not yet echoed. Each
//!   announced change is the cause of one echo: the first matching event consumes it.
//!
//! Rules that do not say `echoes: true` do not act on an echo; the event is still stored and
//! listeners that ask for it take it (an event held back for a signal rule that then did not act
//! is released to them). The report says which rules an echo suppressed, and the counters count
//! echoes and suppressions.

mod file;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use baton_core::{InstanceId, Program};
use baton_store::{
    Change, Collection, Doc, DocQuery, DocWrite, Entry, Expect, KeyRange, Store, StoreError,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

pub use file::{
    Action, DEFAULT_DEDUPE_WINDOW_MS, Debounce, Pattern, Rule, TriggerSet, load_triggers,
};

use baton_api::events::{EVENT_BYTES_MAX, validate_cloud_event};
use baton_api::{Clock, Instances, SIGNAL_TARGET, StartError};

/// Document kind of quarantined events.
pub const QUARANTINE_KIND: &str = "quarantine";
/// Document kind of debounce holds.
pub const HOLD_KIND: &str = "trigger-hold";
/// Document kind of the engine's own state (the processing cursor).
const STATE_KIND: &str = "trigger-state";
const CURSOR_ID: &str = "cursor";

/// Extension attribute of an event a signal rule holds back from listeners: `true`, or the
/// sender's own `batoninstance` (restored when the rules look at the event).
pub const HELD_ATTRIBUTE: &str = "batonheld";
/// Extension attribute of an event a trigger derived (delivered) from another: the rule's name.
/// The processing pass skips such events: they are outputs, not inputs.
pub const DERIVED_ATTRIBUTE: &str = "batontrigger";

/// Extension attribute of an inbound event carrying back the causation id of the Baton effect
/// that caused it (the value Baton sent as `X-Baton-Causation-Id`: instance id + effect key).
/// CloudEvents extension names are lower-case letters and digits, hence the spelling.
pub const CAUSATION_ATTRIBUTE: &str = "batoncausation";
/// Field of an event's `data` read for the causation id when the attribute is absent (senders
/// that cannot set extension attributes).
pub const CAUSATION_DATA_FIELD: &str = "causation_id";
/// Type of the event by which a flow announces a change it is about to make, so that a rule with
/// `echo:` recognises the event that reports it back: data `{entity, within, causation?}`.
/// Reserved to Baton: an inbound event of this type is quarantined (from outside it could hide
/// genuine events as echoes).
pub const EXPECT_TYPE: &str = "baton.echo.expected";
/// Document kind of announced changes awaiting their echo (id: the entity).
pub const EXPECT_KIND: &str = "echo-expected";
/// `batontrigger` value of the copy that releases to listeners an event held back for a signal
/// rule that did not act on it (an echo).
const RELEASE_MARK: &str = "baton.release";
/// How many `/` of a causation id are tried as the end of the instance id (ids with slashes are
/// unusual; the effect key always begins with one).
const LINEAGE_SPLITS: usize = 4;
/// Announced changes kept per entity (the oldest go first), so one busy entity cannot grow its
/// document without bound.
const EXPECTS_MAX: usize = 64;
/// How long a consumed announcement is kept after its window, so that an event processed again
/// (a pass repeated after a crash) is still recognised as the echo it was.
const EXPECT_KEEP_MS: u64 = 3_600_000;

/// Largest request body `ingest` takes (a batch); single events are bounded by
/// `EVENT_BYTES_MAX` (the events module's bound).
pub const BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Events read from the log per processing step.
const PASS_BATCH: usize = 256;
/// Holds fired per step.
const FIRE_BATCH: usize = 64;
/// How long the background task waits before trying again when it could not read the next due
/// hold (the store failed).
const RETRY_MS: u64 = 1_000;

/// Namespace of the v5 uuids of instances started by triggers.
const START_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6261_746f_6e2d_7472_6967_6765_7273_0001);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("no quarantined event {0}")]
    UnknownQuarantine(String),
    #[error("quarantined event {0} was already replayed")]
    AlreadyReplayed(String),
}

impl TriggerError {
    /// Whether trying again later may succeed (the store failed), as opposed to a failure that
    /// would repeat.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TriggerError::Store(_) | TriggerError::Start(StartError::Store(_))
        )
    }
}

/// What happened to each event of one `ingest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub events: Vec<EventReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReport {
    /// Position in the batch (0 for a single event).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub outcome: EventOutcome,
    /// Set when the event is an echo of Baton's own effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo: Option<Echo>,
}

/// Why an event is an echo, and what that changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Echo {
    pub by: EchoBasis,
    /// The causation id: of the effect (lineage), or the one the announced change gave.
    pub causation: String,
    /// The instance that performed the effect (lineage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceId>,
    /// The entity whose announced change this is (expectation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Rules whose `on` matched but that did not act because the event is an echo.
    pub suppressed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoBasis {
    /// The causation id came back and names an instance Baton knows.
    Lineage,
    /// A rule's `echo:` matched a change Baton announced for the entity.
    Expected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EventOutcome {
    /// Stored, and at least one rule acted on it (`actions` also lists the gates that said no).
    Accepted { actions: Vec<RuleAction> },
    /// Stored (listeners may take it), but no rule acted on it.
    Unmatched { gated_out: Vec<String> },
    /// The same `source` + `id` was seen within the dedupe window: nothing done.
    Duplicate,
    /// Could not be processed; kept with the reason, to be replayed.
    Quarantined {
        quarantine_id: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RuleAction {
    Started {
        rule: String,
        instance: InstanceId,
    },
    Signalled {
        rule: String,
        flow: String,
        /// The one instance it was aimed at, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<InstanceId>,
    },
    /// Held until the key has been quiet for the window; a later event may replace it.
    Debounced {
        rule: String,
        key: Value,
        due_at_ms: u64,
    },
    /// The rule's `on` matched but its `when` gate did not let the event through.
    GatedOut {
        rule: String,
    },
}

/// Counts since this engine started, for metrics and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TriggerCounters {
    /// Events stored and processed by the rules (whatever they did).
    pub accepted: u64,
    pub duplicate: u64,
    pub quarantined: u64,
    /// Processed events no rule acted on.
    pub unmatched: u64,
    /// Instances started (debounced ones when they fire).
    pub started: u64,
    /// Events handed to waiting instances (debounced ones when they fire).
    pub signalled: u64,
    /// Events held by a debounce window (each one, including those later replaced).
    pub debounced: u64,
    /// Times a rule's gate said no.
    pub gated_out: u64,
    /// Quarantined events replayed.
    pub replayed: u64,
    /// Events recognised as echoes of Baton's own effects.
    pub echoes: u64,
    /// Echoes on which at least one rule did not act (an echo only `echoes: true` rules took is
    /// not counted).
    pub echoes_suppressed: u64,
    /// Changes announced by flows (`baton.echo.expected` events) and recorded.
    pub expected_changes: u64,
    pub rules: BTreeMap<String, RuleCounters>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleCounters {
    /// Events whose type and source the rule's `on` matched.
    pub matched: u64,
    pub started: u64,
    pub signalled: u64,
    pub debounced: u64,
    pub gated_out: u64,
    /// Echoes this rule did not act on.
    pub echoes_suppressed: u64,
}

/// A quarantined event as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantined {
    pub id: String,
    /// `held` or `replayed`.
    pub status: String,
    pub received_at_ms: u64,
    pub reason: String,
    /// The body as received: its JSON, or the text when it was not JSON (cut at
    /// `EVENT_BYTES_MAX` bytes, then `truncated` is true).
    pub raw: Value,
    pub truncated: bool,
    /// Whether the event is in the event log (it failed after being stored, e.g. published by
    /// another path): a replay then acts on it without storing it again.
    pub stored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_at_ms: Option<u64>,
    /// What the replay did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Value>,
    /// For a conflict (same `source` and `id`, other data): the event received first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<Value>,
}

/// An event held by a debounce window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub rule: String,
    pub key: Value,
    pub due_at_ms: u64,
    /// Events collapsed into this hold so far.
    pub count: u64,
    pub event: Value,
}

/// The trigger engine of a runtime. Cheap to clone; the background task that fires debounce
/// holds stops when the last clone is dropped.
pub struct Triggers<S: Store> {
    inner: Arc<Inner<S>>,
    _task: Arc<AbortOnDrop>,
}

impl<S: Store> Clone for Triggers<S> {
    fn clone(&self) -> Self {
        Triggers {
            inner: self.inner.clone(),
            _task: self._task.clone(),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Inner<S: Store> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    /// The kernel: flows to start, instances to start, the event bus to ring.
    instances: Arc<dyn Instances>,
    set: TriggerSet,
    /// Serializes processing passes, firing and replays (one writer of the cursor and holds).
    work: tokio::sync::Mutex<Cursor>,
    counters: watch::Sender<TriggerCounters>,
    /// Woken when a hold is written, so the background task re-reads the next due time.
    holds_changed: Notify,
    /// Outcomes of processed events that `ingest` calls are waiting for, by identity.
    awaiting: Mutex<HashMap<(String, String), Waiting>>,
}

/// Callers waiting for one identity's outcome (a producer's retry may race its original).
struct Waiting {
    waiters: usize,
    outcome: Option<Processed>,
}

/// What processing did with one event.
#[derive(Clone)]
struct Processed {
    outcome: EventOutcome,
    echo: Option<Echo>,
}

struct Cursor {
    seq: u64,
    version: u64,
}

impl<S: Store> Triggers<S> {
    /// Starts the trigger engine with these rules over `store`, starting and signalling
    /// instances through `instances`: resumes the processing cursor (a first start begins at
    /// the end of the event log, so past events do not fire new rules), then processes what
    /// arrived since and fires due holds in a background task.
    pub async fn start(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        instances: Arc<dyn Instances>,
        set: TriggerSet,
    ) -> Result<Triggers<S>, TriggerError> {
        let cursor = load_cursor(&*store).await?;
        let mut counters = TriggerCounters::default();
        for r in &set.rules {
            counters
                .rules
                .insert(r.name.clone(), RuleCounters::default());
        }
        let inner = Arc::new(Inner {
            store,
            clock,
            instances,
            set,
            work: tokio::sync::Mutex::new(cursor),
            counters: watch::Sender::new(counters),
            holds_changed: Notify::new(),
            awaiting: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(background(inner.clone()));
        Ok(Triggers {
            inner,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }
}

async fn load_cursor<S: Store>(store: &S) -> Result<Cursor, TriggerError> {
    loop {
        if let Some(doc) = store.doc(STATE_KIND, CURSOR_ID).await? {
            return Ok(Cursor {
                seq: doc.body.get("seq").and_then(Value::as_u64).unwrap_or(0),
                version: doc.version,
            });
        }
        let mut head = 0;
        loop {
            let batch = store.events_after(head, 1000).await?;
            match batch.last() {
                Some(last) => head = last.seq,
                None => break,
            }
        }
        match store
            .put_doc(DocWrite {
                kind: STATE_KIND.into(),
                id: CURSOR_ID.into(),
                status: "active".into(),
                at_ms: 0,
                body: json!({"seq": head}),
                expect: Expect::Absent,
            })
            .await
        {
            Ok(version) => return Ok(Cursor { seq: head, version }),
            // Another engine created it first: take theirs.
            Err(StoreError::DocConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the rules would do with an event: computed before it is stored (to quarantine what
/// cannot be processed) and again when it is processed (the same result: it is a function of
/// the event and the rules).
struct Plan {
    items: Vec<PlanItem>,
    /// The change an event of type [`EXPECT_TYPE`] announces.
    announce: Option<Announce>,
}

/// A change a flow announced (an [`EXPECT_TYPE`] event), checked.
struct Announce {
    entity: String,
    within_ms: u64,
    causation: String,
    /// The announcing event's identity: processing it again records nothing new.
    id: String,
}

impl Announce {
    fn of(event: &Value) -> Result<Announce, String> {
        let data = event.get("data").unwrap_or(&Value::Null);
        let entity = entity_key(data.get("entity").unwrap_or(&Value::Null))
            .map_err(|e| format!("`{EXPECT_TYPE}`: `data.entity` {e}"))?
            .ok_or_else(|| format!("`{EXPECT_TYPE}` needs `data.entity`: what will change"))?;
        let within_ms = match data.get("within") {
            Some(w) => baton_flow::duration_ms(w)
                .map_err(|e| format!("`{EXPECT_TYPE}`: `data.within` {e}"))?,
            None => {
                return Err(format!(
                    "`{EXPECT_TYPE}` needs `data.within`: how long the echo may take (e.g. `10m`)"
                ));
            }
        };
        if within_ms == 0 {
            return Err(format!(
                "`{EXPECT_TYPE}`: `data.within` must be longer than zero"
            ));
        }
        let (source, id) = identity(event);
        let (source, id) = (source.unwrap_or_default(), id.unwrap_or_default());
        let causation = data
            .get("causation")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .or_else(|| causation_of(event).map(str::to_string))
            .unwrap_or_else(|| format!("{source}#{id}"));
        Ok(Announce {
            entity,
            within_ms,
            causation,
            id: format!("{source}\n{id}"),
        })
    }
}

enum PlanItem {
    Gated {
        rule: usize,
        echo_entity: Option<String>,
    },
    Act {
        rule: usize,
        action: Planned,
        /// Set when the rule debounces.
        key: Option<Value>,
        /// The entity the rule's `echo:` says the event is about.
        echo_entity: Option<String>,
    },
}

impl PlanItem {
    fn rule(&self) -> usize {
        match self {
            PlanItem::Gated { rule, .. } | PlanItem::Act { rule, .. } => *rule,
        }
    }

    fn echo_entity(&self) -> Option<&str> {
        match self {
            PlanItem::Gated { echo_entity, .. } | PlanItem::Act { echo_entity, .. } => {
                echo_entity.as_deref()
            }
        }
    }

    fn signals(&self) -> bool {
        matches!(
            self,
            PlanItem::Act {
                action: Planned::Signal { .. },
                ..
            }
        )
    }
}

#[derive(Clone)]
enum Planned {
    Start { program: Arc<Program>, input: Value },
    Signal { target: Option<String> },
}

impl Plan {
    /// Whether a signal rule routes the event itself (aimed at one instance, or debounced), so
    /// that the original must be held back from listeners.
    fn routes(&self, rules: &[Rule]) -> bool {
        self.items.iter().any(|i| match i {
            PlanItem::Act {
                rule,
                action: Planned::Signal { target },
                ..
            } => target.is_some() || rules[*rule].debounce.is_some(),
            _ => false,
        })
    }
}

/// Counter changes of one step, published together so that a watcher never sees half a pass.
#[derive(Default)]
struct Tally {
    c: TriggerCounters,
}

impl Tally {
    fn rule(&mut self, name: &str) -> &mut RuleCounters {
        self.c.rules.entry(name.to_string()).or_default()
    }
}

impl<S: Store> Triggers<S> {
    /// The rules in force.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.set.rules
    }

    /// The counters now.
    pub fn counters(&self) -> TriggerCounters {
        self.inner.counters.borrow().clone()
    }

    /// The counters, as they change (each processing step publishes once).
    pub fn watch(&self) -> watch::Receiver<TriggerCounters> {
        self.inner.counters.subscribe()
    }

    /// Takes a request body: one structured CloudEvent, or a JSON array of them (a batch,
    /// reported per event). A body that is not JSON, or too large, is quarantined whole.
    pub async fn ingest(&self, raw: &[u8]) -> Result<IngestReport, TriggerError> {
        let now = self.inner.now();
        if raw.len() > BODY_BYTES_MAX {
            let reason = format!(
                "the body is {} bytes; the limit is {BODY_BYTES_MAX} bytes",
                raw.len()
            );
            let text = String::from_utf8_lossy(raw);
            let report = self
                .inner
                .quarantine_whole(Value::String(text.into_owned()), reason, now)
                .await?;
            return Ok(IngestReport {
                events: vec![report],
            });
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(v) => self.ingest_value(v).await,
            Err(e) => {
                let text = String::from_utf8_lossy(raw).into_owned();
                let report = self
                    .inner
                    .quarantine_whole(Value::String(text), format!("not JSON: {e}"), now)
                    .await?;
                Ok(IngestReport {
                    events: vec![report],
                })
            }
        }
    }

    /// Like [`Triggers::ingest`] for a body already parsed.
    pub async fn ingest_value(&self, body: Value) -> Result<IngestReport, TriggerError> {
        let events = match body {
            Value::Array(items) => items,
            one => vec![one],
        };
        self.inner.ingest_events(events).await
    }

    /// Quarantined events, in the order and page the query says (its `kind` is implied).
    pub async fn quarantine(&self, query: &DocQuery) -> Result<Vec<Quarantined>, TriggerError> {
        let docs = self.inner.store().docs(QUARANTINE_KIND, query).await?;
        Ok(docs.iter().map(quarantined_of).collect())
    }

    pub async fn quarantined(&self, id: &str) -> Result<Option<Quarantined>, TriggerError> {
        let doc = self.inner.store().doc(QUARANTINE_KIND, id).await?;
        Ok(doc.as_ref().map(quarantined_of))
    }

    /// How many events are held in quarantine (not yet replayed).
    pub async fn quarantine_count(&self) -> Result<u64, TriggerError> {
        Ok(self
            .inner
            .store()
            .count_docs(QUARANTINE_KIND, Some("held"))
            .await?)
    }

    /// Processes a quarantined event again, as received or `corrected`, and marks it replayed
    /// unless it fails again (then it stays held, with the new reason).
    pub async fn replay(
        &self,
        id: &str,
        corrected: Option<Value>,
    ) -> Result<EventReport, TriggerError> {
        self.inner.replay(id, corrected).await
    }

    /// Announces a change Baton is making to `entity`, typically just before the effect that
    /// makes it: for `within_ms`, the first event about the entity that a rule with `echo:`
    /// looks at is this change's echo (reported with `causation`). For effects whose echo does
    /// not carry the causation id back. Announcing the same `causation` again changes nothing.
    /// Flows do the same by emitting an event of type [`EXPECT_TYPE`].
    pub async fn expect_change(
        &self,
        entity: &str,
        within_ms: u64,
        causation: &str,
    ) -> Result<(), TriggerError> {
        self.inner
            .expect_change(entity, within_ms, causation, causation)
            .await?;
        Ok(())
    }

    /// Forgets the identities (and the events) received longer ago than the longest dedupe
    /// window, so a repeat of them is accepted again. Returns how many events went.
    pub async fn prune(&self, now_ms: u64) -> Result<u64, TriggerError> {
        let before = now_ms.saturating_sub(self.inner.set.dedupe_window_ms());
        Ok(self.inner.store().prune_events(before).await?)
    }

    /// The events held by debounce windows, soonest due first.
    pub async fn held(&self) -> Result<Vec<Held>, TriggerError> {
        let docs = self
            .inner
            .store()
            .docs(
                HOLD_KIND,
                &DocQuery {
                    limit: 1000,
                    ..DocQuery::default()
                },
            )
            .await?;
        Ok(docs
            .iter()
            .map(|d| Held {
                rule: str_of(&d.body, "rule"),
                key: d.body.get("key").cloned().unwrap_or(Value::Null),
                due_at_ms: d.at_ms,
                count: d.body.get("count").and_then(Value::as_u64).unwrap_or(1),
                event: d.body.get("event").cloned().unwrap_or(Value::Null),
            })
            .collect())
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Why an event with a known identity and other data is quarantined.
fn conflict_reason(event: &Value) -> String {
    let (source, id) = identity(event);
    format!(
        "conflict: an event with source `{}` and id `{}` was already received with other data; \
         both are kept here (`raw` and `first`)",
        source.unwrap_or_default(),
        id.unwrap_or_default()
    )
}

fn quarantined_of(d: &Doc) -> Quarantined {
    Quarantined {
        id: d.id.clone(),
        status: d.status.clone(),
        received_at_ms: d.at_ms,
        reason: str_of(&d.body, "reason"),
        raw: d.body.get("raw").cloned().unwrap_or(Value::Null),
        truncated: d.body.get("truncated").and_then(Value::as_bool) == Some(true),
        stored: d.body.get("stored").and_then(Value::as_bool) == Some(true),
        replayed_at_ms: d.body.get("replayed_at_ms").and_then(Value::as_u64),
        replay: d.body.get("replay").cloned(),
        first: d.body.get("first").cloned(),
    }
}

fn identity(event: &Value) -> (Option<String>, Option<String>) {
    let s = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_string);
    (s("source"), s("id"))
}

/// The jq input of a rule's expressions.
fn rule_input(event: &Value) -> Value {
    json!({"event": event, "data": event.get("data").cloned().unwrap_or(Value::Null)})
}

/// The causation id an event carries back: the extension attribute, else `data.causation_id`.
fn causation_of(event: &Value) -> Option<&str> {
    event
        .get(CAUSATION_ATTRIBUTE)
        .and_then(Value::as_str)
        .or_else(|| {
            event
                .get("data")
                .and_then(|d| d.get(CAUSATION_DATA_FIELD))
                .and_then(Value::as_str)
        })
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// An entity as the key of its announced changes: a string or a number; `None` for `null`.
fn entity_key(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(format!(
            "must produce the entity as a non-empty string or a number (or null for none), not {other}"
        )),
    }
}

/// One change announced for an entity, as kept in its `echo-expected` document.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Expected {
    /// What makes a repeat of the announcement recognisable (the causation given to
    /// `expect_change`, or the identity of the announcing event).
    id: String,
    causation: String,
    at_ms: u64,
    within_ms: u64,
    /// The identity (`source` + `id`) of the event that was its echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consumed_by: Option<String>,
}

/// The changes announced for one entity, as its `echo-expected` document holds them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Expectations {
    entity: String,
    #[serde(default)]
    expected: Vec<Expected>,
}

/// The `echo-expected` documents, one per entity.
const EXPECTATIONS: Collection<Expectations> = Collection::new(EXPECT_KIND);

/// The document of `entity`'s announcements: listed by when the last of them stops mattering,
/// for whoever cleans up.
fn expectations(entity: &str, expected: Vec<Expected>) -> Entry<Expectations> {
    let until = expected
        .iter()
        .map(|e| {
            e.at_ms
                .saturating_add(e.within_ms)
                .saturating_add(EXPECT_KEEP_MS)
        })
        .max()
        .unwrap_or(0);
    let entity = entity.to_string();
    Entry::new("active", until, Expectations { entity, expected })
}

/// Drops what can no longer match nor be asked about again, then the oldest beyond the cap.
fn prune_expected(list: &mut Vec<Expected>, now: u64) {
    list.retain(|e| {
        now <= e
            .at_ms
            .saturating_add(e.within_ms)
            .saturating_add(EXPECT_KEEP_MS)
    });
    if list.len() > EXPECTS_MAX {
        list.sort_by_key(|e| e.at_ms);
        let extra = list.len() - EXPECTS_MAX;
        list.drain(..extra);
    }
}

/// A string cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> (&str, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The event as received: without the marks the engine added to hold it back.
fn as_received(event: &Value) -> (Value, bool) {
    let mut ev = event.clone();
    let Some(obj) = ev.as_object_mut() else {
        return (ev, false);
    };
    let Some(mark) = obj.remove(HELD_ATTRIBUTE) else {
        return (ev, false);
    };
    match mark {
        Value::String(own) => obj.insert(SIGNAL_TARGET.into(), Value::String(own)),
        _ => obj.remove(SIGNAL_TARGET),
    };
    (ev, true)
}

/// The id of the instance a rule starts for an accepted event: stable across re-processing (a
/// crash before the cursor moved), distinct when the same event is accepted again after its
/// dedupe window (it is then stored with a new sequence number). `token` is that sequence
/// number, or the quarantine id of a replay of an event already in the log.
fn start_id(rule: &str, source: &str, id: &str, token: &str) -> InstanceId {
    let name = format!("{rule}\n{source}\n{id}\n{token}");
    InstanceId(uuid::Uuid::new_v5(&START_ID_NAMESPACE, name.as_bytes()).to_string())
}

impl<S: Store> Inner<S> {
    fn store(&self) -> &S {
        &self.store
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn publish(&self, tally: Tally) {
        let t = tally.c;
        self.counters.send_modify(|c| {
            c.accepted += t.accepted;
            c.duplicate += t.duplicate;
            c.quarantined += t.quarantined;
            c.unmatched += t.unmatched;
            c.started += t.started;
            c.signalled += t.signalled;
            c.debounced += t.debounced;
            c.gated_out += t.gated_out;
            c.replayed += t.replayed;
            c.echoes += t.echoes;
            c.echoes_suppressed += t.echoes_suppressed;
            c.expected_changes += t.expected_changes;
            for (name, r) in t.rules {
                let e = c.rules.entry(name).or_default();
                e.matched += r.matched;
                e.started += r.started;
                e.signalled += r.signalled;
                e.debounced += r.debounced;
                e.gated_out += r.gated_out;
                e.echoes_suppressed += r.echoes_suppressed;
            }
        });
    }

    /// What the rules would do with a (valid) event, or why it cannot be processed.
    fn plan(&self, event: &Value, tally: Option<&mut Tally>) -> Result<Plan, String> {
        let mut scratch = Tally::default();
        let tally = tally.unwrap_or(&mut scratch);
        let budget = baton_expr::Budget::default();
        let input = rule_input(event);
        let ty = event.get("type").and_then(Value::as_str);
        let source = event.get("source").and_then(Value::as_str);
        let own_target = event
            .get(SIGNAL_TARGET)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let mut items = Vec::new();
        for (i, rule) in self.set.rules.iter().enumerate() {
            if !rule.on_type.matches(ty) || !rule.on_source.matches(source) {
                continue;
            }
            tally.rule(&rule.name).matched += 1;
            let fail = |what: &str, e: &dyn std::fmt::Display| {
                format!("rule `{}`: {what} failed: {e}", rule.name)
            };
            // Computed here (not when the echo is looked up) so that an expression that fails
            // quarantines the event before it is stored, like the rule's other expressions.
            let echo_entity = match &rule.echo {
                Some(m) => {
                    let v = m
                        .entity
                        .eval(&input, &[], &budget)
                        .map_err(|e| fail("`echo.entity`", &e))?;
                    entity_key(&v)
                        .map_err(|e| format!("rule `{}`: `echo.entity` {e}", rule.name))?
                }
                None => None,
            };
            if let Some(when) = &rule.when {
                let v = when
                    .eval(&input, &[], &budget)
                    .map_err(|e| fail("`when`", &e))?;
                if matches!(v, Value::Null | Value::Bool(false)) {
                    items.push(PlanItem::Gated {
                        rule: i,
                        echo_entity,
                    });
                    continue;
                }
            }
            let key = match &rule.debounce {
                Some(d) => Some(
                    d.key
                        .eval(&input, &[], &budget)
                        .map_err(|e| fail("`debounce.key`", &e))?,
                ),
                None => None,
            };
            let action = match &rule.action {
                Action::Start {
                    flow,
                    namespace,
                    version,
                    input: expr,
                } => {
                    let program = self
                        .instances.resolve_flow(namespace, flow, version)
                        .ok_or_else(|| {
                            format!(
                                "rule `{}`: no flow {namespace}/{flow} version {version} is registered",
                                rule.name
                            )
                        })?;
                    let input = match expr {
                        Some(e) => e
                            .eval(&input, &[], &budget)
                            .map_err(|e| fail("`start.input`", &e))?,
                        None => input.get("data").cloned().unwrap_or(Value::Null),
                    };
                    Planned::Start { program, input }
                }
                Action::Signal { instance, .. } => {
                    let target = match instance {
                        None => None,
                        Some(e) => match e
                            .eval(&input, &[], &budget)
                            .map_err(|e| fail("`signal.instance`", &e))?
                        {
                            Value::String(s) if !s.is_empty() => Some(s),
                            // No aim of the rule's own: the sender's aim stands (a signal
                            // through the API already names its instance).
                            Value::Null if own_target.is_some() => own_target.clone(),
                            other => {
                                return Err(format!(
                                    "rule `{}`: `signal.instance` must produce an instance id (a non-empty string), not {other}",
                                    rule.name
                                ));
                            }
                        },
                    };
                    Planned::Signal { target }
                }
            };
            items.push(PlanItem::Act {
                rule: i,
                action,
                key,
                echo_entity,
            });
        }
        let announce = if ty == Some(EXPECT_TYPE) {
            Some(Announce::of(event)?)
        } else {
            None
        };
        Ok(Plan { items, announce })
    }

    async fn quarantine_whole(
        &self,
        raw: Value,
        reason: String,
        now: u64,
    ) -> Result<EventReport, TriggerError> {
        let id = self.quarantine(raw, &reason, false, now).await?;
        let mut tally = Tally::default();
        tally.c.quarantined += 1;
        self.publish(tally);
        Ok(EventReport {
            index: 0,
            source: None,
            id: None,
            outcome: EventOutcome::Quarantined {
                quarantine_id: id,
                reason,
            },
            echo: None,
        })
    }

    /// Writes a quarantine document (durable when it returns); returns its id.
    async fn quarantine(
        &self,
        raw: Value,
        reason: &str,
        stored: bool,
        now: u64,
    ) -> Result<String, TriggerError> {
        let (raw, truncated) = match raw {
            Value::String(s) => {
                let (kept, truncated) = cut(&s, EVENT_BYTES_MAX);
                (Value::String(kept.to_string()), truncated)
            }
            v => {
                let text = v.to_string();
                if text.len() > EVENT_BYTES_MAX {
                    let (kept, _) = cut(&text, EVENT_BYTES_MAX);
                    (Value::String(kept.to_string()), true)
                } else {
                    (v, false)
                }
            }
        };
        let id = uuid::Uuid::now_v7().to_string();
        tracing::warn!(quarantine = %id, %reason, "event quarantined");
        self.store()
            .put_doc(DocWrite {
                kind: QUARANTINE_KIND.into(),
                id: id.clone(),
                status: "held".into(),
                at_ms: now,
                body: json!({
                    "raw": raw,
                    "truncated": truncated,
                    "reason": reason,
                    "stored": stored,
                    "received_at_ms": now,
                }),
                expect: Expect::Absent,
            })
            .await?;
        Ok(id)
    }

    /// Adds the first event of a conflicting identity to its quarantine record, so both
    /// payloads are there to compare.
    async fn keep_first(&self, qid: &str, first: Value) -> Result<(), TriggerError> {
        let Some(doc) = self.store().doc(QUARANTINE_KIND, qid).await? else {
            return Ok(());
        };
        let mut body = doc.body.clone();
        body["first"] = first;
        self.store()
            .put_doc(DocWrite {
                kind: QUARANTINE_KIND.into(),
                id: qid.to_string(),
                status: doc.status.clone(),
                at_ms: doc.at_ms,
                body,
                expect: Expect::Version(doc.version),
            })
            .await?;
        Ok(())
    }

    /// Checks, plans and stores each event, then processes them; reports per event.
    async fn ingest_events(&self, events: Vec<Value>) -> Result<IngestReport, TriggerError> {
        let now = self.now();
        let mut reports: Vec<EventReport> = Vec::with_capacity(events.len());
        let mut waiting: Vec<(usize, (String, String))> = Vec::new();
        let mut tally = Tally::default();
        for (index, event) in events.into_iter().enumerate() {
            let (source, id) = identity(&event);
            let mut report = EventReport {
                index,
                source: source.clone(),
                id: id.clone(),
                outcome: EventOutcome::Duplicate,
                echo: None,
            };
            match self.store_event(event, now).await {
                Ok(Stored::Fresh(ident)) => {
                    waiting.push((index, ident));
                }
                Ok(Stored::Duplicate) => tally.c.duplicate += 1,
                Err(Refused::Invalid(raw, reason)) => {
                    let qid = self.quarantine(raw, &reason, false, now).await?;
                    tally.c.quarantined += 1;
                    report.outcome = EventOutcome::Quarantined {
                        quarantine_id: qid,
                        reason,
                    };
                }
                Err(Refused::Conflict(raw, first)) => {
                    let reason = conflict_reason(&raw);
                    let qid = self.quarantine(raw, &reason, false, now).await?;
                    self.keep_first(&qid, first).await?;
                    tally.c.quarantined += 1;
                    report.outcome = EventOutcome::Quarantined {
                        quarantine_id: qid,
                        reason,
                    };
                }
                Err(Refused::Store(e)) => {
                    self.publish(tally);
                    self.forget(&waiting);
                    return Err(e.into());
                }
            }
            reports.push(report);
        }
        self.publish(tally);
        if waiting.is_empty() {
            return Ok(IngestReport { events: reports });
        }
        // The events are durable: if processing fails now, the background pass takes them up.
        let processed = self.process_pending().await;
        let mut missing = false;
        for (index, ident) in &waiting {
            match self.release(ident) {
                Some(p) => {
                    reports[*index].outcome = p.outcome;
                    reports[*index].echo = p.echo;
                }
                None => missing = true,
            }
        }
        processed?;
        if missing {
            // Processed by a pass that failed half-way or by another node: the cursor moved
            // past it but this process did not see the outcome.
            return Err(TriggerError::Store(StoreError::Io(
                "an ingested event was stored but its processing outcome was not seen".into(),
            )));
        }
        Ok(IngestReport { events: reports })
    }

    fn forget(&self, waiting: &[(usize, (String, String))]) {
        for (_, ident) in waiting {
            self.release(ident);
        }
    }

    fn register(&self, ident: &(String, String)) {
        self.awaiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ident.clone())
            .or_insert(Waiting {
                waiters: 0,
                outcome: None,
            })
            .waiters += 1;
    }

    /// Stops waiting for an identity; returns its outcome if a pass recorded it.
    fn release(&self, ident: &(String, String)) -> Option<Processed> {
        let mut a = self.awaiting.lock().unwrap_or_else(|p| p.into_inner());
        let w = a.get_mut(ident)?;
        w.waiters -= 1;
        if w.waiters == 0 {
            a.remove(ident).and_then(|w| w.outcome)
        } else {
            w.outcome.clone()
        }
    }

    /// Checks and plans an event, then stores it (held back from listeners when a signal rule
    /// routes it). The identity is registered as awaited before storing, so a pass running in
    /// between keeps the outcome for us.
    async fn store_event(&self, mut event: Value, now: u64) -> Result<Stored, Refused> {
        if let Err(reason) = validate_cloud_event(&event) {
            return Err(Refused::Invalid(event, reason));
        }
        if event.get(DERIVED_ATTRIBUTE).is_some() || event.get(HELD_ATTRIBUTE).is_some() {
            // These marks steer the processing pass; from outside they would let a sender skip
            // the rules or hide an event.
            return Err(Refused::Invalid(
                event,
                format!(
                    "the extension attributes `{DERIVED_ATTRIBUTE}` and `{HELD_ATTRIBUTE}` are reserved to Baton"
                ),
            ));
        }
        if event.get("type").and_then(Value::as_str) == Some(EXPECT_TYPE) {
            // An announcement from outside could make genuine events pass for echoes.
            return Err(Refused::Invalid(
                event,
                format!(
                    "the event type `{EXPECT_TYPE}` is reserved to Baton: flows announce their own changes with it"
                ),
            ));
        }
        let plan = match self.plan(&event, None) {
            Ok(p) => p,
            Err(reason) => return Err(Refused::Invalid(event, reason)),
        };
        // As received, for a quarantine record: the marks below are Baton's, not the sender's.
        let routes = plan.routes(&self.set.rules);
        let received = routes.then(|| event.clone());
        if routes && let Some(obj) = event.as_object_mut() {
            // `""` is no instance's id: no listener sees the original; the rule delivers it.
            let own = obj.insert(SIGNAL_TARGET.into(), Value::String(String::new()));
            let mark = match own {
                Some(Value::String(t)) => Value::String(t),
                _ => Value::Bool(true),
            };
            obj.insert(HELD_ATTRIBUTE.into(), mark);
        }
        let (source, id) = identity(&event);
        let ident = (source.unwrap_or_default(), id.unwrap_or_default());
        self.register(&ident);
        match self.store().put_event(&event, now).await {
            Ok(true) => {
                self.instances.events().notify();
                Ok(Stored::Fresh(ident))
            }
            Ok(false) => {
                self.release(&ident);
                // A repeat is a duplicate only if it says the same: the same identity with other
                // data is a conflict, kept beside the first rather than dropped.
                let first = self
                    .store()
                    .event_by_identity(&ident.0, &ident.1)
                    .await
                    .map_err(Refused::Store)?;
                match first {
                    Some(f) if f.event.get("data") != event.get("data") => {
                        Err(Refused::Conflict(received.unwrap_or(event), f.event))
                    }
                    _ => Ok(Stored::Duplicate),
                }
            }
            Err(e) => {
                self.release(&ident);
                Err(Refused::Store(e))
            }
        }
    }

    /// Processes every stored event past the cursor, moving the cursor after each batch.
    async fn process_pending(&self) -> Result<(), TriggerError> {
        let mut cursor = self.work.lock().await;
        loop {
            let batch = self.store().events_after(cursor.seq, PASS_BATCH).await?;
            let Some(last) = batch.last().map(|s| s.seq) else {
                return Ok(());
            };
            let mut tally = Tally::default();
            let mut result = Ok(());
            for stored in &batch {
                match self
                    .process_stored(stored.seq, &stored.event, &mut tally)
                    .await
                {
                    Ok(Some(processed)) => {
                        let (source, id) = identity(&stored.event);
                        let ident = (source.unwrap_or_default(), id.unwrap_or_default());
                        let mut a = self.awaiting.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(w) = a.get_mut(&ident) {
                            w.outcome = Some(processed);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            self.publish(tally);
            // The cursor does not move past a failed batch: it is processed again (every
            // action is idempotent).
            result?;
            let version = self
                .store()
                .put_doc(DocWrite {
                    kind: STATE_KIND.into(),
                    id: CURSOR_ID.into(),
                    status: "active".into(),
                    at_ms: self.now(),
                    body: json!({"seq": last}),
                    expect: Expect::Version(cursor.version),
                })
                .await;
            match version {
                Ok(v) => {
                    cursor.seq = last;
                    cursor.version = v;
                }
                Err(StoreError::DocConflict { .. }) => {
                    // Another engine on the same store moved it: continue from where it is.
                    *cursor = load_cursor(self.store()).await?;
                }
                Err(e) => return Err(e.into()),
            }
            if batch.len() < PASS_BATCH {
                return Ok(());
            }
        }
    }

    /// Applies the rules to one stored event; `None` for an event a trigger derived.
    async fn process_stored(
        &self,
        seq: u64,
        stored: &Value,
        tally: &mut Tally,
    ) -> Result<Option<Processed>, TriggerError> {
        if stored.get(DERIVED_ATTRIBUTE).is_some() {
            return Ok(None);
        }
        let (event, held) = as_received(stored);
        let now = self.now();
        let plan = match self.plan(&event, Some(tally)) {
            Ok(p) => p,
            Err(reason) => {
                // Stored by another path (or the rules or flows changed since it was checked):
                // it is in the log, so a replay acts on it without storing it again.
                let qid = self.quarantine(event, &reason, true, now).await?;
                tally.c.quarantined += 1;
                return Ok(Some(Processed {
                    outcome: EventOutcome::Quarantined {
                        quarantine_id: qid,
                        reason,
                    },
                    echo: None,
                }));
            }
        };
        tally.c.accepted += 1;
        let token = format!("{seq}");
        match self.settle(&event, held, plan, &token, tally).await {
            Ok(processed) => Ok(Some(processed)),
            // A store failure may pass: the cursor stays and the event is processed again.
            Err(e) if e.is_transient() => Err(e),
            // Anything else would fail again on every pass and hold up the events behind it.
            Err(e) => {
                let reason = format!("acting on the event failed: {e}");
                let qid = self.quarantine(event, &reason, true, now).await?;
                tally.c.quarantined += 1;
                Ok(Some(Processed {
                    outcome: EventOutcome::Quarantined {
                        quarantine_id: qid,
                        reason,
                    },
                    echo: None,
                }))
            }
        }
    }

    /// Records the change an event announces, marks the event as an echo or not (taking out of
    /// the plan the rules that do not act on echoes), then performs what is left.
    async fn settle(
        &self,
        event: &Value,
        held: bool,
        mut plan: Plan,
        token: &str,
        tally: &mut Tally,
    ) -> Result<Processed, TriggerError> {
        if let Some(a) = &plan.announce
            && self
                .expect_change(&a.entity, a.within_ms, &a.causation, &a.id)
                .await?
        {
            tally.c.expected_changes += 1;
        }
        let echo = self.resolve_echo(event, &mut plan, tally).await?;
        let outcome = self.act(event, held, plan, token, tally).await?;
        Ok(Processed { outcome, echo })
    }

    /// Whether the event is an echo, by lineage or by a rule's expectation; removes from the plan
    /// the rules that do not act on it.
    async fn resolve_echo(
        &self,
        event: &Value,
        plan: &mut Plan,
        tally: &mut Tally,
    ) -> Result<Option<Echo>, TriggerError> {
        let lineage = self.lineage(event).await?;
        let (source, id) = identity(event);
        let ident = format!("{}\n{}", source.unwrap_or_default(), id.unwrap_or_default());
        let now = self.now();
        // Every `echo:` is looked up, also for an event already an echo by lineage: the change it
        // reports is then consumed, instead of waiting to mark a later genuine event.
        let mut expected: Vec<Option<(String, String)>> = Vec::with_capacity(plan.items.len());
        for item in &plan.items {
            let found = match (item.echo_entity(), &self.set.rules[item.rule()].echo) {
                (Some(entity), Some(m)) => self
                    .consume_expected(entity, m.expect_within_ms, &ident, now)
                    .await?
                    .map(|causation| (entity.to_string(), causation)),
                _ => None,
            };
            expected.push(found);
        }
        let mut echo = match (lineage, expected.iter().flatten().next()) {
            (Some((causation, instance)), _) => Echo {
                by: EchoBasis::Lineage,
                causation,
                instance: Some(instance),
                entity: None,
                suppressed: Vec::new(),
            },
            (None, Some((entity, causation))) => Echo {
                by: EchoBasis::Expected,
                causation: causation.clone(),
                instance: None,
                entity: Some(entity.clone()),
                suppressed: Vec::new(),
            },
            (None, None) => return Ok(None),
        };
        let by_lineage = echo.by == EchoBasis::Lineage;
        for (item, found) in std::mem::take(&mut plan.items).into_iter().zip(expected) {
            let rule = &self.set.rules[item.rule()];
            if (by_lineage || found.is_some()) && !rule.echoes {
                tally.rule(&rule.name).echoes_suppressed += 1;
                echo.suppressed.push(rule.name.clone());
            } else {
                plan.items.push(item);
            }
        }
        tally.c.echoes += 1;
        if !echo.suppressed.is_empty() {
            tally.c.echoes_suppressed += 1;
        }
        Ok(Some(echo))
    }

    /// The causation id the event carries back and the instance it names, when the store knows
    /// that instance (Baton performed the effect). A causation id is `<instance id><effect key>`
    /// and effect keys begin with `/`.
    async fn lineage(&self, event: &Value) -> Result<Option<(String, InstanceId)>, TriggerError> {
        let Some(causation) = causation_of(event) else {
            return Ok(None);
        };
        for (i, _) in causation
            .match_indices('/')
            .filter(|(i, _)| *i > 0)
            .take(LINEAGE_SPLITS)
        {
            let id = InstanceId(causation[..i].to_string());
            if self.store().instance(&id).await?.is_some() {
                return Ok(Some((causation.to_string(), id)));
            }
        }
        Ok(None)
    }

    /// Records a change announced for `entity`; false when this announcement (`id`) is already
    /// recorded. A conditional write: announcements from concurrent instances all land.
    async fn expect_change(
        &self,
        entity: &str,
        within_ms: u64,
        causation: &str,
        id: &str,
    ) -> Result<bool, TriggerError> {
        let recorded = EXPECTATIONS
            .update(self.store(), entity, |current| {
                let now = self.now();
                let mut list = current
                    .map(|d| d.value.expected.clone())
                    .unwrap_or_default();
                if list.iter().any(|e| e.id == id) {
                    return Change::Keep(false);
                }
                list.push(Expected {
                    id: id.to_string(),
                    causation: causation.to_string(),
                    at_ms: now,
                    within_ms,
                    consumed_by: None,
                });
                prune_expected(&mut list, now);
                Change::Put(expectations(entity, list), true)
            })
            .await?;
        Ok(recorded)
    }

    /// The causation of the change announced for `entity` that the event `ident` is the echo
    /// of: the one it already consumed (the event processed again), else the oldest one not yet
    /// echoed whose window (the shorter of the announcement's and the rule's) is still open,
    /// which it then consumes.
    async fn consume_expected(
        &self,
        entity: &str,
        within_ms: u64,
        ident: &str,
        now: u64,
    ) -> Result<Option<String>, TriggerError> {
        // Announced or consumed meanwhile: the decision is made again on what is there now.
        let causation = EXPECTATIONS
            .update(self.store(), entity, |current| {
                let Some(current) = current else {
                    return Change::Keep(None);
                };
                let mut list = current.value.expected.clone();
                if let Some(e) = list
                    .iter()
                    .find(|e| e.consumed_by.as_deref() == Some(ident))
                {
                    return Change::Keep(Some(e.causation.clone()));
                }
                let open = list
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| {
                        e.consumed_by.is_none()
                            && now.saturating_sub(e.at_ms) <= within_ms.min(e.within_ms)
                    })
                    .min_by_key(|(_, e)| e.at_ms)
                    .map(|(i, _)| i);
                let Some(i) = open else {
                    return Change::Keep(None);
                };
                list[i].consumed_by = Some(ident.to_string());
                let causation = list[i].causation.clone();
                prune_expected(&mut list, now);
                Change::Put(expectations(entity, list), Some(causation))
            })
            .await?;
        Ok(causation)
    }

    /// Makes an event held back for signal rules visible to listeners when none of them acted on
    /// it (an echo they do not take, or rules changed since it was stored): a copy as received,
    /// marked as derived so the rules do not see it twice. Nothing is dropped.
    async fn release_held(&self, event: &Value) -> Result<(), TriggerError> {
        let (_, id) = identity(event);
        let mut copy = event.clone();
        if let Some(obj) = copy.as_object_mut() {
            obj.insert(
                "id".into(),
                Value::String(format!("{}#{RELEASE_MARK}", id.unwrap_or_default())),
            );
            obj.insert(DERIVED_ATTRIBUTE.into(), Value::String(RELEASE_MARK.into()));
        }
        self.store().put_event(&copy, self.now()).await?;
        self.instances.events().notify();
        Ok(())
    }

    /// Performs a plan's actions for an event (`token` tells apart two acceptances of the same
    /// identity: the event's sequence number, or the quarantine id of a replay).
    async fn act(
        &self,
        event: &Value,
        held: bool,
        plan: Plan,
        token: &str,
        tally: &mut Tally,
    ) -> Result<EventOutcome, TriggerError> {
        let now = self.now();
        let mut actions = Vec::new();
        let mut gated_out = Vec::new();
        if held && !plan.items.iter().any(PlanItem::signals) {
            self.release_held(event).await?;
        }
        for item in plan.items {
            match item {
                PlanItem::Gated { rule, .. } => {
                    let name = self.set.rules[rule].name.clone();
                    tally.c.gated_out += 1;
                    tally.rule(&name).gated_out += 1;
                    gated_out.push(name);
                }
                PlanItem::Act {
                    rule,
                    action,
                    key: Some(key),
                    ..
                } => {
                    let r = &self.set.rules[rule];
                    let due = self.hold(r, &key, event, token, &action, now).await?;
                    tally.c.debounced += 1;
                    tally.rule(&r.name).debounced += 1;
                    actions.push(RuleAction::Debounced {
                        rule: r.name.clone(),
                        key,
                        due_at_ms: due,
                    });
                }
                PlanItem::Act {
                    rule,
                    action,
                    key: None,
                    ..
                } => {
                    let r = &self.set.rules[rule];
                    actions.push(self.perform(r, event, held, token, &action, tally).await?);
                }
            }
        }
        if actions.is_empty() {
            tally.c.unmatched += 1;
            return Ok(EventOutcome::Unmatched { gated_out });
        }
        actions.extend(
            gated_out
                .into_iter()
                .map(|rule| RuleAction::GatedOut { rule }),
        );
        Ok(EventOutcome::Accepted { actions })
    }

    /// Starts or signals, once per (rule, event acceptance) however often it is repeated.
    async fn perform(
        &self,
        rule: &Rule,
        event: &Value,
        held: bool,
        token: &str,
        action: &Planned,
        tally: &mut Tally,
    ) -> Result<RuleAction, TriggerError> {
        let (source, id) = identity(event);
        let (source, id) = (source.unwrap_or_default(), id.unwrap_or_default());
        match action {
            Planned::Start { program, input } => {
                let instance = start_id(&rule.name, &source, &id, token);
                // Already there: this is a repeat of a pass that did not record its cursor.
                // (Starting it again would fail on the journal, and would unhook the running
                // driver's result channel.)
                if self.store().instance(&instance).await?.is_none() {
                    self.instances
                        .start_with_id(instance.clone(), program.clone(), input.clone())
                        .await?;
                    tally.c.started += 1;
                    tally.rule(&rule.name).started += 1;
                }
                Ok(RuleAction::Started {
                    rule: rule.name.clone(),
                    instance,
                })
            }
            Planned::Signal { target } => {
                // An original that the right listeners can already see (not held, and aimed
                // where the rule aims) needs nothing more; otherwise a derived copy is what they
                // get: same attributes and data, the id marked with the rule (a stable
                // identity, so a repeat is a duplicate), aimed at the target.
                let own = event.get(SIGNAL_TARGET).and_then(Value::as_str);
                if held || (target.is_some() && target.as_deref() != own) {
                    let mut derived = event.clone();
                    if let Some(obj) = derived.as_object_mut() {
                        obj.insert("id".into(), Value::String(format!("{id}#{}", rule.name)));
                        obj.insert(DERIVED_ATTRIBUTE.into(), Value::String(rule.name.clone()));
                        // Without a target of its own the copy keeps the sender's, if any.
                        if let Some(t) = target {
                            obj.insert(SIGNAL_TARGET.into(), Value::String(t.clone()));
                        }
                    }
                    self.store().put_event(&derived, self.now()).await?;
                    self.instances.events().notify();
                }
                tally.c.signalled += 1;
                tally.rule(&rule.name).signalled += 1;
                Ok(RuleAction::Signalled {
                    rule: rule.name.clone(),
                    flow: rule.action.flow().to_string(),
                    instance: target.clone().map(InstanceId),
                })
            }
        }
    }

    /// Holds an event for a debounced rule, replacing the one held for the same key and moving
    /// the due time to the end of a new quiet window (the rule's `debounce.window`). Returns
    /// the due time.
    async fn hold(
        &self,
        rule: &Rule,
        key: &Value,
        event: &Value,
        token: &str,
        action: &Planned,
        now: u64,
    ) -> Result<u64, TriggerError> {
        let window_ms = rule.debounce.as_ref().map_or(0, |d| d.window_ms);
        let doc_id = hold_id(&rule.name, key);
        let previous = self.store().doc(HOLD_KIND, &doc_id).await?;
        let count = previous
            .as_ref()
            .and_then(|d| d.body.get("count").and_then(Value::as_u64))
            .unwrap_or(0)
            + 1;
        let due = now.saturating_add(window_ms);
        let planned = match action {
            Planned::Start { input, .. } => json!({"start": {"input": input}}),
            Planned::Signal { target } => json!({"signal": {"target": target}}),
        };
        self.store()
            .put_doc(DocWrite {
                kind: HOLD_KIND.into(),
                id: doc_id,
                status: "held".into(),
                at_ms: due,
                body: json!({
                    "rule": rule.name,
                    "key": key,
                    "event": event,
                    "token": token,
                    "action": planned,
                    "count": count,
                    "first_at_ms": previous
                        .as_ref()
                        .and_then(|d| d.body.get("first_at_ms").and_then(Value::as_u64))
                        .unwrap_or(now),
                }),
                // Holds are written only under the work lock; a writer on another node wins
                // with the later event either way.
                expect: Expect::Any,
            })
            .await?;
        self.holds_changed.notify_one();
        Ok(due)
    }

    /// Fires every hold whose window has ended (and any a crash left half-fired).
    async fn fire_due(&self) -> Result<(), TriggerError> {
        let _work = self.work.lock().await;
        for status in ["firing", "held"] {
            loop {
                let now = self.now();
                let docs = self
                    .store()
                    .docs(
                        HOLD_KIND,
                        &DocQuery {
                            status: Some(status.into()),
                            limit: FIRE_BATCH,
                            ..DocQuery::default()
                        },
                    )
                    .await?;
                let due: Vec<Doc> = docs.into_iter().filter(|d| d.at_ms <= now).collect();
                if due.is_empty() {
                    break;
                }
                let mut tally = Tally::default();
                let mut result = Ok(());
                for doc in due {
                    if let Err(e) = self.fire(doc, &mut tally).await {
                        result = Err(e);
                        break;
                    }
                }
                self.publish(tally);
                result?;
            }
        }
        Ok(())
    }

    async fn fire(&self, doc: Doc, tally: &mut Tally) -> Result<(), TriggerError> {
        // Claim it first (the version check loses to a newer event for the key), so a crash
        // from here on leaves a `firing` hold that the next start fires again.
        let doc = if doc.status == "held" {
            let claimed = self
                .store()
                .put_doc(DocWrite {
                    kind: HOLD_KIND.into(),
                    id: doc.id.clone(),
                    status: "firing".into(),
                    at_ms: doc.at_ms,
                    body: doc.body.clone(),
                    expect: Expect::Version(doc.version),
                })
                .await;
            match claimed {
                Ok(_) => doc,
                Err(StoreError::DocConflict { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        } else {
            doc
        };
        let rule_name = str_of(&doc.body, "rule");
        let event = doc.body.get("event").cloned().unwrap_or(Value::Null);
        let token = str_of(&doc.body, "token");
        match self.set.rules.iter().find(|r| r.name == rule_name) {
            None => {
                // The rule is gone (the file changed): the held event cannot be acted on.
                let reason = format!("debounced by rule `{rule_name}`, which no longer exists");
                self.quarantine(event, &reason, true, self.now()).await?;
                tally.c.quarantined += 1;
            }
            Some(rule) => {
                let planned = match (&rule.action, doc.body.pointer("/action")) {
                    (
                        Action::Start {
                            flow,
                            namespace,
                            version,
                            ..
                        },
                        Some(a),
                    ) => self
                        .instances
                        .resolve_flow(namespace, flow, version)
                        .map(|program| Planned::Start {
                            program,
                            input: a.pointer("/start/input").cloned().unwrap_or(Value::Null),
                        }),
                    (Action::Signal { .. }, Some(a)) => Some(Planned::Signal {
                        target: a
                            .pointer("/signal/target")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    }),
                    _ => None,
                };
                match planned {
                    Some(p) => match self.perform(rule, &event, true, &token, &p, tally).await {
                        Ok(_) => {}
                        Err(e) if e.is_transient() => return Err(e),
                        Err(e) => {
                            let reason = format!(
                                "debounced by rule `{rule_name}`; acting on it failed: {e}"
                            );
                            self.quarantine(event, &reason, true, self.now()).await?;
                            tally.c.quarantined += 1;
                        }
                    },
                    None => {
                        let reason = format!(
                            "debounced by rule `{rule_name}`: its flow {} is not registered (or the hold does not fit the rule)",
                            rule.action.flow()
                        );
                        self.quarantine(event, &reason, true, self.now()).await?;
                        tally.c.quarantined += 1;
                    }
                }
            }
        }
        self.store().delete_doc(HOLD_KIND, &doc.id).await?;
        Ok(())
    }

    /// The earliest due time of a hold.
    async fn next_due(&self) -> Result<Option<u64>, TriggerError> {
        let docs = self
            .store()
            .docs(
                HOLD_KIND,
                &DocQuery {
                    status: Some("held".into()),
                    limit: 1,
                    ..DocQuery::default()
                },
            )
            .await?;
        Ok(docs.first().map(|d| d.at_ms))
    }

    async fn replay(
        &self,
        qid: &str,
        corrected: Option<Value>,
    ) -> Result<EventReport, TriggerError> {
        let doc = self
            .store()
            .doc(QUARANTINE_KIND, qid)
            .await?
            .ok_or_else(|| TriggerError::UnknownQuarantine(qid.to_string()))?;
        if doc.status != "held" {
            return Err(TriggerError::AlreadyReplayed(qid.to_string()));
        }
        let q = quarantined_of(&doc);
        let event = match corrected.clone() {
            Some(v) => v,
            // A body kept as text is parsed again: it may have been JSON cut short by nothing
            // more than a wrong content type.
            None => match &q.raw {
                Value::String(s) if !q.truncated => {
                    serde_json::from_str(s).unwrap_or_else(|_| q.raw.clone())
                }
                other => other.clone(),
            },
        };
        let now = self.now();
        let (source, id) = identity(&event);
        let mut report = EventReport {
            index: 0,
            source,
            id,
            outcome: EventOutcome::Duplicate,
            echo: None,
        };
        let failed = if q.stored {
            // Already in the log: act on it (corrected) without storing it again.
            let _work = self.work.lock().await;
            let mut tally = Tally::default();
            match validate_cloud_event(&event).and_then(|()| self.plan(&event, Some(&mut tally))) {
                Err(reason) => Some(reason),
                Ok(plan) => {
                    tally.c.accepted += 1;
                    let held = plan.routes(&self.set.rules);
                    let processed = self.settle(&event, held, plan, qid, &mut tally).await;
                    self.publish(tally);
                    let processed = processed?;
                    report.outcome = processed.outcome;
                    report.echo = processed.echo;
                    None
                }
            }
        } else {
            match self.store_event(event, now).await {
                Err(Refused::Invalid(_, reason)) => Some(reason),
                Err(Refused::Conflict(raw, _)) => Some(conflict_reason(&raw)),
                Err(Refused::Store(e)) => return Err(e.into()),
                Ok(Stored::Duplicate) => {
                    let mut tally = Tally::default();
                    tally.c.duplicate += 1;
                    self.publish(tally);
                    None
                }
                Ok(Stored::Fresh(ident)) => {
                    let processed = self.process_pending().await;
                    let outcome = self.release(&ident);
                    processed?;
                    if let Some(p) = outcome {
                        report.outcome = p.outcome;
                        report.echo = p.echo;
                    }
                    None
                }
            }
        };
        match failed {
            Some(reason) => {
                // Still not processable: the same document stays held, with the new reason.
                let mut body = doc.body.clone();
                body["reason"] = Value::String(reason.clone());
                let attempts = body
                    .get("replay_attempts")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                body["replay_attempts"] = json!(attempts + 1);
                if let Some(c) = corrected {
                    body["raw"] = c;
                }
                self.store()
                    .put_doc(DocWrite {
                        kind: QUARANTINE_KIND.into(),
                        id: qid.to_string(),
                        status: "held".into(),
                        at_ms: doc.at_ms,
                        body,
                        expect: Expect::Version(doc.version),
                    })
                    .await?;
                report.outcome = EventOutcome::Quarantined {
                    quarantine_id: qid.to_string(),
                    reason,
                };
            }
            None => {
                let mut body = doc.body.clone();
                body["replayed_at_ms"] = json!(now);
                body["replay"] = serde_json::to_value(&report.outcome).unwrap_or(Value::Null);
                if let Some(c) = corrected {
                    body["corrected"] = c;
                }
                self.store()
                    .put_doc(DocWrite {
                        kind: QUARANTINE_KIND.into(),
                        id: qid.to_string(),
                        status: "replayed".into(),
                        at_ms: doc.at_ms,
                        body,
                        expect: Expect::Version(doc.version),
                    })
                    .await?;
                let mut tally = Tally::default();
                tally.c.replayed += 1;
                self.publish(tally);
            }
        }
        Ok(report)
    }
}

fn hold_id(rule: &str, key: &Value) -> String {
    match key {
        Value::String(s) => format!("{rule}\n{s}"),
        other => format!("{rule}\n{other}"),
    }
}

enum Stored {
    Fresh((String, String)),
    Duplicate,
}

enum Refused {
    /// Not processable: the event (as received) and why.
    Invalid(Value, String),
    /// The same `source` and `id` as a stored event, with other data: the event, the first.
    Conflict(Value, Value),
    Store(StoreError),
}

/// The engine's background work: process events stored by any path, fire due holds, sleep
/// until the next due time, an event or a hold change (from any process).
async fn background<S: Store>(inner: Arc<Inner<S>>) {
    // Events stored and holds written by any process over the store (another node, a CLI) wake
    // the engine through the store's watch; this runtime's own through the bus and the notify.
    let mut elsewhere = inner.store.watch_events();
    let mut held_elsewhere = inner.store.watch(&[(HOLD_KIND, KeyRange::All)]);
    loop {
        let events = inner.instances.events().notified();
        let holds = inner.holds_changed.notified();
        tokio::pin!(events);
        tokio::pin!(holds);
        // Registered before looking, so a wake-up in between is not lost.
        events.as_mut().enable();
        holds.as_mut().enable();
        if let Err(e) = inner.process_pending().await {
            tracing::warn!(error = %e, "trigger processing failed; will retry");
        }
        if let Err(e) = inner.fire_due().await {
            tracing::warn!(error = %e, "firing debounced events failed; will retry");
        }
        // The next due hold, or (when reading it failed) a retry in a while.
        let wake_at = match inner.next_due().await {
            Ok(due) => due,
            Err(_) => Some(inner.now().saturating_add(RETRY_MS)),
        };
        let sleep = async {
            match wake_at {
                Some(at) => inner.clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = events => {}
            _ = holds => {}
            _ = sleep => {}
            woke = elsewhere.changed() => {
                if woke.is_err() {
                    // The store is closed: nothing more to process.
                    return;
                }
            }
            woke = held_elsewhere.changed() => {
                if woke.is_err() {
                    return;
                }
            }
        }
    }
}
