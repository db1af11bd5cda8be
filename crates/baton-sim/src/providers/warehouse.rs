//! `warehouse`: picks. A pick request is always answered `200 {accepted: true}`, but a seeded 10%
//! of them (all of them under control's `lie: true`) are not carried out: a later
//! `GET /picks/{key}` finds nothing and the ledger shows `applied: 0`. Picks honour
//! `Idempotency-Key` (the pick id is the key when none is sent); a retry of a pick that was
//! silently dropped is a new chance to do it. Completions are batched: a pick is `queued` until
//! the next quarter hour of simulated time, then `completed`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::lock;
use crate::Shared;
use crate::faults::Plan;
use crate::http::{body, idempotency_key, reply};

/// Fraction of picks accepted without being done, by nature.
pub(crate) const LIE_RATE: f64 = 0.1;

struct Pick {
    id: String,
    request: Map<String, Value>,
    created_ms: i64,
    completes_ms: i64,
}

#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Picks>,
}

#[derive(Default)]
struct Picks {
    by_key: BTreeMap<String, Pick>,
    made: u64,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/picks", post(pick))
        .route("/picks/{key}", get(find))
}

async fn pick(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let request: Map<String, Value> = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = s.clock.now_ms();
    let lie_drawn = s.draw("warehouse", |r| r.random::<f64>() < LIE_RATE);
    let (key, id, done) = {
        let mut picks = lock(&s.live.warehouse.inner);
        picks.made += 1;
        let fresh_id = format!("k-{}", picks.made);
        let key = idempotency_key(&headers).unwrap_or_else(|| fresh_id.clone());
        match picks.by_key.get(&key) {
            Some(existing) => (key, existing.id.clone(), false),
            None if plan.lie || lie_drawn => (key, fresh_id, false),
            None => {
                picks.by_key.insert(
                    key.clone(),
                    Pick {
                        id: fresh_id.clone(),
                        request,
                        created_ms: now,
                        completes_ms: s.clock.next_quarter_hour(now),
                    },
                );
                (key, fresh_id, true)
            }
        }
    };
    s.record_request("warehouse", &key, done);
    reply(
        StatusCode::OK,
        json!({ "accepted": true, "pick_id": id, "key": key }),
    )
}

async fn find(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    Path(key): Path<String>,
) -> Response {
    let as_of = s.as_of_ms(&plan, s.clock.now_ms());
    let picks = lock(&s.live.warehouse.inner);
    match picks.by_key.get(&key).filter(|p| p.created_ms <= as_of) {
        Some(p) => {
            let status = if as_of >= p.completes_ms {
                "completed"
            } else {
                "queued"
            };
            reply(
                StatusCode::OK,
                json!({
                    "exists": true,
                    "pick": {
                        "pick_id": p.id,
                        "key": key,
                        "status": status,
                        "created_at": s.clock.format(p.created_ms),
                        "completes_at": s.clock.format(p.completes_ms),
                        "request": p.request,
                    },
                    "as_of": s.clock.format(as_of),
                }),
            )
        }
        None => reply(
            StatusCode::NOT_FOUND,
            json!({ "exists": false, "key": key, "as_of": s.clock.format(as_of) }),
        ),
    }
}
