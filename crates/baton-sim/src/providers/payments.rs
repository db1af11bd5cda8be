//! `payments`: charges and refunds. Charges and API refunds honour `Idempotency-Key`; a refund
//! that names the charge it undoes (`charge: KEY`) counts as that charge's compensation in the
//! ledger. A person can also refund by hand (`POST /refunds/manual`, recorded in the ledger as
//! `manual:{refund_id}`), and `GET /refunds?order=` lists every refund of an order, whoever made
//! it. Amounts are rounded to cents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::lock;
use crate::Shared;
use crate::http::{body, idempotency_key, not_found, problem, reply};

struct Refund {
    id: String,
    key: String,
    order: String,
    cents: i64,
    by: &'static str,
    at_ms: i64,
}

struct Charge {
    id: String,
    order: String,
    cents: i64,
    at_ms: i64,
}

#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Vec<Refund>>,
    charges: Mutex<HashMap<String, Charge>>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/charges", post(charge))
        .route("/charges/{key}", get(find_charge))
        .route("/refunds", post(refund).get(list))
        .route("/refunds/manual", post(by_hand))
}

#[derive(Deserialize)]
struct RefundRequest {
    order: String,
    amount: f64,
    /// The key of the charge this refund undoes, if any.
    #[serde(default)]
    charge: Option<String>,
}

fn charge_json(s: &Shared, key: &str, c: &Charge) -> Value {
    json!({
        "charge_id": c.id,
        "key": key,
        "order": c.order,
        "amount": money(c.cents),
        "at": s.clock.format(c.at_ms),
    })
}

/// A repeated key answers the first charge (`200`) and charges nothing.
async fn charge(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (req, cents) = match check(&s, &bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = s.clock.now_ms();
    let (key, fresh, answer) = {
        let mut charges = lock(&s.live.payments.charges);
        let id = format!("ch-{}", charges.len() + 1);
        let key = idempotency_key(&headers).unwrap_or_else(|| id.clone());
        let fresh = !charges.contains_key(&key);
        let c = charges.entry(key.clone()).or_insert(Charge {
            id,
            order: req.order,
            cents,
            at_ms: now,
        });
        (key.clone(), fresh, charge_json(&s, &key, c))
    };
    s.record_request("payments", &key, fresh);
    reply(
        if fresh {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        answer,
    )
}

async fn find_charge(AxState(s): AxState<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let charges = lock(&s.live.payments.charges);
    match charges.get(&key) {
        Some(c) => reply(
            StatusCode::OK,
            json!({"applied": true, "charge": charge_json(&s, &key, c), "as_of": s.clock.now_rfc3339()}),
        ),
        None => reply(
            StatusCode::NOT_FOUND,
            json!({"applied": false, "key": key, "as_of": s.clock.now_rfc3339()}),
        ),
    }
}

fn money(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

fn refund_json(s: &Shared, r: &Refund) -> Value {
    json!({
        "refund_id": r.id,
        "key": r.key,
        "order": r.order,
        "amount": money(r.cents),
        "by": r.by,
        "at": s.clock.format(r.at_ms),
    })
}

/// Checks the request; the amount in cents.
fn check(s: &Shared, bytes: &Bytes) -> Result<(RefundRequest, i64), Box<Response>> {
    let req: RefundRequest = body(bytes)?;
    if s.world.order(&req.order).is_none() {
        return Err(Box::new(not_found(&format!("no order '{}'", req.order))));
    }
    if !(req.amount.is_finite() && req.amount > 0.0 && req.amount < 1e9) {
        return Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "Bad amount",
            "amount must be a positive number of dollars",
        )));
    }
    let cents = (req.amount * 100.0).round() as i64;
    Ok((req, cents))
}

async fn refund(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let (req, cents) = match check(&s, &bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = s.clock.now_ms();
    let undoes = req.charge.clone();
    let (key, fresh, answer) = {
        let mut refunds = lock(&s.live.payments.inner);
        let id = format!("rf-{}", refunds.len() + 1);
        let key = idempotency_key(&headers).unwrap_or_else(|| id.clone());
        match refunds.iter().find(|r| r.key == key) {
            Some(r) => (key, false, refund_json(&s, r)),
            None => {
                let r = Refund {
                    id,
                    key: key.clone(),
                    order: req.order,
                    cents,
                    by: "api",
                    at_ms: now,
                };
                let answer = refund_json(&s, &r);
                refunds.push(r);
                (key, true, answer)
            }
        }
    };
    s.record_request("payments", &key, fresh);
    if let Some(charge) = undoes {
        s.record_compensation("payments", &charge, fresh);
    }
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    reply(status, answer)
}

async fn by_hand(AxState(s): AxState<Arc<Shared>>, bytes: Bytes) -> Response {
    let (req, cents) = match check(&s, &bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = s.clock.now_ms();
    let answer = {
        let mut refunds = lock(&s.live.payments.inner);
        let id = format!("rf-{}", refunds.len() + 1);
        let r = Refund {
            key: format!("manual:{id}"),
            id,
            order: req.order,
            cents,
            by: "hand",
            at_ms: now,
        };
        let answer = refund_json(&s, &r);
        refunds.push(r);
        answer
    };
    if let Some(key) = answer["key"].as_str() {
        s.record_request("payments", key, true);
    }
    reply(StatusCode::CREATED, answer)
}

async fn list(
    AxState(s): AxState<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(order) = q.get("order") else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Missing 'order'",
            "GET /payments/refunds needs ?order=ID",
        );
    };
    if s.world.order(order).is_none() {
        return not_found(&format!("no order '{order}'"));
    }
    let refunds = lock(&s.live.payments.inner);
    let of_order: Vec<&Refund> = refunds.iter().filter(|r| r.order == *order).collect();
    let total: i64 = of_order.iter().map(|r| r.cents).sum();
    let list: Vec<Value> = of_order.iter().map(|r| refund_json(&s, r)).collect();
    reply(
        StatusCode::OK,
        json!({
            "order": order,
            "refunds": list,
            "total": money(total),
            "as_of": s.clock.now_rfc3339(),
        }),
    )
}
