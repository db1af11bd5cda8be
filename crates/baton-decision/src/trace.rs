//! The explanation of an evaluation: which decisions ran, what each decision
//! table saw, which rules matched and which fired under the hit policy.
//!
//! The JSON form is stable (documented in DESIGN.md): field names are
//! `snake_case`, rule indexes are 1-based as in DMN tooling, and values are
//! rendered with the same JSON mapping as decision outputs.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::feel::Value;

/// The trace of one `evaluate` call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The decision that was asked for.
    pub decision: Arc<str>,
    /// Every decision evaluated, required decisions first, in evaluation order.
    pub decisions: Vec<DecisionTrace>,
}

/// One evaluated decision.
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

/// One decision table evaluation.
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

/// A FEEL value inside a trace. It is kept as a FEEL value (recording a
/// trace costs reference-count bumps, not JSON conversion) and serialises
/// with the crate's JSON mapping (see `json`).
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
