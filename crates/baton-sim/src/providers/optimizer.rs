//! `optimizer`: the route optimizer. Slow: a plan request is answered `202 Accepted` with a status
//! URL, and the plan is ready 2 to 14 simulated seconds later (seeded per plan). It optimises drive
//! time only and knows none of the hard rules unless the request names them in `rules`:
//!
//! - `lumber-yard-window`: without it, the lumber yard (`lumber-yard-7`, open 10:00–11:30) is
//!   scheduled at 14:15;
//! - `rural-stops`: without it, every rural order goes to one rural driver (more than 6 stops);
//! - `driver-hours`: without it, that same rural route runs past 10 hours.
//!
//! With `rural-stops` or `driver-hours` the rural orders are shared out four per rural driver.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::lock;
use crate::Shared;
use crate::http::{body, idempotency_key, not_found, problem, reply};
use crate::world::{
    DRIVER_COUNT, FIRST_RURAL_DRIVER, LUMBER_YARD, Order, Zone, driver_id, is_rural_driver,
    truck_id,
};

/// The rules the optimizer can be told about.
pub(crate) const RULES: [&str; 3] = ["driver-hours", "lumber-yard-window", "rural-stops"];

/// Rural stops per driver when the optimizer is told about the rural or hours rule.
const RURAL_SHARE: usize = 4;
const URBAN_LEG_MIN: i64 = 40;
const RURAL_LEG_MIN: i64 = 75;

struct Job {
    id: String,
    created_ms: i64,
    ready_ms: i64,
    /// Indexes into the world's orders.
    orders: Vec<usize>,
    rules: Vec<String>,
}

#[derive(Default)]
pub(crate) struct State {
    inner: Mutex<Jobs>,
}

