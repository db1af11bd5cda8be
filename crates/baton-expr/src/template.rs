//! JSON values with embedded runtime expressions (`set`, call `with`, emit data, ...).

use std::sync::Arc;

use serde_json::Value;

use crate::error::{CompileError, ExprError};
use crate::{Budget, Expr, strip_strict};

/// A JSON value in which every string that is a strict `${...}` expression is evaluated;
/// everything else is literal. Cheap to clone.
#[derive(Clone)]
pub struct Template {
    root: Arc<Node>,
}

enum Node {
    /// A subtree without expressions, kept as it is.
    Const(Value),
    Expr(Expr),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Template {
    /// Compile all expressions in `value`. On failure, returns every bad expression with the
    /// JSON Pointer of its string relative to `value` (`""` for the root, `"/a/0/b"`, ...).
    pub fn compile(value: &Value, vars: &[&str]) -> Result<Template, Vec<(String, CompileError)>> {
        let mut errors = Vec::new();
        let mut pointer = String::new();
        let root = node(value, vars, &mut pointer, &mut errors);
        if errors.is_empty() {
            Ok(Template {
                root: Arc::new(root),
            })
        } else {
            Err(errors)
        }
    }

    /// Whether the template contains no expression (evaluation just clones it).
    pub fn is_constant(&self) -> bool {
        matches!(*self.root, Node::Const(_))
    }

    /// Evaluate every expression with `input` as `.` and `values` bound to the variables.
    ///
    /// Each expression takes its first output (`null` if none). The expressions share one step
    /// allowance: each starts with what the previous ones left.
    pub fn eval(
        &self,
        input: &Value,
        values: &[Value],
        budget: &Budget,
    ) -> Result<Value, ExprError> {
        let mut steps_left = budget.steps_max;
        eval_node(&self.root, input, values, budget, &mut steps_left)
    }
}

fn node(
    value: &Value,
    vars: &[&str],
    pointer: &mut String,
    errors: &mut Vec<(String, CompileError)>,
) -> Node {
    match value {
        Value::String(s) => match strip_strict(s) {
            Some(src) => match Expr::compile(src, vars) {
                Ok(expr) => Node::Expr(expr),
                Err(e) => {
                    errors.push((pointer.clone(), e));
                    Node::Const(Value::Null)
                }
            },
            None => Node::Const(value.clone()),
        },
        Value::Array(items) => {
            let nodes: Vec<Node> = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    let n = node(v, vars, pointer, errors);
                    pointer.truncate(len);
                    n
                })
                .collect();
            if nodes.iter().all(|n| matches!(n, Node::Const(_))) {
                Node::Const(value.clone())
            } else {
                Node::Array(nodes)
            }
        }
        Value::Object(entries) => {
            let nodes: Vec<(String, Node)> = entries
                .iter()
                .map(|(k, v)| {
                    let len = pointer.len();
                    pointer.push('/');
                    // RFC 6901 escaping.
                    pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    let n = node(v, vars, pointer, errors);
                    pointer.truncate(len);
                    (k.clone(), n)
                })
                .collect();
            if nodes.iter().all(|(_, n)| matches!(n, Node::Const(_))) {
                Node::Const(value.clone())
            } else {
                Node::Object(nodes)
            }
        }
        _ => Node::Const(value.clone()),
    }
}

fn eval_node(
    node: &Node,
    input: &Value,
    values: &[Value],
    budget: &Budget,
    steps_left: &mut u64,
) -> Result<Value, ExprError> {
    Ok(match node {
        Node::Const(v) => v.clone(),
        Node::Expr(expr) => {
            let remaining = Budget {
                steps_max: *steps_left,
                ..*budget
            };
            let outcome = expr
                .run(input, values, &remaining, true)
                .map_err(|e| match e {
                    // Report the template's limit, not what was left of it.
                    ExprError::Budget { what, .. } if what == "steps" => ExprError::Budget {
                        what,
                        limit: budget.steps_max,
                    },
                    e => e,
                })?;
            *steps_left = steps_left.saturating_sub(outcome.steps);
            outcome.outputs.into_iter().next().unwrap_or(Value::Null)
        }
        Node::Array(nodes) => Value::Array(
            nodes
                .iter()
                .map(|n| eval_node(n, input, values, budget, steps_left))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, n) in entries {
                map.insert(k.clone(), eval_node(n, input, values, budget, steps_left)?);
            }
            Value::Object(map)
        }
    })
}
