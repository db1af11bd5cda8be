//! The HTTP API under `/v1`: flows, instances, events, approvals, quarantine, audit; health.

pub mod approvals;
pub mod decisions;
pub(crate) mod events;
pub(crate) mod flows;
pub(crate) mod instances;
pub mod shadows;
pub mod views;
pub mod wire;

use baton_engine::Features;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::{ApiError, Code};

pub use events::ingest_one;
pub use flows::register_source;
pub use instances::{StartOutcome, start_instance};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(flows::healthz))
        .route("/readyz", get(flows::readyz))
        .route("/v1/flows", get(flows::list).post(flows::register))
        .route("/v1/flows/validate", post(flows::validate))
        .route(
            "/v1/flows/{namespace}/{name}/{version}",
            get(flows::get_one),
        )
        .route("/v1/instances", get(instances::list).post(instances::start))
        .route("/v1/instances/{id}", get(instances::get_one))
        .route("/v1/instances/{id}/cancel", post(instances::cancel))
        .route("/v1/instances/{id}/suspend", post(instances::suspend))
        .route("/v1/instances/{id}/resume", post(instances::resume))
        .route("/v1/instances/{id}/signal", post(instances::signal))
        .route("/v1/events", post(events::publish))
        .route("/v1/events/batch", post(events::publish_batch))
        .route("/v1/quarantine", get(events::quarantine))
        .route("/v1/quarantine/{id}/replay", post(events::replay))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::get_one))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route(
            "/v1/approvals/{id}/override",
            post(approvals::override_decision),
        )
        .route(
            "/v1/approvals/{id}/override/confirm",
            post(approvals::confirm_override),
        )
        .route(
            "/v1/approvals/{id}/override/refuse",
            post(approvals::refuse_override),
        )
        .route("/v1/overrides/report", get(approvals::overrides_report))
        .route("/v1/instances/{id}/decisions", get(decisions::list))
        .route("/v1/decisions", get(decisions::export))
        .route("/v1/overrides", get(approvals::overrides))
        .route("/v1/audit", get(approvals::audit))
        .route("/v1/shadows", get(shadows::list).post(shadows::register))
        .route(
            "/v1/shadows/{name}",
            get(shadows::get_one).delete(shadows::stop),
        )
        .route("/v1/shadows/{name}/decisions", post(shadows::post_decision))
        .route("/v1/shadows/{name}/cases/{case}", get(shadows::case))
        .route("/v1/shadows/{name}/report", get(shadows::report))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "Method not allowed")
}

/// Query parameters whose rejections are problem details.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// Path parameters whose rejections are problem details.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// Puts the approvals inbox's open and late counts into the metrics.
pub(crate) async fn refresh_approval_metrics(state: &AppState) -> Result<(), ApiError> {
    let (open, late) = state.runtime.approvals().due_counts().await?;
    state.metrics.set_approvals(open, late);
    Ok(())
}

/// The page size a list request asks for, within the server's limit (default 50).
pub(crate) fn page_limit(state: &AppState, limit: Option<u32>) -> usize {
    limit
        .map(|l| l as usize)
        .unwrap_or(50)
        .clamp(1, state.config.limits.list_limit_max)
}

/// Reads a document list's cursor (`<at_ms>_<id>`), refusing one this server did not make.
pub(crate) fn doc_cursor(cursor: Option<&str>) -> Result<Option<(u64, String)>, ApiError> {
    cursor
        .map(|c| {
            baton_store::DocQuery::parse_cursor(c)
                .ok_or_else(|| ApiError::invalid("not a cursor of this list"))
        })
        .transpose()
}
