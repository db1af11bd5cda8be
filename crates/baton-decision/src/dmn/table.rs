//! Decision tables: rule matching, hit policies, output ordering by output
//! values, default outputs, and the trace record of each evaluation.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::types::{Type, coerce};
use crate::feel::Evaluator;
use crate::feel::ast::{Expr, UnaryTests};
use crate::feel::value::{Value, compare, equals};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Min,
    Max,
    Count,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitPolicy {
    Unique,
    Any,
    Priority,
    First,
    RuleOrder,
    OutputOrder,
    Collect(Option<Aggregation>),
}

impl HitPolicy {
    pub fn parse(policy: Option<&str>, aggregation: Option<&str>) -> Option<HitPolicy> {
        Some(match policy.unwrap_or("UNIQUE") {
            "UNIQUE" | "U" => HitPolicy::Unique,
            "ANY" | "A" => HitPolicy::Any,
            "PRIORITY" | "P" => HitPolicy::Priority,
            "FIRST" | "F" => HitPolicy::First,
            "RULE ORDER" | "R" => HitPolicy::RuleOrder,
            "OUTPUT ORDER" | "O" => HitPolicy::OutputOrder,
            "COLLECT" | "C" => HitPolicy::Collect(match aggregation {
                None => None,
                Some("SUM") => Some(Aggregation::Sum),
                Some("MIN") => Some(Aggregation::Min),
                Some("MAX") => Some(Aggregation::Max),
                Some("COUNT") => Some(Aggregation::Count),
                Some(_) => return None,
            }),
            "C+" => HitPolicy::Collect(Some(Aggregation::Sum)),
            "C<" => HitPolicy::Collect(Some(Aggregation::Min)),
            "C>" => HitPolicy::Collect(Some(Aggregation::Max)),
            "C#" => HitPolicy::Collect(Some(Aggregation::Count)),
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            HitPolicy::Unique => "UNIQUE",
            HitPolicy::Any => "ANY",
            HitPolicy::Priority => "PRIORITY",
            HitPolicy::First => "FIRST",
            HitPolicy::RuleOrder => "RULE ORDER",
            HitPolicy::OutputOrder => "OUTPUT ORDER",
            HitPolicy::Collect(None) => "COLLECT",
            HitPolicy::Collect(Some(Aggregation::Sum)) => "COLLECT SUM",
            HitPolicy::Collect(Some(Aggregation::Min)) => "COLLECT MIN",
            HitPolicy::Collect(Some(Aggregation::Max)) => "COLLECT MAX",
            HitPolicy::Collect(Some(Aggregation::Count)) => "COLLECT COUNT",
        }
    }
}

#[derive(Debug)]
pub struct TableInput {
    pub expr: Expr,
    /// `inputValues`: a value outside them makes the table fail (null).
    pub allowed: Option<UnaryTests>,
}

#[derive(Debug)]
pub struct TableOutput {
    pub name: Option<Arc<str>>,
    /// `outputValues` as literal values, in priority order (first = highest).
    pub priorities: Vec<Value>,
    pub allowed: Option<UnaryTests>,
    pub default: Option<Expr>,
    pub ty: Option<Type>,
}

#[derive(Debug)]
pub struct Rule {
    pub entries: Vec<UnaryTests>,
    pub outputs: Vec<Expr>,
}

#[derive(Debug)]
pub struct DecisionTable {
    pub id: Arc<str>,
    pub hit_policy: HitPolicy,
    pub inputs: Vec<TableInput>,
    pub outputs: Vec<TableOutput>,
    pub rules: Vec<Rule>,
    /// For traces: input column captions and rule ids.
    pub input_names: Arc<[Arc<str>]>,
    pub rule_ids: Arc<[Arc<str>]>,
    /// Name used when the table has a single unnamed output inside a context.
    pub single_output_name: Option<Arc<str>>,
}

/// What one evaluation of a table saw and chose, kept as FEEL values until
/// the public trace is built (so tracing costs little on the hot path).
#[derive(Clone, Debug)]
pub struct TableRecord {
    pub id: Arc<str>,
    pub hit_policy: &'static str,
    pub input_names: Arc<[Arc<str>]>,
    pub rule_ids: Arc<[Arc<str>]>,
    pub inputs: Vec<Value>,
    pub matched: Vec<u32>,
    pub fired: Vec<u32>,
    pub defaulted: bool,
    pub output: Value,
}

impl TableOutput {
    /// The output's name in a multi-output result (compiled names are always set).
    fn key(&self) -> Arc<str> {
        self.name.clone().unwrap_or_else(|| Arc::from("output"))
    }
}

/// Evaluates one output entry, checking `outputValues` and the type.
fn output_value(ev: &mut Evaluator<'_>, o: &TableOutput, e: &Expr) -> Option<Value> {
    let mut v = ev.eval(e);
    if let Some(allowed) = &o.allowed
        && !v.is_null()
        && ev.unary_tests(&v, allowed) != Some(true)
    {
        return None;
    }
    if let Some(t) = &o.ty {
        v = coerce(t, v, false).unwrap_or(Value::Null);
    }
    Some(v)
}

impl DecisionTable {
    pub fn evaluate(&self, ev: &mut Evaluator<'_>) -> Value {
        let inputs: Vec<Value> = self.inputs.iter().map(|i| ev.eval(&i.expr)).collect();
        let mut valid = true;
        for (inp, v) in self.inputs.iter().zip(&inputs) {
            if let Some(allowed) = &inp.allowed
                && !v.is_null()
                && ev.unary_tests(v, allowed) != Some(true)
            {
                valid = false;
            }
        }
        let mut matched: Vec<u32> = Vec::new();
        if valid {
            for (ri, rule) in self.rules.iter().enumerate() {
                let hit = rule
                    .entries
                    .iter()
                    .zip(&inputs)
                    .all(|(t, v)| ev.unary_tests(v, t) == Some(true));
                if hit {
                    matched.push(ri as u32);
                    // FIRST needs no further matching; the trace shows the stop.
                    if self.hit_policy == HitPolicy::First {
                        break;
                    }
                }
            }
        }
        let (output, fired, defaulted) = if valid {
            self.apply(ev, &matched)
        } else {
            (Value::Null, Vec::new(), false)
        };
        if let Some(records) = ev.trace.as_mut() {
            records.push(TableRecord {
                id: self.id.clone(),
                hit_policy: self.hit_policy.name(),
                input_names: self.input_names.clone(),
                rule_ids: self.rule_ids.clone(),
                inputs,
                matched,
                fired,
                defaulted,
                output: output.clone(),
            });
        }
        output
    }

