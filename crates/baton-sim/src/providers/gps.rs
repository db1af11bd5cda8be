//! `gps`: truck positions. Each position was observed 5 to 120 s before the read (seeded). A
//! silent truck's position stops moving and its `observed_at` stays at the moment it fell silent.
//! By nature one seeded truck falls silent for 20 minutes at a seeded time between 09:00 and
//! 15:00; control's `silent: ["t-07"]` silences trucks at once, until the faults are cleared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Extension, Path, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use rand::Rng;
use serde_json::{Value, json};

use super::lock;
use crate::Shared;
use crate::faults::{Faults, Plan};
use crate::http::{not_found, reply};
use crate::world::{DRIVER_COUNT, HUB, fleet_number, truck_id};

/// How long the naturally silent truck stays silent, in ms.
const NATURAL_SILENCE_MS: i64 = 20 * 60 * 1000;

/// Trucks silenced through control: truck number → their last observation (simulated ms).
#[derive(Default)]
pub(crate) struct State {
    last_seen: Mutex<HashMap<usize, i64>>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/trucks", get(all))
        .route("/trucks/{id}/position", get(one))
}

/// New faults for the GPS: the trucks they list fall silent now, keeping their last observation.
pub(crate) fn on_control(s: &Shared, faults: &Faults) {
    let mut silenced = lock(&s.live.gps.last_seen);
    silenced.clear();
    for id in faults.silent.iter().flatten() {
        if let Some(n) = fleet_number(id, "t-") {
            silenced.insert(n, last_observation(s));
        }
    }
}

/// When a truck reporting normally was last observed: 5 to 120 s ago (seeded).
fn last_observation(s: &Shared) -> i64 {
    let age_s: i64 = s.draw("gps", |r| r.random_range(5..=120));
    s.clock.now_ms() - age_s * 1000
}

/// Where truck `n` is at simulated time `ms`: a slow loop around its zone's centre (the hub
/// before 06:00 and after 18:00 is not modelled: trucks are always out).
fn place(s: &Shared, n: usize, ms: i64) -> (f64, f64) {
    let truck = &s.world.trucks[n - 1];
    let (lat, lon) = truck.zone.centre();
    let minutes = (ms - s.clock.midnight_before(ms)) as f64 / 60_000.0;
    let angle = truck.phase + minutes * 0.05;
    let radius = 0.03;
    let round = |x: f64| (x * 100_000.0).round() / 100_000.0;
    (
        round(lat + radius * angle.sin()),
        round(lon + radius * angle.cos()),
    )
}

fn position(s: &Shared, plan: &Plan, n: usize) -> (i64, Value) {
    let now = s.clock.now_ms();
    let id = truck_id(n);
    let (quiet, from) = s.world.silent_truck;
    let observed = if plan.silent.contains(&id) {
        // Recorded when the faults were set; a truck missing there falls silent at this read.
        *lock(&s.live.gps.last_seen)
            .entry(n)
            .or_insert_with(|| last_observation(s))
    } else if quiet == n && now >= from && now < from + NATURAL_SILENCE_MS {
        from
    } else {
        last_observation(s)
    };
    let observed = s.as_of_ms(plan, observed);
    let (lat, lon) = place(s, n, observed);
    let at = s.clock.format(observed);
    let body = json!({ "truck": id, "lat": lat, "lon": lon, "observed_at": at, "as_of": at });
    (observed, body)
}

async fn one(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    Path(id): Path<String>,
) -> Response {
    match fleet_number(&id, "t-") {
        Some(n) => reply(StatusCode::OK, position(&s, &plan, n).1),
        None => not_found(&format!("no truck '{id}' (t-01 to t-{DRIVER_COUNT:02})")),
    }
}

async fn all(AxState(s): AxState<Arc<Shared>>, Extension(plan): Extension<Plan>) -> Response {
    let mut oldest = s.clock.now_ms();
    let trucks: Vec<Value> = (1..=DRIVER_COUNT)
        .map(|n| {
            let (observed, body) = position(&s, &plan, n);
            oldest = oldest.min(observed);
            body
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({ "as_of": s.clock.format(oldest), "hub": {"lat": HUB.0, "lon": HUB.1}, "trucks": trucks }),
    )
}
