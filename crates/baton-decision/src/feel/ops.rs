//! FEEL arithmetic over numbers, strings, temporals and durations.
//!
//! Every operation returns `Null` instead of failing: FEEL has no exceptions,
//! and an invalid combination (a date plus a number, division by zero,
//! overflow) yields null.

use rust_decimal::{Decimal, MathematicalOps};

use super::ast::ArithOp;
use super::temporal::{DateTime, NANOS, Time, Zone};
use super::value::Value;

pub fn arith(op: ArithOp, a: &Value, b: &Value) -> Value {
    use Value::*;
    match op {
        ArithOp::Add => add(a, b),
        ArithOp::Sub => sub(a, b),
        ArithOp::Mul => match (a, b) {
            (Number(x), Number(y)) => x.checked_mul(*y).map(Number).unwrap_or(Null),
            (YmDuration(m), Number(n)) | (Number(n), YmDuration(m)) => {
                dec_to_i128(Decimal::from(*m) * n)
                    .and_then(|v| i64::try_from(v).ok())
                    .map(YmDuration)
                    .unwrap_or(Null)
            }
            (DtDuration(d), Number(n)) | (Number(n), DtDuration(d)) => {
                scale_nanos(*d, *n, false).map(DtDuration).unwrap_or(Null)
            }
            _ => Null,
        },
        ArithOp::Div => match (a, b) {
            (Number(_), Number(y)) if y.is_zero() => Null,
            (Number(x), Number(y)) => x.checked_div(*y).map(Number).unwrap_or(Null),
            (YmDuration(_), Number(n)) | (DtDuration(_), Number(n)) if n.is_zero() => Null,
            (YmDuration(m), Number(n)) => Decimal::from(*m)
                .checked_div(*n)
                .and_then(dec_to_i128)
                .and_then(|v| i64::try_from(v).ok())
                .map(YmDuration)
                .unwrap_or(Null),
            (DtDuration(d), Number(n)) => scale_nanos(*d, *n, true).map(DtDuration).unwrap_or(Null),
            (YmDuration(x), YmDuration(y)) if *y != 0 => Decimal::from(*x)
                .checked_div(Decimal::from(*y))
                .map(Number)
                .unwrap_or(Null),
            (DtDuration(x), DtDuration(y)) if *y != 0 => nanos_dec(*x)
                .and_then(|x| nanos_dec(*y).and_then(|y| x.checked_div(y)))
                .map(Number)
                .unwrap_or(Null),
            _ => Null,
        },
        ArithOp::Pow => match (a, b) {
            (Number(x), Number(y)) => pow(*x, *y).map(Number).unwrap_or(Null),
            _ => Null,
        },
    }
}

fn pow(x: Decimal, y: Decimal) -> Option<Decimal> {
    if y.fract().is_zero() {
        let e = i64::try_from(y).ok()?;
        if e >= 0 {
            return x.checked_powi(e);
        }
        return Decimal::ONE.checked_div(x.checked_powi(-e)?);
    }
    x.checked_powd(y)
}

fn nanos_dec(n: i128) -> Option<Decimal> {
    Decimal::try_from_i128_with_scale(n, 9).ok()
}

fn dec_to_i128(d: Decimal) -> Option<i128> {
    i128::try_from(d.trunc()).ok()
}

fn scale_nanos(d: i128, n: Decimal, divide: bool) -> Option<i128> {
    let secs = nanos_dec(d)?;
    let r = if divide {
        secs.checked_div(n)?
    } else {
        secs.checked_mul(n)?
    };
    let r = r.checked_mul(Decimal::from(1_000_000_000i64))?;
    dec_to_i128(r.round())
}

