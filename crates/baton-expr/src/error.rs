//! Error types of compilation and evaluation.

/// Why a jq expression could not be compiled.
///
/// `column` is the 1-based character offset into the expression source (without `${ }`);
/// for multi-line sources it counts from the start of the source, not of the line.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompileError {
    /// The source is not valid jq.
    #[error("jq syntax error at column {column}: expected {expected}, found {found}")]
    Syntax {
        column: usize,
        expected: String,
        found: String,
    },
    /// The source refers to a filter, variable or label that does not exist.
    #[error("jq error at column {column}: undefined {kind} `{name}`")]
    Undefined {
        column: usize,
        kind: String,
        name: String,
    },
    /// The source defines, calls or binds a name reserved for the engine (`__baton...`).
    #[error("jq error at column {column}: `{name}` is reserved for the engine")]
    Reserved { column: usize, name: String },
    /// A numeric literal is longer than the engine accepts.
    #[error("jq error at column {column}: number literal longer than {max} characters")]
    NumberTooLong { column: usize, max: usize },
    /// The source is longer than the engine accepts.
    #[error("jq expression is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    /// A variable name given to [`crate::Expr::compile`] is not a jq identifier.
    #[error("invalid jq variable name `{name}`")]
    Variable { name: String },
    /// The compiler could not run (for example, no thread could be started for a long
    /// expression).
    #[error("jq expression could not be compiled: {message}")]
    Internal { message: String },
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExprError {
    /// The expression raised an error (`error(...)`, a type error, ...).
    #[error("jq runtime error: {message}")]
    Runtime { message: String },
    /// The evaluation exceeded its [`crate::Budget`]: `what` is `"steps"`, `"output size"`,
    /// `"depth"` or `"outputs"`, and `limit` the value of the exceeded limit.
    #[error("jq expression exceeded its budget: {what} (limit {limit})")]
    Budget { what: String, limit: u64 },
    /// The number of variable values differs from the number of names given at compile time.
    #[error("jq expression takes {expected} variable values, got {got}")]
    Arity { expected: usize, got: usize },
    /// The evaluator failed in an unexpected way; this is a bug in baton-expr or jaq.
    #[error("internal error in the jq evaluator: {message}")]
    Internal { message: String },
}

impl ExprError {
    pub(crate) fn budget(what: &str, limit: u64) -> Self {
        Self::Budget {
            what: what.to_owned(),
            limit,
        }
    }

    /// Runtime error with the message cut to a bounded length: error values can be as large
    /// as any value, and messages end up in logs and journals.
    pub(crate) fn runtime(message: String) -> Self {
        Self::Runtime {
            message: truncate(message, MESSAGE_CHARS_MAX),
        }
    }
}

const MESSAGE_CHARS_MAX: usize = 1024;

pub(crate) fn truncate(mut s: String, chars_max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(chars_max) {
        s.truncate(cut);
        s.push('…');
    }
    s
}
