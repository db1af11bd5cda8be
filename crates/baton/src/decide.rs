//! Decisions in flows and on the command line: the `decide` function (`call: decide` with
//! `with: {model, decision, input}`) and `baton decide`.
//!
//! `model` is a path to a DMN file (relative to the working directory); parsed models are cached
//! by path. The function is local (pure computation): its output and trace are journaled like any
//! effect result, so a resumed instance never re-evaluates a decision it already took.
//!
//! The answer also names the decision's version — `model: {file, hash, name}`, the hash being
//! the file's content hash in the form flow hashes take — and, under `annotations`, what the
//! author wrote beside each rule that fired, so a decision record read from the journal says
//! which table decided and why without the file at hand.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::{ErrorKind, Outcome, Problem};
use baton_decision::DecisionModel;
use baton_engine::{Function, FunctionResult};
use serde_json::Value;

/// A parsed model with what decision records need to name it.
struct Loaded {
    model: DecisionModel,
    hash: String,
    annotations: std::collections::BTreeMap<String, String>,
}

/// The name flows call it by (`call: decide`), as in the core's table of built-ins.
pub const DECIDE_FUNCTION: &str = "decide";

#[derive(Default)]
pub struct Decide {
    models: Mutex<HashMap<String, Arc<Loaded>>>,
}

fn config(msg: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::Configuration, msg)
}

impl Decide {
    fn model(&self, path: &str) -> Result<Arc<Loaded>, Problem> {
        if let Some(m) = self
            .models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            return Ok(m.clone());
        }
        let xml = std::fs::read_to_string(path).map_err(|e| {
            config(format!("cannot read DMN model `{path}`")).with_detail(e.to_string())
        })?;
        let model = Arc::new(Loaded {
            model: DecisionModel::parse(&xml).map_err(|e| {
                config(format!("invalid DMN model `{path}`")).with_detail(e.to_string())
            })?,
            hash: baton_core::flow_hash(&xml),
            annotations: baton_decision::rule_annotations(&xml),
        });
        self.models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string(), model.clone());
        Ok(model)
    }

    fn evaluate(&self, args: &Value) -> Result<Value, Problem> {
        let path = args
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| config("`decide` needs a string `with.model` (path to a DMN file)"))?;
        let decision = args
            .get("decision")
            .and_then(Value::as_str)
            .ok_or_else(|| config("`decide` needs a string `with.decision`"))?;
        let input = args
            .get("input")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let loaded = self.model(path)?;
        let eval = loaded.model.evaluate(decision, &input, true).map_err(|e| {
            Problem::new(
                ErrorKind::Validation,
                format!("decision `{decision}` failed"),
            )
            .with_detail(e.to_string())
        })?;
        let mut value = serde_json::to_value(&eval).map_err(|e| {
            Problem::new(ErrorKind::Runtime, "cannot encode the decision")
                .with_detail(e.to_string())
        })?;
        value["model"] = serde_json::json!({
            "file": path,
            "hash": loaded.hash,
            "name": loaded.model.name(),
        });
        let fired = fired_rule_ids(&value["trace"]);
        let annotations: serde_json::Map<String, Value> = loaded
            .annotations
            .iter()
            .filter(|(id, _)| fired.contains(id))
            .map(|(id, a)| (id.clone(), Value::String(a.clone())))
            .collect();
        if !annotations.is_empty() {
            value["annotations"] = Value::Object(annotations);
        }
        Ok(value)
    }
}

/// The ids of the rules that fired anywhere in a trace.
fn fired_rule_ids(trace: &Value) -> Vec<String> {
    trace["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["tables"].as_array().into_iter().flatten())
        .flat_map(|t| t["fired"].as_array().into_iter().flatten())
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

impl Function for Decide {
    fn is_local(&self) -> bool {
        true
    }
    fn invoke(&self, _call: baton_engine::Call<'_>, args: Value) -> FunctionResult {
        let result = self.evaluate(&args);
        Box::pin(async move {
            match result {
                Ok(v) => Outcome::ok(v),
                Err(p) => Outcome::failed(p),
            }
        })
    }
}

/// `baton decide MODEL --decision NAME --input JSON [--trace]`.
pub fn cli(model: &Path, decision: &str, input: &Value, trace: bool) -> anyhow::Result<Value> {
    let xml = std::fs::read_to_string(model)?;
    let model = DecisionModel::parse(&xml)
        .map_err(|e| anyhow::anyhow!("invalid DMN model {}: {e}", model.display()))?;
    let eval = model
        .evaluate(decision, input, trace)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(serde_json::to_value(&eval)?)
}
