//! DMN models: the compiled decision requirement graph and its evaluation.
//!
//! A model is parsed and compiled once ([`DecisionModel::parse`]); each
//! evaluation then walks the graph: required decisions first (each evaluated
//! at most once per call), business knowledge models and decision services
//! bound as functions, results coerced to their declared types.

pub mod boxed;
mod index;
pub mod table;
pub mod types;
mod xml;

use std::sync::Arc;

use boxed::{Boxed, FunctionDef, call_def};
use types::{Type, TypeRegistry, coerce, has_type_fast};

use crate::feel::temporal::DateTime;
use crate::feel::value::{Callable, Context, Function, Value, str_eq};
use crate::feel::{Buffers, Evaluator, FeelError, Host};
use crate::json::{from_json, to_json};
use crate::trace::{Recorder, Trace};
use std::cell::Cell;

/// Errors from parsing or evaluating a model. Each names what and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DmnError {
    /// `BATON-DMN-001`: the document is not well-formed DMN XML.
    #[error("BATON-DMN-001: invalid DMN XML: {message}")]
    Xml { message: String },
    /// `BATON-DMN-002`: a FEEL expression does not parse.
    #[error("BATON-DMN-002: element `{element}`: FEEL expression `{expression}`: {error}")]
    Feel {
        element: String,
        expression: String,
        error: FeelError,
    },
    /// `BATON-DMN-003`: a structural problem in the model.
    #[error("BATON-DMN-003: element `{element}`: {message}")]
    Model { element: String, message: String },
    /// `BATON-DMN-004`: no decision (or service) with that name.
    #[error("BATON-DMN-004: no decision named `{name}` in model `{model}`")]
    UnknownDecision { name: String, model: String },
    /// `BATON-DMN-005`: the evaluation input is not a JSON object.
    #[error("BATON-DMN-005: input must be a JSON object of input data values, found {found}")]
    Input { found: String },
}

pub(crate) struct InputData {
    pub name: Arc<str>,
    pub ty: Option<Type>,
}

pub(crate) struct Decision {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub ty: Option<Type>,
    pub req_decisions: Vec<usize>,
    #[allow(dead_code)]
    pub req_inputs: Vec<usize>,
    pub body: Boxed,
    /// Set when the body is a closed decision table (see
    /// [`table::DecisionTable::is_closed`]) whose input expressions are
    /// names of input data and the decision requires no other decision: the
    /// table then reads the input values directly, without a scope.
    pub direct: Option<Direct>,
}

/// The input data a direct table reads, one per column: the name and the
/// declared type of the (first) input data of that name.
pub(crate) struct Direct {
    columns: Box<[(Arc<str>, Option<Type>)]>,
}

impl Decision {
    /// Works out [`Decision::direct`] once the model is compiled.
    fn plan_direct(&mut self, inputs: &[InputData]) {
        let Boxed::Table(t) = &self.body else {
            return;
        };
        if !self.req_decisions.is_empty() || !t.is_closed() {
            return;
        }
        let mut columns = Vec::with_capacity(t.inputs.len());
        for i in &t.inputs {
            let crate::feel::ast::Expr::Name(n) = &i.expr else {
                return;
            };
            let Some(data) = inputs.iter().find(|d| str_eq(&d.name, n)) else {
                return;
            };
            columns.push((data.name.clone(), data.ty.clone()));
        }
        self.direct = Some(Direct {
            columns: columns.into(),
        });
    }
}

pub(crate) struct Bkm {
    pub name: Arc<str>,
    pub def: Arc<FunctionDef>,
}

pub(crate) struct Service {
    pub name: Arc<str>,
    pub outputs: Vec<usize>,
    pub input_decisions: Vec<usize>,
    pub input_data: Vec<usize>,
    pub params: Vec<Arc<str>>,
}

