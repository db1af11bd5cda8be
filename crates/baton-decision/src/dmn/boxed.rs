//! Boxed expressions: the DMN expression kinds other than plain FEEL text
//! (decision tables, contexts, invocations, function definitions, relations,
//! lists, conditionals, iterators and filters), compiled and evaluated.

use std::sync::Arc;

use super::table::DecisionTable;
use super::types::{Type, coerce};
use crate::feel::Evaluator;
use crate::feel::ast::Expr;
use crate::feel::value::{Callable, Context, Function, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IterKind {
    For,
    Some,
    Every,
}

#[derive(Debug)]
pub struct ContextEntry {
    /// `None` for the final result entry.
    pub name: Option<Arc<str>>,
    pub ty: Option<Type>,
    pub value: Boxed,
}

#[derive(Debug)]
pub struct FunctionDef {
    pub params: Vec<(Arc<str>, Option<Type>)>,
    pub names: Vec<Arc<str>>,
    pub body: Boxed,
    pub result: Option<Type>,
    /// Java and PMML functions cannot run here; they evaluate to null.
    pub feel: bool,
}

#[derive(Debug)]
pub enum Boxed {
    Empty,
    Literal(Expr),
    Table(Box<DecisionTable>),
    Context(Vec<ContextEntry>),
    Invocation {
        callee: Expr,
        bindings: Vec<(Arc<str>, Boxed)>,
    },
    Function(Arc<FunctionDef>),
    Relation {
        columns: Vec<Arc<str>>,
        rows: Vec<Vec<Boxed>>,
    },
    List(Vec<Boxed>),
    Conditional(Box<[Boxed; 3]>),
    Iterate {
        kind: IterKind,
        var: Arc<str>,
        source: Box<Boxed>,
        body: Box<Boxed>,
    },
    Filter {
        source: Box<Boxed>,
        cond: Box<Boxed>,
    },
}

/// A function value backed by a boxed function definition.
#[derive(Debug)]
pub struct BoxedFn {
    pub def: Arc<FunctionDef>,
    pub closure: Vec<(Arc<str>, Value)>,
}

impl Callable for BoxedFn {
    fn params(&self) -> &[Arc<str>] {
        &self.def.names
    }

    fn call(&self, ev: &mut Evaluator<'_>, args: Vec<Value>) -> Value {
        call_def(&self.def, self.closure.clone(), ev, args)
    }
}

/// Binds arguments (coerced to parameter types) and evaluates the body.
pub fn call_def(
    def: &FunctionDef,
    mut scope: Vec<(Arc<str>, Value)>,
    ev: &mut Evaluator<'_>,
    args: Vec<Value>,
) -> Value {
    if !def.feel {
        return Value::Null;
    }
    for ((name, ty), v) in def.params.iter().zip(args) {
        let v = match ty {
            Some(t) => match coerce(t, v, false) {
                Some(v) => v,
                None => return Value::Null,
            },
            None => v,
        };
        scope.push((name.clone(), v));
    }
    let r = ev
        .with_scope(scope, |ev| def.body.eval(ev))
        .unwrap_or(Value::Null);
    match &def.result {
        Some(t) => coerce(t, r, false).unwrap_or(Value::Null),
        None => r,
    }
}

impl Boxed {
    pub fn eval(&self, ev: &mut Evaluator<'_>) -> Value {
        match self {
            Boxed::Empty => Value::Null,
            Boxed::Literal(e) => ev.eval(e),
            Boxed::Table(t) => t.evaluate(ev),
            Boxed::Context(entries) => eval_context(entries, ev),
            Boxed::Invocation { callee, bindings } => {
                let f = ev.eval(callee);
                let Value::Function(f) = f else {
                    return Value::Null;
                };
                let named: Vec<(Arc<str>, Value)> = bindings
                    .iter()
                    .map(|(n, b)| (n.clone(), b.eval(ev)))
                    .collect();
                let params: Vec<Arc<str>> = match &*f {
                    Function::User { params, .. } => params.iter().map(|p| p.0.clone()).collect(),
                    Function::External(c) => c.params().to_vec(),
                    Function::Builtin(n) => {
                        return crate::feel::builtins::bind_named(n, named)
                            .map(|a| ev.call_function(&f, a))
                            .unwrap_or(Value::Null);
                    }
                };
                if named.iter().any(|(k, _)| !params.contains(k)) {
                    return Value::Null;
                }
                let args = params
                    .iter()
                    .map(|p| {
                        named
                            .iter()
                            .find(|(k, _)| k == p)
                            .map(|(_, v)| v.clone())
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                ev.call_function(&f, args)
            }
            Boxed::Function(def) => {
                Value::Function(Arc::new(Function::External(Arc::new(BoxedFn {
                    def: def.clone(),
                    closure: ev.scope_snapshot(),
                }))))
            }
            Boxed::Relation { columns, rows } => Value::list(
                rows.iter()
                    .map(|row| {
                        Value::context(
                            columns
                                .iter()
                                .cloned()
                                .zip(row.iter().map(|c| c.eval(ev)))
                                .collect(),
                        )
                    })
                    .collect(),
            ),
            Boxed::List(items) => Value::list(items.iter().map(|i| i.eval(ev)).collect()),
            Boxed::Conditional(parts) => match parts[0].eval(ev) {
                Value::Bool(true) => parts[1].eval(ev),
                Value::Bool(false) | Value::Null => parts[2].eval(ev),
                _ => Value::Null,
            },
            Boxed::Iterate {
                kind,
                var,
                source,
                body,
            } => eval_iterate(*kind, var, source, body, ev),
            Boxed::Filter { source, cond } => {
                let items = match source.eval(ev) {
                    Value::List(l) => l,
                    Value::Null => return Value::Null,
                    v => Arc::new(vec![v]),
                };
                let mut out = Vec::new();
                for item in items.iter() {
                    if ev.out_of_steps() {
                        return Value::Null;
                    }
                    let mark = ev.mark();
                    ev.bind(Arc::from("item"), item.clone());
                    if let Value::Context(c) = item {
                        for (k, v) in &c.entries {
                            ev.bind(k.clone(), v.clone());
                        }
                    }
                    let keep = cond.eval(ev);
                    ev.truncate(mark);
                    if matches!(keep, Value::Bool(true)) {
                        out.push(item.clone());
                    }
                }
                Value::list(out)
            }
        }
    }
}

fn eval_context(entries: &[ContextEntry], ev: &mut Evaluator<'_>) -> Value {
    let mark = ev.mark();
    let mut ctx = Context::default();
    let mut result = None;
    for e in entries {
        let mut v = e.value.eval(ev);
        if let Some(t) = &e.ty {
            v = coerce(t, v, false).unwrap_or(Value::Null);
        }
        match &e.name {
            Some(n) => {
                ev.bind(n.clone(), v.clone());
                ctx.put(n.clone(), v);
            }
            None => result = Some(v),
        }
    }
    ev.truncate(mark);
    result.unwrap_or_else(|| Value::Context(Arc::new(ctx)))
}

fn eval_iterate(
    kind: IterKind,
    var: &Arc<str>,
    source: &Boxed,
    body: &Boxed,
    ev: &mut Evaluator<'_>,
) -> Value {
    let items = match source.eval(ev) {
        Value::List(l) => l,
        Value::Null => return Value::Null,
        v => Arc::new(vec![v]),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        if ev.out_of_steps() {
            return Value::Null;
        }
        let mark = ev.mark();
        ev.bind(var.clone(), item.clone());
        if kind == IterKind::For {
            ev.charge(out.len());
            ev.bind(Arc::from("partial"), Value::list(out.clone()));
        }
        out.push(body.eval(ev));
        ev.truncate(mark);
    }
    if kind != IterKind::For && out.iter().any(|v| !matches!(v, Value::Bool(_))) {
        // `satisfies` must be boolean.
        return Value::Null;
    }
    match kind {
        IterKind::For => Value::list(out),
        IterKind::Some => Value::Bool(out.iter().any(|v| matches!(v, Value::Bool(true)))),
        IterKind::Every => Value::Bool(out.iter().all(|v| matches!(v, Value::Bool(true)))),
    }
}
