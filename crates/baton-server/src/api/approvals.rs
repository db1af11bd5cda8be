//! The approvals inbox: list, get, approve, reject, override (and, where the override policy
//! asks for one, the second approver's confirmation or refusal); the overrides report and the
//! audit trail.

use baton_engine::Features;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_engine::Role;
use baton_engine::approvals::{
    Answer, ApprovalError, ApprovalQuery, ApprovalStatus, ApprovalTask, Approvals, OverrideRefusal,
    OverrideReport,
};
use baton_store::SqliteStore;
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
            ApprovalError::Override { refusal, why } => {
                let (code, title) = match refusal {
                    OverrideRefusal::NotAllowed | OverrideRefusal::NotSecondApprover => (
                        Code::OverrideForbidden,
                        "The override policy does not allow this",
                    ),
                    OverrideRefusal::SamePerson => (
                        Code::SecondApproverSamePerson,
                        "The second approver must be another person",
                    ),
                    OverrideRefusal::Pending => (
                        Code::OverridePending,
                        "An override waits for its second approver",
                    ),
                    OverrideRefusal::NothingPending => (
                        Code::NoPendingOverride,
                        "No override waits for confirmation",
                    ),
                };
                ApiError::new(code, title).detail(why)
            }
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
    #[schema(value_type = Vec<super::wire::ApprovalTaskDoc>)]
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
    /// Required: why the decision is overridden (it appears in the override report).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The inbox of this server: the runtime's, answering overrides under the configured policy.
pub fn inbox(state: &AppState) -> Approvals<SqliteStore> {
    state
        .runtime
        .approvals()
        .with_override_policy(state.config.overrides.clone())
}

