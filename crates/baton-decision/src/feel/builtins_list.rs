//! List, aggregate and sorting helpers of the FEEL built-in library.

use std::sync::Arc;

use rust_decimal::{Decimal, MathematicalOps};

use super::eval::Evaluator;
use super::value::{Function, Value, compare, equals};

/// Aggregates accept either one list or several arguments.
pub(super) fn varargs(a: &[Value]) -> Option<Vec<Value>> {
    match a {
        [] => None,
        [Value::List(l)] => Some(l.to_vec()),
        [Value::Null] => None,
        many => Some(many.to_vec()),
    }
}

pub(super) fn nums(l: &[Value]) -> Option<Vec<Decimal>> {
    l.iter().map(Value::as_number).collect()
}

pub(super) fn fold_num(
    l: &[Value],
    init: Decimal,
    f: fn(Decimal, Decimal) -> Option<Decimal>,
) -> Value {
    let Some(ns) = nums(l) else {
        return Value::Null;
    };
    ns.into_iter()
        .try_fold(init, f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub(super) fn min_max(l: &[Value], max: bool) -> Value {
    let mut best: Option<&Value> = None;
    for v in l {
        best = match best {
            None => Some(v),
            Some(b) => match compare(v, b) {
                Some(o)
                    if (o == std::cmp::Ordering::Greater) == max
                        && o != std::cmp::Ordering::Equal =>
                {
                    Some(v)
                }
                Some(_) => Some(b),
                None => return Value::Null,
            },
        };
    }
    best.cloned().unwrap_or(Value::Null)
}

pub(super) fn mean(l: &[Value]) -> Value {
    let Some(ns) = nums(l) else {
        return Value::Null;
    };
    if ns.is_empty() {
        return Value::Null;
    }
    let sum = ns.iter().try_fold(Decimal::ZERO, |a, b| a.checked_add(*b));
    sum.and_then(|s| s.checked_div(Decimal::from(ns.len())))
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub(super) fn median(l: &[Value]) -> Value {
    let Some(mut ns) = nums(l) else {
        return Value::Null;
    };
    if ns.is_empty() {
        return Value::Null;
    }
    ns.sort();
    let n = ns.len();
    if n % 2 == 1 {
        Value::Number(ns[n / 2])
    } else {
        Value::Number((ns[n / 2 - 1] + ns[n / 2]) / Decimal::TWO)
    }
}

pub(super) fn stddev(l: &[Value]) -> Value {
    let Some(ns) = nums(l) else {
        return Value::Null;
    };
    if ns.len() < 2 {
        return Value::Null;
    }
    let n = Decimal::from(ns.len());
    let Some(mean) = ns
        .iter()
        .try_fold(Decimal::ZERO, |a, b| a.checked_add(*b))
        .and_then(|s| s.checked_div(n))
    else {
        return Value::Null;
    };
    let var = ns.iter().try_fold(Decimal::ZERO, |a, x| {
        (x - mean)
            .checked_mul(x - mean)
            .and_then(|sq| a.checked_add(sq))
    });
    var.and_then(|v| v.checked_div(n - Decimal::ONE))
        .and_then(|v| v.sqrt())
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub(super) fn mode(l: &[Value]) -> Value {
    let Some(mut ns) = nums(l) else {
        return Value::Null;
    };
    ns.sort();
    let mut counts: Vec<(Decimal, usize)> = Vec::new();
    for n in ns {
        match counts.last_mut() {
            Some((v, c)) if *v == n => *c += 1,
            _ => counts.push((n, 1)),
        }
    }
    let top = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
    Value::list(
        counts
            .into_iter()
            .filter(|(_, c)| *c == top)
            .map(|(v, _)| Value::Number(v))
            .collect(),
    )
}

pub(super) fn all_any(l: &[Value], all: bool) -> Value {
    let mut unknown = false;
    for v in l {
        match v {
            Value::Bool(b) if *b != all => return Value::Bool(*b),
            Value::Bool(_) => {}
            _ => unknown = true,
        }
    }
    if unknown {
        Value::Null
    } else {
        Value::Bool(all)
    }
}

pub(super) fn position(len: usize, p: Decimal, insert: bool) -> Option<usize> {
    let p = i64::try_from(p.trunc()).ok()?;
    let len = len as i64;
    let idx = if p > 0 {
        p - 1
    } else if p < 0 {
        len + p
    } else {
        return None;
    };
    let limit = if insert { len } else { len - 1 };
    if idx < 0 || idx > limit {
        None
    } else {
        Some(idx as usize)
    }
}

pub(super) fn sublist(l: &[Value], start: Decimal, len: Option<Decimal>) -> Value {
    let Some(s) = position(l.len(), start, false) else {
        return Value::Null;
    };
    let end = match len {
        None => l.len(),
        Some(n) => match usize::try_from(n.trunc()) {
            Ok(n) if s + n <= l.len() => s + n,
            _ => return Value::Null,
        },
    };
    Value::list(l[s..end].to_vec())
}

pub(super) fn distinct(l: &[Value]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for v in l {
        if !out.iter().any(|o| equals(o, v) == Some(true)) {
            out.push(v.clone());
        }
    }
    Value::list(out)
}

pub(super) fn flatten_into(l: &[Value], out: &mut Vec<Value>) {
    for v in l {
        match v {
            Value::List(inner) => flatten_into(inner, out),
            v => out.push(v.clone()),
        }
    }
}

pub(super) fn list_replace(ev: &mut Evaluator<'_>, l: &[Value], pos: &Value, new: &Value) -> Value {
    match pos {
        Value::Number(p) => match position(l.len(), *p, false) {
            Some(i) => {
                let mut v = l.to_vec();
                v[i] = new.clone();
                Value::list(v)
            }
            None => Value::Null,
        },
        Value::Function(f) => {
            let mut v = Vec::with_capacity(l.len());
            for item in l {
                match ev.call_function(f, vec![item.clone(), new.clone()]) {
                    Value::Bool(true) => v.push(new.clone()),
                    Value::Bool(false) => v.push(item.clone()),
                    _ => return Value::Null,
                }
            }
            Value::list(v)
        }
        _ => Value::Null,
    }
}

/// A merge sort that tolerates inconsistent user comparators (the standard
/// library's sort may panic on those).
pub(super) fn sort(ev: &mut Evaluator<'_>, l: &[Value], precedes: Option<Arc<Function>>) -> Value {
    let mut failed = false;
    let mut less = |a: &Value, b: &Value| -> bool {
        match &precedes {
            Some(f) => match ev.call_function(f, vec![a.clone(), b.clone()]) {
                Value::Bool(b) => b,
                _ => {
                    failed = true;
                    false
                }
            },
            None => match compare(a, b) {
                Some(o) => o == std::cmp::Ordering::Less,
                None => {
                    failed = true;
                    false
                }
            },
        }
    };
    let sorted = merge_sort(l.to_vec(), &mut less);
    if failed {
        Value::Null
    } else {
        Value::list(sorted)
    }
}

pub(super) fn merge_sort(
    v: Vec<Value>,
    less: &mut dyn FnMut(&Value, &Value) -> bool,
) -> Vec<Value> {
    if v.len() <= 1 {
        return v;
    }
    let mut left = v;
    let right = left.split_off(left.len() / 2);
    let (l, r) = (merge_sort(left, less), merge_sort(right, less));
    let mut out = Vec::with_capacity(l.len() + r.len());
    let (mut li, mut ri) = (l.into_iter().peekable(), r.into_iter().peekable());
    while let (Some(a), Some(b)) = (li.peek(), ri.peek()) {
        if less(b, a) {
            out.extend(ri.next())
        } else {
            out.extend(li.next())
        }
    }
    out.extend(li);
    out.extend(ri);
    out
}
