//! FEEL runtime values, their equality (three-valued) and ordering.
//!
//! Values are cheap to clone: aggregates sit behind `Arc` so that passing a
//! list or context between decisions, rules and trace entries never copies it.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::ast::{Expr, TypeRef};
use super::temporal::{Date, DateTime, Time, fmt_dt, fmt_ym};

/// A FEEL value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Decimal),
    String(Arc<str>),
    Date(Date),
    Time(Time),
    DateTime(DateTime),
    /// Years-and-months duration, in months.
    YmDuration(i64),
    /// Days-and-time duration, in nanoseconds.
    DtDuration(i128),
    List(Arc<Vec<Value>>),
    Context(Arc<Context>),
    Range(Arc<Range>),
    Function(Arc<Function>),
}

/// An ordered FEEL context (entry order is significant for output).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub entries: Vec<(Arc<str>, Value)>,
}

impl Context {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| str_eq(k, key))
            .map(|(_, v)| v)
    }
    /// Inserts or replaces an entry, keeping the original position.
    pub fn put(&mut self, key: Arc<str>, value: Value) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }
}

/// One end of a range; `value == Null` means unbounded.
#[derive(Clone, Debug)]
pub struct Bound {
    pub value: Value,
    pub inclusive: bool,
}

/// A FEEL range (interval), possibly open-ended.
#[derive(Clone, Debug)]
pub struct Range {
    pub start: Bound,
    pub end: Bound,
    /// Built from a unary comparison (`< 10`): a null end is unbounded.
    /// In a range literal (`[1..null]`) a null end is unknown instead.
    pub from_test: bool,
}

impl Range {
    /// Whether `v` lies in the range; `None` when not comparable.
    pub fn contains(&self, v: &Value) -> Option<bool> {
        if !self.from_test && (self.start.value.is_null() || self.end.value.is_null()) {
            return None;
        }
        if !self.start.value.is_null() {
            let o = compare(&self.start.value, v)?;
            let ok = if self.start.inclusive {
                o != Ordering::Greater
            } else {
                o == Ordering::Less
            };
            if !ok {
                return Some(false);
            }
        }
        if !self.end.value.is_null() {
            let o = compare(v, &self.end.value)?;
            let ok = if self.end.inclusive {
                o != Ordering::Greater
            } else {
                o == Ordering::Less
            };
            if !ok {
                return Some(false);
            }
        }
        Some(true)
    }
}

/// Something callable that lives outside the FEEL evaluator (a DMN business
/// knowledge model, a decision service). Implemented by the DMN layer.
pub trait Callable: Send + Sync + fmt::Debug {
    fn params(&self) -> &[Arc<str>];
    fn call(&self, ev: &mut super::eval::Evaluator<'_>, args: Vec<Value>) -> Value;
}

/// A FEEL function value.
#[derive(Debug)]
pub enum Function {
    Builtin(&'static str),
    /// A user-defined FEEL function with its captured scope.
    User {
        params: Vec<(Arc<str>, Option<TypeRef>)>,
        body: Arc<Expr>,
        closure: Vec<(Arc<str>, Value)>,
    },
    External(Arc<dyn Callable>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn str(s: &str) -> Value {
        Value::String(Arc::from(s))
    }
    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Arc::new(v))
    }
    pub fn num(n: impl Into<Decimal>) -> Value {
        Value::Number(n.into())
    }
    pub fn context(entries: Vec<(Arc<str>, Value)>) -> Value {
        Value::Context(Arc::new(Context { entries }))
    }
    pub fn as_number(&self) -> Option<Decimal> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// A FEEL type name, as used by `instance of` and error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::DateTime(_) => "date and time",
            Value::YmDuration(_) => "years and months duration",
            Value::DtDuration(_) => "days and time duration",
            Value::List(_) => "list",
            Value::Context(_) => "context",
            Value::Range(_) => "range",
            Value::Function(_) => "function",
        }
    }
}

