//! Validation against the pinned Serverless Workflow 1.0.3 JSON Schema, with errors reduced to
//! one readable diagnostic per problem.
//!
//! The schema models a task as a `oneOf` over twelve kinds (and a call as a `oneOf` over seven
//! call types), so a single typo yields dozens of branch failures from the validator. We pick the
//! branch the author meant (from the task's kind key, or the only branch whose discriminating
//! property matched) and report that branch's errors only.
//!
//! The schema is also applied one task at a time rather than to the whole document at once: a
//! failing `oneOf` evaluates every branch, and since both the `do` and the `for` branch descend
//! into a nested `do`, a validator given the recursive schema does work exponential in the
//! nesting depth on an invalid document (seconds at 15 levels, a stack overflow at 20). With task
//! lists made shallow, each task is validated once, at its own pointer.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::{Value, json};

use crate::diag::{Code, Diagnostic, pointer_push};
use crate::parse::{SpanIndex, parse_document};
use crate::validate::TASK_LIST_DEPTH_MAX;

/// The schema text, vendored unmodified (see `schema/NOTICE`).
const SCHEMA_YAML: &str = include_str!("../schema/workflow-1.0.3.yaml");

/// The pinned schema with `$defs/taskList` made shallow (items are single-key mappings whose
/// values are not validated); also used to look up titles and descriptions for messages.
static SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    // The vendored schema is a build-time constant; the `schema_loads` test keeps it loadable.
    let mut schema = parse_document(SCHEMA_YAML)
        .map(|d| d.value)
        .expect("vendored workflow schema parses");
    schema["$defs"]["taskList"] = json!({
        "title": "TaskList",
        "type": "array",
        "items": {"type": "object", "minProperties": 1, "maxProperties": 1}
    });
    schema
});

/// Validates a whole document, task bodies in task lists excepted.
static DOCUMENT_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| build(&SCHEMA));

/// Validates one task (`$defs/task`), its nested task lists excepted.
static TASK_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    let mut schema = SCHEMA.clone();
    if let Some(root) = schema.as_object_mut() {
        for key in ["type", "required", "properties", "description"] {
            root.remove(key);
        }
        root.insert("$ref".to_string(), json!("#/$defs/task"));
    }
    build(&schema)
});

fn build(schema: &Value) -> Validator {
    // Formats stay annotations, as JSON Schema 2020-12 specifies by default: `uri-template`
    // and friends would reject URIs with `{placeholders}` that the spec's own examples use.
    jsonschema::options()
        .build(schema)
        .expect("vendored workflow schema compiles")
}

/// The task kinds, in the order of the `oneOf` in `$defs/task`.
pub(crate) const TASK_KINDS: [&str; 12] = [
    "call", "do", "fork", "emit", "for", "listen", "raise", "run", "set", "switch", "try", "wait",
];

/// Properties every task may have (`$defs/taskBase`).
const TASK_BASE_KEYS: [&str; 7] = [
    "if", "input", "output", "export", "timeout", "then", "metadata",
];

/// Properties a task of the given kind may have besides the base ones.
fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "call" => &["call", "with"],
        "for" => &["for", "while", "do"],
        "listen" => &["listen", "foreach"],
        "try" => &["try", "catch"],
        "do" => &["do"],
        "fork" => &["fork"],
        "emit" => &["emit"],
        "raise" => &["raise"],
        "run" => &["run"],
        "set" => &["set"],
        "switch" => &["switch"],
        _ => &["wait"],
    }
}

/// The kind keys present on a task object. `do` is the body of a `for`, not a kind of its own,
/// when `for` is present.
pub(crate) fn task_kinds_present(task: &serde_json::Map<String, Value>) -> Vec<&'static str> {
    let has_for = task.contains_key("for");
    TASK_KINDS
        .iter()
        .copied()
        .filter(|k| task.contains_key(*k) && !(has_for && *k == "do"))
        .collect()
}

/// Where in the source a problem is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// The value at the pointer.
    Value,
    /// The key naming the value at the pointer.
    Key,
    /// The key of the object holding the pointer (for a missing property).
    ParentKey,
}

#[derive(Debug, Clone)]
struct Issue {
    code: Code,
    message: String,
    pointer: String,
    anchor: Anchor,
}