fn reason_required(reason: &Option<String>, what: &str) -> ApiResult<()> {
    if reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(
            ApiError::new(Code::ReasonRequired, "A reason is required").detail(format!(
                "{what} needs a reason: say why (it is recorded and reported)"
            )),
        );
    }
    Ok(())
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
    responses((status = 200, body = super::wire::ApprovalTaskDoc), (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
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
    if matches!(answer, Answer::Override { .. }) {
        reason_required(&reason, "an override")?;
    }
    let (mut action, extra) = match &answer {
        Answer::Approve => ("approval.approve", Value::Null),
        Answer::Reject => ("approval.reject", Value::Null),
        Answer::Override { output } => ("approval.override", output.clone()),
    };
    let task = inbox(state)
        .decide(id, actor, answer, reason.clone())
        .await?;
    // Asked for, not yet in effect: the report and the audit trail tell the two apart.
    if task.pending_override.is_some() {
        action = "approval.override.requested";
    }
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
    responses((status = 200, body = super::wire::ApprovalTaskDoc), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<ApprovalTask>> {
    let body: AnswerRequest = crate::body::optional_json(req, &state).await?;
    Ok(Json(
        answer(&state, &caller, &id, Answer::Approve, body.reason).await?,
    ))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "approvals", params(("id" = String, Path)),
    request_body = AnswerRequest,
    responses((status = 200, body = super::wire::ApprovalTaskDoc), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
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
    responses((status = 200, body = super::wire::ApprovalTaskDoc), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc), (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn override_decision(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OverrideRequest>,
) -> ApiResult<(StatusCode, Json<ApprovalTask>)> {
    let task = answer(
        &state,
        &caller,
        &id,
        Answer::Override {
            output: body.output,
        },
        body.reason,
    )
    .await?;
    // 202: recorded, but in effect only once the second approver confirms.
    let status = if task.pending_override.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(task)))
}

/// Confirms or refuses the pending override of a task as the caller (the second approver),
/// and records it in the audit trail.
pub async fn second_answer(
    state: &AppState,
    caller: &Caller,
    id: &str,
    confirm: bool,
    reason: Option<String>,
) -> ApiResult<ApprovalTask> {
    let actor = caller.require(Role::Approver)?;
    if !confirm {
        reason_required(&reason, "refusing an override")?;
    }
    let before = inbox(state).get(id).await?;
    let task = inbox(state)
        .confirm_override(id, actor, confirm, reason.clone())
        .await?;
    let asked = before.pending_override;
    // A confirmation is when the override takes effect: it is recorded as `approval.override`
    // (so `/v1/overrides` lists every override in effect), by the second approver, naming who
    // asked and why.
    let (action, detail) = if confirm {
        (
            "approval.override",
            json!({"instance": task.instance, "title": task.title,
                   "reason": task.reason, "asked_by": task.decided_by,
                   "confirmed_by": actor.name, "note": reason,
                   "output": task.output, "original": task.data}),
        )
    } else {
        (
            "approval.override.refuse",
            json!({"instance": task.instance, "title": task.title, "reason": reason,
                   "asked_by": asked.as_ref().map(|p| p.by.clone()),
                   "asked_reason": asked.as_ref().map(|p| p.reason.clone()),
                   "output": asked.map(|p| p.output), "original": task.data}),
        )
    };
    state.audit(actor, action, id, detail).await?;
    Ok(task)
}

#[utoipa::path(post, path = "/v1/approvals/{id}/override/confirm", tag = "approvals", params(("id" = String, Path)),
    request_body(content = AnswerRequest, description = "optional"),
    responses((status = 200, description = "the override is in effect: the task is answered `overridden`", body = super::wire::ApprovalTaskDoc),
        (status = 400, description = "a body that is not an answer (BATON-API-004)", body = ProblemDoc),
        (status = 401, body = ProblemDoc),
        (status = 403, description = "not a second approver the policy names (BATON-API-014), or the person who asked (BATON-API-015)", body = ProblemDoc),
        (status = 404, body = ProblemDoc), (status = 409, description = "no override waits (BATON-API-017)", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn confirm_override(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<ApprovalTask>> {
    let body: AnswerRequest = crate::body::optional_json(req, &state).await?;
    Ok(Json(
        second_answer(&state, &caller, &id, true, body.reason).await?,
    ))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/override/refuse", tag = "approvals", params(("id" = String, Path)),
    request_body = AnswerRequest,
    responses((status = 200, description = "the override is dropped; the task stays open", body = super::wire::ApprovalTaskDoc),
        (status = 400, description = "a body that is not an answer (BATON-API-004)", body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 422, description = "a reason is required (BATON-API-018)", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn refuse_override(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AnswerRequest>,
) -> ApiResult<Json<ApprovalTask>> {
    Ok(Json(
        second_answer(&state, &caller, &id, false, body.reason).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodFilter {
    /// Start of the period (RFC 3339, or milliseconds since the epoch); default: 30 days
    /// before `until`.
    pub since: Option<String>,
    /// End of the period, exclusive (RFC 3339 or milliseconds); default: now.
    pub until: Option<String>,
}

/// Reads a time given as RFC 3339 or as milliseconds since the epoch.
pub(crate) fn parse_time(name: &str, s: &str) -> ApiResult<u64> {
    baton_core::time::parse_time_arg(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "`{name}`: `{s}` is not a time (RFC 3339 like 2026-11-21T00:00:00Z, or milliseconds since the epoch)"
            ))
        })
}

/// `[since, until)` of a period filter.
pub(crate) fn period(state: &AppState, f: &PeriodFilter) -> ApiResult<(u64, u64)> {
    const DEFAULT_DAYS_MS: u64 = 30 * 86_400_000;
    let until = match &f.until {
        Some(u) => parse_time("until", u)?,
        None => state.now_ms().saturating_add(1),
    };
    let since = match &f.since {
        Some(s) => parse_time("since", s)?,
        None => until.saturating_sub(DEFAULT_DAYS_MS),
    };
    if since > until {
        return Err(ApiError::invalid("`since` is after `until`"));
    }
    Ok((since, until))
}

/// Tasks read for one report at most.
const REPORT_SCAN_MAX: usize = 50_000;

pub async fn override_report(state: &AppState, f: &PeriodFilter) -> ApiResult<OverrideReport> {
    let (since, until) = period(state, f)?;
    Ok(inbox(state)
        .override_report(since, until, REPORT_SCAN_MAX)
        .await?)
}

#[utoipa::path(get, path = "/v1/overrides/report", tag = "audit", params(PeriodFilter),
    responses((status = 200, description = "overrides in the period (in effect, pending, refused) with who, why, what they replaced and their cost where the flow declares one; counted by flow, decision, person and reason", body = super::wire::OverrideReportDoc),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn overrides_report(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Query(f): Query<PeriodFilter>,
) -> ApiResult<Json<OverrideReport>> {
    Ok(Json(override_report(&state, &f).await?))
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
    /// Who did what, newest first.
    #[schema(value_type = Vec<super::wire::AuditEntryDoc>)]
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
