//! `carrier`: the partner carrier for overflow. Bookings honour `Idempotency-Key`: a second
//! `POST` with the same key answers the same booking (`200` instead of `201`) and applies nothing.
//! `GET /bookings/{key}` reconciles a call whose answer was lost; `DELETE` cancels (the ledger's
//! `compensated`). The natural limit of 30 requests a second is enforced by the gate. A booking
//! of more pallets than a trailer takes (26) is refused with `422`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::lock;
use crate::Shared;
use crate::http::{body, idempotency_key, problem, reply};

/// The most pallets one booking can carry.
const TRAILER_PALLETS: u64 = 26;

struct Booking {
    id: String,
    request: Map<String, Value>,
    booked_ms: i64,
    cancelled_ms: Option<i64>,
}

#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Bookings>,
}

#[derive(Default)]
struct Bookings {
    by_key: BTreeMap<String, Booking>,
    made: u64,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/bookings", post(book))
        .route("/bookings/{key}", get(find).delete(cancel))
}

fn booking_json(s: &Shared, key: &str, b: &Booking) -> Value {
    json!({
        "booking_id": b.id,
        "key": key,
        "status": if b.cancelled_ms.is_some() { "cancelled" } else { "booked" },
        "booked_at": s.clock.format(b.booked_ms),
        "cancelled_at": b.cancelled_ms.map(|t| s.clock.format(t)),
        "request": b.request,
    })
}

async fn book(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let request: Map<String, Value> = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    // A trailer takes 26 pallets: a larger load is refused whatever the key, and nothing is booked.
    if let Some(pallets) = request.get("pallets").and_then(Value::as_u64)
        && pallets > TRAILER_PALLETS
    {
        let key = idempotency_key(&headers).unwrap_or_default();
        s.record_request("carrier", &key, false);
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Over capacity",
            &format!(
                "{pallets} pallets: a trailer takes at most {TRAILER_PALLETS}; nothing booked"
            ),
        );
    }
    let now = s.clock.now_ms();
    let (key, fresh, answer) = {
        let mut bookings = lock(&s.live.carrier.inner);
        let id = format!("b-{}", bookings.made + 1);
        let key = idempotency_key(&headers).unwrap_or_else(|| id.clone());
        let fresh = !bookings.by_key.contains_key(&key);
        if fresh {
            bookings.made += 1;
            bookings.by_key.insert(
                key.clone(),
                Booking {
                    id,
                    request,
                    booked_ms: now,
                    cancelled_ms: None,
                },
            );
        }
        let answer = bookings
            .by_key
            .get(&key)
            .map(|b| booking_json(&s, &key, b))
            .unwrap_or(Value::Null);
        (key, fresh, answer)
    };
    s.record_request("carrier", &key, fresh);
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    reply(status, answer)
}

async fn find(AxState(s): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let bookings = lock(&s.live.carrier.inner);
    match bookings.by_key.get(&key) {
        Some(b) => reply(
            StatusCode::OK,
            json!({ "applied": true, "booking": booking_json(&s, &key, b), "as_of": s.clock.now_rfc3339() }),
        ),
        None => reply(
            StatusCode::NOT_FOUND,
            json!({ "applied": false, "key": key, "as_of": s.clock.now_rfc3339() }),
        ),
    }
}

/// Cancelling a cancelled booking changes nothing and says so (`changed: false`).
async fn cancel(AxState(s): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let now = s.clock.now_ms();
    let changed = {
        let mut bookings = lock(&s.live.carrier.inner);
        match bookings.by_key.get_mut(&key) {
            None => {
                return reply(
                    StatusCode::NOT_FOUND,
                    json!({ "applied": false, "key": key, "cancelled": false }),
                );
            }
            Some(b) if b.cancelled_ms.is_some() => false,
            Some(b) => {
                b.cancelled_ms = Some(now);
                true
            }
        }
    };
    s.record_compensation("carrier", &key, changed);
    let note = if changed {
        "cancelled"
    } else {
        "already cancelled: nothing done"
    };
    reply(
        StatusCode::OK,
        json!({ "key": key, "cancelled": true, "changed": changed, "note": note }),
    )
}
