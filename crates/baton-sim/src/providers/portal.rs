//! `portal`: the customer portal. Reads are fresh (`as_of` = now); a customer's cancellation
//! takes effect at once here, while the legacy `orders` export keeps the order until tomorrow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::lock;
use crate::Shared;
use crate::faults::Plan;
use crate::http::{idempotency_key, not_found, reply};

/// Cancellations made today: order id → when (ms since the epoch, simulated).
#[derive(Default)]
pub(crate) struct State {
    cancelled: Mutex<HashMap<String, i64>>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/orders/{id}", get(status))
        .route("/orders/{id}/cancel", post(cancel))
}

fn status_json(s: &Shared, id: &str, cancelled_at: Option<i64>) -> Value {
    json!({
        "id": id,
        "status": if cancelled_at.is_some() { "cancelled" } else { "open" },
        "cancelled_at": cancelled_at.map(|t| s.clock.format(t)),
    })
}

async fn status(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    Path(id): Path<String>,
) -> Response {
    if s.world.order(&id).is_none() {
        return not_found(&format!("no order '{id}'"));
    }
    let now = s.clock.now_ms();
    let as_of = s.as_of_ms(&plan, now);
    // Stale data is data from then: a cancellation made since is not in it.
    let cancelled_at = lock(&s.live.portal.cancelled)
        .get(&id)
        .copied()
        .filter(|t| *t <= as_of);
    let mut body = status_json(&s, &id, cancelled_at);
    body["as_of"] = json!(s.clock.format(as_of));
    reply(StatusCode::OK, body)
}

/// Cancelling twice is harmless: the second answer says `changed: false`. The ledger key is the
/// `Idempotency-Key` when sent, else `cancel:{id}`.
async fn cancel(
    AxState(s): AxState<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    if s.world.order(&id).is_none() {
        return not_found(&format!("no order '{id}'"));
    }
    let key = idempotency_key(&headers).unwrap_or_else(|| format!("cancel:{id}"));
    let now = s.clock.now_ms();
    let (at, changed) = {
        let mut cancelled = lock(&s.live.portal.cancelled);
        match cancelled.get(&id) {
            Some(at) => (*at, false),
            None => {
                cancelled.insert(id.clone(), now);
                (now, true)
            }
        }
    };
    s.record_request("portal", &key, changed);
    let mut body = status_json(&s, &id, Some(at));
    body["changed"] = json!(changed);
    body["as_of"] = json!(s.clock.now_rfc3339());
    reply(StatusCode::OK, body)
}
