//! Parser entry points and helpers: name matching, numeric and temporal
//! literals.

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::FeelError;
use super::ast::{Expr, UnaryTests};
use super::lexer::{is_name_part, skip_trivia};
use super::parser::Parser;
use super::temporal;
use super::value::Value;

pub(super) fn is_simple(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(super::lexer::is_name_start) && chars.all(is_name_part)
}

/// Matches `name` at the start of `src`, letting a run of whitespace in the
/// name match any run of whitespace in the source. Returns the byte length.
pub(super) fn match_name(src: &str, name: &str) -> Option<usize> {
    let mut s = src.char_indices().peekable();
    let mut n = name.chars().peekable();
    while let Some(nc) = n.next() {
        if nc.is_whitespace() {
            while n.peek().is_some_and(|c| c.is_whitespace()) {
                n.next();
            }
            let mut any = false;
            while s.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                s.next();
                any = true;
            }
            if !any {
                return None;
            }
            continue;
        }
        match s.next() {
            Some((_, sc)) if sc == nc => {}
            _ => return None,
        }
    }
    let end = s.peek().map(|(i, _)| *i).unwrap_or(src.len());
    // The match must end at a name boundary (`Age` must not match `Agent`).
    if name.chars().last().is_some_and(is_name_part)
        && src[end..].chars().next().is_some_and(is_name_part)
    {
        return None;
    }
    Some(end)
}

pub fn parse_number(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        let t = if text.starts_with('.') {
            format!("0{text}")
        } else {
            text.to_string()
        };
        Decimal::from_str(&t).ok()
    }
}

/// Resolves an `@"..."` literal: date, time, date and time or duration.
pub fn temporal_literal(s: &str) -> Option<Value> {
    if s.starts_with('P') || s.starts_with("-P") {
        return match temporal::parse_duration(s)? {
            temporal::ParsedDuration::YearsMonths(m) => Some(Value::YmDuration(m)),
            temporal::ParsedDuration::DaysTime(n) => Some(Value::DtDuration(n)),
        };
    }
    // A `T` in a zone name (`@Etc/GMT`) does not make a date and time.
    if s.split('@').next().is_some_and(|civil| civil.contains('T')) {
        return temporal::DateTime::parse(s).map(Value::DateTime);
    }
    if s.len() >= 3 && s.as_bytes()[2] == b':' {
        return temporal::Time::parse(s).map(Value::Time);
    }
    temporal::Date::parse(s).map(Value::Date)
}

/// Parses a complete expression.
pub fn parse_expression(src: &str, names: &[Arc<str>]) -> Result<Expr, FeelError> {
    if skip_trivia(src, 0)? == src.len() {
        return Err(FeelError::at(src, 0, "empty expression"));
    }
    let mut p = Parser::new(src, names)?;
    let e = p.expression()?;
    p.finish()?;
    Ok(e)
}

/// Parses decision table input entry text; empty text matches anything.
pub fn parse_unary_tests(src: &str, names: &[Arc<str>]) -> Result<UnaryTests, FeelError> {
    if skip_trivia(src, 0)? == src.len() {
        return Ok(UnaryTests::Any);
    }
    let mut p = Parser::new(src, names)?;
    let t = p.unary_tests()?;
    p.finish()?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feel::ast::{ArithOp, CmpOp};

    #[test]
    fn joins_multi_word_names() {
        let e = parse_expression("Monthly Salary * 12", &[]).expect("parses");
        assert!(
            matches!(e, Expr::Arith(ArithOp::Mul, l, _) if matches!(&*l, Expr::Name(n) if &**n == "Monthly Salary"))
        );
        let names = [Arc::from("Applicant's age")];
        let e = parse_expression("Applicant's age >= 18", &names).expect("parses");
        assert!(matches!(e, Expr::Cmp(CmpOp::Ge, ..)));
    }

    #[test]
    fn parses_tests_and_reports_errors() {
        assert!(matches!(parse_unary_tests("-", &[]), Ok(UnaryTests::Any)));
        assert!(
            matches!(parse_unary_tests("not(1, 2)", &[]), Ok(UnaryTests::Not(v)) if v.len() == 2)
        );
        assert!(
            matches!(parse_unary_tests("[1..5], >10", &[]), Ok(UnaryTests::Tests(v)) if v.len() == 2)
        );
        let err = parse_expression("1 +", &[]).expect_err("incomplete");
        assert!(err.to_string().contains("column 4"), "{err}");
        let deep = "(".repeat(500) + "1" + &")".repeat(500);
        assert!(parse_expression(&deep, &[]).is_err());
    }
}
