//! Decision records: per instance (`GET /v1/instances/{id}/decisions`), and exported over a
//! period as JSON Lines for audit (`GET /v1/decisions`, `application/x-ndjson`, one record per
//! line). Records are derived from the journals on every request (see
//! `baton_engine::decisions`); nothing is stored beside them.

use baton_engine::Features;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use baton_core::InstanceId;
use baton_engine::decisions::DecisionRecord;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::approvals::{PeriodFilter, period};
use super::{Path, Query};
use crate::problem::{ApiResult, ProblemDoc};
use crate::{AppState, Caller};

/// Instances one export looks at, at most; an export that reached it ends with a line saying so.
const EXPORT_INSTANCES_MAX: usize = 100_000;
/// Instances' worth of lines buffered between the export and a slow reader.
const EXPORT_CHANNEL_CHUNKS: usize = 16;

fn error_line(why: &str) -> Bytes {
    let mut line = serde_json::json!({ "error": why }).to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionList {
    pub instance: String,
    /// The instance's decisions, oldest first.
    #[schema(value_type = Vec<super::wire::DecisionRecordDoc>)]
    pub items: Vec<DecisionRecord>,
}

pub async fn of_instance(state: &AppState, id: &str) -> ApiResult<Vec<DecisionRecord>> {
    Ok(state
        .runtime
        .decisions()
        .of(&InstanceId(id.to_string()))
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
    // The answer streams: a task derives the records instance by instance and sends each
    // instance's lines down a small channel, so memory stays bounded whatever the period, and a
    // reader that goes away stops the work. Once the first line is sent the status is 200, so a
    // failure after it ends the stream with an `{"error": …}` line instead of a problem.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(EXPORT_CHANNEL_CHUNKS);
    let runtime = state.runtime.clone();
    let flow = f.flow.clone();
    tokio::spawn(async move {
        let ended = runtime
            .decisions()
            .export(
                since,
                until,
                flow.as_deref(),
                EXPORT_INSTANCES_MAX,
                |recs| {
                    let tx = tx.clone();
                    async move {
                        let mut chunk = Vec::new();
                        for r in recs {
                            match serde_json::to_vec(&r) {
                                Ok(line) => {
                                    chunk.extend_from_slice(&line);
                                    chunk.push(b'\n');
                                }
                                Err(e) => {
                                    let _ = tx
                                        .send(error_line(&format!("cannot encode a record: {e}")))
                                        .await;
                                    return false;
                                }
                            }
                        }
                        tx.send(Bytes::from(chunk)).await.is_ok()
                    }
                },
            )
            .await;
        let last = match ended {
            Ok((_, false)) => return,
            Ok((_, true)) => {
                serde_json::json!({"truncated": true, "instances_scanned": EXPORT_INSTANCES_MAX,
                "detail": "the export stopped at its bound: narrow the period or the flow"})
            }
            Err(e) => {
                tracing::warn!(error = %e, "the decision export stopped");
                serde_json::json!({"error": format!("the export stopped: {e}")})
            }
        };
        let mut line = last.to_string().into_bytes();
        line.push(b'\n');
        let _ = tx.send(Bytes::from(line)).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    let body = Body::from_stream(stream);
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}
