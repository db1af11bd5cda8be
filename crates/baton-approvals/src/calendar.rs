//! Business calendars: which hours of which days count as working time in a time zone, and the
//! two sums the due policy needs (a start plus some working time; the working time between two
//! instants). People answer during their working hours, so a due time counted in wall time would
//! fall due overnight or over a weekend for no one's fault.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// How far the sums look ahead before giving up: a calendar whose working days are all
/// holidays would otherwise loop forever.
const MAX_DAYS: u32 = 5 * 366;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A calendar as written in a flow and kept in the task document (normalised), so that an
/// escalation after a restart uses exactly the calendar the task was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarSpec {
    /// An IANA time zone name, e.g. `America/Chicago`.
    pub zone: String,
    /// Working days, `mon` … `sun`.
    pub days: Vec<String>,
    /// Working hours of each working day, `HH:MM-HH:MM` (several for a lunch break).
    pub hours: Vec<String>,
    /// Dates (`YYYY-MM-DD`, local) with no working time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
}

/// A compiled calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    /// Indexed by Monday-zero weekday.
    days: [bool; 7],
    /// Minutes after local midnight, sorted and disjoint; an end of 1440 is the next midnight.
    hours: Vec<(u16, u16)>,
    holidays: Vec<Date>,
}

impl CalendarSpec {
    /// Reads a calendar from flow arguments: `{zone, days?, hours, holidays?}`. `days` defaults
    /// to Monday to Friday; it may be a list or one string, and items may be ranges (`mon-fri`).
    pub fn from_value(v: &serde_json::Value) -> Result<CalendarSpec, String> {
        let obj = v
            .as_object()
            .ok_or("must be an object `{zone, days, hours}`")?;
        for k in obj.keys() {
            if !["zone", "days", "hours", "holidays"].contains(&k.as_str()) {
                return Err(format!(
                    "unknown key `{k}` (expected zone, days, hours, holidays)"
                ));
            }
        }
        let zone = obj
            .get("zone")
            .and_then(|z| z.as_str())
            .ok_or("`zone` (an IANA time zone name) is required")?
            .to_string();
        let days = match obj.get("days") {
            None => vec!["mon-fri".to_string()],
            Some(d) => strings(d).map_err(|e| format!("`days` {e}"))?,
        };
        let hours = match obj.get("hours") {
            None => return Err("`hours` (e.g. \"08:00-17:00\") is required".into()),
            Some(h) => strings(h).map_err(|e| format!("`hours` {e}"))?,
        };
        let holidays = match obj.get("holidays") {
            None => Vec::new(),
            Some(h) => strings(h).map_err(|e| format!("`holidays` {e}"))?,
        };
        let mut spec = CalendarSpec {
            zone,
            days,
            hours,
            holidays,
        };
        // Normalise through the compiled form so the stored spec is the canonical one.
        let cal = Calendar::compile(&spec)?;
        spec.days = DAY_NAMES
            .iter()
            .zip(cal.days)
            .filter(|(_, on)| *on)
            .map(|(n, _)| n.to_string())
            .collect();
        spec.hours = cal
            .hours
            .iter()
            .map(|(s, e)| format!("{}-{}", hhmm(*s), hhmm(*e)))
            .collect();
        Ok(spec)
    }
}

fn strings(v: &serde_json::Value) -> Result<Vec<String>, String> {
    match v {
        serde_json::Value::String(s) => Ok(vec![s.clone()]),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "must be a string or a list of strings".to_string())
            })
            .collect(),
        _ => Err("must be a string or a list of strings".into()),
    }
}

fn hhmm(min: u16) -> String {
    format!("{:02}:{:02}", min / 60, min % 60)
}

fn day_index(name: &str) -> Option<usize> {
    let n = name.trim().to_ascii_lowercase();
    let short = n.get(..3)?;
    let i = DAY_NAMES.iter().position(|d| *d == short)?;
    // Accept `mon`, `monday`, but not `monkey`.
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ][i];
    (n == short || n == full).then_some(i)
}

fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

