//! Instances: start (idempotent with `Idempotency-Key`), list with filters and a cursor, get with
//! the journal, cancel, suspend, resume and signal.

use baton_engine::Features;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_core::{FlowResolver, InstanceId, Program};
use baton_engine::{Actor, Role};
use baton_store::{DocStore, DocWrite, Expect, InstanceQuery, InstanceRecord, Store, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::views::{
    InstanceDetail, InstanceFilter, InstancePage, InstanceView, ReasonRequest, StartRequest,
    StatusChange, StatusView,
};
use super::{Path, Query};
use crate::body::JsonBody;
use crate::problem::{ApiError, ApiResult, Code, ProblemDoc};
use crate::{AppState, Caller};

/// An unfinished instance that has not changed for this long is "stuck".
pub const STUCK_AFTER_MS: u64 = 15 * 60 * 1000;
const PAGE_DEFAULT: usize = 50;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 200;
/// Start keys are kept in the document store under this kind.
const START_KEY_KIND: &str = "start-key";

pub enum StartOutcome {
    Created(InstanceRecord),
    /// The same `Idempotency-Key` and request were seen before: this is that instance.
    Replayed(InstanceRecord),
}

fn resolve_program(state: &AppState, req: &StartRequest) -> ApiResult<Arc<Program>> {
    let version = req.version.as_deref().unwrap_or("latest");
    let catalog = state.runtime.catalog();
    let namespace = match &req.namespace {
        Some(ns) => ns.clone(),
        None => {
            let mut namespaces = catalog.namespaces_of(&req.flow);
            namespaces.dedup();
            match namespaces.len() {
                0 => return Err(ApiError::not_found(format!("flow `{}`", req.flow))),
                1 => namespaces.remove(0),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "flow `{}` exists in several namespaces ({}); say which",
                        req.flow,
                        namespaces.join(", ")
                    )));
                }
            }
        }
    };
    catalog
        .resolve(&namespace, &req.flow, version)
        .ok_or_else(|| ApiError::not_found(format!("flow {namespace}/{}:{version}", req.flow)))
}

fn fingerprint(req: &StartRequest, program: &Program) -> String {
    let mut h = Sha256::new();
    h.update(program.flow.hash.as_bytes());
    h.update(b"\n");
    h.update(
        req.input
            .clone()
            .unwrap_or(Value::Null)
            .to_string()
            .as_bytes(),
    );
    hex::encode(&h.finalize()[..16])
}

async fn record(state: &AppState, id: &InstanceId) -> ApiResult<InstanceRecord> {
    state
        .runtime
        .store()
        .instance(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("instance {id}")))
}

/// Starts an instance; with a key, at most one instance is started per key and request.
/// A start whose input breaks the flow's input schema is refused before anything is durable:
/// 400 with one error per offending value (its JSON Pointer and why), instead of an instance
/// that faults at once.
fn refuse_bad_input(program: &baton_core::Program, input: &Value) -> ApiResult<()> {
    let errors = program.input_errors(input).map_err(|p| {
        ApiError::new(Code::InvalidFlow, "Invalid input schema").detail(p.to_string())
    })?;
    if errors.is_empty() {
        return Ok(());
    }
    let first = &errors[0];
    let at = if first.pointer.is_empty() {
        "the input"
    } else {
        first.pointer.as_str()
    };
    Err(ApiError::new(
        Code::InvalidRequest,
        "Input does not match the flow's schema",
    )
    .detail(format!(
        "{} problem(s); the first, at {at}: {}",
        errors.len(),
        first.message
    ))
    .errors(serde_json::to_value(&errors).unwrap_or_default()))
}

