//! Temporal conversion functions, temporal properties, and the range
//! relation functions (`before`, `overlaps`, `during`, ...).

use std::cmp::Ordering;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::builtins::to_i64;
use super::eval::Evaluator;
use super::temporal::{
    self, Date as TDate, DateTime as TDateTime, NANOS, ParsedDuration, Time as TTime, Zone,
};
use super::value::{Bound, Range, Value, compare, equals};

pub fn call(ev: &mut Evaluator<'_>, name: &str, a: &[Value]) -> Value {
    use Value::*;
    match (name, a) {
        ("date", [String(s)]) => TDate::parse(s).map(Date).unwrap_or(Null),
        ("date", [Date(d)]) => Date(*d),
        ("date", [DateTime(dt)]) => Date(dt.date),
        ("date", [y, m, d]) => match (to_i64(y), to_i64(m), to_i64(d)) {
            (Some(y), Some(m), Some(d)) => TDate::new(y, m, d).map(Date).unwrap_or(Null),
            _ => Null,
        },
        ("date and time", [String(s)]) => parse_date_time(s),
        ("date and time", [Date(d)]) => DateTime(TDateTime {
            date: *d,
            time: TTime {
                secs: 0,
                nanos: 0,
                zone: Zone::Local,
            },
        }),
        ("date and time", [DateTime(dt)]) => DateTime(dt.clone()),
        ("date and time", [Date(d), Time(t)]) => DateTime(TDateTime {
            date: *d,
            time: t.clone(),
        }),
        ("date and time", [DateTime(dt), Time(t)]) => DateTime(TDateTime {
            date: dt.date,
            time: t.clone(),
        }),
        ("time", [String(s)]) => parse_time(s),
        ("time", [Time(t)]) => Time(t.clone()),
        ("time", [DateTime(dt)]) => Time(dt.time.clone()),
        ("time", [Date(_)]) => Time(TTime {
            secs: 0,
            nanos: 0,
            zone: Zone::Offset(0),
        }),
        ("time", [h, m, s]) => make_time(h, m, s, &Null),
        ("time", [h, m, s, off]) => make_time(h, m, s, off),
        ("duration", [String(s)]) => match temporal::parse_duration(s) {
            Some(ParsedDuration::YearsMonths(m)) => YmDuration(m),
            Some(ParsedDuration::DaysTime(n)) => DtDuration(n),
            None => Null,
        },
        ("years and months duration", [from, to]) => months_between(from, to),
        ("now", []) => ev.host.now().map(DateTime).unwrap_or(Null),
        ("today", []) => ev.host.now().map(|dt| Date(dt.date)).unwrap_or(Null),
        ("day of year", [v]) => date_of(v)
            .map(|d| {
                Value::num(
                    d.days()
                        - TDate {
                            year: d.year,
                            month: 1,
                            day: 1,
                        }
                        .days()
                        + 1,
                )
            })
            .unwrap_or(Null),
        ("day of week", [v]) => date_of(v)
            .map(|d| Value::str(WEEKDAYS[d.weekday() as usize - 1]))
            .unwrap_or(Null),
        ("month of year", [v]) => date_of(v)
            .map(|d| Value::str(MONTHS[d.month as usize - 1]))
            .unwrap_or(Null),
        ("week of year", [v]) => date_of(v).map(|d| Value::num(iso_week(&d))).unwrap_or(Null),
        ("range", [String(s)]) => parse_range(s),
        (
            "before" | "after" | "meets" | "met by" | "overlaps" | "overlaps before"
            | "overlaps after" | "finishes" | "finished by" | "includes" | "during" | "starts"
            | "started by" | "coincides",
            [x, y],
        ) => relation(name, x, y).map(Bool).unwrap_or(Null),
        _ => Null,
    }
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn date_of(v: &Value) -> Option<TDate> {
    match v {
        Value::Date(d) => Some(*d),
        Value::DateTime(dt) => Some(dt.date),
        _ => None,
    }
}

fn iso_week(d: &TDate) -> i64 {
    // The ISO week belongs to the year of its Thursday.
    let thursday = d.days() - d.weekday() as i64 + 4;
    let (y, _, _) = temporal::civil_from_days(thursday);
    let jan1 = temporal::days_from_civil(y, 1, 1);
    (thursday - jan1) / 7 + 1
}

fn parse_date_time(s: &str) -> Value {
    if let Some(dt) = TDateTime::parse(s) {
        return Value::DateTime(dt);
    }
    match TDate::parse(s) {
        Some(d) => Value::DateTime(TDateTime {
            date: d,
            time: TTime {
                secs: 0,
                nanos: 0,
                zone: Zone::Local,
            },
        }),
        None => Value::Null,
    }
}

fn parse_time(s: &str) -> Value {
    TTime::parse(s).map(Value::Time).unwrap_or(Value::Null)
}

fn make_time(h: &Value, m: &Value, s: &Value, off: &Value) -> Value {
    let (Some(h), Some(m), Value::Number(s)) = (to_i64(h), to_i64(m), s) else {
        return Value::Null;
    };
    if !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || *s < Decimal::ZERO
        || *s >= Decimal::from(60)
    {
        return Value::Null;
    }
    let whole = s.trunc().to_u32().unwrap_or(0);
    let nanos = (s.fract() * Decimal::from(1_000_000_000u32))
        .trunc()
        .to_u32()
        .unwrap_or(0);
    let zone = match off {
        Value::Null => Zone::Local,
        Value::DtDuration(n) => Zone::Offset((n / NANOS) as i32),
        _ => return Value::Null,
    };
    Value::Time(TTime {
        secs: (h * 3600 + m * 60) as u32 + whole,
        nanos,
        zone,
    })
}

fn months_between(from: &Value, to: &Value) -> Value {
    let (Some(a), Some(b)) = (date_of(from), date_of(to)) else {
        return Value::Null;
    };
    let mut months = (b.year as i64 - a.year as i64) * 12 + (b.month as i64 - a.month as i64);
    // Only whole months count: step back when the day-of-month (and time)
    // has not been reached yet.
    let a_key = (a.day, time_key(from));
    let b_key = (b.day, time_key(to));
    if months > 0 && b_key < a_key {
        months -= 1;
    } else if months < 0 && b_key > a_key {
        months += 1;
    }
    Value::YmDuration(months)
}

/// Only calendar dates count for whole months (the time of day does not).
fn time_key(_v: &Value) -> u64 {
    0
}

/// Properties of temporal values (`d.year`, `t.time offset`, `dur.days`, ...).
pub fn temporal_property(v: &Value, name: &str) -> Value {
    use Value::*;
    let date_prop = |d: &TDate| match name {
        "year" => Some(Value::num(d.year as i64)),
        "month" => Some(Value::num(d.month as i64)),
        "day" => Some(Value::num(d.day as i64)),
        "weekday" => Some(Value::num(d.weekday() as i64)),
        _ => None,
    };
    let time_prop = |t: &TTime, offset: Option<i32>| match name {
        "hour" => Value::num(t.hour() as i64),
        "minute" => Value::num(t.minute() as i64),
        "second" => Value::num(t.second() as i64),
        "time offset" => offset
            .map(|o| DtDuration(o as i128 * NANOS))
            .unwrap_or(Null),
        "timezone" => match &t.zone {
            Zone::Named(n) => Value::String(n.clone()),
            _ => Null,
        },
        _ => Null,
    };
    match v {
        Date(d) => date_prop(d).unwrap_or(Null),
        DateTime(dt) => date_prop(&dt.date).unwrap_or_else(|| time_prop(&dt.time, dt.offset())),
        Time(t) => time_prop(t, t.offset()),
        YmDuration(m) => match name {
            "years" => Value::num(m / 12),
            "months" => Value::num(m % 12),
            _ => Null,
        },
        DtDuration(n) => {
            let secs = n / NANOS;
            match name {
                "days" => Value::num((secs / 86_400) as i64),
                "hours" => Value::num(((secs / 3600) % 24) as i64),
                "minutes" => Value::num(((secs / 60) % 60) as i64),
                "seconds" => Value::num((secs % 60) as i64),
                _ => Null,
            }
        }
        _ => Null,
    }
}

/// `range("[1..10]")`: only literal end points are accepted.
fn parse_range(s: &str) -> Value {
    let Ok(e) = super::parser::parse_expression(s, &[]) else {
        return Value::Null;
    };
    let literal = |e: &super::ast::Expr| match e {
        super::ast::Expr::Const(_) => true,
        super::ast::Expr::Call(f, super::ast::Args::Positional(args)) => {
            matches!(&**f, super::ast::Expr::Name(n) if matches!(&**n, "date" | "time" | "date and time" | "duration"))
                && args
                    .iter()
                    .all(|a| matches!(a, super::ast::Expr::Const(Value::String(_))))
        }
        _ => false,
    };
    let ok = match &e {
        // Literal end points are folded into a constant range by the parser.
        super::ast::Expr::Const(Value::Range(_)) => true,
        super::ast::Expr::Interval { start, end, .. } => literal(start) && literal(end),
        _ => false,
    };
    if !ok {
        return Value::Null;
    }
    let host = super::eval::NoHost;
    let mut ev = Evaluator::new(&host);
    match ev.eval(&e) {
        // Descending ranges are not ranges.
        Value::Range(r)
            if compare(&r.start.value, &r.end.value).is_some_and(|o| o != Ordering::Greater) =>
        {
            Value::Range(r)
        }
        _ => Value::Null,
    }
}

/// A point seen as the degenerate closed range `[p..p]`.
fn as_range(v: &Value) -> Range {
    match v {
        Value::Range(r) => (**r).clone(),
        p => Range {
            start: Bound {
                value: p.clone(),
                inclusive: true,
            },
            end: Bound {
                value: p.clone(),
                inclusive: true,
            },
            from_test: false,
        },
    }
}

/// Compares end points where a null start is -∞ and a null end is +∞.
fn ep_cmp(a: &Value, a_start: bool, b: &Value, b_start: bool) -> Option<Ordering> {
    match (a.is_null(), b.is_null()) {
        (true, true) => Some(if a_start == b_start {
            Ordering::Equal
        } else if a_start {
            Ordering::Less
        } else {
            Ordering::Greater
        }),
        (true, false) => Some(if a_start {
            Ordering::Less
        } else {
            Ordering::Greater
        }),
        (false, true) => Some(if b_start {
            Ordering::Greater
        } else {
            Ordering::Less
        }),
        (false, false) => compare(a, b),
    }
}

fn relation(name: &str, x: &Value, y: &Value) -> Option<bool> {
    if x.is_null() || y.is_null() {
        return None;
    }
    let (xr, yr) = (matches!(x, Value::Range(_)), matches!(y, Value::Range(_)));
    let (a, b) = (as_range(x), as_range(y));
    use Ordering::*;
    let (s1, e1, s2, e2) = (&a.start, &a.end, &b.start, &b.end);
    let c = |p: &Bound, ps: bool, q: &Bound, qs: bool| ep_cmp(&p.value, ps, &q.value, qs);
    Some(match name {
        "before" => {
            let o = c(e1, false, s2, true)?;
            o == Less || (o == Equal && !(e1.inclusive && s2.inclusive))
        }
        "after" => return relation("before", y, x),
        "meets" if xr && yr => e1.inclusive && s2.inclusive && c(e1, false, s2, true)? == Equal,
        "met by" if xr && yr => return relation("meets", y, x),
        "overlaps" if xr && yr => {
            let o1 = c(e1, false, s2, true)?;
            let o2 = c(s1, true, e2, false)?;
            (o1 == Greater || (o1 == Equal && e1.inclusive && s2.inclusive))
                && (o2 == Less || (o2 == Equal && s1.inclusive && e2.inclusive))
        }
        "overlaps before" if xr && yr => {
            let ss = c(s1, true, s2, true)?;
            let es = c(e1, false, s2, true)?;
            let ee = c(e1, false, e2, false)?;
            (ss == Less || (ss == Equal && s1.inclusive && !s2.inclusive))
                && (es == Greater || (es == Equal && e1.inclusive && s2.inclusive))
                && (ee == Less || (ee == Equal && (!e1.inclusive || e2.inclusive)))
        }
        "overlaps after" if xr && yr => return relation("overlaps before", y, x),
        "finishes" if yr => {
            if !xr {
                return Some(e2.inclusive && equals(x, &e2.value)?);
            }
            let ss = c(s1, true, s2, true)?;
            e1.inclusive == e2.inclusive
                && c(e1, false, e2, false)? == Equal
                && (ss == Greater || (ss == Equal && (!s1.inclusive || s2.inclusive)))
        }
        "finished by" if xr => return relation("finishes", y, x),
        "includes" if xr => {
            if !yr {
                return a.contains(y);
            }
            let ss = c(s1, true, s2, true)?;
            let ee = c(e1, false, e2, false)?;
            (ss == Less || (ss == Equal && (s1.inclusive || !s2.inclusive)))
                && (ee == Greater || (ee == Equal && (e1.inclusive || !e2.inclusive)))
        }
        "during" if yr => return relation("includes", y, x),
        "starts" if yr => {
            if !xr {
                return Some(s2.inclusive && equals(x, &s2.value)?);
            }
            let ee = c(e1, false, e2, false)?;
            s1.inclusive == s2.inclusive
                && c(s1, true, s2, true)? == Equal
                && (ee == Less || (ee == Equal && (!e1.inclusive || e2.inclusive)))
        }
        "started by" if xr => return relation("starts", y, x),
        "coincides" => {
            if xr != yr {
                return None;
            }
            if !xr {
                return equals(x, y);
            }
            s1.inclusive == s2.inclusive
                && e1.inclusive == e2.inclusive
                && c(s1, true, s2, true)? == Equal
                && c(e1, false, e2, false)? == Equal
        }
        _ => return None,
    })
}
