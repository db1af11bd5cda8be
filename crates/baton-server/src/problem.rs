//! API errors as RFC 9457 problem details. Every error has a stable code; its `type` is a URI
//! built from the code, so clients can branch on it without parsing titles.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_engine::decisions::RecordsError;
use baton_engine::{RuntimeError, StartError};
use baton_store::StoreError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The stable error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    NotFound,
    InvalidRequest,
    Conflict,
    PayloadTooLarge,
    InvalidFlow,
    IdempotencyKeyReused,
    StoreUnavailable,
    InvalidEvent,
    UnsupportedMediaType,
    MethodNotAllowed,
    Internal,
    /// The override policy does not let this person override (or confirm) this decision.
    OverrideForbidden,
    /// The second approver of an override must be another person than the one who asked.
    SecondApproverSamePerson,
    /// Another override of the task waits for its second approver.
    OverridePending,
    /// No override of the task waits for confirmation.
    NoPendingOverride,
    /// An override (or refusing one) needs a reason.
    ReasonRequired,
    /// The instance's driver did not answer a control request; it may be retried.
    InstanceUnavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "BATON-API-001",
            Code::Forbidden => "BATON-API-002",
            Code::NotFound => "BATON-API-003",
            Code::InvalidRequest => "BATON-API-004",
            Code::Conflict => "BATON-API-005",
            Code::PayloadTooLarge => "BATON-API-006",
            Code::InvalidFlow => "BATON-API-007",
            Code::IdempotencyKeyReused => "BATON-API-008",
            Code::StoreUnavailable => "BATON-API-009",
            Code::InvalidEvent => "BATON-API-010",
            Code::UnsupportedMediaType => "BATON-API-011",
            Code::MethodNotAllowed => "BATON-API-012",
            Code::Internal => "BATON-API-013",
            Code::OverrideForbidden => "BATON-API-014",
            Code::SecondApproverSamePerson => "BATON-API-015",
            Code::OverridePending => "BATON-API-016",
            Code::NoPendingOverride => "BATON-API-017",
            Code::ReasonRequired => "BATON-API-018",
            Code::InstanceUnavailable => "BATON-API-019",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not-found",
            Code::InvalidRequest => "invalid-request",
            Code::Conflict => "conflict",
            Code::PayloadTooLarge => "payload-too-large",
            Code::InvalidFlow => "invalid-flow",
            Code::IdempotencyKeyReused => "idempotency-key-reused",
            Code::StoreUnavailable => "store-unavailable",
            Code::InvalidEvent => "invalid-event",
            Code::UnsupportedMediaType => "unsupported-media-type",
            Code::MethodNotAllowed => "method-not-allowed",
            Code::Internal => "internal",
            Code::OverrideForbidden => "override-forbidden",
            Code::SecondApproverSamePerson => "second-approver-same-person",
            Code::OverridePending => "override-pending",
            Code::NoPendingOverride => "no-pending-override",
            Code::ReasonRequired => "reason-required",
            Code::InstanceUnavailable => "instance-unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidRequest => StatusCode::BAD_REQUEST,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::InvalidFlow | Code::IdempotencyKeyReused | Code::InvalidEvent => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Code::StoreUnavailable | Code::InstanceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::OverrideForbidden | Code::SecondApproverSamePerson => StatusCode::FORBIDDEN,
            Code::OverridePending | Code::NoPendingOverride => StatusCode::CONFLICT,
            Code::ReasonRequired => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// A problem details document (RFC 9457), as the API sends it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemDoc {
    /// `https://baton.dev/errors/<slug>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The stable code, e.g. `BATON-API-003`.
    pub code: String,
    /// Structured details, one object per problem (flow diagnostics with `line`, `column`,
    /// `code`, `message` and `pointer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub title: String,
    pub detail: Option<String>,
    /// Boxed: errors travel in `Result`s everywhere, and the details are rare.
    pub errors: Option<Box<Value>>,
}

impl ApiError {
    pub fn new(code: Code, title: impl Into<String>) -> ApiError {
        ApiError {
            code,
            title: title.into(),
            detail: None,
            errors: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> ApiError {
        self.detail = Some(d.into());
        self
    }

    pub fn errors(mut self, e: Value) -> ApiError {
        self.errors = Some(Box::new(e));
        self
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(Code::NotFound, "Not found").detail(what)
    }

    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidRequest, "Invalid request").detail(detail)
    }