/// String equality for names and short literals: the same allocation, or a
/// different length or first byte, is settled without calling `memcmp`.
#[inline]
pub fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if std::ptr::eq(a, b) {
        return true;
    }
    if a.len() <= 16 {
        // Short names and codes: a byte loop beats a library call.
        let mut diff = 0u8;
        for i in 0..a.len() {
            diff |= a[i] ^ b[i];
        }
        return diff == 0;
    }
    a == b
}

/// FEEL `=`: `Some(bool)` when comparable, `None` (null) for mismatched types.
/// Null equals only null. Comparing lists and contexts visits at most
/// [`RENDER_VALUES_MAX`] values; past that the answer is unknown (null).
pub fn equals(a: &Value, b: &Value) -> Option<bool> {
    equals_within(a, b, &mut RENDER_VALUES_MAX.clone())
}

fn equals_within(a: &Value, b: &Value, budget: &mut usize) -> Option<bool> {
    use Value::*;
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    Some(match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Bool(x), Bool(y)) => x == y,
        (Number(x), Number(y)) => x == y,
        (String(x), String(y)) => x == y,
        (Date(x), Date(y)) => x == y,
        (Time(x), Time(y)) => {
            if x.offset().is_some() != y.offset().is_some() {
                return Some(false);
            }
            // Sub-millisecond digits are not significant for time equality in
            // the TCK's reference semantics.
            x.utc_nanos() / 1_000_000 == y.utc_nanos() / 1_000_000
        }
        (DateTime(x), DateTime(y)) => {
            if x.is_zoned() != y.is_zoned() {
                return Some(false);
            }
            x.utc_nanos() / 1_000_000 == y.utc_nanos() / 1_000_000
        }
        (Date(x), DateTime(y)) | (DateTime(y), Date(x)) => {
            let dx = super::temporal::DateTime {
                date: *x,
                time: super::temporal::Time {
                    secs: 0,
                    nanos: 0,
                    zone: y.time.zone.clone(),
                },
            };
            dx.utc_nanos() == y.utc_nanos()
        }
        (YmDuration(x), YmDuration(y)) => x == y,
        (DtDuration(x), DtDuration(y)) => x == y,
        // A value equals itself; parts are shared, so this also keeps
        // comparisons of large shared structures short.
        (List(x), List(y)) if Arc::ptr_eq(x, y) => true,
        (Context(x), Context(y)) if Arc::ptr_eq(x, y) => true,
        (List(x), List(y)) => {
            if x.len() != y.len() {
                return Some(false);
            }
            for (p, q) in x.iter().zip(y.iter()) {
                if !equals_within(p, q, budget)? {
                    return Some(false);
                }
            }
            true
        }
        (Context(x), Context(y)) => {
            if x.entries.len() != y.entries.len() {
                return Some(false);
            }
            for (k, v) in &x.entries {
                match y.get(k) {
                    Some(w) => {
                        if !equals_within(v, w, budget)? {
                            return Some(false);
                        }
                    }
                    None => return Some(false),
                }
            }
            true
        }
        (Range(x), Range(y)) => {
            x.from_test == y.from_test
                && x.start.inclusive == y.start.inclusive
                && x.end.inclusive == y.end.inclusive
                && equals_within(&x.start.value, &y.start.value, budget)?
                && equals_within(&x.end.value, &y.end.value, budget)?
        }
        (Function(x), Function(y)) => Arc::ptr_eq(x, y),
        _ => return None,
    })
}

