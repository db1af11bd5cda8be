//! YAML 1.2 (and therefore JSON) text to `serde_json::Value`, with a [`SpanIndex`] from every JSON
//! Pointer to the source position of its key and value.
//!
//! Built on saphyr-parser's event stream rather than a YAML-to-serde bridge because we need the
//! position of every node, want to refuse anchors and aliases outright (an alias bomb can expand a
//! few hundred bytes into gigabytes), and want duplicate keys to be errors, not silent overwrites.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};
use serde_json::{Map, Number, Value};

use crate::diag::{Code, Diagnostic, SourceLocation, pointer_push};

/// Largest flow source accepted. Flows are hand-written documents; a megabyte is far past any
/// real one and keeps parsing, schema validation and span bookkeeping cheap.
pub const SOURCE_BYTES_MAX: usize = 1024 * 1024;
/// Deepest nesting of mappings and sequences. Bounds our recursion (and the later validators').
pub const NESTING_DEPTH_MAX: usize = 128;
/// Most YAML nodes (scalars, mappings, sequences) in one document.
pub const NODES_MAX: usize = 200_000;

/// Source positions of the nodes of a parsed document, keyed by JSON Pointer.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpans>,
}

#[derive(Debug, Clone, Copy)]
struct NodeSpans {
    key: Option<SourceLocation>,
    value: SourceLocation,
}

impl SpanIndex {
    /// Where the value at `pointer` starts.
    pub fn value_location(&self, pointer: &str) -> Option<SourceLocation> {
        self.nodes.get(pointer).map(|n| n.value)
    }

    /// Where the key naming the value at `pointer` starts; `None` for sequence items and the root.
    pub fn key_location(&self, pointer: &str) -> Option<SourceLocation> {
        self.nodes.get(pointer).and_then(|n| n.key)
    }

    /// The value location of `pointer` or, when it does not exist in the source (a missing
    /// property, a default), of its nearest existing ancestor. Never fails: the document start is
    /// the last resort.
    pub fn nearest_value(&self, pointer: &str) -> SourceLocation {
        let mut p = pointer;
        loop {
            if let Some(loc) = self.value_location(p) {
                return loc;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return SourceLocation { line: 1, column: 1 },
            }
        }
    }

    /// The key location of `pointer` when it has one, else [`SpanIndex::nearest_value`]. Used for
    /// problems about a property as a whole (unknown property, duplicate name) where the key is
    /// what the reader should look at.
    pub fn nearest_key(&self, pointer: &str) -> SourceLocation {
        self.key_location(pointer)
            .unwrap_or_else(|| self.nearest_value(pointer))
    }

    fn record(&mut self, pointer: &str, key: Option<SourceLocation>, value: SourceLocation) {
        self.nodes
            .insert(pointer.to_string(), NodeSpans { key, value });
    }
}

/// A successfully parsed document.
#[derive(Debug, Clone)]
pub struct ParsedDocument {
    pub value: Value,
    pub spans: SpanIndex,
}

/// Parses one YAML 1.2 document (JSON included). Returns every diagnostic found; the value is only
/// returned when there are none.
pub fn parse_document(text: &str) -> Result<ParsedDocument, Vec<Diagnostic>> {
    if text.len() > SOURCE_BYTES_MAX {
        return Err(vec![Diagnostic::new(
            Code::ParseLimit,
            format!(
                "the flow source is {} bytes; the limit is {SOURCE_BYTES_MAX} bytes",
                text.len()
            ),
            "",
            SourceLocation { line: 1, column: 1 },
        )]);
    }
    // The YAML parser is third-party code fed untrusted text: a panic in it must become a
    // diagnostic, not take the server down with it.
    let outcome = std::panic::catch_unwind(|| {
        let mut builder = Builder::new(text);
        let value = builder.document();
        (value, builder)
    });
    match outcome {
        Ok((Ok(value), builder)) if builder.diags.is_empty() => Ok(ParsedDocument {
            value,
            spans: builder.spans,
        }),
        Ok((Ok(_), builder)) => Err(builder.diags),
        Ok((Err(fatal), mut builder)) => {
            builder.diags.push(fatal);
            Err(builder.diags)
        }
        Err(_) => Err(vec![Diagnostic::new(
            Code::Syntax,
            "the YAML parser failed on this input",
            "",
            SourceLocation { line: 1, column: 1 },
        )]),
    }
}

