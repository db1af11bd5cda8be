//! jq runtime expressions for Baton: compilation, evaluation under a [`Budget`], and the
//! Serverless Workflow `${ ... }` syntax ([`strip_strict`], [`loose_source`], [`Template`]).
//!
//! Expressions run on [jaq](https://github.com/01mf02/jaq) (jaq-core, jaq-std, jaq-json) with
//! its standard library, except `env`, `now`, `halt`, `localtime` and `strflocaltime`, which
//! fail: expressions must not read the host, and must give the same result when a workflow is
//! replayed. jaq differs from jq in places; the ones users meet most: assigning below `null`
//! fails (`{} | .a.b = 1`), `4 / 2` is `2.0`, and `$__loc__`, `input`, `@csv` and
//! `tostream` do not exist.
//!
//! # Budgets
//!
//! jaq has no fuel, timeout or cancellation. Flows are written by users, so an expression may
//! loop, recurse or build huge values, and must then fail quickly with [`ExprError::Budget`]
//! instead of hanging, overflowing the stack or exhausting memory. The mechanism has five
//! parts.
//!
//! 1. **Steps, counted in jaq's own interpreter loop.** jaq is generic over a `DataT` whose
//!    data provides the program table, and it fetches the table before evaluating *every*
//!    term (for running, paths and updates alike). Our data is a per-evaluation guard
//!    (`guard::Guard`) whose table getter counts a step, so any unbounded computation made of
//!    jq terms (`def f: f; f`, `last(repeat(1))`, `limit(1e9; repeat("x"))`) runs out of
//!    `steps_max`. jaq's native `range` loops in Rust without evaluating terms, so it is
//!    replaced by one that charges a step per output (`last(range(1e12))`). Natives whose
//!    work grows with their inputs (concatenation and repetition of strings and arrays,
//!    `fromjson`, regex matching, `indices`, `contains`, measuring a new value) charge one
//!    step per 64 bytes or 16 elements of work.
//!
//! 2. **Recursion depth, measured on the stack.** jaq evaluates nested terms and
//!    non-tail-recursive definitions (`def f: 1 + f; f`) on the Rust stack. The same getter
//!    compares the address of a local variable with one taken when the evaluation started;
//!    beyond `depth_max × 8 KiB` (1 MiB by default) the evaluation stops with
//!    `what = "depth"`. This measures stack, not jq call levels: the default allows about
//!    400 levels of `def f: if type == "array" then map(f) else . end` in release builds
//!    and 60 in debug builds. Two structures can grow without the stack growing, because
//!    jaq runs tail calls in a loop: the chain of closures bound to filter parameters
//!    (`def f(x): f(x + 1)`) and, in path mode, the path (`path(recurse(.a))`). Both are
//!    reference-counted lists whose drop recurses, so a long one would overflow the stack
//!    when the evaluation ends. Definitions with filter parameters are therefore made
//!    non-tail-recursive (their recursion is then bounded by the stack check), and other
//!    definitions, including the loops inside `recurse`, `while` and `until`, check on entry
//!    that the current path is not longer than `depth_max`.
//!
//! 3. **Size and depth of every value built.** jq can grow values exponentially in few steps
//!    (`"x" * 1000000000`, repeated `. + .`, `.a = .`, `[., .]`), and because values share
//!    structure, a value that is small in memory can still be huge to print, compare or
//!    convert. Before compiling, the parsed program *and jaq's standard library* are
//!    rewritten (module `rewrite`) so that arithmetic, array and object construction, string
//!    interpolation, assignments and the natives that grow values go through native filters
//!    that measure what they produce: its approximate compact-JSON size must stay within
//!    `output_bytes_max` and its nesting within `depth_max`. String repetition and big-integer
//!    arithmetic are checked *before* jaq allocates. Measures of large arrays and objects are
//!    cached per evaluation by allocation address (kept valid by holding `Weak` references),
//!    so accumulating with `+` in a `reduce` stays linear. Integers beyond 4096 digits and
//!    JSON text nested deeper than `depth_max` are runtime errors.
//!
//! 4. **Aborting.** A table getter cannot return an error, so on exceeding a limit the guard
//!    unwinds with `std::panic::resume_unwind` and a private payload, and [`Expr::eval`]
//!    catches it with `catch_unwind`. `resume_unwind` does not run the panic hook, so nothing
//!    is printed, `try` cannot catch a budget error, and no panic leaves this crate (a genuine
//!    panic inside jaq becomes [`ExprError::Internal`]).
//!
//! 5. **Edges.** Inputs and variable values nested deeper than `depth_max` are refused.
//!    Outputs are converted with `output_bytes_max` applying to all of them together, and
//!    [`Expr::eval_all`] stops after `outputs_max`. Compilation refuses sources over 64 KiB
//!    and numeric literals over 100 characters; jaq's parser and compiler recurse once per
//!    nesting level of the source, so sources over 256 bytes compile on a helper thread with a
//!    large stack, and `a, b, c, ...` lists are rebalanced so that long literal arrays do not
//!    nest one level per element.
//!
//! ## Known gaps
//!
//! - **Built-in traversals count as one step.** Comparisons (`==`, `<`), `length` of a
//!   string, `sort`, `unique`, `group_by`, `tojson`, `..` and `paths` run in Rust in time
//!   proportional to their input (at most `output_bytes_max`). A loop applying them to a
//!   large value is bounded by `steps_max × output_bytes_max` work rather than by
//!   `steps_max` alone.
//! - **Assignments re-measure their result's top level.** `reduce ... ({}; .[$k] = $v)` over
//!   `n` keys costs `O(n²)` measuring; `+` on objects and `from_entries` stay linear.
//! - **Values are measured after they are built**, except `[...]` (measured while collected)
//!   and repetition, so one step can briefly hold a bounded multiple of `output_bytes_max`
//!   (`explode` builds 16 bytes of memory per input byte). A whole evaluation holds at most
//!   what `steps_max` steps allocate.
//! - **Recursion through filter parameters is not tail-call optimised** (see 2), so such a
//!   definition recurses at most a few hundred levels deep.
//! - **Unwinding is required.** With `panic = "abort"` a budget trip would abort the
//!   process; the workspace does not set it and must not.
//! - **Stack headroom is assumed.** Evaluate on a thread with at least `depth_max × 8 KiB`
//!   plus 1 MiB of stack: the default 2 MiB stacks of Rust and tokio threads suffice for the
//!   default budget. A much larger `depth_max` needs a correspondingly larger stack.

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
    /// Deepest nesting of any value, and (as `depth_max × 8 KiB` of stack) of evaluation.
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
    pub fn eval(
        &self,
        input: &Value,
        values: &[Value],
        budget: &Budget,
    ) -> Result<Value, ExprError> {
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
