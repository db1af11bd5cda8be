//! Durable storage of flows, instances, journals and events: the [`Store`] trait, an in-memory
//! model ([`MemoryStore`]) and the embedded SQLite store ([`SqliteStore`]).
//!
//! Architecture invariant: `append` returns only once the entries are durable (for SQLite: the
//! transaction holding them has committed in WAL mode with `synchronous=FULL`). Appends from many
//! instances are committed together (group commit), so durability costs one fsync per batch, not
//! per step.

mod collection;
pub mod conformance;
mod memory;
mod sqlite;
mod watch;

use std::future::Future;

use baton_core::{FlowRef, InstanceId, JournalEntry, Problem, Status};
use serde::Serialize;
use serde_json::Value;

pub use collection::{Change, Collection, Entry, Pages, Stored, UPDATE_ATTEMPTS_MAX};
pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use watch::{DocWatch, KeyRange, WatchHub};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store I/O error: {0}")]
    Io(String),
    #[error(
        "journal conflict for instance {instance}: expected next sequence {expected}, store has {found}"
    )]
    Conflict {
        instance: String,
        expected: u64,
        found: u64,
    },
    #[error("unknown instance {0}")]
    UnknownInstance(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("the store is closed")]
    Closed,
    /// A conditional document write found another version than the one it expected.
    #[error("document {kind}/{id} changed: expected {expected:?}, found {found:?}")]
    DocConflict {
        kind: String,
        id: String,
        expected: Expect,
        found: Option<u64>,
    },
}

/// Which instances to list: filters, newest first, and a cursor.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub status: Option<Status>,
    /// Flow name (any namespace).
    pub flow: Option<String>,
    pub version: Option<String>,
    /// Only instances created before this one (the cursor of the previous page).
    pub before: Option<InstanceId>,
    pub limit: usize,
}

impl InstanceQuery {
    pub fn newest(limit: usize) -> InstanceQuery {
        InstanceQuery {
            limit,
            ..InstanceQuery::default()
        }
    }

    pub(crate) fn admits(&self, r: &InstanceRecord) -> bool {
        self.status.is_none_or(|s| r.status == s)
            && self.flow.as_ref().is_none_or(|f| &r.flow.name == f)
            && self.version.as_ref().is_none_or(|v| &r.flow.version == v)
    }
}

/// A registered flow version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    pub flow: FlowRef,
    /// Registration order (1-based); the newest version of a name has the highest.
    pub seq: u64,
}

/// A document of one of the small collections beside the journals: approval tasks, quarantined
/// events, the audit trail, idempotent-start keys, trigger state. Each is JSON with an id, a
/// status and a time it is listed by (a due time, an arrival time), and a version that
/// conditional writes compare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Doc {
    pub kind: String,
    pub id: String,
    pub status: String,
    pub at_ms: u64,
    /// 1 for the first write, +1 for each later one.
    pub version: u64,
    pub body: Value,
}

/// The condition of a document write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there.
    Any,
    /// Only create: fail if the document exists.
    Absent,
    /// Only replace this version.
    Version(u64),
}

/// A document to write (the store assigns the version).
#[derive(Debug, Clone, PartialEq)]
pub struct DocWrite {
    pub kind: String,
    pub id: String,
    pub status: String,
    pub at_ms: u64,
    pub body: Value,
    pub expect: Expect,
}

/// Which documents of a kind to list, ordered by `(at_ms, id)`.
#[derive(Debug, Clone, Default)]
pub struct DocQuery {
    pub status: Option<String>,
    /// Newest (`at_ms` highest) first when true.
    pub newest_first: bool,
    /// Continue after this `(at_ms, id)` (the cursor of the previous page) in the list's order.
    pub after: Option<(u64, String)>,
    pub limit: usize,
}

impl DocQuery {
    /// Documents whose time is `at_ms` or later, earliest first (pending holds, waits and
    /// deadlines not yet passed).
    pub fn from_time(at_ms: u64, limit: usize) -> DocQuery {
        DocQuery {
            status: None,
            newest_first: false,
            after: Some((at_ms, String::new())),
            limit,
        }
    }

    /// The cursor of a list: `<at_ms>_<id>` of its last document, as the API hands it out.
    pub fn cursor_of(doc: &Doc) -> String {
        format!("{}_{}", doc.at_ms, doc.id)
    }

    /// Reads a cursor made by [`DocQuery::cursor_of`].
    pub fn parse_cursor(cursor: &str) -> Option<(u64, String)> {
        let (at, id) = cursor.split_once('_')?;
        Some((at.parse().ok()?, id.to_string()))
    }

    pub(crate) fn admits(&self, d: &Doc) -> bool {
        if self.status.as_ref().is_some_and(|s| &d.status != s) {
            return false;
        }
        match &self.after {
            None => true,
            Some((at, id)) => {
                let key = (d.at_ms, d.id.as_str());
                if self.newest_first {
                    key < (*at, id.as_str())
                } else {
                    key > (*at, id.as_str())
                }
            }
        }
    }
}

/// A summary row of an instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub flow: FlowRef,
    pub status: Status,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub journal_len: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// A batch of entries for one instance, starting at sequence `first_seq` (0-based).
