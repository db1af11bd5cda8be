//! Decisions in flows and on the command line: the `decide` function (`call: decide` with
//! `with: {model, decision, input}`) and `baton decide`.
//!
//! `model` is a path to a DMN file (relative to the working directory); parsed models are cached
//! by path. The function is local (pure computation): its output and trace are journaled like any
//! effect result, so a resumed instance never re-evaluates a decision it already took.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::{ErrorKind, Outcome, Problem};
use baton_decision::DecisionModel;
use baton_runtime::{Function, FunctionResult};
use serde_json::Value;

#[derive(Default)]
pub struct Decide {
    models: Mutex<HashMap<String, Arc<DecisionModel>>>,
}

fn config(msg: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::Configuration, msg)
}

impl Decide {
    fn model(&self, path: &str) -> Result<Arc<DecisionModel>, Problem> {
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
        let model = Arc::new(DecisionModel::parse(&xml).map_err(|e| {
            config(format!("invalid DMN model `{path}`")).with_detail(e.to_string())
        })?);
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
        let model = self.model(path)?;
        let eval = model.evaluate(decision, &input, true).map_err(|e| {
            Problem::new(
                ErrorKind::Validation,
                format!("decision `{decision}` failed"),
            )
            .with_detail(e.to_string())
        })?;
        serde_json::to_value(&eval).map_err(|e| {
            Problem::new(ErrorKind::Runtime, "cannot encode the decision")
                .with_detail(e.to_string())
        })
    }
}

impl Function for Decide {
    fn is_local(&self) -> bool {
        true
    }
    fn call(&self, args: Value, _key: &str) -> FunctionResult {
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
