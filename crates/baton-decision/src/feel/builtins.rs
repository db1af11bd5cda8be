//! The FEEL built-in function library: dispatch, named-parameter binding and
//! the number, string, list, boolean and context functions. Temporal and
//! range functions live in `builtins_time`.
//!
//! Every function returns `Null` on bad arguments, as FEEL requires.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, MathematicalOps, RoundingStrategy};

use super::builtins_list::*;
use super::builtins_time as time;
use super::eval::{Evaluator, LIST_LEN_MAX};
use super::value::{Context, Value, equals};

/// Built-ins and their parameter names (alternative signatures separated by `|`).
const SIGNATURES: &[(&str, &str)] = &[
    ("not", "negand"),
    ("date", "from|year,month,day"),
    ("date and time", "from|date,time"),
    ("time", "from|hour,minute,second,offset"),
    ("number", "from,grouping separator,decimal separator"),
    ("string", "from"),
    ("duration", "from"),
    ("years and months duration", "from,to"),
    ("substring", "string,start position,length"),
    ("string length", "string"),
    ("upper case", "string"),
    ("lower case", "string"),
    ("substring before", "string,match"),
    ("substring after", "string,match"),
    ("replace", "input,pattern,replacement,flags"),
    ("contains", "string,match"),
    ("starts with", "string,match"),
    ("ends with", "string,match"),
    ("matches", "input,pattern,flags"),
    ("split", "string,delimiter"),
    ("string join", "list,delimiter"),
    ("list contains", "list,element"),
    ("list replace", "list,position,newItem|list,match,newItem"),
    ("count", "list"),
    ("min", "list"),
    ("max", "list"),
    ("sum", "list"),
    ("mean", "list"),
    ("median", "list"),
    ("stddev", "list"),
    ("mode", "list"),
    ("product", "list"),
    ("all", "list"),
    ("any", "list"),
    ("and", "list"),
    ("or", "list"),
    ("sublist", "list,start position,length"),
    ("append", "list,item"),
    ("concatenate", "list"),
    ("insert before", "list,position,newItem"),
    ("remove", "list,position"),
    ("reverse", "list"),
    ("index of", "list,match"),
    ("union", "list"),
    ("distinct values", "list"),
    ("flatten", "list"),
    ("sort", "list,precedes"),
    ("decimal", "n,scale"),
    ("floor", "n,scale"),
    ("ceiling", "n,scale"),
    ("round up", "n,scale"),
    ("round down", "n,scale"),
    ("round half up", "n,scale"),
    ("round half down", "n,scale"),
    ("abs", "n"),
    ("modulo", "dividend,divisor"),
    ("sqrt", "number"),
    ("log", "number"),
    ("exp", "number"),
    ("odd", "number"),
    ("even", "number"),
    ("is", "value1,value2"),
    ("get value", "m,key"),
    ("get entries", "m"),
    ("context", "entries"),
    ("context put", "context,key,value|context,keys,value"),
    ("context merge", "contexts"),
    ("now", ""),
    ("today", ""),
    ("day of year", "date"),
    ("day of week", "date"),
    ("month of year", "date"),
    ("week of year", "date"),
    ("range", "from"),
    (
        "before",
        "point1,point2|point,range|range,point|range1,range2",
    ),
    (
        "after",
        "point1,point2|point,range|range,point|range1,range2",
    ),
    ("meets", "range1,range2"),
    ("met by", "range1,range2"),
    ("overlaps", "range1,range2"),
    ("overlaps before", "range1,range2"),
    ("overlaps after", "range1,range2"),
    ("finishes", "point,range|range1,range2"),
    ("finished by", "range,point|range1,range2"),
    ("includes", "range,point|range1,range2"),
    ("during", "point,range|range1,range2"),
    ("starts", "point,range|range1,range2"),
    ("started by", "range,point|range1,range2"),
    ("coincides", "point1,point2|range1,range2"),
];

