//! jq runtime expressions for Baton: compilation, evaluation under a [`Budget`], and the
//! Serverless Workflow `${ ... }` syntax ([`strip_strict`], [`loose_source`], [`Template`]).
//!
//! Expressions run on [jaq](https://github.com/01mf02/jaq) (jaq-core, jaq-std, jaq-json)
//! without `env`, `now`, `halt`, `localtime` and `strflocaltime`: expressions must not read the
//! host, and must give the same result when a workflow is replayed.
//!
//! # Budgets
//!
//! jaq has no fuel, timeout or cancellation. Flows are written by users, so an expression may
//! loop, recurse or build huge values, and must then fail quickly with
//! [`ExprError::Budget`] instead of hanging, overflowing the stack or exhausting memory. The
//! mechanism has four parts.
//!
//! 1. **Steps, counted in jaq's own interpreter loop.** jaq is generic over a `DataT` whose
//!    data provides the program table; jaq fetches the table before evaluating *every* term,
//!    for running, paths and updates alike. Our data is a per-evaluation guard
//!    (`guard::Guard`) whose table getter counts a step. Any unbounded computation made of
//!    jq terms (`def f: f; f`, `repeat(1)`, `limit(1e9; repeat("x"))`, `def f(x): f(x+1)`)
//!    therefore runs out of `steps_max`. jaq's native `range` loops in Rust without evaluating
//!    terms, so it is replaced by a version that charges a step per output
//!    (`[range(1e12)]`, `last(range(1e12))`). Natives whose work grows with the size of their
//!    arguments (string and array concatenation and repetition, `fromjson`, regex matching,
//!    `indices`, `contains`) charge one step per 64 bytes or 16 elements of work.
//!
//! 2. **Recursion depth, measured on the stack.** jaq evaluates nested terms and
//!    non-tail-recursive definitions (`def f: 1 + f; f`) on the Rust stack. The same getter
//!    compares the address of a local variable with one taken when the evaluation started;
//!    beyond `depth_max × 4 KiB` (512 KiB by default) the evaluation stops with
//!    `what = "depth"`. This is a measurement, not a count of jq call levels, so the same
//!    expression may reach a slightly different recursion depth in debug and release builds.
//!
//! 3. **Size and depth of every value built.** jq can grow values exponentially in few steps
//!    (`"x" * 1e9`, repeated `. + .`, `.a = .`, `[., .]`), and because values share structure,
//!    a value that is small in memory can still be huge to print, compare or convert. Before
//!    compiling, the parsed program *and jaq's standard library* are rewritten (module
//!    `rewrite`) so that arithmetic, array and object construction, string interpolation,
//!    assignments and the natives that grow values go through native filters that measure
//!    the value they produce: its approximate JSON size must stay within `output_bytes_max`
//!    and its nesting within `depth_max`. String repetition and big-integer arithmetic are
//!    checked *before* jaq allocates. Measures of large arrays and objects are cached per
//!    evaluation by allocation address (validated with `Weak` references), so accumulating in
//!    a `reduce` stays linear.
//!
//! 4. **Aborting.** A table getter cannot return an error, so on exceeding a limit the guard
//!    unwinds with `std::panic::resume_unwind` and a private payload, and [`Expr::eval`]
//!    catches it with `catch_unwind`. `resume_unwind` does not invoke the panic hook, so this
//!    prints nothing; no panic ever leaves this crate (a genuine panic inside jaq becomes
//!    [`ExprError::Internal`]).
//!
//! Inputs and variable values deeper than `depth_max` are rejected, outputs are converted
//! with the size limit applied to all outputs together, and [`Expr::eval_all`] stops after
//! `outputs_max` outputs. Compilation rejects sources over 64 KiB and numeric literals over 100
//! characters; sources over 1 KiB compile on a helper thread with a large stack, because
//! jaq's parser and compiler recurse once per nesting level of the source.
//!
//! ## Known gaps
//!
//! - **Per-step cost of built-in traversals is not charged.** Comparisons (`==`, `<`),
//!   `length` on strings, `sort`, `unique`, `group_by`, `tojson`, `..` and `paths` run in Rust
//!   in time proportional to the size of their input (at most `output_bytes_max`), and count
//!   as one step. A loop that applies them to a large value is bounded by
//!   `steps_max × output_bytes_max` work, not by `steps_max` alone; with the defaults and
//!   inputs of a few KiB that is still well under a second.
//! - **Assignments re-measure their result's top level.** `.[$k] = $v` in a `reduce` over
//!   `n` keys costs `O(n²)` measuring; `from_entries` or `+` on objects stay linear.
//! - **Transient memory before a check.** `[f]` is measured as it is collected, but other
//!   values are measured after they are built, so a single step can briefly hold up to a
//!   small multiple (≤ 8×, for `explode`) of `output_bytes_max`; a whole evaluation holds at
//!   most what `steps_max` steps can allocate.
//! - **Unwinding is required.** With `panic = "abort"` a budget trip would abort the
//!   process. The workspace does not set it; do not.
//! - **Stack headroom is assumed.** Evaluate on a thread with at least
//!   `depth_max × 4 KiB + 256 KiB` of free stack (Rust's and tokio's default 2 MiB stacks
//!   are fine for the default budget). Raising `depth_max` far above the default raises the
//!   stack an evaluation may use accordingly.

