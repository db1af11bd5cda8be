//! Reading DMN XML (1.1 to 1.5; elements are matched by local name so every
//! namespace version is accepted) and compiling it: every FEEL text is parsed
//! here, once. An expression that fails to compile becomes a diagnostic and
//! evaluates to null, so one bad cell does not hide the rest of a model.

use std::collections::HashMap;
use std::sync::Arc;

use roxmltree::Node;

use super::boxed::{Boxed, ContextEntry, FunctionDef, IterKind};
use super::table::{DecisionTable, HitPolicy, Rule, TableInput, TableOutput};
use super::types::{ItemDef, Type, TypeRegistry};
use super::{Bkm, Decision, DmnError, InputData, ModelInner, Service};
use crate::feel::ast::{Expr, UnaryTests};
use crate::feel::cells::Cell;
use crate::feel::parser::{parse_expression, parse_unary_tests};
use crate::feel::value::Value;
use crate::trace::TableMeta;

/// Documents larger than this are rejected before parsing.
pub const MODEL_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Elements nested deeper than this are rejected: compiling, evaluating and
/// dropping nested boxed expressions and item definitions recurse, and a
/// hostile document must not exhaust the stack. Real models nest a few tens
/// of levels.
pub const XML_DEPTH_MAX: usize = 128;

/// The depth of the most deeply nested element (iteratively).
fn max_depth(root: Node<'_, '_>) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((n, d)) = stack.pop() {
        deepest = deepest.max(d);
        if d > XML_DEPTH_MAX {
            break;
        }
        stack.extend(n.children().filter(|c| c.is_element()).map(|c| (c, d + 1)));
    }
    deepest
}

const EXPRESSION_KINDS: &[&str] = &[
    "literalExpression",
    "decisionTable",
    "context",
    "invocation",
    "functionDefinition",
    "relation",
    "list",
    "conditional",
    "for",
    "some",
    "every",
    "filter",
];

struct Compiler {
    names: Vec<Arc<str>>,
    types: TypeRegistry,
    diagnostics: Vec<DmnError>,
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i: 'a>(n: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(n: Node<'_, '_>) -> String {
    child(n, "text")
        .and_then(|t| t.text())
        .unwrap_or("")
        .to_string()
}

fn expression_child<'a, 'i>(n: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && EXPRESSION_KINDS.contains(&c.tag_name().name()))
}

/// The id of `n` or of its nearest ancestor that has one, for error messages.
fn element_id(n: Node<'_, '_>) -> String {
    n.ancestors()
        .find_map(|a| a.attribute("id"))
        .unwrap_or("?")
        .to_string()
}

fn href_id(n: Node<'_, '_>) -> Option<String> {
    n.attribute("href")
        .map(|h| h.rsplit('#').next().unwrap_or(h).to_string())
}

impl Compiler {
    /// The model's own `Arc` for a declared name (a fresh one otherwise).
    fn canonical(&self, name: &str) -> Arc<str> {
        match self.names.iter().find(|n| &***n == name) {
            Some(n) => n.clone(),
            None => Arc::from(name),
        }
    }

    fn expr(&mut self, n: Node<'_, '_>, text: &str) -> Expr {
        match parse_expression(text, &self.names) {
            Ok(e) => e,
            Err(error) => {
                self.diagnostics.push(DmnError::Feel {
                    element: element_id(n),
                    expression: text.trim().to_string(),
                    error,
                });
                Expr::Const(Value::Null)
            }
        }
    }

    fn tests(&mut self, n: Node<'_, '_>, text: &str) -> UnaryTests {
        match parse_unary_tests(text, &self.names) {
            Ok(t) => t,
            Err(error) => {
                self.diagnostics.push(DmnError::Feel {
                    element: element_id(n),
                    expression: text.trim().to_string(),
                    error,
                });
                // An entry that cannot be read must never match.
                UnaryTests::Not(Vec::new())
            }
        }
    }

    fn type_ref(&self, n: Node<'_, '_>) -> Option<Type> {
        n.attribute("typeRef")
            .map(|t| self.types.resolve(t))
            .filter(|t| !matches!(t, Type::Any))
    }

    fn boxed_child(&mut self, n: Node<'_, '_>) -> Boxed {
        match expression_child(n) {
            Some(e) => self.boxed(e),
            None => Boxed::Empty,
        }
    }