pub(crate) struct ModelInner {
    pub name: String,
    #[allow(dead_code)]
    pub namespace: String,
    pub decisions: Vec<Decision>,
    pub inputs: Vec<InputData>,
    pub bkms: Vec<Bkm>,
    pub services: Vec<Service>,
    pub types: TypeRegistry,
    pub diagnostics: Vec<DmnError>,
    /// The JSON form of the literal context results of direct tables,
    /// keyed by the address of the model's own `Arc<Context>` (the model
    /// keeps each alive, so the address identifies it), sorted by key.
    pub json_constants: Vec<(usize, serde_json::Value)>,
}

impl ModelInner {
    /// Fills [`ModelInner::json_constants`] once the model is compiled.
    pub(crate) fn cache_json_constants(&mut self) {
        let mut cache = Vec::new();
        for d in &self.decisions {
            if let (Some(_), Boxed::Table(t)) = (&d.direct, &d.body) {
                for r in &t.rules {
                    if let Some(Some(Value::Context(c))) = &r.constant {
                        cache.push((Arc::as_ptr(c) as usize, to_json(&Value::Context(c.clone()))));
                    }
                }
            }
        }
        cache.sort_by_key(|(k, _)| *k);
        self.json_constants = cache;
    }

    /// `to_json`, using the cached form of a literal result.
    fn output_json(&self, v: &Value) -> serde_json::Value {
        if let Value::Context(c) = v
            && let Ok(i) = self
                .json_constants
                .binary_search_by_key(&(Arc::as_ptr(c) as usize), |(k, _)| *k)
        {
            return self.json_constants[i].1.clone();
        }
        to_json(v)
    }
}

/// A compiled DMN model. Cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct DecisionModel {
    inner: Arc<ModelInner>,
}

/// The result of [`DecisionModel::evaluate`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub output: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
}

/// Per-call options: the clock for `now()` / `today()` is an input.
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    pub now: Option<DateTime>,
    pub trace: bool,
    /// Evaluation steps allowed; `None` for the default
    /// ([`crate::feel::eval::STEP_BUDGET_DEFAULT`]). Past it, what is left
    /// to evaluate gives null.
    pub step_budget: Option<u64>,
}

struct ModelHost<'m> {
    model: &'m ModelInner,
    now: Option<DateTime>,
}

impl Host for ModelHost<'_> {
    fn instance_of(&self, name: &str, v: &Value) -> Option<bool> {
        self.model.types.instance_of(name, v)
    }
    fn now(&self) -> Option<DateTime> {
        self.now.clone()
    }
}

thread_local! {
    /// Evaluator buffers kept between evaluations on this thread.
    static BUFFERS: Cell<Buffers> = const { Cell::new(Buffers::new()) };
    /// The input context's entries, for JSON input.
    static INPUT_ENTRIES: Cell<Vec<(Arc<str>, Value)>> = const { Cell::new(Vec::new()) };
}

/// Evaluation state of one call: memoised decision results and traces.
struct Run {
    /// Indexed by decision; allocated on the first result stored.
    values: Vec<Option<Value>>,
    /// Decisions being evaluated (cycle detection): a bit per decision.
    visiting: u64,
    /// Beyond 64 decisions, cycle detection falls back to this set.
    visiting_more: Vec<usize>,
}

impl Run {
    fn new() -> Run {
        Run {
            values: Vec::new(),
            visiting: 0,
            visiting_more: Vec::new(),
        }
    }

    /// A memoised decision result (null when not evaluated).
    fn value(&self, idx: usize) -> Value {
        self.values
            .get(idx)
            .and_then(Clone::clone)
            .unwrap_or(Value::Null)
    }

    fn store(&mut self, idx: usize, v: Value, n_decisions: usize) {
        if self.values.len() <= idx {
            self.values.resize(n_decisions.max(idx + 1), None);
        }
        self.values[idx] = Some(v);
    }

    fn is_visiting(&self, idx: usize) -> bool {
        if idx < 64 {
            self.visiting & (1 << idx) != 0
        } else {
            self.visiting_more.contains(&idx)
        }
    }

    fn set_visiting(&mut self, idx: usize, on: bool) {
        if idx < 64 {
            if on {
                self.visiting |= 1 << idx;
            } else {
                self.visiting &= !(1 << idx);
            }
        } else if on {
            self.visiting_more.push(idx);
        } else {
            self.visiting_more.retain(|&i| i != idx);
        }
    }
}

