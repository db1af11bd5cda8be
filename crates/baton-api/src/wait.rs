//! Waits that outlive a call's future: a document per wait (a fact hold, a claim waiting its
//! turn), so a restart keeps the deadline and the dashboard can list who waits for what.

use std::sync::Arc;

use baton_store::{Collection, DocQuery, DocStore, Entry, StoreError};
use serde_json::Value;

/// A document that exists only while a call waits (a hold, a claim waiting its turn). Removed
/// when the wait ends; if the waiting call is dropped instead (its instance was cancelled), the
/// removal is spawned so the dashboard does not list a wait nobody is doing.
pub struct WaitDoc<S: DocStore> {
    store: Arc<S>,
    kind: &'static str,
    id: String,
    armed: bool,
}

impl<S: DocStore> WaitDoc<S> {
    pub fn new(store: Arc<S>, kind: &'static str, id: &str) -> Self {
        WaitDoc {
            store,
            kind,
            id: id.to_string(),
            armed: true,
        }
    }

    pub async fn finish(mut self) -> Result<(), StoreError> {
        self.armed = false;
        self.store.delete_doc(self.kind, &self.id).await?;
        Ok(())
    }
}

impl<S: DocStore> Drop for WaitDoc<S> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (store, kind, id) = (self.store.clone(), self.kind, self.id.clone());
            handle.spawn(async move {
                let _ = store.delete_doc(kind, &id).await;
            });
        }
    }
}

/// Reads the deadline of a wait from its document, or creates the document: a call performed
/// again after a restart keeps the deadline it had, so a hold cannot be stretched by crashes.
pub async fn open_wait<S: DocStore>(
    store: &S,
    kind: &'static str,
    id: &str,
    body: Value,
    until_ms: u64,
) -> Result<u64, StoreError> {
    let waits: Collection<Value> = Collection::new(kind);
    match waits
        .create(store, id, &Entry::new("waiting", until_ms, body))
        .await?
    {
        None => Ok(until_ms),
        Some(existing) => Ok(existing.at_ms),
    }
}

/// Removes waits whose deadline passed long ago (left behind by a process that stopped while
/// waiting and never performed the call again), a page at a time, so the collection stays
/// bounded.
pub async fn prune_waits<S: DocStore>(
    store: &S,
    kind: &'static str,
    before_ms: u64,
) -> Result<(), StoreError> {
    let old = store
        .docs(
            kind,
            &DocQuery {
                status: None,
                newest_first: false,
                after: None,
                limit: 100,
            },
        )
        .await?;
    for d in old.iter().filter(|d| d.at_ms < before_ms) {
        store.delete_doc(kind, &d.id).await?;
    }
    Ok(())
}

/// A duration for people and reasons: `850ms`, `42s`, `14m30s`, `6h`, `2d03h`.
pub fn human_ms(ms: u64) -> String {
    const S: u64 = 1000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;
    const D: u64 = 24 * H;
    let two = |big: u64, unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small:02}{small_unit}")
        }
    };
    match ms {
        ms if ms < S => format!("{ms}ms"),
        ms if ms < M => format!("{}s", ms / S),
        ms if ms < H => two(ms / M, "m", (ms % M) / S, "s"),
        ms if ms < D => two(ms / H, "h", (ms % H) / M, "m"),
        ms => two(ms / D, "d", (ms % D) / H, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(42_000), "42s");
        assert_eq!(human_ms(15 * 60_000), "15m");
        assert_eq!(human_ms(14 * 60_000 + 30_000), "14m30s");
        assert_eq!(human_ms(6 * 3_600_000), "6h");
        assert_eq!(human_ms(6 * 3_600_000 + 5 * 60_000), "6h05m");
        assert_eq!(human_ms(51 * 3_600_000), "2d03h");
    }
}