fn location(m: &Marker) -> SourceLocation {
    SourceLocation {
        line: u32::try_from(m.line()).unwrap_or(u32::MAX),
        column: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

/// Walks the event stream. Problems that leave the rest of the document readable (a duplicate key,
/// an alias) are collected in `diags` and parsing goes on, so one run reports them all; syntax
/// errors and exceeded limits stop it (`Err`).
struct Builder<'a> {
    events: Parser<'a, StrInput<'a>>,
    spans: SpanIndex,
    diags: Vec<Diagnostic>,
    nodes: usize,
}

type Fatal = Diagnostic;

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        Builder {
            events: Parser::new_from_str(text),
            spans: SpanIndex::default(),
            diags: Vec::new(),
            nodes: 0,
        }
    }

    fn next(&mut self) -> Result<(Event<'a>, Span), Fatal> {
        match self.events.next() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(syntax(&e)),
            None => Err(Diagnostic::new(
                Code::Syntax,
                "unexpected end of the YAML event stream",
                "",
                SourceLocation { line: 1, column: 1 },
            )),
        }
    }

    fn document(&mut self) -> Result<Value, Fatal> {
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::StreamStart) {
            return Err(unexpected("the start of the stream", &ev, None));
        }
        let (ev, span) = self.next()?;
        match ev {
            Event::DocumentStart(_) => {}
            Event::StreamEnd => {
                // An empty file is the empty document: `null`, which the schema then rejects
                // with a readable "must be an object".
                self.spans.record("", None, location(&span.start));
                return Ok(Value::Null);
            }
            other => return Err(unexpected("a document", &other, Some(&span))),
        }
        let (ev, span) = self.next()?;
        let value = self.node(ev, span, "", None, 0, true)?;
        let (ev, span) = self.next()?;
        if !matches!(ev, Event::DocumentEnd) {
            return Err(unexpected("the end of the document", &ev, Some(&span)));
        }
        let (ev, span) = self.next()?;
        match ev {
            Event::StreamEnd => Ok(value),
            Event::DocumentStart(_) => {
                self.diags.push(Diagnostic::new(
                    Code::MultipleDocuments,
                    "a flow file must hold exactly one YAML document; found a second one",
                    "",
                    location(&span.start),
                ));
                Ok(value)
            }
            other => Err(unexpected("the end of the stream", &other, Some(&span))),
        }
    }

    /// Builds the node that starts with `ev`. `record` is false for the subtree of a duplicate
    /// key, whose positions must not overwrite those of the first occurrence.
    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        pointer: &str,
        key: Option<SourceLocation>,
        depth: usize,
        record: bool,
    ) -> Result<Value, Fatal> {
        let at = location(&span.start);
        self.nodes += 1;
        if self.nodes > NODES_MAX {
            return Err(Diagnostic::new(
                Code::ParseLimit,
                format!("the document has more than {NODES_MAX} YAML nodes"),
                pointer,
                at,
            ));
        }
        if record {
            self.spans.record(pointer, key, at);
        }
        match ev {
            Event::Alias(_) => {
                self.diags.push(Diagnostic::new(
                    Code::Alias,
                    "YAML aliases (`*name`) are not allowed in flows; repeat the content or use `use:` components",
                    pointer,
                    at,
                ));
                Ok(Value::Null)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.anchor(anchor, pointer, at);
                match scalar_value(&text, style, tag.as_deref()) {
                    Ok(v) => Ok(v),
                    Err((code, msg)) => {
                        self.diags.push(Diagnostic::new(code, msg, pointer, at));
                        Ok(Value::Null)
                    }
                }
            }
            Event::SequenceStart(anchor, tag) => {
                self.anchor(anchor, pointer, at);
                self.collection_tag(tag.as_deref(), "seq", pointer, at);
                self.check_depth(depth, pointer, at)?;
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        return Ok(Value::Array(items));
                    }
                    let child = pointer_push(pointer, &items.len().to_string());
                    items.push(self.node(ev, span, &child, None, depth + 1, record)?);
                }
            }
            Event::MappingStart(anchor, tag) => {
                self.anchor(anchor, pointer, at);
                self.collection_tag(tag.as_deref(), "map", pointer, at);
                self.check_depth(depth, pointer, at)?;
                self.mapping(pointer, depth, record)
            }
            other => Err(unexpected("a value", &other, Some(&span))),
        }
    }

    fn mapping(&mut self, pointer: &str, depth: usize, record: bool) -> Result<Value, Fatal> {
        let mut map = Map::new();
        loop {
            let (ev, span) = self.next()?;
            let key_at = location(&span.start);
            let key = match ev {
                Event::MappingEnd => return Ok(Value::Object(map)),
                Event::Scalar(text, style, anchor, tag) => {
                    self.anchor(anchor, pointer, key_at);
                    match scalar_value(&text, style, tag.as_deref()) {
                        Ok(Value::String(s)) => Some(s),
                        Ok(other) => {
                            self.diags.push(Diagnostic::new(
                                Code::NonStringKey,
                                format!(
                                    "mapping keys must be strings; `{text}` is {} (quote it)",
                                    kind_name(&other)
                                ),
                                pointer,
                                key_at,
                            ));
                            None
                        }
                        Err((code, msg)) => {
                            self.diags.push(Diagnostic::new(code, msg, pointer, key_at));
                            None
                        }
                    }
                }
                other => {
                    // A collection used as a key: consume it so parsing can go on.
                    self.diags.push(Diagnostic::new(
                        Code::NonStringKey,
                        "mapping keys must be strings, not collections or aliases",
                        pointer,
                        key_at,
                    ));
                    self.node(other, span, pointer, None, depth + 1, false)?;
                    None
                }
            };
            let (ev, vspan) = self.next()?;
            match key {
                Some(k) if map.contains_key(&k) => {
                    let child = pointer_push(pointer, &k);
                    self.diags.push(Diagnostic::new(
                        Code::DuplicateKey,
                        format!("duplicate key `{k}`"),
                        &child,
                        key_at,
                    ));
                    self.node(ev, vspan, &child, None, depth + 1, false)?;
                }
                Some(k) => {
                    let child = pointer_push(pointer, &k);
                    let v = self.node(ev, vspan, &child, Some(key_at), depth + 1, record)?;
                    map.insert(k, v);
                }
                None => {
                    self.node(ev, vspan, pointer, None, depth + 1, false)?;
                }
            }
        }
    }

    fn check_depth(&self, depth: usize, pointer: &str, at: SourceLocation) -> Result<(), Fatal> {
        if depth >= NESTING_DEPTH_MAX {
            return Err(Diagnostic::new(
                Code::ParseLimit,
                format!("mappings and sequences are nested more than {NESTING_DEPTH_MAX} deep"),
                pointer,
                at,
            ));
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, pointer: &str, at: SourceLocation) {
        // saphyr numbers anchors from 1; 0 means the node has none.
        if anchor != 0 {
            self.diags.push(Diagnostic::new(
                Code::Alias,
                "YAML anchors (`&name`) are not allowed in flows",
                pointer,
                at,
            ));
        }
    }

    fn collection_tag(
        &mut self,
        tag: Option<&Tag>,
        expected: &str,
        pointer: &str,
        at: SourceLocation,
    ) {
        if let Some(t) = tag
            && !(t.is_yaml_core_schema() && t.suffix == expected)
        {
            self.diags.push(Diagnostic::new(
                Code::UnsupportedTag,
                format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
                pointer,
                at,
            ));
        }
    }
}

