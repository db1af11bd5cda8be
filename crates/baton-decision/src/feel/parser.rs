//! The FEEL parser: recursive descent over tokens pulled from the lexer.
//!
//! Names with spaces are resolved in two ways. Names the caller declares
//! (DMN element names, item definition fields, built-in functions) are
//! matched longest-first against the source text; otherwise adjacent plain
//! identifiers are joined, since two names side by side are never valid FEEL
//! grammar on their own.

use std::sync::Arc;

use super::FeelError;
use super::ast::{Args, ArithOp, CmpOp, Expr, Iteration, TypeRef, UnaryTest, UnaryTests};
use super::lexer::{Tok, Token, next_token};
use super::parse_util::{is_simple, match_name};
pub use super::parse_util::{parse_expression, parse_number, parse_unary_tests, temporal_literal};
use super::value::Value;

/// Nesting limit: deeper expressions are rejected rather than risking the stack.
const DEPTH_MAX: u32 = 120;

/// Words that end a juxtaposed multi-word name.
const STOP_WORDS: &[&str] = &[
    "and",
    "or",
    "in",
    "then",
    "else",
    "return",
    "satisfies",
    "between",
    "instance",
    "true",
    "false",
    "null",
];

pub struct Parser<'a> {
    src: &'a str,
    tok: Token,
    names: Vec<Arc<str>>,
    depth: u32,
    /// While reading an interval's end, `[` closes the interval (`[1..10[`)
    /// instead of starting a filter.
    interval_end: bool,
}

impl<'a> Parser<'a> {
    /// `names` are the multi-word names in scope (single words need no help).
    pub fn new(src: &'a str, names: &[Arc<str>]) -> Result<Self, FeelError> {
        let tok = next_token(src, 0)?;
        let mut names: Vec<Arc<str>> = names.iter().filter(|n| !is_simple(n)).cloned().collect();
        names.extend(
            super::builtins::MULTI_WORD_NAMES
                .iter()
                .map(|n| Arc::from(*n)),
        );
        Ok(Parser {
            src,
            tok,
            names,
            depth: 0,
            interval_end: false,
        })
    }

    fn err<T>(&self, msg: &str) -> Result<T, FeelError> {
        Err(FeelError::at(self.src, self.tok.start, msg))
    }

    fn advance(&mut self) -> Result<(), FeelError> {
        self.tok = next_token(self.src, self.tok.end)?;
        Ok(())
    }

