//! Decision table cells compiled into specialised matchers.
//!
//! Most input entries are constants: numeric comparisons (`< 18`), numeric
//! intervals (`[18..25)`), and string or number literals (`"US", "CA"`).
//! [`Cell::compile`] turns those into tests that look at the input value
//! directly (no evaluator, no `?` binding, no generic value dispatch) and
//! keeps every other test as a [`UnaryTest`] for the evaluator.
//!
//! The contract is exact equivalence with [`Evaluator::unary_tests`]: a
//! compiled cell matches an input if and only if the generic evaluation of
//! the same tests gives `Some(true)`. The unit tests below check this on a
//! grid of cells and inputs.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::Evaluator;
use super::ast::{CmpOp, Expr, UnaryTest, UnaryTests};
use super::value::{Value, str_eq};

/// A number with, when it is an integer that fits `i64`, that integer: the
/// common case compares as machine integers instead of decimals.
#[derive(Clone, Copy, Debug)]
pub struct NumKey {
    dec: Decimal,
    int: Option<i64>,
}

impl NumKey {
    pub fn new(d: Decimal) -> NumKey {
        let dec = d.normalize();
        NumKey {
            dec,
            int: int_of(&dec),
        }
    }

    /// The decimal value (normalised).
    pub fn dec(&self) -> Decimal {
        self.dec
    }

    /// Compares the probe's number `n` with this key.
    #[inline]
    pub fn cmp_probe(&self, p: &Probe<'_>, n: &Decimal) -> Ordering {
        match (p.int, self.int) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => n.cmp(&self.dec),
        }
    }
}

/// `Some(i)` when `d` is written without fraction digits and fits `i64`.
/// (A number such as `40.0` has scale 1 and takes the decimal path, which
/// gives the same answer.)
fn int_of(d: &Decimal) -> Option<i64> {
    if d.scale() == 0 {
        i64::try_from(d.mantissa()).ok()
    } else {
        None
    }
}

/// An input value prepared once per column, shared by every rule's cell.
pub struct Probe<'a> {
    pub value: &'a Value,
    int: Option<i64>,
}