#[derive(Default)]
struct Jobs {
    jobs: Vec<Job>,
    by_key: HashMap<String, usize>,
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/plans", post(create))
        .route("/plans/{pid}", get(status))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OrderRef {
    Id(String),
    Object { id: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    #[serde(default)]
    orders: Option<Vec<OrderRef>>,
    /// Another name for `orders`.
    #[serde(default)]
    stops: Option<Vec<OrderRef>>,
    #[serde(default)]
    rules: Vec<String>,
}

fn accepted(s: &Shared, id: &str) -> Response {
    let location = format!("/optimizer/plans/{id}");
    let mut resp = reply(
        StatusCode::ACCEPTED,
        json!({
            "plan_id": id,
            "status": "running",
            "statusUrl": format!("{}{location}", s.base_url()),
        }),
    );
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn create(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap, bytes: Bytes) -> Response {
    let req: PlanRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if let Some(rule) = req.rules.iter().find(|r| !RULES.contains(&r.as_str())) {
        return problem(
            StatusCode::BAD_REQUEST,
            "Unknown rule",
            &format!(
                "'{rule}' is not a rule the optimizer knows ({})",
                RULES.join(", ")
            ),
        );
    }
    let orders = match req.orders.or(req.stops) {
        None => (0..s.world.orders.len()).collect(),
        Some(refs) => {
            let mut picked = Vec::with_capacity(refs.len());
            for r in refs {
                let id = match r {
                    OrderRef::Id(id) | OrderRef::Object { id } => id,
                };
                match s.world.orders.iter().position(|o| o.id == id) {
                    Some(i) => picked.push(i),
                    None => {
                        return problem(
                            StatusCode::BAD_REQUEST,
                            "Unknown order",
                            &format!("the optimizer knows no order '{id}'"),
                        );
                    }
                }
            }
            picked
        }
    };
    let key = idempotency_key(&headers);
    let now = s.clock.now_ms();
    let delay_ms: i64 = s.draw("optimizer", |r| r.random_range(2_000..=14_000));
    let (id, fresh) = {
        let mut jobs = lock(&s.live.optimizer.inner);
        match key.as_ref().and_then(|k| jobs.by_key.get(k)) {
            Some(i) => (jobs.jobs[*i].id.clone(), false),
            None => {
                let id = format!("p-{}", jobs.jobs.len() + 1);
                jobs.jobs.push(Job {
                    id: id.clone(),
                    created_ms: now,
                    ready_ms: now + delay_ms,
                    orders,
                    rules: req.rules,
                });
                if let Some(k) = &key {
                    let i = jobs.jobs.len() - 1;
                    jobs.by_key.insert(k.clone(), i);
                }
                (id, true)
            }
        }
    };
    s.record_request("optimizer", key.as_deref().unwrap_or(&id), fresh);
    accepted(&s, &id)
}

async fn status(AxState(s): AxState<Arc<Shared>>, Path(pid): Path<String>) -> Response {
    let now = s.clock.now_ms();
    let jobs = lock(&s.live.optimizer.inner);
    let Some(job) = jobs.jobs.iter().find(|j| j.id == pid) else {
        return not_found(&format!("no plan '{pid}'"));
    };
    if now < job.ready_ms {
        let mut resp = reply(
            StatusCode::OK,
            json!({ "plan_id": job.id, "status": "running", "as_of": s.clock.format(now) }),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        return resp;
    }
    let plan = make_plan(&s, job);
    reply(
        StatusCode::OK,
        json!({ "plan_id": job.id, "status": "done", "as_of": s.clock.format(now), "plan": plan }),
    )
}

/// The plan for a job: each urban order stays with its assigned driver; stops are visited in
/// window order, one leg apart from 06:00, and the truck returns one leg after the last stop.
fn make_plan(s: &Shared, job: &Job) -> Value {
    let ruled = |r: &str| job.rules.iter().any(|x| x == r);
    let share_rural = ruled("rural-stops") || ruled("driver-hours");
    let mut routes: BTreeMap<usize, Vec<&Order>> = BTreeMap::new();
    let mut rural: Vec<&Order> = Vec::new();
    for i in &job.orders {
        let order = &s.world.orders[*i];
        if order.zone == Zone::Rural {
            rural.push(order);
        } else {
            routes.entry(order.driver).or_default().push(order);
        }
    }
    rural.sort_by(|a, b| a.id.cmp(&b.id));
    rural.dedup_by(|a, b| a.id == b.id);
    let rural_drivers = DRIVER_COUNT - FIRST_RURAL_DRIVER + 1;
    for (i, order) in rural.into_iter().enumerate() {
        let driver = if share_rural {
            FIRST_RURAL_DRIVER + (i / RURAL_SHARE) % rural_drivers
        } else {
            FIRST_RURAL_DRIVER
        };
        routes.entry(driver).or_default().push(order);
    }
    let day_start = s.clock.at_local(6, 0);
    let lumber_eta = if ruled("lumber-yard-window") {
        s.clock.at_local(10, 15)
    } else {
        s.clock.at_local(14, 15)
    };
    let routes: Vec<Value> = routes
        .into_iter()
        .map(|(driver, mut stops)| {
            stops.sort_by_key(|o| (o.window_from_ms, o.id.clone()));
            stops.dedup_by(|a, b| a.id == b.id);
            let rural = is_rural_driver(driver);
            let leg_ms = if rural { RURAL_LEG_MIN } else { URBAN_LEG_MIN } * 60_000;
            let (lumber, others): (Vec<&Order>, Vec<&Order>) =
                stops.into_iter().partition(|o| o.customer == LUMBER_YARD);
            let mut timed: Vec<(i64, &Order)> = Vec::with_capacity(others.len() + lumber.len());
            let mut eta = day_start;
            for order in others {
                eta += leg_ms;
                timed.push((eta, order));
            }
            timed.extend(lumber.into_iter().map(|o| (lumber_eta, o)));
            timed.sort_by_key(|(eta, o)| (*eta, o.id.clone()));
            let end = timed
                .last()
                .map(|(eta, _)| eta + leg_ms)
                .unwrap_or(day_start);
            let hours = ((end - day_start) as f64 / 36_000.0).round() / 100.0;
            let stops: Vec<Value> = timed
                .iter()
                .map(|(eta, o)| {
                    json!({
                        "order": o.id,
                        "customer": o.customer,
                        "zone": o.zone.name(),
                        "address": o.address,
                        "eta": s.clock.format(*eta),
                    })
                })
                .collect();
            json!({
                "driver": driver_id(driver),
                "truck": truck_id(driver),
                "rural": rural,
                "start": s.clock.format(day_start),
                "end": s.clock.format(end),
                "hours": hours,
                "stops": stops,
            })
        })
        .collect();
    json!({
        "plan_id": job.id,
        "made_at": s.clock.format(job.created_ms),
        "rules": job.rules,
        "routes": routes,
    })
}