fn syntax(e: &ScanError) -> Diagnostic {
    Diagnostic::new(
        Code::Syntax,
        format!("YAML syntax error: {}", e.info()),
        "",
        location(e.marker()),
    )
}

fn unexpected(expected: &str, ev: &Event<'_>, span: Option<&Span>) -> Diagnostic {
    let at = span
        .map(|s| location(&s.start))
        .unwrap_or(SourceLocation { line: 1, column: 1 });
    Diagnostic::new(
        Code::Syntax,
        format!("expected {expected}, found YAML event {ev:?}"),
        "",
        at,
    )
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

type ScalarError = (Code, String);

/// Resolves a scalar by its style and tag: quoted and block scalars are strings; plain ones follow
/// the YAML 1.2 core schema (so `yes`, `on` and `0.1.0` are strings, unlike YAML 1.1).
fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, ScalarError> {
    if let Some(t) = tag {
        return tagged_scalar(text, t);
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    resolve_plain(text)
}

fn tagged_scalar(text: &str, tag: &Tag) -> Result<Value, ScalarError> {
    // The non-specific tag `!` forces a string.
    if format!("{}{}", tag.handle, tag.suffix) == "!" {
        return Ok(Value::String(text.to_string()));
    }
    if !tag.is_yaml_core_schema() {
        return Err((
            Code::UnsupportedTag,
            format!("unsupported YAML tag `{}{}`", tag.handle, tag.suffix),
        ));
    }
    let resolved = resolve_plain(text);
    let ok = match (tag.suffix.as_str(), &resolved) {
        ("str", _) => return Ok(Value::String(text.to_string())),
        ("null", Ok(Value::Null)) | ("bool", Ok(Value::Bool(_))) => true,
        ("int", Ok(Value::Number(n))) => n.is_i64() || n.is_u64(),
        ("float", Ok(Value::Number(n))) => {
            return n
                .as_f64()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| {
                    (
                        Code::BadScalar,
                        format!("`{text}` is not a representable float"),
                    )
                });
        }
        ("float" | "int" | "null" | "bool", Err(_)) => return resolved,
        ("null" | "bool" | "int" | "float", _) => false,
        (other, _) => {
            return Err((
                Code::UnsupportedTag,
                format!("unsupported YAML tag `!!{other}` on a scalar"),
            ));
        }
    };
    if ok {
        resolved
    } else {
        Err((
            Code::BadScalar,
            format!("`{text}` is not a valid `!!{}`", tag.suffix),
        ))
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
pub(crate) fn resolve_plain(s: &str) -> Result<Value, ScalarError> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".nan" | ".NaN" | ".NAN" => {
            return Err((
                Code::BadScalar,
                format!("`{s}` (not a number) cannot be represented in JSON"),
            ));
        }
        _ => {}
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Err((
            Code::BadScalar,
            format!("`{s}` (infinity) cannot be represented in JSON"),
        ));
    }
    if let Some(oct) = s.strip_prefix("0o")
        && !oct.is_empty()
        && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return radix_int(s, oct, 8);
    }
    if let Some(hex) = s.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return radix_int(s, hex, 16);
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = s.parse::<u64>() {
            return Ok(Value::from(u));
        }
        return Err((
            Code::BadScalar,
            format!("integer `{s}` is out of the 64-bit range"),
        ));
    }
    if is_core_float(unsigned) {
        return match s.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => Err((
                Code::BadScalar,
                format!("number `{s}` is out of the 64-bit float range"),
            )),
        };
    }
    Ok(Value::String(s.to_string()))
}

