//! Serverless Workflow runtime-expression syntax: `${ <jq> }`.

/// The jq source inside a string that is exactly one `${ ... }` (surrounding whitespace
/// allowed), or `None` when the string is not such an expression.
///
/// `strip_strict("${ .a }") == Some(" .a ")`. A string such as `"${ .a } and ${ .b }"` starts
/// with `${` and ends with `}` but is two fragments, not one expression: the braces are
/// matched (outside jq string literals and comments) to tell the two apart.
pub fn strip_strict(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("${")?.strip_suffix('}')?;
    encloses(inner).then_some(inner)
}

/// The jq source of a field that is always an expression (`if`, `when`, `for.in`, ...):
/// the inside of `${ ... }` when the string is one, else the whole string.
pub fn loose_source(s: &str) -> &str {
    strip_strict(s).unwrap_or(s)
}

/// Whether no `}` in `inner` closes the outer `${` early, i.e. braces outside jq strings and
/// comments never go below zero. Unbalanced or unterminated jq is left to the compiler to
/// report; only a premature close makes the string "not one expression".
fn encloses(inner: &str) -> bool {
    // A stack of contexts: `Code` counts braces and parentheses (for leaving an
    // interpolation), `Str` is inside a string literal.
    enum Cx {
        Code { braces: usize, parens: usize },
        Str,
    }
    let mut stack = vec![Cx::Code {
        braces: 0,
        parens: 0,
    }];
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let Some(top) = stack.last_mut() else {
            return true;
        };
        match top {
            Cx::Str => match c {
                // An escape; `\(` opens an interpolation, anything else is skipped.
                '\\' if chars.next() == Some('(') => stack.push(Cx::Code {
                    braces: 0,
                    parens: 0,
                }),
                '"' => {
                    stack.pop();
                }
                _ => {}
            },
            Cx::Code { braces, parens } => match c {
                '"' => stack.push(Cx::Str),
                '#' => {
                    // A comment runs to the end of the line.
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '{' => *braces += 1,
                '}' => match braces.checked_sub(1) {
                    Some(b) => *braces = b,
                    None if stack.len() == 1 => return false,
                    None => {}
                },
                '(' => *parens += 1,
                ')' => match parens.checked_sub(1) {
                    Some(p) => *parens = p,
                    // Closes a string interpolation `\( ... )`.
                    None if stack.len() > 1 => {
                        stack.pop();
                    }
                    None => {}
                },
                _ => {}
            },
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_strips_the_delimiters() {
        assert_eq!(strip_strict("${ .a }"), Some(" .a "));
        assert_eq!(strip_strict("${.a}"), Some(".a"));
        assert_eq!(strip_strict("  ${ .a }\n"), Some(" .a "));
        assert_eq!(strip_strict("${}"), Some(""));
        assert_eq!(strip_strict("${ {a: 1} }"), Some(" {a: 1} "));
        assert_eq!(strip_strict("${ \"}\" }"), Some(" \"}\" "));
        assert_eq!(strip_strict("${ \"\\(\"}\")\" }"), Some(" \"\\(\"}\")\" "));
        assert_eq!(
            strip_strict("${ .a # } comment\n }"),
            Some(" .a # } comment\n ")
        );
    }

    #[test]
    fn strict_rejects_non_expressions() {
        assert_eq!(strip_strict(".a"), None);
        assert_eq!(strip_strict("$ { .a }"), None);
        assert_eq!(strip_strict("${ .a"), None);
        assert_eq!(strip_strict("x ${ .a }"), None);
        assert_eq!(strip_strict("${ .a } x"), None);
        assert_eq!(strip_strict("${ .a } and ${ .b }"), None);
        assert_eq!(strip_strict(""), None);
        assert_eq!(strip_strict("{ .a }"), None);
    }

    #[test]
    fn strict_leaves_broken_jq_to_the_compiler() {
        assert_eq!(strip_strict("${ \"abc }"), Some(" \"abc "));
        assert_eq!(strip_strict("${ (.a }"), Some(" (.a "));
    }

    #[test]
    fn loose_falls_back_to_the_whole_string() {
        assert_eq!(loose_source("${ .a }"), " .a ");
        assert_eq!(loose_source(".a > 1"), ".a > 1");
        assert_eq!(loose_source("${ .a } and ${ .b }"), "${ .a } and ${ .b }");
        assert_eq!(loose_source(""), "");
    }
}
