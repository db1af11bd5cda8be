//! A program: a validated flow ready to run, with its expressions and schemas compiled once and
//! cached, and the environment (secrets, sub-flow resolver, budgets) instances run in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_expr::{Budget, Expr, Template};
use baton_flow::Workflow;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::journal::FlowRef;
use crate::problem::{ErrorKind, Problem};

/// The variables every runtime expression may use, in the order values are passed to jaq.
pub const BASE_VARS: [&str; 8] = [
    "context",
    "input",
    "output",
    "secrets",
    "task",
    "workflow",
    "runtime",
    "authorization",
];

/// Which of [`BASE_VARS`] an expression's source mentions, found once at compile time so that
/// evaluation binds (and copies) only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mentions(u8);

impl Mentions {
    pub fn of(src: &str) -> Mentions {
        let mut bits = 0u8;
        for (i, name) in BASE_VARS.iter().enumerate() {
            if src.contains(&format!("${name}")) {
                bits |= 1 << i;
            }
        }
        Mentions(bits)
    }

    /// Whether `$BASE_VARS[index]` is mentioned.
    pub fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}

/// Limits on one instance's execution (TIGER_STYLE: a limit on everything, units in names).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub expression: Budget,
    pub for_iterations_max: u64,
    pub retry_attempts_max: u32,
    pub listen_events_max: u32,
    pub subflow_depth_max: u32,
    pub effects_per_instance_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            expression: Budget::default(),
            for_iterations_max: 100_000,
            retry_attempts_max: 1000,
            listen_events_max: 10_000,
            subflow_depth_max: 16,
            effects_per_instance_max: 1_000_000,
        }
    }
}

/// Finds the program of a sub-flow (`run: workflow`).
pub trait FlowResolver: Send + Sync {
    fn resolve(&self, namespace: &str, name: &str, version: &str) -> Option<Arc<Program>>;
}

/// A resolver that knows no flows.
pub struct NoFlows;
impl FlowResolver for NoFlows {
    fn resolve(&self, _: &str, _: &str, _: &str) -> Option<Arc<Program>> {
        None
    }
}

/// What the outside world gives every instance.
#[derive(Clone)]
pub struct Env {
    /// `$secrets`: only bound in `input.from` expressions (the spec keeps them out of the rest).
    pub secrets: Value,
    /// `$runtime`.
    pub runtime: Value,
    pub flows: Arc<dyn FlowResolver>,
    pub limits: Limits,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            secrets: Value::Object(Default::default()),
            runtime: serde_json::json!({"name": "baton", "version": env!("CARGO_PKG_VERSION")}),
            flows: Arc::new(NoFlows),
            limits: Limits::default(),
        }
    }
}

/// Parsed expressions or templates by their source text, each with the names it mentions (or
/// why it does not parse), compiled once per program.
type ParseCache<T> = Mutex<HashMap<String, Result<(T, Mentions), String>>>;

/// A compiled flow.
pub struct Program {
    pub flow: FlowRef,
    pub workflow: Workflow,
    /// The definition as parsed JSON (`$workflow.definition`, `$task.definition`).
    pub definition: Value,
    exprs: ParseCache<Expr>,
    templates: ParseCache<Template>,
    schemas: Mutex<HashMap<String, Result<Arc<jsonschema::Validator>, String>>>,
    /// The names in the definition's `call:`s (found once, on first use).
    calls: std::sync::OnceLock<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("flow", &self.flow).finish()
    }
}

/// Content hash of a flow definition's source text.
pub fn flow_hash(source: &str) -> String {
    let d = Sha256::digest(source.as_bytes());
    hex::encode(&d[..16])
}

/// One way an instance's input breaks its flow's input schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputError {
    /// JSON Pointer of the offending value in the input (`""` for the input itself).
    pub pointer: String,
    pub message: String,
}

impl Program {
    /// Builds a program from a validated workflow. `source` is the text it came from (hashed to
    /// identify the version); `definition` the parsed JSON.
    pub fn new(workflow: Workflow, definition: Value, source: &str) -> Program {
        let flow = FlowRef {
            namespace: workflow.document.namespace.clone(),
            name: workflow.document.name.clone(),
            version: workflow.document.version.clone(),
            hash: flow_hash(source),
        };
        Program {
            flow,
            workflow,
            definition,
            exprs: Mutex::default(),
            templates: Mutex::default(),
            schemas: Mutex::default(),
            calls: std::sync::OnceLock::new(),
        }
    }