    /// Evaluates a rule's output entries: a bare value for a single output,
    /// a context for several.
    fn rule_output(&self, ev: &mut Evaluator<'_>, ri: u32) -> Option<Value> {
        let rule = &self.rules[ri as usize];
        if self.outputs.len() == 1 {
            return output_value(ev, &self.outputs[0], &rule.outputs[0]);
        }
        let mut entries = Vec::with_capacity(self.outputs.len());
        for (o, e) in self.outputs.iter().zip(&rule.outputs) {
            entries.push((o.key(), output_value(ev, o, e)?));
        }
        Some(Value::context(entries))
    }

    fn shape(&self, mut vals: Vec<Value>) -> Value {
        if self.outputs.len() == 1 {
            return vals.pop().unwrap_or(Value::Null);
        }
        Value::context(
            self.outputs
                .iter()
                .map(TableOutput::key)
                .zip(vals)
                .collect(),
        )
    }

    fn defaults(&self, ev: &mut Evaluator<'_>) -> Option<Value> {
        if self.outputs.iter().all(|o| o.default.is_none()) {
            return None;
        }
        let vals = self
            .outputs
            .iter()
            .map(|o| {
                o.default
                    .as_ref()
                    .map(|d| ev.eval(d))
                    .unwrap_or(Value::Null)
            })
            .collect();
        Some(self.shape(vals))
    }