pub async fn start_instance(
    state: &AppState,
    actor: &Actor,
    req: StartRequest,
    key: Option<String>,
) -> ApiResult<StartOutcome> {
    let program = resolve_program(state, &req)?;
    let input = req.input.clone().unwrap_or_else(|| json!({}));
    refuse_bad_input(&program, &input)?;
    let Some(key) = key else {
        let id = state.runtime.start(program.clone(), input).await?;
        audit_start(state, actor, &id, &program, None).await?;
        return Ok(StartOutcome::Created(record(state, &id).await?));
    };
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_CHARS_MAX {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key must have 1 to {IDEMPOTENCY_KEY_CHARS_MAX} characters"
        )));
    }
    // One idempotent start at a time: two requests with one key must not both start.
    let _guard = state.start_lock.lock().await;
    let print = fingerprint(&req, &program);
    let fresh_id = InstanceId(uuid::Uuid::now_v7().to_string());
    let claim = state
        .runtime
        .store()
        .put_doc(DocWrite {
            kind: START_KEY_KIND.into(),
            id: key.clone(),
            status: "used".into(),
            at_ms: state.now_ms(),
            body: json!({"instance": fresh_id.0, "fingerprint": print, "by": actor.name}),
            expect: Expect::Absent,
        })
        .await;
    let id = match claim {
        Ok(_) => fresh_id,
        Err(StoreError::DocConflict { .. }) => {
            let doc = state
                .runtime
                .store()
                .doc(START_KEY_KIND, &key)
                .await?
                .ok_or_else(|| ApiError::new(Code::Conflict, "Idempotency key in flux"))?;
            if doc.body.get("fingerprint").and_then(Value::as_str) != Some(print.as_str()) {
                return Err(ApiError::new(
                    Code::IdempotencyKeyReused,
                    "Idempotency key reused with another request",
                )
                .detail("this Idempotency-Key was used to start another flow or input"));
            }
            let id = InstanceId(
                doc.body
                    .get("instance")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            );
            if let Some(rec) = state.runtime.store().instance(&id).await? {
                return Ok(StartOutcome::Replayed(rec));
            }
            // The key was claimed but the start did not become durable (a crash in between):
            // start it now under the claimed id.
            id
        }
        Err(e) => return Err(e.into()),
    };
    state
        .runtime
        .start_with_id(id.clone(), program.clone(), input)
        .await?;
    audit_start(state, actor, &id, &program, Some(&key)).await?;
    Ok(StartOutcome::Created(record(state, &id).await?))
}

async fn audit_start(
    state: &AppState,
    actor: &Actor,
    id: &InstanceId,
    program: &Program,
    key: Option<&str>,
) -> ApiResult<()> {
    let f = &program.flow;
    state
        .audit(
            actor,
            "instance.start",
            &id.0,
            json!({"flow": format!("{}/{}:{}", f.namespace, f.name, f.version), "idempotency_key": key}),
        )
        .await
}

