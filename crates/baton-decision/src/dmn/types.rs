//! DMN types: built-in FEEL types and item definitions, with the
//! conformance check and coercions DMN applies to inputs and results
//! (singleton-list unwrapping and wrapping, allowed-value constraints,
//! strings read as temporals for typed inputs).

use std::collections::HashMap;
use std::sync::Arc;

use crate::feel::ast::UnaryTests;
use crate::feel::value::Value;
use crate::feel::{Evaluator, NoHost};

/// A resolved type.
#[derive(Clone, Debug)]
pub enum Type {
    Any,
    /// A built-in FEEL type by its canonical FEEL name.
    Builtin(&'static str),
    Collection(Box<Type>),
    Structure(Vec<(Arc<str>, Type)>),
    Constrained {
        base: Box<Type>,
        allowed: Arc<UnaryTests>,
    },
    Function,
}

/// An item definition as read from XML, resolved lazily by name.
#[derive(Clone, Debug, Default)]
pub struct ItemDef {
    pub name: Arc<str>,
    pub type_ref: Option<String>,
    pub is_collection: bool,
    pub components: Vec<ItemDef>,
    pub allowed: Option<Arc<UnaryTests>>,
    pub function: bool,
}

/// Item definitions of a model, by name.
#[derive(Clone, Debug, Default)]
pub struct TypeRegistry {
    pub defs: HashMap<String, ItemDef>,
}

/// Depth limit for resolving item definitions that refer to each other.
const RESOLVE_DEPTH_MAX: u32 = 32;

pub fn builtin(name: &str) -> Option<&'static str> {
    let n = name.strip_prefix("feel:").unwrap_or(name);
    Some(match n {
        "number" | "decimal" | "integer" | "double" => "number",
        "string" => "string",
        "boolean" => "boolean",
        "date" => "date",
        "time" => "time",
        "dateTime" | "date and time" => "date and time",
        "dayTimeDuration" | "days and time duration" => "days and time duration",
        "yearMonthDuration" | "years and months duration" => "years and months duration",
        "duration" => "duration",
        "Any" | "any" => "Any",
        "context" => "context",
        "list" => "list",
        "range" => "range",
        "function" => "function",
        _ => return None,
    })
}

impl TypeRegistry {
    /// Resolves a `typeRef` string; unknown names resolve to `Any` so that a
    /// model with a missing definition still evaluates.
    pub fn resolve(&self, type_ref: &str) -> Type {
        self.resolve_depth(type_ref, 0)
    }

    fn resolve_depth(&self, type_ref: &str, depth: u32) -> Type {
        if depth > RESOLVE_DEPTH_MAX {
            return Type::Any;
        }
        if let Some(def) = self.lookup(type_ref) {
            return self.resolve_def(def, depth + 1);
        }
        match builtin(type_ref) {
            Some("Any") | None => Type::Any,
            Some(b) => Type::Builtin(b),
        }
    }

    fn lookup(&self, type_ref: &str) -> Option<&ItemDef> {
        self.defs
            .get(type_ref)
            .or_else(|| type_ref.split_once(':').and_then(|(_, n)| self.defs.get(n)))
            .or_else(|| {
                type_ref
                    .rsplit_once('.')
                    .and_then(|(_, n)| self.defs.get(n))
            })
    }

    fn resolve_def(&self, def: &ItemDef, depth: u32) -> Type {
        let mut t = if def.function {
            Type::Function
        } else if !def.components.is_empty() {
            Type::Structure(
                def.components
                    .iter()
                    .map(|c| (c.name.clone(), self.resolve_def(c, depth + 1)))
                    .collect(),
            )
        } else {
            match &def.type_ref {
                Some(r) => self.resolve_depth(r, depth + 1),
                None => Type::Any,
            }
        };
        if let Some(allowed) = &def.allowed {
            t = Type::Constrained {
                base: Box::new(t),
                allowed: allowed.clone(),
            };
        }
        if def.is_collection {
            t = Type::Collection(Box::new(t));
        }
        t
    }

    pub fn instance_of(&self, name: &str, v: &Value) -> Option<bool> {
        let def = self.lookup(name)?;
        let t = self.resolve_def(def, 0);
        Some(!v.is_null() && instance_conforms(&t, v))
    }
}

#[inline]
fn builtin_matches(b: &str, v: &Value) -> bool {
    // Compared against literals, so each arm is a short fixed-size compare.
    match v {
        Value::Null => b == "Null",
        Value::Bool(_) => b == "boolean",
        Value::Number(_) => b == "number",
        Value::String(_) => b == "string",
        Value::Date(_) => b == "date",
        Value::Time(_) => b == "time",
        Value::DateTime(_) => b == "date and time",
        Value::YmDuration(_) => b == "years and months duration" || b == "duration",
        Value::DtDuration(_) => b == "days and time duration" || b == "duration",
        Value::List(_) => b == "list",
        Value::Context(_) => b == "context",
        Value::Range(_) => b == "range",
        Value::Function(_) => b == "function",
    }
}