impl DecisionModel {
    /// Parses and compiles a DMN XML document. FEEL errors inside the model
    /// do not fail the parse; they are listed by [`DecisionModel::diagnostics`]
    /// and the affected expressions evaluate to null.
    pub fn parse(xml: &str) -> Result<DecisionModel, DmnError> {
        Ok(DecisionModel {
            inner: Arc::new(xml::parse_model(xml)?),
        })
    }

    /// Like [`DecisionModel::parse`], but any diagnostic is an error.
    pub fn parse_strict(xml: &str) -> Result<DecisionModel, DmnError> {
        let m = Self::parse(xml)?;
        match m.inner.diagnostics.first() {
            Some(e) => Err(e.clone()),
            None => Ok(m),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Problems found while compiling (bad FEEL, malformed tables).
    pub fn diagnostics(&self) -> &[DmnError] {
        &self.inner.diagnostics
    }

    /// Names of the decisions in the model, in document order.
    pub fn decision_names(&self) -> Vec<&str> {
        self.inner.decisions.iter().map(|d| &*d.name).collect()
    }

    /// Evaluates `decision` with input data given as a JSON object.
    pub fn evaluate(
        &self,
        decision: &str,
        input: &serde_json::Value,
        with_trace: bool,
    ) -> Result<Evaluation, DmnError> {
        let serde_json::Value::Object(obj) = input else {
            return Err(DmnError::Input {
                found: json_kind(input).into(),
            });
        };
        // Reuse the model's input names as keys (no allocation per key) and
        // this thread's entry buffer from the previous call.
        let mut ctx = Context {
            entries: INPUT_ENTRIES.with(Cell::take),
        };
        ctx.entries.reserve(obj.len());
        for (k, v) in obj {
            let key = match self.inner.inputs.iter().find(|i| str_eq(&i.name, k)) {
                Some(i) => i.name.clone(),
                None => Arc::from(k.as_str()),
            };
            ctx.entries.push((key, from_json(v)));
        }
        let result = self.evaluate_feel(
            decision,
            &ctx,
            &EvalOptions {
                trace: with_trace,
                ..EvalOptions::default()
            },
        );
        ctx.entries.clear();
        if ctx.entries.capacity() <= 64 {
            INPUT_ENTRIES.with(|b| b.set(ctx.entries));
        }
        let (v, trace) = result?;
        Ok(Evaluation {
            output: self.inner.output_json(&v),
            trace,
        })
    }

    /// Evaluates a decision (or a decision service) with FEEL input values.
    pub fn evaluate_feel(
        &self,
        decision: &str,
        input: &Context,
        opts: &EvalOptions,
    ) -> Result<(Value, Option<Trace>), DmnError> {
        let m = &*self.inner;
        let host = ModelHost {
            model: m,
            now: opts.now.clone(),
        };
        let mut ev = Evaluator::with_buffers(&host, BUFFERS.with(Cell::take));
        if let Some(steps) = opts.step_budget {
            ev.set_step_budget(steps);
        }
        if let Some(idx) = m.decisions.iter().position(|d| str_eq(&d.name, decision)) {
            let mut run = Run::new();
            if opts.trace {
                ev.trace = Some(Recorder::default());
            }
            let v = self.eval_decision(&mut ev, idx, input, &mut run);
            let trace = ev
                .trace
                .take()
                .map(|rec| Trace::new(m.decisions[idx].name.clone(), self.inner.clone(), rec));
            BUFFERS.with(|b| b.set(ev.take_buffers()));
            return Ok((v, trace));
        }
        if let Some(s) = m.services.iter().position(|s| &*s.name == decision) {
            let args: Vec<Value> = m.services[s]
                .params
                .iter()
                .map(|p| input.get(p).cloned().unwrap_or(Value::Null))
                .collect();
            let v = ServiceFn {
                model: self.clone(),
                idx: s,
            }
            .call(&mut ev, args);
            return Ok((v, None));
        }
        Err(DmnError::UnknownDecision {
            name: decision.to_string(),
            model: m.name.clone(),
        })
    }

    /// Invokes a business knowledge model directly with named arguments.
    pub fn invoke_bkm(&self, name: &str, args: &Context) -> Result<Value, DmnError> {
        let m = &*self.inner;
        let b =
            m.bkms
                .iter()
                .find(|b| &*b.name == name)
                .ok_or_else(|| DmnError::UnknownDecision {
                    name: name.to_string(),
                    model: m.name.clone(),
                })?;
        let host = ModelHost {
            model: m,
            now: None,
        };
        let mut ev = Evaluator::new(&host);
        let vals = b
            .def
            .names
            .iter()
            .map(|n| args.get(n).cloned().unwrap_or(Value::Null))
            .collect();
        Ok(call_def(&b.def, self.globals(), &mut ev, vals))
    }

    /// Functions visible everywhere: business knowledge models and services.
    fn globals(&self) -> Vec<(Arc<str>, Value)> {
        let mut g = Vec::new();
        self.push_globals(&mut g);
        g
    }

    fn push_globals(&self, g: &mut Vec<(Arc<str>, Value)>) {
        let m = &*self.inner;
        g.reserve(m.bkms.len() + m.services.len());
        for (i, b) in m.bkms.iter().enumerate() {
            g.push((
                b.name.clone(),
                Value::Function(Arc::new(Function::External(Arc::new(BkmFn {
                    model: self.clone(),
                    idx: i,
                })))),
            ));
        }
        for (i, s) in m.services.iter().enumerate() {
            g.push((
                s.name.clone(),
                Value::Function(Arc::new(Function::External(Arc::new(ServiceFn {
                    model: self.clone(),
                    idx: i,
                })))),
            ));
        }
    }

    /// Fills the scope a decision's body sees: global functions and the
    /// input data (coerced to their declared types), with room for `extra`
    /// required decisions.
    fn input_scope(&self, scope: &mut Vec<(Arc<str>, Value)>, input: &Context, extra: usize) {
        let m = &*self.inner;
        scope.reserve(m.bkms.len() + m.services.len() + input.entries.len() + extra);
        self.push_globals(scope);
        for (k, v) in &input.entries {
            // Declared inputs are keyed by the model's own name allocation,
            // which the compiled expressions share.
            match m.inputs.iter().find(|i| str_eq(&i.name, k)) {
                Some(i) => {
                    let v = match &i.ty {
                        Some(t) => coerce(t, v.clone(), true).unwrap_or(Value::Null),
                        None => v.clone(),
                    };
                    scope.push((i.name.clone(), v));
                }
                None => scope.push((k.clone(), v.clone())),
            }
        }
    }

    fn eval_decision(
        &self,
        ev: &mut Evaluator<'_>,
        idx: usize,
        input: &Context,
        run: &mut Run,
    ) -> Value {
        if let Some(Some(v)) = run.values.get(idx) {
            return v.clone();
        }
        if run.is_visiting(idx) {
            // A cycle in the requirement graph: the decision cannot be known.
            return Value::Null;
        }
        run.set_visiting(idx, true);
        let d = &self.inner.decisions[idx];
        // Required decisions first (their results are memoised in `run`).
        for &r in &d.req_decisions {
            self.eval_decision(ev, r, input, run);
        }
        let direct = match (&d.direct, &d.body) {
            (Some(direct), Boxed::Table(t)) => t.evaluate_values(ev, |vals| {
                // As the scope would: the last entry of that name, coerced
                // to the type of the first input data of that name.
                for (name, ty) in &direct.columns {
                    let Some((_, v)) = input.entries.iter().rev().find(|(k, _)| str_eq(k, name))
                    else {
                        // Not given: the name could mean something else
                        // (a function); take the general path.
                        return false;
                    };
                    vals.push(match ty {
                        Some(t) if !has_type_fast(t, v) => {
                            coerce(t, v.clone(), true).unwrap_or(Value::Null)
                        }
                        _ => v.clone(),
                    });
                }
                true
            }),
            _ => None,
        };
        let mut v = match direct {
            Some(v) => v,
            None => ev
                .with_new_scope(
                    |scope| {
                        self.input_scope(scope, input, d.req_decisions.len());
                        for &r in &d.req_decisions {
                            scope.push((self.inner.decisions[r].name.clone(), run.value(r)));
                        }
                    },
                    |ev| d.body.eval(ev),
                )
                .unwrap_or(Value::Null),
        };
        if let Some(t) = &d.ty {
            v = coerce(t, v, false).unwrap_or(Value::Null);
        }
        if let Some(rec) = ev.trace.as_mut() {
            rec.decision(idx, &v);
        }
        run.set_visiting(idx, false);
        // Only another decision can ask for this result again.
        if self.inner.decisions.len() > 1 {
            run.store(idx, v.clone(), self.inner.decisions.len());
        }
        v
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A business knowledge model as a FEEL function value.
struct BkmFn {
    model: DecisionModel,
    idx: usize,
}

impl std::fmt::Debug for BkmFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bkm {}", self.model.inner.bkms[self.idx].name)
    }
}

impl Callable for BkmFn {
    fn params(&self) -> &[Arc<str>] {
        &self.model.inner.bkms[self.idx].def.names
    }
    fn call(&self, ev: &mut Evaluator<'_>, args: Vec<Value>) -> Value {
        let def = self.model.inner.bkms[self.idx].def.clone();
        call_def(&def, self.model.globals(), ev, args)
    }
}

/// A decision service as a FEEL function value: its parameters are the
/// input decisions and input data; its result the output decision(s).
struct ServiceFn {
    model: DecisionModel,
    idx: usize,
}

impl std::fmt::Debug for ServiceFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "decision service {}",
            self.model.inner.services[self.idx].name
        )
    }
}

