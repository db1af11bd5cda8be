//! Faults a provider can be told to inject, and the seeded draw that turns them into what one call
//! experiences.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::world::seeded;

/// Longest latency or hang accepted, so that a typo cannot stall a run for hours.
pub(crate) const DELAY_MS_MAX: u64 = 120_000;

/// Default `Retry-After` of an injected 429, in seconds.
pub(crate) const DEFAULT_RETRY_AFTER_S: u64 = 1;

/// Default time a connection is held open after applying an effect, in milliseconds.
pub(crate) const DEFAULT_HANG_MS: u64 = 10_000;

/// What a provider is told to do wrong (`POST /control/{provider}`). Every field is optional;
/// fractions are between 0 and 1 and are drawn per call from a seeded generator, with 0 meaning
/// never and 1 meaning always.
#[derive(Debug, Deserialize, Serialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added delay before the call is handled, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Fraction of calls answered `429 Too Many Requests` (nothing applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_429: Option<f64>,
    /// `Retry-After` of those 429s, in seconds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Fraction of calls answered `503 Service Unavailable` (nothing applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_5xx: Option<f64>,
    /// Fraction of effect calls (any method but GET and HEAD) that apply the effect, then hold the
    /// connection open for `hang_ms` and drop it without an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_after_apply: Option<f64>,
    /// How long such a connection is held, in milliseconds (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_ms: Option<u64>,
    /// Serve data at least this many seconds old (`as_of`, `observed_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_s: Option<u64>,
    /// Fraction of calls answered `200` with a JSON body that lacks every field of the provider's
    /// contract: `{"malformed": true}`. An effect is applied before its answer is spoiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<f64>,
    /// Warehouse: accept every pick (200) without doing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lie: Option<bool>,
    /// GPS: these trucks stop reporting; their last position keeps its `observed_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<Vec<String>>,
    /// Verify: fraction of verdicts answered `null` whatever the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_rate: Option<f64>,
    /// Hold effect calls (any method but GET and HEAD) before anything is applied, until the
    /// provider's faults are next set or cleared: a test opens the gate with
    /// `DELETE /control/{provider}` once it has done what must happen meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<bool>,
    /// Apply these faults to the next N calls of the provider only, then clear them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
}

impl Faults {
    /// Checks ranges: fractions within 0..=1, delays up to two minutes, `calls` at least 1.
    pub fn validate(&self) -> Result<(), String> {
        let fractions = [
            ("rate_429", self.rate_429),
            ("rate_5xx", self.rate_5xx),
            ("timeout_after_apply", self.timeout_after_apply),
            ("malformed", self.malformed),
            ("null_rate", self.null_rate),
        ];
        for (name, value) in fractions {
            if let Some(v) = value
                && !(0.0..=1.0).contains(&v)
            {
                return Err(format!("{name} must be a fraction from 0 to 1, not {v}"));
            }
        }
        for (name, value) in [("latency_ms", self.latency_ms), ("hang_ms", self.hang_ms)] {
            if let Some(v) = value
                && v > DELAY_MS_MAX
            {
                return Err(format!("{name} must be at most {DELAY_MS_MAX}, not {v}"));
            }
        }
        if self.calls == Some(0) {
            return Err("calls must be at least 1 (DELETE /control/{provider} clears)".into());
        }
        Ok(())
    }
}

/// What one call experiences, drawn at its arrival.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub latency: Duration,
    /// `Some(retry_after_s)`: answer 429.
    pub reject_429: Option<u64>,
    pub reject_5xx: bool,
    /// Hold the connection this long after handling, then drop it.
    pub hang: Option<Duration>,
    pub malformed: bool,
    pub stale_s: Option<u64>,
    pub lie: bool,
    pub silent: Vec<String>,
    /// Verify: answer this call's verdict with `null`.
    pub null_verdict: bool,
    /// Requests admitted by the natural rate window in the second before this one.
    pub load: usize,
    /// `Some(generation)`: wait until the faults change from this generation on.
    pub hold: Option<u64>,
}

struct Slot {
    faults: Faults,
    /// Calls left before the faults clear themselves (`calls`).
    remaining: Option<u64>,
    rng: StdRng,
}

/// The faults of every provider, each with its own seeded generator so that one provider's
/// traffic does not change what another one draws.
pub(crate) struct FaultBoard {
    slots: Mutex<HashMap<&'static str, Slot>>,
    /// Bumped whenever any provider's faults are set or cleared; held calls watch it.
    generation: tokio::sync::watch::Sender<u64>,
}

