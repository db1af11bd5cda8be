//! Rewriting of parsed jq so that every operation that can build a large or deep value goes
//! through a budget-aware native filter (see [`crate::natives`]).
//!
//! jaq evaluates `+`, `*`, `[...]`, `{...}`, string interpolation and assignments inside its
//! own interpreter, where no hook can see the values. Rewriting them at the syntax level into
//! calls of our natives keeps jaq unmodified while letting us check every value they produce:
//!
//! | jq                    | becomes                                            |
//! |-----------------------|----------------------------------------------------|
//! | `l + r` (any of `+ - * / %`) | `__baton_add(l; r)`                         |
//! | `l += r` (any of `+= -= ...`) | `r as $__baton_v \| __baton_check(l \|= __baton_add(.; $__baton_v))` |
//! | `l = r`, `l \|= r`, `l //= r` | `__baton_check(l = r)`, ...                |
//! | `[f]`                 | `__baton_array(f)`                                 |
//! | `{...}`, `"\(f)"`     | `__baton_check({...})`, `__baton_check("\(f)")`    |
//! | `tojson`, `explode`, ... ([`GROWING`]) | `__baton_check(tojson)`, ...      |
//! | `test(re; fl)`'s `matches(re; fl)` | `__baton_cost_regex(re; fl), __baton_check(matches(re; fl))` |
//! | `indices(x)`, `contains(x)` | `__baton_cost_search(x), indices(x)`, ...     |
//! | `def f(g): body` (a filter parameter) | `def f(g): __baton_frame(body)`          |
//! | `def f: body`, `def f($x): body` | `def f: __baton_path_guard, body`          |
//! | `a, b, c, ...`        | the same items as a balanced tree of `,`           |
//!
//! The same rewrite is applied to jaq's standard library definitions, so `add`, `join`,
//! `to_entries` etc. are checked too. Names starting with `__baton` are reserved: user code
//! may not define, call or bind them, so it cannot shadow the checking filters.

use std::collections::BTreeSet;

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::path::{Part, Path};

use crate::natives::{
    ARRAY, CHECK, COST_REGEX, COST_SEARCH, FRAME, GROWING, PATH_GUARD, REGEX, SEARCH, math_name,
};

/// Prefix of every name the rewrite introduces.
pub(crate) const RESERVED_PREFIX: &str = "__baton";
/// Variable that carries the right-hand side of `l op= r` (the `$` is part of jaq's name).
const UPDATE_VAR: &str = "$__baton_v";
/// Numeric literals longer than this are rejected: jaq parses them again on every evaluation,
/// and parsing a huge integer is quadratic.
pub(crate) const NUM_LITERAL_MAX: usize = 100;

type T<'s> = Term<&'s str>;

/// Something in user code that the rewrite refuses, with the offending slice of the source.
pub(crate) enum Rejection<'s> {
    Reserved(&'s str),
    LongNumber(&'s str),
}

/// Rewrites terms; for user code it also collects [`Rejection`]s.
pub(crate) struct Rewriter<'s> {
    user: bool,
    /// How many definitions enclose the term being rewritten.
    def_depth: usize,
    pub rejections: Vec<Rejection<'s>>,
}

fn call<'s>(name: &'s str, args: Vec<T<'s>>) -> T<'s> {
    Term::Call(name, args)
}