    fn boxed(&mut self, n: Node<'_, '_>) -> Boxed {
        match n.tag_name().name() {
            "literalExpression" => {
                let text = text_of(n);
                if text.trim().is_empty() {
                    Boxed::Empty
                } else {
                    Boxed::Literal(self.expr(n, &text))
                }
            }
            "decisionTable" => self.table(n),
            "context" => Boxed::Context(
                children(n, "contextEntry")
                    .map(|e| {
                        let var = child(e, "variable");
                        ContextEntry {
                            name: var.and_then(|v| v.attribute("name")).map(Arc::from),
                            ty: var.and_then(|v| self.type_ref(v)),
                            value: self.boxed_child(e),
                        }
                    })
                    .collect(),
            ),
            "invocation" => {
                let callee = match expression_child(n) {
                    Some(c) => self.expr(c, &text_of(c)),
                    None => Expr::Const(Value::Null),
                };
                let bindings = children(n, "binding")
                    .map(|b| {
                        let name = child(b, "parameter")
                            .and_then(|p| p.attribute("name"))
                            .unwrap_or("");
                        (Arc::from(name), self.boxed_child(b))
                    })
                    .collect();
                Boxed::Invocation { callee, bindings }
            }
            "functionDefinition" => Boxed::Function(Arc::new(self.function(n))),
            "relation" => {
                let columns: Vec<Arc<str>> = children(n, "column")
                    .map(|c| Arc::from(c.attribute("name").unwrap_or("")))
                    .collect();
                let rows = children(n, "row")
                    .map(|r| {
                        r.children()
                            .filter(|c| {
                                c.is_element() && EXPRESSION_KINDS.contains(&c.tag_name().name())
                            })
                            .map(|c| self.boxed(c))
                            .collect()
                    })
                    .collect();
                Boxed::Relation { columns, rows }
            }
            "list" => Boxed::List(
                n.children()
                    .filter(|c| c.is_element() && EXPRESSION_KINDS.contains(&c.tag_name().name()))
                    .map(|c| self.boxed(c))
                    .collect(),
            ),
            "conditional" => {
                let part = |s: &mut Self, name: &str| {
                    child(n, name)
                        .map(|p| s.boxed_child(p))
                        .unwrap_or(Boxed::Empty)
                };
                let parts = [part(self, "if"), part(self, "then"), part(self, "else")];
                Boxed::Conditional(Box::new(parts))
            }
            kind @ ("for" | "some" | "every") => {
                let var = Arc::from(n.attribute("iteratorVariable").unwrap_or("item"));
                let source = child(n, "in")
                    .map(|p| self.boxed_child(p))
                    .unwrap_or(Boxed::Empty);
                let body_name = if kind == "for" { "return" } else { "satisfies" };
                let body = child(n, body_name)
                    .map(|p| self.boxed_child(p))
                    .unwrap_or(Boxed::Empty);
                let kind = match kind {
                    "for" => IterKind::For,
                    "some" => IterKind::Some,
                    _ => IterKind::Every,
                };
                Boxed::Iterate {
                    kind,
                    var,
                    source: Box::new(source),
                    body: Box::new(body),
                }
            }
            "filter" => {
                let source = child(n, "in")
                    .map(|p| self.boxed_child(p))
                    .unwrap_or(Boxed::Empty);
                let cond = child(n, "match")
                    .map(|p| self.boxed_child(p))
                    .unwrap_or(Boxed::Empty);
                Boxed::Filter {
                    source: Box::new(source),
                    cond: Box::new(cond),
                }
            }
            _ => Boxed::Empty,
        }
    }

    fn function(&mut self, n: Node<'_, '_>) -> FunctionDef {
        let params: Vec<(Arc<str>, Option<Type>)> = children(n, "formalParameter")
            .map(|p| {
                (
                    Arc::from(p.attribute("name").unwrap_or("")),
                    self.type_ref(p),
                )
            })
            .collect();
        let names = params.iter().map(|p| p.0.clone()).collect();
        let feel = n.attribute("kind").is_none_or(|k| k == "FEEL");
        // The result type: the function's own, else that of its body
        // expression (a literal expression's `typeRef`).
        let result = self
            .type_ref(n)
            .or_else(|| expression_child(n).and_then(|b| self.type_ref(b)));
        FunctionDef {
            params,
            names,
            body: self.boxed_child(n),
            result,
            feel,
        }
    }

