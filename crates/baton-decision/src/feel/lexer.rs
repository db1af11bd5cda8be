//! The FEEL lexer: turns source text into tokens on demand.
//!
//! The parser pulls one token at a time from a byte offset instead of
//! tokenising up front, because FEEL names may contain spaces and symbols
//! (`Monthly Salary`, `Applicant's age`): the parser first tries to match a
//! known multi-word name at the current offset and only then asks for a token.

use super::FeelError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// Numeric literal text (parsed by the parser so errors have positions).
    Num(String),
    Str(String),
    Ident(String),
    Sym(&'static str),
    Eof,
}

/// A token and the byte range it covers.
#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

const SYMBOLS: &[&str] = &[
    "**", "!=", "<=", ">=", "..", "->", "*", "+", "-", "/", "=", "<", ">", "(", ")", "[", "]", "{",
    "}", ",", ".", ":", "?", "@",
];

pub fn is_name_start(c: char) -> bool {
    c.is_alphabetic()
        || c == '_'
        || c == '$'
        || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
}

/// Whether `s` can be written as a context key without quotes.
pub fn is_plain_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start)
        && s.split(' ')
            .all(|w| !w.is_empty() && w.chars().all(|c| is_name_part(c) || "'./-+*?".contains(c)))
}

pub fn is_name_part(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// Skips whitespace and comments starting at `pos`.
pub fn skip_trivia(src: &str, mut pos: usize) -> Result<usize, FeelError> {
    loop {
        let rest = &src[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if trimmed.starts_with("//") {
            pos += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if let Some(body) = trimmed.strip_prefix("/*") {
            match body.find("*/") {
                Some(i) => pos += i + 4,
                None => return Err(FeelError::at(src, pos, "unterminated comment")),
            }
        } else {
            return Ok(pos);
        }
    }
}

/// Lexes the token starting at `pos` (after trivia).
pub fn next_token(src: &str, pos: usize) -> Result<Token, FeelError> {
    let start = skip_trivia(src, pos)?;
    let rest = &src[start..];
    let Some(c) = rest.chars().next() else {
        return Ok(Token {
            tok: Tok::Eof,
            start,
            end: start,
        });
    };
    if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
        let end = start + number_len(rest);
        return Ok(Token {
            tok: Tok::Num(src[start..end].to_string()),
            start,
            end,
        });
    }
    if c == '"' {
        let (s, len) = string_lit(src, start)?;
        return Ok(Token {
            tok: Tok::Str(s),
            start,
            end: start + len,
        });
    }
    if is_name_start(c) {
        let len: usize = rest
            .chars()
            .take_while(|&c| is_name_part(c))
            .map(char::len_utf8)
            .sum();
        return Ok(Token {
            tok: Tok::Ident(rest[..len].to_string()),
            start,
            end: start + len,
        });
    }
    for s in SYMBOLS {
        if rest.starts_with(s) {
            return Ok(Token {
                tok: Tok::Sym(s),
                start,
                end: start + s.len(),
            });
        }
    }
    Err(FeelError::at(
        src,
        start,
        &format!("unexpected character {c:?}"),
    ))
}

fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    // `1..5` is a range, so a dot only belongs to the number before a digit.
    if i < b.len() && b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    i
}

/// Reads a string literal at `start` (which holds `"`); returns the
/// unescaped text and the literal's byte length.
fn string_lit(src: &str, start: usize) -> Result<(String, usize), FeelError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    let mut pending_high: Option<u32> = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 2)),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                let code = match e {
                    'n' => Some('\n' as u32),
                    't' => Some('\t' as u32),
                    'r' => Some('\r' as u32),
                    '"' | '\\' | '\'' => Some(e as u32),
                    'u' => Some(
                        hex(&mut chars, 4)
                            .ok_or_else(|| FeelError::at(src, start + i, "bad \\u escape"))?,
                    ),
                    'U' => Some(
                        hex(&mut chars, 6)
                            .ok_or_else(|| FeelError::at(src, start + i, "bad \\U escape"))?,
                    ),
                    other => {
                        out.push('\\');
                        out.push(other);
                        None
                    }
                };
                if let Some(code) = code {
                    // Combine UTF-16 surrogate pairs written as two \u escapes.
                    if (0xD800..0xDC00).contains(&code) {
                        pending_high = Some(code);
                        continue;
                    }
                    if (0xDC00..0xE000).contains(&code) {
                        if let Some(h) = pending_high.take() {
                            let cp = 0x10000 + ((h - 0xD800) << 10) + (code - 0xDC00);
                            out.extend(char::from_u32(cp));
                        }
                        continue;
                    }
                    out.extend(char::from_u32(code));
                }
            }
            c => out.push(c),
        }
        pending_high = None;
    }
    Err(FeelError::at(src, start, "unterminated string literal"))
}

fn hex(chars: &mut std::str::CharIndices<'_>, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..n {
        let (_, c) = chars.next()?;
        v = v * 16 + c.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_numbers_strings_and_ranges() {
        assert_eq!(
            next_token("1..5", 0).map(|t| t.tok).ok(),
            Some(Tok::Num("1".into()))
        );
        assert_eq!(next_token("1.5e3 x", 0).map(|t| t.end).ok(), Some(5));
        assert_eq!(
            next_token(r#""a\"b""#, 0).map(|t| t.tok).ok(),
            Some(Tok::Str("a\"b".into()))
        );
        assert_eq!(
            next_token(r#""\ud83d\udc0e""#, 0).map(|t| t.tok).ok(),
            Some(Tok::Str("🐎".into()))
        );
        assert!(next_token("\"open", 0).is_err());
        assert_eq!(
            next_token("/* c */ // d\n x", 0).map(|t| t.tok).ok(),
            Some(Tok::Ident("x".into()))
        );
    }
}
