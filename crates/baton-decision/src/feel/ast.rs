//! The FEEL abstract syntax tree produced by the parser and walked by the
//! evaluator. Literal temporal values are resolved at parse time so that
//! evaluation never re-parses text.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A type expression (`number`, `list<string>`, `context<a: number>`, an
/// item definition name).
#[derive(Clone, Debug, PartialEq)]
pub enum TypeRef {
    Named(Arc<str>),
    List(Box<TypeRef>),
    Range(Box<TypeRef>),
    Context(Vec<(Arc<str>, TypeRef)>),
    Function(Vec<TypeRef>, Box<TypeRef>),
}

/// Call arguments: positional or named, never mixed (FEEL forbids mixing).
#[derive(Clone, Debug)]
pub enum Args {
    Positional(Vec<Expr>),
    Named(Vec<(Arc<str>, Expr)>),
}

/// One `name in source` clause of a `for`, `some` or `every`.
#[derive(Clone, Debug)]
pub struct Iteration {
    pub name: Arc<str>,
    pub source: Expr,
    /// `for i in 1..3`: the upper end of a numeric range.
    pub range_end: Option<Expr>,
}

#[derive(Clone, Debug)]
pub enum Expr {
    /// A constant (literals, including `@"..."` temporals).
    Const(Value),
    Name(Arc<str>),
    /// The input value `?` of a unary test.
    InputValue,
    Neg(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Between(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `value in tests`.
    In(Box<Expr>, Box<UnaryTests>),
    InstanceOf(Box<Expr>, TypeRef),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    For(Vec<Iteration>, Box<Expr>),
    Quantified {
        every: bool,
        iters: Vec<Iteration>,
        cond: Box<Expr>,
    },
    List(Vec<Expr>),
    Context(Vec<(Arc<str>, Expr)>),
    Interval {
        start_incl: bool,
        start: Box<Expr>,
        end: Box<Expr>,
        end_incl: bool,
    },
    /// A unary comparison used as a value (`< 10` is a range).
    UnaryCmp(CmpOp, Box<Expr>),
    Path(Box<Expr>, Arc<str>),
    Filter(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Args),
    FunctionDef {
        params: Vec<(Arc<str>, Option<TypeRef>)>,
        body: Arc<Expr>,
        external: bool,
    },
}

/// One positive unary test of a decision table cell or an `in` right side.
#[derive(Clone, Debug)]
pub struct UnaryTest {
    pub expr: Expr,
    /// Whether the expression mentions `?`: then its boolean result decides.
    pub uses_input: bool,
}

/// A decision table input entry.
#[derive(Clone, Debug)]
pub enum UnaryTests {
    /// `-`: matches anything.
    Any,
    Tests(Vec<UnaryTest>),
    Not(Vec<UnaryTest>),
}

impl Expr {
    pub fn number(n: Decimal) -> Expr {
        Expr::Const(Value::Number(n))
    }

    /// Whether `?` occurs anywhere in the expression.
    pub fn uses_input(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::InputValue));
        found
    }

    /// Whether the name occurs anywhere in the expression (e.g. `partial`).
    pub fn mentions(&self, name: &str) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Name(n) if &**n == name));
        found
    }

    fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Const(_) | Expr::Name(_) | Expr::InputValue => {}
            Expr::Neg(a) | Expr::UnaryCmp(_, a) | Expr::Path(a, _) | Expr::InstanceOf(a, _) => {
                a.walk(f)
            }
            Expr::Arith(_, a, b)
            | Expr::Cmp(_, a, b)
            | Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Filter(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Interval { start, end, .. } => {
                start.walk(f);
                end.walk(f);
            }
            Expr::Between(a, b, c) | Expr::If(a, b, c) => {
                a.walk(f);
                b.walk(f);
                c.walk(f);
            }
            Expr::In(a, t) => {
                a.walk(f);
                if let UnaryTests::Tests(ts) | UnaryTests::Not(ts) = &**t {
                    ts.iter().for_each(|t| t.expr.walk(f));
                }
            }
            Expr::For(its, body)
            | Expr::Quantified {
                iters: its,
                cond: body,
                ..
            } => {
                for it in its {
                    it.source.walk(f);
                    if let Some(e) = &it.range_end {
                        e.walk(f);
                    }
                }
                body.walk(f);
            }
            Expr::List(items) => items.iter().for_each(|e| e.walk(f)),
            Expr::Context(entries) => entries.iter().for_each(|(_, e)| e.walk(f)),
            Expr::Call(callee, args) => {
                callee.walk(f);
                match args {
                    Args::Positional(a) => a.iter().for_each(|e| e.walk(f)),
                    Args::Named(a) => a.iter().for_each(|(_, e)| e.walk(f)),
                }
            }
            // A nested function body has its own scope; `?` there is not ours.
            Expr::FunctionDef { .. } => {}
        }
    }
}