fn radix_int(s: &str, digits: &str, radix: u32) -> Result<Value, ScalarError> {
    u64::from_str_radix(digits, radix)
        .map(Value::from)
        .map_err(|_| {
            (
                Code::BadScalar,
                format!("integer `{s}` is out of the 64-bit range"),
            )
        })
}

/// `( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )?` — the core schema float, sign removed.
/// Checked by hand because `str::parse::<f64>` also accepts `inf`, `NaN` and `infinity`.
fn is_core_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (int.is_empty() && !frac.is_empty() && digits(frac))
                || (!int.is_empty() && digits(int) && digits(frac))
        }
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> ParsedDocument {
        parse_document(text).unwrap_or_else(|d| panic!("unexpected diagnostics: {d:#?}"))
    }

    fn codes(text: &str) -> Vec<(String, u32, u32)> {
        parse_document(text)
            .unwrap_err()
            .into_iter()
            .map(|d| (d.code, d.line, d.column))
            .collect()
    }

    #[test]
    fn core_schema_scalars() {
        let doc = ok(
            "a: ~\nb: null\nc: true\nd: FALSE\ne: 12\nf: -0x1\ng: 0x1F\nh: 0o17\ni: 1.5\nj: .5\nk: 1e3\nl: 0.1.0\nm: yes\nn: '12'\no: \"true\"\np:\nq: +7\n",
        );
        assert_eq!(
            doc.value,
            json!({"a": null, "b": null, "c": true, "d": false, "e": 12, "f": "-0x1", "g": 31, "h": 15,
                   "i": 1.5, "j": 0.5, "k": 1000.0, "l": "0.1.0", "m": "yes", "n": "12", "o": "true",
                   "p": null, "q": 7})
        );
    }

    #[test]
    fn json_is_parsed_too() {
        let doc = ok("{\"a\": [1, 2.5, \"x\", null, true], \"b\": {\"c/d\": 1}}");
        assert_eq!(
            doc.value,
            json!({"a": [1, 2.5, "x", null, true], "b": {"c/d": 1}})
        );
        assert_eq!(
            doc.spans.key_location("/b/c~1d"),
            Some(SourceLocation {
                line: 1,
                column: 40
            })
        );
        assert_eq!(
            doc.spans.value_location("/a/2"),
            Some(SourceLocation {
                line: 1,
                column: 16
            })
        );
    }

    #[test]
    fn spans_of_keys_and_values() {
        let doc = ok("document:\n  name: x\ndo:\n  - getPet:\n      call: http\n");
        let at = |l, c| Some(SourceLocation { line: l, column: c });
        assert_eq!(doc.spans.key_location("/document/name"), at(2, 3));
        assert_eq!(doc.spans.value_location("/document/name"), at(2, 9));
        assert_eq!(doc.spans.key_location("/do/0/getPet"), at(4, 5));
        assert_eq!(doc.spans.key_location("/do/0/getPet/call"), at(5, 7));
        assert_eq!(doc.spans.value_location("/do/0/getPet/call"), at(5, 13));
        assert_eq!(doc.spans.key_location("/do/0"), None);
        assert_eq!(
            doc.spans.nearest_value("/do/0/getPet/with/method"),
            at(5, 7).unwrap()
        );
    }

    #[test]
    fn rejects_nan_inf_anchor_alias_duplicates_and_non_string_keys() {
        assert_eq!(codes("a: .nan"), vec![("BATON-FLOW-006".into(), 1, 4)]);
        assert_eq!(codes("a: -.inf"), vec![("BATON-FLOW-006".into(), 1, 4)]);
        assert_eq!(codes("a: 1e999"), vec![("BATON-FLOW-006".into(), 1, 4)]);
        assert_eq!(
            codes("a: 99999999999999999999"),
            vec![("BATON-FLOW-006".into(), 1, 4)]
        );
        assert_eq!(
            codes("a: &x [1]\nb: *x\n"),
            vec![
                ("BATON-FLOW-003".into(), 1, 4),
                ("BATON-FLOW-003".into(), 2, 4)
            ]
        );
        assert_eq!(
            codes("a: 1\nb: 2\na: 3\n"),
            vec![("BATON-FLOW-004".into(), 3, 1)]
        );
        assert_eq!(codes("1: x\n"), vec![("BATON-FLOW-005".into(), 1, 1)]);
        assert_eq!(codes("? [a]\n: x\n"), vec![("BATON-FLOW-005".into(), 1, 3)]);
        assert_eq!(
            codes("a: !custom x\n"),
            vec![("BATON-FLOW-007".into(), 1, 4)]
        );
        assert_eq!(
            codes("a: 1\n---\nb: 2\n"),
            vec![("BATON-FLOW-008".into(), 2, 1)]
        );
    }

    #[test]
    fn core_tags() {
        let doc = ok("a: !!str 12\nb: !!int \"7\"\nc: !!float 1\nd: ! 12\n");
        assert_eq!(doc.value, json!({"a": "12", "b": 7, "c": 1.0, "d": "12"}));
        assert_eq!(codes("a: !!int x\n"), vec![("BATON-FLOW-006".into(), 1, 4)]);
    }

    #[test]
    fn syntax_error_has_parser_position() {
        let d = parse_document("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "BATON-FLOW-001");
        assert!(d[0].line >= 1);
    }

    #[test]
    fn limits() {
        let deep = "[".repeat(NESTING_DEPTH_MAX + 1) + &"]".repeat(NESTING_DEPTH_MAX + 1);
        assert_eq!(
            codes(&deep),
            vec![("BATON-FLOW-002".into(), 1, NESTING_DEPTH_MAX as u32 + 1)]
        );
        let big = "a".repeat(SOURCE_BYTES_MAX + 1);
        assert_eq!(codes(&big), vec![("BATON-FLOW-002".into(), 1, 1)]);
        let many = format!("[{}]", "1,".repeat(NODES_MAX));
        assert_eq!(codes(&many)[0].0, "BATON-FLOW-002");
    }

    #[test]
    fn byte_order_mark_and_crlf() {
        let doc = ok("\u{feff}a: 1\r\nb:\r\n  - x\r\n");
        assert_eq!(doc.value, json!({"a": 1, "b": ["x"]}));
        assert_eq!(
            doc.spans.key_location("/b"),
            Some(SourceLocation { line: 2, column: 1 })
        );
        assert_eq!(
            doc.spans.value_location("/b/0"),
            Some(SourceLocation { line: 3, column: 5 })
        );
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(ok("").value, Value::Null);
        assert_eq!(ok("# only a comment\n").value, Value::Null);
    }
}