/// FEEL ordering for `<`, `>`, ranges and sorting; `None` when not comparable.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Number(x), Number(y)) => Some(x.cmp(y)),
        (String(x), String(y)) => Some(x.cmp(y)),
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Time(x), Time(y)) => {
            if x.offset().is_some() != y.offset().is_some() {
                return None;
            }
            Some(x.utc_nanos().cmp(&y.utc_nanos()))
        }
        (DateTime(x), DateTime(y)) => {
            if x.is_zoned() != y.is_zoned() {
                return None;
            }
            Some(x.utc_nanos().cmp(&y.utc_nanos()))
        }
        (Date(x), DateTime(_)) => {
            let dx = Value::DateTime(super::temporal::DateTime {
                date: *x,
                time: super::temporal::Time {
                    secs: 0,
                    nanos: 0,
                    zone: super::temporal::Zone::Offset(0),
                },
            });
            compare(&dx, b)
        }
        (DateTime(_), Date(_)) => compare(b, a).map(Ordering::reverse),
        (YmDuration(x), YmDuration(y)) => Some(x.cmp(y)),
        (DtDuration(x), DtDuration(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Renders a number without exponent and without trailing zeros.
pub fn fmt_number(n: &Decimal) -> String {
    n.normalize().to_string()
}

/// Values share their parts (`Arc`), so a short evaluation can build a
/// value whose written-out form is exponentially large (a list holding the
/// previous list twice, sixty times). Rendering (strings, JSON) stops after
/// this many values and marks or nulls the rest.
pub const RENDER_VALUES_MAX: usize = 1 << 20;

impl fmt::Display for Value {
    /// The FEEL `string()` form: strings are bare at top level, quoted inside
    /// lists and contexts. Past [`RENDER_VALUES_MAX`] values the rest is
    /// written as `…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "{s}"),
            other => write_nested(f, other, &mut Budget::new()),
        }
    }
}

/// Values left to render, and whether some were cut.
struct Budget {
    left: usize,
    cut: bool,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            left: RENDER_VALUES_MAX,
            cut: false,
        }
    }
}

impl Value {
    /// The `string()` form, or `None` when it would exceed
    /// [`RENDER_VALUES_MAX`] values or [`super::eval::STRING_LEN_MAX`] bytes.
    pub fn to_string_bounded(&self) -> Option<String> {
        if let Value::String(s) = self {
            return Some(s.to_string());
        }
        struct Render<'a>(&'a Value, std::cell::Cell<bool>);
        impl fmt::Display for Render<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut b = Budget::new();
                let r = write_nested(f, self.0, &mut b);
                self.1.set(b.cut);
                r
            }
        }
        let r = Render(self, std::cell::Cell::new(false));
        let s = r.to_string();
        (!r.1.get() && s.len() <= super::eval::STRING_LEN_MAX).then_some(s)
    }
}

fn write_nested(f: &mut fmt::Formatter<'_>, v: &Value, budget: &mut Budget) -> fmt::Result {
    if budget.left == 0 {
        budget.cut = true;
        return write!(f, "…");
    }
    budget.left -= 1;
    match v {
        Value::Null => write!(f, "null"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Number(n) => write!(f, "{}", fmt_number(n)),
        Value::String(s) => write!(f, "\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Date(d) => write!(f, "{d}"),
        Value::Time(t) => write!(f, "{t}"),
        Value::DateTime(d) => write!(f, "{d}"),
        Value::YmDuration(m) => write!(f, "{}", fmt_ym(*m)),
        Value::DtDuration(n) => write!(f, "{}", fmt_dt(*n)),
        Value::List(items) => {
            write!(f, "[")?;
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write_nested(f, it, budget)?;
            }
            write!(f, "]")
        }
        Value::Context(c) => {
            write!(f, "{{")?;
            for (i, (k, v)) in c.entries.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                if super::lexer::is_plain_name(k) {
                    write!(f, "{k}: ")?;
                } else {
                    write!(f, "\"{}\": ", k.replace('\\', "\\\\").replace('"', "\\\""))?;
                }
                write_nested(f, v, budget)?;
            }
            write!(f, "}}")
        }
        Value::Range(r) => {
            write!(f, "{}", if r.start.inclusive { "[" } else { "(" })?;
            write_nested(f, &r.start.value, budget)?;
            write!(f, "..")?;
            write_nested(f, &r.end.value, budget)?;
            write!(f, "{}", if r.end.inclusive { "]" } else { ")" })
        }
        Value::Function(_) => write!(f, "function"),
    }
}
