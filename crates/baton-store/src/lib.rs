//! Durable storage of flows, instances, journals and events: the [`Store`] trait, an in-memory
//! model ([`MemoryStore`]) and the embedded SQLite store ([`SqliteStore`]).
//!
//! Architecture invariant: `append` returns only once the entries are durable (for SQLite: the
//! transaction holding them has committed in WAL mode with `synchronous=FULL`). Appends from many
//! instances are committed together (group commit), so durability costs one fsync per batch, not
//! per step.

mod memory;
mod sqlite;

use std::future::Future;

use baton_core::{FlowRef, InstanceId, JournalEntry, Problem, Status};
use serde::Serialize;
use serde_json::Value;

pub use memory::MemoryStore;
pub use sqlite::{SqliteOptions, SqliteStore};

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

/// Storage for the runtime. Every implementation passes the same conformance tests
/// (`tests/conformance.rs`).
pub trait Store: Send + Sync + 'static {
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
    /// Instances, newest first, optionally only those in `status`, at most `limit`.
    fn instances(
        &self,
        status: Option<Status>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<InstanceRecord>, StoreError>> + Send;
    /// Instances not yet completed, faulted or cancelled.
    fn unfinished(&self) -> impl Future<Output = Result<Vec<InstanceRecord>, StoreError>> + Send;
    /// Stores an inbound event; `false` when an event with the same `source` and `id` is already
    /// there (CloudEvents dedupe).
    fn put_event(&self, event: &Value) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Events with a sequence greater than `after`, oldest first, at most `limit`.
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
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
