//! The interpreter: runs a flow as ordinary async Rust whose only way to touch the world is an
//! [`EffectFuture`], which resolves from the journal or asks the driver.
//!
//! Why async: `fork`, `try`/`retry`, timeouts racing a task body and nested loops are plain
//! control flow here instead of a hand-built frame stack. The future is polled by
//! [`crate::Instance`] with a no-op waker; there is no executor, no thread and no clock. An effect
//! that has no result yet registers a request and returns `Pending`; the instance returns those
//! requests as actions. Delivering a result and polling again continues exactly where it stopped,
//! and replaying a journal (deliver, poll, deliver, poll…) reaches the same point.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use baton_flow::{
    Catch, DataFilter, Duration, ErrorFilter, FlowDirective, ListenRead, RaiseError, RetryPolicy,
    RetryRef, RunSpec, Task, TaskKind, TaskList, TimeoutRef,
};
use serde_json::{Value, json};

use crate::backoff::{Backoff, Growth};
use crate::complete::{BranchEnd, DEADLINE_KEY_MARK, Deadline, Extension, Rule};
use crate::effect::{EffectCall, EffectRequest, deterministic_unit};
use crate::http::build_http_request;
use crate::journal::{EffectKey, InstanceId, Outcome};
use crate::problem::{ErrorKind, Problem};
use crate::program::{BASE_VARS, Env, Mentions, Program};

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A task's progress, reported to the driver (not journaled: it is derivable by replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    pub reference: String,
    pub name: String,
    pub phase: TaskPhase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskPhase {
    Started,
    Completed,
    Skipped,
    Faulted,
    /// The task's effect was undone by its compensation (the instance faulted or was cancelled).
    Compensated,
    /// Its compensation found nothing to undo: already undone by someone, or never applied.
    CompensationSkipped,
    /// Its compensation could not be done: a person must check.
    CompensationUnresolved,
}

/// State shared by every future of one instance.
#[derive(Default)]
pub(crate) struct Shared {
    pub now_ms: u64,
    /// Results delivered and not yet taken by their future.
    pub results: HashMap<EffectKey, Outcome>,
    /// Effects requested and not yet answered, with their requests (ordered for determinism).
    pub outstanding: BTreeMap<EffectKey, EffectRequest>,
    /// Requests made since the driver last looked.
    pub new_requests: Vec<EffectCall>,
    /// Effects whose futures were dropped (a race was lost) since the driver last looked.
    pub cancelled: Vec<EffectKey>,
    pub events: Vec<TaskEvent>,
    /// What a task wants the journal to show about how it ended (a fan-out's missing branches),
    /// as `(task key, note)`; the instance turns them into `task_note` entries.
    pub task_notes: Vec<(String, Value)>,
    /// `$context`, replaced by `export.as`.
    pub context: Value,
    pub effects_requested: u64,
    /// Effects that happened (or may have) and declared how to undo them, oldest first
    /// (`metadata.baton.compensate`; see `saga.rs`).
    pub saga: Vec<crate::saga::SagaStep>,
    /// Calls whose outcome was `unknown`.
    pub unknown_calls: HashSet<EffectKey>,
    /// Effects dropped while outstanding (a timeout or a lost race): they may have been sent.
    pub abandoned: HashSet<EffectKey>,
}

/// What every future of an instance can see.
pub(crate) struct Ctx {
    pub instance: InstanceId,
    pub shared: Arc<Mutex<Shared>>,
    pub env: Env,
    /// Set when the workflow started (`$workflow.startedAt`).
    pub started_at_ms: u64,
    pub workflow_input: Value,
}

impl Ctx {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.lock().now_ms
    }

    pub(crate) fn event(&self, reference: &str, name: &str, phase: TaskPhase) {
        self.lock().events.push(TaskEvent {
            reference: reference.to_string(),
            name: name.to_string(),
            phase,
        });
    }

    /// Performs an effect: resolves from a delivered result, or asks the driver.
    pub(crate) fn effect(&self, key: String, request: EffectRequest) -> EffectFuture<'_> {
        EffectFuture {
            ctx: self,
            key: EffectKey(key),
            request: Some(request),
            done: false,
        }
    }
}

/// Resolves when the effect's outcome is delivered. Dropping it before that (a lost race, a
/// timeout) cancels the effect.
pub(crate) struct EffectFuture<'a> {
    ctx: &'a Ctx,
    key: EffectKey,
    request: Option<EffectRequest>,
    done: bool,
}

impl Future for EffectFuture<'_> {
    type Output = Result<Outcome, Problem>;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut shared = this.ctx.lock();
        if let Some(outcome) = shared.results.remove(&this.key) {
            shared.outstanding.remove(&this.key);
            this.done = true;
            return Poll::Ready(Ok(outcome));
        }
        if let Some(request) = this.request.take() {
            shared.effects_requested += 1;
            if shared.effects_requested > this.ctx.env.limits.effects_per_instance_max {
                this.done = true;
                return Poll::Ready(Err(Problem::new(ErrorKind::Runtime, "Too many effects")
                    .with_detail(format!(
                        "the instance exceeded {} effects",
                        this.ctx.env.limits.effects_per_instance_max
                    ))));
            }
            shared.outstanding.insert(this.key.clone(), request.clone());
            let call = EffectCall::new(&this.ctx.instance, this.key.clone(), request);
            shared.new_requests.push(call);
        }
        Poll::Pending
    }
}

impl EffectFuture<'_> {
    /// Whether the effect's outcome is delivered and waiting to be taken. A deadline's timer is
    /// looked at this way before its task is polled, so that a deadline that has passed wins
    /// over work that could otherwise still move on in the same poll (see `until_deadline`).
    fn answered(&self) -> bool {
        self.ctx.lock().results.contains_key(&self.key)
    }
}

impl Drop for EffectFuture<'_> {
    fn drop(&mut self) {
        if !self.done && self.request.is_none() {
            let mut shared = self.ctx.lock();
            if shared.outstanding.remove(&self.key).is_some() {
                shared.abandoned.insert(self.key.clone());
                shared.cancelled.push(self.key.clone());
            }
        }
    }
}

/// Local variables in scope (`for` item and index, `catch` error).
#[derive(Clone, Default)]
pub(crate) struct Locals {
    names: Vec<String>,
    values: Vec<Value>,
}

impl Locals {
    pub(crate) fn with(&self, name: &str, value: Value) -> Locals {
        let mut l = self.clone();
        if let Some(i) = l.names.iter().position(|n| n == name) {
            l.values[i] = value;
        } else {
            l.names.push(name.to_string());
            l.values.push(value);
        }
        l
    }
    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
}

/// One workflow being run (the top-level one, or a sub-flow).
pub(crate) struct Frame<'a> {
    pub program: &'a Arc<Program>,
    /// `$workflow`.
    pub descriptor: Value,
    pub depth: u32,
}

/// What a task hands to the next.
pub(crate) struct TaskDone {
    output: Value,
    directive: FlowDirective,
}

/// How a task list ended.
enum ListEnd {
    /// Ran off the end, or `exit`.
    Normal(Value),
    /// `then: end`: the whole workflow ends gracefully with this output.
    End(Value),
}

/// How a race against a deadline ended.
enum Raced<T> {
    Done(T),
    /// The deadline's timer fired first; the work was dropped (its effects cancelled).
    Late,
}

/// Where an expression is evaluated, for the variables it may see.
#[derive(Clone, Copy)]
pub(crate) struct EvalSite<'v> {
    /// `.`
    pub input: &'v Value,
    /// `$input` when it is not `.`: the task's transformed input in `output.as` and `export.as`.
    pub task_input: Option<&'v Value>,
    pub output: Option<&'v Value>,
    pub task: Option<&'v TaskInfo<'v>>,
    pub secrets: bool,
}

pub(crate) struct TaskInfo<'v> {
    pub name: &'v str,
    pub reference: &'v str,
    pub started_at_ms: u64,
    pub raw_input: &'v Value,
    pub raw_output: Option<&'v Value>,
}

