//! Inbound CloudEvents (structured JSON), one or a batch.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use baton_runtime::{Actor, Role, RuntimeError};
use serde_json::Value;

use super::views::EventReceipt;
use crate::body::JsonBody;
use crate::problem::{ApiError, ApiResult, ProblemDoc};
use crate::{AppState, Caller};

fn field(event: &Value, k: &str) -> Option<String> {
    event.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Takes one event: stored durably (deduplicated) and offered to listeners, or reported
/// invalid with the reason.
pub async fn ingest_one(state: &AppState, _actor: &Actor, event: Value) -> ApiResult<EventReceipt> {
    let receipt = |outcome: &str, reason: Option<String>| EventReceipt {
        outcome: outcome.into(),
        id: field(&event, "id"),
        source: field(&event, "source"),
        started: Vec::new(),
        quarantine_id: None,
        reason,
    };
    match state.runtime.publish_event(event.clone()).await {
        Ok(true) => {
            state.metrics.event("accepted");
            Ok(receipt("accepted", None))
        }
        Ok(false) => {
            state.metrics.event("duplicate");
            Ok(receipt("duplicate", None))
        }
        Err(RuntimeError::InvalidEvent(why)) => {
            state.metrics.event("invalid");
            Ok(receipt("invalid", Some(why)))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = Object, description = "a CloudEvent 1.0 in structured JSON (`application/cloudevents+json` or `application/json`)"),
    responses((status = 202, description = "accepted, duplicate or quarantined; see `outcome`", body = EventReceipt),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 413, body = ProblemDoc), (status = 415, body = ProblemDoc)),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(event): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<EventReceipt>)> {
    let actor = caller.require(Role::Operator)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ingest_one(&state, actor, event).await?),
    ))
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
    JsonBody(events): JsonBody<Vec<Value>>,
) -> ApiResult<(StatusCode, Json<Vec<EventReceipt>>)> {
    let actor = caller.require(Role::Operator)?;
    let max = state.config.limits.batch_events_max;
    if events.len() > max {
        return Err(ApiError::invalid(format!(
            "a batch holds at most {max} events; this one has {}",
            events.len()
        )));
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        out.push(ingest_one(&state, actor, e).await?);
    }
    Ok((StatusCode::ACCEPTED, Json(out)))
}