/// Built-in names containing spaces, for the parser's name matcher.
pub const MULTI_WORD_NAMES: &[&str] = &[
    "date and time",
    "years and months duration",
    "string length",
    "upper case",
    "lower case",
    "substring before",
    "substring after",
    "starts with",
    "ends with",
    "string join",
    "list contains",
    "list replace",
    "insert before",
    "index of",
    "distinct values",
    "round up",
    "round down",
    "round half up",
    "round half down",
    "get value",
    "get entries",
    "context put",
    "context merge",
    "day of year",
    "day of week",
    "month of year",
    "week of year",
    "met by",
    "overlaps before",
    "overlaps after",
    "finished by",
    "started by",
    "start position",
    "grouping separator",
    "decimal separator",
    "start included",
    "end included",
    "time offset",
    "days and time duration",
];

/// Built-ins that take lists (no singleton unwrapping for them).
const LIST_FUNCTIONS: &[&str] = &[
    "string",
    "list contains",
    "list replace",
    "count",
    "min",
    "max",
    "sum",
    "mean",
    "median",
    "stddev",
    "mode",
    "product",
    "all",
    "any",
    "and",
    "or",
    "sublist",
    "append",
    "concatenate",
    "insert before",
    "remove",
    "reverse",
    "index of",
    "union",
    "distinct values",
    "flatten",
    "sort",
    "string join",
    "context",
    "context merge",
    "get value",
    "context put",
    "is",
];

/// List functions whose first argument is wrapped when it is not a list.
const WRAP_FIRST: &[&str] = &[
    "string join",
    "context",
    "context merge",
    "list contains",
    "sublist",
    "append",
    "insert before",
    "remove",
    "reverse",
    "index of",
    "distinct values",
    "flatten",
    "sort",
];

pub fn exists(name: &str) -> bool {
    SIGNATURES.iter().any(|(n, _)| *n == name)
}

/// The static name of a built-in, for storing in a function value.
pub fn intern(name: &str) -> &'static str {
    SIGNATURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, _)| *n)
        .unwrap_or("not")
}

/// Orders named arguments by the first signature that accepts all of them.
pub fn bind_named(name: &str, named: Vec<(Arc<str>, Value)>) -> Option<Vec<Value>> {
    let sigs = SIGNATURES.iter().find(|(n, _)| *n == name)?.1;
    // `context put(key: ...)` takes one key; a path of keys is `keys:`.
    if name == "context put"
        && named
            .iter()
            .any(|(k, v)| &**k == "key" && matches!(v, Value::List(_)))
    {
        return None;
    }
    for sig in sigs.split('|') {
        let params: Vec<&str> = sig.split(',').filter(|p| !p.is_empty()).collect();
        if named.iter().all(|(k, _)| params.contains(&&**k)) {
            let mut vals: Vec<Value> = params
                .iter()
                .map(|p| {
                    named
                        .iter()
                        .find(|(k, _)| &**k == *p)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(Value::Null)
                })
                .collect();
            // Trailing optional parameters that were not given are dropped
            // (`is` has none: a missing value is null).
            while name != "is"
                && vals.len() > named.len()
                && vals.last().is_some_and(Value::is_null)
            {
                let last = params[vals.len() - 1];
                if named.iter().any(|(k, _)| &**k == last) {
                    break;
                }
                vals.pop();
            }
            return Some(vals);
        }
    }
    None
}