#[utoipa::path(post, path = "/v1/instances", tag = "instances", request_body = StartRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "At most one instance is started per key; a retry returns it")),
    responses((status = 201, description = "started (durably)", body = InstanceView),
        (status = 200, description = "an earlier start with the same Idempotency-Key", body = InstanceView),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, description = "no such flow", body = ProblemDoc), (status = 413, body = ProblemDoc),
        (status = 415, body = ProblemDoc),
        (status = 422, description = "the key was used for another request", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(req): JsonBody<StartRequest>,
) -> ApiResult<Response> {
    let actor = caller.require(Role::Operator)?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key must be visible ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let (status, rec) = match start_instance(&state, actor, req, key).await? {
        StartOutcome::Created(r) => (StatusCode::CREATED, r),
        StartOutcome::Replayed(r) => (StatusCode::OK, r),
    };
    let mut resp = (status, Json(InstanceView::from(&rec))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/instances/{}", rec.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// One page of instances as the filter says (the `stuck` filter reads ahead a bounded number
/// of pages to fill the page).
pub(crate) async fn list_page(
    state: &AppState,
    filter: &InstanceFilter,
) -> ApiResult<InstancePage> {
    let limit = (filter.limit.map(|l| l as usize).unwrap_or(PAGE_DEFAULT))
        .clamp(1, state.config.limits.list_limit_max);
    let mut query = InstanceQuery {
        status: filter.status.map(StatusView::to_status),
        flow: filter.flow.clone(),
        version: filter.version.clone(),
        before: filter.cursor.clone().map(InstanceId),
        limit: limit + 1,
    };
    let stuck = filter.stuck.unwrap_or(false);
    let now = state.now_ms();
    let mut items: Vec<InstanceRecord> = Vec::new();
    let mut more = false;
    for _ in 0..20 {
        let page = state.runtime.store().instances(&query).await?;
        let exhausted = page.len() <= limit;
        let last = page.last().map(|r| r.id.clone());
        for r in page {
            let is_stuck =
                !r.status.is_terminal() && now.saturating_sub(r.updated_at_ms) >= STUCK_AFTER_MS;
            if !stuck || is_stuck {
                items.push(r);
            }
        }
        if items.len() > limit {
            more = true;
            break;
        }
        if exhausted || !stuck {
            more = !exhausted;
            break;
        }
        query.before = last;
    }
    more |= items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(|r| r.id.0.clone())
    } else {
        None
    };
    Ok(InstancePage {
        items: items.iter().map(InstanceView::from).collect(),
        next_cursor,
    })
}

#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(InstanceFilter),
    responses((status = 200, body = InstancePage), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Query(filter): Query<InstanceFilter>,
) -> ApiResult<Json<InstancePage>> {
    Ok(Json(list_page(&state, &filter).await?))
}

pub(crate) async fn detail(state: &AppState, id: &str) -> ApiResult<InstanceDetail> {
    let id = InstanceId(id.to_string());
    let rec = record(state, &id).await?;
    let journal = state.runtime.store().journal(&id).await?;
    let max = state.config.limits.journal_entries_max;
    let truncated = journal.len() > max;
    Ok(InstanceDetail {
        instance: InstanceView::from(&rec),
        journal: journal
            .iter()
            .take(max)
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect(),
        journal_truncated: truncated,
        shadow: state.runtime.shadows().mark_of(&id).await?,
    })
}

#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path)),
    responses((status = 200, body = InstanceDetail), (status = 401, body = ProblemDoc), (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<InstanceDetail>> {
    Ok(Json(detail(&state, &id).await?))
}

#[utoipa::path(post, path = "/v1/instances/{id}/cancel", tag = "instances",
    params(("id" = String, Path)), request_body(content = ReasonRequest, description = "optional"),
    responses((status = 200, body = StatusChange), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, description = "the instance has already ended, or is undoing its effects (compensation) and ends when they are undone", body = ProblemDoc), (status = 415, body = ProblemDoc),
        (status = 503, description = "the store could not make the request durable; try again", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<StatusChange>> {
    let actor = caller.require(Role::Operator)?;
    let body = crate::body::optional_json::<ReasonRequest>(req, &state).await?;
    let reason = body
        .reason
        .unwrap_or_else(|| "cancelled through the API".into());
    let iid = InstanceId(id.clone());
    let status = state.runtime.cancel(&iid, &reason, &actor.name).await?;
    state
        .audit(actor, "instance.cancel", &id, json!({"reason": reason}))
        .await?;
    Ok(Json(StatusChange {
        id,
        status: StatusView::of(status),
    }))
}

#[utoipa::path(post, path = "/v1/instances/{id}/suspend", tag = "instances",
    params(("id" = String, Path)), request_body(content = ReasonRequest, description = "optional"),
    responses((status = 200, body = StatusChange), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 415, body = ProblemDoc), (status = 503, description = "the store could not make the request durable; try again", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn suspend(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<StatusChange>> {
    let actor = caller.require(Role::Operator)?;
    let body = crate::body::optional_json::<ReasonRequest>(req, &state).await?;
    let iid = InstanceId(id.clone());
    let status = state
        .runtime
        .suspend(&iid, &actor.name, body.reason.as_deref())
        .await?;
    state
        .audit(
            actor,
            "instance.suspend",
            &id,
            json!({"reason": body.reason}),
        )
        .await?;
    Ok(Json(StatusChange {
        id,
        status: StatusView::of(status),
    }))
}

#[utoipa::path(post, path = "/v1/instances/{id}/resume", tag = "instances",
    params(("id" = String, Path)),
    responses((status = 200, body = StatusChange), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc), (status = 503, description = "the store could not make the request durable; try again", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusChange>> {
    let actor = caller.require(Role::Operator)?;
    let iid = InstanceId(id.clone());
    let status = state.runtime.unsuspend(&iid, &actor.name).await?;
    state
        .audit(actor, "instance.resume", &id, Value::Null)
        .await?;
    Ok(Json(StatusChange {
        id,
        status: StatusView::of(status),
    }))
}

#[utoipa::path(post, path = "/v1/instances/{id}/signal", tag = "instances",
    params(("id" = String, Path)),
    request_body(content = Object, description = "a CloudEvent 1.0 in structured JSON; only this instance's listeners receive it"),
    responses((status = 202, description = "stored for the instance", body = super::views::EventReceipt),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc), (status = 413, body = ProblemDoc),
        (status = 415, body = ProblemDoc), (status = 422, description = "not a valid CloudEvent", body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn signal(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(event): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<super::views::EventReceipt>)> {
    let actor = caller.require(Role::Operator)?;
    let iid = InstanceId(id.clone());
    let fresh = state.runtime.signal(&iid, event.clone()).await?;
    let field = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_string);
    state
        .audit(
            actor,
            "instance.signal",
            &id,
            json!({"event": {"source": field("source"), "id": field("id"), "type": field("type")}}),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(super::views::EventReceipt {
            outcome: if fresh { "accepted" } else { "duplicate" }.into(),
            id: field("id"),
            source: field("source"),
            started: Vec::new(),
            quarantine_id: None,
            reason: None,
            echo: None,
        }),
    ))
}
