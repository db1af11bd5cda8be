//! From jq source to a [`Filter`]: lexing and parsing with positioned errors, the budget
//! rewrite, and compilation against a standard library pruned to what the program uses.
//!
//! jaq's `Loader` only accepts source text, and hides the parsed main program. We parse the
//! user's program ourselves, rewrite it, and hand it to the loader as the last definition of
//! the prelude (`__baton_main`); the loaded "main program" is just a call to it. Global
//! variables resolve the same way inside a prelude definition as in the main program.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use jaq_core::compile::Undefined;
use jaq_core::load::lex::{self, Token};
use jaq_core::load::parse::{self, Def};
use jaq_core::load::{Arena, File, Lexer, Loader, Parser};

use crate::error::CompileError;
use crate::guard::Filter;
use crate::natives;
use crate::rewrite::{self, NUM_LITERAL_MAX, Rejection, Rewriter};

/// Longest accepted expression source.
pub(crate) const SOURCE_BYTES_MAX: usize = 64 * 1024;

/// jaq's lexer, parser and compiler recurse once per nesting level of the source, and a long
/// operator chain such as `1+1+...` nests as deeply as it is long. 256 bytes nest at most 128
/// levels, which compiles within a 2 MiB stack even in debug builds (400 levels do not).
/// Longer sources are compiled on a helper thread with a stack that fits [`SOURCE_BYTES_MAX`].
const INLINE_SOURCE_BYTES_MAX: usize = 256;
const COMPILE_STACK_BYTES: usize = 256 * 1024 * 1024;

const MAIN: &str = "__baton_main";

/// Compile `src`, whose free variables are `vars` (names without `$`).
pub(crate) fn compile(src: &str, vars: &[&str]) -> Result<Filter, CompileError> {
    if src.len() > SOURCE_BYTES_MAX {
        return Err(CompileError::TooLong {
            len: src.len(),
            max: SOURCE_BYTES_MAX,
        });
    }
    if let Some(bad) = vars.iter().find(|v| !is_identifier(v)) {
        return Err(CompileError::Variable {
            name: (*bad).to_owned(),
        });
    }
    if src.len() <= INLINE_SOURCE_BYTES_MAX {
        return compile_here(src, vars);
    }
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("baton-expr-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn_scoped(scope, || compile_here(src, vars));
        match worker {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(CompileError::Internal {
                    message: "the jq compiler panicked".into(),
                })
            }),
            Err(e) => Err(CompileError::Internal {
                message: format!("cannot start the compiler thread: {e}"),
            }),
        }
    })
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(rewrite::RESERVED_PREFIX)
}

fn compile_here(src: &str, vars: &[&str]) -> Result<Filter, CompileError> {
    let tokens = Lexer::new(src).lex().map_err(|errs| lex_error(src, errs))?;
    let term = Parser::new(&tokens)
        .parse(|p| p.term())
        .map_err(|errs| parse_error(src, errs))?;

    let mut rewriter = Rewriter::new(true);
    let term = rewriter.term(term);
    if let Some(rejection) = rewriter.rejections.first() {
        return Err(rejection_error(src, rejection));
    }

    let mut used = BTreeSet::new();
    rewrite::calls(&term, &mut used);
    let mut prelude = std_prelude(used);
    prelude.push(Def {
        name: MAIN,
        args: Vec::new(),
        body: term,
    });

    let arena = Arena::default();
    let file = File {
        code: MAIN,
        path: (),
    };
    let modules = Loader::new(prelude)
        .load(&arena, file)
        .map_err(|_| CompileError::Internal {
            message: "the jq loader rejected the rewritten program".into(),
        })?;

    let globals: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
    jaq_core::Compiler::default()
        .with_funs(natives::all())
        .with_global_vars(globals.iter().map(String::as_str))
        .compile(modules)
        .map_err(|errs| {
            let first = errs.into_iter().flat_map(|(_file, errs)| errs).next();
            match first {
                Some((name, undefined)) => undefined_error(src, name, &undefined),
                None => CompileError::Internal {
                    message: "the jq compiler failed without an error".into(),
                },
            }
        })
}