/// Calls built-in `name` with positional arguments.
pub fn call(ev: &mut Evaluator<'_>, name: &str, mut args: Vec<Value>) -> Value {
    use Value::*;
    // A singleton list passed where a single value is expected stands for
    // its element (FEEL's implicit conversion).
    if !LIST_FUNCTIONS.contains(&name) {
        for a in args.iter_mut() {
            if let List(l) = a
                && l.len() == 1
            {
                *a = l[0].clone();
            }
        }
    }
    // A single value passed where a list is expected stands for the list
    // holding it.
    if WRAP_FIRST.contains(&name)
        && let Some(first) = args.first_mut()
        && !matches!(first, List(_) | Null)
    {
        *first = Value::list(vec![std::mem::take(first)]);
    }
    let a = args.as_slice();
    match (name, a) {
        ("not", [Bool(b)]) => Bool(!b),
        ("not", [_]) => Null,
        ("string", [v]) => match v {
            Null => Null,
            v => match v.to_string_bounded() {
                Some(s) => Value::str(&s),
                None => Null,
            },
        },
        ("number", _) => number(a),
        ("substring", _) => substring(a),
        ("string length", [String(s)]) => Value::num(s.chars().count() as i64),
        ("upper case", [String(s)]) => Value::str(&s.to_uppercase()),
        ("lower case", [String(s)]) => Value::str(&s.to_lowercase()),
        ("substring before", [String(s), String(m)]) => {
            Value::str(s.find(&**m).map(|i| &s[..i]).unwrap_or(""))
        }
        ("substring after", [String(s), String(m)]) => {
            Value::str(s.find(&**m).map(|i| &s[i + m.len()..]).unwrap_or(""))
        }
        ("contains", [String(s), String(m)]) => Bool(s.contains(&**m)),
        ("starts with", [String(s), String(m)]) => Bool(s.starts_with(&**m)),
        ("ends with", [String(s), String(m)]) => Bool(s.ends_with(&**m)),
        ("matches", [String(s), String(p)]) => {
            regex(p, "").map(|r| Bool(r.is_match(s))).unwrap_or(Null)
        }
        ("matches", [String(s), String(p), String(f)]) => {
            regex(p, f).map(|r| Bool(r.is_match(s))).unwrap_or(Null)
        }
        // Null flags are no flags.
        ("matches", [String(s), String(p), Null]) => {
            regex(p, "").map(|r| Bool(r.is_match(s))).unwrap_or(Null)
        }
        ("replace", [String(s), String(p), String(r)]) => replace(s, p, r, ""),
        ("replace", [String(s), String(p), String(r), String(f)]) => replace(s, p, r, f),
        ("split", [String(s), String(d)]) => match regex(d, "") {
            Some(r) => Value::list(r.split(s).map(Value::str).collect()),
            None => Null,
        },
        ("string join", [List(l)]) => string_join(l, ""),
        ("string join", [List(l), String(d)]) => string_join(l, d),
        ("string join", [List(l), Null]) => string_join(l, ""),
        ("list contains", [List(l), v]) => Bool(l.iter().any(|i| equals(i, v) == Some(true))),
        ("list replace", [List(l), pos, new]) => list_replace(ev, l, pos, new),
        ("count", _) => varargs(a)
            .map(|l| Value::num(l.len() as i64))
            .unwrap_or(Null),
        ("min" | "max", _) => varargs(a)
            .map(|l| min_max(&l, name == "max"))
            .unwrap_or(Null),
        ("sum", _) => varargs(a)
            .map(|l| {
                if l.is_empty() {
                    Null
                } else {
                    fold_num(&l, Decimal::ZERO, Decimal::checked_add)
                }
            })
            .unwrap_or(Null),
        ("product", _) => varargs(a)
            .map(|l| {
                if l.is_empty() {
                    Null
                } else {
                    fold_num(&l, Decimal::ONE, Decimal::checked_mul)
                }
            })
            .unwrap_or(Null),
        ("mean", _) => varargs(a).map(|l| mean(&l)).unwrap_or(Null),
        ("median", _) => varargs(a).map(|l| median(&l)).unwrap_or(Null),
        ("stddev", _) => varargs(a).map(|l| stddev(&l)).unwrap_or(Null),
        ("mode", _) => varargs(a).map(|l| mode(&l)).unwrap_or(Null),
        ("all" | "and", _) => varargs(a).map(|l| all_any(&l, true)).unwrap_or(Null),
        ("any" | "or", _) => varargs(a).map(|l| all_any(&l, false)).unwrap_or(Null),
        ("sublist", [List(l), Number(s)]) => sublist(l, *s, None),
        ("sublist", [List(l), Number(s), Number(n)]) => sublist(l, *s, Some(*n)),
        ("append", [List(l), rest @ ..]) => {
            let mut v = l.to_vec();
            v.extend(rest.iter().cloned());
            Value::list(v)
        }
        ("concatenate", _) => {
            let mut v = Vec::new();
            for x in a {
                match x {
                    List(l) => v.extend(l.iter().cloned()),
                    _ => return Null,
                }
            }
            Value::list(v)
        }
        ("insert before", [List(l), Number(p), item]) => match position(l.len(), *p, true) {
            Some(i) => {
                let mut v = l.to_vec();
                v.insert(i, item.clone());
                Value::list(v)
            }
            None => Null,
        },
        ("remove", [List(l), Number(p)]) => match position(l.len(), *p, false) {
            Some(i) => {
                let mut v = l.to_vec();
                v.remove(i);
                Value::list(v)
            }
            None => Null,
        },
        ("reverse", [List(l)]) => Value::list(l.iter().rev().cloned().collect()),
        ("index of", [List(l), m]) => Value::list(
            l.iter()
                .enumerate()
                .filter(|(_, x)| equals(x, m) == Some(true))
                .map(|(i, _)| Value::num(i as i64 + 1))
                .collect(),
        ),
        ("union", _) => {
            let mut v = Vec::new();
            for x in a {
                let List(l) = x else { return Null };
                v.extend(l.iter().cloned());
            }
            distinct(&v)
        }
        ("distinct values", [List(l)]) => distinct(l),
        ("flatten", [List(l)]) => {
            let mut out = Vec::new();
            flatten_into(l, &mut out);
            Value::list(out)
        }
        ("sort", [List(l)]) => sort(ev, l, None),
        ("sort", [List(l), Function(f)]) => sort(ev, l, Some(f.clone())),
        ("decimal", [Number(n), Number(s)]) => round(*n, *s, RoundingStrategy::MidpointNearestEven),
        ("floor", [Number(n)]) => Number(n.floor()),
        ("floor", [Number(n), Number(s)]) => round(*n, *s, RoundingStrategy::ToNegativeInfinity),
        ("ceiling", [Number(n)]) => Number(n.ceil()),
        ("ceiling", [Number(n), Number(s)]) => round(*n, *s, RoundingStrategy::ToPositiveInfinity),
        ("round up", [Number(n), Number(s)]) => round(*n, *s, RoundingStrategy::AwayFromZero),
        ("round down", [Number(n), Number(s)]) => round(*n, *s, RoundingStrategy::ToZero),
        ("round half up", [Number(n), Number(s)]) => {
            round(*n, *s, RoundingStrategy::MidpointAwayFromZero)
        }
        ("round half down", [Number(n), Number(s)]) => {
            round(*n, *s, RoundingStrategy::MidpointTowardZero)
        }
        ("abs", [Number(n)]) => Number(n.abs()),
        ("abs", [YmDuration(m)]) => YmDuration(m.abs()),
        ("abs", [DtDuration(n)]) => DtDuration(n.abs()),
        ("modulo", [Number(_), Number(d)]) if d.is_zero() => Null,
        ("modulo", [Number(n), Number(d)]) => {
            // FEEL's modulo takes the divisor's sign: n - d * floor(n / d).
            n.checked_div(*d)
                .and_then(|q| d.checked_mul(q.floor()))
                .and_then(|p| n.checked_sub(p))
                .map(Number)
                .unwrap_or(Null)
        }
        ("sqrt", [Number(n)]) if !n.is_sign_negative() => n.sqrt().map(Number).unwrap_or(Null),
        ("log", [Number(n)]) if *n > Decimal::ZERO => n.checked_ln().map(Number).unwrap_or(Null),
        ("exp", [Number(n)]) => n.checked_exp().map(Number).unwrap_or(Null),
        ("odd", [Number(n)]) if n.fract().is_zero() => Bool(n % Decimal::TWO != Decimal::ZERO),
        ("even", [Number(n)]) if n.fract().is_zero() => Bool(n % Decimal::TWO == Decimal::ZERO),
        ("is", [x, y]) => Bool(is_same(x, y)),
        ("get value", [Context(c), String(k)]) => c.get(k).cloned().unwrap_or(Null),
        ("get value", [Context(c), List(path)]) => get_path(c, path),
        ("get entries", [Context(c)]) => Value::list(
            c.entries
                .iter()
                .map(|(k, v)| {
                    Value::context(vec![
                        (Arc::from("key"), Value::String(k.clone())),
                        (Arc::from("value"), v.clone()),
                    ])
                })
                .collect(),
        ),
        ("context", [List(l)]) => build_context(l),
        ("context put", [Context(c), String(k), v]) => {
            let mut c = (**c).clone();
            c.put(k.clone(), v.clone());
            Value::Context(Arc::new(c))
        }
        ("context put", [Context(c), List(keys), v]) => context_put_path(c, keys, v.clone()),
        ("context merge", [List(l)]) => {
            let mut out = super::value::Context::default();
            for x in l.iter() {
                let Context(c) = x else { return Null };
                for (k, v) in &c.entries {
                    out.put(k.clone(), v.clone());
                }
            }
            Value::Context(Arc::new(out))
        }
        _ => time::call(ev, name, a),
    }
}

