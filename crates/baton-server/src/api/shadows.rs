//! Shadow runs: register a candidate flow version as the shadow of a live version or of a legacy
//! system (admin), post the legacy system's decisions (operator), read cases and the agreement
//! report (viewer).

use baton_engine::Features;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_engine::Role;
use baton_engine::shadow::{LegacyDecision, LiveSide, Registration, Report, ShadowError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{Path, Query};
use crate::body::JsonBody;
use crate::problem::{ApiError, ApiResult, Code, ProblemDoc};
use crate::{AppState, Caller};

impl From<ShadowError> for ApiError {
    fn from(e: ShadowError) -> ApiError {
        match e {
            ShadowError::NotFound(what) => ApiError::not_found(format!("shadow {what}")),
            ShadowError::Invalid(why) => ApiError::invalid(why),
            ShadowError::Conflict(why) => ApiError::new(Code::Conflict, "Conflict").detail(why),
            ShadowError::Store(s) => s.into(),
            ShadowError::Start(r) => r.into(),
            other => ApiError::new(Code::Internal, "Internal error").detail(other.to_string()),
        }
    }
}

/// A flow version, by name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowVersion {
    /// Default: the flow's only namespace.
    pub namespace: Option<String>,
    pub flow: String,
    pub version: String,
}

/// What the candidate runs beside: a live flow version, or a legacy system.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveRequest {
    /// Every start of this version gets a shadow.
    pub flow: Option<FlowVersion>,
    /// The legacy system whose decisions are posted to `/v1/shadows/{name}/decisions`.
    pub legacy: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterShadow {
    /// 1 to 100 letters, digits, `-`, `_`, `.`.
    pub name: String,
    pub candidate: FlowVersion,
    pub live: LiveRequest,
    /// Output fields to compare (`.action`, `route.driver`); default: every field.
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowList {
    #[schema(value_type = Vec<super::wire::ShadowRegistrationDoc>)]
    pub items: Vec<Registration>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodFilter {
    /// Start of the period (RFC 3339 or ms since the epoch), inclusive; default: the beginning.
    pub since: Option<String>,
    /// End of the period, exclusive; default: now and later.
    pub until: Option<String>,
}

/// A legacy decision, as posted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyDecisionRequest {
    /// Unique within the shadow; posting it again is idempotent.
    pub case: String,
    /// What the legacy system decided on: the shadow's input.
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// What it decided: compared with the shadow's output.
    #[schema(value_type = Object)]
    pub decision: Value,
    /// When it decided (ms since the epoch); the case's time in reports. Default: now.
    pub decided_at_ms: Option<u64>,
    /// Or the same as RFC 3339 (both may be given when they agree).
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
}

fn namespace_of(state: &AppState, v: &FlowVersion) -> ApiResult<String> {
    if let Some(ns) = &v.namespace {
        return Ok(ns.clone());
    }
    let mut namespaces = state.runtime.catalog().namespaces_of(&v.flow);
    namespaces.dedup();
    match namespaces.len() {
        0 => Err(ApiError::not_found(format!("flow `{}`", v.flow))),
        1 => Ok(namespaces.remove(0)),
        _ => Err(ApiError::invalid(format!(
            "flow `{}` exists in several namespaces ({}); say which",
            v.flow,
            namespaces.join(", ")
        ))),
    }
}

fn time_param(name: &str, s: &Option<String>) -> ApiResult<Option<u64>> {
    s.as_deref()
        .map(|t| super::approvals::parse_time(name, t))
        .transpose()
}

#[utoipa::path(get, path = "/v1/shadows", tag = "shadows",
    responses((status = 200, body = ShadowList), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<Arc<AppState>>, _c: Caller) -> ApiResult<Json<ShadowList>> {
    Ok(Json(ShadowList {
        items: state.runtime.shadows().list().await?,
    }))
}

/// Registers a shadow (admin). Registering the same again answers 200; another candidate,
/// live side or field list under a taken name is a conflict.
#[utoipa::path(post, path = "/v1/shadows", tag = "shadows", request_body = RegisterShadow,
    responses((status = 201, body = super::wire::ShadowRegistrationDoc), (status = 200, body = super::wire::ShadowRegistrationDoc), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(req): JsonBody<RegisterShadow>,
) -> ApiResult<(StatusCode, Json<Registration>)> {
    let actor = caller.require(Role::Admin)?;
    let live = match (&req.live.flow, &req.live.legacy) {
        (Some(f), None) => LiveSide::Flow {
            namespace: namespace_of(&state, f)?,
            name: f.flow.clone(),
            version: f.version.clone(),
        },
        (None, Some(system)) => LiveSide::Legacy {
            system: system.clone(),
        },
        _ => {
            return Err(ApiError::invalid(
                "`live` names either a `flow` ({flow, version}) or a `legacy` system, not both",
            ));
        }
    };
    let ns = namespace_of(&state, &req.candidate)?;
    let (reg, created) = state
        .runtime
        .shadows()
        .register(
            &req.name,
            (&ns, &req.candidate.flow, &req.candidate.version),
            live,
            req.fields,
            &actor.name,
        )
        .await?;
    if created {
        state
            .audit(
                actor,
                "shadow.register",
                &reg.name,
                json!({"candidate": reg.candidate, "live": reg.live, "fields": reg.fields}),
            )
            .await?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reg)))
}