    fn table(&mut self, n: Node<'_, '_>) -> Boxed {
        let id: Arc<str> = Arc::from(n.attribute("id").unwrap_or(""));
        let hit_policy =
            match HitPolicy::parse(n.attribute("hitPolicy"), n.attribute("aggregation")) {
                Some(h) => h,
                None => {
                    self.diagnostics.push(DmnError::Model {
                        element: element_id(n),
                        message: "unknown hit policy".into(),
                    });
                    return Boxed::Empty;
                }
            };
        let mut inputs = Vec::new();
        let mut input_names = Vec::new();
        for i in children(n, "input") {
            let ie = child(i, "inputExpression");
            let text = ie.map(text_of).unwrap_or_default();
            input_names.push(Arc::from(i.attribute("label").unwrap_or(text.trim())));
            let mut expr = self.expr(ie.unwrap_or(i), &text);
            // Share the declared name's allocation so that scope lookups
            // usually match on the pointer.
            if let Expr::Name(name) = &mut expr {
                *name = self.canonical(name);
            }
            let allowed =
                child(i, "inputValues").map(|v| Cell::compile(self.tests(v, &text_of(v))));
            inputs.push(TableInput { expr, allowed });
        }
        let outputs_xml: Vec<Node<'_, '_>> = children(n, "output").collect();
        let single_name = n
            .ancestors()
            .find_map(|a| child(a, "variable").and_then(|v| v.attribute("name")))
            .map(Arc::from);
        let mut outputs = Vec::new();
        for (oi, o) in outputs_xml.iter().enumerate() {
            let (priorities, allowed) = match child(*o, "outputValues") {
                Some(v) => {
                    let t = self.tests(v, &text_of(v));
                    (literal_values(&t), Some(Cell::compile(t)))
                }
                None => (Vec::new(), None),
            };
            let default = child(*o, "defaultOutputEntry").map(|d| self.expr(d, &text_of(d)));
            outputs.push(TableOutput {
                name: Some(
                    o.attribute("name")
                        .map(Arc::from)
                        .unwrap_or_else(|| Arc::from(format!("output{}", oi + 1))),
                ),
                priorities,
                allowed,
                default,
                ty: self.type_ref(*o),
            });
        }
        let mut rules = Vec::new();
        let mut rule_ids = Vec::new();
        for r in children(n, "rule") {
            rule_ids.push(Arc::from(r.attribute("id").unwrap_or("")));
            let entries: Vec<UnaryTests> = children(r, "inputEntry")
                .map(|e| self.tests(e, &text_of(e)))
                .collect();
            let outs: Vec<Expr> = children(r, "outputEntry")
                .map(|e| self.expr(e, &text_of(e)))
                .collect();
            if entries.len() != inputs.len() || outs.len() != outputs.len() {
                self.diagnostics.push(DmnError::Model {
                    element: r.attribute("id").unwrap_or("?").to_string(),
                    message: format!("rule has {} input and {} output entries; the table has {} inputs and {} outputs", entries.len(), outs.len(), inputs.len(), outputs.len()),
                });
                return Boxed::Empty;
            }
            rules.push(Rule {
                cells: entries.into_iter().map(Cell::compile).collect(),
                outputs: outs,
                constant: None,
            });
        }
        let mut table = DecisionTable {
            meta: Arc::new(TableMeta {
                id,
                hit_policy: hit_policy.name(),
                input_names: input_names.into(),
                rule_ids: rule_ids.into(),
            }),
            hit_policy,
            inputs,
            outputs,
            rules,
            single_output_name: single_name,
            index: None,
        };
        table.precompute();
        Boxed::Table(Box::new(table))
    }
}