fn round(n: Decimal, scale: Decimal, strategy: RoundingStrategy) -> Value {
    let Ok(s) = i32::try_from(scale.trunc()) else {
        return Value::Null;
    };
    if !(-6111..=6176).contains(&s) {
        return Value::Null;
    }
    if s >= 0 {
        return Value::Number(n.round_dp_with_strategy(s.min(28) as u32, strategy));
    }
    // Negative scales round to tens, hundreds, ...: shift, round, shift back.
    let Some(factor) = Decimal::TEN.checked_powi(-s as i64) else {
        return Value::Number(Decimal::ZERO);
    };
    n.checked_div(factor)
        .map(|q| q.round_dp_with_strategy(0, strategy))
        .and_then(|q| q.checked_mul(factor))
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn number(a: &[Value]) -> Value {
    // Separators are strings or null; anything else is an error (null).
    if a.iter()
        .skip(1)
        .any(|v| !matches!(v, Value::String(_) | Value::Null))
    {
        return Value::Null;
    }
    let (s, group, dec) = match a {
        [Value::String(s)] => (s.clone(), None, None),
        [Value::String(s), g] => (s.clone(), g.as_str().map(str::to_owned), None),
        [Value::String(s), g, d] => (
            s.clone(),
            g.as_str().map(str::to_owned),
            d.as_str().map(str::to_owned),
        ),
        _ => return Value::Null,
    };
    if let Some(g) = &group
        && ![" ", ",", "."].contains(&g.as_str())
    {
        return Value::Null;
    }
    if let Some(d) = &dec
        && (![",", "."].contains(&d.as_str()) || Some(d) == group.as_ref())
    {
        return Value::Null;
    }
    let mut t = s.to_string();
    if let Some(g) = group {
        t = t.replace(&g, "");
    }
    if let Some(d) = dec {
        t = t.replace(&d, ".");
    }
    let t = t.trim();
    let valid = !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
    match (
        valid,
        super::parser::parse_number(t.trim_start_matches('+')),
    ) {
        (true, Some(n)) => Value::Number(n),
        (true, None) if t.starts_with('-') => super::parser::parse_number(&t[1..])
            .map(|n| Value::Number(-n))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn substring(a: &[Value]) -> Value {
    let (s, start, len) = match a {
        [Value::String(s), Value::Number(st)] => (s, *st, None),
        [Value::String(s), Value::Number(st), Value::Number(l)] => (s, *st, Some(*l)),
        _ => return Value::Null,
    };
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let Ok(st) = i64::try_from(start.trunc()) else {
        return Value::Null;
    };
    let begin = if st > 0 {
        st - 1
    } else if st < 0 {
        n + st
    } else {
        return Value::Null;
    };
    if begin < 0 || begin > n {
        return Value::Null;
    }
    let end = match len {
        None => n,
        Some(l) => match i64::try_from(l.trunc()) {
            Ok(l) if l >= 0 => (begin + l).min(n),
            _ => return Value::Null,
        },
    };
    Value::str(
        &chars[begin as usize..end as usize]
            .iter()
            .collect::<String>(),
    )
}

fn string_join(l: &[Value], d: &str) -> Value {
    let mut out = String::new();
    let mut first = true;
    for v in l {
        match v {
            Value::String(s) => {
                if !first {
                    out.push_str(d);
                }
                first = false;
                if out.len() + s.len() > super::eval::STRING_LEN_MAX {
                    return Value::Null;
                }
                out.push_str(s);
            }
            Value::Null => {}
            _ => return Value::Null,
        }
    }
    Value::str(&out)
}

/// Compiles an XPath-flavoured pattern (flags `i`, `s`, `m`, `x`, `q`).
fn regex(pattern: &str, flags: &str) -> Option<Regex> {
    let mut b = if flags.contains('q') {
        RegexBuilder::new(&regex::escape(pattern))
    } else {
        RegexBuilder::new(&xpath_pattern(
            pattern,
            flags.contains('x'),
            flags.contains('s'),
        ))
    };
    for f in flags.chars() {
        match f {
            'i' => b.case_insensitive(true),
            's' => b.dot_matches_new_line(true),
            'm' => b.multi_line(true),
            // Done above, the XPath way (see `strip_whitespace`).
            'x' | 'q' => &mut b,
            _ => return None,
        };
    }
    // Bound compiled size: patterns come from models and inputs.
    b.size_limit(1 << 20).build().ok()
}

/// Adapts an XPath pattern to Rust's regex syntax where the two differ:
/// with the `x` flag whitespace is removed before matching, except inside a
/// character class (`[ ]` keeps its space; `\ s` becomes `\s`; Rust's own
/// `x` mode reads `\ ` as a space and `#` as a comment), `.` matches
/// neither `\n` nor `\r` unless the `s` flag is set, and class subtraction
/// `[a-z-[aeiou]]` is written `[a-z--[aeiou]]`.
fn xpath_pattern(pattern: &str, strip_ws: bool, dot_all: bool) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut class_depth = 0u32;
    let mut escaped = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if strip_ws && class_depth == 0 && matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        if escaped {
            escaped = false;
            out.push(c);
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' => class_depth += 1,
            ']' => class_depth = class_depth.saturating_sub(1),
            '.' if class_depth == 0 && !dot_all => {
                out.push_str("[^\\n\\r]");
                continue;
            }
            // Class subtraction: XPath `[A-Z-[OI]]` is Rust `[A-Z--[OI]]`.
            '-' if class_depth > 0 && chars.peek() == Some(&'[') => {
                out.push_str("--");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

fn replace(s: &str, p: &str, r: &str, flags: &str) -> Value {
    let Some(re) = regex(p, flags) else {
        return Value::Null;
    };
    // XPath `$1` group references become `${1}` (Rust reads `$1a` as a name).
    let mut rep = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => rep.extend(chars.next().map(|c| {
                if c == '$' {
                    "$$".to_string()
                } else {
                    c.to_string()
                }
            })),
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    return Value::Null;
                }
                rep.push_str(&format!("${{{digits}}}"));
            }
            c => rep.push(c),
        }
    }
    Value::str(&re.replace_all(s, rep.as_str()))
}

fn is_same(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Time(a), Value::Time(b)) => a == b,
        (Value::DateTime(a), Value::DateTime(b)) => a == b,
        (Value::Date(_), Value::DateTime(_)) | (Value::DateTime(_), Value::Date(_)) => false,
        _ => x.type_name() == y.type_name() && equals(x, y) == Some(true),
    }
}