fn datetime_descriptor(ms: u64) -> Value {
    json!({
        "iso8601": crate::time::iso8601_utc(ms),
        "epoch": {"seconds": ms / 1000, "milliseconds": ms},
    })
}

pub(crate) fn workflow_descriptor(
    id: &InstanceId,
    program: &Program,
    input: &Value,
    started_at_ms: u64,
) -> Value {
    json!({
        "id": id.0,
        "definition": program.definition,
        "input": input,
        "startedAt": datetime_descriptor(started_at_ms),
    })
}

impl Ctx {
    /// Evaluates a jq expression, binding only the variables the source mentions (building
    /// `$task` and `$workflow` costs a copy; most expressions use neither).
    fn eval(
        &self,
        frame: &Frame<'_>,
        src: &str,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<Value, Problem> {
        let names = locals.names();
        let (expr, mentions) = frame.program.expr(src, &names)?;
        let values = self.var_values(frame, mentions, locals, site);
        expr.eval(site.input, &values, &self.env.limits.expression)
            .map_err(|e| expr_problem(src, &e.to_string()))
    }

    fn eval_template(
        &self,
        frame: &Frame<'_>,
        pointer: &str,
        value: &Value,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<Value, Problem> {
        if !contains_expression(value) {
            return Ok(value.clone());
        }
        let names = locals.names();
        let (template, mentions) = frame.program.template(pointer, value, &names)?;
        let values = self.var_values(frame, mentions, locals, site);
        template
            .eval(site.input, &values, &self.env.limits.expression)
            .map_err(|e| expr_problem(pointer, &e.to_string()))
    }

    /// A filter (`input.from`, `output.as`, `export.as`): a loose expression or an object template.
    fn eval_filter(
        &self,
        frame: &Frame<'_>,
        pointer: &str,
        filter: &Value,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<Value, Problem> {
        match filter {
            Value::String(s) => self.eval(frame, baton_expr::loose_source(s), locals, site),
            other => self.eval_template(frame, pointer, other, locals, site),
        }
    }

    fn var_values(
        &self,
        frame: &Frame<'_>,
        mentions: Mentions,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Vec<Value> {
        // Indices follow BASE_VARS: context, input, output, secrets, task, workflow, runtime,
        // authorization.
        let mut values = Vec::with_capacity(BASE_VARS.len() + locals.values.len());
        values.push(if mentions.has(0) {
            self.lock().context.clone()
        } else {
            Value::Null
        });
        values.push(if mentions.has(1) {
            site.task_input.unwrap_or(site.input).clone()
        } else {
            Value::Null
        });
        values.push(if mentions.has(2) {
            site.output.cloned().unwrap_or(Value::Null)
        } else {
            Value::Null
        });
        values.push(if site.secrets && mentions.has(3) {
            self.env.secrets.clone()
        } else {
            Value::Null
        });
        values.push(match site.task {
            Some(t) if mentions.has(4) => json!({
                "name": t.name,
                "reference": t.reference,
                "definition": frame.program.definition.pointer(t.reference).cloned().unwrap_or(Value::Null),
                "input": t.raw_input,
                "output": t.raw_output,
                "startedAt": datetime_descriptor(t.started_at_ms),
            }),
            _ => Value::Null,
        });
        values.push(if mentions.has(5) {
            frame.descriptor.clone()
        } else {
            Value::Null
        });
        values.push(if mentions.has(6) {
            self.env.runtime.clone()
        } else {
            Value::Null
        });
        values.push(Value::Null); // $authorization: resolved auth is never exposed to expressions
        values.extend(locals.values.iter().cloned());
        values
    }

    pub(crate) fn truthy(
        &self,
        frame: &Frame<'_>,
        src: &str,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<bool, Problem> {
        let v = self.eval(frame, baton_expr::loose_source(src), locals, site)?;
        Ok(!matches!(v, Value::Null | Value::Bool(false)))
    }

    fn validate_schema(
        &self,
        frame: &Frame<'_>,
        pointer: &str,
        filter: Option<&DataFilter>,
        value: &Value,
        what: &str,
    ) -> Result<(), Problem> {
        let Some(schema) = filter.and_then(|f| f.schema.as_ref()) else {
            return Ok(());
        };
        let Some(doc) = &schema.document else {
            return Err(Problem::new(
                ErrorKind::Configuration,
                "External schemas are not supported",
            )
            .with_detail("use an inline `schema.document`")
            .at(pointer));
        };
        let validator = frame.program.schema(pointer, doc)?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .take(5)
            .map(|e| format!("{}: {}", e.instance_path(), e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::new(
                ErrorKind::Validation,
                format!("The {what} does not match its schema"),
            )
            .with_detail(errors.join("; ")))
        }
    }

    /// Runs a whole workflow (top level or sub-flow): input, tasks, output, timeout.
    pub(crate) async fn run_workflow(
        &self,
        frame: &Frame<'_>,
        raw_input: Value,
        key: &str,
    ) -> Result<Value, Problem> {
        let wf = &frame.program.workflow;
        self.validate_schema(
            frame,
            "/input",
            wf.input.as_ref(),
            &raw_input,
            "workflow input",
        )
        .map_err(|p| p.at("/input"))?;
        let site = EvalSite {
            input: &raw_input,
            task_input: None,
            output: None,
            task: None,
            secrets: true,
        };
        let input = match wf.input.as_ref().and_then(|f| f.expr.as_ref()) {
            Some(from) => self
                .eval_filter(frame, "/input/from", from, &Locals::default(), site)
                .map_err(|p| p.at("/input/from"))?,
            None => raw_input.clone(),
        };
        let body = async {
            match self
                .run_list(
                    frame,
                    &wf.do_,
                    "/do",
                    &format!("{key}/do"),
                    input,
                    &Locals::default(),
                )
                .await?
            {
                ListEnd::Normal(v) | ListEnd::End(v) => Ok(v),
            }
        };
        let output = match &wf.timeout {
            Some(t) => {
                let ms = self.timeout_ms(frame, t, "/timeout")?;
                self.with_timeout(body, ms, format!("{key}/timeout"), "/")
                    .await?
            }
            None => body.await?,
        };
        let site = EvalSite {
            input: &output,
            task_input: None,
            output: None,
            task: None,
            secrets: false,
        };
        let output = match wf.output.as_ref().and_then(|f| f.expr.as_ref()) {
            Some(as_) => self
                .eval_filter(frame, "/output/as", as_, &Locals::default(), site)
                .map_err(|p| p.at("/output/as"))?,
            None => output,
        };
        self.validate_schema(
            frame,
            "/output",
            wf.output.as_ref(),
            &output,
            "workflow output",
        )
        .map_err(|p| p.at("/output"))?;
        Ok(output)
    }

    fn timeout_ms(&self, frame: &Frame<'_>, t: &TimeoutRef, pointer: &str) -> Result<u64, Problem> {
        match t {
            TimeoutRef::Inline { after } => self.duration_ms(frame, after, pointer, &Value::Null),
            TimeoutRef::Named(name) => {
                let def = frame
                    .program
                    .workflow
                    .use_
                    .as_ref()
                    .and_then(|u| u.timeouts.get(name))
                    .and_then(|v| v.get("after"))
                    .ok_or_else(|| {
                        Problem::new(
                            ErrorKind::Configuration,
                            format!("Unknown timeout `{name}`"),
                        )
                        .at(pointer)
                    })?;
                let d: Duration = serde_json::from_value(def.clone()).map_err(|e| {
                    Problem::new(ErrorKind::Configuration, "Invalid timeout")
                        .with_detail(e.to_string())
                        .at(pointer)
                })?;
                self.duration_ms(frame, &d, pointer, &Value::Null)
            }
        }
    }

    fn duration_ms(
        &self,
        frame: &Frame<'_>,
        d: &Duration,
        pointer: &str,
        input: &Value,
    ) -> Result<u64, Problem> {
        match d.literal_ms() {
            Ok(Some(ms)) => Ok(ms),
            Ok(None) => {
                let Duration::Text(src) = d else { return Ok(0) };
                let site = EvalSite {
                    input,
                    task_input: None,
                    output: None,
                    task: None,
                    secrets: false,
                };
                let v = self.eval(
                    frame,
                    baton_expr::loose_source(src),
                    &Locals::default(),
                    site,
                )?;
                let text = v.as_str().ok_or_else(|| {
                    Problem::new(
                        ErrorKind::Expression,
                        "A duration expression must produce an ISO 8601 string",
                    )
                    .at(pointer)
                })?;
                baton_flow::parse_iso8601_duration_ms(text).map_err(|e| {
                    Problem::new(ErrorKind::Expression, "Invalid duration")
                        .with_detail(e)
                        .at(pointer)
                })
            }
            Err(e) => Err(Problem::new(ErrorKind::Configuration, "Invalid duration")
                .with_detail(e)
                .at(pointer)),
        }
    }

    /// Races `body` against a durable timer; the loser is dropped (its effects cancelled).
    async fn with_timeout<T>(
        &self,
        body: impl Future<Output = Result<T, Problem>> + Send,
        ms: u64,
        key: String,
        reference: &str,
    ) -> Result<T, Problem> {
        let fire_at_ms = self.now_ms().saturating_add(ms);
        let timer = self.effect(key, EffectRequest::Timer { fire_at_ms });
        let mut body = std::pin::pin!(body);
        let mut timer = std::pin::pin!(timer);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = body.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if let Poll::Ready(r) = timer.as_mut().poll(cx) {
                return Poll::Ready(match r {
                    Err(p) => Err(p),
                    Ok(_) => Err(Problem::new(ErrorKind::Timeout, "Timed out")
                        .with_detail(format!("did not finish within {ms} ms"))
                        .at(reference)),
                });
            }
            Poll::Pending
        })
        .await
    }

    /// The length of a `metadata.baton.deadline`, measured from now on the journal's clock.
    fn deadline_ms(
        &self,
        frame: &Frame<'_>,
        deadline: &Deadline,
        reference: &str,
        input: &Value,
    ) -> Result<u64, Problem> {
        let pointer = format!("{reference}/metadata/baton/deadline");
        self.duration_value_ms(frame, &deadline.duration, &pointer, input)
    }

    /// A duration declared under `metadata.baton`: the short form (`30s`), ISO 8601, the spec's
    /// inline object, or a runtime expression producing ISO 8601.
    pub(crate) fn duration_value_ms(
        &self,
        frame: &Frame<'_>,
        value: &Value,
        pointer: &str,
        input: &Value,
    ) -> Result<u64, Problem> {
        // The short form is Baton's (one grammar, in baton-flow); ISO 8601, the object and
        // expressions are the DSL's `Duration`.
        if let Value::String(s) = value
            && let Ok(ms) = baton_flow::duration::parse_short_duration_ms(s)
        {
            return Ok(ms);
        }
        let d: Duration = serde_json::from_value(value.clone()).map_err(|e| {
            Problem::new(ErrorKind::Configuration, "Invalid duration")
                .with_detail(e.to_string())
                .at(pointer)
        })?;
        self.duration_ms(frame, &d, pointer, input)
    }

    /// The durable timer of a deadline (`<key>#deadline`); it is only requested when first
    /// polled, so work that finishes at once never starts one.
    fn deadline_timer(&self, key: &str, ms: u64) -> EffectFuture<'_> {
        let fire_at_ms = self.now_ms().saturating_add(ms);
        self.effect(
            format!("{key}{DEADLINE_KEY_MARK}"),
            EffectRequest::Timer { fire_at_ms },
        )
    }

    /// Runs `body` until the deadline's timer fires. Unlike `with_timeout`, the timer is looked
    /// at first: when its outcome is already there (several outcomes journaled while the
    /// instance was suspended), the deadline wins even if the body could finish in the same
    /// poll. So a journaled `#deadline` outcome always means the deadline was taken, live and in
    /// replay alike. The timer is borrowed, not owned, so that a loop can race every iteration
    /// against one deadline.
    async fn until_deadline<T>(
        &self,
        body: impl Future<Output = T> + Send,
        timer: &mut EffectFuture<'_>,
    ) -> Result<Raced<T>, Problem> {
        let mut body = std::pin::pin!(body);
        std::future::poll_fn(|cx| {
            if !timer.answered()
                && let Poll::Ready(v) = body.as_mut().poll(cx)
            {
                return Poll::Ready(Ok(Raced::Done(v)));
            }
            match Pin::new(&mut *timer).poll(cx) {
                Poll::Ready(r) => Poll::Ready(r.and_then(expect_ok).map(|_| Raced::Late)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Runs a task list, following flow directives.
    fn run_list<'a>(
        &'a self,
        frame: &'a Frame<'a>,
        list: &'a TaskList,
        reference: &'a str,
        key: &'a str,
        input: Value,
        locals: &'a Locals,
    ) -> BoxFut<'a, Result<ListEnd, Problem>> {
        Box::pin(async move {
            let tasks = &list.0;
            let mut data = input;
            let mut i = 0usize;
            // A `then: <task>` loop is legal and bounded by the effect and iteration limits; the
            // counter keeps a pure (effect-free) goto loop from spinning forever.
            let mut steps: u64 = 0;
            while i < tasks.len() {
                steps += 1;
                if steps > self.env.limits.for_iterations_max {
                    return Err(
                        Problem::new(ErrorKind::Runtime, "Too many task transitions")
                            .with_detail(format!(
                                "more than {} in one task list",
                                self.env.limits.for_iterations_max
                            ))
                            .at(reference),
                    );
                }
                let (name, task) = &tasks[i];
                let task_ref = format!("{reference}/{i}/{name}");
                let task_key = if steps > tasks.len() as u64 {
                    // Revisiting a task through `then`: each visit gets its own effect keys.
                    format!("{key}/{i}/{name}@{steps}")
                } else {
                    format!("{key}/{i}/{name}")
                };
                let done = self
                    .run_task(frame, name, task, &task_ref, &task_key, data, locals)
                    .await?;
                data = done.output;
                match done.directive {
                    FlowDirective::Continue => i += 1,
                    FlowDirective::Exit => return Ok(ListEnd::Normal(data)),
                    FlowDirective::End => return Ok(ListEnd::End(data)),
                    FlowDirective::Goto(target) => {
                        i = tasks
                            .iter()
                            .position(|(n, _)| *n == target)
                            .ok_or_else(|| {
                                Problem::new(
                                    ErrorKind::Configuration,
                                    format!("Unknown task `{target}` in `then`"),
                                )
                                .at(&task_ref)
                            })?;
                    }
                }
            }
            Ok(ListEnd::Normal(data))
        })
    }

    /// Runs one task: `if`, input, body (with timeout), output, export, `then`.
    #[allow(clippy::too_many_arguments)]
    fn run_task<'a>(
        &'a self,
        frame: &'a Frame<'a>,
        name: &'a str,
        task: &'a Task,
        reference: &'a str,
        key: &'a str,
        raw_input: Value,
        locals: &'a Locals,
    ) -> BoxFut<'a, Result<TaskDone, Problem>> {
        Box::pin(async move {
            let base = &task.base;
            let started_at_ms = self.now_ms();
            let info = TaskInfo {
                name,
                reference,
                started_at_ms,
                raw_input: &raw_input,
                raw_output: None,
            };
            let site = EvalSite {
                input: &raw_input,
                task_input: None,
                output: None,
                task: Some(&info),
                secrets: false,
            };
            if let Some(cond) = &base.if_
                && !self
                    .truthy(frame, cond, locals, site)
                    .map_err(|p| p.at(reference))?
            {
                self.event(reference, name, TaskPhase::Skipped);
                return Ok(TaskDone {
                    output: raw_input,
                    directive: FlowDirective::Continue,
                });
            }
            self.event(reference, name, TaskPhase::Started);
            let ext = match Extension::of(base).and_then(|ext| {
                // A rule on a task that does not fan out would be silently meaningless; a
                // compensation undoes one call's effect, keyed by that call's idempotency key.
                let direct_call = match &task.kind {
                    TaskKind::Call { function, .. } => !frame
                        .program
                        .workflow
                        .use_
                        .as_ref()
                        .is_some_and(|u| u.functions.contains_key(function)),
                    _ => false,
                };
                ext.fits(task.kind.keyword(), direct_call)
                    .map_err(|detail| {
                        Problem::new(ErrorKind::Configuration, "Invalid `metadata.baton`")
                            .with_detail(detail)
                    })?;
                Ok(ext)
            }) {
                Ok(ext) => ext,
                Err(p) => {
                    self.event(reference, name, TaskPhase::Faulted);
                    return Err(p.at(reference));
                }
            };
            let work = async {
                let input = match base.input.as_ref().and_then(|f| f.expr.as_ref()) {
                    Some(from) => self.eval_filter(
                        frame,
                        &format!("{reference}/input/from"),
                        from,
                        locals,
                        EvalSite {
                            secrets: true,
                            ..site
                        },
                    )?,
                    None => raw_input.clone(),
                };
                self.validate_schema(
                    frame,
                    &format!("{reference}/input"),
                    base.input.as_ref(),
                    &input,
                    "task input",
                )?;
                // On the stack before the call is sent: if the task is dropped while the call is
                // in flight (a cancel, a deadline), the effect may still have happened.
                if let Some(spec) = &ext.compensate {
                    self.effect_starting(frame, name, reference, key, &input, spec);
                }
                let body = self.run_body(frame, task, reference, key, &input, locals, &info, &ext);
                let ran = match &base.timeout {
                    Some(t) => {
                        let ms = self.timeout_ms(frame, t, &format!("{reference}/timeout"))?;
                        self.with_timeout(body, ms, format!("{key}#timeout"), reference)
                            .await
                    }
                    None => body.await,
                };
                // The effect happened (or may have) whatever becomes of the output below.
                if ext.compensate.is_some() {
                    self.effect_ended(key, ran.as_ref().ok().map(|(o, _)| o));
                }
                let (raw_output, directive) = ran?;
                let info_out = TaskInfo {
                    raw_output: Some(&raw_output),
                    ..info
                };
                let site = EvalSite {
                    input: &input,
                    task_input: None,
                    output: None,
                    task: Some(&info_out),
                    secrets: false,
                };
                let output = match base.output.as_ref().and_then(|f| f.expr.as_ref()) {
                    Some(as_) => {
                        let site = EvalSite {
                            input: &raw_output,
                            task_input: Some(&input),
                            ..site
                        };
                        self.eval_filter(
                            frame,
                            &format!("{reference}/output/as"),
                            as_,
                            locals,
                            site,
                        )?
                    }
                    None => raw_output.clone(),
                };
                self.validate_schema(
                    frame,
                    &format!("{reference}/output"),
                    base.output.as_ref(),
                    &output,
                    "task output",
                )?;
                if let Some(export) = base.export.as_ref().and_then(|f| f.expr.as_ref()) {
                    let site = EvalSite {
                        input: &output,
                        task_input: Some(&input),
                        output: Some(&output),
                        task: Some(&info_out),
                        secrets: false,
                    };
                    let ctx_value = self.eval_filter(
                        frame,
                        &format!("{reference}/export/as"),
                        export,
                        locals,
                        site,
                    )?;
                    self.validate_schema(
                        frame,
                        &format!("{reference}/export"),
                        base.export.as_ref(),
                        &ctx_value,
                        "context",
                    )?;
                    self.lock().context = ctx_value;
                }
                let directive = match directive {
                    Some(d) => d,
                    None => base.then.clone().unwrap_or(FlowDirective::Continue),
                };
                Ok::<_, Problem>(TaskDone { output, directive })
            };
            // A deadline with a default or a `then` covers the whole task (input to export); a
            // fan-out's own deadline (no default, no `then`) is raced branch by branch in
            // `run_fork` and `run_for` instead.
            let result = match ext.deadline.as_ref().filter(|d| !d.is_fanout_only()) {
                None => work.await,
                Some(deadline) => {
                    self.with_deadline(frame, task, reference, key, deadline, work, locals, site)
                        .await
                }
            };
            match result {
                Ok(done) => {
                    self.event(reference, name, TaskPhase::Completed);
                    Ok(done)
                }
                Err(p) => {
                    self.event(reference, name, TaskPhase::Faulted);
                    Err(p.at(reference))
                }
            }
        })
    }

    /// Races a task against its `metadata.baton.deadline`. When the deadline comes first, the
    /// task is abandoned (dropping its work cancels its outstanding effects: a `listen` that
    /// never gets its event, an approval nobody answers) and the declared safe default becomes
    /// its output, evaluated on the task's input; without a `default` the input passes through
    /// unchanged. The flow goes on at the deadline's `then`, else at the task's own `then`.
    /// `output.as` and `export.as` do not apply to a default: it is the value the flow declared
    /// for this case, not a result of the task. The journaled `#deadline` outcome is the record
    /// that the default was taken.
    #[allow(clippy::too_many_arguments)]
    async fn with_deadline(
        &self,
        frame: &Frame<'_>,
        task: &Task,
        reference: &str,
        key: &str,
        deadline: &Deadline,
        work: impl Future<Output = Result<TaskDone, Problem>> + Send,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<TaskDone, Problem> {
        let ms = self.deadline_ms(frame, deadline, reference, site.input)?;
        let mut timer = self.deadline_timer(key, ms);
        match self.until_deadline(work, &mut timer).await? {
            Raced::Done(done) => done,
            Raced::Late => {
                let output = match &deadline.default {
                    Some(value) => self.eval_template(
                        frame,
                        &format!("{reference}/metadata/baton/default"),
                        value,
                        locals,
                        site,
                    )?,
                    None => site.input.clone(),
                };
                let directive = match &deadline.then {
                    Some(target) => FlowDirective::parse(target),
                    None => task.base.then.clone().unwrap_or(FlowDirective::Continue),
                };
                Ok(TaskDone { output, directive })
            }
        }
    }

    /// The task's own work. Returns its raw output and, for `switch`, the chosen directive.
    #[allow(clippy::too_many_arguments)]
    fn run_body<'a>(
        &'a self,
        frame: &'a Frame<'a>,
        task: &'a Task,
        reference: &'a str,
        key: &'a str,
        input: &'a Value,
        locals: &'a Locals,
        info: &'a TaskInfo<'a>,
        ext: &'a Extension,
    ) -> BoxFut<'a, Result<(Value, Option<FlowDirective>), Problem>> {
        Box::pin(async move {
            let site = EvalSite {
                input,
                task_input: None,
                output: None,
                task: Some(info),
                secrets: false,
            };
            let out = match &task.kind {
                TaskKind::Set(value) => {
                    self.eval_template(frame, &format!("{reference}/set"), value, locals, site)?
                }
                TaskKind::Do(list) => match self
                    .run_list(
                        frame,
                        list,
                        &format!("{reference}/do"),
                        &format!("{key}/do"),
                        input.clone(),
                        locals,
                    )
                    .await?
                {
                    ListEnd::Normal(v) => v,
                    ListEnd::End(v) => return Ok((v, Some(FlowDirective::End))),
                },
                TaskKind::Switch(cases) => {
                    for (_case_name, case) in cases {
                        let matched = match &case.when {
                            None => true,
                            Some(w) => self.truthy(frame, w, locals, site)?,
                        };
                        if matched {
                            return Ok((input.clone(), Some(FlowDirective::parse(&case.then))));
                        }
                    }
                    input.clone()
                }
                TaskKind::For {
                    each,
                    in_,
                    at,
                    while_,
                    do_,
                } => {
                    return self
                        .run_for(
                            frame,
                            reference,
                            key,
                            input,
                            locals,
                            info,
                            each,
                            in_,
                            at,
                            while_.as_deref(),
                            do_,
                            ext,
                        )
                        .await;
                }
                TaskKind::Fork { branches, compete } => {
                    self.run_fork(
                        frame, reference, key, input, locals, branches, *compete, ext,
                    )
                    .await?
                }
                TaskKind::Try { try_, catch } => {
                    return self
                        .run_try(frame, reference, key, input, locals, info, try_, catch)
                        .await;
                }
                TaskKind::Raise { error } => {
                    return Err(self.raise(frame, reference, error, locals, site)?);
                }
                TaskKind::Wait(d) => {
                    let ms = self.duration_ms(frame, d, &format!("{reference}/wait"), input)?;
                    let fire_at_ms = self.now_ms().saturating_add(ms);
                    expect_ok(
                        self.effect(format!("{key}#wait"), EffectRequest::Timer { fire_at_ms })
                            .await?,
                    )?;
                    input.clone()
                }
                TaskKind::Emit { event } => {
                    let with = event.get("with").cloned().unwrap_or(Value::Null);
                    let mut ev = self.eval_template(
                        frame,
                        &format!("{reference}/emit/event/with"),
                        &with,
                        locals,
                        site,
                    )?;
                    let obj = ev.as_object_mut().ok_or_else(|| {
                        Problem::new(ErrorKind::Validation, "An event must be an object")
                    })?;
                    if !obj.contains_key("id") {
                        obj.insert(
                            "id".into(),
                            Value::String(crate::time::deterministic_uuid(&self.instance, key)),
                        );
                    }
                    obj.entry("specversion")
                        .or_insert_with(|| Value::String("1.0".into()));
                    if !obj.contains_key("time") {
                        obj.insert(
                            "time".into(),
                            Value::String(crate::time::iso8601_utc(self.now_ms())),
                        );
                    }
                    for required in ["source", "type"] {
                        if !obj.get(required).is_some_and(Value::is_string) {
                            return Err(Problem::new(
                                ErrorKind::Validation,
                                format!("The event needs a string `{required}`"),
                            ));
                        }
                    }
                    expect_ok(
                        self.effect(format!("{key}#emit"), EffectRequest::Emit { event: ev })
                            .await?,
                    )?
                }
                TaskKind::Listen { to, read, foreach } => {
                    if foreach.is_some() {
                        return Err(Problem::new(
                            ErrorKind::Configuration,
                            "`listen.foreach` is not supported yet",
                        ));
                    }
                    self.run_listen(frame, key, to, *read, locals, site).await?
                }
                TaskKind::Call { function, with } => {
                    self.run_call(frame, reference, key, function, with, input, locals, info)
                        .await?
                }
                TaskKind::Run(spec) => match spec {
                    RunSpec::Workflow {
                        namespace,
                        name: wf_name,
                        version,
                        input: wf_input,
                    } => {
                        let sub_input = match wf_input {
                            Some(v) => self.eval_template(
                                frame,
                                &format!("{reference}/run/workflow/input"),
                                v,
                                locals,
                                site,
                            )?,
                            None => input.clone(),
                        };
                        self.run_subflow(frame, key, namespace, wf_name, version, sub_input)
                            .await?
                    }
                    RunSpec::Unsupported { kind } => {
                        return Err(Problem::new(ErrorKind::Configuration, format!("`run: {kind}` is refused"))
                            .with_detail("Baton does not run containers, shells or scripts; use `run: workflow` or a provider call"));
                    }
                },
            };
            Ok((out, None))
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_for(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        input: &Value,
        locals: &Locals,
        info: &TaskInfo<'_>,
        each: &str,
        in_: &str,
        at: &str,
        while_: Option<&str>,
        do_: &TaskList,
        ext: &Extension,
    ) -> Result<(Value, Option<FlowDirective>), Problem> {
        let site = EvalSite {
            input,
            task_input: None,
            output: None,
            task: Some(info),
            secrets: false,
        };
        let collection = self.eval(frame, baton_expr::loose_source(in_), locals, site)?;
        let items: Vec<Value> = match collection {
            Value::Array(a) => a,
            Value::Null => Vec::new(),
            Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
            other => {
                return Err(
                    Problem::new(ErrorKind::Expression, "`for.in` must produce an array")
                        .with_detail(format!("got {}", type_name(&other))),
                );
            }
        };
        if items.len() as u64 > self.env.limits.for_iterations_max {
            return Err(
                Problem::new(ErrorKind::Runtime, "Too many iterations").with_detail(format!(
                    "{} items, the limit is {}",
                    items.len(),
                    self.env.limits.for_iterations_max
                )),
            );
        }
        if let Some(rule) = &ext.complete {
            return self
                .run_for_complete(
                    frame, reference, key, input, locals, info, each, at, while_, do_, ext, rule,
                    items,
                )
                .await
                .map(|v| (v, None));
        }
        let mut data = input.clone();
        for (index, item) in items.into_iter().enumerate() {
            let scope = locals.with(each, item).with(at, json!(index));
            if let Some(cond) = while_ {
                let site = EvalSite {
                    input: &data,
                    task_input: None,
                    output: None,
                    task: Some(info),
                    secrets: false,
                };
                if !self.truthy(frame, cond, &scope, site)? {
                    break;
                }
            }
            let list_key = format!("{key}/for[{index}]/do");
            match self
                .run_list(
                    frame,
                    do_,
                    &format!("{reference}/do"),
                    &list_key,
                    data,
                    &scope,
                )
                .await?
            {
                ListEnd::Normal(v) => data = v,
                ListEnd::End(v) => return Ok((v, Some(FlowDirective::End))),
            }
        }
        Ok((data, None))
    }

    /// A `for` under a completeness rule: every iteration is a branch of a fan-out. Each one
    /// gets the task's input (not the previous iteration's output: a missing branch must not
    /// change what the others see) and runs to its end even if another faults; the result says
    /// which completed and which are missing and why (see `complete::summarise`). `while` is
    /// evaluated on the task's input and ends the fan-out where it turns false; the items after
    /// it are not branches. `then: end` inside an iteration ends that iteration only, as a
    /// `fork` branch's directive does.
    #[allow(clippy::too_many_arguments)]
    async fn run_for_complete(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        input: &Value,
        locals: &Locals,
        info: &TaskInfo<'_>,
        each: &str,
        at: &str,
        while_: Option<&str>,
        do_: &TaskList,
        ext: &Extension,
        rule: &Rule,
        items: Vec<Value>,
    ) -> Result<Value, Problem> {
        let mut timer = match ext.deadline.as_ref().filter(|d| d.is_fanout_only()) {
            Some(d) => {
                Some(self.deadline_timer(key, self.deadline_ms(frame, d, reference, input)?))
            }
            None => None,
        };
        let mut ends: Vec<BranchEnd> = Vec::with_capacity(items.len());
        let mut late = false;
        for (index, item) in items.iter().enumerate() {
            if late {
                // The deadline has passed: the iterations not started are missing too.
                ends.push(BranchEnd::Late);
                continue;
            }
            let scope = locals.with(each, item.clone()).with(at, json!(index));
            if let Some(cond) = while_ {
                let site = EvalSite {
                    input,
                    task_input: None,
                    output: None,
                    task: Some(info),
                    secrets: false,
                };
                if !self.truthy(frame, cond, &scope, site)? {
                    break;
                }
            }
            let list_ref = format!("{reference}/do");
            let list_key = format!("{key}/for[{index}]/do");
            let iteration = self.run_list(frame, do_, &list_ref, &list_key, input.clone(), &scope);
            let ended = match timer.as_mut() {
                None => Some(iteration.await),
                Some(t) => match self.until_deadline(iteration, t).await? {
                    Raced::Done(r) => Some(r),
                    Raced::Late => None,
                },
            };
            ends.push(match ended {
                None => {
                    late = true;
                    BranchEnd::Late
                }
                Some(Ok(ListEnd::Normal(v) | ListEnd::End(v))) => {
                    self.judge_branch(frame, ext, v, &scope)
                }
                Some(Err(p)) => BranchEnd::Faulted(p.to_value()),
            });
        }
        // Dropping the timer cancels it when every iteration finished in time.
        drop(timer);
        let summary = crate::complete::summarise(rule, ends, |i| {
            ("item", items.get(i).cloned().unwrap_or(Value::Null))
        });
        self.note_fan_out(key, &summary);
        Ok(summary)
    }

    /// Records in the journal how a fan-out under a completeness rule ended: its status, counts
    /// and the missing branches with their reasons (at most 100 listed), so `baton show` and the
    /// dashboard can say what is missing without re-running the flow.
    fn note_fan_out(&self, key: &str, summary: &Value) {
        let missing: Vec<Value> = summary
            .get("missing")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .take(100)
                    .map(|x| {
                        let mut x = x.clone();
                        if let Some(o) = x.as_object_mut() {
                            o.remove("error");
                            o.remove("answered");
                        }
                        x
                    })
                    .collect()
            })
            .unwrap_or_default();
        let note = serde_json::json!({"fan_out": {
            "status": summary.get("status"),
            "counts": summary.get("counts"),
            "missing": missing,
        }});
        self.lock().task_notes.push((key.to_string(), note));
    }

    /// Whether a branch that finished counts: `branch_ok` on its output, else yes. A predicate
    /// that cannot be evaluated does not count the branch in: an answer nobody could check is
    /// not an answer, and the reason says why.
    fn judge_branch(
        &self,
        frame: &Frame<'_>,
        ext: &Extension,
        output: Value,
        scope: &Locals,
    ) -> BranchEnd {
        let Some(src) = &ext.branch_ok else {
            return BranchEnd::Ok(output);
        };
        let site = EvalSite {
            input: &output,
            task_input: None,
            output: None,
            task: None,
            secrets: false,
        };
        match self.truthy(frame, src, scope, site) {
            Ok(true) => BranchEnd::Ok(output),
            Ok(false) => BranchEnd::NotOk {
                detail: format!("`branch_ok` ({}) is false", src.trim()),
                output,
            },
            Err(p) => BranchEnd::NotOk {
                detail: format!(
                    "`branch_ok` ({}) failed: {}",
                    src.trim(),
                    p.detail.as_deref().unwrap_or(&p.type_)
                ),
                output,
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_fork(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        input: &Value,
        locals: &Locals,
        branches: &TaskList,
        compete: bool,
        ext: &Extension,
    ) -> Result<Value, Problem> {
        if let Some(rule) = &ext.complete {
            if compete {
                return Err(Problem::new(
                    ErrorKind::Configuration,
                    "A completeness rule does not apply to a competing fork",
                )
                .with_detail("`fork.compete` takes the first branch to finish; drop `compete` or `metadata.baton.complete`")
                .at(reference));
            }
            return self
                .run_fork_complete(frame, reference, key, input, locals, branches, ext, rule)
                .await;
        }
        let (refs, keys) = fork_branch_ids(branches, reference, key);
        let mut futs: Vec<Option<BoxFut<'_, Result<TaskDone, Problem>>>> = branches
            .0
            .iter()
            .enumerate()
            .map(|(i, (n, t))| {
                Some(self.run_task(frame, n, t, &refs[i], &keys[i], input.clone(), locals))
            })
            .collect();
        let mut results: Vec<Option<Value>> = vec![None; futs.len()];
        let mut first_error: Option<Problem> = None;
        std::future::poll_fn(|cx| {
            // Poll in declaration order so that the winner of a race is deterministic.
            for (i, slot) in futs.iter_mut().enumerate() {
                let Some(f) = slot else { continue };
                if let Poll::Ready(r) = f.as_mut().poll(cx) {
                    *slot = None;
                    match r {
                        Ok(done) => {
                            if compete {
                                results[i] = Some(done.output);
                                return Poll::Ready(());
                            }
                            results[i] = Some(done.output);
                        }
                        Err(p) => {
                            if !compete {
                                first_error = Some(p);
                                return Poll::Ready(());
                            }
                            first_error.get_or_insert(p);
                        }
                    }
                }
            }
            if futs.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        // Dropping the remaining branches cancels their outstanding effects.
        drop(futs);
        if compete {
            if let Some(v) = results.into_iter().flatten().next() {
                return Ok(v);
            }
            return Err(first_error
                .unwrap_or_else(|| Problem::new(ErrorKind::Runtime, "No branch completed")));
        }
        if let Some(p) = first_error {
            return Err(p);
        }
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        ))
    }

    /// A `fork` under a completeness rule: the branches run concurrently as usual, but a branch
    /// that faults is recorded as missing instead of faulting the fork, and the others run on.
    /// With a fan-out deadline, the branches still running when it fires are dropped (their
    /// effects cancelled) and count as missing.
    #[allow(clippy::too_many_arguments)]
    async fn run_fork_complete(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        input: &Value,
        locals: &Locals,
        branches: &TaskList,
        ext: &Extension,
        rule: &Rule,
    ) -> Result<Value, Problem> {
        let (refs, keys) = fork_branch_ids(branches, reference, key);
        let mut futs: Vec<Option<BoxFut<'_, Result<TaskDone, Problem>>>> = branches
            .0
            .iter()
            .enumerate()
            .map(|(i, (n, t))| {
                Some(self.run_task(frame, n, t, &refs[i], &keys[i], input.clone(), locals))
            })
            .collect();
        let mut timer = match ext.deadline.as_ref().filter(|d| d.is_fanout_only()) {
            Some(d) => {
                Some(self.deadline_timer(key, self.deadline_ms(frame, d, reference, input)?))
            }
            None => None,
        };
        // `None` until the branch ends; a branch still `None` after the race was late.
        let mut ended: Vec<Option<Result<Value, Problem>>> = vec![None; futs.len()];
        std::future::poll_fn(|cx| {
            // The deadline is looked at first for the same reason as in `until_deadline`.
            let fired = timer.as_ref().is_some_and(EffectFuture::answered);
            if !fired {
                // Declaration order, so that progress is the same in every replay.
                for (i, slot) in futs.iter_mut().enumerate() {
                    let Some(f) = slot else { continue };
                    if let Poll::Ready(r) = f.as_mut().poll(cx) {
                        *slot = None;
                        ended[i] = Some(r.map(|done| done.output));
                    }
                }
                if futs.iter().all(Option::is_none) {
                    return Poll::Ready(Ok(()));
                }
            }
            match timer.as_mut().map(|t| Pin::new(t).poll(cx)) {
                Some(Poll::Ready(r)) => Poll::Ready(r.and_then(expect_ok).map(|_| ())),
                _ => Poll::Pending,
            }
        })
        .await?;
        // Dropping the branches still running cancels their outstanding effects; dropping the
        // timer cancels it when every branch finished in time.
        drop(futs);
        drop(timer);
        let ends: Vec<BranchEnd> = ended
            .into_iter()
            .map(|e| match e {
                None => BranchEnd::Late,
                Some(Ok(v)) => self.judge_branch(frame, ext, v, locals),
                Some(Err(p)) => BranchEnd::Faulted(p.to_value()),
            })
            .collect();
        let summary = crate::complete::summarise(rule, ends, |i| {
            (
                "branch",
                branches
                    .0
                    .get(i)
                    .map(|(n, _)| Value::String(n.clone()))
                    .unwrap_or(Value::Null),
            )
        });
        self.note_fan_out(key, &summary);
        Ok(summary)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_try(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        input: &Value,
        locals: &Locals,
        info: &TaskInfo<'_>,
        try_: &TaskList,
        catch: &Catch,
    ) -> Result<(Value, Option<FlowDirective>), Problem> {
        let retry = self.retry_policy(frame, reference, catch)?;
        let first_attempt_ms = self.now_ms();
        let err_name = catch.as_.as_deref().unwrap_or("error");
        let mut attempt: u32 = 0;
        loop {
            let attempt_key = if attempt == 0 {
                format!("{key}/try")
            } else {
                format!("{key}/try#{attempt}")
            };
            let error = match self
                .run_list(
                    frame,
                    try_,
                    &format!("{reference}/try"),
                    &attempt_key,
                    input.clone(),
                    locals,
                )
                .await
            {
                Ok(ListEnd::Normal(v)) => return Ok((v, None)),
                Ok(ListEnd::End(v)) => return Ok((v, Some(FlowDirective::End))),
                Err(p) => p,
            };
            let err_value = error.to_value();
            let scope = locals.with(err_name, err_value.clone());
            let site = EvalSite {
                input,
                task_input: None,
                output: None,
                task: Some(info),
                secrets: false,
            };
            if !self.catches(frame, catch, &error, &scope, site)? {
                return Err(error);
            }
            if let Some(policy) = &retry {
                if let Some(delay_ms) = self.retry_delay(
                    frame,
                    reference,
                    key,
                    policy,
                    attempt,
                    first_attempt_ms,
                    &scope,
                    site,
                )? {
                    attempt += 1;
                    let fire_at_ms = self.now_ms().saturating_add(delay_ms);
                    expect_ok(
                        self.effect(
                            format!("{key}#retry{attempt}"),
                            EffectRequest::Timer { fire_at_ms },
                        )
                        .await?,
                    )?;
                    continue;
                }
                if catch.do_.is_none() {
                    // Retries are exhausted and nothing handles the error: it propagates, so a
                    // "retry three times" policy does not silently swallow the failure.
                    return Err(error);
                }
            }
            return match &catch.do_ {
                None => Ok((input.clone(), None)),
                Some(list) => match self
                    .run_list(
                        frame,
                        list,
                        &format!("{reference}/catch/do"),
                        &format!("{key}/catch/do"),
                        input.clone(),
                        &scope,
                    )
                    .await?
                {
                    ListEnd::Normal(v) => Ok((v, None)),
                    ListEnd::End(v) => Ok((v, Some(FlowDirective::End))),
                },
            };
        }
    }

    fn retry_policy(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        catch: &Catch,
    ) -> Result<Option<RetryPolicy>, Problem> {
        Ok(match &catch.retry {
            None => None,
            Some(RetryRef::Inline(p)) => Some(p.clone()),
            Some(RetryRef::Named(name)) => {
                let v = frame
                    .program
                    .workflow
                    .use_
                    .as_ref()
                    .and_then(|u| u.retries.get(name))
                    .ok_or_else(|| {
                        Problem::new(
                            ErrorKind::Configuration,
                            format!("Unknown retry policy `{name}`"),
                        )
                        .at(reference)
                    })?;
                Some(serde_json::from_value(v.clone()).map_err(|e| {
                    Problem::new(ErrorKind::Configuration, "Invalid retry policy")
                        .with_detail(e.to_string())
                        .at(reference)
                })?)
            }
        })
    }

    fn catches(
        &self,
        frame: &Frame<'_>,
        catch: &Catch,
        error: &Problem,
        scope: &Locals,
        site: EvalSite<'_>,
    ) -> Result<bool, Problem> {
        if let Some(filter) = catch.errors.as_ref().and_then(|e| e.with.as_ref())
            && !filter_matches(filter, error)
        {
            return Ok(false);
        }
        if let Some(w) = &catch.when
            && !self.truthy(frame, w, scope, site)?
        {
            return Ok(false);
        }
        if let Some(w) = &catch.except_when
            && self.truthy(frame, w, scope, site)?
        {
            return Ok(false);
        }
        Ok(true)
    }

    /// The delay before retry `attempt + 1`, or `None` when the policy says stop.
    #[allow(clippy::too_many_arguments)]
    fn retry_delay(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        policy: &RetryPolicy,
        attempt: u32,
        first_attempt_ms: u64,
        scope: &Locals,
        site: EvalSite<'_>,
    ) -> Result<Option<u64>, Problem> {
        if let Some(w) = &policy.when
            && !self.truthy(frame, w, scope, site)?
        {
            return Ok(None);
        }
        if let Some(w) = &policy.except_when
            && self.truthy(frame, w, scope, site)?
        {
            return Ok(None);
        }
        let limit = policy.limit.as_ref();
        let count_max = limit
            .and_then(|l| l.attempt.as_ref())
            .and_then(|a| a.count)
            .unwrap_or(self.env.limits.retry_attempts_max)
            .min(self.env.limits.retry_attempts_max);
        if attempt >= count_max {
            return Ok(None);
        }
        let base_ms = match &policy.delay {
            Some(d) => self.duration_ms(
                frame,
                d,
                &format!("{reference}/catch/retry/delay"),
                &Value::Null,
            )?,
            None => 0,
        };
        let n = u64::from(attempt) + 1;
        let growth = match policy.backoff.as_ref() {
            Some(b) if b.exponential.is_some() => Growth::Exponential { multiplier: 2.0 },
            Some(b) if b.linear.is_some() => Growth::Linear,
            _ => Growth::Constant,
        };
        let mut delay_ms = Backoff {
            initial_ms: base_ms,
            growth,
            max_ms: None,
        }
        .delay_ms(attempt.saturating_add(1));
        if let Some(j) = &policy.jitter {
            let from = self.duration_ms(
                frame,
                &j.from,
                &format!("{reference}/catch/retry/jitter/from"),
                &Value::Null,
            )?;
            let to = self.duration_ms(
                frame,
                &j.to,
                &format!("{reference}/catch/retry/jitter/to"),
                &Value::Null,
            )?;
            if to > from {
                let u = deterministic_unit(&self.instance, key, n);
                delay_ms = delay_ms.saturating_add(from + ((to - from) as f64 * u) as u64);
            } else {
                delay_ms = delay_ms.saturating_add(from);
            }
        }
        if let Some(total) = limit.and_then(|l| l.duration.as_ref()) {
            let total_ms = self.duration_ms(
                frame,
                total,
                &format!("{reference}/catch/retry/limit/duration"),
                &Value::Null,
            )?;
            if self.now_ms().saturating_add(delay_ms) > first_attempt_ms.saturating_add(total_ms) {
                return Ok(None);
            }
        }
        Ok(Some(delay_ms))
    }

    fn raise(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        error: &RaiseError,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<Problem, Problem> {
        let def = match error {
            RaiseError::Inline(v) => v.clone(),
            RaiseError::Named(name) => frame
                .program
                .workflow
                .use_
                .as_ref()
                .and_then(|u| u.errors.get(name))
                .cloned()
                .ok_or_else(|| {
                    Problem::new(ErrorKind::Configuration, format!("Unknown error `{name}`"))
                })?,
        };
        let v = self.eval_template(
            frame,
            &format!("{reference}/raise/error"),
            &def,
            locals,
            site,
        )?;
        let type_ = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::new(ErrorKind::Validation, "A raised error needs a `type`"))?;
        let status = v.get("status").and_then(Value::as_u64).ok_or_else(|| {
            Problem::new(
                ErrorKind::Validation,
                "A raised error needs a numeric `status`",
            )
        })?;
        Ok(Problem {
            type_: type_.to_string(),
            status: u16::try_from(status).unwrap_or(500),
            title: v.get("title").and_then(Value::as_str).map(str::to_string),
            detail: v.get("detail").and_then(Value::as_str).map(str::to_string),
            instance: Some(
                v.get("instance")
                    .and_then(Value::as_str)
                    .unwrap_or(reference)
                    .to_string(),
            ),
        })
    }

    async fn run_listen(
        &self,
        frame: &Frame<'_>,
        key: &str,
        to: &Value,
        read: ListenRead,
        locals: &Locals,
        site: EvalSite<'_>,
    ) -> Result<Value, Problem> {
        // `correlate.expect` is resolved here, once, on the instance's data as the task starts
        // listening; the resolved values travel in the effect request, so the driver's matcher
        // needs nothing but the event. Replay resolves them again from the same state.
        let to =
            crate::listen::resolve_filters(
                to,
                &self.instance.0,
                &mut |name, expect| match expect {
                    Value::String(s) => match baton_expr::strip_strict(s) {
                        Some(src) => self.eval(frame, src, locals, site).map_err(|p| Problem {
                            detail: Some(format!(
                                "correlation `{name}`: {}",
                                p.detail.as_deref().unwrap_or("")
                            )),
                            ..p
                        }),
                        None => Ok(expect.clone()),
                    },
                    other => Ok(other.clone()),
                },
            )?;
        let mut strategy = crate::listen::Strategy::parse(&to)?;
        let mut consumed: Vec<Value> = Vec::new();
        let mut state = strategy.start();
        let mut n: u32 = 0;
        loop {
            if n >= self.env.limits.listen_events_max {
                return Err(Problem::new(
                    ErrorKind::Runtime,
                    "Too many events consumed by one listen task",
                ));
            }
            let filters = strategy.pending_filters(&state);
            let outcome = self
                .effect(
                    format!("{key}{}{n}", crate::effect::LISTEN_KEY_MARK),
                    EffectRequest::Listen { filters },
                )
                .await?;
            n += 1;
            let event = expect_ok(outcome)?;
            let matched_until = strategy.record(&mut state, &event);
            strategy.bind_correlations(&event);
            if !matched_until {
                consumed.push(match read {
                    ListenRead::Envelope => event.clone(),
                    ListenRead::Data | ListenRead::Raw => {
                        event.get("data").cloned().unwrap_or(Value::Null)
                    }
                });
            }
            if let Some(until) = strategy.until_expression() {
                let all = Value::Array(consumed.clone());
                let s = EvalSite {
                    input: &all,
                    ..site
                };
                if self.truthy(frame, until, locals, s)? {
                    break;
                }
            } else if strategy.is_done(&state) {
                break;
            }
        }
        Ok(Value::Array(consumed))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_call(
        &self,
        frame: &Frame<'_>,
        reference: &str,
        key: &str,
        function: &str,
        with: &Value,
        input: &Value,
        locals: &Locals,
        info: &TaskInfo<'_>,
    ) -> Result<Value, Problem> {
        let site = EvalSite {
            input,
            task_input: None,
            output: None,
            task: Some(info),
            secrets: false,
        };
        let args = self.eval_template(frame, &format!("{reference}/with"), with, locals, site)?;
        match function {
            "http" => {
                let auths = frame
                    .program
                    .workflow
                    .use_
                    .as_ref()
                    .map(|u| &u.authentications);
                let request = build_http_request(&args, input, auths)?;
                self.call_effect(format!("{key}#call"), EffectRequest::Http(request))
                    .await
            }
            "grpc" | "asyncapi" | "a2a" | "mcp" => Err(Problem::new(
                ErrorKind::Configuration,
                format!("`call: {function}` is not supported by Baton"),
            )),
            _ => {
                let local = frame
                    .program
                    .workflow
                    .use_
                    .as_ref()
                    .and_then(|u| u.functions.get(function));
                if let Some(def) = local {
                    // A function from `use.functions` is a task; its `with` arguments are its input.
                    let task: Task = serde_json::from_value(def.clone()).map_err(|e| {
                        Problem::new(
                            ErrorKind::Configuration,
                            format!("Invalid function `{function}`"),
                        )
                        .with_detail(e.to_string())
                    })?;
                    let fref = format!("/use/functions/{function}");
                    let fkey = format!("{key}/fn");
                    let arg_input = if args.is_null() { input.clone() } else { args };
                    let done = self
                        .run_task(
                            frame,
                            function,
                            &task,
                            &fref,
                            &fkey,
                            arg_input,
                            &Locals::default(),
                        )
                        .await?;
                    return Ok(done.output);
                }
                let request = EffectRequest::Function {
                    name: function.to_string(),
                    args,
                };
                self.call_effect(format!("{key}#call"), request).await
            }
        }
    }

    /// A call's effect, remembering an `unknown` outcome: a compensation needs to know the
    /// effect may have happened although the task faulted.
    async fn call_effect(&self, key: String, request: EffectRequest) -> Result<Value, Problem> {
        let outcome = self.effect(key.clone(), request).await?;
        if matches!(outcome, Outcome::Unknown { .. }) {
            self.lock().unknown_calls.insert(EffectKey(key));
        }
        expect_ok(outcome)
    }

    async fn run_subflow(
        &self,
        frame: &Frame<'_>,
        key: &str,
        namespace: &str,
        name: &str,
        version: &str,
        input: Value,
    ) -> Result<Value, Problem> {
        if frame.depth >= self.env.limits.subflow_depth_max {
            return Err(Problem::new(
                ErrorKind::Runtime,
                "Sub-flows nested too deeply",
            ));
        }
        let program = self
            .env
            .flows
            .resolve(namespace, name, version)
            .ok_or_else(|| {
                Problem::new(
                    ErrorKind::Configuration,
                    format!("Unknown workflow {namespace}/{name}:{version}"),
                )
            })?;
        let descriptor = workflow_descriptor(&self.instance, &program, &input, self.now_ms());
        let sub = Frame {
            program: &program,
            descriptor,
            depth: frame.depth + 1,
        };
        let sub_key = format!("{key}/run");
        let fut: BoxFut<'_, Result<Value, Problem>> =
            Box::pin(self.run_workflow(&sub, input, &sub_key));
        fut.await
    }
}

/// Turns an effect outcome into the value the flow sees, or the error it raises.
pub(crate) fn expect_ok(outcome: Outcome) -> Result<Value, Problem> {
    match outcome {
        Outcome::Ok { value } => Ok(value),
        Outcome::Failed { problem } => Err(problem),
        Outcome::Unknown { reason } => {
            Err(
                Problem::new(ErrorKind::Communication, "Outcome unknown").with_detail(format!(
                    "the request may or may not have been applied: {reason}"
                )),
            )
        }
        Outcome::Stale { reason, .. } => {
            Err(
                Problem::of_type(crate::problem::baton_types::STALE, 503, "Stale answer")
                    .with_detail(reason),
            )
        }
    }
}

fn filter_matches(filter: &ErrorFilter, error: &Problem) -> bool {
    if let Some(t) = &filter.type_ {
        let same = t == &error.type_
            || matches!((crate::problem::ErrorKind::from_type_uri(t), error.kind()), (Some(a), Some(b)) if a == b);
        if !same {
            return false;
        }
    }
    if let Some(s) = filter.status
        && s != error.status
    {
        return false;
    }
    if let Some(i) = &filter.instance
        && error.instance.as_deref() != Some(i.as_str())
    {
        return false;
    }
    if let Some(t) = &filter.title
        && error.title.as_deref() != Some(t.as_str())
    {
        return false;
    }
    if let Some(d) = &filter.details
        && error.detail.as_deref() != Some(d.as_str())
    {
        return false;
    }
    true
}

fn expr_problem(src: &str, msg: &str) -> Problem {
    Problem::new(ErrorKind::Expression, "Expression failed")
        .with_detail(format!("`{}`: {msg}", src.trim()))
}

/// Whether a value holds any strict `${…}` expression (templates without one are constants).
pub(crate) fn contains_expression(v: &Value) -> bool {
    match v {
        Value::String(s) => baton_expr::strip_strict(s).is_some(),
        Value::Array(a) => a.iter().any(contains_expression),
        Value::Object(o) => o.values().any(contains_expression),
        _ => false,
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The task references and effect keys of a fork's branches, in declaration order.
fn fork_branch_ids(branches: &TaskList, reference: &str, key: &str) -> (Vec<String>, Vec<String>) {
    branches
        .0
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            (
                format!("{reference}/fork/branches/{i}/{n}"),
                format!("{key}/fork/{i}/{n}"),
            )
        })
        .unzip()
}
