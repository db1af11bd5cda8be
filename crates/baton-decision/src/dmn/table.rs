//! Decision tables: rule matching, hit policies, output ordering by output
//! values, default outputs, and the trace record of each evaluation.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::index::TableIndex;
use super::types::{Type, coerce};
use crate::feel::Evaluator;
use crate::feel::ast::Expr;
use crate::feel::cells::{Cell, Probe};
use crate::feel::value::{Value, compare, equals};
use crate::trace::{Rules, TableMeta};

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
    pub allowed: Option<Cell>,
}

#[derive(Debug)]
pub struct TableOutput {
    pub name: Option<Arc<str>>,
    /// `outputValues` as literal values, in priority order (first = highest).
    pub priorities: Vec<Value>,
    pub allowed: Option<Cell>,
    pub default: Option<Expr>,
    pub ty: Option<Type>,
}

#[derive(Debug)]
pub struct Rule {
    /// Input entries, compiled (see [`Cell`]).
    pub cells: Box<[Cell]>,
    pub outputs: Vec<Expr>,
    /// The rule's result computed once at compile time when every output
    /// entry is a literal and its checks need no evaluation context
    /// (`None` inside: the literals break `outputValues` or the type).
    pub constant: Option<Option<Value>>,
}

#[derive(Debug)]
pub struct DecisionTable {
    /// Id, input captions and rule ids, for traces.
    pub(crate) meta: Arc<TableMeta>,
    pub hit_policy: HitPolicy,
    pub inputs: Vec<TableInput>,
    pub outputs: Vec<TableOutput>,
    pub rules: Vec<Rule>,
    /// Name used when the table has a single unnamed output inside a context.
    pub single_output_name: Option<Arc<str>>,
    /// Built by [`DecisionTable::precompute`].
    pub index: Option<TableIndex>,
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
        && !allowed.matches(ev, &Probe::new(&v))
    {
        return None;
    }
    if let Some(t) = &o.ty {
        v = coerce(t, v, false).unwrap_or(Value::Null);
    }
    Some(v)
}

/// The input values of one evaluation, with their integer keys (see
/// [`Probe`]), computed once per column and shared by every rule.
struct Row<'a> {
    vals: &'a [Value],
    ints: &'a [Option<i64>],
}

impl Row<'_> {
    #[inline]
    fn probe(&self, c: usize) -> Probe<'_> {
        Probe::with_int(&self.vals[c], self.ints[c])
    }
}

impl DecisionTable {
    /// Computes the constant results of rules whose outputs are literals.
    /// Called once by the compiler after the table is built.
    pub fn precompute(&mut self) {
        self.index = TableIndex::build(&self.rules, self.inputs.len());
        let pure_checks = self.outputs.iter().all(|o| match &o.allowed {
            None => true,
            Some(c) => !c.has_generic(),
        });
        if !pure_checks {
            return;
        }
        let host = crate::feel::NoHost;
        let mut ev = Evaluator::new(&host);
        for ri in 0..self.rules.len() {
            if self.rules[ri]
                .outputs
                .iter()
                .all(|e| matches!(e, Expr::Const(_)))
            {
                let v = self.rule_output(&mut ev, ri as u32);
                self.rules[ri].constant = Some(v);
            }
        }
    }

    pub fn evaluate(&self, ev: &mut Evaluator<'_>) -> Value {
        // The input values go in the evaluator's scratch buffers (taken out
        // while this table runs; a table nested in an output expression
        // starts with fresh ones).
        let mut vals = std::mem::take(&mut ev.row);
        let mut ints = std::mem::take(&mut ev.ints);
        vals.clear();
        ints.clear();
        for i in &self.inputs {
            // Most input expressions are a bare name.
            let v = match &i.expr {
                Expr::Name(n) => match ev.lookup(n) {
                    Some(v) => v.clone(),
                    None => ev.eval(&i.expr),
                },
                e => ev.eval(e),
            };
            ints.push(Probe::int_key(&v));
            vals.push(v);
        }
        let output = self.decide(ev, &mut vals, &ints);
        vals.clear();
        ints.clear();
        ev.row = vals;
        ev.ints = ints;
        output
    }