fn get_path(c: &Context, path: &[Value]) -> Value {
    let mut cur = Value::Context(Arc::new(c.clone()));
    for k in path {
        let (Value::Context(c), Value::String(k)) = (&cur, k) else {
            return Value::Null;
        };
        cur = c.get(k).cloned().unwrap_or(Value::Null);
    }
    cur
}

fn context_put_path(c: &Context, keys: &[Value], v: Value) -> Value {
    let Some((first, rest)) = keys.split_first() else {
        return Value::Null;
    };
    let Value::String(k) = first else {
        return Value::Null;
    };
    let mut out = c.clone();
    let inner = if rest.is_empty() {
        v
    } else {
        match c.get(k) {
            Some(Value::Context(ic)) => context_put_path(ic, rest, v),
            None => context_put_path(&Context::default(), rest, v),
            _ => return Value::Null,
        }
    };
    if inner.is_null() && !rest.is_empty() {
        return Value::Null;
    }
    out.put(k.clone(), inner);
    Value::Context(Arc::new(out))
}

fn build_context(l: &[Value]) -> Value {
    let mut out = Context::default();
    for e in l {
        let Value::Context(c) = e else {
            return Value::Null;
        };
        let (Some(Value::String(k)), Some(v)) = (c.get("key"), c.get("value")) else {
            return Value::Null;
        };
        if out.get(k).is_some() {
            return Value::Null;
        }
        out.put(k.clone(), v.clone());
    }
    Value::Context(Arc::new(out))
}

/// Numeric helper for temporal builtins.
pub fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) if n.fract().is_zero() => n.to_i64(),
        _ => None,
    }
}

/// Guards list-producing built-ins against unbounded growth.
pub fn list_ok(len: usize) -> bool {
    len <= LIST_LEN_MAX
}

pub use time::temporal_property;