    pub fn doc(&self) -> ProblemDoc {
        ProblemDoc {
            type_uri: format!("https://baton.dev/errors/{}", self.code.slug()),
            title: self.title.clone(),
            status: self.code.status().as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_string(),
            errors: self.errors.as_deref().cloned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let doc = self.doc();
        if self.code == Code::Internal || self.code == Code::StoreUnavailable {
            tracing::error!(code = doc.code, detail = ?doc.detail, "request failed");
        }
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let mut resp = (self.code.status(), body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.code.status() == StatusCode::SERVICE_UNAVAILABLE {
            // Both 503s are passing states (a busy store, a driver starting or stopping).
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.code == Code::Unauthenticated {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"baton\""),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::UnknownInstance(id) => ApiError::not_found(format!("instance {id}")),
            StoreError::DocConflict { .. } | StoreError::Conflict { .. } => {
                ApiError::new(Code::Conflict, "Conflict").detail(e.to_string())
            }
            // Store trouble is a 503: the request may be retried; nothing was corrupted.
            other => {
                ApiError::new(Code::StoreUnavailable, "Store unavailable").detail(other.to_string())
            }
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        match e {
            RuntimeError::Store(s) => s.into(),
            RuntimeError::UnknownInstance(id) => ApiError::not_found(format!("instance {id}")),
            RuntimeError::Refused { why, .. } => {
                ApiError::new(Code::Conflict, "Not possible in the instance's state").detail(why)
            }
            RuntimeError::Unavailable { why, .. } => {
                ApiError::new(Code::InstanceUnavailable, "Instance unavailable").detail(why)
            }
            RuntimeError::InvalidEvent(why) => {
                ApiError::new(Code::InvalidEvent, "Invalid event").detail(why)
            }
            RuntimeError::InvalidFlow(lines) => {
                ApiError::new(Code::InvalidFlow, "Invalid flow").errors(Value::from(lines))
            }
            other => ApiError::new(Code::Internal, "Internal error").detail(other.to_string()),
        }
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> ApiError {
        match e {
            StartError::Store(s) => s.into(),
            StartError::Refused(why) => {
                ApiError::new(Code::Conflict, "Not possible in the instance's state").detail(why)
            }
            other => ApiError::new(Code::Internal, "Internal error").detail(other.to_string()),
        }
    }
}

impl From<RecordsError> for ApiError {
    fn from(e: RecordsError) -> ApiError {
        match e {
            RecordsError::Store(s) => s.into(),
            RecordsError::UnknownInstance(id) => ApiError::not_found(format!("instance {id}")),
            other => ApiError::new(Code::Internal, "Internal error").detail(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Code] = &[
        Code::Unauthenticated,
        Code::Forbidden,
        Code::NotFound,
        Code::InvalidRequest,
        Code::Conflict,
        Code::PayloadTooLarge,
        Code::InvalidFlow,
        Code::IdempotencyKeyReused,
        Code::StoreUnavailable,
        Code::InvalidEvent,
        Code::UnsupportedMediaType,
        Code::MethodNotAllowed,
        Code::Internal,
        Code::OverrideForbidden,
        Code::SecondApproverSamePerson,
        Code::OverridePending,
        Code::NoPendingOverride,
        Code::ReasonRequired,
        Code::InstanceUnavailable,
    ];

    #[test]
    fn every_code_has_its_own_number_and_type() {
        let mut numbers: Vec<_> = ALL.iter().map(|c| c.as_str()).collect();
        let mut slugs: Vec<_> = ALL.iter().map(|c| c.slug()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!((numbers.len(), slugs.len()), (ALL.len(), ALL.len()));
        // Numbered in declaration order, so a new code takes the next number.
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(c.as_str(), format!("BATON-API-{:03}", i + 1), "{c:?}");
        }
    }

    fn status_of(e: impl Into<ApiError>) -> (u16, &'static str) {
        let e = e.into();
        (e.code.status().as_u16(), e.code.as_str())
    }

    #[test]
    fn runtime_errors_map_to_one_status_each() {
        let id = || "i-1".to_string();
        let why = || "because".to_string();
        assert_eq!(
            status_of(RuntimeError::Refused {
                id: id(),
                why: why()
            }),
            (409, "BATON-API-005")
        );
        assert_eq!(
            status_of(RuntimeError::Unavailable {
                id: id(),
                why: why()
            }),
            (503, "BATON-API-019"),
            "a driver that does not answer is a passing state, not a conflict"
        );
        assert_eq!(
            status_of(RuntimeError::Store(StoreError::Io("disk".into()))),
            (503, "BATON-API-009")
        );
        assert_eq!(
            status_of(RuntimeError::UnknownInstance(id())),
            (404, "BATON-API-003")
        );
        assert_eq!(
            status_of(RuntimeError::InvalidEvent(why())),
            (422, "BATON-API-010")
        );
        assert_eq!(
            status_of(RuntimeError::InvalidFlow(vec![why()])),
            (422, "BATON-API-007")
        );
        assert_eq!(
            status_of(RuntimeError::MissingFlow(why())),
            (500, "BATON-API-013")
        );
    }

    #[test]
    fn store_errors_are_503_except_conflicts_and_unknowns() {
        assert_eq!(status_of(StoreError::Closed), (503, "BATON-API-009"));
        assert_eq!(
            status_of(StoreError::Corrupt("x".into())),
            (503, "BATON-API-009")
        );
        assert_eq!(
            status_of(StoreError::UnknownInstance("i".into())),
            (404, "BATON-API-003")
        );
        assert_eq!(
            status_of(StoreError::Conflict {
                instance: "i".into(),
                expected: 2,
                found: 3
            }),
            (409, "BATON-API-005")
        );
    }

    #[test]
    fn records_errors_map_like_the_runtime_s() {
        assert_eq!(
            status_of(RecordsError::UnknownInstance("i".into())),
            (404, "BATON-API-003")
        );
        assert_eq!(
            status_of(RecordsError::Store(StoreError::Closed)),
            (503, "BATON-API-009")
        );
    }

    #[test]
    fn a_trigger_start_that_failed_on_the_store_is_503() {
        use baton_engine::triggers::TriggerError;
        assert_eq!(
            status_of(TriggerError::Start(StartError::Store(StoreError::Closed))),
            (503, "BATON-API-009")
        );
        assert_eq!(
            status_of(TriggerError::Start(StartError::Refused("no".into()))),
            (500, "BATON-API-013")
        );
    }

    #[test]
    fn a_start_a_feature_asked_for_maps_by_its_cause() {
        assert_eq!(
            status_of(StartError::Store(StoreError::Closed)),
            (503, "BATON-API-009")
        );
        assert_eq!(
            status_of(StartError::Refused("already running".into())),
            (409, "BATON-API-005")
        );
        assert_eq!(
            status_of(StartError::Failed("flow not loadable".into())),
            (500, "BATON-API-013")
        );
    }
}
