//! Time inside a task: timeouts, durations and deadlines (`metadata.baton.deadline`), each a
//! timer effect raced against the work.

use super::*;

impl Ctx {
    pub(super) fn timeout_ms(
        &self,
        frame: &Frame<'_>,
        t: &TimeoutRef,
        pointer: &str,
    ) -> Result<u64, Problem> {
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

    pub(super) fn duration_ms(
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
    pub(super) async fn with_timeout<T>(
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
    pub(super) fn deadline_ms(
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
    pub(super) fn deadline_timer(&self, key: &str, ms: u64) -> EffectFuture<'_> {
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
    pub(super) async fn until_deadline<T>(
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

    /// Races a task against its `metadata.baton.deadline`. When the deadline comes first, the
    /// task is abandoned (dropping its work cancels its outstanding effects: a `listen` that
    /// never gets its event, an approval nobody answers) and the declared safe default becomes
    /// its output, evaluated on the task's input; without a `default` the input passes through
    /// unchanged. The flow goes on at the deadline's `then`, else at the task's own `then`.
    /// `output.as` and `export.as` do not apply to a default: it is the value the flow declared
    /// for this case, not a result of the task. The journaled `#deadline` outcome is the record
    /// that the default was taken.
    pub(super) async fn with_deadline(
        &self,
        at: At<'_>,
        task: &Task,
        deadline: &Deadline,
        work: impl Future<Output = Result<TaskDone, Problem>> + Send,
        site: EvalSite<'_>,
    ) -> Result<TaskDone, Problem> {
        let At {
            frame,
            reference,
            key,
            locals,
        } = at;
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
}
