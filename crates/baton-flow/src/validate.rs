//! Semantic validation: what the JSON Schema cannot say. Flow directive targets, unique task
//! names, ISO 8601 durations, runtime expressions compiling with exactly the variables in scope,
//! `$secrets` confinement, known functions and reusable components, refused features, limits.
//!
//! It walks the raw JSON value, not the typed model, for two reasons: every diagnostic needs the
//! JSON Pointer of the offending node, and it must still run when the schema or the model already
//! rejected some other part of the document, so that one run reports every problem. Shapes the
//! schema rejects are skipped here, never reported twice.

use std::collections::HashSet;

use baton_expr::{Expr, Template, loose_source, strip_strict};
use serde_json::{Map, Value};

use crate::diag::{Code, Diagnostic, pointer_push};
use crate::duration::parse_iso8601_duration_ms;
use crate::parse::SpanIndex;
use crate::schema::{short, task_kinds_present};

/// Most tasks in one flow, counted over every task list. Bounds the core's program size and the
/// work of validating and compiling a flow.
pub const TASKS_MAX: usize = 10_000;
/// Deepest nesting of task lists (`do` inside `for` inside `try` ...), the workflow's `do` being 1.
pub const TASK_LIST_DEPTH_MAX: usize = 32;
/// Most branches of one `fork`: each branch runs concurrently, so this bounds fan-out width.
pub const FORK_BRANCHES_MAX: usize = 256;

/// Variables every runtime expression may use. `$secrets` is added only in `input.from`.
const BASE_VARS: [&str; 7] = [
    "context",
    "input",
    "output",
    "task",
    "workflow",
    "runtime",
    "authorization",
];
const SECRETS_VAR: &str = "secrets";

/// Call types of the DSL that Baton refuses (no executor for them).
const UNSUPPORTED_CALLS: [&str; 4] = ["grpc", "asyncapi", "a2a", "mcp"];

const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

/// What the embedding runtime tells validation about itself.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Custom `call:` functions registered by the runtime (e.g. `noop`, `provider`, `decide`).
    pub known_functions: Vec<String>,
}

