//! Calls that leave the task: `listen`, `call` (HTTP, OpenAPI, registered functions) and
//! `run: workflow`.

use super::*;

impl Ctx {
    pub(super) async fn run_listen(
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

    pub(crate) async fn run_call(
        &self,
        here: InTask<'_>,
        function: &str,
        with: &Value,
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
                            At {
                                frame,
                                reference: &fref,
                                key: &fkey,
                                locals: &Locals::default(),
                            },
                            function,
                            &task,
                            arg_input,
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
    pub(super) async fn call_effect(
        &self,
        key: String,
        request: EffectRequest,
    ) -> Result<Value, Problem> {
        let outcome = self.effect(key.clone(), request).await?;
        if matches!(outcome, Outcome::Unknown { .. }) {
            self.lock().unknown_calls.insert(EffectKey(key));
        }
        expect_ok(outcome)
    }

    pub(super) async fn run_subflow(
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
