//! The explanation of an evaluation: which decisions ran, what each decision
//! table saw, which rules matched and which fired under the hit policy.
//!
//! The JSON form is stable (documented in DESIGN.md): field names are
//! `snake_case`, rule indexes are 1-based as in DMN tooling, and values are
//! rendered with the same JSON mapping as decision outputs.

use serde::{Deserialize, Serialize};

/// The trace of one `evaluate` call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The decision that was asked for.
    pub decision: String,
    /// Every decision evaluated, required decisions first, in evaluation order.
    pub decisions: Vec<DecisionTrace>,
}

/// One evaluated decision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionTrace {
    pub id: String,
    pub name: String,
    /// The decision's result (after type coercion).
    pub output: serde_json::Value,
    /// Decision tables evaluated for this decision (its own, and those of
    /// business knowledge models it invoked), in evaluation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableTrace>,
}

/// One decision table evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableTrace {
    /// The `decisionTable` element id.
    pub id: String,
    /// Hit policy as written in DMN (`UNIQUE`, `FIRST`, `COLLECT SUM`, ...).
    pub hit_policy: String,
    /// Input column values, in column order.
    pub inputs: Vec<InputTrace>,
    /// Rules whose input entries all matched.
    pub matched: Vec<RuleRef>,
    /// Rules whose outputs make up the result under the hit policy.
    pub fired: Vec<RuleRef>,
    /// Whether the default output values were used (no rule matched).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub defaulted: bool,
    pub output: serde_json::Value,
}

/// An input column and the value it evaluated to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputTrace {
    /// The input expression text (or label when given).
    pub input: String,
    pub value: serde_json::Value,
}

/// A rule, by 1-based position and `id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    pub index: usize,
    pub id: String,
}