/// Validates `doc` against the schema; one diagnostic per problem found.
pub fn validate_schema(doc: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut issues = Vec::new();
    check(&DOCUMENT_VALIDATOR, doc, "", doc, &mut issues);
    let mut tasks = Vec::new();
    collect_tasks(doc, &mut tasks);
    for pointer in tasks {
        if let Some(task) = doc.pointer(&pointer) {
            check(&TASK_VALIDATOR, task, &pointer, doc, &mut issues);
        }
    }
    let mut out: Vec<Diagnostic> = Vec::new();
    for issue in issues {
        let at = match issue.anchor {
            Anchor::Value => spans.nearest_value(&issue.pointer),
            Anchor::Key => spans.nearest_key(&issue.pointer),
            Anchor::ParentKey => spans.nearest_key(parent(&issue.pointer)),
        };
        let d = Diagnostic::new(issue.code, issue.message, issue.pointer, at);
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn check(validator: &Validator, instance: &Value, base: &str, doc: &Value, out: &mut Vec<Issue>) {
    let errors: Vec<ValidationError<'_>> = validator.iter_errors(instance).collect();
    let refs: Vec<&ValidationError<'_>> = errors.iter().collect();
    reduce(&refs, &Ctx { doc, base }, out);
}

/// Pointers of every task in a task list, at any depth (up to the task list depth limit, past
/// which semantic validation reports the flow as too deep). Tasks declared in `use.functions`
/// are validated with the document itself; only their nested lists are collected.
fn collect_tasks(doc: &Value, out: &mut Vec<String>) {
    collect_list(doc.get("do"), "/do", 1, out);
    if let Some(functions) = doc.pointer("/use/functions").and_then(Value::as_object) {
        for (name, task) in functions {
            collect_nested(task, &pointer_push("/use/functions", name), 1, out);
        }
    }
    if let Some(extensions) = doc.pointer("/use/extensions").and_then(Value::as_array) {
        for (i, item) in extensions.iter().enumerate() {
            let Some(m) = item.as_object() else { continue };
            for (name, ext) in m {
                let p = pointer_push(&pointer_push("/use/extensions", &i.to_string()), name);
                for key in ["before", "after"] {
                    collect_list(ext.get(key), &pointer_push(&p, key), 1, out);
                }
            }
        }
    }
}

fn collect_list(list: Option<&Value>, pointer: &str, depth: usize, out: &mut Vec<String>) {
    let Some(items) = list.and_then(Value::as_array) else {
        return;
    };
    if depth > TASK_LIST_DEPTH_MAX {
        return;
    }
    for (i, item) in items.iter().enumerate() {
        let Some((name, task)) = item
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            continue;
        };
        let p = pointer_push(&pointer_push(pointer, &i.to_string()), name);
        out.push(p.clone());
        collect_nested(task, &p, depth, out);
    }
}

/// The task lists a task can hold: `do` (of `do` and `for`), `fork.branches`, `try`,
/// `catch.do` and a listen's `foreach.do`.
fn collect_nested(task: &Value, pointer: &str, depth: usize, out: &mut Vec<String>) {
    for path in [
        &["do"][..],
        &["fork", "branches"],
        &["try"],
        &["catch", "do"],
        &["foreach", "do"],
    ] {
        let mut node = Some(task);
        let mut p = pointer.to_string();
        for key in path {
            node = node.and_then(|n| n.get(key));
            p = pointer_push(&p, key);
        }
        collect_list(node, &p, depth + 1, out);
    }
}

fn parent(pointer: &str) -> &str {
    pointer.rfind('/').map_or("", |i| &pointer[..i])
}

/// True when `path` is `base` or lies below it, segment-wise.
fn is_at_or_below(path: &str, base: &str) -> bool {
    path == base || (path.starts_with(base) && path[base.len()..].starts_with('/'))
}

/// The document being validated and the pointer of the instance given to the validator, which
/// prefixes the validator's instance paths.
struct Ctx<'a> {
    doc: &'a Value,
    base: &'a str,
}

impl Ctx<'_> {
    fn path(&self, e: &ValidationError<'_>) -> String {
        format!("{}{}", self.base, e.instance_path().as_str())
    }
}

fn is_unknown_property(e: &ValidationError<'_>) -> bool {
    matches!(
        e.kind(),
        ValidationErrorKind::UnevaluatedProperties { .. }
            | ValidationErrorKind::AdditionalProperties { .. }
    )
}

/// Turns a list of sibling errors into issues.
fn reduce(errors: &[&ValidationError<'_>], ctx: &Ctx<'_>, out: &mut Vec<Issue>) {
    for (i, e) in errors.iter().enumerate() {
        let path = e.instance_path().as_str();
        // When a subschema fails, JSON Schema drops the annotations it made, so every property it
        // declared looks "unevaluated" too. Such a report only echoes the real error next to it.
        if is_unknown_property(e)
            && errors
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && is_at_or_below(other.instance_path().as_str(), path))
        {
            continue;
        }
        describe(e, ctx, out);
    }
}

