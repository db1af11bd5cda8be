//! Diagnostics: the stable error codes of flow loading and the `file:line:col` report format.
//!
//! Every problem found while loading a flow is a [`Diagnostic`] with a stable code (listed in
//! `CODES.md`), a JSON Pointer into the document and the 1-based source position it maps to.

use serde::Serialize;

use crate::parse::SpanIndex;

/// A 1-based position in the source text. Columns count Unicode scalar values, not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SourceLocation {
    pub line: u32,
    pub column: u32,
}

/// One problem in a flow document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, e.g. `BATON-FLOW-001`; see `CODES.md`.
    pub code: String,
    pub message: String,
    /// JSON Pointer (RFC 6901) of the offending node; empty for the whole document.
    pub pointer: String,
    pub line: u32,
    pub column: u32,
}

impl Diagnostic {
    pub(crate) fn new(
        code: Code,
        message: impl Into<String>,
        pointer: impl Into<String>,
        at: SourceLocation,
    ) -> Self {
        Diagnostic {
            code: code.as_str().to_string(),
            message: message.into(),
            pointer: pointer.into(),
            line: at.line,
            column: at.column,
        }
    }

    /// A diagnostic with a code defined outside this crate (the provider catalogue's
    /// `BATON-PROV-…` codes), for documents parsed with [`crate::parse::parse_document`].
    pub fn coded(
        code: &str,
        message: impl Into<String>,
        pointer: impl Into<String>,
        at: SourceLocation,
    ) -> Self {
        Diagnostic {
            code: code.to_string(),
            message: message.into(),
            pointer: pointer.into(),
            line: at.line,
            column: at.column,
        }
    }

    /// `FILE:LINE:COL: error[CODE]: message`, the format compilers use so editors can jump to it.
    /// A diagnostic about a Baton extension under a task's `metadata.baton` (`BATON-FLOW-032`),
    /// found by the runtime's own check of its keys, placed at `pointer` in the source.
    pub fn extension(message: impl Into<String>, pointer: &str, spans: &SpanIndex) -> Diagnostic {
        let at = spans.nearest_value(pointer);
        Diagnostic::new(Code::Extension, message, pointer, at)
    }

    pub fn render(&self, file: &str) -> String {
        format!(
            "{file}:{}:{}: error[{}]: {}",
            self.line, self.column, self.code, self.message
        )
    }
}

/// The stable codes. Numbers are never reused; `CODES.md` documents each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Code {
    Syntax,
    ParseLimit,
    Alias,
    DuplicateKey,
    NonStringKey,
    BadScalar,
    UnsupportedTag,
    MultipleDocuments,
    SchemaMismatch,
    SchemaRequired,
    SchemaUnknownProperty,
    SchemaTaskKind,
    Model,
    UnknownThen,
    DuplicateTask,
    EmptyTaskList,
    BadDuration,
    BadExpression,
    SecretsOutsideInputFrom,
    UnknownFunction,
    UnsupportedCall,
    RefusedRun,
    UnknownReference,
    HttpArguments,
    FlowLimit,
    Extension,
}

impl Code {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "BATON-FLOW-001",
            Code::ParseLimit => "BATON-FLOW-002",
            Code::Alias => "BATON-FLOW-003",
            Code::DuplicateKey => "BATON-FLOW-004",
            Code::NonStringKey => "BATON-FLOW-005",
            Code::BadScalar => "BATON-FLOW-006",
            Code::UnsupportedTag => "BATON-FLOW-007",
            Code::MultipleDocuments => "BATON-FLOW-008",
            Code::SchemaMismatch => "BATON-FLOW-010",
            Code::SchemaRequired => "BATON-FLOW-011",
            Code::SchemaUnknownProperty => "BATON-FLOW-012",
            Code::SchemaTaskKind => "BATON-FLOW-013",
            Code::Model => "BATON-FLOW-019",
            Code::UnknownThen => "BATON-FLOW-020",
            Code::DuplicateTask => "BATON-FLOW-021",
            Code::EmptyTaskList => "BATON-FLOW-022",
            Code::BadDuration => "BATON-FLOW-023",
            Code::BadExpression => "BATON-FLOW-024",
            Code::SecretsOutsideInputFrom => "BATON-FLOW-025",
            Code::UnknownFunction => "BATON-FLOW-026",
            Code::UnsupportedCall => "BATON-FLOW-027",
            Code::RefusedRun => "BATON-FLOW-028",
            Code::UnknownReference => "BATON-FLOW-029",
            Code::HttpArguments => "BATON-FLOW-030",
            Code::FlowLimit => "BATON-FLOW-031",
            Code::Extension => "BATON-FLOW-032",
        }
    }
}

/// Appends one reference token to a JSON Pointer, escaping `~` and `/` as RFC 6901 requires.
pub fn pointer_push(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for ch in token.chars() {
        match ch {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}