impl FaultBoard {
    pub(crate) fn new(seed: u64, providers: &[&'static str]) -> FaultBoard {
        let slots = providers
            .iter()
            .map(|p| {
                let slot = Slot {
                    faults: Faults::default(),
                    remaining: None,
                    rng: seeded(seed, &format!("faults/{p}")),
                };
                (*p, slot)
            })
            .collect();
        FaultBoard {
            slots: Mutex::new(slots),
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Waits until the faults are set or cleared after `generation` (see [`Faults::hold`]).
    pub(crate) async fn released(&self, generation: u64) {
        let mut rx = self.generation.subscribe();
        let _ = rx.wait_for(|g| *g != generation).await;
    }

    /// Replaces the provider's faults. `false` when the provider is unknown.
    pub(crate) fn set(&self, provider: &str, faults: Faults) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get_mut(provider) {
            Some(slot) => {
                slot.remaining = faults.calls;
                slot.faults = faults;
                // Under the slots' lock, so a call drawn before this change sees the old number.
                self.generation.send_modify(|g| *g += 1);
                true
            }
            None => false,
        }
    }

    /// Every provider's faults as set (with `calls` showing how many calls are left).
    pub(crate) fn report(&self, providers: &[&'static str]) -> Value {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Map::new();
        for p in providers {
            let Some(slot) = slots.get(p) else { continue };
            let mut faults = slot.faults.clone();
            faults.calls = slot.remaining;
            let value = serde_json::to_value(&faults).unwrap_or(Value::Null);
            out.insert((*p).to_string(), value);
        }
        Value::Object(out)
    }

    /// Draws what this call experiences and counts it against `calls`.
    pub(crate) fn draw(&self, provider: &str, effect: bool) -> Plan {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = slots.get_mut(provider) else {
            return Plan::default();
        };
        let f = &slot.faults;
        let rng = &mut slot.rng;
        let mut hit = |p: Option<f64>| match p {
            // 0 and 1 are decided without a draw, so they hold exactly.
            None => false,
            Some(p) if p <= 0.0 => false,
            Some(p) if p >= 1.0 => true,
            Some(p) => rng.random::<f64>() < p,
        };
        let reject_429 = hit(f.rate_429);
        let reject_5xx = hit(f.rate_5xx);
        let hang = effect && hit(f.timeout_after_apply);
        let malformed = hit(f.malformed);
        let null_verdict = hit(f.null_rate);
        let plan = Plan {
            latency: Duration::from_millis(f.latency_ms.unwrap_or(0)),
            reject_429: reject_429.then(|| f.retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S)),
            reject_5xx,
            hang: hang.then(|| Duration::from_millis(f.hang_ms.unwrap_or(DEFAULT_HANG_MS))),
            malformed,
            stale_s: f.stale_s,
            lie: f.lie.unwrap_or(false),
            silent: f.silent.clone().unwrap_or_default(),
            null_verdict,
            load: 0,
            hold: (effect && f.hold == Some(true)).then(|| *self.generation.borrow()),
        };
        if let Some(left) = slot.remaining.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                slot.remaining = None;
                slot.faults = Faults::default();
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certain_fractions_hold_exactly_and_calls_clear() {
        let board = FaultBoard::new(7, &["carrier"]);
        assert!(board.set(
            "carrier",
            Faults {
                rate_5xx: Some(1.0),
                rate_429: Some(0.0),
                calls: Some(3),
                ..Faults::default()
            }
        ));
        for _ in 0..3 {
            let plan = board.draw("carrier", true);
            assert!(plan.reject_5xx);
            assert!(plan.reject_429.is_none());
        }
        assert!(!board.draw("carrier", true).reject_5xx);
        assert_eq!(board.report(&["carrier"])["carrier"], serde_json::json!({}));
    }

    #[test]
    fn timeouts_after_apply_only_hit_effects() {
        let board = FaultBoard::new(7, &["carrier"]);
        board.set(
            "carrier",
            Faults {
                timeout_after_apply: Some(1.0),
                ..Faults::default()
            },
        );
        assert!(board.draw("carrier", false).hang.is_none());
        assert_eq!(
            board.draw("carrier", true).hang,
            Some(Duration::from_millis(DEFAULT_HANG_MS))
        );
    }

    #[test]
    fn draws_repeat_with_the_seed() {
        let draws = |seed| {
            let board = FaultBoard::new(seed, &["verify"]);
            board.set(
                "verify",
                Faults {
                    rate_429: Some(0.5),
                    ..Faults::default()
                },
            );
            (0..64)
                .map(|_| board.draw("verify", false).reject_429.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
        assert!(draws(3).iter().any(|x| *x) && draws(3).iter().any(|x| !*x));
    }

    #[test]
    fn validation_catches_out_of_range_values() {
        let bad = Faults {
            rate_429: Some(1.5),
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
        let bad = Faults {
            hang_ms: Some(DELAY_MS_MAX + 1),
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
        let bad = Faults {
            calls: Some(0),
            ..Faults::default()
        };
        assert!(bad.validate().is_err());
        assert!(Faults::default().validate().is_ok());
        let parsed: Result<Faults, _> = serde_json::from_str(r#"{"rate_4xx": 1}"#);
        assert!(parsed.is_err(), "unknown fields are refused");
    }
}