fn add(a: &Value, b: &Value) -> Value {
    use Value::*;
    match (a, b) {
        (Number(x), Number(y)) => x.checked_add(*y).map(Number).unwrap_or(Null),
        (String(x), String(y)) => {
            if x.len() + y.len() > super::eval::STRING_LEN_MAX {
                return Null;
            }
            let mut s = std::string::String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Value::str(&s)
        }
        (YmDuration(x), YmDuration(y)) => x.checked_add(*y).map(YmDuration).unwrap_or(Null),
        (DtDuration(x), DtDuration(y)) => x.checked_add(*y).map(DtDuration).unwrap_or(Null),
        (Date(d), YmDuration(m)) | (YmDuration(m), Date(d)) => {
            d.add_months(*m).map(Date).unwrap_or(Null)
        }
        (Date(d), DtDuration(n)) | (DtDuration(n), Date(d)) => {
            // A date plus a day-time duration stays a date (whole days count).
            let days = n.div_euclid(86_400 * NANOS);
            i64::try_from(days)
                .ok()
                .and_then(|days| super::temporal::Date::from_days(d.days() + days))
                .map(Date)
                .unwrap_or(Null)
        }
        (DateTime(dt), YmDuration(m)) | (YmDuration(m), DateTime(dt)) => {
            match dt.date.add_months(*m) {
                Some(date) => DateTime(super::temporal::DateTime {
                    date,
                    time: dt.time.clone(),
                }),
                None => Null,
            }
        }
        (DateTime(dt), DtDuration(n)) | (DtDuration(n), DateTime(dt)) => {
            super::temporal::DateTime::from_local_nanos(dt.local_nanos() + n, dt.time.zone.clone())
                .map(DateTime)
                .unwrap_or(Null)
        }
        (Time(t), DtDuration(n)) | (DtDuration(n), Time(t)) => Time(shift_time(t, *n)),
        _ => Null,
    }
}

fn shift_time(t: &Time, n: i128) -> Time {
    let base = t.secs as i128 * NANOS + t.nanos as i128;
    let v = (base + n).rem_euclid(86_400 * NANOS);
    Time {
        secs: (v / NANOS) as u32,
        nanos: (v % NANOS) as u32,
        zone: t.zone.clone(),
    }
}

fn midnight(d: &super::temporal::Date, zone: Zone) -> DateTime {
    DateTime {
        date: *d,
        time: Time {
            secs: 0,
            nanos: 0,
            zone,
        },
    }
}

fn sub(a: &Value, b: &Value) -> Value {
    use Value::*;
    match (a, b) {
        (Number(x), Number(y)) => x.checked_sub(*y).map(Number).unwrap_or(Null),
        (YmDuration(x), YmDuration(y)) => x.checked_sub(*y).map(YmDuration).unwrap_or(Null),
        (DtDuration(x), DtDuration(y)) => x.checked_sub(*y).map(DtDuration).unwrap_or(Null),
        (Date(x), Date(y)) => DtDuration((x.days() - y.days()) as i128 * 86_400 * NANOS),
        (DateTime(x), DateTime(y)) => {
            if x.is_zoned() != y.is_zoned() {
                return Null;
            }
            DtDuration(x.utc_nanos() - y.utc_nanos())
        }
        (Date(x), DateTime(y)) => sub(&DateTime(midnight(x, y.time.zone.clone())), b),
        (DateTime(x), Date(y)) => sub(a, &DateTime(midnight(y, x.time.zone.clone()))),
        (Time(x), Time(y)) => {
            if x.offset().is_some() != y.offset().is_some() {
                return Null;
            }
            DtDuration(x.utc_nanos() - y.utc_nanos())
        }
        (Date(_) | DateTime(_), YmDuration(m)) => add(a, &YmDuration(-m)),
        (Date(_) | DateTime(_) | Time(_), DtDuration(n)) => add(a, &DtDuration(-n)),
        _ => Null,
    }
}

pub fn negate(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::Number(-n),
        Value::YmDuration(m) => Value::YmDuration(-m),
        Value::DtDuration(n) => Value::DtDuration(-n),
        _ => Value::Null,
    }
}
