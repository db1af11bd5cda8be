//! Fan-out: `for` and `fork`, plain or under a completeness rule (`metadata.baton.complete`),
//! and the notes that say which branches were missing.

use super::*;

impl Ctx {
    pub(super) async fn run_for(
        &self,
        here: InTask<'_>,
        lp: ForLoop<'_>,
        ext: &Extension,
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
        let ForLoop {
            each,
            in_,
            at,
            while_,
            do_,
        } = lp;
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
                .run_for_complete(here, lp, ext, rule, items)
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
    pub(super) async fn run_for_complete(
        &self,
        here: InTask<'_>,
        lp: ForLoop<'_>,
        ext: &Extension,
        rule: &Rule,
        items: Vec<Value>,
    ) -> Result<Value, Problem> {
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
        let ForLoop {
            each,
            at,
            while_,
            do_,
            ..
        } = lp;
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
    pub(super) fn note_fan_out(&self, key: &str, summary: &Value) {
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
    pub(super) fn judge_branch(
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

    pub(super) async fn run_fork(
        &self,
        here: InTask<'_>,
        branches: &TaskList,
        compete: bool,
        ext: &Extension,
    ) -> Result<Value, Problem> {
        let InTask {
            at:
                At {
                    frame,
                    reference,
                    key,
                    locals,
                },
            input,
            ..
        } = here;
        if let Some(rule) = &ext.complete {
            if compete {
                return Err(Problem::new(
                    ErrorKind::Configuration,
                    "A completeness rule does not apply to a competing fork",
                )
                .with_detail("`fork.compete` takes the first branch to finish; drop `compete` or `metadata.baton.complete`")
                .at(reference));
            }
            return self.run_fork_complete(here, branches, ext, rule).await;
        }
        let (refs, keys) = fork_branch_ids(branches, reference, key);
        let mut futs: Vec<Option<BoxFut<'_, Result<TaskDone, Problem>>>> = branches
            .0
            .iter()
            .enumerate()
            .map(|(i, (n, t))| {
                let at = At {
                    frame,
                    reference: &refs[i],
                    key: &keys[i],
                    locals,
                };
                Some(self.run_task(at, n, t, input.clone()))
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
    pub(super) async fn run_fork_complete(
        &self,
        here: InTask<'_>,
        branches: &TaskList,
        ext: &Extension,
        rule: &Rule,
    ) -> Result<Value, Problem> {
        let InTask {
            at:
                At {
                    frame,
                    reference,
                    key,
                    locals,
                },
            input,
            ..
        } = here;
        let (refs, keys) = fork_branch_ids(branches, reference, key);
        let mut futs: Vec<Option<BoxFut<'_, Result<TaskDone, Problem>>>> = branches
            .0
            .iter()
            .enumerate()
            .map(|(i, (n, t))| {
                let at = At {
                    frame,
                    reference: &refs[i],
                    key: &keys[i],
                    locals,
                };
                Some(self.run_task(at, n, t, input.clone()))
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
}

/// The task references and effect keys of a fork's branches, in declaration order.
pub(super) fn fork_branch_ids(
    branches: &TaskList,
    reference: &str,
    key: &str,
) -> (Vec<String>, Vec<String>) {
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
