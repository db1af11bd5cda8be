//! `inventory`: stock per store and reservations. The stock of some stores comes from the nightly
//! export (`source: nightly-export`, `as_of` = last midnight, today's reservations not deducted);
//! the others are live (`as_of` = now, net of held reservations). `store-01` is always an export
//! store and `store-02` always live; the rest are seeded.
//!
//! Reservations honour `Idempotency-Key`. `GET /reservations/{key}` answers whether a reservation
//! request happened (the reconcile operation); `DELETE` releases it, and releasing twice is a
//! no-op that says so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::lock;
use crate::Shared;
use crate::faults::Plan;
use crate::http::{body, idempotency_key, not_found, problem, reply};

struct Reservation {
    id: String,
    store: String,
    sku: String,
    qty: u64,
    created_ms: i64,
    released_ms: Option<i64>,
}

impl Reservation {
    fn held_at(&self, t: i64) -> bool {
        self.created_ms <= t && self.released_ms.is_none_or(|r| r > t)
    }
}

#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Reservations>,
}

#[derive(Default)]
struct Reservations {
    by_key: BTreeMap<String, Reservation>,
    made: u64,
}

impl Reservations {
    fn held(&self, store: &str, sku: &str, t: i64) -> u64 {
        self.by_key
            .values()
            .filter(|r| r.store == store && r.sku == sku && r.held_at(t))
            .map(|r| r.qty)
            .sum()
    }
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/stock/{store}", get(stock))
        .route("/reservations", post(reserve))
        .route("/reservations/{key}", get(find).delete(release))
}

async fn stock(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    Path(store): Path<String>,
) -> Response {
    let Some(st) = s.world.store(&store) else {
        return not_found(&format!("no store '{store}' (store-01 to store-12)"));
    };
    let now = s.clock.now_ms();
    let (source, natural) = if st.nightly {
        ("nightly-export", s.clock.midnight_before(now))
    } else {
        ("live", now)
    };
    let as_of = s.as_of_ms(&plan, natural);
    let reservations = lock(&s.live.inventory.inner);
    let stock: Map<String, Value> = st
        .stock
        .iter()
        .map(|(sku, qty)| {
            let held = reservations.held(&store, sku, as_of);
            ((*sku).to_string(), json!(qty.saturating_sub(held)))
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({ "store": store, "source": source, "as_of": s.clock.format(as_of), "stock": stock }),
    )
}

#[derive(Deserialize)]
struct ReserveRequest {
    store: String,
    sku: String,
    qty: u64,
}

fn reservation_json(s: &Shared, key: &str, r: &Reservation) -> Value {
    json!({
        "reservation_id": r.id,
        "key": key,
        "store": r.store,
        "sku": r.sku,
        "qty": r.qty,
        "status": if r.released_ms.is_some() { "released" } else { "held" },
        "created_at": s.clock.format(r.created_ms),
        "released_at": r.released_ms.map(|t| s.clock.format(t)),
    })
}

/// A repeated key answers the first reservation (`200`) whatever the new body says.
async fn reserve(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let req: ReserveRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some(store) = s.world.store(&req.store) else {
        return not_found(&format!("no store '{}'", req.store));
    };
    let Some(on_hand) = store.stock.get(req.sku.as_str()).copied() else {
        return not_found(&format!("store '{}' carries no '{}'", req.store, req.sku));
    };
    if req.qty == 0 {
        return problem(StatusCode::BAD_REQUEST, "Bad qty", "qty must be at least 1");
    }
    let now = s.clock.now_ms();
    let outcome = {
        let mut inv = lock(&s.live.inventory.inner);
        let id = format!("r-{}", inv.made + 1);
        let key = idempotency_key(&headers).unwrap_or_else(|| id.clone());
        if let Some(r) = inv.by_key.get(&key) {
            Ok((key.clone(), false, reservation_json(&s, &key, r)))
        } else {
            let available = on_hand.saturating_sub(inv.held(&req.store, &req.sku, now));
            if available < req.qty {
                Err((key, available))
            } else {
                inv.made += 1;
                let r = Reservation {
                    id,
                    store: req.store,
                    sku: req.sku,
                    qty: req.qty,
                    created_ms: now,
                    released_ms: None,
                };
                let answer = reservation_json(&s, &key, &r);
                inv.by_key.insert(key.clone(), r);
                Ok((key, true, answer))
            }
        }
    };
    match outcome {
        Ok((key, fresh, answer)) => {
            s.record_request("inventory", &key, fresh);
            let status = if fresh {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            reply(status, answer)
        }
        Err((key, available)) => {
            s.record_request("inventory", &key, false);
            problem(
                StatusCode::CONFLICT,
                "Not enough stock",
                &format!("only {available} available: nothing reserved"),
            )
        }
    }
}

async fn find(AxState(s): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let inv = lock(&s.live.inventory.inner);
    let as_of = s.clock.now_rfc3339();
    match inv.by_key.get(&key) {
        Some(r) => reply(
            StatusCode::OK,
            json!({ "applied": true, "reservation": reservation_json(&s, &key, r), "as_of": as_of }),
        ),
        None => reply(
            StatusCode::NOT_FOUND,
            json!({ "applied": false, "key": key, "as_of": as_of }),
        ),
    }
}

async fn release(AxState(s): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let now = s.clock.now_ms();
    let changed = {
        let mut inv = lock(&s.live.inventory.inner);
        match inv.by_key.get_mut(&key) {
            None => {
                return reply(
                    StatusCode::NOT_FOUND,
                    json!({ "applied": false, "key": key, "released": false }),
                );
            }
            Some(r) if r.released_ms.is_some() => false,
            Some(r) => {
                r.released_ms = Some(now);
                true
            }
        }
    };
    s.record_compensation("inventory", &key, changed);
    let note = if changed {
        "released"
    } else {
        "already released: nothing done"
    };
    reply(
        StatusCode::OK,
        json!({ "key": key, "released": true, "changed": changed, "note": note }),
    )
}
