//! Errors inside a flow: `try` with `catch` and retries, `raise`, and the effect outcome that
//! becomes an error.

use super::*;

impl Ctx {
    pub(super) async fn run_try(
        &self,
        here: InTask<'_>,
        try_: &TaskList,
        catch: &Catch,
    ) -> Result<(Value, Option<FlowDirective>), Problem> {
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
                let at = At {
                    frame,
                    reference,
                    key,
                    locals: &scope,
                };
                if let Some(delay_ms) =
                    self.retry_delay(at, policy, attempt, first_attempt_ms, site)?
                {
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

    pub(super) fn retry_policy(
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

    pub(super) fn catches(
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
    pub(super) fn retry_delay(
        &self,
        at: At<'_>,
        policy: &RetryPolicy,
        attempt: u32,
        first_attempt_ms: u64,
        site: EvalSite<'_>,
    ) -> Result<Option<u64>, Problem> {
        let At {
            frame,
            reference,
            key,
            locals: scope,
        } = at;
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

    pub(super) fn raise(
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

pub(super) fn filter_matches(filter: &ErrorFilter, error: &Problem) -> bool {
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
