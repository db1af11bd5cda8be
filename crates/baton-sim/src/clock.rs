//! Time in the simulator: the only place that reads the real clock or sleeps.
//!
//! The workspace bans `Instant::now` and `tokio::time::sleep` so that the engine treats time as an
//! input. The simulator is not the engine: it is a fake world whose providers really are slow, really
//! are rate limited per real second and really do hold connections open. Those are behaviours of
//! the fake servers, never a test waiting for something, so the real clock is read here and only
//! here, and every other module goes through these functions.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Where Maplewood is.
pub const ZONE: &str = "America/New_York";

/// The start of a scripted day: 06:00 on a Monday, when the day's plan is made. `baton sim` and
/// the tests that check freshness start at `now` instead (see `real_timestamp`).
pub const DEFAULT_START: &str = "2026-11-23T06:00:00-05:00";

/// The real clock, for rate windows and arrival stamps.
#[allow(clippy::disallowed_methods)] // the fake world's own real time (see the module docs)
pub(crate) fn real_now() -> Instant {
    Instant::now()
}

/// The real wall-clock time, for a simulation that starts `now`: its `as_of` stamps then agree
/// with the clock of the Baton that reads them, so freshness checks mean what they say.
#[allow(clippy::disallowed_methods)] // the fake world's own real time (see the module docs)
pub(crate) fn real_timestamp() -> Timestamp {
    Timestamp::now()
}

/// A provider's own delay: scripted latency, a connection held open after applying an effect.
#[allow(clippy::disallowed_methods)] // the fake world's own behaviour, not a test waiting
pub(crate) async fn delay(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The simulated clock: `start + real elapsed × speed + manual advances`, in America/New_York.
pub(crate) struct SimClock {
    tz: TimeZone,
    start_ms: i64,
    speed: f64,
    real_start: Instant,
    advanced_ms: Mutex<i64>,
}

impl SimClock {
    /// `start` is an RFC 3339 instant; `speed` simulated seconds per real second (0 stops the
    /// clock between manual advances).
    pub(crate) fn new(start: &str, speed: f64) -> Result<SimClock, String> {
        let ts: Timestamp = if start == "now" {
            real_timestamp()
        } else {
            start
                .parse()
                .map_err(|e| format!("start '{start}' is not an RFC 3339 time (or `now`): {e}"))?
        };
        if !(speed.is_finite() && speed >= 0.0) {
            return Err(format!(
                "speed must be a finite number of at least 0, not {speed}"
            ));
        }
        let tz = TimeZone::get(ZONE).map_err(|e| format!("time zone {ZONE}: {e}"))?;
        Ok(SimClock {
            tz,
            start_ms: ts.as_millisecond(),
            speed,
            real_start: real_now(),
            advanced_ms: Mutex::new(0),
        })
    }

    pub(crate) fn speed(&self) -> f64 {
        self.speed
    }

    /// Milliseconds of real time since the simulator started.
    pub(crate) fn real_elapsed_ms(&self) -> u64 {
        u64::try_from(self.real_start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The simulated instant, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let real = self.real_start.elapsed().as_secs_f64();
        // Saturating float-to-int conversion: an absurd speed cannot wrap the clock around.
        let scaled = (real * self.speed * 1000.0) as i64;
        let advanced = *self.advanced_ms.lock().unwrap_or_else(|p| p.into_inner());
        self.start_ms
            .saturating_add(scaled)
            .saturating_add(advanced)
    }

    /// Moves the simulated clock forward.
    pub(crate) fn advance(&self, seconds: u64) {
        let ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut advanced = self.advanced_ms.lock().unwrap_or_else(|p| p.into_inner());
        *advanced = advanced.saturating_add(ms);
    }

    /// The simulated instant as RFC 3339 with the local offset, e.g. `2026-11-23T06:00:00-05:00`.
    pub(crate) fn now_rfc3339(&self) -> String {
        self.format(self.now_ms())
    }

    /// Any instant (ms since the epoch) as RFC 3339 in Maplewood's offset at that instant.
    pub(crate) fn format(&self, ms: i64) -> String {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX);
        let offset = self.tz.to_offset(ts);
        ts.display_with_offset(offset).to_string()
    }

    /// Local midnight (the start of the day) of the simulated day containing `ms`.
    pub(crate) fn midnight_before(&self, ms: i64) -> i64 {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX);
        ts.to_zoned(self.tz.clone())
            .start_of_day()
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(ms)
    }

    /// `hh:mm` local time on the simulation's first day, as ms since the epoch.
    pub(crate) fn at_local(&self, hour: i8, minute: i8) -> i64 {
        let day = self.midnight_before(self.start_ms);
        let ts = Timestamp::from_millisecond(day).unwrap_or(Timestamp::MAX);
        let zoned = ts.to_zoned(self.tz.clone());
        zoned
            .date()
            .at(hour, minute, 0, 0)
            .to_zoned(self.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(day)
    }

    /// The next quarter hour strictly after `ms` (warehouse batches).
    pub(crate) fn next_quarter_hour(&self, ms: i64) -> i64 {
        const QUARTER: i64 = 15 * 60 * 1000;
        // New York's offsets are whole hours, so UTC quarter hours are local quarter hours.
        (ms.div_euclid(QUARTER) + 1) * QUARTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_new_york_and_advances() {
        let clock = SimClock::new(DEFAULT_START, 0.0).expect("clock");
        assert_eq!(clock.now_rfc3339(), "2026-11-23T06:00:00-05:00");
        clock.advance(90);
        assert_eq!(clock.now_rfc3339(), "2026-11-23T06:01:30-05:00");
        assert_eq!(
            clock.format(clock.midnight_before(clock.now_ms())),
            "2026-11-23T00:00:00-05:00"
        );
        assert_eq!(
            clock.format(clock.at_local(14, 15)),
            "2026-11-23T14:15:00-05:00"
        );
        let q = clock.next_quarter_hour(clock.at_local(10, 0));
        assert_eq!(clock.format(q), "2026-11-23T10:15:00-05:00");
    }

    #[test]
    fn summer_times_carry_the_daylight_offset() {
        let clock = SimClock::new("2026-07-01T12:00:00Z", 0.0).expect("clock");
        assert_eq!(clock.now_rfc3339(), "2026-07-01T08:00:00-04:00");
    }

    #[test]
    fn refuses_bad_start_and_speed() {
        assert!(SimClock::new("tomorrow", 1.0).is_err());
        assert!(SimClock::new(DEFAULT_START, -1.0).is_err());
        assert!(SimClock::new(DEFAULT_START, f64::NAN).is_err());
    }
}