fn describe(e: &ValidationError<'_>, ctx: &Ctx<'_>, out: &mut Vec<Issue>) {
    let path = ctx.path(e);
    let schema_path = e.schema_path().as_str();
    let instance = ctx.doc.pointer(&path).unwrap_or(&Value::Null);
    let mut push = |code, message: String, anchor| {
        out.push(Issue {
            code,
            message,
            pointer: path.clone(),
            anchor,
        })
    };
    match e.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            if schema_path.ends_with("/$defs/task/oneOf") {
                task_issue(&path, instance, context, ctx, out);
            } else if schema_path.ends_with("/$defs/duration/oneOf")
                && instance
                    .as_str()
                    .is_some_and(|s| crate::duration::parse_iso8601_duration_ms(s).is_err())
            {
                // Semantic validation reports the malformed ISO 8601 literal with a precise
                // message (BATON-FLOW-023); the schema's three-way failure would add nothing.
            } else {
                one_of_issue(&path, schema_path, instance, context, ctx, out);
            }
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => push(
            Code::SchemaMismatch,
            format!(
                "{} matches more than one of the allowed forms{}",
                short(instance),
                forms(schema_path)
            ),
            Anchor::Value,
        ),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(Issue {
                code: Code::SchemaRequired,
                message: format!("missing required property `{name}`"),
                pointer: pointer_push(&path, name),
                anchor: Anchor::ParentKey,
            });
        }
        ValidationErrorKind::UnevaluatedProperties { unexpected }
        | ValidationErrorKind::AdditionalProperties { unexpected } => {
            for name in unexpected {
                out.push(Issue {
                    code: Code::SchemaUnknownProperty,
                    message: format!("unknown property `{name}`"),
                    pointer: pointer_push(&path, name),
                    anchor: Anchor::Key,
                });
            }
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_name(*t).to_string(),
                TypeKind::Multiple(set) => {
                    set.iter().map(type_name).collect::<Vec<_>>().join(" or ")
                }
            };
            push(
                Code::SchemaMismatch,
                format!("expected {expected}, found {}", short(instance)),
                Anchor::Value,
            );
        }
        ValidationErrorKind::Enum { options } => {
            let allowed = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            push(
                Code::SchemaMismatch,
                format!("{} is not one of: {allowed}", short(instance)),
                Anchor::Value,
            );
        }
        ValidationErrorKind::Constant { expected_value } => {
            push(
                Code::SchemaMismatch,
                format!("expected {expected_value}, found {}", short(instance)),
                Anchor::Value,
            );
        }
        ValidationErrorKind::Pattern { .. } => {
            let node = SCHEMA.pointer(parent(schema_path));
            let what = node
                .and_then(|n| n.get("description").or_else(|| n.get("title")))
                .and_then(Value::as_str)
                .map(|d| format!(" ({})", d.trim_end_matches('.')))
                .unwrap_or_default();
            push(
                Code::SchemaMismatch,
                format!(
                    "{} does not have the required format{what}",
                    short(instance)
                ),
                Anchor::Value,
            );
        }
        ValidationErrorKind::MaxProperties { .. } | ValidationErrorKind::MinProperties { .. }
            if schema_path.contains("/$defs/taskList/items/") =>
        {
            push(
                Code::SchemaMismatch,
                "a task list item must have exactly one key: the task name".to_string(),
                Anchor::Value,
            );
        }
        ValidationErrorKind::MaxProperties { .. } | ValidationErrorKind::MinProperties { .. }
            if schema_path.contains("/switch/items/") =>
        {
            push(
                Code::SchemaMismatch,
                "a switch case must have exactly one key: the case name".to_string(),
                Anchor::Value,
            );
        }
        ValidationErrorKind::MinProperties { limit: 1 } => {
            push(
                Code::SchemaMismatch,
                "must not be empty".to_string(),
                Anchor::Value,
            );
        }
        ValidationErrorKind::MinProperties { limit } => {
            push(
                Code::SchemaMismatch,
                format!("must have at least {limit} entries"),
                Anchor::Value,
            );
        }
        ValidationErrorKind::MaxProperties { limit } => {
            push(
                Code::SchemaMismatch,
                format!("must have at most {limit} entries"),
                Anchor::Value,
            );
        }
        ValidationErrorKind::MinItems { limit } => {
            push(
                Code::SchemaMismatch,
                format!("must have at least {limit} items"),
                Anchor::Value,
            );
        }
        ValidationErrorKind::Not { .. } | ValidationErrorKind::FalseSchema => {
            push(
                Code::SchemaMismatch,
                format!("{} is not allowed here", short(instance)),
                Anchor::Value,
            );
        }
        _ => {
            let mut message = e.to_string();
            if message.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|i| message.is_char_boundary(*i))
                    .unwrap_or(0);
                message.truncate(cut);
                message.push('…');
            }
            push(Code::SchemaMismatch, message, Anchor::Value);
        }
    }
}