/// Strict conformance (no coercion).
pub fn conforms(t: &Type, v: &Value) -> bool {
    if v.is_null() {
        return true;
    }
    match t {
        Type::Any => true,
        Type::Builtin(b) => builtin_matches(b, v),
        Type::Collection(inner) => match v {
            Value::List(items) => items.iter().all(|i| conforms(inner, i)),
            _ => false,
        },
        Type::Structure(fields) => match v {
            Value::Context(c) => fields
                .iter()
                .all(|(k, ft)| c.get(k).is_none_or(|fv| conforms(ft, fv))),
            _ => false,
        },
        Type::Constrained { base, allowed } => conforms(base, v) && allowed_ok(allowed, v),
        Type::Function => matches!(v, Value::Function(_)),
    }
}

/// Conformance as `instance of` sees it: the type's structure only (allowed
/// values are a constraint on items, not part of the type), every
/// component of a structure present (null is an instance of any type).
fn instance_conforms(t: &Type, v: &Value) -> bool {
    if v.is_null() {
        return true;
    }
    match t {
        Type::Any => true,
        Type::Builtin(b) => builtin_matches(b, v),
        Type::Collection(inner) => match v {
            Value::List(items) => items.iter().all(|i| instance_conforms(inner, i)),
            _ => false,
        },
        Type::Structure(fields) => match v {
            Value::Context(c) => fields
                .iter()
                .all(|(k, ft)| c.get(k).is_some_and(|fv| instance_conforms(ft, fv))),
            _ => false,
        },
        Type::Constrained { base, .. } => instance_conforms(base, v),
        Type::Function => matches!(v, Value::Function(_)),
    }
}

fn allowed_ok(allowed: &UnaryTests, v: &Value) -> bool {
    let host = NoHost;
    Evaluator::new(&host).unary_tests(v, allowed) == Some(true)
}

/// Coerces `v` to `t` as DMN does for results and inputs; `None` when the
/// value does not conform (the caller then yields null).
/// Whether `v` already has type `t` in the common, cheap cases (then
/// [`coerce`] would return it unchanged). `false` means "maybe not".
#[inline]
pub fn has_type_fast(t: &Type, v: &Value) -> bool {
    match t {
        Type::Any => true,
        Type::Builtin(b) => builtin_matches(b, v),
        _ => false,
    }
}

#[inline]
pub fn coerce(t: &Type, v: Value, strings_as_temporal: bool) -> Option<Value> {
    // The common cases, inline: a value that already has the type.
    match t {
        Type::Any => return Some(v),
        Type::Builtin(b) if builtin_matches(b, &v) => return Some(v),
        _ => {}
    }
    coerce_other(t, v, strings_as_temporal)
}

fn coerce_other(t: &Type, v: Value, strings_as_temporal: bool) -> Option<Value> {
    if v.is_null() {
        return Some(v);
    }
    match t {
        Type::Any => Some(v),
        Type::Builtin(b) => {
            if builtin_matches(b, &v) {
                return Some(v);
            }
            match v {
                // A singleton list stands for its element.
                Value::List(items) if items.len() == 1 => {
                    coerce(t, items[0].clone(), strings_as_temporal)
                }
                Value::String(s) if strings_as_temporal => from_string(b, &s),
                Value::Date(d) if *b == "date and time" => {
                    Some(Value::DateTime(crate::feel::temporal::DateTime {
                        date: d,
                        time: crate::feel::temporal::Time {
                            secs: 0,
                            nanos: 0,
                            zone: crate::feel::temporal::Zone::Offset(0),
                        },
                    }))
                }
                _ => None,
            }
        }
        Type::Collection(inner) => match v {
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items.iter() {
                    out.push(coerce(inner, i.clone(), strings_as_temporal)?);
                }
                Some(Value::list(out))
            }
            // A single value stands for the list holding it.
            other => coerce(inner, other, strings_as_temporal).map(|x| Value::list(vec![x])),
        },
        Type::Structure(fields) => match &v {
            Value::Context(c) => {
                let mut out = (**c).clone();
                for (k, ft) in fields {
                    match c.get(k) {
                        Some(fv) => {
                            out.put(k.clone(), coerce(ft, fv.clone(), strings_as_temporal)?)
                        }
                        // Results and parameters must have every component;
                        // inputs may leave some out.
                        None if !strings_as_temporal => return None,
                        None => {}
                    }
                }
                Some(Value::Context(Arc::new(out)))
            }
            Value::List(items) if items.len() == 1 => {
                coerce(t, items[0].clone(), strings_as_temporal)
            }
            _ => None,
        },
        Type::Constrained { base, allowed } => {
            let v = coerce(base, v, strings_as_temporal)?;
            if allowed_ok(allowed, &v) {
                Some(v)
            } else {
                None
            }
        }
        Type::Function => matches!(v, Value::Function(_)).then_some(v),
    }
}

/// Reads typed inputs given as strings (JSON has no dates).
fn from_string(b: &str, s: &str) -> Option<Value> {
    use crate::feel::temporal as t;
    match b {
        "date" => t::Date::parse(s).map(Value::Date),
        "time" => t::Time::parse(s).map(Value::Time),
        "date and time" => t::DateTime::parse(s).map(Value::DateTime),
        "days and time duration" | "years and months duration" | "duration" => {
            match t::parse_duration(s)? {
                t::ParsedDuration::YearsMonths(m) if b != "days and time duration" => {
                    Some(Value::YmDuration(m))
                }
                t::ParsedDuration::DaysTime(n) if b != "years and months duration" => {
                    Some(Value::DtDuration(n))
                }
                _ => None,
            }
        }
        _ => None,
    }
}