    /// Applies the hit policy: (result, fired rules, whether defaults were used).
    fn apply(&self, ev: &mut Evaluator<'_>, matched: &[u32]) -> (Value, Vec<u32>, bool) {
        if matched.is_empty() {
            return match self.defaults(ev) {
                Some(d) => (d, Vec::new(), true),
                None => match self.hit_policy {
                    HitPolicy::Collect(Some(Aggregation::Count)) => {
                        (Value::num(0), Vec::new(), false)
                    }
                    HitPolicy::Collect(None) | HitPolicy::RuleOrder | HitPolicy::OutputOrder => {
                        (Value::list(Vec::new()), Vec::new(), false)
                    }
                    _ => (Value::Null, Vec::new(), false),
                },
            };
        }
        // Single-rule results (FIRST, or UNIQUE with one hit) need no list.
        if self.hit_policy == HitPolicy::First
            || (self.hit_policy == HitPolicy::Unique && matched.len() == 1)
        {
            let fired = if ev.trace.is_some() {
                vec![matched[0]]
            } else {
                Vec::new()
            };
            return match self.rule_output(ev, matched[0]) {
                Some(v) => (v, fired, false),
                None => (Value::Null, Vec::new(), false),
            };
        }
        let mut outs = Vec::with_capacity(matched.len());
        for &ri in matched {
            match self.rule_output(ev, ri) {
                Some(v) => outs.push(v),
                None => return (Value::Null, Vec::new(), false),
            }
        }
        match self.hit_policy {
            HitPolicy::Unique => {
                if outs.len() > 1 {
                    return (Value::Null, Vec::new(), false);
                }
                (outs.swap_remove(0), matched.to_vec(), false)
            }
            HitPolicy::First => (outs.swap_remove(0), vec![matched[0]], false),
            HitPolicy::Any => {
                if outs.iter().any(|o| equals(o, &outs[0]) != Some(true)) {
                    return (Value::Null, Vec::new(), false);
                }
                (outs.swap_remove(0), matched.to_vec(), false)
            }
            HitPolicy::Priority => {
                let order = self.priority_order(matched, &outs);
                let best = order[0];
                (outs[best].clone(), vec![matched[best]], false)
            }
            HitPolicy::OutputOrder => {
                let order = self.priority_order(matched, &outs);
                (
                    Value::list(order.iter().map(|&i| outs[i].clone()).collect()),
                    order.iter().map(|&i| matched[i]).collect(),
                    false,
                )
            }
            HitPolicy::RuleOrder | HitPolicy::Collect(None) => {
                (Value::list(outs), matched.to_vec(), false)
            }
            HitPolicy::Collect(Some(agg)) => (aggregate(agg, &outs), matched.to_vec(), false),
        }
    }

    /// Indexes into `outs`, sorted by output-value priority (stable).
    fn priority_order(&self, _matched: &[u32], outs: &[Value]) -> Vec<usize> {
        let key = |v: &Value| -> Vec<usize> {
            if self.outputs.len() == 1 {
                return vec![rank(&self.outputs[0].priorities, v)];
            }
            self.outputs
                .iter()
                .map(|o| match (v, &o.name) {
                    (Value::Context(c), Some(n)) => {
                        rank(&o.priorities, c.get(n).unwrap_or(&Value::Null))
                    }
                    _ => usize::MAX,
                })
                .collect()
        };
        let keys: Vec<Vec<usize>> = outs.iter().map(key).collect();
        let mut idx: Vec<usize> = (0..outs.len()).collect();
        idx.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        idx
    }
}

fn rank(priorities: &[Value], v: &Value) -> usize {
    priorities
        .iter()
        .position(|p| equals(p, v) == Some(true))
        .unwrap_or(usize::MAX)
}

fn aggregate(agg: Aggregation, outs: &[Value]) -> Value {
    let vals: Vec<&Value> = outs.iter().filter(|v| !v.is_null()).collect();
    match agg {
        Aggregation::Count => Value::num(vals.len() as i64),
        Aggregation::Sum => {
            let mut sum = Decimal::ZERO;
            for v in vals {
                let Some(n) = v.as_number() else {
                    return Value::Null;
                };
                match sum.checked_add(n) {
                    Some(s) => sum = s,
                    None => return Value::Null,
                }
            }
            Value::Number(sum)
        }
        Aggregation::Min | Aggregation::Max => {
            let mut best: Option<&Value> = None;
            for v in vals {
                best = match best {
                    None => Some(v),
                    Some(b) => match compare(v, b) {
                        Some(o) => {
                            let better = if agg == Aggregation::Max {
                                o.is_gt()
                            } else {
                                o.is_lt()
                            };
                            Some(if better { v } else { b })
                        }
                        None => return Value::Null,
                    },
                };
            }
            best.cloned().unwrap_or(Value::Null)
        }
    }
}
