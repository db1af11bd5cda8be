//! The injected clock: the only place the runtime reads time or sleeps.

use std::future::Future;
use std::pin::Pin;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Resolves at or after `at_ms`.
    fn sleep_until(&self, at_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Wall-clock time and tokio timers.
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned clock read
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    #[allow(clippy::disallowed_methods)] // the one sanctioned sleep
    fn sleep_until(&self, at_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let wait = at_ms.saturating_sub(self.now_ms());
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(wait)))
    }
}

/// A clock that moves only when told to: tests and simulations drive time-based behaviour
/// (breaker intervals, backoff, timers) without waiting for it.
pub struct ManualClock {
    now: std::sync::Mutex<u64>,
    moved: tokio::sync::watch::Sender<u64>,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            now: std::sync::Mutex::new(start_ms),
            moved: tokio::sync::watch::Sender::new(start_ms),
        }
    }

    /// Moves time forward by `ms`, waking every sleeper whose time has come.
    pub fn advance(&self, ms: u64) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += ms;
        self.moved.send_replace(*now);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, at_ms: u64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut rx = self.moved.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first, so a clock already past `at_ms`
            // returns at once; a dropped clock ends the sleep rather than hanging it.
            let _ = rx.wait_for(|now| *now >= at_ms).await;
        })
    }
}