impl<'a> Probe<'a> {
    pub fn new(value: &'a Value) -> Probe<'a> {
        Probe {
            value,
            int: Probe::int_key(value),
        }
    }

    /// With the integer key already computed by [`Probe::int_key`].
    #[inline]
    pub fn with_int(value: &'a Value, int: Option<i64>) -> Probe<'a> {
        Probe { value, int }
    }

    /// The integer form of a number value, when it has one.
    #[inline]
    pub fn int_key(value: &Value) -> Option<i64> {
        match value {
            Value::Number(n) => int_of(n),
            _ => None,
        }
    }
}

/// One positive test of a cell.
#[derive(Debug)]
pub enum Test {
    /// A numeric interval, either end optional (`< 18`, `[18..25)`, `> 65`).
    /// FEEL: a number compares, anything else (null included) is unknown.
    Interval {
        lo: Option<(NumKey, bool)>,
        hi: Option<(NumKey, bool)>,
    },
    /// Equality with a number literal (FEEL `=`: null is unequal, another
    /// type is unknown).
    NumEq(NumKey),
    /// Equality with a string literal.
    StrEq(std::sync::Arc<str>),
    /// Anything else, evaluated by the evaluator.
    Generic(UnaryTest),
}

/// A compiled input entry.
#[derive(Debug)]
pub enum Cell {
    /// `-`.
    Any,
    /// Positive tests: the cell matches when one of them is true.
    Tests(Box<[Test]>),
    /// `not(...)`: the cell matches when every test is false (none unknown).
    Not(Box<[Test]>),
}

impl Cell {
    pub fn compile(tests: UnaryTests) -> Cell {
        match tests {
            UnaryTests::Any => Cell::Any,
            UnaryTests::Tests(ts) => Cell::Tests(ts.into_iter().map(Test::compile).collect()),
            UnaryTests::Not(ts) => Cell::Not(ts.into_iter().map(Test::compile).collect()),
        }
    }

    /// Whether the input matches (the generic evaluation is `Some(true)`).
    #[inline]
    pub fn matches(&self, ev: &mut Evaluator<'_>, p: &Probe<'_>) -> bool {
        match self {
            Cell::Any => true,
            Cell::Tests(ts) => ts.iter().any(|t| t.eval(ev, p) == Some(true)),
            Cell::Not(ts) => ts.iter().all(|t| t.eval(ev, p) == Some(false)),
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Cell::Any)
    }

    /// Whether any test needs the evaluator (and so possibly its context).
    pub fn has_generic(&self) -> bool {
        match self {
            Cell::Any => false,
            Cell::Tests(ts) | Cell::Not(ts) => ts.iter().any(|t| matches!(t, Test::Generic(_))),
        }
    }
}

impl Test {
    pub fn compile(t: UnaryTest) -> Test {
        match &t.expr {
            Expr::UnaryCmp(op, e) => {
                if let Expr::Const(Value::Number(n)) = &**e {
                    let k = NumKey::new(*n);
                    match op {
                        CmpOp::Lt => {
                            return Test::Interval {
                                lo: None,
                                hi: Some((k, false)),
                            };
                        }
                        CmpOp::Le => {
                            return Test::Interval {
                                lo: None,
                                hi: Some((k, true)),
                            };
                        }
                        CmpOp::Gt => {
                            return Test::Interval {
                                lo: Some((k, false)),
                                hi: None,
                            };
                        }
                        CmpOp::Ge => {
                            return Test::Interval {
                                lo: Some((k, true)),
                                hi: None,
                            };
                        }
                        // `= n` and `!= n` are equality tests; `!=` stays generic.
                        CmpOp::Eq => return Test::NumEq(k),
                        CmpOp::Ne => {}
                    }
                }
            }
            Expr::Const(Value::Number(n)) => return Test::NumEq(NumKey::new(*n)),
            Expr::Const(Value::String(s)) => return Test::StrEq(s.clone()),
            Expr::Const(Value::Range(r)) => {
                let end = |v: &Value, incl: bool| -> Option<Option<(NumKey, bool)>> {
                    match v {
                        Value::Number(n) => Some(Some((NumKey::new(*n), incl))),
                        // Only a range built from a comparison reads a null end
                        // as unbounded; in a literal it makes the test unknown.
                        Value::Null if r.from_test => Some(None),
                        _ => None,
                    }
                };
                if let (Some(lo), Some(hi)) = (
                    end(&r.start.value, r.start.inclusive),
                    end(&r.end.value, r.end.inclusive),
                ) && (lo.is_some() || hi.is_some())
                {
                    return Test::Interval { lo, hi };
                }
            }
            _ => {}
        }
        Test::Generic(t)
    }

    #[inline]
    fn eval(&self, ev: &mut Evaluator<'_>, p: &Probe<'_>) -> Option<bool> {
        match self {
            Test::Interval { lo, hi } => {
                let Value::Number(n) = p.value else {
                    return None;
                };
                if let Some((k, incl)) = lo {
                    let o = k.cmp_probe(p, n);
                    if o == Ordering::Less || (o == Ordering::Equal && !incl) {
                        return Some(false);
                    }
                }
                if let Some((k, incl)) = hi {
                    let o = k.cmp_probe(p, n);
                    if o == Ordering::Greater || (o == Ordering::Equal && !incl) {
                        return Some(false);
                    }
                }
                Some(true)
            }
            Test::NumEq(k) => match p.value {
                Value::Number(n) => Some(k.cmp_probe(p, n) == Ordering::Equal),
                Value::Null => Some(false),
                _ => None,
            },
            Test::StrEq(s) => match p.value {
                Value::String(x) => Some(str_eq(x, s)),
                Value::Null => Some(false),
                _ => None,
            },
            Test::Generic(t) => ev.unary_test(p.value, t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feel::NoHost;
    use crate::feel::parser::parse_unary_tests;

    /// Every cell, compiled, agrees with the generic evaluator on every input.
    #[test]
    fn compiled_cells_agree_with_the_evaluator() {
        let cells = [
            "-",
            "< 18",
            "<= 18",
            "> 65",
            ">= 65",
            "= 18",
            "!= 18",
            "18",
            "18.0",
            "-3",
            "0.5",
            "[18..25)",
            "(18..25]",
            "[18..25]",
            "(18..25)",
            "[1.5..2.5]",
            "[\"a\"..\"m\"]",
            "[1..null]",
            "< null",
            "\"US\", \"CA\"",
            "\"US\"",
            "\"\"",
            "not(\"US\", \"CA\")",
            "not(< 18)",
            "not([18..25))",
            "< 18, > 65",
            "null",
            "true",
            "? > 10",
            "[1, 2, 3]",
            "date(\"2020-01-01\")",
            "< date(\"2020-01-01\")",
            "100000000000000000000000",
            "> 100000000000000000000000",
        ];
        let inputs = [
            Value::Null,
            Value::num(17),
            Value::num(18),
            Value::Number(Decimal::new(180, 1)),
            Value::Number(Decimal::new(185, 1)),
            Value::num(25),
            Value::num(65),
            Value::num(66),
            Value::num(-3),
            Value::Number(Decimal::new(5, 1)),
            Value::Number(Decimal::new(15, 1)),
            Value::num(i64::MAX),
            Value::Number(Decimal::MAX),
            Value::str("US"),
            Value::str("CA"),
            Value::str("b"),
            Value::str(""),
            Value::str("18"),
            Value::Bool(true),
            Value::list(vec![Value::num(1), Value::num(2), Value::num(3)]),
            crate::feel::eval_str("date(\"2020-01-01\")").unwrap(),
            crate::feel::eval_str("date(\"2019-01-01\")").unwrap(),
        ];
        let host = NoHost;
        for src in cells {
            let generic = parse_unary_tests(src, &[]).expect(src);
            let cell = Cell::compile(generic.clone());
            for v in &inputs {
                let mut ev = Evaluator::new(&host);
                let want = ev.unary_tests(v, &generic) == Some(true);
                let got = cell.matches(&mut ev, &Probe::new(v));
                assert_eq!(got, want, "cell `{src}` on input {v:?}");
            }
        }
    }

    #[test]
    fn literal_cells_are_specialised() {
        let compiled = |src: &str| Cell::compile(parse_unary_tests(src, &[]).unwrap());
        for src in ["< 18", "[18..25)", "\"US\", \"CA\"", "18", "not(\"x\")"] {
            let (Cell::Tests(ts) | Cell::Not(ts)) = compiled(src) else {
                panic!("{src}: expected tests");
            };
            assert!(
                ts.iter().all(|t| !matches!(t, Test::Generic(_))),
                "{src}: {ts:?}"
            );
        }
        assert!(compiled("-").is_any());
    }
}