/// Runs every semantic check over the parsed document.
pub fn validate_semantics(
    doc: &Value,
    spans: &SpanIndex,
    opts: &ValidateOptions,
) -> Vec<Diagnostic> {
    let Some(root) = doc.as_object() else {
        return Vec::new();
    };
    let names = |section: &str| -> HashSet<String> {
        root.get("use")
            .and_then(|u| u.get(section))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut c = Checker {
        spans,
        known_functions: opts.known_functions.iter().cloned().collect(),
        functions: names("functions"),
        errors: names("errors"),
        retries: names("retries"),
        timeouts: names("timeouts"),
        tasks: 0,
        tasks_limit_reported: false,
        out: Vec::new(),
    };
    c.workflow(root);
    c.out
}

/// The variables in scope of an expression, besides `$secrets`.
#[derive(Debug, Clone)]
struct Scope {
    vars: Vec<String>,
}

impl Scope {
    fn root() -> Scope {
        Scope {
            vars: BASE_VARS.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn with(&self, extra: &[&str]) -> Scope {
        let mut vars = self.vars.clone();
        for v in extra {
            if !vars.iter().any(|x| x == v) {
                vars.push(v.to_string());
            }
        }
        Scope { vars }
    }

    fn names(&self, secrets: bool) -> Vec<&str> {
        let mut v: Vec<&str> = self.vars.iter().map(String::as_str).collect();
        if secrets {
            v.push(SECRETS_VAR);
        }
        v
    }
}

/// Whether `$secrets` may appear: only `input.from` may read secrets, so they cannot leak into
/// task arguments, outputs or the context by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    Allowed,
    Forbidden,
}

struct Checker<'a> {
    spans: &'a SpanIndex,
    known_functions: HashSet<String>,
    functions: HashSet<String>,
    errors: HashSet<String>,
    retries: HashSet<String>,
    timeouts: HashSet<String>,
    tasks: usize,
    tasks_limit_reported: bool,
    out: Vec<Diagnostic>,
}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

impl Checker<'_> {
    fn at_value(&mut self, code: Code, message: String, pointer: &str) {
        let at = self.spans.nearest_value(pointer);
        self.out.push(Diagnostic::new(code, message, pointer, at));
    }

    fn at_key(&mut self, code: Code, message: String, pointer: &str) {
        let at = self.spans.nearest_key(pointer);
        self.out.push(Diagnostic::new(code, message, pointer, at));
    }

    fn workflow(&mut self, root: &Map<String, Value>) {
        let scope = Scope::root();
        if let Some(input) = obj(root.get("input")) {
            self.filter(input, "from", "/input", &scope, Secrets::Allowed);
        }
        if let Some(output) = obj(root.get("output")) {
            self.filter(output, "as", "/output", &scope, Secrets::Forbidden);
        }
        if let Some(t) = root.get("timeout") {
            self.timeout(t, "/timeout", &scope);
        }
        if let Some(schedule) = obj(root.get("schedule")) {
            for key in ["every", "after"] {
                if let Some(d) = schedule.get(key) {
                    self.duration(d, &pointer_push("/schedule", key), &scope);
                }
            }
        }
        if let Some(u) = obj(root.get("use")) {
            self.use_section(u, &scope);
        }
        if let Some(list) = root.get("do") {
            self.task_list(list, "/do", &scope, 1, false);
        }
    }

    fn use_section(&mut self, u: &Map<String, Value>, scope: &Scope) {
        if let Some(functions) = obj(u.get("functions")) {
            for (name, task) in functions {
                // A function is a task definition called by name; it has no sibling list, so
                // a `then` in it has nothing to target but the keywords.
                self.task(task, &pointer_push("/use/functions", name), None, scope, 1);
            }
        }
        if let Some(retries) = obj(u.get("retries")) {
            for (name, policy) in retries {
                self.retry_policy(policy, &pointer_push("/use/retries", name), scope);
            }
        }
        if let Some(timeouts) = obj(u.get("timeouts")) {
            for (name, t) in timeouts {
                let p = pointer_push("/use/timeouts", name);
                if let Some(after) = t.get("after") {
                    self.duration(after, &pointer_push(&p, "after"), scope);
                }
            }
        }
        if let Some(errors) = obj(u.get("errors")) {
            for (name, e) in errors {
                self.template(
                    e,
                    &pointer_push("/use/errors", name),
                    scope,
                    Secrets::Forbidden,
                );
            }
        }
        if let Some(extensions) = u.get("extensions").and_then(Value::as_array) {
            for (i, item) in extensions.iter().enumerate() {
                let Some((name, ext)) = obj(Some(item)).and_then(|m| m.iter().next()) else {
                    continue;
                };
                let p = pointer_push(&pointer_push("/use/extensions", &i.to_string()), name);
                if let Some(when) = ext.get("when") {
                    self.expression(when, &pointer_push(&p, "when"), scope, Secrets::Forbidden);
                }
                for key in ["before", "after"] {
                    if let Some(list) = ext.get(key) {
                        self.task_list(list, &pointer_push(&p, key), scope, 1, true);
                    }
                }
            }
        }
    }

    /// A task list: unique names, limits, then each task with the list's names as `then` targets.
    fn task_list(
        &mut self,
        list: &Value,
        pointer: &str,
        scope: &Scope,
        depth: usize,
        allow_empty: bool,
    ) {
        let Some(items) = list.as_array() else { return };
        if depth > TASK_LIST_DEPTH_MAX {
            self.at_value(
                Code::FlowLimit,
                format!("task lists are nested more than {TASK_LIST_DEPTH_MAX} deep"),
                pointer,
            );
            return;
        }
        if items.is_empty() && !allow_empty {
            self.at_value(
                Code::EmptyTaskList,
                "a task list must not be empty".to_string(),
                pointer,
            );
        }
        self.tasks += items.len();
        if self.tasks > TASKS_MAX && !self.tasks_limit_reported {
            self.tasks_limit_reported = true;
            self.at_value(
                Code::FlowLimit,
                format!("the flow has more than {TASKS_MAX} tasks"),
                pointer,
            );
        }
        let entries: Vec<Option<(&String, &Value)>> = items
            .iter()
            .map(|item| {
                item.as_object()
                    .filter(|m| m.len() == 1)
                    .and_then(|m| m.iter().next())
            })
            .collect();
        let names: Vec<&str> = entries.iter().flatten().map(|(n, _)| n.as_str()).collect();
        let mut seen = HashSet::new();
        for (i, (name, _)) in entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e)))
        {
            if !seen.insert(name.as_str()) {
                let p = pointer_push(&pointer_push(pointer, &i.to_string()), name);
                self.at_key(
                    Code::DuplicateTask,
                    format!("duplicate task name `{name}` in this task list"),
                    &p,
                );
            }
        }
        for (i, (name, task)) in entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e)))
        {
            let p = pointer_push(&pointer_push(pointer, &i.to_string()), name);
            self.task(task, &p, Some(&names), scope, depth);
        }
    }

    fn task(
        &mut self,
        task: &Value,
        pointer: &str,
        siblings: Option<&[&str]>,
        scope: &Scope,
        depth: usize,
    ) {
        let Some(t) = task.as_object() else { return };
        let p = |key: &str| pointer_push(pointer, key);
        if let Some(cond) = t.get("if") {
            self.expression(cond, &p("if"), scope, Secrets::Forbidden);
        }
        if let Some(input) = obj(t.get("input")) {
            self.filter(input, "from", &p("input"), scope, Secrets::Allowed);
        }
        for key in ["output", "export"] {
            if let Some(f) = obj(t.get(key)) {
                self.filter(f, "as", &p(key), scope, Secrets::Forbidden);
            }
        }
        if let Some(timeout) = t.get("timeout") {
            self.timeout(timeout, &p("timeout"), scope);
        }
        if let Some(then) = t.get("then").and_then(Value::as_str) {
            self.then_target(then, &p("then"), siblings);
        }
        for kind in task_kinds_present(t) {
            match kind {
                "call" => self.call(t, pointer, scope),
                "do" => self.task_list(&t["do"], &p("do"), scope, depth + 1, false),
                "fork" => self.fork(&t["fork"], &p("fork"), scope, depth),
                "emit" => {
                    if let Some(with) = t["emit"].get("event").and_then(|e| e.get("with")) {
                        let wp = pointer_push(&pointer_push(&p("emit"), "event"), "with");
                        self.template(with, &wp, scope, Secrets::Forbidden);
                    }
                }
                "for" => self.for_task(t, pointer, scope, depth),
                "listen" => self.listen(t, pointer, scope, depth),
                "raise" => self.raise(&t["raise"], &p("raise"), scope),
                "run" => self.run(&t["run"], &p("run"), scope),
                "set" => self.template(&t["set"], &p("set"), scope, Secrets::Forbidden),
                "switch" => self.switch(&t["switch"], &p("switch"), siblings, scope),
                "try" => self.try_task(t, pointer, scope, depth),
                _ => self.duration(&t["wait"], &p("wait"), scope),
            }
        }
    }

    fn then_target(&mut self, then: &str, pointer: &str, siblings: Option<&[&str]>) {
        if matches!(then, "continue" | "exit" | "end") {
            return;
        }
        let names = siblings.unwrap_or(&[]);
        if names.contains(&then) {
            return;
        }
        let mut unique: Vec<&str> = Vec::new();
        for n in names {
            if !unique.contains(n) {
                unique.push(n);
            }
        }
        let known = if unique.is_empty() {
            String::new()
        } else {
            let mut list: Vec<String> = unique.iter().take(10).map(|n| format!("`{n}`")).collect();
            if unique.len() > 10 {
                list.push("…".to_string());
            }
            format!(" (tasks here: {})", list.join(", "))
        };
        self.at_value(
            Code::UnknownThen,
            format!(
                "`then: {then}` names no task of this task list; flow directives may only target \
                 tasks of their own list, or `continue`, `exit`, `end`{known}"
            ),
            pointer,
        );
    }

    fn call(&mut self, t: &Map<String, Value>, pointer: &str, scope: &Scope) {
        let Some(function) = t.get("call").and_then(Value::as_str) else {
            return;
        };
        let call_ptr = pointer_push(pointer, "call");
        let with_ptr = pointer_push(pointer, "with");
        match function {
            "http" => {
                if let Some(with) = t.get("with") {
                    self.http_with(with, &with_ptr);
                }
            }
            "openapi" => {}
            f if UNSUPPORTED_CALLS.contains(&f) => {
                self.at_value(
                    Code::UnsupportedCall,
                    format!("`call: {f}` is not supported by Baton; use `http`, `openapi` or a registered function"),
                    &call_ptr,
                );
                // Arguments of a call type Baton has no executor for are not checked further.
                return;
            }
            f if self.functions.contains(f) || self.known_functions.contains(f) => {}
            f if f.contains("://") || f.contains('@') => {
                self.at_value(
                    Code::UnsupportedCall,
                    format!(
                        "`call: {f}`: functions from catalogs or URLs are not supported by Baton \
                         (it does not load remote definitions); declare it in `use.functions`"
                    ),
                    &call_ptr,
                );
                return;
            }
            f => {
                let mut known: Vec<&str> = self.functions.iter().map(String::as_str).collect();
                known.extend(self.known_functions.iter().map(String::as_str));
                known.sort_unstable();
                let registered = if known.is_empty() {
                    String::new()
                } else {
                    format!(" (known: {})", known.join(", "))
                };
                self.at_value(
                    Code::UnknownFunction,
                    format!(
                        "unknown function `{f}`: not `http` or `openapi`, not declared in \
                         `use.functions` and not registered with the runtime{registered}"
                    ),
                    &call_ptr,
                );
            }
        }
        if let Some(with) = t.get("with") {
            self.template(with, &with_ptr, scope, Secrets::Forbidden);
        }
    }

    fn http_with(&mut self, with: &Value, pointer: &str) {
        let Some(w) = with.as_object() else { return };
        match w.get("method").and_then(Value::as_str) {
            None => self.at_key(
                Code::HttpArguments,
                "an http call needs `with.method`".to_string(),
                &pointer_push(pointer, "method"),
            ),
            Some(m)
                if strip_strict(m).is_none()
                    && !HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) =>
            {
                self.at_value(
                    Code::HttpArguments,
                    format!(
                        "`{m}` is not an HTTP method (expected one of {})",
                        HTTP_METHODS.join(", ")
                    ),
                    &pointer_push(pointer, "method"),
                );
            }
            Some(_) => {}
        }
        match w.get("endpoint") {
            None => self.at_key(
                Code::HttpArguments,
                "an http call needs `with.endpoint`".to_string(),
                &pointer_push(pointer, "endpoint"),
            ),
            Some(endpoint) => {
                let (uri, uri_ptr) = match endpoint {
                    Value::Object(m) => (
                        m.get("uri"),
                        pointer_push(&pointer_push(pointer, "endpoint"), "uri"),
                    ),
                    other => (Some(other), pointer_push(pointer, "endpoint")),
                };
                if let Some(u) = uri.and_then(Value::as_str)
                    && strip_strict(u).is_none()
                    && !is_http_uri(u)
                {
                    self.at_value(
                        Code::HttpArguments,
                        format!("http endpoint `{u}` must be an `http://` or `https://` URI or a `${{...}}` expression"),
                        &uri_ptr,
                    );
                }
            }
        }
        if let Some(output) = w.get("output")
            && !matches!(output.as_str(), Some("content" | "response" | "raw"))
        {
            self.at_value(
                Code::HttpArguments,
                format!(
                    "http `output` must be `content`, `response` or `raw`, found {}",
                    short(output)
                ),
                &pointer_push(pointer, "output"),
            );
        }
    }

    fn fork(&mut self, fork: &Value, pointer: &str, scope: &Scope, depth: usize) {
        let Some(branches) = fork.get("branches") else {
            return;
        };
        let p = pointer_push(pointer, "branches");
        if let Some(items) = branches.as_array()
            && items.len() > FORK_BRANCHES_MAX
        {
            self.at_value(
                Code::FlowLimit,
                format!(
                    "a fork has {} branches; the limit is {FORK_BRANCHES_MAX}",
                    items.len()
                ),
                &p,
            );
        }
        self.task_list(branches, &p, scope, depth + 1, false);
    }

    fn for_task(&mut self, t: &Map<String, Value>, pointer: &str, scope: &Scope, depth: usize) {
        let for_ptr = pointer_push(pointer, "for");
        let spec = obj(t.get("for"));
        let each = self.var_name(
            spec.and_then(|s| s.get("each")),
            "item",
            &pointer_push(&for_ptr, "each"),
        );
        let at = self.var_name(
            spec.and_then(|s| s.get("at")),
            "index",
            &pointer_push(&for_ptr, "at"),
        );
        if let Some(input) = spec.and_then(|s| s.get("in")) {
            self.expression(
                input,
                &pointer_push(&for_ptr, "in"),
                scope,
                Secrets::Forbidden,
            );
        }
        let inner = scope.with(&[&each, &at]);
        if let Some(cond) = t.get("while") {
            self.expression(
                cond,
                &pointer_push(pointer, "while"),
                &inner,
                Secrets::Forbidden,
            );
        }
        if let Some(list) = t.get("do") {
            self.task_list(list, &pointer_push(pointer, "do"), &inner, depth + 1, false);
        }
    }

    fn listen(&mut self, t: &Map<String, Value>, pointer: &str, scope: &Scope, depth: usize) {
        let to_ptr = pointer_push(&pointer_push(pointer, "listen"), "to");
        if let Some(to) = obj(t.get("listen").and_then(|l| l.get("to"))) {
            self.consumption(to, &to_ptr, scope);
        }
        if let Some(foreach) = obj(t.get("foreach")) {
            let p = pointer_push(pointer, "foreach");
            let item = self.var_name(foreach.get("item"), "item", &pointer_push(&p, "item"));
            let at = self.var_name(foreach.get("at"), "index", &pointer_push(&p, "at"));
            let inner = scope.with(&[&item, &at]);
            if let Some(list) = foreach.get("do") {
                self.task_list(list, &pointer_push(&p, "do"), &inner, depth + 1, true);
            }
            for key in ["output", "export"] {
                if let Some(f) = obj(foreach.get(key)) {
                    self.filter(f, "as", &pointer_push(&p, key), &inner, Secrets::Forbidden);
                }
            }
        }
    }

    /// An event consumption strategy (`all`, `any` with `until`, `one`).
    fn consumption(&mut self, to: &Map<String, Value>, pointer: &str, scope: &Scope) {
        for key in ["all", "any"] {
            if let Some(filters) = to.get(key).and_then(Value::as_array) {
                let p = pointer_push(pointer, key);
                for (i, f) in filters.iter().enumerate() {
                    self.event_filter(f, &pointer_push(&p, &i.to_string()), scope);
                }
            }
        }
        if let Some(one) = to.get("one") {
            self.event_filter(one, &pointer_push(pointer, "one"), scope);
        }
        match to.get("until") {
            Some(until @ Value::String(_)) => {
                self.expression(
                    until,
                    &pointer_push(pointer, "until"),
                    scope,
                    Secrets::Forbidden,
                );
            }
            Some(Value::Object(nested)) => {
                self.consumption(nested, &pointer_push(pointer, "until"), scope)
            }
            _ => {}
        }
    }

    fn event_filter(&mut self, filter: &Value, pointer: &str, scope: &Scope) {
        if let Some(with) = filter.get("with") {
            self.template(
                with,
                &pointer_push(pointer, "with"),
                scope,
                Secrets::Forbidden,
            );
        }
        if let Some(correlate) = obj(filter.get("correlate")) {
            let p = pointer_push(pointer, "correlate");
            for (name, c) in correlate {
                let cp = pointer_push(&p, name);
                if let Some(from) = c.get("from") {
                    self.expression(from, &pointer_push(&cp, "from"), scope, Secrets::Forbidden);
                }
                if let Some(expect) = c.get("expect") {
                    self.template(
                        expect,
                        &pointer_push(&cp, "expect"),
                        scope,
                        Secrets::Forbidden,
                    );
                }
            }
        }
    }

    fn raise(&mut self, raise: &Value, pointer: &str, scope: &Scope) {
        let Some(error) = raise.get("error") else {
            return;
        };
        let p = pointer_push(pointer, "error");
        match error {
            Value::String(name) if !self.errors.contains(name) => self.at_value(
                Code::UnknownReference,
                format!("`raise.error: {name}` names no entry of `use.errors`"),
                &p,
            ),
            Value::Object(_) => self.template(error, &p, scope, Secrets::Forbidden),
            _ => {}
        }
    }

    fn run(&mut self, run: &Value, pointer: &str, scope: &Scope) {
        let Some(r) = run.as_object() else { return };
        for kind in ["container", "shell", "script"] {
            if r.contains_key(kind) {
                self.at_key(
                    Code::RefusedRun,
                    format!(
                        "`run: {kind}` is refused by Baton for safety: flows must not execute \
                         arbitrary processes on the engine's hosts; only `run: workflow` is supported"
                    ),
                    &pointer_push(pointer, kind),
                );
            }
        }
        if let Some(input) = r.get("workflow").and_then(|w| w.get("input")) {
            let p = pointer_push(&pointer_push(pointer, "workflow"), "input");
            self.template(input, &p, scope, Secrets::Forbidden);
        }
    }

    fn switch(&mut self, switch: &Value, pointer: &str, siblings: Option<&[&str]>, scope: &Scope) {
        let Some(cases) = switch.as_array() else {
            return;
        };
        for (i, case) in cases.iter().enumerate() {
            let Some((name, body)) = case
                .as_object()
                .filter(|m| m.len() == 1)
                .and_then(|m| m.iter().next())
            else {
                continue;
            };
            let p = pointer_push(&pointer_push(pointer, &i.to_string()), name);
            if let Some(when) = body.get("when") {
                self.expression(when, &pointer_push(&p, "when"), scope, Secrets::Forbidden);
            }
            if let Some(then) = body.get("then").and_then(Value::as_str) {
                self.then_target(then, &pointer_push(&p, "then"), siblings);
            }
        }
    }

    fn try_task(&mut self, t: &Map<String, Value>, pointer: &str, scope: &Scope, depth: usize) {
        if let Some(list) = t.get("try") {
            self.task_list(list, &pointer_push(pointer, "try"), scope, depth + 1, false);
        }
        let Some(catch) = obj(t.get("catch")) else {
            return;
        };
        let p = pointer_push(pointer, "catch");
        let error_var = self.var_name(catch.get("as"), "error", &pointer_push(&p, "as"));
        let inner = scope.with(&[&error_var]);
        for key in ["when", "exceptWhen"] {
            if let Some(cond) = catch.get(key) {
                self.expression(cond, &pointer_push(&p, key), &inner, Secrets::Forbidden);
            }
        }
        match catch.get("retry") {
            Some(Value::String(name)) if !self.retries.contains(name) => self.at_value(
                Code::UnknownReference,
                format!("`retry: {name}` names no entry of `use.retries`"),
                &pointer_push(&p, "retry"),
            ),
            Some(policy @ Value::Object(_)) => {
                self.retry_policy(policy, &pointer_push(&p, "retry"), scope)
            }
            _ => {}
        }
        if let Some(list) = catch.get("do") {
            self.task_list(list, &pointer_push(&p, "do"), &inner, depth + 1, true);
        }
    }

    fn retry_policy(&mut self, policy: &Value, pointer: &str, scope: &Scope) {
        let Some(r) = policy.as_object() else { return };
        for key in ["when", "exceptWhen"] {
            if let Some(cond) = r.get(key) {
                self.expression(cond, &pointer_push(pointer, key), scope, Secrets::Forbidden);
            }
        }
        if let Some(delay) = r.get("delay") {
            self.duration(delay, &pointer_push(pointer, "delay"), scope);
        }
        if let Some(limit) = obj(r.get("limit")) {
            let lp = pointer_push(pointer, "limit");
            if let Some(d) = limit.get("duration") {
                self.duration(d, &pointer_push(&lp, "duration"), scope);
            }
            if let Some(d) = limit.get("attempt").and_then(|a| a.get("duration")) {
                self.duration(
                    d,
                    &pointer_push(&pointer_push(&lp, "attempt"), "duration"),
                    scope,
                );
            }
        }
        if let Some(jitter) = obj(r.get("jitter")) {
            let jp = pointer_push(pointer, "jitter");
            for key in ["from", "to"] {
                if let Some(d) = jitter.get(key) {
                    self.duration(d, &pointer_push(&jp, key), scope);
                }
            }
        }
    }

    /// A timeout: the name of a `use.timeouts` entry or an inline `{after: duration}`.
    fn timeout(&mut self, timeout: &Value, pointer: &str, scope: &Scope) {
        match timeout {
            Value::String(name) if !self.timeouts.contains(name) => self.at_value(
                Code::UnknownReference,
                format!("`timeout: {name}` names no entry of `use.timeouts`"),
                pointer,
            ),
            Value::Object(t) => {
                if let Some(after) = t.get("after") {
                    self.duration(after, &pointer_push(pointer, "after"), scope);
                }
            }
            _ => {}
        }
    }

    /// A duration: an ISO 8601 literal or a strict `${...}` expression (objects are checked by
    /// the schema).
    fn duration(&mut self, d: &Value, pointer: &str, scope: &Scope) {
        let Some(s) = d.as_str() else { return };
        if let Some(src) = strip_strict(s) {
            self.compile(src, pointer, scope, Secrets::Forbidden);
        } else if let Err(e) = parse_iso8601_duration_ms(s) {
            self.at_value(
                Code::BadDuration,
                format!("{e}; expected an ISO 8601 duration such as `PT30S` or `P1DT2H`"),
                pointer,
            );
        }
    }

    /// `input.from`, `output.as` or `export.as`: an expression (string) or a template (object).
    fn filter(
        &mut self,
        f: &Map<String, Value>,
        key: &str,
        pointer: &str,
        scope: &Scope,
        secrets: Secrets,
    ) {
        if let Some(v) = f.get(key) {
            self.expression(v, &pointer_push(pointer, key), scope, secrets);
        }
    }

    /// A property that is always a runtime expression: a string is one with or without `${}`;
    /// an object is a template whose strict `${...}` strings are expressions.
    fn expression(&mut self, v: &Value, pointer: &str, scope: &Scope, secrets: Secrets) {
        match v {
            Value::String(s) => self.compile(loose_source(s), pointer, scope, secrets),
            Value::Object(_) | Value::Array(_) => self.template(v, pointer, scope, secrets),
            _ => {}
        }
    }

    fn compile(&mut self, src: &str, pointer: &str, scope: &Scope, secrets: Secrets) {
        // Trimmed, so that the compiler's columns match the expression quoted in the message.
        let src = src.trim();
        let Err(e) = Expr::compile(src, &scope.names(secrets == Secrets::Allowed)) else {
            return;
        };
        // Compiling again with `$secrets` tells a confinement violation from a plain error.
        if secrets == Secrets::Forbidden && Expr::compile(src, &scope.names(true)).is_ok() {
            self.secrets_outside(pointer);
        } else {
            self.bad_expression(src, &e, pointer);
        }
    }

    /// The expression is quoted in the message because the compiler's column counts from the
    /// start of the expression, not of the line.
    fn bad_expression(&mut self, src: &str, e: &dyn std::fmt::Display, pointer: &str) {
        let message = if src.is_empty() {
            format!("expression does not compile: {e}")
        } else if src.chars().count() > 60 {
            let head: String = src.chars().take(60).collect();
            format!("expression `{head}…` does not compile: {e}")
        } else {
            format!("expression `{src}` does not compile: {e}")
        };
        self.at_value(Code::BadExpression, message, pointer);
    }

    /// A template: any JSON value whose strict `${...}` strings are expressions.
    fn template(&mut self, v: &Value, pointer: &str, scope: &Scope, secrets: Secrets) {
        let Err(errors) = Template::compile(v, &scope.names(secrets == Secrets::Allowed)) else {
            return;
        };
        for (rel, e) in errors {
            let p = format!("{pointer}{rel}");
            // Each failing string is compiled again on its own: that tells `$secrets` misuse
            // from other errors and gives columns relative to the quoted expression.
            let reported = self.out.len();
            if let Some(src) = v
                .pointer(&rel)
                .and_then(Value::as_str)
                .and_then(strip_strict)
            {
                self.compile(src, &p, scope, secrets);
            }
            if self.out.len() == reported {
                self.bad_expression("", &e, &p);
            }
        }
    }

    fn secrets_outside(&mut self, pointer: &str) {
        self.at_value(
            Code::SecretsOutsideInputFrom,
            "`$secrets` may only be used in `input.from`, so secrets cannot leak into arguments, \
             outputs or the context"
                .to_string(),
            pointer,
        );
    }

    /// A variable name declared by the flow (`for.each`, `for.at`, `catch.as`, ...), or the default.
    fn var_name(&mut self, v: Option<&Value>, default: &str, pointer: &str) -> String {
        let Some(name) = v.and_then(Value::as_str) else {
            return default.to_string();
        };
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.at_value(
                Code::BadExpression,
                format!("`{name}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"),
                pointer,
            );
            return default.to_string();
        }
        name.to_string()
    }
}

/// Whether `uri` starts with an `http` or `https` scheme (schemes are case-insensitive).
fn is_http_uri(uri: &str) -> bool {
    let scheme = uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("http" | "https"))
}
