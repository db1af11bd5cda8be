//! The approvals inbox: list, get, approve, reject, override; the overrides report and the
//! audit trail.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use baton_runtime::Role;
use baton_runtime::approvals::{
    Answer, ApprovalError, ApprovalQuery, ApprovalStatus, ApprovalTask,
};
use baton_store::{DocQuery, DocStore};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{Path, Query};
use crate::body::JsonBody;
use crate::problem::{ApiError, ApiResult, Code, ProblemDoc};
use crate::{AppState, Caller};

impl From<ApprovalError> for ApiError {
    fn from(e: ApprovalError) -> ApiError {
        match e {
            ApprovalError::NotFound(id) => ApiError::not_found(format!("approval {id}")),
            ApprovalError::Forbidden { why } => {
                ApiError::new(Code::Forbidden, "Forbidden").detail(why)
            }
            ApprovalError::Conflict { why } => {
                ApiError::new(Code::Conflict, "The approval is not open").detail(why)
            }
            ApprovalError::Invalid { why } => ApiError::invalid(why),
            ApprovalError::Store(s) => s.into(),
            other => ApiError::new(Code::Internal, "Internal error").detail(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatusView {
    Open,
    Approved,
    Rejected,
    Defaulted,
    Expired,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatusView>,
    /// Only the tasks the caller may answer (by name or group).
    pub mine: Option<bool>,
    pub instance: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalPage {
    /// Approval tasks, earliest due first.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<ApprovalTask>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Required to reject or override.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The output that replaces the proposed decision.
    pub output: Value,
    pub reason: String,
}

fn status_of(v: ApprovalStatusView) -> ApprovalStatus {
    match v {
        ApprovalStatusView::Open => ApprovalStatus::Open,
        ApprovalStatusView::Approved => ApprovalStatus::Approved,
        ApprovalStatusView::Rejected => ApprovalStatus::Rejected,
        ApprovalStatusView::Defaulted => ApprovalStatus::Defaulted,
        ApprovalStatusView::Expired => ApprovalStatus::Expired,
    }
}

pub async fn page(
    state: &AppState,
    caller: &Caller,
    f: &ApprovalFilter,
) -> ApiResult<ApprovalPage> {
    let limit = super::page_limit(state, f.limit);
    let mut q = if f.mine.unwrap_or(false) {
        let mut q = ApprovalQuery::inbox_of(&caller.0);
        q.status = None;
        q
    } else {
        ApprovalQuery::default()
    };
    q.status = f.status.map(status_of);
    q.instance = f.instance.clone();
    q.cursor = f.cursor.clone();
    q.limit = limit + 1;
    let mut items = state.runtime.approvals().list(&q).await?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(ApprovalTask::cursor)
    } else {
        None
    };
    Ok(ApprovalPage { items, next_cursor })
}

#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ApprovalFilter),
    responses((status = 200, body = ApprovalPage), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(f): Query<ApprovalFilter>,
) -> ApiResult<Json<ApprovalPage>> {
    Ok(Json(page(&state, &caller, &f).await?))
}

#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvals", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalTask>> {
    Ok(Json(state.runtime.approvals().get(&id).await?))
}

/// Answers a task as the caller and records it in the audit trail.
pub async fn answer(
    state: &AppState,
    caller: &Caller,
    id: &str,
    answer: Answer,
    reason: Option<String>,
) -> ApiResult<ApprovalTask> {
    let actor = caller.require(Role::Approver)?;
    let (action, extra) = match &answer {
        Answer::Approve => ("approval.approve", Value::Null),
        Answer::Reject => ("approval.reject", Value::Null),
        Answer::Override { output } => ("approval.override", output.clone()),
    };
    let task = state
        .runtime
        .approvals()
        .decide(id, actor, answer, reason.clone())
        .await?;
    state
        .audit(
            actor,
            action,
            id,
            json!({"instance": task.instance, "title": task.title, "reason": reason, "output": extra, "original": task.data}),
        )
        .await?;
    Ok(task)
}

#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", params(("id" = String, Path)),
    request_body(content = AnswerRequest, description = "optional"),
    responses((status = 200, body = Object), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<ApprovalTask>> {
    let bytes = crate::body::raw_json(req, &state).await?;
    let body: AnswerRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        AnswerRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(e.to_string()))?
    };
    Ok(Json(
        answer(&state, &caller, &id, Answer::Approve, body.reason).await?,
    ))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "approvals", params(("id" = String, Path)),
    request_body = AnswerRequest,
    responses((status = 200, body = Object), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc), (status = 422, description = "a reason is required", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AnswerRequest>,
) -> ApiResult<Json<ApprovalTask>> {
    Ok(Json(
        answer(&state, &caller, &id, Answer::Reject, body.reason).await?,
    ))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/override", tag = "approvals", params(("id" = String, Path)),
    request_body = OverrideRequest,
    responses((status = 200, body = Object), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc), (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn override_decision(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OverrideRequest>,
) -> ApiResult<Json<ApprovalTask>> {
    Ok(Json(
        answer(
            &state,
            &caller,
            &id,
            Answer::Override {
                output: body.output,
            },
            Some(body.reason),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only this action, e.g. `approval.override` or `instance.cancel`.
    pub action: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Who did what, newest first: `{actor, action, target, detail, at_ms}`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

pub async fn audit_page(state: &AppState, f: &AuditFilter) -> ApiResult<AuditPage> {
    let limit = super::page_limit(state, f.limit);
    let after = super::doc_cursor(f.cursor.as_deref())?;
    let docs = state
        .runtime
        .store()
        .docs(
            "audit",
            &DocQuery {
                status: f.action.clone(),
                newest_first: true,
                after,
                limit: limit + 1,
            },
        )
        .await?;
    let more = docs.len() > limit;
    let docs = &docs[..docs.len().min(limit)];
    Ok(AuditPage {
        items: docs.iter().map(|d| d.body.clone()).collect(),
        next_cursor: if more {
            docs.last().map(DocQuery::cursor_of)
        } else {
            None
        },
    })
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditFilter),
    responses((status = 200, body = AuditPage), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Query(f): Query<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    Ok(Json(audit_page(&state, &f).await?))
}

#[utoipa::path(get, path = "/v1/overrides", tag = "audit",
    params(("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query, minimum = 1)),
    responses((status = 200, description = "overrides, newest first: who replaced which decision, with what and why", body = AuditPage),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn overrides(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Query(mut f): Query<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    f.action = Some("approval.override".into());
    Ok(Json(audit_page(&state, &f).await?))
}
