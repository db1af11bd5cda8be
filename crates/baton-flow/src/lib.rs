//! Flow definitions: the Serverless Workflow 1.0 model, parsing YAML/JSON with source spans, and
//! schema plus semantic validation with `file:line:column` diagnostics.
//!
//! [`load_flow`] is the entry point: parse ([`parse`]), validate against the pinned schema
//! ([`schema`]), check what the schema cannot express ([`validate`]) and build the typed
//! [`model::Workflow`]. Every stage reports all it finds; the stable codes are listed in `CODES.md`.

pub mod diag;
pub mod duration;
pub mod model;
pub mod parse;
pub mod schema;
pub mod validate;

pub use diag::{Diagnostic, SourceLocation};
pub use duration::{duration_ms, parse_duration_text_ms, parse_iso8601_duration_ms};
pub use model::*;
pub use parse::SpanIndex;
pub use validate::ValidateOptions;

use diag::Code;
use serde_json::Value;

/// A flow that passed every check.
#[derive(Debug, Clone)]
pub struct LoadedFlow {
    pub workflow: model::Workflow,
    /// The document as parsed, for `$workflow.definition` and for showing the flow.
    pub raw: Value,
    /// Source positions of `raw`, for runtime errors that point back into the file.
    pub spans: SpanIndex,
}

/// Parse + schema + model + semantic checks. `Ok` only when there are no errors; otherwise every
/// diagnostic found, in source order.
pub fn load_flow(text: &str, opts: &ValidateOptions) -> Result<LoadedFlow, Vec<Diagnostic>> {
    let parsed = parse::parse_document(text)?;
    let (raw, spans) = (parsed.value, parsed.spans);
    let mut diags = schema::validate_schema(&raw, &spans);
    let schema_ok = diags.is_empty();
    // Semantic checks run even when the schema failed, so one run reports every problem; where
    // both layers flag the same node the schema's report is kept.
    for d in validate::validate_semantics(&raw, &spans, opts) {
        if !diags.iter().any(|s| s.pointer == d.pointer) {
            diags.push(d);
        }
    }
    // The typed model is only meaningful on a schema-valid document; on an invalid one its
    // error would repeat a schema diagnostic less clearly.
    let workflow = if schema_ok {
        match deserialize_model(&raw) {
            Ok(w) => Some(w),
            Err((pointer, message)) => {
                let at = spans.nearest_value(&pointer);
                diags.push(Diagnostic::new(Code::Model, message, pointer, at));
                None
            }
        }
    } else {
        None
    };
    diags.sort_by(|a, b| (a.line, a.column, &a.code).cmp(&(b.line, b.column, &b.code)));
    match workflow {
        Some(workflow) if diags.is_empty() => Ok(LoadedFlow {
            workflow,
            raw,
            spans,
        }),
        _ => Err(diags),
    }
}

/// Stack for deserializing the typed model. Serde's derived visitors keep every field of a task
/// on the stack, which in a debug build costs about 100 KiB per level of task-list nesting: a
/// flow at the nesting limit would overflow a 2 MiB thread (tokio workers, test threads). The
/// memory is reserved, not committed, until used.
const MODEL_STACK_BYTES: usize = 32 * 1024 * 1024;

/// Builds the typed model on a thread of its own with a known stack, so loading never depends
/// on the caller's stack size. On failure: the pointer and message of the error.
fn deserialize_model(raw: &Value) -> Result<model::Workflow, (String, String)> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("baton-flow-model".to_string())
            .stack_size(MODEL_STACK_BYTES)
            .spawn_scoped(scope, || {
                serde_path_to_error::deserialize::<_, model::Workflow>(raw).map_err(|e| {
                    (
                        error_pointer(e.path()),
                        format!("not accepted by Baton's flow model: {}", e.inner()),
                    )
                })
            })
            .map_err(|e| {
                (
                    String::new(),
                    format!("could not start the flow model thread: {e}"),
                )
            })?;
        worker.join().unwrap_or_else(|_| {
            Err((
                String::new(),
                "the flow model failed on this document".to_string(),
            ))
        })
    })
}

/// The JSON Pointer of the node a `serde_path_to_error` failure names.
pub fn error_pointer(path: &serde_path_to_error::Path) -> String {
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                pointer = diag::pointer_push(&pointer, &index.to_string())
            }
            serde_path_to_error::Segment::Map { key } => {
                pointer = diag::pointer_push(&pointer, key)
            }
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    pointer
}