#[utoipa::path(get, path = "/v1/shadows/{name}", tag = "shadows", params(("name" = String, Path)),
    responses((status = 200, body = super::wire::ShadowRegistrationDoc), (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Registration>> {
    Ok(Json(state.runtime.shadows().get(&name).await?))
}

/// Stops a shadow (admin): live starts no longer get one and legacy decisions are refused; its
/// cases and report stay. Stopping it again answers the same.
#[utoipa::path(delete, path = "/v1/shadows/{name}", tag = "shadows", params(("name" = String, Path)),
    responses((status = 200, body = super::wire::ShadowRegistrationDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn stop(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Registration>> {
    let actor = caller.require(Role::Admin)?;
    let (reg, changed) = state.runtime.shadows().retire(&name, &actor.name).await?;
    if changed {
        state
            .audit(
                actor,
                "shadow.stop",
                &name,
                json!({"candidate": reg.candidate}),
            )
            .await?;
    }
    Ok(Json(reg))
}

/// Posts a legacy system's decision with its inputs (operator): the shadow runs on the inputs
/// and is compared with the decision once it ends. 201 for a new case, 200 for a repeat.
#[utoipa::path(post, path = "/v1/shadows/{name}/decisions", tag = "shadows", params(("name" = String, Path)),
    request_body = LegacyDecisionRequest,
    responses((status = 201, body = super::wire::ShadowCaseDoc), (status = 200, body = super::wire::ShadowCaseDoc), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn post_decision(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<LegacyDecisionRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let actor = caller.require(Role::Operator)?;
    let decided_at_ms = match (
        req.decided_at_ms,
        time_param("decided_at", &req.decided_at)?,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid(format!(
                "`decided_at_ms` ({a}) and `decided_at` ({b} ms) name different times"
            )));
        }
        (a, b) => a.or(b),
    };
    let decision = LegacyDecision {
        case: req.case,
        inputs: req.inputs,
        decision: req.decision,
        decided_at_ms,
        decided_by: req.decided_by,
    };
    let case = decision.case.clone();
    let (view, created) = state
        .runtime
        .shadows()
        .post_legacy(&name, decision, &actor.name)
        .await?;
    if created {
        state
            .audit(
                actor,
                "shadow.legacy_decision",
                &format!("{name}/{case}"),
                json!({"shadow_instance": view["shadow"]["instance"]}),
            )
            .await?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[utoipa::path(get, path = "/v1/shadows/{name}/cases/{case}", tag = "shadows",
    params(("name" = String, Path), ("case" = String, Path)),
    responses((status = 200, body = super::wire::ShadowCaseDoc), (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn case(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path((name, case)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.runtime.shadows().case(&name, &case).await?))
}

/// The report of a period: cases, compared, agreed, agreement rate, differences per field, and
/// each differing case with the rules that fired on each side.
pub async fn report_of(state: &AppState, name: &str, f: &PeriodFilter) -> ApiResult<Report> {
    let since = time_param("since", &f.since)?;
    let until = time_param("until", &f.until)?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ApiError::invalid("`since` is after `until`"));
    }
    Ok(state.runtime.shadows().report(name, since, until).await?)
}

#[utoipa::path(get, path = "/v1/shadows/{name}/report", tag = "shadows",
    params(("name" = String, Path), PeriodFilter),
    responses((status = 200, body = super::wire::ShadowReportDoc), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn report(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path(name): Path<String>,
    Query(f): Query<PeriodFilter>,
) -> ApiResult<Json<Report>> {
    Ok(Json(report_of(&state, &name, &f).await?))
}
