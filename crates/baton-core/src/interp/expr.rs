//! Expressions inside a task: jq evaluation with the variables a site may see, templates,
//! filters, truthiness and JSON Schema checks of inputs and outputs.

use super::*;

impl Ctx {
    /// Evaluates a jq expression, binding only the variables the source mentions (building
    /// `$task` and `$workflow` costs a copy; most expressions use neither).
    pub(super) fn eval(
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

    pub(super) fn eval_template(
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
    pub(super) fn eval_filter(
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

    pub(super) fn var_values(
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

    pub(super) fn validate_schema(
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
}

pub(super) fn expr_problem(src: &str, msg: &str) -> Problem {
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