    /// Whether any task of the flow calls `name` (`call: name`). Lets the runtime skip work at
    /// an instance's end for flows that cannot have claimed or asked anything.
    pub fn calls(&self, name: &str) -> bool {
        self.calls
            .get_or_init(|| {
                let mut found = std::collections::BTreeSet::new();
                let mut stack = vec![&self.definition];
                while let Some(v) = stack.pop() {
                    match v {
                        Value::Object(map) => {
                            if let Some(Value::String(c)) = map.get("call") {
                                found.insert(c.clone());
                            }
                            stack.extend(map.values());
                        }
                        Value::Array(items) => stack.extend(items),
                        _ => {}
                    }
                }
                found
            })
            .contains(name)
    }

    /// Builds a program from JSON (tests and the simulator).
    pub fn from_json(definition: Value) -> Result<Program, String> {
        let workflow: Workflow =
            serde_json::from_value(definition.clone()).map_err(|e| e.to_string())?;
        let source = definition.to_string();
        Ok(Program::new(workflow, definition, &source))
    }

    /// The compiled expression for `src` with the given local variable names.
    pub fn expr(&self, src: &str, locals: &[&str]) -> Result<(Expr, Mentions), Problem> {
        let key = cache_key(src, locals);
        let mut cache = self.exprs.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.entry(key).or_insert_with(|| {
            let mut vars: Vec<&str> = BASE_VARS.to_vec();
            vars.extend_from_slice(locals);
            Expr::compile(src, &vars)
                .map(|e| (e, Mentions::of(src)))
                .map_err(|e| e.to_string())
        });
        entry.clone().map_err(|msg| {
            Problem::new(ErrorKind::Expression, "Expression does not compile")
                .with_detail(format!("`{}`: {msg}", src.trim()))
        })
    }

    /// The compiled template for the value at `pointer` with the given local variable names.
    pub fn template(
        &self,
        pointer: &str,
        value: &Value,
        locals: &[&str],
    ) -> Result<(Template, Mentions), Problem> {
        let key = cache_key(pointer, locals);
        let mut cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.entry(key).or_insert_with(|| {
            let mut vars: Vec<&str> = BASE_VARS.to_vec();
            vars.extend_from_slice(locals);
            Template::compile(value, &vars)
                .map(|t| (t, Mentions::of(&value.to_string())))
                .map_err(|errs| {
                    errs.into_iter()
                        .map(|(p, e)| format!("at {pointer}{p}: {e}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
        });
        entry.clone().map_err(|msg| {
            Problem::new(ErrorKind::Expression, "Expression does not compile").with_detail(msg)
        })
    }

    /// The compiled JSON Schema at `pointer`.
    /// Where `input` breaks the flow's input schema (`input.schema.document`): each error
    /// with the JSON Pointer of the offending value, at most 20. Empty when it fits or the flow
    /// declares no inline schema. Starts check this before anything is durable, so a request
    /// with a bad input is refused with the reasons instead of starting an instance that faults.
    pub fn input_errors(&self, input: &Value) -> Result<Vec<InputError>, Problem> {
        let Some(doc) = self
            .workflow
            .input
            .as_ref()
            .and_then(|f| f.schema.as_ref())
            .and_then(|s| s.document.as_ref())
        else {
            return Ok(Vec::new());
        };
        let validator = self.schema("/input", doc)?;
        Ok(validator
            .iter_errors(input)
            .take(20)
            .map(|e| InputError {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect())
    }

    pub fn schema(
        &self,
        pointer: &str,
        schema: &Value,
    ) -> Result<Arc<jsonschema::Validator>, Problem> {
        let mut cache = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.entry(pointer.to_string()).or_insert_with(|| {
            jsonschema::validator_for(schema)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        entry.clone().map_err(|msg| {
            Problem::new(ErrorKind::Configuration, "Invalid JSON Schema")
                .with_detail(msg)
                .at(pointer)
        })
    }
}

fn cache_key(a: &str, locals: &[&str]) -> String {
    let mut k = String::with_capacity(a.len() + 16);
    for l in locals {
        k.push_str(l);
        k.push(',');
    }
    k.push('|');
    k.push_str(a);
    k
}