impl Calendar {
    pub fn compile(spec: &CalendarSpec) -> Result<Calendar, String> {
        let zone = TimeZone::get(&spec.zone)
            .map_err(|_| format!("`zone`: unknown time zone `{}`", spec.zone))?;
        let mut days = [false; 7];
        for d in &spec.days {
            let (a, b) = match d.split_once('-') {
                Some((a, b)) => (a, b),
                None => (d.as_str(), d.as_str()),
            };
            let (Some(a), Some(b)) = (day_index(a), day_index(b)) else {
                return Err(format!(
                    "`days`: `{d}` is not a day (write mon, tue, … sun, or a range like mon-fri)"
                ));
            };
            // A range may wrap around the week end (`fri-mon`).
            let mut i = a;
            loop {
                days[i] = true;
                if i == b {
                    break;
                }
                i = (i + 1) % 7;
            }
        }
        if !days.iter().any(|d| *d) {
            return Err("`days`: no working day".into());
        }
        let mut hours = Vec::new();
        for h in &spec.hours {
            let parsed = h
                .split_once('-')
                .and_then(|(a, b)| Some((parse_clock(a)?, parse_clock(b)?)));
            match parsed {
                Some((s, e)) if s < e && s < 1440 => hours.push((s, e)),
                _ => {
                    return Err(format!(
                        "`hours`: `{h}` is not a range of the day like 08:00-17:00"
                    ));
                }
            }
        }
        if hours.is_empty() {
            return Err("`hours`: no working hours".into());
        }
        hours.sort_unstable();
        if hours.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err("`hours`: ranges overlap".into());
        }
        let holidays = spec
            .holidays
            .iter()
            .map(|d| {
                d.parse::<Date>()
                    .map_err(|_| format!("`holidays`: `{d}` is not a date YYYY-MM-DD"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Calendar {
            zone,
            days,
            hours,
            holidays,
        })
    }

    fn local_date(&self, ms: u64) -> Option<Date> {
        let ts = Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
        Some(ts.to_zoned(self.zone.clone()).date())
    }

    /// The instant of `minute` after local midnight of `date`. Local times skipped by a DST
    /// change resolve to the later instant (jiff's "compatible" rule), which keeps ranges in order.
    fn instant(&self, date: Date, minute: u16) -> Option<u64> {
        let (date, minute) = if minute >= 1440 {
            (date.tomorrow().ok()?, minute - 1440)
        } else {
            (date, minute)
        };
        let dt = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let z = dt.to_zoned(self.zone.clone()).ok()?;
        u64::try_from(z.timestamp().as_millisecond()).ok()
    }

    fn is_working_day(&self, date: Date) -> bool {
        let wd: Weekday = date.weekday();
        self.days[wd.to_monday_zero_offset() as usize] && !self.holidays.contains(&date)
    }

    /// The working intervals `[start, end)` (epoch ms) of each day from the local date of
    /// `from_ms` on, in order.
    fn intervals(&self, from_ms: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let first = self.local_date(from_ms);
        let dates = std::iter::successors(first, |d| d.tomorrow().ok()).take(MAX_DAYS as usize);
        dates
            .filter(|d| self.is_working_day(*d))
            .flat_map(move |d| {
                self.hours.iter().filter_map(move |(s, e)| {
                    let (a, b) = (self.instant(d, *s)?, self.instant(d, *e)?);
                    (a < b).then_some((a, b))
                })
            })
    }

    /// The instant at which `working_ms` of working time have passed since `from_ms`. Working
    /// time that ends exactly at the end of a range is due at that end (not the next morning).
    /// `None` if the calendar has no working time within five years.
    pub fn add_working(&self, from_ms: u64, working_ms: u64) -> Option<u64> {
        let mut left = working_ms;
        if left == 0 {
            return Some(from_ms);
        }
        for (a, b) in self.intervals(from_ms) {
            if b <= from_ms {
                continue;
            }
            let start = a.max(from_ms);
            let avail = b - start;
            if avail >= left {
                return Some(start + left);
            }
            left -= avail;
        }
        None
    }

    /// Working time between two instants (0 when `to_ms <= from_ms`).
    pub fn working_between(&self, from_ms: u64, to_ms: u64) -> u64 {
        if to_ms <= from_ms {
            return 0;
        }
        let mut total = 0;
        for (a, b) in self.intervals(from_ms) {
            if a >= to_ms {
                break;
            }
            let (s, e) = (a.max(from_ms), b.min(to_ms));
            if e > s {
                total += e - s;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> u64 {
        let z = jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::get(zone).unwrap())
            .unwrap();
        z.timestamp().as_millisecond() as u64
    }

    fn cal(v: serde_json::Value) -> Calendar {
        Calendar::compile(&CalendarSpec::from_value(&v).unwrap()).unwrap()
    }

    #[test]
    fn friday_afternoon_rolls_over_the_weekend() {
        let c =
            cal(json!({"zone": "America/Chicago", "days": ["mon-fri"], "hours": "08:00-17:00"}));
        // 2025-03-07 is a Friday.
        let fri = ms("America/Chicago", 2025, 3, 7, 16, 30);
        let due = c.add_working(fri, 3_600_000).unwrap();
        assert_eq!(due, ms("America/Chicago", 2025, 3, 10, 8, 30));
        assert_eq!(c.working_between(fri, due), 3_600_000);
        // Exactly the rest of the day ends at the end of the day, not on Monday.
        assert_eq!(
            c.add_working(fri, 1_800_000).unwrap(),
            ms("America/Chicago", 2025, 3, 7, 17, 0)
        );
    }

    #[test]
    fn lunch_break_and_holidays_are_skipped() {
        let c = cal(json!({
            "zone": "America/New_York",
            "days": ["monday", "tue", "wed", "thu", "fri"],
            "hours": ["13:00-14:00", "06:00-12:00"],
            "holidays": ["2025-03-11"],
        }));
        let at = ms("America/New_York", 2025, 3, 10, 11, 50);
        assert_eq!(
            c.add_working(at, 15 * 60_000).unwrap(),
            ms("America/New_York", 2025, 3, 10, 13, 5)
        );
        // Monday 13:30 + 2h: 30 min Monday, Tuesday is a holiday, 90 min from Wednesday 06:00.
        let at = ms("America/New_York", 2025, 3, 10, 13, 30);
        assert_eq!(
            c.add_working(at, 2 * 3_600_000).unwrap(),
            ms("America/New_York", 2025, 3, 12, 7, 30)
        );
    }

    #[test]
    fn the_dst_change_counts_real_hours() {
        // 2025-03-09 02:00 America/Chicago springs forward: Sunday 00:00-06:00 has 5 real hours.
        let c = cal(json!({"zone": "America/Chicago", "days": "sun", "hours": "00:00-06:00"}));
        let start = ms("America/Chicago", 2025, 3, 9, 0, 0);
        let end = ms("America/Chicago", 2025, 3, 9, 6, 0);
        assert_eq!(c.working_between(start, end), 5 * 3_600_000);
        assert_eq!(c.add_working(start, 5 * 3_600_000).unwrap(), end);
    }

    #[test]
    fn bad_calendars_say_what_is_wrong() {
        let err = |v| CalendarSpec::from_value(&v).unwrap_err();
        assert!(err(json!({"zone": "Mars/Olympus", "hours": "08:00-17:00"})).contains("zone"));
        assert!(err(json!({"zone": "UTC", "hours": "17:00-08:00"})).contains("hours"));
        assert!(
            err(json!({"zone": "UTC", "hours": "08:00-17:00", "days": ["monkey"]}))
                .contains("days")
        );
        assert!(
            err(json!({"zone": "UTC", "hours": ["08:00-12:00", "11:00-13:00"]}))
                .contains("overlap")
        );
        assert!(err(json!({"zone": "UTC"})).contains("hours"));
        let spec = CalendarSpec::from_value(
            &json!({"zone": "UTC", "hours": "9:00-24:00", "days": "fri-mon"}),
        )
        .unwrap();
        assert_eq!(spec.days, ["mon", "fri", "sat", "sun"]);
        assert_eq!(spec.hours, ["09:00-24:00"]);
    }
}
