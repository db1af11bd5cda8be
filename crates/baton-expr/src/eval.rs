//! Running a compiled filter under a budget: value conversion, the guard, and turning a trip
//! (see [`crate::guard`]) back into an [`ExprError`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use jaq_core::{Ctx, Exn, Vars};
use jaq_json::Val;
use serde_json::Value;

use crate::Budget;
use crate::convert::{FromVal, to_val};
use crate::error::ExprError;
use crate::guard::{Data, Filter, Guard, Limits, Trip, stack_position};

/// Stack an evaluation may use per unit of `Budget::depth_max`.
///
/// jaq evaluates nested terms and recursive definitions on the Rust stack. Measured per level
/// of `def f: if type == "array" then map(f) else . end`: about 2.4 KiB in release builds and
/// 17 KiB in debug builds (a plain `def f: (. - 1 | f) + 1` takes 1 and 2-5 KiB). The default
/// depth of 128 gives 1 MiB: room for ~400 such levels in release and ~60 in debug, while
/// leaving half of a 2 MiB Rust or tokio thread stack to the caller and to unwinding.
pub(crate) const STACK_BYTES_PER_DEPTH: usize = 8 * 1024;

/// Outputs of one evaluation and the steps it took.
pub(crate) struct Outcome {
    pub outputs: Vec<Value>,
    pub steps: u64,
}

/// Evaluate `filter` on `input`; with `first`, stop after the first output.
pub(crate) fn run(
    filter: &Filter,
    input: &Value,
    values: &[Value],
    budget: &Budget,
    first: bool,
) -> Result<Outcome, ExprError> {
    let limits = Limits {
        steps_max: budget.steps_max,
        bytes_max: budget.output_bytes_max,
        depth_max: budget.depth_max,
        stack_bytes_max: budget.depth_max.saturating_mul(STACK_BYTES_PER_DEPTH),
    };
    let stack_base = stack_position();
    // Everything that can trip runs inside `catch_unwind`; the closure owns all evaluation
    // state, so nothing half-updated is observable after an unwind.
    let result = catch_unwind(AssertUnwindSafe(|| {
        let input = to_val(input, limits.depth_max)?;
        let vars = values
            .iter()
            .map(|v| to_val(v, limits.depth_max))
            .collect::<Result<Vec<_>, _>>()?;
        let guard = Guard::new(&filter.lut, limits, stack_base);
        let outputs = collect(filter, &guard, input, vars, budget, first)?;
        Ok(Outcome {
            outputs,
            steps: guard.steps(),
        })
    }));
    match result {
        Ok(outcome) => outcome,
        Err(payload) => Err(match payload.downcast::<Trip>() {
            Ok(trip) => ExprError::budget(trip.what, trip.limit),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic without message".into());
                ExprError::Internal { message }
            }
        }),
    }
}

fn collect<'a>(
    filter: &'a Filter,
    guard: &'a Guard<'a>,
    input: Val,
    vars: Vec<Val>,
    budget: &Budget,
    first: bool,
) -> Result<Vec<Value>, ExprError> {
    let ctx = Ctx::<Data>::new(guard, Vars::new(vars));
    let mut convert = FromVal::new(budget.output_bytes_max, budget.depth_max);
    let mut outputs = Vec::new();
    for y in filter.id.run((ctx, input)) {
        let y = y.map_err(exception)?;
        if outputs.len() >= budget.outputs_max {
            return Err(ExprError::budget("outputs", budget.outputs_max as u64));
        }
        outputs.push(convert.convert(&y)?);
        if first {
            break;
        }
    }
    Ok(outputs)
}

/// Turn a jaq exception into an error. String error values become the message as they are
/// (`error("boom")` reads "boom"); other values are shown as JSON.
fn exception(exn: Exn<'_, Val>) -> ExprError {
    match exn.get_err() {
        Ok(err) => match err.into_val() {
            Val::TStr(b) | Val::BStr(b) => {
                ExprError::runtime(String::from_utf8_lossy(&b).into_owned())
            }
            other => ExprError::runtime(other.to_string()),
        },
        // `halt` is denied and labels are scoped by the compiler, so this is unreachable in
        // practice; report it rather than trusting that.
        Err(_) => ExprError::Internal {
            message: "unexpected control flow escaped the expression".into(),
        },
    }
}
