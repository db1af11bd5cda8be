//! What the simulator saw and did: the effect ledger, per-provider statistics, request arrival
//! stamps and the natural rate windows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// Arrival stamps kept per provider; older ones are forgotten so a long demo does not grow
/// without bound.
pub(crate) const ARRIVALS_KEPT: usize = 100_000;

/// What one idempotency key did at one provider.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Entry {
    /// Times the effect was really carried out.
    pub applied: u64,
    /// Times it was undone (cancelled, released).
    pub compensated: u64,
    /// Effect requests that reached the provider with this key (faults that refuse a call before
    /// the provider sees it are not counted here but in the statistics).
    pub requests: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    requests: u64,
    sent_429: u64,
    sent_5xx: u64,
    hung: u64,
    malformed: u64,
}

/// A statistic the gate counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sent {
    TooMany,
    Unavailable,
    Hung,
    Malformed,
}

struct Inner {
    ledger: BTreeMap<&'static str, BTreeMap<String, Entry>>,
    stats: BTreeMap<&'static str, Stats>,
    arrivals: HashMap<&'static str, VecDeque<u64>>,
}

pub(crate) struct Book {
    providers: Vec<&'static str>,
    inner: Mutex<Inner>,
    total: watch::Sender<u64>,
}

impl Book {
    pub(crate) fn new(providers: &[&'static str]) -> Book {
        Book {
            providers: providers.to_vec(),
            inner: Mutex::new(Inner {
                ledger: providers.iter().map(|p| (*p, BTreeMap::new())).collect(),
                stats: providers.iter().map(|p| (*p, Stats::default())).collect(),
                arrivals: HashMap::new(),
            }),
            total: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request to `provider` that arrived `at_ms` real milliseconds after the start.
    pub(crate) fn arrive(&self, provider: &'static str, at_ms: u64) {
        {
            let mut inner = self.lock();
            inner.stats.entry(provider).or_default().requests += 1;
            let stamps = inner.arrivals.entry(provider).or_default();
            if stamps.len() == ARRIVALS_KEPT {
                stamps.pop_front();
            }
            stamps.push_back(at_ms);
        }
        self.total.send_modify(|n| *n += 1);
    }

    pub(crate) fn sent(&self, provider: &'static str, what: Sent) {
        let mut inner = self.lock();
        let s = inner.stats.entry(provider).or_default();
        match what {
            Sent::TooMany => s.sent_429 += 1,
            Sent::Unavailable => s.sent_5xx += 1,
            Sent::Hung => s.hung += 1,
            Sent::Malformed => s.malformed += 1,
        }
    }

    /// Changes the ledger entry of `key` at `provider` and returns it as it now is.
    pub(crate) fn effect(
        &self,
        provider: &'static str,
        key: &str,
        change: impl FnOnce(&mut Entry),
    ) -> Entry {
        let mut inner = self.lock();
        let entry = inner
            .ledger
            .entry(provider)
            .or_default()
            .entry(key.to_string())
            .or_default();
        change(entry);
        *entry
    }

    pub(crate) fn ledger(&self) -> Value {
        let inner = self.lock();
        let mut out = Map::new();
        for (provider, keys) in &inner.ledger {
            let keys: Map<String, Value> = keys
                .iter()
                .map(|(k, e)| {
                    let v = json!({
                        "applied": e.applied,
                        "compensated": e.compensated,
                        "requests": e.requests,
                    });
                    (k.clone(), v)
                })
                .collect();
            out.insert((*provider).to_string(), Value::Object(keys));
        }
        Value::Object(out)
    }

    pub(crate) fn stats(&self) -> Value {
        let inner = self.lock();
        let mut out = Map::new();
        for p in &self.providers {
            let s = inner.stats.get(p).copied().unwrap_or_default();
            out.insert(
                (*p).to_string(),
                json!({
                    "requests": s.requests,
                    "sent_429": s.sent_429,
                    "sent_5xx": s.sent_5xx,
                    "hung": s.hung,
                    "malformed": s.malformed,
                }),
            );
        }
        Value::Object(out)
    }

    pub(crate) fn arrivals_ms(&self, provider: &str) -> Vec<u64> {
        self.lock()
            .arrivals
            .get(provider)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn request_count(&self, provider: &str) -> u64 {
        self.lock()
            .stats
            .get(provider)
            .map(|s| s.requests)
            .unwrap_or(0)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.total.subscribe()
    }
}

/// A provider's natural rate limit: at most `limit` admitted requests in any sliding second of
/// real time. Refused requests do not take a place in the window.
pub(crate) struct RateWindow {
    limit: usize,
    admitted: Mutex<VecDeque<Instant>>,
}

impl RateWindow {
    pub(crate) fn new(limit: usize) -> RateWindow {
        RateWindow {
            limit,
            admitted: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether a request arriving at `now` is admitted, and how many were admitted in the second
    /// before it (the provider's load).
    pub(crate) fn admit(&self, now: Instant) -> (bool, usize) {
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(first) = admitted.front() {
            if now.saturating_duration_since(*first) >= Duration::from_secs(1) {
                admitted.pop_front();
            } else {
                break;
            }
        }
        let load = admitted.len();
        if load < self.limit {
            admitted.push_back(now);
            (true, load)
        } else {
            (false, load)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_the_limit_per_second() {
        let window = RateWindow::new(3);
        let t0 = crate::clock::real_now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(window.admit(at(0)).0);
        assert!(window.admit(at(100)).0);
        assert!(window.admit(at(200)).0);
        assert_eq!(window.admit(at(300)), (false, 3));
        assert_eq!(window.admit(at(999)), (false, 3));
        // The first admission leaves the window at 1000 ms.
        assert_eq!(window.admit(at(1000)), (true, 2));
        assert!(!window.admit(at(1050)).0);
    }

    #[test]
    fn the_ledger_lists_every_provider() {
        let book = Book::new(&["carrier", "payments"]);
        let e = book.effect("carrier", "k1", |e| {
            e.requests += 1;
            e.applied += 1;
        });
        assert_eq!(e.applied, 1);
        assert_eq!(
            book.ledger(),
            json!({"carrier": {"k1": {"applied": 1, "compensated": 0, "requests": 1}}, "payments": {}})
        );
    }
}