mod compile;
mod convert;
mod error;
mod eval;
mod guard;
mod natives;
mod rewrite;
mod source;
mod template;

use std::sync::Arc;

use serde_json::Value;

pub use error::{CompileError, ExprError};
pub use source::{loose_source, strip_strict};
pub use template::Template;

/// Limits for one evaluation. Exceeding any is [`ExprError::Budget`] (never a hang, never a
/// panic).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Term evaluations plus charged work (see the crate documentation).
    pub steps_max: u64,
    /// Largest approximate JSON size of any value built, and of all outputs together.
    pub output_bytes_max: usize,
    /// Deepest nesting of any value, and (as `depth_max × 4 KiB` of stack) of evaluation.
    pub depth_max: usize,
    /// Most outputs [`Expr::eval_all`] may return.
    pub outputs_max: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            steps_max: 1_000_000,
            output_bytes_max: 1024 * 1024,
            depth_max: 128,
            outputs_max: 10_000,
        }
    }
}

/// A compiled jq filter. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Expr {
    inner: Arc<Compiled>,
}

struct Compiled {
    source: Box<str>,
    vars: usize,
    filter: guard::Filter,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.inner.source).finish()
    }
}

impl Expr {
    /// Compile jq source (without the surrounding `${ }`). `vars` are the names (without `$`)
    /// of the variables the expression may use; evaluation takes their values in this order.
    pub fn compile(src: &str, vars: &[&str]) -> Result<Expr, CompileError> {
        let filter = compile::compile(src, vars)?;
        Ok(Expr {
            inner: Arc::new(Compiled {
                source: src.into(),
                vars: vars.len(),
                filter,
            }),
        })
    }

    /// The source this expression was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Evaluate with `input` as `.` and `values[i]` bound to the `i`-th variable. Returns the
    /// first output, or `null` when there is none.
    pub fn eval(&self, input: &Value, values: &[Value], budget: &Budget) -> Result<Value, ExprError> {
        let outcome = self.run(input, values, budget, true)?;
        Ok(outcome.outputs.into_iter().next().unwrap_or(Value::Null))
    }

    /// All outputs (at most `budget.outputs_max`, else [`ExprError::Budget`]).
    pub fn eval_all(
        &self,
        input: &Value,
        values: &[Value],
        budget: &Budget,
    ) -> Result<Vec<Value>, ExprError> {
        Ok(self.run(input, values, budget, false)?.outputs)
    }

    fn run(
        &self,
        input: &Value,
        values: &[Value],
        budget: &Budget,
        first: bool,
    ) -> Result<eval::Outcome, ExprError> {
        if values.len() != self.inner.vars {
            return Err(ExprError::Arity {
                expected: self.inner.vars,
                got: values.len(),
            });
        }
        eval::run(&self.inner.filter, input, values, budget, first)
    }
}
