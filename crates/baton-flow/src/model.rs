//! The typed model of a Serverless Workflow 1.0 document, as Baton executes it.
//!
//! The model is deserialized from a `serde_json::Value` (YAML and JSON are both first turned into
//! a value with source spans by the parser). It keeps runtime expressions and templates as
//! strings/values; compiling them is the job of the core's program builder, so the model stays a
//! plain description that can be serialized back, diffed and shown.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::duration::parse_iso8601_duration_ms;

/// A whole workflow document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub document: Document,
    #[serde(default)]
    pub input: Option<DataFilter>,
    #[serde(default, rename = "use")]
    pub use_: Option<Use>,
    #[serde(rename = "do")]
    pub do_: TaskList,
    #[serde(default)]
    pub timeout: Option<TimeoutRef>,
    #[serde(default)]
    pub output: Option<DataFilter>,
    #[serde(default)]
    pub schedule: Option<Value>,
    #[serde(default)]
    pub evaluate: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub dsl: String,
    pub namespace: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub tags: Option<Map<String, Value>>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Reusable components declared under `use`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Use {
    #[serde(default)]
    pub authentications: Map<String, Value>,
    #[serde(default)]
    pub errors: Map<String, Value>,
    #[serde(default)]
    pub extensions: Vec<Value>,
    #[serde(default)]
    pub functions: Map<String, Value>,
    #[serde(default)]
    pub retries: Map<String, Value>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub timeouts: Map<String, Value>,
    #[serde(default)]
    pub catalogs: Map<String, Value>,
}

/// An ordered list of named tasks (`- name: task`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskList(pub Vec<(String, Task)>);

impl<'de> Deserialize<'de> for TaskList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Visitors rather than an intermediate `Value`, so that error paths (serde_path_to_error)
        // reach into nested tasks: the loader maps them to source lines.
        struct ListVisitor;
        impl<'de> serde::de::Visitor<'de> for ListVisitor {
            type Value = TaskList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of named tasks (`- name: task`)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TaskList, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(NamedTask(name, task)) = seq.next_element()? {
                    out.push((name, task));
                }
                Ok(TaskList(out))
            }
        }
        d.deserialize_seq(ListVisitor)
    }
}

/// One `name: task` item of a task list.
struct NamedTask(String, Task);

impl<'de> Deserialize<'de> for NamedTask {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> serde::de::Visitor<'de> for ItemVisitor {
            type Value = NamedTask;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a task list item with exactly one key (the task name)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NamedTask, A::Error> {
                use serde::de::Error;
                let name: String = map.next_key()?.ok_or_else(|| {
                    A::Error::custom(
                        "a task list item must have exactly one key (the task name), found 0",
                    )
                })?;
                let task: Task = map.next_value()?;
                if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom(
                        "a task list item must have exactly one key (the task name), found more",
                    ));
                }
                Ok(NamedTask(name, task))
            }
        }
        d.deserialize_map(ItemVisitor)
    }
}

/// Input filtering and validation for the workflow or a task.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataFilter {
    /// `input.from`, `output.as` or `export.as`: a string expression or an object template.
    #[serde(default, alias = "from", alias = "as")]
    pub expr: Option<Value>,
    #[serde(default)]
    pub schema: Option<SchemaDef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaDef {
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub document: Option<Value>,
    #[serde(default)]
    pub resource: Option<Value>,
}

/// A timeout, inline or by name of a reusable one.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TimeoutRef {
    Inline { after: Duration },
    Named(String),
}

/// A duration: inline fields, ISO 8601 literal, or a runtime expression producing ISO 8601.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Duration {
    Inline(InlineDuration),
    Text(String),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InlineDuration {
    #[serde(default)]
    pub days: u64,
    #[serde(default)]
    pub hours: u64,
    #[serde(default)]
    pub minutes: u64,
    #[serde(default)]
    pub seconds: u64,
    #[serde(default)]
    pub milliseconds: u64,
}