impl Callable for ServiceFn {
    fn params(&self) -> &[Arc<str>] {
        &self.model.inner.services[self.idx].params
    }
    fn call(&self, ev: &mut Evaluator<'_>, args: Vec<Value>) -> Value {
        let m = &*self.model.inner;
        let s = &m.services[self.idx];
        let mut run = Run::new();
        let mut input = Context::default();
        let mut args = args.into_iter();
        for &i in &s.input_data {
            input.put(m.inputs[i].name.clone(), args.next().unwrap_or(Value::Null));
        }
        for &d in &s.input_decisions {
            let mut v = args.next().unwrap_or(Value::Null);
            if let Some(t) = &m.decisions[d].ty {
                // A value that does not conform to the decision's type: the
                // service is not invoked.
                match coerce(t, v, false) {
                    Some(c) => v = c,
                    None => return Value::Null,
                }
            }
            run.store(d, v, m.decisions.len());
        }
        let saved = ev.trace.take();
        let outs: Vec<(Arc<str>, Value)> = s
            .outputs
            .iter()
            .map(|&d| {
                (
                    m.decisions[d].name.clone(),
                    self.model.eval_decision(ev, d, &input, &mut run),
                )
            })
            .collect();
        ev.trace = saved;
        match outs.len() {
            1 => outs
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or(Value::Null),
            _ => Value::context(outs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same model with every decision forced onto the general path.
    fn without_direct(m: &DecisionModel) -> DecisionModel {
        let mut inner = xml::parse_model(&MODEL_WITH_TYPES).expect("parses");
        for d in &mut inner.decisions {
            d.direct = None;
        }
        assert!(m.inner.decisions.iter().any(|d| d.direct.is_some()));
        DecisionModel {
            inner: Arc::new(inner),
        }
    }

    /// The benchmark table, with a date-typed input and `inputValues` added.
    static MODEL_WITH_TYPES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        include_str!("../../tests/data/first-hit-10.dmn")
            .replace(
                r#"<inputData id="i_tier" name="tier">"#,
                r#"<inputData id="i_since" name="since"><variable name="since" typeRef="date"/></inputData>
  <inputData id="i_tier" name="tier">"#,
            )
            .replace(
                r#"<input id="in_tier" label="tier">"#,
                r#"<input id="in_since"><inputExpression typeRef="date"><text>since</text></inputExpression></input>
      <input id="in_tier" label="tier">"#,
            )
            .replace(
                "<inputEntry><text>-</text></inputEntry>\n        <outputEntry>",
                "<inputEntry><text>-</text></inputEntry>\n        <inputEntry><text>-</text></inputEntry>\n        <outputEntry>",
            )
            .replace(
                r#"<inputEntry><text>"gold"</text></inputEntry>"#,
                r#"<inputEntry><text>-</text></inputEntry><inputEntry><text>"gold"</text></inputEntry>"#,
            )
            .replace(
                r#"<inputEntry><text>"gold", "platinum"</text></inputEntry>"#,
                r#"<inputEntry><text>-</text></inputEntry><inputEntry><text>"gold", "platinum"</text></inputEntry>"#,
            )
            .replace(
                r#"<inputEntry><text>"silver"</text></inputEntry>"#,
                r#"<inputEntry><text>-</text></inputEntry><inputEntry><text>"silver"</text></inputEntry>"#,
            )
            .replace(
                r#"<inputEntry><text>"bronze"</text></inputEntry>"#,
                r#"<inputEntry><text>-</text></inputEntry><inputEntry><text>"bronze"</text></inputEntry>"#,
            )
            .replace(
                r#"<inputEntry><text>"platinum"</text></inputEntry>"#,
                r#"<inputEntry><text>-</text></inputEntry><inputEntry><text>"platinum"</text></inputEntry>"#,
            )
    });

    /// Reading a closed table's inputs directly gives the same results and
    /// traces as the general path, for well-typed, mistyped, missing and
    /// duplicated inputs.
    #[test]
    fn direct_tables_agree_with_the_general_path() {
        let m = DecisionModel::parse_strict(&MODEL_WITH_TYPES).expect("compiles");
        let general = without_direct(&m);
        let ages = [
            json_num(40),
            json_num(17),
            serde_json::json!(null),
            serde_json::json!("40"),
            serde_json::json!(64.5),
        ];
        let countries = [
            serde_json::json!("DE"),
            serde_json::json!("US"),
            serde_json::json!(1),
            serde_json::json!(null),
        ];
        let tiers = [
            serde_json::json!("gold"),
            serde_json::json!("platinum"),
            serde_json::json!(["gold"]),
        ];
        let since = [serde_json::json!("2020-01-01"), serde_json::json!(null)];
        let mut cases = Vec::new();
        for a in &ages {
            for c in &countries {
                for t in &tiers {
                    for s in &since {
                        cases.push(
                            serde_json::json!({"age": a, "country": c, "tier": t, "since": s}),
                        );
                    }
                }
            }
        }
        cases.push(serde_json::json!({"age": 40, "country": "DE"}));
        cases.push(serde_json::json!({}));
        for input in &cases {
            for trace in [false, true] {
                let a = m.evaluate("Offer", input, trace).expect("evaluates");
                let b = general.evaluate("Offer", input, trace).expect("evaluates");
                assert_eq!(
                    serde_json::to_value(&a).unwrap(),
                    serde_json::to_value(&b).unwrap(),
                    "input {input}"
                );
            }
        }
        // A FEEL context may repeat a key: the last one counts, as in a scope.
        let ctx = Context {
            entries: vec![
                (Arc::from("age"), Value::num(10)),
                (Arc::from("age"), Value::num(40)),
                (Arc::from("country"), Value::str("DE")),
                (Arc::from("tier"), Value::str("gold")),
                (Arc::from("since"), Value::Null),
            ],
        };
        let opts = EvalOptions::default();
        let (a, _) = m.evaluate_feel("Offer", &ctx, &opts).unwrap();
        let (b, _) = general.evaluate_feel("Offer", &ctx, &opts).unwrap();
        assert_eq!(to_json(&a), to_json(&b));
        assert_eq!(to_json(&a)["discount"], 12);
    }

    fn json_num(n: i64) -> serde_json::Value {
        serde_json::json!(n)
    }
}
