//! Change notification owned by the store: a waiter subscribes to documents (one id, an id
//! prefix, or a whole kind) and is woken when a write to them commits, whoever wrote it.
//!
//! Why in the store and not beside it: a waiter in one process (an approval call, a claim
//! waiting its turn, a fact hold) must learn of a change made by another process over the same
//! store (a CLI, a second node). Each backend feeds its [`WatchHub`] from what it can observe of
//! commits: the memory store after each write; SQLite from a change log written in the same
//! transaction as the documents and read by a poller that watches `PRAGMA data_version`; a
//! server backend from its own notifications. The hub itself is backend-neutral.
//!
//! A wake-up says only "look again": the waiter re-reads what it cares about. Spurious wake-ups
//! are allowed (and happen when a backend cannot tell what changed: it wakes everyone); a missed
//! wake-up is not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

use crate::StoreError;

/// Which documents of a kind a watch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Every document of the kind.
    All,
    /// The document with this id.
    Exact(String),
    /// Documents whose id starts with this.
    Prefix(String),
}

impl KeyRange {
    fn admits(&self, id: &str) -> bool {
        match self {
            KeyRange::All => true,
            KeyRange::Exact(x) => x == id,
            KeyRange::Prefix(p) => id.starts_with(p.as_str()),
        }
    }
}

type Signal = watch::Sender<u64>;

#[derive(Default)]
struct Subscribers {
    /// `(kind, id)` → the watches of exactly that document: the common case (one waiting call,
    /// one document), found without a scan however many calls wait.
    exact: HashMap<(String, String), Vec<Weak<Signal>>>,
    /// Watches of a prefix or a whole kind (live views): few, scanned per change.
    ranged: Vec<(String, KeyRange, Weak<Signal>)>,
}

/// The subscribers of one store handle. Backends call [`WatchHub::changed`] for every committed
/// document change, or [`WatchHub::changed_all`] when they cannot tell which.
#[derive(Default)]
pub struct WatchHub {
    subscribers: Mutex<Subscribers>,
    closed: AtomicBool,
}

impl WatchHub {
    pub fn new() -> Arc<WatchHub> {
        Arc::new(WatchHub::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to the documents `targets` name. Subscribe before reading: a change committed
    /// after the subscription is then never missed.
    pub fn subscribe(self: &Arc<Self>, targets: &[(&str, KeyRange)]) -> DocWatch {
        let signal = Arc::new(watch::Sender::new(0u64));
        let mut rx = signal.subscribe();
        rx.mark_unchanged();
        let mut subs = self.lock();
        let mut exact_keys = Vec::new();
        for (kind, range) in targets {
            match range {
                KeyRange::Exact(id) => {
                    let key = ((*kind).to_string(), id.clone());
                    subs.exact
                        .entry(key.clone())
                        .or_default()
                        .push(Arc::downgrade(&signal));
                    exact_keys.push(key);
                }
                _ => {
                    subs.ranged
                        .push(((*kind).to_string(), range.clone(), Arc::downgrade(&signal)))
                }
            }
        }
        drop(subs);
        DocWatch {
            rx,
            registration: Registration {
                hub: Arc::downgrade(self),
                signal,
                exact_keys,
                ranged: targets
                    .iter()
                    .any(|(_, r)| !matches!(r, KeyRange::Exact(_))),
            },
        }
    }

    /// Whether anyone watches anything (a poller may skip reading what changed when nobody does).
    pub fn has_subscribers(&self) -> bool {
        let subs = self.lock();
        !subs.exact.is_empty() || !subs.ranged.is_empty()
    }

    /// A change of `kind/id` committed: wakes the watches that cover it.
    pub fn changed(&self, kind: &str, id: &str) {
        let subs = self.lock();
        if let Some(list) = subs.exact.get(&(kind.to_string(), id.to_string())) {
            for s in list.iter().filter_map(Weak::upgrade) {
                s.send_modify(|n| *n += 1);
            }
        }
        for (k, range, s) in &subs.ranged {
            if k == kind
                && range.admits(id)
                && let Some(s) = s.upgrade()
            {
                s.send_modify(|n| *n += 1);
            }
        }
    }

    /// Something changed but the backend cannot tell what (its change log was pruned past the
    /// point it had read): wakes every watch, which then re-reads.
    pub fn changed_all(&self) {
        let subs = self.lock();
        let all = subs
            .exact
            .values()
            .flatten()
            .chain(subs.ranged.iter().map(|(_, _, s)| s));
        for s in all.filter_map(Weak::upgrade) {
            s.send_modify(|n| *n += 1);
        }
    }

    /// The store closed: every watch wakes and then reports [`StoreError::Closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.changed_all();
    }
}

/// One subscription. Dropping it unsubscribes.
pub struct DocWatch {
    rx: watch::Receiver<u64>,
    registration: Registration,
}

impl DocWatch {
    /// Waits for the next change to a watched document after the subscription or the previous
    /// return; [`StoreError::Closed`] once the store is closed.
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        let closed = |r: &Registration| {
            r.hub
                .upgrade()
                .is_none_or(|h| h.closed.load(Ordering::SeqCst))
        };
        if closed(&self.registration) {
            return Err(StoreError::Closed);
        }
        // The sender is the registration's own, so `changed` cannot fail while we hold it.
        let _ = self.rx.changed().await;
        if closed(&self.registration) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }
}

impl std::fmt::Debug for DocWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocWatch")
            .field("exact", &self.registration.exact_keys)
            .finish_non_exhaustive()
    }
}

struct Registration {
    hub: Weak<WatchHub>,
    signal: Arc<Signal>,
    exact_keys: Vec<(String, String)>,
    ranged: bool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let me = Arc::downgrade(&self.signal);
        let mut subs = hub.lock();
        for key in &self.exact_keys {
            if let Some(list) = subs.exact.get_mut(key) {
                list.retain(|w| !w.ptr_eq(&me) && w.strong_count() > 0);
                if list.is_empty() {
                    subs.exact.remove(key);
                }
            }
        }
        if self.ranged {
            subs.ranged
                .retain(|(_, _, w)| !w.ptr_eq(&me) && w.strong_count() > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_exactly_what_it_covers() {
        let hub = WatchHub::new();
        let mut one = hub.subscribe(&[("approval", KeyRange::Exact("a1".into()))]);
        let mut kind = hub.subscribe(&[("claim", KeyRange::All), ("claim_wait", KeyRange::All)]);
        let mut prefix = hub.subscribe(&[("fact", KeyRange::Prefix("sku-1/".into()))]);
        hub.changed("approval", "a2");
        hub.changed("fact", "sku-2/stock");
        assert!(!one.rx.has_changed().unwrap());
        assert!(!prefix.rx.has_changed().unwrap());
        hub.changed("approval", "a1");
        hub.changed("claim_wait", "x");
        hub.changed("fact", "sku-1/stock");
        one.changed().await.unwrap();
        kind.changed().await.unwrap();
        prefix.changed().await.unwrap();
    }

    #[tokio::test]
    async fn dropping_unsubscribes_and_close_ends_waits() {
        let hub = WatchHub::new();
        let w = hub.subscribe(&[("approval", KeyRange::Exact("a1".into()))]);
        assert!(hub.has_subscribers());
        drop(w);
        assert!(!hub.has_subscribers());
        let mut w = hub.subscribe(&[("approval", KeyRange::All)]);
        hub.close();
        assert!(matches!(w.changed().await, Err(StoreError::Closed)));
    }
}