/// `outputValues` entries that are plain literals, in order.
fn literal_values(t: &UnaryTests) -> Vec<Value> {
    match t {
        UnaryTests::Tests(ts) => ts
            .iter()
            .filter_map(|t| {
                if let Expr::Const(v) = &t.expr {
                    Some(v.clone())
                } else {
                    None
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn item_def(c: &mut Compiler, n: Node<'_, '_>) -> ItemDef {
    ItemDef {
        name: Arc::from(n.attribute("name").unwrap_or("")),
        type_ref: child(n, "typeRef")
            .and_then(|t| t.text())
            .map(|t| t.trim().to_string()),
        is_collection: n.attribute("isCollection") == Some("true"),
        components: children(n, "itemComponent")
            .map(|ic| item_def(c, ic))
            .collect(),
        allowed: child(n, "allowedValues").map(|v| Arc::new(c.tests(v, &text_of(v)))),
        function: child(n, "functionItem").is_some(),
    }
}

/// Parses and compiles a DMN document.
pub fn parse_model(xml: &str) -> Result<ModelInner, DmnError> {
    if xml.len() > MODEL_BYTES_MAX {
        return Err(DmnError::Xml {
            message: format!(
                "model is {} bytes; the limit is {MODEL_BYTES_MAX}",
                xml.len()
            ),
        });
    }
    let doc = roxmltree::Document::parse(xml).map_err(|e| DmnError::Xml {
        message: e.to_string(),
    })?;
    let root = doc.root_element();
    if max_depth(root) > XML_DEPTH_MAX {
        return Err(DmnError::Xml {
            message: format!("elements are nested deeper than {XML_DEPTH_MAX} levels"),
        });
    }
    if root.tag_name().name() != "definitions" {
        return Err(DmnError::Xml {
            message: format!("expected <definitions>, found <{}>", root.tag_name().name()),
        });
    }
    let mut names: Vec<Arc<str>> = Vec::new();
    for n in root.descendants().filter(|n| n.is_element()) {
        for attr in ["name", "iteratorVariable", "label"] {
            if let Some(v) = n.attribute(attr) {
                let v = Arc::from(v.trim());
                if !names.contains(&v) {
                    names.push(v);
                }
            }
        }
    }
    let mut c = Compiler {
        names,
        types: TypeRegistry::default(),
        diagnostics: Vec::new(),
    };
    for it in children(root, "itemDefinition") {
        let def = item_def(&mut c, it);
        c.types.defs.insert(def.name.to_string(), def);
    }

    let mut ids: HashMap<String, (char, usize)> = HashMap::new();
    let mut inputs = Vec::new();
    for n in children(root, "inputData") {
        ids.insert(
            n.attribute("id").unwrap_or("").to_string(),
            ('i', inputs.len()),
        );
        let var = child(n, "variable");
        inputs.push(InputData {
            name: c.canonical(n.attribute("name").unwrap_or("")),
            ty: var.and_then(|v| c.type_ref(v)),
        });
    }
    let decision_nodes: Vec<Node<'_, '_>> = children(root, "decision").collect();
    for (i, n) in decision_nodes.iter().enumerate() {
        ids.insert(n.attribute("id").unwrap_or("").to_string(), ('d', i));
    }
    let mut bkms = Vec::new();
    for n in children(root, "businessKnowledgeModel") {
        let def = match child(n, "encapsulatedLogic") {
            Some(l) => c.function(l),
            None => FunctionDef {
                params: Vec::new(),
                names: Vec::new(),
                body: Boxed::Empty,
                result: None,
                feel: true,
            },
        };
        bkms.push(Bkm {
            name: Arc::from(n.attribute("name").unwrap_or("")),
            def: Arc::new(def),
        });
    }
    let mut decisions = Vec::new();
    for n in &decision_nodes {
        let mut req_decisions = Vec::new();
        let mut req_inputs = Vec::new();
        for r in children(*n, "informationRequirement") {
            let target = child(r, "requiredDecision")
                .or_else(|| child(r, "requiredInput"))
                .and_then(href_id);
            match target.and_then(|t| ids.get(&t)) {
                Some(('d', i)) => req_decisions.push(*i),
                Some((_, i)) => req_inputs.push(*i),
                None => {}
            }
        }
        let var = child(*n, "variable");
        decisions.push(Decision {
            id: Arc::from(n.attribute("id").unwrap_or("")),
            name: Arc::from(n.attribute("name").unwrap_or("")),
            ty: var.and_then(|v| c.type_ref(v)),
            req_decisions,
            req_inputs,
            body: c.boxed_child(*n),
            direct: None,
        });
    }
    for d in &mut decisions {
        d.plan_direct(&inputs);
    }
    let mut services = Vec::new();
    for n in children(root, "decisionService") {
        let refs = |name: &str, kind: char| -> Vec<usize> {
            children(n, name)
                .filter_map(href_id)
                .filter_map(|h| ids.get(&h))
                .filter(|(k, _)| *k == kind)
                .map(|(_, i)| *i)
                .collect()
        };
        let outputs = refs("outputDecision", 'd');
        let input_decisions = refs("inputDecision", 'd');
        let input_data = refs("inputData", 'i');
        // Parameters: input data first, then input decisions.
        let mut params: Vec<Arc<str>> =
            input_data.iter().map(|&i| inputs[i].name.clone()).collect();
        params.extend(input_decisions.iter().map(|&i| decisions[i].name.clone()));
        services.push(Service {
            name: Arc::from(n.attribute("name").unwrap_or("")),
            outputs,
            input_decisions,
            input_data,
            params,
        });
    }
    let mut model = ModelInner {
        name: root.attribute("name").unwrap_or("").to_string(),
        namespace: root.attribute("namespace").unwrap_or("").to_string(),
        decisions,
        inputs,
        bkms,
        services,
        types: c.types,
        diagnostics: c.diagnostics,
        json_constants: Vec::new(),
    };
    model.cache_json_constants();
    Ok(model)
}
