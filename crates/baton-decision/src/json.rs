//! Mapping between FEEL values and JSON, for the public API and traces.
//!
//! JSON to FEEL: numbers become decimals (parsed from their text, so no
//! binary floating point is involved), objects become contexts, arrays
//! lists. FEEL to JSON: integers that fit `i64` stay integers, other numbers
//! become JSON numbers via `f64` (JSON has no decimal type), and temporal
//! values, durations and ranges become their ISO 8601 / FEEL strings.

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::feel::Value;
use crate::feel::value::{RENDER_VALUES_MAX, fmt_number};
use std::cell::Cell;

pub fn to_json(v: &Value) -> serde_json::Value {
    to_json_within(v, &mut RENDER_VALUES_MAX.clone())
}

/// [`to_json`] of at most `budget` values; the rest become null (values
/// share their parts, so a value's written-out form can be exponentially
/// larger than the value; see [`RENDER_VALUES_MAX`]).
fn to_json_within(v: &Value, budget: &mut usize) -> serde_json::Value {
    use serde_json::Value as J;
    if *budget == 0 {
        return J::Null;
    }
    *budget -= 1;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => number_to_json(n),
        // `String::from`, not `to_string`: no formatting machinery.
        Value::String(s) => J::String(String::from(&**s)),
        Value::List(items) => J::Array(items.iter().map(|i| to_json_within(i, budget)).collect()),
        Value::Context(c) => {
            let mut map = serde_json::Map::with_capacity(c.entries.len());
            for (k, v) in &c.entries {
                map.insert(String::from(&**k), to_json_within(v, budget));
            }
            J::Object(map)
        }
        Value::Function(_) => J::Null,
        other => match other.to_string_bounded() {
            Some(s) => J::String(s),
            None => J::Null,
        },
    }
}

fn number_to_json(n: &Decimal) -> serde_json::Value {
    // Integers written without fraction digits, the common case, first.
    if n.scale() == 0
        && let Ok(i) = i64::try_from(n.mantissa())
    {
        return serde_json::Value::from(i);
    }
    if n.fract().is_zero()
        && let Some(i) = n.to_i64()
    {
        return serde_json::Value::from(i);
    }
    // Prefer the shortest float that reads back as the same decimal text.
    match fmt_number(n)
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(f) => serde_json::Value::Number(f),
        None => serde_json::Value::String(fmt_number(n)),
    }
}

/// Serialises a FEEL value with the same mapping as [`to_json`], without
/// building an intermediate JSON tree.
pub fn serialize_value<S: serde::Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&Ser(v, &Cell::new(RENDER_VALUES_MAX)), s)
}

/// A borrowed value that serialises with the [`to_json`] mapping, sharing a
/// budget of values with its siblings.
struct Ser<'a>(&'a Value, &'a Cell<usize>);

impl serde::Serialize for Ser<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let budget = self.1;
        if budget.get() == 0 {
            return s.serialize_unit();
        }
        budget.set(budget.get() - 1);
        match self.0 {
            Value::Null | Value::Function(_) => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match number_to_json(n) {
                serde_json::Value::Number(num) => match num.as_i64() {
                    Some(i) => s.serialize_i64(i),
                    None => s.serialize_f64(num.as_f64().unwrap_or(0.0)),
                },
                other => serde::Serialize::serialize(&other, s),
            },
            Value::String(x) => s.serialize_str(x),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items.iter() {
                    seq.serialize_element(&Ser(i, budget))?;
                }
                seq.end()
            }
            Value::Context(c) => {
                let mut map = s.serialize_map(Some(c.entries.len()))?;
                for (k, v) in &c.entries {
                    map.serialize_entry(&**k, &Ser(v, budget))?;
                }
                map.end()
            }
            other => match other.to_string_bounded() {
                Some(text) => s.serialize_str(&text),
                None => s.serialize_unit(),
            },
        }
    }
}

pub fn from_json(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Value::Number(Decimal::from(i));
            }
            let text = n.to_string();
            let parsed = if text.contains(['e', 'E']) {
                Decimal::from_scientific(&text).ok()
            } else {
                Decimal::from_str(&text).ok()
            };
            parsed.map(Value::Number).unwrap_or(Value::Null)
        }
        J::String(s) => Value::str(s),
        J::Array(a) => Value::list(a.iter().map(from_json).collect()),
        J::Object(o) => Value::context(
            o.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_plain_json() {
        let j = serde_json::json!({"a": 1, "b": [true, null, "x"], "c": 2.5});
        assert_eq!(to_json(&from_json(&j)), j);
    }
}
