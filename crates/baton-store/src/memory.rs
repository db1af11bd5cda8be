//! The in-memory model store: the reference behaviour the SQLite store is tested against, and the
//! store of the deterministic simulation (where a "crash" drops the runtime but keeps this).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use baton_core::{InstanceId, JournalEntry};
use serde_json::Value;

use crate::watch::{DocWatch, KeyRange, WatchHub};
use crate::{
    Append, Doc, DocQuery, DocStore, DocWrite, FlowRecord, InstanceQuery, InstanceRecord, Store,
    StoreError, StoredEvent, check_expect, event_identity, terminal_fields,
};

#[derive(Default)]
struct Inner {
    flows: HashMap<String, String>,
    flow_list: Vec<FlowRecord>,
    instances: BTreeMap<InstanceId, (InstanceRecord, Vec<JournalEntry>)>,
    order: Vec<InstanceId>,
    /// `(seq, received_at_ms, event)`, in arrival order.
    events: Vec<(u64, u64, Value)>,
    event_ids: HashSet<(String, String)>,
    event_seq: u64,
    docs: BTreeMap<(String, String), Doc>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Woken after each document write, once the lock is released.
    hub: Arc<WatchHub>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put_doc_sync(&self, w: DocWrite) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let key = (w.kind.clone(), w.id.clone());
        let found = inner.docs.get(&key).map(|d| d.version);
        check_expect(&w.kind, &w.id, w.expect, found)?;
        let version = found.unwrap_or(0) + 1;
        inner.docs.insert(
            key,
            Doc {
                kind: w.kind,
                id: w.id,
                status: w.status,
                at_ms: w.at_ms,
                version,
                body: w.body,
            },
        );
        Ok(version)
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
        let mut inner = self.lock();
        if inner.flows.contains_key(&flow.hash) {
            return Ok(());
        }
        inner.flows.insert(flow.hash.clone(), source.to_string());
        let seq = inner.flow_list.len() as u64 + 1;
        inner.flow_list.push(FlowRecord {
            flow: flow.clone(),
            seq,
        });
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

    async fn flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        Ok(self.lock().flow_list.clone())
    }

    async fn instances(&self, query: &InstanceQuery) -> Result<Vec<InstanceRecord>, StoreError> {
        let inner = self.lock();
        let newest_first = inner.order.iter().rev();
        let skip = match &query.before {
            // Everything up to and including the cursor was on earlier pages.
            Some(before) => match inner.order.iter().rev().position(|id| id == before) {
                Some(i) => i + 1,
                None => return Ok(Vec::new()),
            },
            None => 0,
        };
        Ok(newest_first
            .skip(skip)
            .filter_map(|id| inner.instances.get(id).map(|(r, _)| r))
            .filter(|r| query.admits(r))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn instance_counts(&self) -> Result<Vec<(baton_core::Status, u64)>, StoreError> {
        let inner = self.lock();
        let mut counts: BTreeMap<&'static str, (baton_core::Status, u64)> = BTreeMap::new();
        for (r, _) in inner.instances.values() {
            counts.entry(r.status.as_str()).or_insert((r.status, 0)).1 += 1;
        }
        Ok(counts.into_values().collect())
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

    async fn put_event(&self, event: &Value, received_at_ms: u64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if !inner.event_ids.insert(event_identity(event)) {
            return Ok(false);
        }
        inner.event_seq += 1;
        let seq = inner.event_seq;
        inner.events.push((seq, received_at_ms, event.clone()));
        drop(inner);
        self.hub.changed(crate::EVENT_LOG, "");
        Ok(true)
    }

    async fn prune_events(&self, received_before_ms: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.events)
            .into_iter()
            .partition(|(_, at, _)| *at < received_before_ms);
        for (_, _, e) in &old {
            inner.event_ids.remove(&event_identity(e));
        }
        inner.events = keep;
        Ok(old.len() as u64)
    }

    async fn event_by_identity(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let wanted = (source.to_string(), id.to_string());
        Ok(self
            .lock()
            .events
            .iter()
            .find(|(_, _, e)| event_identity(e) == wanted)
            .map(|(seq, _, e)| StoredEvent {
                seq: *seq,
                event: e.clone(),
            }))
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .events
            .iter()
            .filter(|(seq, _, _)| *seq > after)
            .take(limit)
            .map(|(seq, _, e)| StoredEvent {
                seq: *seq,
                event: e.clone(),
            })
            .collect())
    }
}

impl DocStore for MemoryStore {
    async fn put_doc(&self, w: DocWrite) -> Result<u64, StoreError> {
        let key = (w.kind.clone(), w.id.clone());
        let version = self.put_doc_sync(w)?;
        self.hub.changed(&key.0, &key.1);
        Ok(version)
    }

    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>, StoreError> {
        Ok(self
            .lock()
            .docs
            .get(&(kind.to_string(), id.to_string()))
            .cloned())
    }

    async fn docs(&self, kind: &str, query: &DocQuery) -> Result<Vec<Doc>, StoreError> {
        let inner = self.lock();
        let mut all: Vec<&Doc> = inner
            .docs
            .values()
            .filter(|d| d.kind == kind && query.admits(d))
            .collect();
        all.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        if query.newest_first {
            all.reverse();
        }
        Ok(all.into_iter().take(query.limit).cloned().collect())
    }

    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        let removed = self
            .lock()
            .docs
            .remove(&(kind.to_string(), id.to_string()))
            .is_some();
        if removed {
            self.hub.changed(kind, id);
        }
        Ok(removed)
    }

    async fn delete_doc_at(&self, kind: &str, id: &str, version: u64) -> Result<bool, StoreError> {
        let key = (kind.to_string(), id.to_string());
        {
            let mut inner = self.lock();
            let Some(found) = inner.docs.get(&key).map(|d| d.version) else {
                return Ok(false);
            };
            check_expect(kind, id, crate::Expect::Version(version), Some(found))?;
            inner.docs.remove(&key);
        }
        self.hub.changed(kind, id);
        Ok(true)
    }

    fn watch(&self, targets: &[(&str, KeyRange)]) -> DocWatch {
        self.hub.subscribe(targets)
    }

    async fn count_docs(&self, kind: &str, status: Option<&str>) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .docs
            .values()
            .filter(|d| d.kind == kind && status.is_none_or(|s| d.status == s))
            .count() as u64)
    }
}
