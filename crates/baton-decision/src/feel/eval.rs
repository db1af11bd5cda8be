//! The FEEL evaluator: walks a compiled [`Expr`] against a scope.
//!
//! Evaluation never fails: FEEL turns every error into `null`. Work is
//! bounded by a call-depth limit and a list-size limit so that hostile input
//! (runaway recursion, huge `for` products) ends with null instead of
//! exhausting the stack or memory.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::ast::{Args, CmpOp, Expr, Iteration, TypeRef, UnaryTest, UnaryTests};
use super::builtins;
use super::ops;
use super::temporal::DateTime;
use super::value::{Bound, Context, Function, Range, Value, compare, equals, str_eq};

/// Maximum nesting of function invocations.
pub const CALL_DEPTH_MAX: u32 = 256;
/// Maximum nesting of expression evaluations, across function calls: the
/// stack grows with it (a recursive function whose body nests deeply would
/// otherwise exhaust it well before the call depth limit).
pub const EVAL_NESTING_MAX: u32 = 400;
/// Maximum number of items a `for`, range iteration or builtin may produce.
pub const LIST_LEN_MAX: usize = 1_000_000;
/// Maximum length in bytes of a string built by evaluation (concatenation,
/// `string join`, `replace`, ...).
pub const STRING_LEN_MAX: usize = 16 * 1024 * 1024;
/// Default evaluation budget, in steps: one per expression node evaluated,
/// plus the size of lists and strings that built-ins and iterations walk.
/// Past it every further evaluation gives null. A few seconds of work.
pub const STEP_BUDGET_DEFAULT: u64 = 50_000_000;

/// What the evaluator needs from its embedding (the DMN model, the clock).
pub trait Host: Sync {
    /// Checks `v` against a named type the host defines (an item definition);
    /// `None` when the name is unknown.
    fn instance_of(&self, _name: &str, _v: &Value) -> Option<bool> {
        None
    }
    /// The current instant for `now()` and `today()`; time is an input.
    fn now(&self) -> Option<DateTime> {
        None
    }
}

/// A host with no types and no clock.
pub struct NoHost;
impl Host for NoHost {}

pub struct Evaluator<'h> {
    scope: Vec<(Arc<str>, Value)>,
    input: Value,
    depth: u32,
    /// Steps left (see [`STEP_BUDGET_DEFAULT`]).
    steps: u64,
    /// Expressions being evaluated, nested (see [`EVAL_NESTING_MAX`]).
    nesting: u32,
    pub host: &'h dyn Host,
    /// Decision table records, collected only when a trace was asked for.
    pub(crate) trace: Option<crate::trace::Recorder>,
    /// Scratch space for decision tables (input values and their integer
    /// keys); see [`Buffers`].
    pub(crate) row: Vec<Value>,
    pub(crate) ints: Vec<Option<i64>>,
}

/// An evaluator's growable buffers, kept between evaluations so that a
/// steady stream of evaluations on one thread does not allocate them again.
/// They are always handed back empty.
#[derive(Default)]
pub struct Buffers {
    scope: Vec<(Arc<str>, Value)>,
    row: Vec<Value>,
    ints: Vec<Option<i64>>,
}

impl Buffers {
    pub const fn new() -> Buffers {
        Buffers {
            scope: Vec::new(),
            row: Vec::new(),
            ints: Vec::new(),
        }
    }
}

/// Buffers that grew beyond this many entries are not kept for reuse.
const BUFFER_KEEP_MAX: usize = 1024;

impl<'h> Evaluator<'h> {
    pub fn new(host: &'h dyn Host) -> Self {
        Self::with_buffers(host, Buffers::default())
    }

    /// An evaluator that reuses `buffers` (see [`Evaluator::take_buffers`]).
    pub fn with_buffers(host: &'h dyn Host, buffers: Buffers) -> Self {
        let Buffers {
            mut scope,
            mut row,
            mut ints,
        } = buffers;
        scope.clear();
        row.clear();
        ints.clear();
        Evaluator {
            scope,
            input: Value::Null,
            depth: 0,
            steps: STEP_BUDGET_DEFAULT,
            nesting: 0,
            host,
            trace: None,
            row,
            ints,
        }
    }

