//! Conversion between `serde_json::Value` and jaq's `Val`, with the depth and size limits.
//!
//! Both directions recurse once per nesting level; the depth limit is checked before each
//! descent, so recursion never goes deeper than `depth_max`.

use std::sync::Arc;

use jaq_json::{Map, Num, Val};
use serde_json::Value;

use crate::error::ExprError;
use crate::guard::{num_bytes, trip};

/// Convert an input or variable value; fails if it is nested deeper than `depth_max`.
pub(crate) fn to_val(v: &Value, depth_max: usize) -> Result<Val, ExprError> {
    to_val_at(v, depth_max).ok_or_else(|| ExprError::budget("depth", depth_max as u64))
}

fn to_val_at(v: &Value, depth_left: usize) -> Option<Val> {
    Some(match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => number_to_val(n),
        Value::String(s) => Val::from(s.clone()),
        Value::Array(items) => {
            let depth_left = depth_left.checked_sub(1)?;
            let items = items.iter().map(|v| to_val_at(v, depth_left));
            Val::Arr(Arc::new(items.collect::<Option<Vec<_>>>()?))
        }
        Value::Object(entries) => {
            let depth_left = depth_left.checked_sub(1)?;
            let mut map = Map::default();
            map.reserve(entries.len());
            for (k, v) in entries {
                map.insert(Val::from(k.clone()), to_val_at(v, depth_left)?);
            }
            Val::obj(map)
        }
    })
}

fn number_to_val(n: &serde_json::Number) -> Val {
    if let Some(i) = n.as_i64().and_then(|i| isize::try_from(i).ok()) {
        Val::from(i)
    } else if let Some(u) = n.as_u64() {
        // Larger than isize::MAX: jaq keeps it exact as a big integer.
        Val::Num(Num::from_integral(u))
    } else {
        Val::from(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Converts outputs back, charging their size against one output-size allowance.
pub(crate) struct FromVal {
    bytes_left: usize,
    bytes_max: usize,
    depth_max: usize,
}

impl FromVal {
    pub fn new(bytes_max: usize, depth_max: usize) -> Self {
        Self {
            bytes_left: bytes_max,
            bytes_max,
            depth_max,
        }
    }

    fn spend(&mut self, bytes: usize) {
        match self.bytes_left.checked_sub(bytes) {
            Some(left) => self.bytes_left = left,
            None => trip("output size", self.bytes_max as u64),
        }
    }

    /// Convert one output. Trips (see [`trip`]) when the outputs so far exceed the size limit.
    pub fn convert(&mut self, v: &Val) -> Result<Value, ExprError> {
        self.convert_at(v, 0)
    }

    fn convert_at(&mut self, v: &Val, depth: usize) -> Result<Value, ExprError> {
        Ok(match v {
            Val::Null => {
                self.spend(4);
                Value::Null
            }
            Val::Bool(b) => {
                self.spend(5);
                Value::Bool(*b)
            }
            Val::Num(n) => {
                self.spend(num_bytes(n));
                number_from_val(n)
            }
            Val::TStr(b) | Val::BStr(b) => {
                self.spend(b.len() + 2);
                Value::String(String::from_utf8_lossy(b).into_owned())
            }
            Val::Arr(items) => {
                self.enter(depth)?;
                self.spend(2 + items.len());
                let items = items.iter().map(|v| self.convert_at(v, depth + 1));
                Value::Array(items.collect::<Result<_, _>>()?)
            }
            Val::Obj(entries) => {
                self.enter(depth)?;
                self.spend(2 + 2 * entries.len());
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries.iter() {
                    let key = match k {
                        Val::TStr(b) | Val::BStr(b) => {
                            self.spend(b.len() + 2);
                            String::from_utf8_lossy(b).into_owned()
                        }
                        other => {
                            return Err(ExprError::runtime(format!(
                                "object keys must be strings, found {other}"
                            )));
                        }
                    };
                    map.insert(key, self.convert_at(v, depth + 1)?);
                }
                Value::Object(map)
            }
        })
    }

    fn enter(&self, depth: usize) -> Result<(), ExprError> {
        if depth >= self.depth_max {
            return Err(ExprError::budget("depth", self.depth_max as u64));
        }
        Ok(())
    }
}

/// jq prints NaN as `null` and infinities as the largest finite doubles; so do we.
fn float(f: f64) -> Value {
    let f = if f.is_infinite() {
        f64::MAX.copysign(f)
    } else {
        f
    };
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn number_from_val(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::Number((*i as i64).into()),
        Num::Float(f) => float(*f),
        Num::BigInt(_) | Num::Dec(_) => {
            let s = match n {
                Num::Dec(s) => s.to_string(),
                other => other.to_string(),
            };
            if let Ok(i) = s.parse::<i64>() {
                Value::Number(i.into())
            } else if let Ok(u) = s.parse::<u64>() {
                Value::Number(u.into())
            } else {
                float(s.parse().unwrap_or(f64::NAN))
            }
        }
    }
}
