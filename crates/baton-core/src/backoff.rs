//! The one backoff of Baton: how long to wait before retry number `n`, growing constantly,
//! linearly or exponentially from an initial delay, capped. The DSL's `retry` policies, the
//! provider layer's retries and compensation's undo retries all compute their waits here; what
//! differs between them is only the jitter they add, which each derives deterministically from
//! the instance and key (so a replay waits the same).

/// How the delay grows from one retry to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    /// The same delay every time.
    Constant,
    /// `initial × n` before retry `n`.
    Linear,
    /// `initial × multiplier^(n-1)` before retry `n`.
    Exponential { multiplier: f64 },
}

/// Exponents past this change nothing a person could wait for (2^40 × 1 ms is 35 years), and
/// keep the arithmetic in range.
const EXPONENT_MAX: u32 = 40;

/// A backoff: the delay before the first retry, its growth and an optional cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub growth: Growth,
    /// The longest delay; `None` for no cap.
    pub max_ms: Option<u64>,
}

impl Backoff {
    pub fn exponential(initial_ms: u64, multiplier: f64, max_ms: Option<u64>) -> Backoff {
        Backoff {
            initial_ms,
            growth: Growth::Exponential { multiplier },
            max_ms,
        }
    }

    /// The delay before retry `retry` (1 for the second attempt; 0 is taken as 1), before any
    /// jitter. Saturates instead of overflowing.
    pub fn delay_ms(&self, retry: u32) -> u64 {
        let n = retry.max(1);
        let grown = match self.growth {
            Growth::Constant => self.initial_ms,
            Growth::Linear => self.initial_ms.saturating_mul(u64::from(n)),
            Growth::Exponential { multiplier } => {
                let k = (n - 1).min(EXPONENT_MAX);
                if multiplier == 2.0 {
                    // Exact in integers for the common doubling.
                    self.initial_ms.saturating_mul(1u64 << k)
                } else {
                    let v = self.initial_ms as f64 * multiplier.max(0.0).powi(k as i32);
                    if v.is_finite() && v < u64::MAX as f64 {
                        v.round() as u64
                    } else {
                        u64::MAX
                    }
                }
            }
        };
        match self.max_ms {
            Some(max) => grown.min(max),
            None => grown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_as_declared_and_stops_at_the_cap() {
        let doubling = Backoff::exponential(100, 2.0, Some(1_000));
        let waits: Vec<u64> = (1..=6).map(|n| doubling.delay_ms(n)).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(doubling.delay_ms(0), 100, "0 reads as the first retry");
        let linear = Backoff {
            initial_ms: 50,
            growth: Growth::Linear,
            max_ms: None,
        };
        assert_eq!(linear.delay_ms(3), 150);
        let constant = Backoff {
            initial_ms: 70,
            growth: Growth::Constant,
            max_ms: None,
        };
        assert_eq!(constant.delay_ms(9), 70);
        assert_eq!(Backoff::exponential(200, 1.5, None).delay_ms(3), 450);
        let huge = Backoff::exponential(u64::MAX / 2, 3.0, None);
        assert_eq!(huge.delay_ms(1_000), u64::MAX, "saturates");
        assert_eq!(Backoff::exponential(1, 2.0, None).delay_ms(1_000), 1 << 40);
    }
}