/// One diagnostic for a task that matched none of the task kinds: decide the kind from its keys
/// and report only that branch's problems.
fn task_issue(
    path: &str,
    instance: &Value,
    context: &[Vec<ValidationError<'static>>],
    ctx: &Ctx<'_>,
    out: &mut Vec<Issue>,
) {
    let Some(task) = instance.as_object() else {
        out.push(Issue {
            code: Code::SchemaTaskKind,
            message: format!("a task must be a mapping, found {}", short(instance)),
            pointer: path.to_string(),
            anchor: Anchor::Value,
        });
        return;
    };
    let kinds = task_kinds_present(task);
    let unknown: Vec<&String> = task
        .keys()
        .filter(|k| {
            !TASK_BASE_KEYS.contains(&k.as_str())
                && !kinds
                    .iter()
                    .any(|kind| kind_keys(kind).contains(&k.as_str()))
        })
        .collect();
    match kinds.as_slice() {
        [] => {
            let hint = match unknown.as_slice() {
                [] => String::new(),
                [one] => format!(" (`{one}` is not a task property)"),
                many => format!(
                    " ({} are not task properties)",
                    many.iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            out.push(Issue {
                code: Code::SchemaTaskKind,
                message: format!("a task needs one of: {}{hint}", TASK_KINDS.join(", ")),
                pointer: path.to_string(),
                anchor: Anchor::Key,
            });
        }
        [kind] => {
            for key in unknown {
                // A property of another kind (`with` on a `set`, `catch` without `try`) gets a
                // hint, a plain typo just the name.
                let owner = TASK_KINDS
                    .iter()
                    .find(|k| kind_keys(k).contains(&key.as_str()));
                let message = match owner {
                    Some(o) => {
                        format!("property `{key}` belongs to a `{o}` task, not to a `{kind}` task")
                    }
                    None => format!("unknown property `{key}` on a `{kind}` task"),
                };
                out.push(Issue {
                    code: Code::SchemaUnknownProperty,
                    message,
                    pointer: pointer_push(path, key),
                    anchor: Anchor::Key,
                });
            }
            let index = TASK_KINDS.iter().position(|k| k == kind).unwrap_or(0);
            if let Some(branch) = context.get(index) {
                let refs: Vec<&ValidationError<'_>> = branch.iter().collect();
                let mut found = Vec::new();
                reduce(&refs, ctx, &mut found);
                // Unknown properties of the task itself (at any depth of the kind's own `oneOf`,
                // e.g. the call types) were reported above, with a hint.
                found.retain(|i| {
                    !(i.code == Code::SchemaUnknownProperty && parent(&i.pointer) == path)
                });
                out.extend(found);
            }
        }
        many => out.push(Issue {
            code: Code::SchemaTaskKind,
            message: format!(
                "a task must have exactly one kind, found {}",
                many.join(" and ")
            ),
            pointer: path.to_string(),
            anchor: Anchor::Key,
        }),
    }
}

/// A failed `oneOf`/`anyOf` other than the task one. Branches whose discriminating part (the type,
/// a `const` property like `call`, a required key like `basic`) does not match are set aside; when
/// exactly one branch is left it is the one the author meant and its errors are reported, else a
/// single summary of the allowed forms.
fn one_of_issue(
    path: &str,
    schema_path: &str,
    instance: &Value,
    context: &[Vec<ValidationError<'static>>],
    ctx: &Ctx<'_>,
    out: &mut Vec<Issue>,
) {
    let candidates: Vec<&Vec<ValidationError<'static>>> = context
        .iter()
        .filter(|branch| {
            !branch
                .iter()
                .any(|e| is_discriminator_miss(&ctx.path(e), e, path))
        })
        .collect();
    if let [branch] = candidates.as_slice() {
        let refs: Vec<&ValidationError<'_>> = branch.iter().collect();
        reduce(&refs, ctx, out);
        return;
    }
    out.push(Issue {
        code: Code::SchemaMismatch,
        message: format!(
            "{} does not match any of the allowed forms{}",
            short(instance),
            forms(schema_path)
        ),
        pointer: path.to_string(),
        anchor: Anchor::Value,
    });
}

fn is_discriminator_miss(p: &str, e: &ValidationError<'_>, one_of_path: &str) -> bool {
    let at_self = p == one_of_path;
    let at_child = parent(p) == one_of_path && p != one_of_path;
    match e.kind() {
        ValidationErrorKind::Type { .. } | ValidationErrorKind::Required { .. } => at_self,
        ValidationErrorKind::Constant { .. } | ValidationErrorKind::Not { .. } => {
            at_self || at_child
        }
        _ => false,
    }
}

/// ` (expected: A, B or C)` from the titles (or types) of the branches of the `oneOf` at
/// `schema_path`.
fn forms(schema_path: &str) -> String {
    let Some(branches) = SCHEMA.pointer(schema_path).and_then(Value::as_array) else {
        return String::new();
    };
    let names: Vec<String> = branches.iter().filter_map(branch_name).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (expected: {})", names.join(", "))
    }
}

fn branch_name(branch: &Value) -> Option<String> {
    let resolved = branch
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| SCHEMA.pointer(p));
    let title = branch
        .get("title")
        .or_else(|| resolved.and_then(|r| r.get("title")));
    if let Some(t) = title.and_then(Value::as_str) {
        return Some(t.to_string());
    }
    branch
        .get("type")
        .or_else(|| resolved.and_then(|r| r.get("type")))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "a sequence",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "a mapping",
        JsonType::String => "a string",
    }
}

/// A short rendering of a value for messages: scalars as written, collections by kind.
pub(crate) fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 60 => {
            format!("\"{}…\"", s.chars().take(60).collect::<String>())
        }
        Value::Array(_) => "a sequence".to_string(),
        Value::Object(_) => "a mapping".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_loads() {
        assert!(SCHEMA.get("$defs").is_some());
        assert!(DOCUMENT_VALIDATOR.is_valid(&serde_json::json!({
            "document": {"dsl": "1.0.3", "namespace": "a", "name": "b", "version": "1.0.0"},
            "do": [{"s": {"set": {"x": 1}}}]
        })));
    }

    fn diagnostics(yaml: &str) -> Vec<(String, String)> {
        let doc = parse_document(yaml).expect("test document parses");
        validate_schema(&doc.value, &doc.spans)
            .into_iter()
            .map(|d| (d.code, d.pointer))
            .collect()
    }

    const HEADER: &str = "document: {dsl: '1.0.3', namespace: t, name: n, version: '1.0.0'}\ndo:\n";

    #[test]
    fn unevaluated_properties_are_enforced_through_all_of() {
        // Properties declared by `taskBase` (reached through `allOf` + `$ref`) count as
        // evaluated; anything else is reported, once, at its key.
        let ok = format!("{HEADER}  - a:\n      if: .x\n      set: {{a: 1}}\n      then: end\n");
        assert_eq!(diagnostics(&ok), vec![]);
        let bad = format!("{HEADER}  - a:\n      set: {{a: 1}}\n      iff: .x\n");
        assert_eq!(
            diagnostics(&bad),
            vec![("BATON-FLOW-012".to_string(), "/do/0/a/iff".to_string())]
        );
        let doc = "document: {dsl: '1.0.3', namespace: t, name: n, version: '1.0.0', owner: me}\ndo: []\n";
        assert_eq!(
            diagnostics(doc),
            vec![("BATON-FLOW-012".to_string(), "/document/owner".to_string())]
        );
    }

    #[test]
    fn formats_are_annotations_only() {
        // JSON Schema 2020-12 does not assert `format` by default; the spec's examples rely on
        // it (`uri-template` endpoints with `{placeholders}`). A bad `date-time` passes too.
        let flow = format!(
            "{HEADER}  - e:\n      emit:\n        event:\n          with:\n            source: https://x.example/{{id}}\n            type: t\n            time: yesterday\n"
        );
        assert_eq!(diagnostics(&flow), vec![]);
    }

    #[test]
    fn call_types_are_told_apart_by_their_call_value() {
        // The `oneOf` over call types: only the http branch's own problem is reported.
        let flow = format!(
            "{HEADER}  - c:\n      call: http\n      with:\n        endpoint: https://x.example\n"
        );
        assert_eq!(
            diagnostics(&flow),
            vec![(
                "BATON-FLOW-011".to_string(),
                "/do/0/c/with/method".to_string()
            )]
        );
    }

    #[test]
    fn task_kinds_order_matches_schema() {
        let branches = SCHEMA
            .pointer("/$defs/task/oneOf")
            .and_then(Value::as_array)
            .unwrap();
        let refs: Vec<&str> = branches
            .iter()
            .map(|b| b["$ref"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = TASK_KINDS
            .iter()
            .map(|k| format!("#/$defs/{k}Task"))
            .collect();
        assert_eq!(refs, expected);
    }
}
