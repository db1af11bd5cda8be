//! The explanation of an evaluation: which decisions ran, what each decision
//! table saw, which rules matched and which fired under the hit policy.
//!
//! Recording is cheap: during evaluation the trace keeps rule indexes, the
//! table input values (moved, not copied) and shared references to the
//! compiled model. The explicit form ([`Trace::decisions`], the JSON of
//! [`Trace`]'s `Serialize`) is built only when asked for.
//!
//! The JSON form is stable (documented in DESIGN.md): field names are
//! `snake_case`, rule indexes are 1-based as in DMN tooling, and values are
//! rendered with the same JSON mapping as decision outputs.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dmn::ModelInner;
use crate::feel::Value;

/// The trace of one `evaluate` call.
#[derive(Clone)]
pub struct Trace {
    /// The decision that was asked for.
    decision: Arc<str>,
    model: Arc<ModelInner>,
    rec: Recorder,
}

/// One evaluated decision (explicit form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionTrace {
    pub id: Arc<str>,
    pub name: Arc<str>,
    /// The decision's result (after type coercion).
    pub output: TraceValue,
    /// Decision tables evaluated for this decision (its own, and those of
    /// business knowledge models it invoked), in evaluation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableTrace>,
}

/// One decision table evaluation (explicit form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableTrace {
    /// The `decisionTable` element id.
    pub id: Arc<str>,
    /// Hit policy as written in DMN (`UNIQUE`, `FIRST`, `COLLECT SUM`, ...).
    pub hit_policy: Cow<'static, str>,
    /// Input column values, in column order.
    pub inputs: Vec<InputTrace>,
    /// Rules whose input entries all matched.
    pub matched: Vec<RuleRef>,
    /// Rules whose outputs make up the result under the hit policy.
    pub fired: Vec<RuleRef>,
    /// Whether the default output values were used (no rule matched).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub defaulted: bool,
    pub output: TraceValue,
}

/// An input column and the value it evaluated to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTrace {
    /// The input expression text (or label when given).
    pub input: Arc<str>,
    pub value: TraceValue,
}

/// A rule, by 1-based position and `id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub index: usize,
    pub id: Arc<str>,
}

/// A FEEL value inside a trace; serialises with the crate's JSON mapping
/// (see `json`).
#[derive(Clone, Debug, Default)]
pub struct TraceValue(pub Value);

impl TraceValue {
    pub fn to_json(&self) -> serde_json::Value {
        crate::json::to_json(&self.0)
    }
}

impl PartialEq for TraceValue {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl Serialize for TraceValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::json::serialize_value(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for TraceValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = serde_json::Value::deserialize(d)?;
        Ok(TraceValue(crate::json::from_json(&j)))
    }
}

/// What a trace shows of a decision table, shared by every evaluation of
/// that table.
#[derive(Debug)]
pub(crate) struct TableMeta {
    pub id: Arc<str>,
    pub hit_policy: &'static str,
    /// Input column captions.
    pub input_names: Box<[Arc<str>]>,
    pub rule_ids: Box<[Arc<str>]>,
}

impl TableMeta {
    fn rule(&self, i: u32) -> RuleRef {
        RuleRef {
            index: i as usize + 1,
            id: self
                .rule_ids
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| Arc::from("")),
        }
    }
}

/// Rule indexes (0-based) of one table evaluation. One rule, the common
/// case, needs no allocation.
#[derive(Clone, Debug)]
pub(crate) enum Rules {
    None,
    One(u32),
    Many(Box<[u32]>),
}

impl Rules {
    pub fn from_slice(rules: &[u32]) -> Rules {
        match rules {
            [] => Rules::None,
            [r] => Rules::One(*r),
            many => Rules::Many(many.into()),
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Rules::None => &[],
            Rules::One(r) => std::slice::from_ref(r),
            Rules::Many(rs) => rs,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// A table evaluation; its input values are `values[previous end ..
    /// values_end]`.
    Table {
        meta: Arc<TableMeta>,
        values_end: u32,
        matched: Rules,
        fired: Rules,
        defaulted: bool,
        output: Value,
    },
    /// A decision finished; the table entries since the previous decision
    /// entry are its tables (required decisions finish before a decision's
    /// own body runs, so they never interleave).
    Decision { idx: u32, output: Value },
}

/// The compact record an evaluator fills while a trace is on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorder {
    pub entries: Vec<Entry>,
    pub values: Vec<Value>,
}

impl Recorder {
    /// Records a table evaluation, moving its input values.
    pub fn table(
        &mut self,
        meta: &Arc<TableMeta>,
        inputs: &mut [Value],
        matched: Rules,
        fired: Rules,
        defaulted: bool,
        output: &Value,
    ) {
        self.values.extend(inputs.iter_mut().map(std::mem::take));
        self.entries.push(Entry::Table {
            meta: meta.clone(),
            values_end: self.values.len() as u32,
            matched,
            fired,
            defaulted,
            output: output.clone(),
        });
    }

    pub fn decision(&mut self, idx: usize, output: &Value) {
        self.entries.push(Entry::Decision {
            idx: idx as u32,
            output: output.clone(),
        });
    }
}

impl Trace {
    pub(crate) fn new(decision: Arc<str>, model: Arc<ModelInner>, rec: Recorder) -> Trace {
        Trace {
            decision,
            model,
            rec,
        }
    }

    /// The decision that was asked for.
    pub fn decision(&self) -> &str {
        &self.decision
    }

    /// Every decision evaluated, required decisions first, in evaluation
    /// order, with the tables each evaluated.
    pub fn decisions(&self) -> Vec<DecisionTrace> {
        let mut out = Vec::new();
        let mut tables = Vec::new();
        let mut values_start = 0usize;
        for e in &self.rec.entries {
            match e {
                Entry::Table {
                    meta,
                    values_end,
                    matched,
                    fired,
                    defaulted,
                    output,
                } => {
                    let end = *values_end as usize;
                    let values = &self.rec.values[values_start..end];
                    values_start = end;
                    tables.push(TableTrace {
                        id: meta.id.clone(),
                        hit_policy: Cow::Borrowed(meta.hit_policy),
                        inputs: meta
                            .input_names
                            .iter()
                            .zip(values)
                            .map(|(n, v)| InputTrace {
                                input: n.clone(),
                                value: TraceValue(v.clone()),
                            })
                            .collect(),
                        matched: matched.as_slice().iter().map(|&r| meta.rule(r)).collect(),
                        fired: fired.as_slice().iter().map(|&r| meta.rule(r)).collect(),
                        defaulted: *defaulted,
                        output: TraceValue(output.clone()),
                    });
                }
                Entry::Decision { idx, output } => {
                    let d = &self.model.decisions[*idx as usize];
                    out.push(DecisionTrace {
                        id: d.id.clone(),
                        name: d.name.clone(),
                        output: TraceValue(output.clone()),
                        tables: std::mem::take(&mut tables),
                    });
                }
            }
        }
        out
    }

    /// The trace's JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn explicit(&self) -> ExplicitTrace<'_> {
        ExplicitTrace {
            decision: &self.decision,
            decisions: self.decisions(),
        }
    }
}

/// The serialised shape of a trace.
#[derive(Debug, PartialEq, Serialize)]
struct ExplicitTrace<'a> {
    decision: &'a str,
    decisions: Vec<DecisionTrace>,
}

impl Serialize for Trace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.explicit().serialize(s)
    }
}

impl PartialEq for Trace {
    fn eq(&self, other: &Self) -> bool {
        self.explicit() == other.explicit()
    }
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.explicit().fmt(f)
    }
}
