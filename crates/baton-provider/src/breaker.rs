//! The circuit breaker of one provider, on injected time.
//!
//! Closed: calls go through and their results are counted. Open (after `consecutive_failures`
//! in a row, or a `failure_rate` over the last `window` calls): calls fail fast until
//! `open_for` has passed. Half-open: up to `half_open_probes` calls go through; if all of them
//! succeed the breaker closes, if one fails it opens again for another `open_for`.
//!
//! What counts as a failure is the caller's choice (see `Verdict::breaker_failure`): the
//! provider being unwell (5xx, no connection, no answer, a body breaking its contract), not
//! the caller being wrong (4xx) or throttled (429).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::catalog::BreakerSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// A change of state, for the journal and the counters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub at_ms: u64,
    pub reason: String,
}

/// Whether a call may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go; `probe` when this call decides whether a half-open breaker closes.
    Allowed { probe: bool },
    /// Fail fast: the breaker is open (or half-open with every probe slot taken) until then.
    Rejected { until_ms: u64 },
}

pub struct Breaker {
    spec: BreakerSpec,
    inner: Mutex<Inner>,
}

struct Inner {
    state: BreakerState,
    open_until: u64,
    consecutive: u32,
    recent: VecDeque<bool>,
    probes_out: u32,
    probes_ok: u32,
}

