//! The in-memory model store: the reference behaviour the SQLite store is tested against, and the
//! store of the deterministic simulation (where a "crash" drops the runtime but keeps this).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use baton_core::{InstanceId, JournalEntry, Status};
use serde_json::Value;

use crate::{
    Append, InstanceRecord, Store, StoreError, StoredEvent, event_identity, terminal_fields,
};

#[derive(Default)]
struct Inner {
    flows: HashMap<String, String>,
    instances: BTreeMap<InstanceId, (InstanceRecord, Vec<JournalEntry>)>,
    order: Vec<InstanceId>,
    events: Vec<Value>,
    event_ids: HashSet<(String, String)>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_sync(&self, batch: Append) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Append {
            instance,
            first_seq,
            entries,
            status,
        } = batch;
        let now = entries.last().map(JournalEntry::at_ms).unwrap_or(0);
        let (output, error) = terminal_fields(&entries);
        match inner.instances.get_mut(&instance) {
            Some((rec, journal)) => {
                if journal.len() as u64 != first_seq {
                    return Err(StoreError::Conflict {
                        instance: instance.0,
                        expected: first_seq,
                        found: journal.len() as u64,
                    });
                }
                journal.extend(entries);
                rec.status = status;
                rec.updated_at_ms = now;
                rec.journal_len = journal.len() as u64;
                if output.is_some() {
                    rec.output = output;
                }
                if error.is_some() {
                    rec.error = error;
                }
            }
            None => {
                let Some(JournalEntry::Started { at_ms, flow, .. }) = entries.first() else {
                    return Err(StoreError::UnknownInstance(instance.0));
                };
                if first_seq != 0 {
                    return Err(StoreError::Conflict {
                        instance: instance.0,
                        expected: first_seq,
                        found: 0,
                    });
                }
                let rec = InstanceRecord {
                    id: instance.clone(),
                    flow: flow.clone(),
                    status,
                    created_at_ms: *at_ms,
                    updated_at_ms: now,
                    journal_len: entries.len() as u64,
                    output,
                    error,
                };
                inner.order.push(instance.clone());
                inner.instances.insert(instance, (rec, entries));
            }
        }
        Ok(())
    }
}

impl Store for MemoryStore {
    async fn put_flow(&self, flow: &baton_core::FlowRef, source: &str) -> Result<(), StoreError> {
        self.lock()
            .flows
            .entry(flow.hash.clone())
            .or_insert_with(|| source.to_string());
        Ok(())
    }

    async fn flow_source(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().flows.get(hash).cloned())
    }

    async fn append(&self, batch: Append) -> Result<(), StoreError> {
        self.append_sync(batch)
    }

    async fn journal(&self, id: &InstanceId) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(self
            .lock()
            .instances
            .get(id)
            .map(|(_, j)| j.clone())
            .unwrap_or_default())
    }

    async fn instance(&self, id: &InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
        Ok(self.lock().instances.get(id).map(|(r, _)| r.clone()))
    }

    async fn instances(
        &self,
        status: Option<Status>,
        limit: usize,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.instances.get(id).map(|(r, _)| r))
            .filter(|r| status.is_none_or(|s| r.status == s))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn unfinished(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .order
            .iter()
            .filter_map(|id| inner.instances.get(id).map(|(r, _)| r))
            .filter(|r| !r.status.is_terminal())
            .cloned()
            .collect())
    }

    async fn put_event(&self, event: &Value) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if !inner.event_ids.insert(event_identity(event)) {
            return Ok(false);
        }
        inner.events.push(event.clone());
        Ok(true)
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| StoredEvent {
                seq: i as u64 + 1,
                event: e.clone(),
            })
            .filter(|e| e.seq > after)
            .take(limit)
            .collect())
    }
}
