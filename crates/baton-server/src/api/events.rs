//! Inbound CloudEvents (structured JSON), one or a batch, through the trigger engine: validated
//! (or quarantined with the reason), deduplicated, stored, matched against the rules; and the
//! quarantine (list, get, replay).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use baton_engine::StartError;
use baton_engine::triggers::{EventOutcome, EventReport, Quarantined, RuleAction, TriggerError};
use baton_engine::{Actor, Role, RuntimeError};
use baton_store::DocQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::views::EventReceipt;
use super::{Path, Query};
use crate::problem::{ApiError, ApiResult, Code, ProblemDoc};
use crate::{AppState, Caller};

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> ApiError {
        match e {
            // A start that failed on the store is as transient as the store itself.
            TriggerError::Store(s) | TriggerError::Start(StartError::Store(s)) => s.into(),
            TriggerError::UnknownQuarantine(id) => {
                ApiError::not_found(format!("quarantined event {id}"))
            }
            TriggerError::AlreadyReplayed(id) => ApiError::new(Code::Conflict, "Already replayed")
                .detail(format!("quarantined event {id} was replayed before")),
            other => ApiError::new(Code::Internal, "Trigger failure").detail(other.to_string()),
        }
    }
}

fn field(event: &Value, k: &str) -> Option<String> {
    event.get(k).and_then(Value::as_str).map(str::to_string)
}

fn receipt(r: &EventReport) -> EventReceipt {
    let (outcome, started, quarantine_id, reason) = match &r.outcome {
        EventOutcome::Accepted { actions } => (
            "accepted",
            actions
                .iter()
                .filter_map(|a| match a {
                    RuleAction::Started { instance, .. } => Some(instance.0.clone()),
                    _ => None,
                })
                .collect(),
            None,
            None,
        ),
        EventOutcome::Unmatched { .. } => ("unmatched", Vec::new(), None, None),
        EventOutcome::Duplicate => ("duplicate", Vec::new(), None, None),
        EventOutcome::Quarantined {
            quarantine_id,
            reason,
        } => (
            "quarantined",
            Vec::new(),
            Some(quarantine_id.clone()),
            Some(reason.clone()),
        ),
    };
    EventReceipt {
        outcome: outcome.into(),
        id: r.id.clone(),
        source: r.source.clone(),
        started,
        quarantine_id,
        reason,
        echo: r.echo.as_ref().and_then(|e| serde_json::to_value(e).ok()),
    }
}

/// Takes one event (or, through the trigger engine, the raw body of one).
pub async fn ingest_one(state: &AppState, _actor: &Actor, event: Value) -> ApiResult<EventReceipt> {
    if let Some(t) = state.triggers.get() {
        let report = t.ingest_value(event).await?;
        return report
            .events
            .first()
            .map(receipt)
            .ok_or_else(|| ApiError::new(Code::Internal, "No report for the event"));
    }
    // Without a trigger engine (embedded uses): store and offer to listeners only.
    let outcome = match state.runtime.publish_event(event.clone()).await {
        Ok(true) => ("accepted", None),
        Ok(false) => ("duplicate", None),
        Err(RuntimeError::InvalidEvent(why)) => ("invalid", Some(why)),
        Err(e) => return Err(e.into()),
    };
    Ok(EventReceipt {
        outcome: outcome.0.into(),
        id: field(&event, "id"),
        source: field(&event, "source"),
        started: Vec::new(),
        quarantine_id: None,
        reason: outcome.1,
        echo: None,
    })
}

/// Raw bodies go to the engine as bytes, so that a body that is not even JSON is quarantined
/// (kept as text with the reason) rather than refused.
async fn ingest_raw(state: &AppState, body: &Bytes) -> ApiResult<Vec<EventReceipt>> {
    match state.triggers.get() {
        Some(t) => Ok(t.ingest(body).await?.events.iter().map(receipt).collect()),
        None => {
            let v: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::new(Code::InvalidRequest, "Invalid request body").detail(e.to_string())
            })?;
            let events = match v {
                Value::Array(a) => a,
                one => vec![one],
            };
            let actor = Actor::system();
            let mut out = Vec::new();
            for e in events {
                out.push(ingest_one(state, &actor, e).await?);
            }
            Ok(out)
        }
    }
}

