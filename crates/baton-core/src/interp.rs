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

mod calls;
mod errors;
mod expr;
mod fanout;
mod time;

pub(crate) use errors::expect_ok;
pub(crate) use expr::type_name;

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

/// Where a task runs: its workflow's frame, its JSON Pointer in the flow (`reference`: for
/// problems and task events), its effect-key prefix (`key`: stable across replays, so effects
/// keep their idempotency keys) and the locals in scope (`for` items, `catch` errors). The
/// runners of the task kinds take one of these instead of the same four arguments.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub frame: &'a Frame<'a>,
    pub reference: &'a str,
    pub key: &'a str,
    pub locals: &'a Locals,
}

/// A task under way: where it runs, its input (after `input.from`) and what `$task` shows.
#[derive(Clone, Copy)]
pub(crate) struct InTask<'a> {
    pub at: At<'a>,
    pub input: &'a Value,
    pub info: &'a TaskInfo<'a>,
}

/// A `for` loop's parts: `for.each` (the item's name), `for.in`, `for.at` (the index's name),
/// `while` and the body.
#[derive(Clone, Copy)]
pub(crate) struct ForLoop<'a> {
    pub each: &'a str,
    pub in_: &'a str,
    pub at: &'a str,
    pub while_: Option<&'a str>,
    pub do_: &'a TaskList,
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
                    .run_task(
                        At {
                            frame,
                            reference: &task_ref,
                            key: &task_key,
                            locals,
                        },
                        name,
                        task,
                        data,
                    )
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
    fn run_task<'a>(
        &'a self,
        at: At<'a>,
        name: &'a str,
        task: &'a Task,
        raw_input: Value,
    ) -> BoxFut<'a, Result<TaskDone, Problem>> {
        Box::pin(async move {
            let At {
                frame,
                reference,
                key,
                locals,
            } = at;
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
                let here = InTask {
                    at,
                    input: &input,
                    info: &info,
                };
                let body = self.run_body(here, task, &ext);
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
                Some(deadline) => self.with_deadline(at, task, deadline, work, site).await,
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

    /// The task's own work. Returns its raw output and, for `switch`, the chosen directive.
    fn run_body<'a>(
        &'a self,
        here: InTask<'a>,
        task: &'a Task,
        ext: &'a Extension,
    ) -> BoxFut<'a, Result<(Value, Option<FlowDirective>), Problem>> {
        Box::pin(async move {
            let InTask {
                at:
                    At {
                        frame,
                        reference,
                        key,
                        locals,
                    },
                input,
                info,
            } = here;
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
                    let lp = ForLoop {
                        each,
                        in_,
                        at,
                        while_: while_.as_deref(),
                        do_,
                    };
                    return self.run_for(here, lp, ext).await;
                }
                TaskKind::Fork { branches, compete } => {
                    self.run_fork(here, branches, *compete, ext).await?
                }
                TaskKind::Try { try_, catch } => {
                    return self.run_try(here, try_, catch).await;
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
                TaskKind::Call { function, with } => self.run_call(here, function, with).await?,
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
}