fn check(t: T<'_>) -> T<'_> {
    call(CHECK, vec![t])
}

fn is_in(list: &[(&str, usize)], name: &str, arity: usize) -> bool {
    list.iter().any(|(n, a)| *n == name && *a == arity)
}

impl<'s> Rewriter<'s> {
    /// A rewriter for user code (reserved names rejected) or for the standard library.
    pub fn new(user: bool) -> Self {
        Self {
            user,
            def_depth: 0,
            rejections: Vec::new(),
        }
    }

    fn name(&mut self, name: &'s str) {
        let bare = name.strip_prefix('$').unwrap_or(name);
        if self.user && bare.starts_with(RESERVED_PREFIX) {
            self.rejections.push(Rejection::Reserved(name));
        }
    }

    fn boxed(&mut self, t: T<'s>) -> Box<T<'s>> {
        Box::new(self.term(t))
    }

    pub fn def(&mut self, def: Def<&'s str>) -> Def<&'s str> {
        self.name(def.name);
        def.args.iter().for_each(|a| self.name(a));
        self.def_depth += 1;
        let body = self.term(def.body);
        self.def_depth -= 1;
        // jaq runs tail calls in a loop, and two things can then grow without the stack
        // growing: the chain of closures bound to filter parameters (`def f(g): f(g+1)`), and
        // in path mode the path (`path(recurse(.a))`). Both are `Rc` lists that are dropped
        // recursively, so a long one overflows the stack when the evaluation ends. Calls of a
        // definition with filter parameters are therefore made non-tail, so its recursion
        // uses the (checked) stack; other definitions check the path length on entry, which
        // keeps their loops (`until`, `recurse`, ...) tail-recursive.
        let body = if self.user && def.args.iter().any(|a| !a.starts_with('$')) {
            call(FRAME, vec![body])
        } else if self.user || self.def_depth > 0 {
            Term::BinOp(
                call(PATH_GUARD, Vec::new()).into(),
                BinaryOp::Comma,
                body.into(),
            )
        } else {
            body
        };
        Def {
            name: def.name,
            args: def.args,
            body,
        }
    }

    pub fn term(&mut self, t: T<'s>) -> T<'s> {
        match t {
            Term::Id | Term::Recurse | Term::Arr(None) => t,
            Term::Num(n) => {
                if self.user && n.len() > NUM_LITERAL_MAX {
                    self.rejections.push(Rejection::LongNumber(n));
                }
                Term::Num(n)
            }
            Term::Str(fmt, parts) => {
                let interpolated = parts.iter().any(|p| matches!(p, StrPart::Term(_)));
                let parts = parts
                    .into_iter()
                    .map(|p| match p {
                        StrPart::Term(t) => StrPart::Term(self.term(t)),
                        p => p,
                    })
                    .collect();
                let s = Term::Str(fmt, parts);
                if interpolated { check(s) } else { s }
            }
            Term::Arr(Some(f)) => call(ARRAY, vec![self.term(*f)]),
            Term::Obj(entries) => {
                let empty = entries.is_empty();
                let entries = entries
                    .into_iter()
                    .map(|(k, v)| (self.term(k), v.map(|v| self.term(v))))
                    .collect();
                if empty {
                    Term::Obj(entries)
                } else {
                    check(Term::Obj(entries))
                }
            }
            Term::Neg(t) => Term::Neg(self.boxed(*t)),
            Term::BinOp(l, op, r) => self.binop(*l, op, *r),
            Term::Label(x, t) => {
                self.name(x);
                Term::Label(x, self.boxed(*t))
            }
            Term::Break(x) => {
                self.name(x);
                Term::Break(x)
            }
            Term::Fold(name, xs, pat, args) => {
                let xs = self.boxed(*xs);
                let pat = self.pattern(pat);
                let args = args.into_iter().map(|a| self.term(a)).collect();
                Term::Fold(name, xs, pat, args)
            }
            Term::TryCatch(t, c) => {
                let t = self.boxed(*t);
                Term::TryCatch(t, c.map(|c| self.boxed(*c)))
            }
            Term::IfThenElse(branches, otherwise) => {
                let branches = branches
                    .into_iter()
                    .map(|(i, t)| (self.term(i), self.term(t)))
                    .collect();
                Term::IfThenElse(branches, otherwise.map(|e| self.boxed(*e)))
            }
            Term::Def(defs, t) => {
                let defs = defs.into_iter().map(|d| self.def(d)).collect();
                Term::Def(defs, self.boxed(*t))
            }
            Term::Call(name, args) => self.call(name, args),
            Term::Var(x) => {
                self.name(x);
                Term::Var(x)
            }
            Term::Path(t, path) => {
                let t = self.boxed(*t);
                Term::Path(t, self.path(path))
            }
        }
    }

    fn binop(&mut self, l: T<'s>, op: BinaryOp<&'s str>, r: T<'s>) -> T<'s> {
        if let BinaryOp::Comma = op {
            // The parser nests `a, b, c, ...` (and so `[1, 2, 3, ...]`) one level per item,
            // and jaq evaluates that nesting on the stack: a literal list of a few hundred
            // items would exceed the depth budget. `,` is associative, so a balanced tree
            // yields the same outputs with logarithmic depth.
            let mut items = Vec::new();
            flatten_commas(l, &mut items);
            flatten_commas(r, &mut items);
            let items = items.into_iter().map(|t| self.term(t)).collect();
            return balance_commas(items);
        }
        let (l, r) = (self.term(l), self.term(r));
        match op {
            BinaryOp::Math(op) => call(math_name(op), vec![l, r]),
            BinaryOp::UpdateMath(op) => {
                // jq defines `l op= r` as `r as $v | l |= . op $v`.
                let update = call(math_name(op), vec![Term::Id, Term::Var(UPDATE_VAR)]);
                let update = check(Term::BinOp(l.into(), BinaryOp::Update, update.into()));
                let bind = BinaryOp::Pipe(Some(Pattern::Var(UPDATE_VAR)));
                Term::BinOp(r.into(), bind, update.into())
            }
            BinaryOp::Assign | BinaryOp::Update | BinaryOp::UpdateAlt => {
                check(Term::BinOp(l.into(), op, r.into()))
            }
            BinaryOp::Pipe(Some(pat)) => {
                let pat = self.pattern(pat);
                Term::BinOp(l.into(), BinaryOp::Pipe(Some(pat)), r.into())
            }
            op => Term::BinOp(l.into(), op, r.into()),
        }
    }

    fn call(&mut self, name: &'s str, args: Vec<T<'s>>) -> T<'s> {
        self.name(name);
        let args: Vec<_> = args.into_iter().map(|a| self.term(a)).collect();
        let arity = args.len();
        let cost = if is_in(REGEX, name, arity) {
            Some(COST_REGEX)
        } else if is_in(SEARCH, name, arity) {
            Some(COST_SEARCH)
        } else {
            None
        };
        // The cost filter yields nothing; it only charges steps before the real call runs.
        let cost = cost.map(|c| call(c, args.clone()));
        let mut t = call(name, args);
        if is_in(GROWING, name, arity) {
            t = check(t);
        }
        match cost {
            Some(c) => Term::BinOp(c.into(), BinaryOp::Comma, t.into()),
            None => t,
        }
    }

    fn pattern(&mut self, p: Pattern<&'s str>) -> Pattern<&'s str> {
        match p {
            Pattern::Var(x) => {
                self.name(x);
                Pattern::Var(x)
            }
            Pattern::Arr(ps) => Pattern::Arr(ps.into_iter().map(|p| self.pattern(p)).collect()),
            Pattern::Obj(entries) => Pattern::Obj(
                entries
                    .into_iter()
                    .map(|(k, p)| (self.term(k), self.pattern(p)))
                    .collect(),
            ),
        }
    }

    fn path(&mut self, path: Path<T<'s>>) -> Path<T<'s>> {
        let parts = path.0.into_iter().map(|(part, opt)| {
            let part = match part {
                Part::Index(i) => Part::Index(self.term(i)),
                Part::Range(from, to) => {
                    Part::Range(from.map(|f| self.term(f)), to.map(|t| self.term(t)))
                }
            };
            (part, opt)
        });
        Path(parts.collect())
    }
}

fn flatten_commas<'s>(t: T<'s>, out: &mut Vec<T<'s>>) {
    match t {
        Term::BinOp(l, BinaryOp::Comma, r) => {
            flatten_commas(*l, out);
            flatten_commas(*r, out);
        }
        t => out.push(t),
    }
}

/// `items` joined by `,` as a balanced tree; `items` is not empty (it comes from a comma).
fn balance_commas(mut items: Vec<T<'_>>) -> T<'_> {
    if items.len() <= 1 {
        return items.pop().unwrap_or_default();
    }
    let right = items.split_off(items.len() / 2);
    let (l, r) = (balance_commas(items), balance_commas(right));
    Term::BinOp(l.into(), BinaryOp::Comma, r.into())
}

/// Names of all filters (and `@format`s) a term may call.
pub(crate) fn calls<'s>(t: &T<'s>, out: &mut BTreeSet<&'s str>) {
    match t {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => {}
        Term::Arr(f) => f.iter().for_each(|f| calls(f, out)),
        Term::Str(fmt, parts) => {
            out.extend(fmt.iter().copied());
            for p in parts {
                if let StrPart::Term(t) = p {
                    calls(t, out);
                }
            }
        }
        Term::Obj(entries) => {
            for (k, v) in entries {
                calls(k, out);
                v.iter().for_each(|v| calls(v, out));
            }
        }
        Term::Neg(t) | Term::Label(_, t) => calls(t, out),
        Term::BinOp(l, op, r) => {
            calls(l, out);
            calls(r, out);
            if let BinaryOp::Pipe(Some(p)) = op {
                pattern_calls(p, out);
            }
        }
        Term::Fold(_, xs, p, args) => {
            calls(xs, out);
            pattern_calls(p, out);
            args.iter().for_each(|a| calls(a, out));
        }
        Term::TryCatch(t, c) => {
            calls(t, out);
            c.iter().for_each(|c| calls(c, out));
        }
        Term::IfThenElse(branches, otherwise) => {
            for (i, t) in branches {
                calls(i, out);
                calls(t, out);
            }
            otherwise.iter().for_each(|e| calls(e, out));
        }
        Term::Def(defs, t) => {
            defs.iter().for_each(|d| calls(&d.body, out));
            calls(t, out);
        }
        Term::Call(name, args) => {
            out.insert(name);
            args.iter().for_each(|a| calls(a, out));
        }
        Term::Path(t, path) => {
            calls(t, out);
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => calls(i, out),
                    Part::Range(from, to) => {
                        from.iter().chain(to.iter()).for_each(|x| calls(x, out));
                    }
                }
            }
        }
    }
}

fn pattern_calls<'s>(p: &Pattern<&'s str>, out: &mut BTreeSet<&'s str>) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(ps) => ps.iter().for_each(|p| pattern_calls(p, out)),
        Pattern::Obj(entries) => {
            for (k, p) in entries {
                calls(k, out);
                pattern_calls(p, out);
            }
        }
    }
}