#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = Object, description = "a CloudEvent 1.0 in structured JSON (`application/cloudevents+json` or `application/json`); a body that cannot be processed is quarantined with the reason"),
    responses((status = 202, description = "accepted, unmatched, duplicate or quarantined; see `outcome`", body = EventReceipt),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    req: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<EventReceipt>)> {
    caller.require(Role::Operator)?;
    let body = crate::body::raw_json(req, &state).await?;
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(ApiError::invalid(
            "send a batch (a JSON array) to /v1/events/batch",
        ));
    }
    let mut receipts = ingest_raw(&state, &body).await?;
    let r = receipts
        .pop()
        .ok_or_else(|| ApiError::new(Code::Internal, "No report for the event"))?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

#[utoipa::path(post, path = "/v1/events/batch", tag = "events",
    request_body(content = Vec<Object>, description = "CloudEvents in structured JSON"),
    responses((status = 202, description = "one receipt per event, in order", body = Vec<EventReceipt>),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn publish_batch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    req: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<Vec<EventReceipt>>)> {
    caller.require(Role::Operator)?;
    let body = crate::body::raw_json(req, &state).await?;
    let events: Vec<Value> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(Code::InvalidRequest, "A batch is a JSON array of events")
            .detail(e.to_string())
    })?;
    let max = state.config.limits.batch_events_max;
    if events.len() > max {
        return Err(ApiError::invalid(format!(
            "a batch holds at most {max} events; this one has {}",
            events.len()
        )));
    }
    Ok((StatusCode::ACCEPTED, Json(ingest_raw(&state, &body).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineFilter {
    pub cursor: Option<String>,
    #[param(minimum = 1)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinePage {
    /// Quarantined events, newest first.
    #[schema(value_type = Vec<super::wire::QuarantinedDoc>)]
    pub items: Vec<Quarantined>,
    pub next_cursor: Option<String>,
}

fn engine(
    state: &AppState,
) -> ApiResult<&baton_engine::triggers::Triggers<baton_store::SqliteStore>> {
    state.triggers.get().ok_or_else(|| {
        ApiError::new(Code::NotFound, "Not found").detail("this server runs without triggers")
    })
}

#[utoipa::path(get, path = "/v1/quarantine", tag = "triggers", params(QuarantineFilter),
    responses((status = 200, body = QuarantinePage), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 404, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn quarantine(
    State(state): State<Arc<AppState>>,
    _c: Caller,
    Query(f): Query<QuarantineFilter>,
) -> ApiResult<Json<QuarantinePage>> {
    let limit = super::page_limit(&state, f.limit);
    let after = super::doc_cursor(f.cursor.as_deref())?;
    let mut items = engine(&state)?
        .quarantine(&DocQuery {
            status: None,
            newest_first: true,
            after,
            limit: limit + 1,
        })
        .await?;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items
            .last()
            .map(|q| format!("{}_{}", q.received_at_ms, q.id))
    } else {
        None
    };
    Ok(Json(QuarantinePage { items, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// A corrected event to process instead of the one received.
    #[serde(default)]
    pub corrected: Option<Value>,
}

#[utoipa::path(post, path = "/v1/quarantine/{id}/replay", tag = "triggers", params(("id" = String, Path)),
    request_body(content = ReplayRequest, description = "optional"),
    responses((status = 200, body = EventReceipt), (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Json<EventReceipt>> {
    let actor = caller.require(Role::Operator)?;
    let body = crate::body::raw_json(req, &state).await?;
    let r: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(e.to_string()))?
    };
    let report = engine(&state)?.replay(&id, r.corrected.clone()).await?;
    state
        .audit(
            actor,
            "quarantine.replay",
            &id,
            json!({"corrected": r.corrected.is_some()}),
        )
        .await?;
    Ok(Json(receipt(&report)))
}
