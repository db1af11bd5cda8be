//! Comparing JSON values the way the CTK means them: deep equality where numbers compare by value
//! (`1` equals `1.0`) and mappings ignore key order, and dotted property paths.

use serde_json::{Number, Value};

/// Deep equality; numbers by value, mappings regardless of key order.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Integers compare exactly (no rounding through `f64` above 2^53); otherwise by `f64` value.
fn same_number(x: &Number, y: &Number) -> bool {
    if let (Some(p), Some(q)) = (x.as_i64(), y.as_i64()) {
        return p == q;
    }
    if let (Some(p), Some(q)) = (x.as_u64(), y.as_u64()) {
        return p == q;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(p), Some(q)) => p == q,
        _ => false,
    }
}

/// The value at a dotted path (`a.b.0.c`): each segment is a mapping key, or an index into a
/// list when it is a number.
pub fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A short rendering of a value for failure messages.
pub fn show(v: &Value) -> String {
    const SHOW_CHARS_MAX: usize = 400;
    let s = v.to_string();
    if s.chars().count() <= SHOW_CHARS_MAX {
        return s;
    }
    let cut: String = s.chars().take(SHOW_CHARS_MAX).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_by_value_and_maps_without_order() {
        assert!(same(
            &json!({"a": 1, "b": [1.0, 2]}),
            &json!({"b": [1, 2.0], "a": 1.0})
        ));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
        assert!(!same(&json!("1"), &json!(1)));
        assert!(same(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!same(
            &json!(9_007_199_254_740_993_i64),
            &json!(9_007_199_254_740_992_i64)
        ));
    }

    #[test]
    fn dotted_paths() {
        let v = json!({"a": {"b": [{"c": 3}]}, "x.y": 1});
        assert_eq!(at_path(&v, "a.b.0.c"), Some(&json!(3)));
        assert_eq!(at_path(&v, "a.b.1"), None);
        assert_eq!(at_path(&v, "a.z"), None);
        assert_eq!(at_path(&json!({"e": null}), "e"), Some(&Value::Null));
    }
}