impl Duration {
    /// The duration in milliseconds when it is a literal; `None` for expressions; `Err` for a
    /// malformed ISO 8601 literal.
    pub fn literal_ms(&self) -> Result<Option<u64>, String> {
        match self {
            Duration::Inline(d) => Ok(Some(d.total_ms())),
            Duration::Text(s) if baton_expr::strip_strict(s).is_some() => Ok(None),
            Duration::Text(s) => parse_iso8601_duration_ms(s).map(Some),
        }
    }
}

impl InlineDuration {
    pub fn total_ms(&self) -> u64 {
        self.days
            .saturating_mul(86_400_000)
            .saturating_add(self.hours.saturating_mul(3_600_000))
            .saturating_add(self.minutes.saturating_mul(60_000))
            .saturating_add(self.seconds.saturating_mul(1000))
            .saturating_add(self.milliseconds)
    }
}

/// Where control goes after a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FlowDirective {
    Continue,
    Exit,
    End,
    Goto(String),
}

impl FlowDirective {
    pub fn parse(s: &str) -> FlowDirective {
        match s {
            "continue" => FlowDirective::Continue,
            "exit" => FlowDirective::Exit,
            "end" => FlowDirective::End,
            other => FlowDirective::Goto(other.to_string()),
        }
    }
}

/// Properties every task has.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskBase {
    pub if_: Option<String>,
    pub input: Option<DataFilter>,
    pub output: Option<DataFilter>,
    pub export: Option<DataFilter>,
    pub timeout: Option<TimeoutRef>,
    pub then: Option<FlowDirective>,
    pub metadata: Option<Map<String, Value>>,
}

/// A task: the common base and what it does.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub base: TaskBase,
    pub kind: TaskKind,
}

// Boxing the large variants would change the field types the core matches on; a flow's model is
// built once per load, so the wasted bytes per task do not matter.
#[allow(
    clippy::large_enum_variant,
    reason = "field types kept stable for the core"
)]
#[derive(Debug, Clone, Serialize)]
pub enum TaskKind {
    /// `call: <function>` with `with:` arguments (a template). `http`, `openapi` and the custom
    /// functions of the registry are executed; `grpc`, `asyncapi`, `a2a` and `mcp` are refused by
    /// validation.
    Call {
        function: String,
        with: Value,
    },
    Do(TaskList),
    Fork {
        branches: TaskList,
        compete: bool,
    },
    Emit {
        event: Value,
    },
    For {
        each: String,
        in_: String,
        at: String,
        while_: Option<String>,
        do_: TaskList,
    },
    Listen {
        to: Value,
        read: ListenRead,
        foreach: Option<Value>,
    },
    Raise {
        error: RaiseError,
    },
    Run(RunSpec),
    Set(Value),
    Switch(Vec<(String, SwitchCase)>),
    Try {
        try_: TaskList,
        catch: Catch,
    },
    Wait(Duration),
}