    /// Whether the table needs nothing from the scope but its input
    /// columns: every cell is a compiled literal test, every rule's output
    /// and every default is a literal. Such a table can be fed its input
    /// values directly ([`DecisionTable::evaluate_values`]).
    pub fn is_closed(&self) -> bool {
        self.inputs
            .iter()
            .all(|i| i.allowed.as_ref().is_none_or(|c| !c.has_generic()))
            && self
                .rules
                .iter()
                .all(|r| r.constant.is_some() && r.cells.iter().all(|c| !c.has_generic()))
            && self.outputs.iter().all(|o| {
                o.default
                    .as_ref()
                    .is_none_or(|e| matches!(e, Expr::Const(_)))
            })
    }

    /// Evaluates a [closed](DecisionTable::is_closed) table on input values
    /// that `fill` pushes, one per column in order. `None` (and nothing
    /// evaluated) when `fill` gives up.
    pub fn evaluate_values(
        &self,
        ev: &mut Evaluator<'_>,
        fill: impl FnOnce(&mut Vec<Value>) -> bool,
    ) -> Option<Value> {
        let mut vals = std::mem::take(&mut ev.row);
        let mut ints = std::mem::take(&mut ev.ints);
        vals.clear();
        ints.clear();
        let output = if fill(&mut vals) && vals.len() == self.inputs.len() {
            ints.extend(vals.iter().map(Probe::int_key));
            Some(self.decide(ev, &mut vals, &ints))
        } else {
            None
        };
        vals.clear();
        ints.clear();
        ev.row = vals;
        ev.ints = ints;
        output
    }

    fn decide(&self, ev: &mut Evaluator<'_>, vals: &mut [Value], ints: &[Option<i64>]) -> Value {
        let row = Row { vals, ints };
        let valid = self
            .inputs
            .iter()
            .enumerate()
            .all(|(c, inp)| match &inp.allowed {
                Some(allowed) => row.vals[c].is_null() || allowed.matches(ev, &row.probe(c)),
                None => true,
            });
        let (output, matched, fired, defaulted) = if !valid {
            (Value::Null, Rules::None, Rules::None, false)
        } else if self.hit_policy == HitPolicy::First {
            match self.first_match(ev, &row) {
                Some(ri) => match self.rule_output(ev, ri) {
                    Some(v) => (v, Rules::One(ri), Rules::One(ri), false),
                    None => (Value::Null, Rules::One(ri), Rules::None, false),
                },
                None => {
                    let (v, fired, d) = self.apply(ev, &[]);
                    (v, Rules::None, Rules::from_slice(&fired), d)
                }
            }
        } else {
            let matched = self.all_matches(ev, &row);
            let (v, fired, d) = self.apply(ev, &matched);
            (v, Rules::from_slice(&matched), Rules::from_slice(&fired), d)
        };
        if let Some(rec) = ev.trace.as_mut() {
            rec.table(&self.meta, vals, matched, fired, defaulted, &output);
        }
        output
    }

    fn rule_matches(&self, ev: &mut Evaluator<'_>, row: &Row<'_>, rule: &Rule) -> bool {
        rule.cells
            .iter()
            .enumerate()
            .all(|(c, cell)| cell.matches(ev, &row.probe(c)))
    }

    /// FIRST: the first matching rule; matching stops there (so the trace
    /// lists one matched rule).
    fn first_match(&self, ev: &mut Evaluator<'_>, row: &Row<'_>) -> Option<u32> {
        if let Some(index) = &self.index {
            let mut first = None;
            index.for_each_match(&self.rules, ev, row.vals, row.ints, |r| {
                first = Some(r);
                false
            });
            return first;
        }
        self.rules
            .iter()
            .position(|rule| self.rule_matches(ev, row, rule))
            .map(|i| i as u32)
    }

    fn all_matches(&self, ev: &mut Evaluator<'_>, row: &Row<'_>) -> Vec<u32> {
        let mut matched = Vec::new();
        if let Some(index) = &self.index {
            index.for_each_match(&self.rules, ev, row.vals, row.ints, |r| {
                matched.push(r);
                true
            });
            return matched;
        }
        for (ri, rule) in self.rules.iter().enumerate() {
            if self.rule_matches(ev, row, rule) {
                matched.push(ri as u32);
            }
        }
        matched
    }

    /// Evaluates a rule's output entries: a bare value for a single output,
    /// a context for several.
    fn rule_output(&self, ev: &mut Evaluator<'_>, ri: u32) -> Option<Value> {
        let rule = &self.rules[ri as usize];
        if let Some(constant) = &rule.constant {
            return constant.clone();
        }
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
