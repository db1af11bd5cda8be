//! A provider with an idempotent side effect: `POST /ledger/effects` applies each
//! `Idempotency-Key` at most once and counts every time it was seen, so tests (crash and resume,
//! re-sends of calls whose outcome is unknown) can check that an effect happened exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{State, problem};

/// Longest scripted delay accepted, so a typo cannot hang a test run.
const DELAY_MS_MAX: u64 = 60_000;

#[derive(Debug, Clone, Copy, Default)]
struct KeyCount {
    applied: u64,
    seen: u64,
}

pub(crate) struct Ledger {
    keys: Mutex<BTreeMap<String, KeyCount>>,
    /// Requests recorded so far, for tests that act when the n-th one arrives.
    requests: watch::Sender<u64>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            keys: Mutex::default(),
            requests: watch::Sender::new(0),
        }
    }
}

impl Ledger {
    /// Records one request with `key`; returns whether this request applied the effect.
    fn record(&self, key: &str) -> (bool, KeyCount) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let count = keys.entry(key.to_string()).or_default();
        count.seen += 1;
        let fresh = count.applied == 0;
        if fresh {
            count.applied = 1;
        }
        let count = *count;
        drop(keys);
        self.requests.send_modify(|n| *n += 1);
        (fresh, count)
    }

    pub(crate) fn requests(&self) -> watch::Receiver<u64> {
        self.requests.subscribe()
    }

    pub(crate) fn report(&self) -> Value {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let map: serde_json::Map<String, Value> = keys
            .iter()
            .map(|(k, c)| (k.clone(), json!({ "applied": c.applied, "seen": c.seen })))
            .collect();
        json!({ "keys": map })
    }
}

pub(crate) fn routes(state: Arc<State>) -> Router {
    Router::new()
        .route("/effects", post(effects))
        .route(
            "/report",
            get(|AxState(s): AxState<Arc<State>>| async move { Json(s.ledger.report()) }),
        )
        .route("/ok", get(|| async { Json(json!({ "ok": true })) }))
        .with_state(state)
}

/// The effect is recorded as soon as the request arrives and the scripted delay comes after it:
/// a client that dies during the delay has had its effect applied without seeing the answer,
/// which is exactly the case a resumed instance must re-send with the same key.
/// A request without `Idempotency-Key` is refused (400): every caller of this provider is meant
/// to send one, and accepting it silently would hide the bug the ledger exists to find.
async fn effects(
    AxState(state): AxState<Arc<State>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Missing Idempotency-Key",
            "POST /ledger/effects needs an Idempotency-Key header",
        );
    };
    let delay_ms = match query.get("delay_ms").map(|d| d.parse::<u64>()) {
        None => 0,
        Some(Ok(ms)) if ms <= DELAY_MS_MAX => ms,
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Bad delay_ms",
                &format!("delay_ms must be an integer up to {DELAY_MS_MAX}"),
            );
        }
    };
    let (fresh, count) = state.ledger.record(&key);
    if delay_ms > 0 {
        scripted_delay(delay_ms).await;
    }
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({ "key": key, "applied": count.applied })),
    )
        .into_response()
}

/// Wall-clock latency is what a fake provider scripts: it is test scaffolding outside the core,
/// so the ban on `tokio::time::sleep` (which keeps time an input of the engine) does not apply.
#[expect(
    clippy::disallowed_methods,
    reason = "a fake provider's scripted latency is real time by design"
)]
async fn scripted_delay(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