    fn jump_to(&mut self, pos: usize) -> Result<(), FeelError> {
        self.tok = next_token(self.src, pos)?;
        Ok(())
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.tok.tok, Tok::Sym(t) if t == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.tok.tok, Tok::Ident(t) if t == w)
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), FeelError> {
        if self.is_sym(s) {
            self.advance()
        } else {
            self.err(&format!("expected `{s}`, found {}", self.describe()))
        }
    }

    fn expect_word(&mut self, w: &str) -> Result<(), FeelError> {
        if self.is_word(w) {
            self.advance()
        } else {
            self.err(&format!("expected `{w}`, found {}", self.describe()))
        }
    }

    fn describe(&self) -> String {
        match &self.tok.tok {
            Tok::Eof => "end of expression".into(),
            _ => format!("`{}`", &self.src[self.tok.start..self.tok.end]),
        }
    }

    pub fn at_end(&self) -> bool {
        self.tok.tok == Tok::Eof
    }

    pub fn finish(&self) -> Result<(), FeelError> {
        if self.at_end() {
            Ok(())
        } else {
            self.err(&format!("unexpected {} after expression", self.describe()))
        }
    }

    fn enter(&mut self) -> Result<(), FeelError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return self.err("expression nested too deeply");
        }
        Ok(())
    }

    /// Parses a full expression.
    pub fn expression(&mut self) -> Result<Expr, FeelError> {
        self.enter()?;
        let r = self.expression_inner();
        self.depth -= 1;
        r
    }

    fn expression_inner(&mut self) -> Result<Expr, FeelError> {
        if let Tok::Ident(w) = &self.tok.tok {
            match w.as_str() {
                "if" => return self.if_expr(),
                "for" if self.next_is_name() => return self.for_expr(),
                "some" | "every" if self.next_is_name() => return self.quantified(),
                "function" if self.peek_sym("(") => return self.function_def(),
                _ => {}
            }
        }
        self.disjunction()
    }

    fn peek_sym(&self, s: &str) -> bool {
        matches!(next_token(self.src, self.tok.end), Ok(Token { tok: Tok::Sym(t), .. }) if t == s)
    }

    fn next_is_name(&self) -> bool {
        matches!(
            next_token(self.src, self.tok.end),
            Ok(Token {
                tok: Tok::Ident(_),
                ..
            })
        )
    }

    fn if_expr(&mut self) -> Result<Expr, FeelError> {
        self.advance()?;
        let c = self.expression()?;
        self.expect_word("then")?;
        let t = self.expression()?;
        self.expect_word("else")?;
        let e = self.expression()?;
        Ok(Expr::If(Box::new(c), Box::new(t), Box::new(e)))
    }

    fn iterations(&mut self, allow_range: bool) -> Result<Vec<Iteration>, FeelError> {
        let mut iters = Vec::new();
        loop {
            let name = self.name()?;
            self.expect_word("in")?;
            let source = self.expression()?;
            let range_end = if allow_range && self.is_sym("..") {
                self.advance()?;
                Some(self.expression()?)
            } else {
                None
            };
            self.names_push(&name);
            iters.push(Iteration {
                name,
                source,
                range_end,
            });
            if !self.is_sym(",") {
                return Ok(iters);
            }
            self.advance()?;
        }
    }

    fn for_expr(&mut self) -> Result<Expr, FeelError> {
        self.advance()?;
        let iters = self.iterations(true)?;
        self.expect_word("return")?;
        let body = self.expression()?;
        Ok(Expr::For(iters, Box::new(body)))
    }

    fn quantified(&mut self) -> Result<Expr, FeelError> {
        let every = self.is_word("every");
        self.advance()?;
        let iters = self.iterations(false)?;
        self.expect_word("satisfies")?;
        let cond = self.expression()?;
        Ok(Expr::Quantified {
            every,
            iters,
            cond: Box::new(cond),
        })
    }

    fn function_def(&mut self) -> Result<Expr, FeelError> {
        self.advance()?;
        self.expect_sym("(")?;
        let mut params = Vec::new();
        while !self.is_sym(")") {
            let name = self.name()?;
            let ty = if self.is_sym(":") {
                self.advance()?;
                Some(self.type_ref()?)
            } else {
                None
            };
            self.names_push(&name);
            params.push((name, ty));
            if !self.is_sym(",") {
                break;
            }
            self.advance()?;
        }
        self.expect_sym(")")?;
        let external = self.is_word("external");
        if external {
            self.advance()?;
        }
        let body = self.expression()?;
        Ok(Expr::FunctionDef {
            params,
            body: Arc::new(body),
            external,
        })
    }

    fn disjunction(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.disjunction_chain();
        self.depth = base;
        r
    }

    fn disjunction_chain(&mut self) -> Result<Expr, FeelError> {
        let mut l = self.conjunction()?;
        while self.is_word("or") {
            self.enter()?;
            self.advance()?;
            let r = self.conjunction()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn conjunction(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.conjunction_chain();
        self.depth = base;
        r
    }

    fn conjunction_chain(&mut self) -> Result<Expr, FeelError> {
        let mut l = self.comparison()?;
        while self.is_word("and") {
            self.enter()?;
            self.advance()?;
            let r = self.comparison()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn cmp_op(&self) -> Option<CmpOp> {
        match self.tok.tok {
            Tok::Sym("=") => Some(CmpOp::Eq),
            Tok::Sym("!=") => Some(CmpOp::Ne),
            Tok::Sym("<") => Some(CmpOp::Lt),
            Tok::Sym("<=") => Some(CmpOp::Le),
            Tok::Sym(">") => Some(CmpOp::Gt),
            Tok::Sym(">=") => Some(CmpOp::Ge),
            _ => None,
        }
    }

    fn comparison(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.comparison_chain();
        self.depth = base;
        r
    }

    fn comparison_chain(&mut self) -> Result<Expr, FeelError> {
        let mut l = self.additive()?;
        loop {
            if let Some(op) = self.cmp_op() {
                self.enter()?;
                self.advance()?;
                let r = self.additive()?;
                l = Expr::Cmp(op, Box::new(l), Box::new(r));
            } else if self.is_word("between") {
                self.enter()?;
                self.advance()?;
                let lo = self.additive()?;
                self.expect_word("and")?;
                let hi = self.additive()?;
                l = Expr::Between(Box::new(l), Box::new(lo), Box::new(hi));
            } else if self.is_word("in") {
                self.enter()?;
                self.advance()?;
                let tests = if self.is_sym("(") && self.paren_holds_tests() {
                    self.advance()?;
                    let t = self.positive_tests(false)?;
                    self.expect_sym(")")?;
                    t
                } else {
                    vec![self.positive_test(false)?]
                };
                l = Expr::In(Box::new(l), Box::new(UnaryTests::Tests(tests)));
            } else if self.is_word("instance") {
                self.enter()?;
                self.advance()?;
                self.expect_word("of")?;
                let t = self.type_ref()?;
                l = Expr::InstanceOf(Box::new(l), t);
            } else {
                return Ok(l);
            }
        }
    }

    /// After `in (`: a parenthesised list of unary tests rather than an
    /// interval or a parenthesised expression.
    fn paren_holds_tests(&self) -> bool {
        let Ok(t) = next_token(self.src, self.tok.end) else {
            return false;
        };
        if matches!(t.tok, Tok::Sym("<" | "<=" | ">" | ">=" | "!=" | "=")) {
            return true;
        }
        // Scan to the matching paren: a top-level comma means a test list.
        let mut depth = 0i32;
        let mut pos = self.tok.end;
        while let Ok(t) = next_token(self.src, pos) {
            match t.tok {
                Tok::Eof => return false,
                Tok::Sym("(" | "[" | "{") => depth += 1,
                Tok::Sym("]" | "}") => depth -= 1,
                Tok::Sym(")") if depth == 0 => return false,
                Tok::Sym(")") => depth -= 1,
                Tok::Sym("..") if depth == 0 => return false,
                Tok::Sym(",") if depth == 0 => return true,
                _ => {}
            }
            pos = t.end;
        }
        false
    }

    fn positive_tests(&mut self, full: bool) -> Result<Vec<UnaryTest>, FeelError> {
        let mut tests = vec![self.positive_test(full)?];
        while self.is_sym(",") {
            self.advance()?;
            tests.push(self.positive_test(full)?);
        }
        Ok(tests)
    }

    /// One positive unary test; `full` allows a whole expression (table
    /// cells), otherwise an operand (right of `in`).
    fn positive_test(&mut self, full: bool) -> Result<UnaryTest, FeelError> {
        let expr = if let Some(op) = self.cmp_op() {
            self.advance()?;
            Expr::UnaryCmp(op, Box::new(self.additive()?))
        } else if full {
            self.expression()?
        } else {
            self.additive()?
        };
        let uses_input = expr.uses_input();
        Ok(UnaryTest { expr, uses_input })
    }

    /// Parses decision table input entry syntax.
    pub fn unary_tests(&mut self) -> Result<UnaryTests, FeelError> {
        if self.is_sym("-")
            && next_token(self.src, self.tok.end)
                .map(|t| t.tok == Tok::Eof)
                .unwrap_or(false)
        {
            self.advance()?;
            return Ok(UnaryTests::Any);
        }
        if self.is_word("not") && self.peek_sym("(") {
            let save = self.tok.clone();
            self.advance()?;
            self.advance()?;
            let tests = self.positive_tests(true)?;
            if self.is_sym(")") {
                self.advance()?;
                if self.at_end() {
                    return Ok(UnaryTests::Not(tests));
                }
            }
            // `not(x) = y` and friends: an ordinary expression after all.
            self.tok = save;
        }
        Ok(UnaryTests::Tests(self.positive_tests(true)?))
    }

    fn additive(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.additive_chain();
        self.depth = base;
        r
    }

    fn additive_chain(&mut self) -> Result<Expr, FeelError> {
        let mut l = self.multiplicative()?;
        loop {
            let op = match self.tok.tok {
                Tok::Sym("+") => ArithOp::Add,
                Tok::Sym("-") => ArithOp::Sub,
                _ => return Ok(l),
            };
            // Each link of a chain is one more level of the tree.
            self.enter()?;
            self.advance()?;
            let r = self.multiplicative()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.multiplicative_chain();
        self.depth = base;
        r
    }

    fn multiplicative_chain(&mut self) -> Result<Expr, FeelError> {
        let mut l = self.power()?;
        loop {
            let op = match self.tok.tok {
                Tok::Sym("*") => ArithOp::Mul,
                Tok::Sym("/") => ArithOp::Div,
                _ => return Ok(l),
            };
            // Each link of a chain is one more level of the tree.
            self.enter()?;
            self.advance()?;
            let r = self.power()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r));
        }
    }

    fn power(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.power_chain();
        self.depth = base;
        r
    }

    fn power_chain(&mut self) -> Result<Expr, FeelError> {
        let mut l = self.unary()?;
        while self.is_sym("**") {
            self.enter()?;
            self.advance()?;
            let r = self.unary()?;
            l = Expr::Arith(ArithOp::Pow, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Expr, FeelError> {
        if self.is_sym("-") {
            self.enter()?;
            self.advance()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(match e {
                Expr::Const(Value::Number(n)) => Expr::number(-n),
                e => Expr::Neg(Box::new(e)),
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, FeelError> {
        let base = self.depth;
        let r = self.postfix_chain();
        self.depth = base;
        r
    }

    fn postfix_chain(&mut self) -> Result<Expr, FeelError> {
        let mut e = self.primary()?;
        loop {
            if self.is_sym(".") {
                self.enter()?;
                self.advance()?;
                let n = self.name()?;
                e = Expr::Path(Box::new(e), n);
            } else if self.is_sym("[") && !self.interval_end {
                self.enter()?;
                self.advance()?;
                let f = self.expression()?;
                self.expect_sym("]")?;
                e = Expr::Filter(Box::new(e), Box::new(f));
            } else if self.is_sym("(") {
                self.enter()?;
                self.advance()?;
                let saved = std::mem::replace(&mut self.interval_end, false);
                let args = self.args();
                self.interval_end = saved;
                let args = args?;
                e = Expr::Call(Box::new(e), args);
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self) -> Result<Args, FeelError> {
        if self.is_sym(")") {
            self.advance()?;
            return Ok(Args::Positional(Vec::new()));
        }
        if self.named_arg_key()?.is_some() {
            return self.named_args();
        }
        let mut v = Vec::new();
        loop {
            v.push(self.expression()?);
            if self.is_sym(",") {
                self.advance()?;
                continue;
            }
            self.expect_sym(")")?;
            return Ok(Args::Positional(v));
        }
    }

    /// Looks ahead for `name :`; leaves the cursor untouched.
    fn named_arg_key(&mut self) -> Result<Option<Arc<str>>, FeelError> {
        if !matches!(self.tok.tok, Tok::Ident(_)) {
            return Ok(None);
        }
        let save = self.tok.clone();
        let key = self.name().ok();
        let found = key.is_some() && self.is_sym(":");
        self.tok = save;
        Ok(if found { key } else { None })
    }

    fn named_args(&mut self) -> Result<Args, FeelError> {
        let mut v = Vec::new();
        loop {
            let key = self.name()?;
            self.expect_sym(":")?;
            v.push((key, self.expression()?));
            if self.is_sym(",") {
                self.advance()?;
                continue;
            }
            self.expect_sym(")")?;
            return Ok(Args::Named(v));
        }
    }

    fn primary(&mut self) -> Result<Expr, FeelError> {
        self.enter()?;
        let r = self.primary_inner();
        self.depth -= 1;
        r
    }

    fn primary_inner(&mut self) -> Result<Expr, FeelError> {
        match self.tok.tok.clone() {
            Tok::Num(text) => {
                let n = parse_number(&text).ok_or_else(|| {
                    FeelError::at(self.src, self.tok.start, "number out of range")
                })?;
                self.advance()?;
                Ok(Expr::number(n))
            }
            Tok::Str(s) => {
                self.advance()?;
                Ok(Expr::Const(Value::str(&s)))
            }
            Tok::Sym("@") => {
                self.advance()?;
                let Tok::Str(s) = self.tok.tok.clone() else {
                    return self.err("expected a string after `@`");
                };
                let v = temporal_literal(&s).ok_or_else(|| {
                    FeelError::at(self.src, self.tok.start, "invalid temporal literal")
                })?;
                self.advance()?;
                Ok(Expr::Const(v))
            }
            Tok::Sym("?") => {
                self.advance()?;
                Ok(Expr::InputValue)
            }
            Tok::Sym("(") => self.paren(),
            Tok::Sym("[") => self.bracket(),
            Tok::Sym("]") => {
                // `]a..b]`: an interval open at the start.
                self.advance()?;
                self.interval_rest(false)
            }
            Tok::Sym("{") => self.context(),
            Tok::Sym(op @ ("<" | "<=" | ">" | ">=" | "=" | "!=")) => {
                // A unary comparison as a value, e.g. a list of tests `[< 5, > 10]`.
                let op = self
                    .cmp_op()
                    .ok_or_else(|| FeelError::at(self.src, self.tok.start, op))?;
                self.advance()?;
                Ok(Expr::UnaryCmp(op, Box::new(self.additive()?)))
            }
            Tok::Ident(w) => match w.as_str() {
                "true" => self.advance().map(|_| Expr::Const(Value::Bool(true))),
                "false" => self.advance().map(|_| Expr::Const(Value::Bool(false))),
                "null" => self.advance().map(|_| Expr::Const(Value::Null)),
                "if" => self.if_expr(),
                "for" if self.next_is_name() => self.for_expr(),
                "some" | "every" if self.next_is_name() => self.quantified(),
                "function" if self.peek_sym("(") => self.function_def(),
                _ => Ok(Expr::Name(self.name()?)),
            },
            _ => self.err(&format!(
                "expected an expression, found {}",
                self.describe()
            )),
        }
    }

    fn paren(&mut self) -> Result<Expr, FeelError> {
        self.advance()?;
        let saved = std::mem::replace(&mut self.interval_end, false);
        let r = self.paren_inner();
        self.interval_end = saved;
        r
    }

    fn paren_inner(&mut self) -> Result<Expr, FeelError> {
        let first = self.expression()?;
        if self.is_sym("..") {
            return self.interval_after_start(false, first);
        }
        if self.is_sym(",") {
            let mut items = vec![first];
            while self.is_sym(",") {
                self.advance()?;
                items.push(self.expression()?);
            }
            self.expect_sym(")")?;
            return Ok(Expr::List(items));
        }
        self.expect_sym(")")?;
        Ok(first)
    }

    fn bracket(&mut self) -> Result<Expr, FeelError> {
        self.advance()?;
        let saved = std::mem::replace(&mut self.interval_end, false);
        let r = self.bracket_inner();
        self.interval_end = saved;
        r
    }

    fn bracket_inner(&mut self) -> Result<Expr, FeelError> {
        if self.is_sym("]") {
            self.advance()?;
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.expression()?;
        if self.is_sym("..") {
            return self.interval_after_start(true, first);
        }
        let mut items = vec![first];
        while self.is_sym(",") {
            self.advance()?;
            items.push(self.expression()?);
        }
        self.expect_sym("]")?;
        Ok(Expr::List(items))
    }

    fn interval_rest(&mut self, start_incl: bool) -> Result<Expr, FeelError> {
        let start = self.expression()?;
        if !self.is_sym("..") {
            return self.err("expected `..` in interval");
        }
        self.interval_after_start(start_incl, start)
    }

    fn interval_after_start(&mut self, start_incl: bool, start: Expr) -> Result<Expr, FeelError> {
        self.expect_sym("..")?;
        let saved = std::mem::replace(&mut self.interval_end, true);
        let end = self.expression();
        self.interval_end = saved;
        let end = end?;
        let end_incl = match self.tok.tok {
            Tok::Sym("]") => true,
            Tok::Sym(")" | "[") => false,
            _ => return self.err("expected `]`, `)` or `[` to close the interval"),
        };
        self.advance()?;
        // Literal intervals (most table cells) are built once, here.
        if let (Expr::Const(s), Expr::Const(e)) = (&start, &end) {
            let r = super::eval::make_range(s.clone(), start_incl, e.clone(), end_incl);
            if !r.is_null() {
                return Ok(Expr::Const(r));
            }
        }
        Ok(Expr::Interval {
            start_incl,
            start: Box::new(start),
            end: Box::new(end),
            end_incl,
        })
    }

    fn context(&mut self) -> Result<Expr, FeelError> {
        self.advance()?;
        let mut entries = Vec::new();
        while !self.is_sym("}") {
            let key: Arc<str> = match &self.tok.tok {
                Tok::Str(s) => {
                    let k = Arc::from(s.as_str());
                    self.advance()?;
                    k
                }
                _ => self.context_key()?,
            };
            self.expect_sym(":")?;
            let value = self.expression()?;
            self.names_push(&key);
            entries.push((key, value));
            if !self.is_sym(",") {
                break;
            }
            self.advance()?;
        }
        self.expect_sym("}")?;
        Ok(Expr::Context(entries))
    }

    /// A context key is the raw text up to the `:` (it may hold any name
    /// characters, including spaces and symbols).
    fn context_key(&mut self) -> Result<Arc<str>, FeelError> {
        let start = self.tok.start;
        let rest = &self.src[start..];
        let Some(colon) = rest.find(':') else {
            return self.err("expected `:` after context key");
        };
        let key = rest[..colon].trim();
        if key.is_empty() || key.contains([',', '{', '}', '"']) {
            return self.err("invalid context key");
        }
        self.jump_to(start + rest[..colon].trim_end().len())?;
        Ok(Arc::from(key))
    }

    fn names_push(&mut self, name: &Arc<str>) {
        if !is_simple(name) && !self.names.contains(name) {
            self.names.push(name.clone());
        }
    }

    /// A (possibly multi-word) name at the cursor.
    fn name(&mut self) -> Result<Arc<str>, FeelError> {
        if let Some((n, end)) = self.match_known() {
            self.jump_to(end)?;
            return Ok(n);
        }
        let Tok::Ident(first) = self.tok.tok.clone() else {
            return self.err(&format!("expected a name, found {}", self.describe()));
        };
        self.advance()?;
        let mut name = first;
        loop {
            match &self.tok.tok {
                Tok::Ident(w)
                    if !STOP_WORDS.contains(&w.as_str()) && !self.keyword_starts_here(w) =>
                {
                    name.push(' ');
                    name.push_str(w);
                }
                Tok::Num(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    name.push(' ');
                    name.push_str(n);
                }
                _ => break,
            }
            self.advance()?;
        }
        Ok(Arc::from(name))
    }

    fn keyword_starts_here(&self, w: &str) -> bool {
        matches!(w, "for" | "some" | "every" | "if" | "function") && self.next_is_name()
    }

    /// Longest declared multi-word name starting at the current token.
    fn match_known(&self) -> Option<(Arc<str>, usize)> {
        let at = self.tok.start;
        let rest = &self.src[at..];
        let first = rest.chars().next()?;
        let mut best: Option<(Arc<str>, usize)> = None;
        for n in &self.names {
            if !n.starts_with(first) {
                continue;
            }
            if let Some(len) = match_name(rest, n)
                && best.as_ref().is_none_or(|(_, l)| len > *l)
            {
                best = Some((n.clone(), len));
            }
        }
        best.map(|(n, len)| (n, at + len))
    }

    /// Parses a type expression (`list<number>`, `date and time`, a name).
    pub fn type_ref(&mut self) -> Result<TypeRef, FeelError> {
        self.enter()?;
        let name = self.name()?;
        let r = match &*name {
            "list" | "range" if self.is_sym("<") => {
                self.advance()?;
                let inner = self.type_ref()?;
                self.expect_sym(">")?;
                Ok(if &*name == "list" {
                    TypeRef::List(Box::new(inner))
                } else {
                    TypeRef::Range(Box::new(inner))
                })
            }
            "context" if self.is_sym("<") => {
                self.advance()?;
                let mut fields = Vec::new();
                while !self.is_sym(">") {
                    let k = self.name()?;
                    self.expect_sym(":")?;
                    fields.push((k, self.type_ref()?));
                    if !self.is_sym(",") {
                        break;
                    }
                    self.advance()?;
                }
                self.expect_sym(">")?;
                Ok(TypeRef::Context(fields))
            }
            "function" if self.is_sym("<") => {
                self.advance()?;
                let mut params = Vec::new();
                while !self.is_sym(">") {
                    params.push(self.type_ref()?);
                    if !self.is_sym(",") {
                        break;
                    }
                    self.advance()?;
                }
                self.expect_sym(">")?;
                self.expect_sym("->")?;
                Ok(TypeRef::Function(params, Box::new(self.type_ref()?)))
            }
            _ => {
                // Qualified names (`tns.Type`) keep their last part.
                let mut n = name;
                while self.is_sym(".") {
                    self.advance()?;
                    n = self.name()?;
                }
                Ok(TypeRef::Named(n))
            }
        };
        self.depth -= 1;
        r
    }
}