impl TaskKind {
    /// The keyword naming the kind, as written in YAML.
    pub fn keyword(&self) -> &'static str {
        match self {
            TaskKind::Call { .. } => "call",
            TaskKind::Do(_) => "do",
            TaskKind::Fork { .. } => "fork",
            TaskKind::Emit { .. } => "emit",
            TaskKind::For { .. } => "for",
            TaskKind::Listen { .. } => "listen",
            TaskKind::Raise { .. } => "raise",
            TaskKind::Run(_) => "run",
            TaskKind::Set(_) => "set",
            TaskKind::Switch(_) => "switch",
            TaskKind::Try { .. } => "try",
            TaskKind::Wait(_) => "wait",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListenRead {
    #[default]
    Data,
    Envelope,
    Raw,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RaiseError {
    Named(String),
    Inline(Value),
}

/// `run:` — only `workflow` is executed; container, shell and script are refused (see validation).
#[derive(Debug, Clone, Serialize)]
pub enum RunSpec {
    Workflow {
        namespace: String,
        name: String,
        version: String,
        input: Option<Value>,
    },
    Unsupported {
        kind: String,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchCase {
    #[serde(default)]
    pub when: Option<String>,
    pub then: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Catch {
    #[serde(default)]
    pub errors: Option<CatchErrors>,
    #[serde(default, rename = "as")]
    pub as_: Option<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default, rename = "exceptWhen")]
    pub except_when: Option<String>,
    #[serde(default)]
    pub retry: Option<RetryRef>,
    #[serde(default, rename = "do")]
    pub do_: Option<TaskList>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CatchErrors {
    #[serde(default)]
    pub with: Option<ErrorFilter>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ErrorFilter {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "field types kept stable for the core"
)]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RetryRef {
    Named(String),
    Inline(RetryPolicy),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default, rename = "exceptWhen")]
    pub except_when: Option<String>,
    #[serde(default)]
    pub delay: Option<Duration>,
    #[serde(default)]
    pub backoff: Option<Backoff>,
    #[serde(default)]
    pub limit: Option<RetryLimit>,
    #[serde(default)]
    pub jitter: Option<Jitter>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default)]
    pub constant: Option<Value>,
    #[serde(default)]
    pub exponential: Option<Value>,
    #[serde(default)]
    pub linear: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryLimit {
    #[serde(default)]
    pub attempt: Option<RetryAttemptLimit>,
    #[serde(default)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryAttemptLimit {
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Jitter {
    pub from: Duration,
    pub to: Duration,
}

/// The raw shape of a task, every kind's keys side by side; turned into [`Task`] by checking
/// that exactly one kind is present.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    #[serde(default, rename = "if")]
    if_: Option<String>,
    #[serde(default)]
    input: Option<DataFilter>,
    #[serde(default)]
    output: Option<DataFilter>,
    #[serde(default)]
    export: Option<DataFilter>,
    #[serde(default)]
    timeout: Option<TimeoutRef>,
    #[serde(default)]
    then: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    call: Option<String>,
    #[serde(default)]
    with: Option<Value>,
    #[serde(default, rename = "do")]
    do_: Option<TaskList>,
    #[serde(default)]
    fork: Option<RawFork>,
    #[serde(default)]
    emit: Option<RawEmit>,
    #[serde(default, rename = "for")]
    for_: Option<RawFor>,
    #[serde(default, rename = "while")]
    while_: Option<String>,
    #[serde(default)]
    listen: Option<RawListen>,
    #[serde(default)]
    foreach: Option<Value>,
    #[serde(default)]
    raise: Option<RawRaise>,
    #[serde(default)]
    run: Option<Map<String, Value>>,
    #[serde(default)]
    set: Option<Value>,
    #[serde(default)]
    switch: Option<Vec<Map<String, Value>>>,
    #[serde(default, rename = "try")]
    try_: Option<TaskList>,
    #[serde(default)]
    catch: Option<Catch>,
    #[serde(default)]
    wait: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFork {
    branches: TaskList,
    #[serde(default)]
    compete: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmit {
    event: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFor {
    #[serde(default)]
    each: Option<String>,
    #[serde(rename = "in")]
    in_: String,
    #[serde(default)]
    at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    to: Value,
    #[serde(default)]
    read: ListenRead,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRaise {
    error: RaiseError,
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawTask::deserialize(d)?;
        let base = TaskBase {
            if_: raw.if_,
            input: raw.input,
            output: raw.output,
            export: raw.export,
            timeout: raw.timeout,
            then: raw.then.as_deref().map(FlowDirective::parse),
            metadata: raw.metadata,
        };
        let mut kinds: Vec<TaskKind> = Vec::new();
        if let Some(function) = raw.call {
            kinds.push(TaskKind::Call {
                function,
                with: raw.with.unwrap_or(Value::Null),
            });
        } else if raw.with.is_some() {
            return Err(D::Error::custom("`with` is only allowed on a `call` task"));
        }
        if let Some(f) = raw.for_ {
            let do_ = raw
                .do_
                .ok_or_else(|| D::Error::custom("a `for` task needs a `do` list"))?;
            kinds.push(TaskKind::For {
                each: f.each.unwrap_or_else(|| "item".into()),
                in_: f.in_,
                at: f.at.unwrap_or_else(|| "index".into()),
                while_: raw.while_,
                do_,
            });
        } else {
            if raw.while_.is_some() {
                return Err(D::Error::custom("`while` is only allowed on a `for` task"));
            }
            if let Some(list) = raw.do_ {
                kinds.push(TaskKind::Do(list));
            }
        }
        if let Some(f) = raw.fork {
            kinds.push(TaskKind::Fork {
                branches: f.branches,
                compete: f.compete,
            });
        }
        if let Some(e) = raw.emit {
            kinds.push(TaskKind::Emit { event: e.event });
        }
        if let Some(l) = raw.listen {
            kinds.push(TaskKind::Listen {
                to: l.to,
                read: l.read,
                foreach: raw.foreach,
            });
        } else if raw.foreach.is_some() {
            return Err(D::Error::custom(
                "`foreach` is only allowed on a `listen` task",
            ));
        }
        if let Some(r) = raw.raise {
            kinds.push(TaskKind::Raise { error: r.error });
        }
        if let Some(run) = raw.run {
            kinds.push(TaskKind::Run(parse_run(run).map_err(D::Error::custom)?));
        }
        if let Some(s) = raw.set {
            kinds.push(TaskKind::Set(s));
        }
        if let Some(items) = raw.switch {
            let mut cases = Vec::with_capacity(items.len());
            for item in items {
                if item.len() != 1 {
                    return Err(D::Error::custom(
                        "a switch case must have exactly one key (its name)",
                    ));
                }
                let (name, body) = item.into_iter().next().expect("len checked");
                let case = SwitchCase::deserialize(body).map_err(D::Error::custom)?;
                cases.push((name, case));
            }
            kinds.push(TaskKind::Switch(cases));
        }
        match (raw.try_, raw.catch) {
            (Some(try_), Some(catch)) => kinds.push(TaskKind::Try { try_, catch }),
            (Some(_), None) => return Err(D::Error::custom("a `try` task needs a `catch`")),
            (None, Some(_)) => {
                return Err(D::Error::custom("`catch` is only allowed on a `try` task"));
            }
            (None, None) => {}
        }
        if let Some(w) = raw.wait {
            kinds.push(TaskKind::Wait(w));
        }
        match kinds.len() {
            1 => Ok(Task {
                base,
                kind: kinds.pop().expect("len 1"),
            }),
            0 => Err(D::Error::custom(
                "a task must have one of: call, do, fork, emit, for, listen, raise, run, set, switch, try, wait",
            )),
            _ => Err(D::Error::custom(format!(
                "a task must have exactly one kind, found {}",
                kinds
                    .iter()
                    .map(|k| k.keyword())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
        }
    }
}

fn parse_run(mut run: Map<String, Value>) -> Result<RunSpec, String> {
    // `await` and `return` are generic process options; Baton's sub-flows always await.
    run.remove("await");
    run.remove("return");
    if let Some(wf) = run.remove("workflow") {
        let obj = wf.as_object().ok_or("`run.workflow` must be an object")?;
        let field = |k: &str| -> Result<String, String> {
            obj.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("`run.workflow.{k}` is required and must be a string"))
        };
        let version = obj
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("latest")
            .to_string();
        return Ok(RunSpec::Workflow {
            namespace: field("namespace")?,
            name: field("name")?,
            version,
            input: obj.get("input").cloned(),
        });
    }
    let kind = run
        .keys()
        .next()
        .cloned()
        .ok_or("`run` needs one of container, script, shell, workflow")?;
    Ok(RunSpec::Unsupported { kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_kinds_are_exclusive() {
        let t: Result<Task, _> =
            serde_json::from_value(serde_json::json!({"set": {"a": 1}, "wait": "PT1S"}));
        assert!(t.unwrap_err().to_string().contains("exactly one kind"));
        let t: Task =
            serde_json::from_value(serde_json::json!({"for": {"in": ".xs"}, "do": []})).unwrap();
        assert!(matches!(t.kind, TaskKind::For { ref each, .. } if each == "item"));
    }
}
