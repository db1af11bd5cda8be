//! FEEL (Friendly Enough Expression Language): lexer, parser, values and
//! evaluator. Expressions are compiled once into an AST and evaluated many
//! times without re-parsing.

pub mod ast;
pub mod builtins;
mod builtins_list;
mod builtins_time;
pub mod cells;
pub mod eval;
pub mod lexer;
pub mod ops;
mod parse_util;
pub mod parser;
pub mod temporal;
pub mod value;

use std::fmt;

pub use eval::{Buffers, Evaluator, Host, NoHost};
pub use value::Value;

/// A FEEL syntax error with its position in the expression text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeelError {
    pub message: String,
    /// 1-based line and column (in characters) of the offending token.
    pub line: usize,
    pub column: usize,
}

impl FeelError {
    pub fn at(src: &str, offset: usize, message: &str) -> FeelError {
        let offset = offset.min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        FeelError {
            message: message.to_string(),
            line,
            column,
        }
    }
}

impl fmt::Display for FeelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for FeelError {}

/// Parses and evaluates a standalone expression with no variables; handy for
/// tests and the CLI.
pub fn eval_str(src: &str) -> Result<Value, FeelError> {
    let e = parser::parse_expression(src, &[])?;
    let host = NoHost;
    Ok(Evaluator::new(&host).eval(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(src: &str) -> String {
        match eval_str(src) {
            Ok(v) => format!("{v:#}").replace("\n", ""),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn evaluates_core_expressions() {
        assert_eq!(eval_str("1 + 2 * 3").map(|v| v.to_string()), Ok("7".into()));
        assert_eq!(s("if 1 > 2 then \"a\" else \"b\""), "b");
        assert_eq!(s("[1,2,3][item > 1]"), "[2, 3]");
        assert_eq!(s("for x in [1,2] return x * 10"), "[10, 20]");
        assert_eq!(s("some x in [1,2] satisfies x > 1"), "true");
        assert_eq!(s("{a: 1, b: a + 1}.b"), "2");
        assert_eq!(s("true and null"), "null");
        assert_eq!(s("false and null"), "false");
        assert_eq!(s("5 in [1..10]"), "true");
        assert_eq!(s("date(\"2020-01-31\") + duration(\"P1M\")"), "2020-02-29");
        assert_eq!(s("string length(\"abc\")"), "3");
        assert_eq!(
            s("substring(string: \"abcdef\", start position: 3, length: 2)"),
            "cd"
        );
        assert_eq!(s("(function(a, b) a * b)(3, 4)"), "12");
        assert_eq!(s("decimal(1/3, 2)"), "0.33");
        assert_eq!(s("1 / 0"), "null");
        assert_eq!(s("\"a\" + 1"), "null");
    }
}