    /// Sets the number of evaluation steps left (see [`STEP_BUDGET_DEFAULT`]).
    pub fn set_step_budget(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// Whether the step budget ran out.
    pub fn out_of_steps(&self) -> bool {
        self.steps == 0
    }

    /// Charges `n` steps for work proportional to a list or string size.
    #[inline]
    pub fn charge(&mut self, n: usize) {
        self.steps = self.steps.saturating_sub(n as u64);
    }

    /// Takes the buffers back, emptied, for the next evaluator.
    pub fn take_buffers(&mut self) -> Buffers {
        self.scope.clear();
        self.row.clear();
        self.ints.clear();
        if self.scope.capacity() > BUFFER_KEEP_MAX || self.row.capacity() > BUFFER_KEEP_MAX {
            return Buffers::new();
        }
        Buffers {
            scope: std::mem::take(&mut self.scope),
            row: std::mem::take(&mut self.row),
            ints: std::mem::take(&mut self.ints),
        }
    }

    pub fn bind(&mut self, name: Arc<str>, v: Value) {
        self.scope.push((name, v));
    }

    /// Current scope size, to restore with [`Evaluator::truncate`].
    pub fn mark(&self) -> usize {
        self.scope.len()
    }

    pub fn truncate(&mut self, mark: usize) {
        self.scope.truncate(mark);
    }

    pub fn lookup(&self, name: &str) -> Option<&Value> {
        self.scope
            .iter()
            .rev()
            .find(|(k, _)| str_eq(k, name))
            .map(|(_, v)| v)
    }

    /// Runs `f` with a fresh scope (the callee's), restoring ours after.
    pub fn with_scope<T>(
        &mut self,
        scope: Vec<(Arc<str>, Value)>,
        f: impl FnOnce(&mut Self) -> T,
    ) -> Option<T> {
        if self.depth >= CALL_DEPTH_MAX {
            return None;
        }
        self.depth += 1;
        let saved = std::mem::replace(&mut self.scope, scope);
        let saved_input = std::mem::take(&mut self.input);
        let r = f(self);
        self.scope = saved;
        self.input = saved_input;
        self.depth -= 1;
        Some(r)
    }

    /// Like [`Evaluator::with_scope`] with a scope that `fill` builds. At
    /// the top level (empty current scope) the scope is built in place in
    /// the evaluator's own buffer instead of a new vector.
    pub fn with_new_scope<T>(
        &mut self,
        fill: impl FnOnce(&mut Vec<(Arc<str>, Value)>),
        f: impl FnOnce(&mut Self) -> T,
    ) -> Option<T> {
        if !self.scope.is_empty() {
            let mut scope = Vec::new();
            fill(&mut scope);
            return self.with_scope(scope, f);
        }
        if self.depth >= CALL_DEPTH_MAX {
            return None;
        }
        self.depth += 1;
        fill(&mut self.scope);
        let saved_input = std::mem::take(&mut self.input);
        let r = f(self);
        self.scope.clear();
        self.input = saved_input;
        self.depth -= 1;
        Some(r)
    }

    pub fn scope_snapshot(&self) -> Vec<(Arc<str>, Value)> {
        self.scope.clone()
    }

    pub fn eval(&mut self, e: &Expr) -> Value {
        if self.steps == 0 || self.nesting >= EVAL_NESTING_MAX {
            return Value::Null;
        }
        self.steps -= 1;
        self.nesting += 1;
        let v = self.eval_node(e);
        self.nesting -= 1;
        v
    }

    fn eval_node(&mut self, e: &Expr) -> Value {
        match e {
            Expr::Const(v) => v.clone(),
            Expr::Name(n) => match self.lookup(n) {
                Some(v) => v.clone(),
                None if builtins::exists(n) => {
                    Value::Function(Arc::new(Function::Builtin(builtins::intern(n))))
                }
                None => self.dotted_name(n),
            },
            Expr::InputValue => self.input.clone(),
            Expr::Neg(a) => ops::negate(&self.eval(a)),
            Expr::Arith(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                ops::arith(*op, &a, &b)
            }
            Expr::Cmp(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                bool_or_null(cmp(*op, &a, &b))
            }
            Expr::And(a, b) => match (truth(&self.eval(a)), truth(&self.eval(b))) {
                (Some(false), _) | (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            },
            Expr::Or(a, b) => match (truth(&self.eval(a)), truth(&self.eval(b))) {
                (Some(true), _) | (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            },
            Expr::Between(v, lo, hi) => {
                let (v, lo, hi) = (self.eval(v), self.eval(lo), self.eval(hi));
                let a = cmp(CmpOp::Ge, &v, &lo);
                let b = cmp(CmpOp::Le, &v, &hi);
                match (a, b) {
                    (Some(false), _) | (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::In(v, tests) => {
                let v = self.eval(v);
                bool_or_null(self.unary_tests(&v, tests))
            }
            Expr::InstanceOf(v, t) => {
                let v = self.eval(v);
                Value::Bool(self.instance_of(&v, t))
            }
            Expr::If(c, t, f) => match self.eval(c) {
                Value::Bool(true) => self.eval(t),
                _ => self.eval(f),
            },
            Expr::For(iters, body) => self.eval_for(iters, body),
            Expr::Quantified { every, iters, cond } => self.eval_quantified(*every, iters, cond),
            Expr::List(items) => Value::list(items.iter().map(|i| self.eval(i)).collect()),
            Expr::Context(entries) => self.eval_context(entries),
            Expr::Interval {
                start_incl,
                start,
                end,
                end_incl,
            } => {
                let (s, e) = (self.eval(start), self.eval(end));
                make_range(s, *start_incl, e, *end_incl)
            }
            Expr::UnaryCmp(op, e) => {
                let v = self.eval(e);
                unary_cmp_range(*op, v)
            }
            Expr::Path(e, name) => {
                let v = self.eval(e);
                path(&v, name)
            }
            Expr::Filter(list, f) => {
                let v = self.eval(list);
                self.filter(v, f)
            }
            Expr::Call(callee, args) => self.eval_call(callee, args),
            Expr::FunctionDef {
                params,
                body,
                external,
            } => {
                if *external {
                    return Value::Null;
                }
                Value::Function(Arc::new(Function::User {
                    params: params.clone(),
                    body: body.clone(),
                    closure: self.scope.clone(),
                }))
            }
        }
    }

    /// A declared name such as `Person.Gender` (a parameter in one place, a
    /// path into `Person` in another) that is not bound: read it as a path.
    fn dotted_name(&self, n: &str) -> Value {
        let mut parts = n.split('.');
        let Some(first) = parts.next().filter(|_| n.contains('.')) else {
            return Value::Null;
        };
        let Some(mut v) = self.lookup(first.trim()).cloned() else {
            return Value::Null;
        };
        for p in parts {
            v = path(&v, p.trim());
        }
        v
    }

    fn eval_context(&mut self, entries: &[(Arc<str>, Expr)]) -> Value {
        let mark = self.mark();
        let mut ctx = Context::default();
        for (k, e) in entries {
            if ctx.get(k).is_some() {
                // Duplicate keys make the context invalid.
                self.truncate(mark);
                return Value::Null;
            }
            let v = self.eval(e);
            // Later entries see earlier ones by name.
            self.bind(k.clone(), v.clone());
            ctx.put(k.clone(), v);
        }
        self.truncate(mark);
        Value::Context(Arc::new(ctx))
    }

    fn iteration_items(&mut self, it: &Iteration) -> Option<Vec<Value>> {
        let src = self.eval(&it.source);
        if let Some(end) = &it.range_end {
            let end = self.eval(end);
            return int_range(&src, &end);
        }
        match src {
            Value::List(l) => {
                self.charge(l.len());
                Some(l.to_vec())
            }
            Value::Range(r) => match (&r.start.value, &r.end.value) {
                (Value::Number(_), Value::Number(_)) => {
                    let lo = offset_if(&r.start.value, !r.start.inclusive, 1);
                    let hi = offset_if(&r.end.value, !r.end.inclusive, -1);
                    int_range(&lo, &hi)
                }
                _ => None,
            },
            Value::Null => None,
            v => Some(vec![v]),
        }
    }

    fn eval_for(&mut self, iters: &[Iteration], body: &Expr) -> Value {
        let mark = self.mark();
        let mut out = Vec::new();
        // `partial` is bound only when used: copying it per item is quadratic.
        let partial = body.mentions("partial");
        let ok = self.for_level(iters, body, partial, &mut out);
        self.truncate(mark);
        if ok { Value::list(out) } else { Value::Null }
    }

    fn for_level(
        &mut self,
        iters: &[Iteration],
        body: &Expr,
        partial: bool,
        out: &mut Vec<Value>,
    ) -> bool {
        let Some((first, rest)) = iters.split_first() else {
            // `partial` holds the results so far, for self-referencing loops.
            let mark = self.mark();
            if partial {
                self.charge(out.len());
                self.bind(Arc::from("partial"), Value::list(out.clone()));
            }
            let v = self.eval(body);
            self.truncate(mark);
            out.push(v);
            return out.len() <= LIST_LEN_MAX;
        };
        let Some(items) = self.iteration_items(first) else {
            return false;
        };
        for item in items {
            if self.steps == 0 {
                return false;
            }
            let mark = self.mark();
            self.bind(first.name.clone(), item);
            let ok = self.for_level(rest, body, partial, out);
            self.truncate(mark);
            if !ok {
                return false;
            }
        }
        true
    }

    fn eval_quantified(&mut self, every: bool, iters: &[Iteration], cond: &Expr) -> Value {
        let mark = self.mark();
        let mut results = Vec::new();
        let ok = self.quant_level(iters, cond, &mut results);
        self.truncate(mark);
        if !ok {
            return Value::Null;
        }
        let r = if every {
            results.iter().all(|b| *b == Some(true))
        } else {
            results.contains(&Some(true))
        };
        Value::Bool(r)
    }

    fn quant_level(
        &mut self,
        iters: &[Iteration],
        cond: &Expr,
        out: &mut Vec<Option<bool>>,
    ) -> bool {
        let Some((first, rest)) = iters.split_first() else {
            let v = self.eval(cond);
            out.push(truth(&v));
            return out.len() <= LIST_LEN_MAX;
        };
        let Some(items) = self.iteration_items(first) else {
            return false;
        };
        for item in items {
            if self.steps == 0 {
                return false;
            }
            let mark = self.mark();
            self.bind(first.name.clone(), item);
            let ok = self.quant_level(rest, cond, out);
            self.truncate(mark);
            if !ok {
                return false;
            }
        }
        true
    }

    fn filter(&mut self, v: Value, f: &Expr) -> Value {
        let items: Arc<Vec<Value>> = match v {
            Value::List(l) => l,
            Value::Null => return Value::Null,
            other => Arc::new(vec![other]),
        };
        // A numeric filter is an index (1-based, negative from the end).
        let probe = if filter_may_index(f) {
            self.eval(f)
        } else {
            Value::Null
        };
        if let Value::Number(n) = probe {
            return index(&items, n);
        }
        let mut out = Vec::new();
        for item in items.iter() {
            if self.steps == 0 {
                return Value::Null;
            }
            let mark = self.mark();
            // `item` names the element, unless the element has its own `item` entry.
            self.bind(Arc::from("item"), item.clone());
            if let Value::Context(c) = item {
                for (k, v) in &c.entries {
                    self.bind(k.clone(), v.clone());
                }
            }
            let r = self.eval(f);
            self.truncate(mark);
            match r {
                Value::Bool(true) => out.push(item.clone()),
                Value::Number(n) if items.len() == 1 || out.is_empty() => return index(&items, n),
                _ => {}
            }
        }
        Value::list(out)
    }

    fn eval_call(&mut self, callee: &Expr, args: &Args) -> Value {
        // Fast path: a built-in called by name, with no shadowing binding.
        if let Expr::Name(n) = callee
            && self.lookup(n).is_none()
        {
            if builtins::exists(n) {
                return match args {
                    Args::Positional(a) => {
                        let vals: Vec<Value> = a.iter().map(|e| self.eval(e)).collect();
                        self.charge_args(&vals);
                        builtins::call(self, n, vals)
                    }
                    Args::Named(a) => {
                        let named: Vec<(Arc<str>, Value)> =
                            a.iter().map(|(k, e)| (k.clone(), self.eval(e))).collect();
                        match builtins::bind_named(n, named) {
                            Some(vals) => builtins::call(self, n, vals),
                            None => Value::Null,
                        }
                    }
                };
            }
            return Value::Null;
        }
        let f = self.eval(callee);
        let Value::Function(f) = f else {
            return Value::Null;
        };
        match args {
            Args::Positional(a) => {
                let vals: Vec<Value> = a.iter().map(|e| self.eval(e)).collect();
                self.call_function(&f, vals)
            }
            Args::Named(a) => {
                let named: Vec<(Arc<str>, Value)> =
                    a.iter().map(|(k, e)| (k.clone(), self.eval(e))).collect();
                let vals = match &*f {
                    Function::Builtin(n) => builtins::bind_named(n, named),
                    Function::User { params, .. } => {
                        bind_by_name(params.iter().map(|p| &p.0), named)
                    }
                    Function::External(c) => bind_by_name(c.params().iter(), named),
                };
                match vals {
                    Some(vals) => self.call_function(&f, vals),
                    None => Value::Null,
                }
            }
        }
    }

    /// Charges for the lists and strings a built-in will walk.
    fn charge_args(&mut self, args: &[Value]) {
        let mut n = 0;
        for a in args {
            n += match a {
                Value::List(l) => l.len(),
                Value::String(s) => s.len() / 16,
                Value::Context(c) => c.entries.len(),
                _ => 0,
            };
        }
        self.charge(n);
    }

    /// Invokes a function value with positional arguments.
    pub fn call_function(&mut self, f: &Function, args: Vec<Value>) -> Value {
        match f {
            Function::Builtin(n) => {
                self.charge_args(&args);
                builtins::call(self, n, args)
            }
            Function::User {
                params,
                body,
                closure,
            } => {
                if args.len() != params.len() {
                    return Value::Null;
                }
                let mut scope = closure.clone();
                for ((name, ty), v) in params.iter().zip(args) {
                    if let Some(t) = ty
                        && !v.is_null()
                        && !self.instance_of(&v, t)
                    {
                        return Value::Null;
                    }
                    scope.push((name.clone(), v));
                }
                self.with_scope(scope, |ev| ev.eval(body))
                    .unwrap_or(Value::Null)
            }
            Function::External(c) => {
                if args.len() != c.params().len() {
                    return Value::Null;
                }
                if self.depth >= CALL_DEPTH_MAX {
                    return Value::Null;
                }
                self.depth += 1;
                let r = c.call(self, args);
                self.depth -= 1;
                r
            }
        }
    }

    /// Evaluates table-cell style tests against `input`: `Some(true)` on a match.
    pub fn unary_tests(&mut self, input: &Value, tests: &UnaryTests) -> Option<bool> {
        match tests {
            UnaryTests::Any => Some(true),
            UnaryTests::Tests(ts) => self.any_test(input, ts),
            UnaryTests::Not(ts) => self.any_test(input, ts).map(|b| !b),
        }
    }

    fn any_test(&mut self, input: &Value, ts: &[UnaryTest]) -> Option<bool> {
        let mut unknown = false;
        for t in ts {
            match self.unary_test(input, t) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => unknown = true,
            }
        }
        if unknown { None } else { Some(false) }
    }

    pub(crate) fn unary_test(&mut self, input: &Value, t: &UnaryTest) -> Option<bool> {
        if self.steps == 0 {
            return None;
        }
        self.steps -= 1;
        // Fast paths for constant cells (most table cells): no binding of `?`.
        match &t.expr {
            Expr::Const(v) => return self.charged_test(input, v),
            Expr::UnaryCmp(op, e) => {
                if let Expr::Const(v) = &**e {
                    return cmp(*op, input, v);
                }
            }
            _ => {}
        }
        let saved = std::mem::replace(&mut self.input, input.clone());
        let r = match &t.expr {
            Expr::UnaryCmp(op, e) => {
                let v = self.eval(e);
                cmp(*op, input, &v)
            }
            e => {
                let v = self.eval(e);
                if t.uses_input {
                    truth(&v)
                } else {
                    self.charged_test(input, &v)
                }
            }
        };
        self.input = saved;
        r
    }

    /// [`test_against`], charging for the list it may walk.
    fn charged_test(&mut self, input: &Value, v: &Value) -> Option<bool> {
        if let Value::List(l) = v {
            self.charge(l.len());
        }
        test_against(input, v)
    }

    pub fn instance_of(&self, v: &Value, t: &TypeRef) -> bool {
        match t {
            TypeRef::Named(n) => match &**n {
                "Any" => !v.is_null(),
                "Null" => v.is_null(),
                "number"
                | "string"
                | "boolean"
                | "date"
                | "time"
                | "date and time"
                | "years and months duration"
                | "days and time duration"
                | "list"
                | "context"
                | "range"
                | "function" => {
                    v.type_name() == &**n || (matches!((&**n, v), ("context", Value::Context(_))))
                }
                "dateTime" => matches!(v, Value::DateTime(_)),
                "dayTimeDuration" => matches!(v, Value::DtDuration(_)),
                "yearMonthDuration" => matches!(v, Value::YmDuration(_)),
                other => self.host.instance_of(other, v).unwrap_or(false),
            },
            TypeRef::List(inner) => match v {
                Value::List(items) => items
                    .iter()
                    .all(|i| i.is_null() || self.instance_of(i, inner)),
                _ => false,
            },
            TypeRef::Range(inner) => match v {
                Value::Range(r) => [&r.start.value, &r.end.value]
                    .iter()
                    .all(|b| b.is_null() || self.instance_of(b, inner)),
                _ => false,
            },
            TypeRef::Context(fields) => match v {
                Value::Context(c) => fields.iter().all(|(k, ft)| {
                    c.get(k)
                        .is_some_and(|fv| fv.is_null() || self.instance_of(fv, ft))
                }),
                _ => false,
            },
            TypeRef::Function(..) => matches!(v, Value::Function(_)),
        }
    }
}

/// Whether a filter could be an index: anything not mentioning `item` or a
/// comparison is evaluated once in the outer scope first.
fn filter_may_index(f: &Expr) -> bool {
    !matches!(
        f,
        Expr::Cmp(..)
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::In(..)
            | Expr::Between(..)
            | Expr::InstanceOf(..)
            | Expr::Const(Value::Bool(_))
    )
}

fn index(items: &[Value], n: Decimal) -> Value {
    let Ok(i) = i64::try_from(n.trunc()) else {
        return Value::Null;
    };
    let len = items.len() as i64;
    let idx = if i > 0 {
        i - 1
    } else if i < 0 {
        len + i
    } else {
        return Value::Null;
    };
    if idx < 0 || idx >= len {
        Value::Null
    } else {
        items[idx as usize].clone()
    }
}

fn offset_if(v: &Value, cond: bool, by: i64) -> Value {
    match v {
        Value::Number(n) if cond => Value::Number(n + Decimal::from(by)),
        other => other.clone(),
    }
}

fn int_range(a: &Value, b: &Value) -> Option<Vec<Value>> {
    let (Value::Number(a), Value::Number(b)) = (a, b) else {
        return None;
    };
    let (a, b) = (
        i64::try_from(a.trunc()).ok()?,
        i64::try_from(b.trunc()).ok()?,
    );
    if a.abs_diff(b) as usize >= LIST_LEN_MAX {
        return None;
    }
    Some(if a <= b {
        (a..=b).map(Value::num).collect()
    } else {
        (b..=a).rev().map(Value::num).collect()
    })
}

pub fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

pub fn bool_or_null(b: Option<bool>) -> Value {
    b.map(Value::Bool).unwrap_or(Value::Null)
}

pub fn cmp(op: CmpOp, a: &Value, b: &Value) -> Option<bool> {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => equals(a, b),
        CmpOp::Ne => equals(a, b).map(|x| !x),
        CmpOp::Lt => compare(a, b).map(|o| o == Less),
        CmpOp::Le => compare(a, b).map(|o| o != Greater),
        CmpOp::Gt => compare(a, b).map(|o| o == Greater),
        CmpOp::Ge => compare(a, b).map(|o| o != Less),
    }
}

/// The value-based half of a unary test: equality, list membership, ranges.
pub fn test_against(input: &Value, v: &Value) -> Option<bool> {
    match v {
        Value::Range(r) => r.contains(input),
        Value::List(items) => {
            if let (Value::List(_), Some(true)) = (input, equals(input, v)) {
                return Some(true);
            }
            // Membership: an element of another type is simply not a match.
            let hit = items.iter().any(|i| match i {
                Value::Range(r) => r.contains(input) == Some(true),
                i => equals(input, i) == Some(true),
            });
            Some(hit)
        }
        Value::Bool(b) => match equals(input, v) {
            None => Some(*b),
            r => r,
        },
        _ => equals(input, v),
    }
}

pub fn make_range(s: Value, start_incl: bool, e: Value, end_incl: bool) -> Value {
    if !s.is_null() && !e.is_null() && compare(&s, &e).is_none() {
        return Value::Null;
    }
    Value::Range(Arc::new(Range {
        start: Bound {
            value: s,
            inclusive: start_incl,
        },
        end: Bound {
            value: e,
            inclusive: end_incl,
        },
        from_test: false,
    }))
}

fn unary_cmp_range(op: CmpOp, v: Value) -> Value {
    // A range's end points must be ordered values (numbers, strings,
    // temporals, durations); `= [1..2]` or `< {}` is no range. (Ranges of
    // ranges also let a short expression build a value whose rendering is
    // exponential in its length.)
    if !v.is_null() && compare(&v, &v).is_none() {
        return Value::Null;
    }
    let open = Bound {
        value: Value::Null,
        inclusive: false,
    };
    let r = match op {
        CmpOp::Lt => Range {
            start: open,
            end: Bound {
                value: v,
                inclusive: false,
            },
            from_test: true,
        },
        CmpOp::Le => Range {
            start: open,
            end: Bound {
                value: v,
                inclusive: true,
            },
            from_test: true,
        },
        CmpOp::Gt => Range {
            start: Bound {
                value: v,
                inclusive: false,
            },
            end: open,
            from_test: true,
        },
        CmpOp::Ge => Range {
            start: Bound {
                value: v,
                inclusive: true,
            },
            end: open,
            from_test: true,
        },
        CmpOp::Eq => Range {
            start: Bound {
                value: v.clone(),
                inclusive: true,
            },
            end: Bound {
                value: v,
                inclusive: true,
            },
            from_test: true,
        },
        CmpOp::Ne => return Value::Null,
    };
    Value::Range(Arc::new(r))
}

fn bind_by_name<'a>(
    params: impl Iterator<Item = &'a Arc<str>>,
    named: Vec<(Arc<str>, Value)>,
) -> Option<Vec<Value>> {
    let params: Vec<&Arc<str>> = params.collect();
    if named.iter().any(|(k, _)| !params.contains(&k)) {
        return None;
    }
    Some(
        params
            .iter()
            .map(|p| {
                named
                    .iter()
                    .find(|(k, _)| k == *p)
                    .map(|(_, v)| v.clone())
                    .unwrap_or(Value::Null)
            })
            .collect(),
    )
}

/// `value.name`: context entries, temporal and range properties; lists map.
pub fn path(v: &Value, name: &str) -> Value {
    match v {
        Value::Context(c) => c.get(name).cloned().unwrap_or(Value::Null),
        Value::List(items) => Value::list(items.iter().map(|i| path(i, name)).collect()),
        Value::Range(r) => match name {
            "start" => r.start.value.clone(),
            "end" => r.end.value.clone(),
            "start included" => Value::Bool(r.start.inclusive),
            "end included" => Value::Bool(r.end.inclusive),
            _ => Value::Null,
        },
        other => builtins::temporal_property(other, name),
    }
}
