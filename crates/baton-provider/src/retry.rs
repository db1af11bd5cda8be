//! Backoff between attempts: exponential, capped, spread by a jitter derived from the call's
//! idempotency key (so calls that failed together do not retry together, and a replay waits
//! the same).

use crate::catalog::RetrySpec;

/// How long to wait before retry number `retry` (1 for the second attempt). `retry_after_ms` is
/// the provider's own request, honoured as a floor when the spec says so.
pub fn backoff_ms(spec: &RetrySpec, retry: u32, key: &str, retry_after_ms: Option<u64>) -> u64 {
    let b = &spec.backoff;
    let base =
        baton_core::backoff::Backoff::exponential(b.initial.ms(), b.multiplier, Some(b.max.ms()))
            .delay_ms(retry) as f64;
    // Between half and all of the base.
    let spread = 0.5 + 0.5 * unit_hash(key, retry);
    let delay = (base * spread).round() as u64;
    match retry_after_ms {
        Some(after) if spec.honour_retry_after => delay.max(after),
        _ => delay,
    }
}

/// A number in [0, 1) from the key and the retry number (FNV-1a).
fn unit_hash(key: &str, retry: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(retry.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let spec = RetrySpec::default(); // 200 ms, ×2, at most 10 s
        let d1 = backoff_ms(&spec, 1, "k", None);
        let d3 = backoff_ms(&spec, 3, "k", None);
        let d20 = backoff_ms(&spec, 20, "k", None);
        assert!((100..=200).contains(&d1), "{d1}");
        assert!((400..=800).contains(&d3), "{d3}");
        assert!((5_000..=10_000).contains(&d20), "{d20}");
        assert_eq!(backoff_ms(&spec, 1, "k", Some(3_000)), 3_000);
        assert_eq!(backoff_ms(&spec, 1, "k", None), d1, "deterministic per key");
        let others: std::collections::HashSet<u64> = (0..20)
            .map(|i| backoff_ms(&spec, 2, &format!("k{i}"), None))
            .collect();
        assert!(others.len() > 10, "keys spread: {others:?}");
    }
}
