//! Decision records: per instance (`GET /v1/instances/{id}/decisions`), and exported over a
//! period as JSON Lines for audit (`GET /v1/decisions`, `application/x-ndjson`, one record per
//! line). Records are derived from the journals on every request (see
//! `baton_runtime::decisions`); nothing is stored beside them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use baton_core::InstanceId;
use baton_runtime::decisions::DecisionRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::approvals::{PeriodFilter, period};
use super::{Path, Query};
use crate::problem::{ApiError, ApiResult, ProblemDoc};
use crate::{AppState, Caller};

/// Instances one export looks at, at most; an export that reached it ends with a line saying so.
const EXPORT_INSTANCES_MAX: usize = 100_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionList {
    pub instance: String,
    /// The instance's decisions, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<DecisionRecord>,
}

pub async fn of_instance(state: &AppState, id: &str) -> ApiResult<Vec<DecisionRecord>> {
    Ok(state
        .runtime
        .decision_records(&InstanceId(id.to_string()))
        .await?)
}

#[utoipa::path(get, path = "/v1/instances/{id}/decisions", tag = "instances",
    params(("id" = String, Path)),
    responses((status = 200, description = "every decision of the instance: inputs with their sources and ages, rules that fired, outputs, approvals and overrides, the flow and decision versions", body = DecisionList),
        (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DecisionList>> {
    let items = of_instance(&state, &id).await?;
    Ok(Json(DecisionList {
        instance: id,
        items,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportFilter {
    /// Start of the period (RFC 3339 or milliseconds); default: 30 days before `until`.
    pub since: Option<String>,
    /// End of the period, exclusive; default: now.
    pub until: Option<String>,
    /// Only instances of this flow (its name).
    pub flow: Option<String>,
}

#[utoipa::path(get, path = "/v1/decisions", tag = "audit", params(ExportFilter),
    responses((status = 200, description = "JSON Lines: one decision record per line, instance by instance (newest instance first), records of an instance oldest first; a last line `{\"truncated\": true, …}` when the export stopped at its bound", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Query(f): Query<ExportFilter>,
) -> ApiResult<Response> {
    let (since, until) = period(
        &state,
        &PeriodFilter {
            since: f.since.clone(),
            until: f.until.clone(),
        },
    )?;
    let mut body: Vec<u8> = Vec::new();
    let mut failed = None;
    let (_, truncated) = state
        .runtime
        .export_decisions(
            since,
            until,
            f.flow.as_deref(),
            EXPORT_INSTANCES_MAX,
            |recs| {
                for r in recs {
                    match serde_json::to_vec(&r) {
                        Ok(line) => {
                            body.extend_from_slice(&line);
                            body.push(b'\n');
                        }
                        Err(e) => {
                            failed = Some(e.to_string());
                            return false;
                        }
                    }
                }
                true
            },
        )
        .await?;
    if let Some(e) = failed {
        return Err(ApiError::new(crate::Code::Internal, "Cannot encode a record").detail(e));
    }
    if truncated {
        let line = serde_json::json!({"truncated": true, "instances_scanned": EXPORT_INSTANCES_MAX,
            "detail": "the export stopped at its bound: narrow the period or the flow"});
        body.extend_from_slice(line.to_string().as_bytes());
        body.push(b'\n');
    }
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}
