//! Scripted faults: redirects, arbitrary statuses and endpoints that fail a set number of times
//! before succeeding (for retry tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::{State, problem};

/// Calls per key of `GET /flaky/{key}`.
#[derive(Default)]
pub(crate) struct FlakyCounters {
    calls: Mutex<HashMap<String, u64>>,
}

impl FlakyCounters {
    /// Counts one call; returns its 1-based number.
    fn call(&self, key: &str) -> u64 {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let n = calls.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }

    pub(crate) fn calls(&self, key: &str) -> u64 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

pub(crate) fn routes(state: Arc<State>) -> Router {
    Router::new()
        .route("/redirect", get(redirect))
        .route("/status/{code}", get(status))
        .route("/flaky/{key}", get(flaky))
        .with_state(state)
}

async fn redirect(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("to") {
        Some(to) => (StatusCode::FOUND, [(header::LOCATION, to.clone())]).into_response(),
        None => problem(
            StatusCode::BAD_REQUEST,
            "Missing 'to'",
            "GET /redirect needs a 'to' query parameter",
        ),
    }
}

/// Informational (1xx) statuses are refused: they are not final answers in HTTP/1.1.
async fn status(Path(code): Path<String>) -> Response {
    match code
        .parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(s) => (s, Json(json!({ "status": s.as_u16() }))).into_response(),
        None => problem(
            StatusCode::BAD_REQUEST,
            "Bad status",
            &format!("'{code}' is not a status from 200 to 599"),
        ),
    }
}

/// 503 for the first `fail` calls with this key, then 200 with the number of the call.
async fn flaky(
    AxState(state): AxState<Arc<State>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fail = match query.get("fail").map(|f| f.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad fail",
                "fail must be a non-negative integer",
            );
        }
    };
    let attempt = state.flaky.call(&key);
    if attempt <= fail {
        let body = json!({ "attempt": attempt, "fail": fail });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(json!({ "attempts": attempt })).into_response()
}
