//! Flows: list, get, register (versioned) and validate; and the health probes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_engine::Role;
use baton_store::Store;

use super::Path;
use super::views::{DiagnosticView, FlowDetail, FlowSource, FlowView, Health, ValidationReport};
use crate::body::JsonBody;
use crate::problem::{ApiError, ApiResult, Code, ProblemDoc};
use crate::{AppState, Caller};

/// Flow sources are limited separately from other bodies: a flow is a document, not a payload.
const FLOW_SOURCE_BYTES_MAX: usize = 512 * 1024;

pub(crate) async fn flow_views(state: &AppState) -> ApiResult<Vec<FlowView>> {
    let records = state.runtime.store().flows().await?;
    let mut views: Vec<FlowView> = records
        .iter()
        .map(|r| FlowView {
            namespace: r.flow.namespace.clone(),
            name: r.flow.name.clone(),
            version: r.flow.version.clone(),
            hash: r.flow.hash.clone(),
            seq: r.seq,
            latest: false,
        })
        .collect();
    // "latest" is what a start without a version gets: the highest version by semantic
    // version order (the catalogue's rule).
    let catalog = state.runtime.catalog();
    for v in &mut views {
        v.latest = baton_core::FlowResolver::resolve(&**catalog, &v.namespace, &v.name, "latest")
            .is_some_and(|p| p.flow.hash == v.hash);
    }
    Ok(views)
}

#[utoipa::path(get, path = "/v1/flows", tag = "flows",
    responses((status = 200, body = Vec<FlowView>), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _c: Caller,
) -> ApiResult<Json<Vec<FlowView>>> {
    Ok(Json(flow_views(&state).await?))
}

#[utoipa::path(get, path = "/v1/flows/{namespace}/{name}/{version}", tag = "flows",
    params(("namespace" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = FlowDetail), (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path((namespace, name, version)): Path<(String, String, String)>,
) -> ApiResult<Json<FlowDetail>> {
    let views = flow_views(&state).await?;
    let flow = views
        .into_iter()
        .rfind(|v| v.namespace == namespace && v.name == name && v.version == version)
        .ok_or_else(|| ApiError::not_found(format!("flow {namespace}/{name}:{version}")))?;
    let source = state
        .runtime
        .store()
        .flow_source(&flow.hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flow {namespace}/{name}:{version}")))?;
    Ok(Json(FlowDetail { flow, source }))
}

fn diagnostics_of(
    text: &str,
    state: &AppState,
) -> Result<baton_flow::LoadedFlow, Vec<DiagnosticView>> {
    state.runtime.check_flow(text).map_err(|ds| {
        ds.into_iter()
            .map(|d| DiagnosticView {
                code: d.code,
                message: d.message,
                line: d.line,
                column: d.column,
                pointer: d.pointer,
            })
            .collect()
    })
}

#[utoipa::path(post, path = "/v1/flows/validate", tag = "flows", request_body = FlowSource,
    responses((status = 200, body = ValidationReport), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn validate(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    JsonBody(body): JsonBody<FlowSource>,
) -> ApiResult<Json<ValidationReport>> {
    let diagnostics = match diagnostics_of(&body.source, &state) {
        Ok(_) => Vec::new(),
        Err(d) => d,
    };
    Ok(Json(ValidationReport {
        valid: diagnostics.is_empty(),
        diagnostics,
    }))
}

/// Registers a flow version. The same version with the same content is accepted again (no
/// change); the same version with other content is refused: a version, once registered, is
/// immutable, so running instances and their journals keep meaning what they meant.
pub async fn register_source(state: &AppState, text: &str) -> ApiResult<(FlowView, bool)> {
    if text.len() > FLOW_SOURCE_BYTES_MAX {
        return Err(
            ApiError::new(Code::PayloadTooLarge, "Flow too large").detail(format!(
                "flow sources are limited to {FLOW_SOURCE_BYTES_MAX} bytes"
            )),
        );
    }
    let loaded = diagnostics_of(text, state).map_err(|d| {
        ApiError::new(Code::InvalidFlow, "Invalid flow")
            .detail(format!("{} problem(s) in the flow", d.len()))
            .errors(serde_json::to_value(
                d.iter()
                    .map(|d| serde_json::json!({"code": d.code, "message": d.message, "line": d.line, "column": d.column, "pointer": d.pointer}))
                    .collect::<Vec<_>>(),
            ).unwrap_or_default())
    })?;
    let doc = &loaded.workflow.document;
    let hash = baton_core::flow_hash(text);
    let existing = flow_views(state).await?;
    if let Some(same) = existing
        .iter()
        .find(|v| v.namespace == doc.namespace && v.name == doc.name && v.version == doc.version)
    {
        if same.hash == hash {
            state.runtime.register_flow(text).await?;
            return Ok((same.clone(), false));
        }
        return Err(
            ApiError::new(Code::Conflict, "Version already registered").detail(format!(
                "{}/{}:{} is registered with other content; register a new version",
                doc.namespace, doc.name, doc.version
            )),
        );
    }
    state.runtime.register_flow(text).await?;
    let views = flow_views(state).await?;
    let view = views
        .into_iter()
        .find(|v| v.hash == hash)
        .ok_or_else(|| ApiError::new(Code::Internal, "The registered flow is not listed"))?;
    Ok((view, true))
}

#[utoipa::path(post, path = "/v1/flows", tag = "flows", request_body = FlowSource,
    responses((status = 201, description = "registered", body = FlowView),
        (status = 200, description = "already registered with the same content", body = FlowView),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 409, description = "the version exists with other content", body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc),
        (status = 422, description = "the flow is invalid; `errors` lists diagnostics with line and column", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<FlowSource>,
) -> ApiResult<(StatusCode, Json<FlowView>)> {
    let actor = caller.require(Role::Operator)?;
    let (view, fresh) = register_source(&state, &body.source).await?;
    if fresh {
        state
            .audit(
                actor,
                "flow.register",
                &format!("{}/{}:{}", view.namespace, view.name, view.version),
                serde_json::json!({"hash": view.hash}),
            )
            .await?;
    }
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "the process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "the store answers", body = Health),
        (status = 503, description = "the store does not answer", body = ProblemDoc)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult<Json<Health>> {
    state
        .runtime
        .store()
        .instances(&baton_store::InstanceQuery::newest(1))
        .await?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}