/// The standard library, rewritten once, with the names each definition calls.
fn std_defs() -> &'static [(Def<&'static str>, BTreeSet<&'static str>)] {
    static DEFS: OnceLock<Vec<(Def<&'static str>, BTreeSet<&'static str>)>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut rewriter = Rewriter::new(false);
        jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .map(|def| {
                let def = rewriter.def(def);
                let mut used = BTreeSet::new();
                rewrite::calls(&def.body, &mut used);
                (def, used)
            })
            .collect()
    })
}

/// The standard definitions reachable from `used`, in their original order.
///
/// jaq compiles every prelude definition into every program, which would cost each compiled
/// expression the whole standard library in memory. A definition can only call earlier
/// definitions, so one backwards pass finds everything reachable. Matching by name only
/// (not arity) keeps a few unneeded overloads, which is harmless.
fn std_prelude(mut used: BTreeSet<&str>) -> Vec<Def<&str>> {
    let mut keep = Vec::new();
    for (def, calls) in std_defs().iter().rev() {
        if used.contains(def.name) {
            used.extend(calls.iter().copied());
            keep.push(def.clone());
        }
    }
    keep.reverse();
    keep
}

/// 1-based character column of `part` in `src`, if `part` is a slice of `src`.
fn column(src: &str, part: &str) -> usize {
    let start = part.as_ptr().addr().wrapping_sub(src.as_ptr().addr());
    match src.get(..start) {
        Some(before) => before.chars().count() + 1,
        None => 0,
    }
}

fn found(part: &str) -> String {
    if part.is_empty() {
        return "end of input".into();
    }
    let token: String = part.chars().take(24).collect();
    if token.len() < part.len() {
        format!("`{token}…`")
    } else {
        format!("`{token}`")
    }
}

fn lex_error(src: &str, errs: Vec<lex::Error<&str>>) -> CompileError {
    let Some((expect, rest)) = errs.into_iter().next() else {
        return CompileError::Internal {
            message: "the jq lexer failed without an error".into(),
        };
    };
    let expected = match expect {
        // `Expect::as_str` panics for delimiters other than the four it knows.
        lex::Expect::Delim(open) => format!("closing delimiter for `{open}`"),
        other => other.as_str().to_owned(),
    };
    // The lexer reports the remaining input; show its first character.
    let part = rest
        .get(..rest.chars().next().map_or(0, char::len_utf8))
        .unwrap_or("");
    CompileError::Syntax {
        column: column(src, rest),
        expected,
        found: found(part),
    }
}

fn parse_error(src: &str, errs: Vec<parse::TError<'_, &str>>) -> CompileError {
    let Some((expect, token)) = errs.into_iter().next() else {
        return CompileError::Internal {
            message: "the jq parser failed without an error".into(),
        };
    };
    let part = Token::opt_as_str(token, src);
    CompileError::Syntax {
        column: column(src, part),
        expected: expect.as_str().to_owned(),
        found: found(part),
    }
}

fn rejection_error(src: &str, rejection: &Rejection<'_>) -> CompileError {
    match rejection {
        Rejection::Reserved(name) => CompileError::Reserved {
            column: column(src, name),
            name: (*name).to_owned(),
        },
        Rejection::LongNumber(n) => CompileError::NumberTooLong {
            column: column(src, n),
            max: NUM_LITERAL_MAX,
        },
    }
}

fn undefined_error(src: &str, name: &str, undefined: &Undefined) -> CompileError {
    let kind = match undefined {
        Undefined::Filter(arity) => format!("filter with {arity} argument(s)"),
        other => other.as_str().to_owned(),
    };
    CompileError::Undefined {
        column: column(src, name),
        kind,
        name: name.to_owned(),
    }
}