#[derive(Debug, Clone)]
pub struct Append {
    pub instance: InstanceId,
    pub first_seq: u64,
    pub entries: Vec<JournalEntry>,
    /// The status after these entries.
    pub status: Status,
}

/// An inbound CloudEvent held by the store, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event: Value,
}

/// Storage for the runtime. Every implementation passes the same conformance suite
/// ([`conformance`], run for each backend by `tests/conformance.rs`).
/// The name under which the event log's changes reach watches: [`Store::watch_events`] wakes
/// when an event is stored (not for a duplicate), through any handle over the same store. No
/// document kind may use it.
pub const EVENT_LOG: &str = "~events";

pub trait Store: DocStore {
    /// Keeps a flow's source by its hash (idempotent).
    fn put_flow(
        &self,
        flow: &FlowRef,
        source: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn flow_source(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Appends durably. The first batch of an instance must start with `started`.
    fn append(&self, batch: Append) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn journal(
        &self,
        id: &InstanceId,
    ) -> impl Future<Output = Result<Vec<JournalEntry>, StoreError>> + Send;
    fn instance(
        &self,
        id: &InstanceId,
    ) -> impl Future<Output = Result<Option<InstanceRecord>, StoreError>> + Send;
    /// Registered flow versions, in registration order.
    fn flows(&self) -> impl Future<Output = Result<Vec<FlowRecord>, StoreError>> + Send;
    /// Instances, newest first, filtered as the query says.
    fn instances(
        &self,
        query: &InstanceQuery,
    ) -> impl Future<Output = Result<Vec<InstanceRecord>, StoreError>> + Send;
    /// How many instances there are in each status (statuses with none are left out).
    fn instance_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<(Status, u64)>, StoreError>> + Send;
    /// Instances not yet completed, faulted or cancelled.
    fn unfinished(&self) -> impl Future<Output = Result<Vec<InstanceRecord>, StoreError>> + Send;
    /// Stores an inbound event; `false` when an event with the same `source` and `id` is already
    /// there (CloudEvents dedupe).
    fn put_event(
        &self,
        event: &Value,
        received_at_ms: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Forgets events received before `received_before_ms` (their dedupe identities with them);
    /// returns how many.
    fn prune_events(
        &self,
        received_before_ms: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Events with a sequence greater than `after`, oldest first, at most `limit`.
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
    /// The stored event with this CloudEvents identity (`source` + `id`), if the store still
    /// remembers it: what a duplicate is compared with.
    fn event_by_identity(
        &self,
        source: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;
    /// Subscribes to the event log: wakes when an event is stored after the subscription,
    /// through this handle or any other over the same store (another process's included).
    /// Subscribe before reading the log; see [`DocWatch`].
    fn watch_events(&self) -> DocWatch {
        // Every stored event is logged as `EVENT_LOG` with the id "": an exact watch of that one
        // key, so the hub finds the (possibly many) listening instances by lookup, not by a scan
        // of its ranged watches on every document change.
        self.watch(&[(EVENT_LOG, KeyRange::Exact(String::new()))])
    }
}

/// The document collections. Writes are durable when they return, like appends.
pub trait DocStore: Send + Sync + 'static {
    /// Writes a document if `expect` holds; returns its new version, or
    /// [`StoreError::DocConflict`].
    fn put_doc(&self, doc: DocWrite) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn doc(
        &self,
        kind: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Doc>, StoreError>> + Send;
    fn docs(
        &self,
        kind: &str,
        query: &DocQuery,
    ) -> impl Future<Output = Result<Vec<Doc>, StoreError>> + Send;
    /// Removes a document; false when it was not there.
    fn delete_doc(
        &self,
        kind: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes a document if it is still at `version`: true when removed, false when it was not
    /// there, [`StoreError::DocConflict`] when another write came first.
    fn delete_doc_at(
        &self,
        kind: &str,
        id: &str,
        version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// How many documents of a kind (with a status) there are.
    fn count_docs(
        &self,
        kind: &str,
        status: Option<&str>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Subscribes to changes of the documents `targets` name (a write or a delete, once
    /// committed), made through this handle or any other over the same store, another process's
    /// included. Subscribe before reading what you wait on; see [`DocWatch`].
    fn watch(&self, targets: &[(&str, KeyRange)]) -> DocWatch;
}

pub(crate) fn check_expect(
    kind: &str,
    id: &str,
    expect: Expect,
    found: Option<u64>,
) -> Result<(), StoreError> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => found.is_none(),
        Expect::Version(v) => found == Some(v),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::DocConflict {
            kind: kind.to_string(),
            id: id.to_string(),
            expected: expect,
            found,
        })
    }
}

/// Derives the summary fields an append changes.
pub(crate) fn terminal_fields(entries: &[JournalEntry]) -> (Option<Value>, Option<Problem>) {
    let mut output = None;
    let mut error = None;
    for e in entries {
        match e {
            JournalEntry::Completed { output: o, .. } => output = Some(o.clone()),
            JournalEntry::Faulted { problem, .. } => error = Some(problem.clone()),
            _ => {}
        }
    }
    (output, error)
}

pub(crate) fn event_identity(event: &Value) -> (String, String) {
    let s = |k: &str| {
        event
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (s("source"), s("id"))
}
