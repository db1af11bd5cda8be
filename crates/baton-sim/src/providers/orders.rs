//! `orders`: the legacy order system. Its data is a batch export made at midnight, so every read
//! says `as_of` = the last local midnight, and nothing that happened today (a cancellation on the
//! portal) shows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use crate::Shared;
use crate::faults::Plan;
use crate::http::{not_found, reply};
use crate::world::{DRIVER_COUNT, driver_id, is_rural_driver, truck_id};

/// A driver's working limit, in hours.
pub(crate) const MAX_HOURS: u32 = 10;
/// Most stops a rural driver takes on a route.
pub(crate) const RURAL_MAX_STOPS: usize = 6;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/orders", get(list))
        .route("/orders/{id}", get(one))
        .route("/drivers", get(drivers))
}

fn export_as_of(s: &Shared, plan: &Plan) -> String {
    let midnight = s.clock.midnight_before(s.clock.now_ms());
    s.as_of(plan, midnight)
}

async fn list(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let orders: Vec<Value> = s
        .world
        .orders
        .iter()
        .filter(|o| q.get("zone").is_none_or(|z| o.zone.name() == z))
        .filter(|o| q.get("driver").is_none_or(|d| driver_id(o.driver) == *d))
        .map(|o| s.world.order_json(o, &s.clock))
        .collect();
    reply(
        StatusCode::OK,
        json!({ "as_of": export_as_of(&s, &plan), "count": orders.len(), "orders": orders }),
    )
}

async fn one(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    Path(id): Path<String>,
) -> Response {
    let Some(order) = s.world.order(&id) else {
        return not_found(&format!("no order '{id}' in last night's export"));
    };
    let mut body = s.world.order_json(order, &s.clock);
    body["as_of"] = json!(export_as_of(&s, &plan));
    reply(StatusCode::OK, body)
}

async fn drivers(AxState(s): AxState<Arc<Shared>>, Extension(plan): Extension<Plan>) -> Response {
    let drivers: Vec<Value> = (1..=DRIVER_COUNT)
        .map(|n| {
            let rural = is_rural_driver(n);
            json!({
                "id": driver_id(n),
                "truck": truck_id(n),
                "rural": rural,
                "max_hours": MAX_HOURS,
                "max_stops": if rural { json!(RURAL_MAX_STOPS) } else { Value::Null },
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({ "as_of": export_as_of(&s, &plan), "drivers": drivers }),
    )
}
