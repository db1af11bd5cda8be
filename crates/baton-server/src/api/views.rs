//! What the API sends and receives: the JSON shapes of the OpenAPI document.

use baton_core::FlowRef;
use baton_store::InstanceRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlowView {
    pub namespace: String,
    pub name: String,
    pub version: String,
    /// Content hash of the definition: instances run exactly the definition they started with.
    pub hash: String,
    /// Registration order.
    pub seq: u64,
    /// Whether this is the newest registered version of its name.
    pub latest: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlowDetail {
    #[serde(flatten)]
    pub flow: FlowView,
    /// The definition as registered (YAML or JSON).
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FlowSource {
    /// A Serverless Workflow 1.0 document, YAML or JSON, as text.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiagnosticView {
    pub code: String,
    pub message: String,
    pub line: u32,
    pub column: u32,
    /// JSON pointer into the document.
    pub pointer: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationReport {
    pub valid: bool,
    pub diagnostics: Vec<DiagnosticView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlowRefView {
    pub namespace: String,
    pub name: String,
    pub version: String,
    pub hash: String,
}

impl From<&FlowRef> for FlowRefView {
    fn from(f: &FlowRef) -> Self {
        FlowRefView {
            namespace: f.namespace.clone(),
            name: f.name.clone(),
            version: f.version.clone(),
            hash: f.hash.clone(),
        }
    }
}

/// An instance's status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatusView {
    Pending,
    Running,
    Waiting,
    Suspended,
    Cancelled,
    Faulted,
    Completed,
}

impl StatusView {
    pub fn to_status(self) -> baton_core::Status {
        use baton_core::Status as S;
        match self {
            StatusView::Pending => S::Pending,
            StatusView::Running => S::Running,
            StatusView::Waiting => S::Waiting,
            StatusView::Suspended => S::Suspended,
            StatusView::Cancelled => S::Cancelled,
            StatusView::Faulted => S::Faulted,
            StatusView::Completed => S::Completed,
        }
    }

    pub fn of(s: baton_core::Status) -> StatusView {
        use baton_core::Status as S;
        match s {
            S::Pending => StatusView::Pending,
            S::Running => StatusView::Running,
            S::Waiting => StatusView::Waiting,
            S::Suspended => StatusView::Suspended,
            S::Cancelled => StatusView::Cancelled,
            S::Faulted => StatusView::Faulted,
            S::Completed => StatusView::Completed,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub flow: FlowRefView,
    pub status: StatusView,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub journal_len: u64,
    /// The workflow output, once completed.
    pub output: Option<Value>,
    /// The problem details of a fault.
    pub error: Option<Value>,
}

impl From<&InstanceRecord> for InstanceView {
    fn from(r: &InstanceRecord) -> Self {
        InstanceView {
            id: r.id.0.clone(),
            flow: (&r.flow).into(),
            status: StatusView::of(r.status),
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            journal_len: r.journal_len,
            output: r.output.clone(),
            error: r.error.as_ref().map(|p| p.to_value()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceDetail {
    pub instance: InstanceView,
    /// Journal entries, oldest first (at most the server's limit; see `journal_truncated`).
    pub journal: Vec<Value>,
    pub journal_truncated: bool,
    /// Set when the instance is a shadow run: `{registration, case}` (its effects were recorded,
    /// not performed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub shadow: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The flow's name.
    pub flow: String,
    /// The flow's namespace (needed only when two namespaces have a flow of this name).
    #[serde(default)]
    pub namespace: Option<String>,
    /// A registered version, or `latest` (the default).
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceFilter {
    pub status: Option<StatusView>,
    /// Flow name.
    pub flow: Option<String>,
    pub version: Option<String>,
    /// Only instances that are not finished and have not changed for 15 minutes.
    pub stuck: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 50, at most the server's limit).
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusChange {
    pub id: String,
    pub status: StatusView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventReceipt {
    /// `accepted` (stored and offered to triggers and listeners), `duplicate` (same `source` and
    /// `id` seen within the retention window), or `quarantined` (could not be processed; kept
    /// with its reason).
    pub outcome: String,
    pub id: Option<String>,
    pub source: Option<String>,
    /// Instances a trigger started for this event.
    #[serde(default)]
    pub started: Vec<String>,
    /// The quarantine entry, when quarantined.
    pub quarantine_id: Option<String>,
    pub reason: Option<String>,
    /// Set when the event is an echo of Baton's own effect: how it was recognised (`by`:
    /// `lineage` or `expected`), the causation, and the rules that did not act on it.
    #[schema(value_type = Option<Object>)]
    pub echo: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