impl Breaker {
    pub fn new(spec: BreakerSpec) -> Breaker {
        Breaker {
            spec,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                open_until: 0,
                consecutive: 0,
                recent: VecDeque::new(),
                probes_out: 0,
                probes_ok: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Asks to make a call at `now_ms`. An open breaker whose time is up turns half-open here.
    pub fn admit(&self, now_ms: u64) -> (Admit, Option<Transition>) {
        let mut s = self.lock();
        let mut transition = None;
        if s.state == BreakerState::Open {
            if now_ms < s.open_until {
                return (
                    Admit::Rejected {
                        until_ms: s.open_until,
                    },
                    None,
                );
            }
            s.state = BreakerState::HalfOpen;
            s.probes_out = 0;
            s.probes_ok = 0;
            transition = Some(Transition {
                from: BreakerState::Open,
                to: BreakerState::HalfOpen,
                at_ms: now_ms,
                reason: "open interval elapsed; probing".to_string(),
            });
        }
        if s.state == BreakerState::HalfOpen {
            if s.probes_out + s.probes_ok >= self.spec.half_open_probes {
                // Every probe slot is taken: wait for their verdict, as if still open.
                let until_ms = now_ms + self.spec.open_for.ms().clamp(1, 1_000);
                return (Admit::Rejected { until_ms }, transition);
            }
            s.probes_out += 1;
            return (Admit::Allowed { probe: true }, transition);
        }
        (Admit::Allowed { probe: false }, transition)
    }

    /// Records a call's result. `probe` must be what [`Breaker::admit`] said.
    pub fn record(&self, failure: bool, probe: bool, now_ms: u64) -> Option<Transition> {
        let mut s = self.lock();
        if probe && s.state == BreakerState::HalfOpen {
            s.probes_out = s.probes_out.saturating_sub(1);
            if failure {
                return Some(self.open(&mut s, now_ms, "a half-open probe failed".to_string()));
            }
            s.probes_ok += 1;
            if s.probes_ok >= self.spec.half_open_probes {
                s.state = BreakerState::Closed;
                s.consecutive = 0;
                s.recent.clear();
                return Some(Transition {
                    from: BreakerState::HalfOpen,
                    to: BreakerState::Closed,
                    at_ms: now_ms,
                    reason: format!("{} probe(s) succeeded", s.probes_ok),
                });
            }
            return None;
        }
        if s.state != BreakerState::Closed {
            // A call admitted before the breaker opened: its result says nothing new.
            return None;
        }
        s.consecutive = if failure { s.consecutive + 1 } else { 0 };
        if let Some(fr) = &self.spec.failure_rate {
            s.recent.push_back(failure);
            while s.recent.len() > fr.window as usize {
                s.recent.pop_front();
            }
        }
        if let Some(n) = self.spec.consecutive_failures
            && s.consecutive >= n
        {
            return Some(self.open(&mut s, now_ms, format!("{n} consecutive failures")));
        }
        if let Some(fr) = &self.spec.failure_rate
            && s.recent.len() >= fr.min_calls.max(1) as usize
        {
            let failed = s.recent.iter().filter(|f| **f).count();
            let rate = failed as f64 / s.recent.len() as f64;
            if rate >= fr.threshold {
                let reason = format!("{failed} of the last {} calls failed", s.recent.len());
                return Some(self.open(&mut s, now_ms, reason));
            }
        }
        None
    }

    fn open(&self, s: &mut Inner, now_ms: u64, reason: String) -> Transition {
        let from = s.state;
        s.state = BreakerState::Open;
        s.open_until = now_ms + self.spec.open_for.ms();
        s.consecutive = 0;
        s.recent.clear();
        s.probes_out = 0;
        s.probes_ok = 0;
        Transition {
            from,
            to: BreakerState::Open,
            at_ms: now_ms,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::FailureRateSpec;
    use crate::duration::Dur;

    fn spec(consecutive: Option<u32>, rate: Option<FailureRateSpec>) -> BreakerSpec {
        BreakerSpec {
            consecutive_failures: consecutive,
            failure_rate: rate,
            open_for: Dur(1_000),
            half_open_probes: 2,
        }
    }

    #[test]
    fn opens_fails_fast_and_recovers_through_half_open() {
        let b = Breaker::new(spec(Some(3), None));
        for t in 0..2 {
            assert_eq!(b.admit(t).0, Admit::Allowed { probe: false });
            assert_eq!(b.record(true, false, t), None);
        }
        let opened = b.record(true, false, 2).expect("opens");
        assert_eq!(
            (opened.from, opened.to),
            (BreakerState::Closed, BreakerState::Open)
        );
        assert_eq!(b.admit(500).0, Admit::Rejected { until_ms: 1_002 });
        // Time is up: two probes go out, a third waits.
        let (a, t) = b.admit(1_002);
        assert_eq!(a, Admit::Allowed { probe: true });
        assert_eq!(t.map(|t| t.to), Some(BreakerState::HalfOpen));
        assert_eq!(b.admit(1_003).0, Admit::Allowed { probe: true });
        assert!(matches!(b.admit(1_004).0, Admit::Rejected { .. }));
        assert_eq!(b.record(false, true, 1_010), None);
        let closed = b.record(false, true, 1_011).expect("closes");
        assert_eq!(closed.to, BreakerState::Closed);
        assert_eq!(b.admit(1_012).0, Admit::Allowed { probe: false });
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let b = Breaker::new(spec(Some(1), None));
        b.record(true, false, 0);
        assert_eq!(b.admit(1_000).0, Admit::Allowed { probe: true });
        let t = b.record(true, true, 1_001).expect("reopens");
        assert_eq!((t.from, t.to), (BreakerState::HalfOpen, BreakerState::Open));
        assert_eq!(b.admit(1_500).0, Admit::Rejected { until_ms: 2_001 });
    }

    #[test]
    fn failure_rate_over_a_window() {
        let b = Breaker::new(spec(
            None,
            Some(FailureRateSpec {
                threshold: 0.5,
                window: 10,
                min_calls: 4,
            }),
        ));
        // Alternate: 50% failures; nothing happens before 4 calls.
        assert_eq!(b.record(true, false, 0), None);
        assert_eq!(b.record(false, false, 1), None);
        assert_eq!(b.record(true, false, 2), None);
        let t = b.record(false, false, 3).expect("2 of 4 failed");
        assert!(t.reason.contains("2 of the last 4"));
    }

    #[test]
    fn successes_reset_the_consecutive_count() {
        let b = Breaker::new(spec(Some(2), None));
        for t in 0..10 {
            assert_eq!(b.record(t % 2 == 0, false, t), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
