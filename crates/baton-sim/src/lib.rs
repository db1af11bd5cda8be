//! The Maplewood Logistics simulator: the fake providers of Baton's demo world (see
//! `shared/maplewood.md`) as one real HTTP/1.1 server on `127.0.0.1`, each provider under its own
//! path prefix. Everything is seeded, so a run repeats; the world has its own clock, which runs at
//! `speed` simulated seconds per real second from `start` and can be pushed forward by hand.
//!
//! Every provider can be told to misbehave (`POST /control/{provider}` with [`Faults`]), and the
//! ledger (`GET /ledger`) says what every effect really did, per idempotency key.
//!
//! # Routes
//!
//! Every JSON read carries `as_of` (RFC 3339, simulated time, America/New_York offset): how old
//! the data is. `{key}` is an `Idempotency-Key`. Errors are RFC 9457 problem documents.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the providers and their base URLs, the simulated time |
//! | **orders** (legacy, nightly export) | |
//! | `GET /orders/orders[?zone=Z&driver=D]` | `{as_of, count, orders: [order]}`, `as_of` = last midnight |
//! | `GET /orders/orders/{id}` | `{..order, as_of}`; portal cancellations never show here |
//! | `GET /orders/drivers` | `{as_of, drivers: [{id, truck, rural, max_hours, max_stops}]}` |
//! | **portal** (customers, fresh) | |
//! | `GET /portal/orders/{id}` | `{id, status: open\|cancelled, cancelled_at, as_of: now}` |
//! | `POST /portal/orders/{id}/cancel` | `200 {id, status: cancelled, cancelled_at, changed}` |
//! | **gps** | |
//! | `GET /gps/trucks` | `{as_of, trucks: [position]}` |
//! | `GET /gps/trucks/{id}/position` | `{truck, lat, lon, observed_at, as_of}`, 5–120 s old |
//! | **optimizer** (slow) | |
//! | `POST /optimizer/plans` `{orders?, rules?}` | `202`, `Location`, `{plan_id, status: running, statusUrl}` |
//! | `GET /optimizer/plans/{pid}` | `{plan_id, status: running}` for 2–14 s, then `{status: done, plan}` |
//! | **carrier** (30 req/s) | |
//! | `POST /carrier/bookings` `{order, pallets?, ...}` | `201 {booking_id, key, status, ...}`; same key again: `200`, same booking; over 26 pallets: `422`, nothing booked |
//! | `GET /carrier/bookings/{key}` | `200 {applied: true, booking}` or `404 {applied: false}` |
//! | `DELETE /carrier/bookings/{key}` | cancels: `{key, cancelled: true, changed}` |
//! | **warehouse** | |
//! | `POST /warehouse/picks` | `200 {accepted: true, pick_id, key}`, sometimes without doing it |
//! | `GET /warehouse/picks/{key}` | `200 {exists: true, pick}` or `404 {exists: false}` |
//! | **inventory** | |
//! | `GET /inventory/stock/{store}` | `{store, source: nightly-export\|live, as_of, stock}` |
//! | `POST /inventory/reservations` `{store, sku, qty}` | `201 {reservation_id, key, ...}`; repeat `200` |
//! | `GET /inventory/reservations/{key}` | `200 {applied: true, reservation}` or `404 {applied: false}` |
//! | `DELETE /inventory/reservations/{key}` | releases: `{key, released: true, changed}` |
//! | **verify** (30 req/s) | |
//! | `POST /verify/addresses` `{address}` | `{address, verdict: deliverable\|undeliverable\|null, as_of}` |
//! | **notify** | |
//! | `POST /notify/messages` `{to, text}` | `202 {message_id, key}`; repeat `200` |
//! | `GET /notify/messages` | `{as_of, messages}` |
//! | **payments** | |
//! | `POST /payments/charges` `{order, amount}` | `201 {charge_id, key, order, amount}`; repeat `200` |
//! | `GET /payments/charges/{key}` | `200 {applied: true, charge}` or `404 {applied: false}` |
//! | `POST /payments/refunds` `{order, amount, charge?}` | `201 {refund_id, key, order, amount, by: api}`; repeat `200`; `charge` = the key of the charge it undoes (ledger `compensated`) |
//! | `POST /payments/refunds/manual` `{order, amount}` | `201 {refund_id, by: hand}` (a person) |
//! | `GET /payments/refunds?order=ID` | `{order, refunds, total, as_of}` |
//! | **control and inspection** (not counted as provider requests) | |
//! | `POST /control/{provider}` [`Faults`] | sets the provider's faults (replacing earlier ones) |
//! | `DELETE /control/{provider}` | clears them |
//! | `GET /control` | every provider's faults |
//! | `GET /ledger` | `{provider: {key: {applied, compensated, requests}}}` |
//! | `GET /stats` | `{provider: {requests, sent_429, sent_5xx, hung, malformed}}` |
//! | `GET /clock` | `{now, speed}` |
//! | `POST /clock/advance` `{seconds}` | moves the simulated clock forward; answers `{now, speed}` |
//!
//! The crate's `README.md` describes each provider's behaviour in full.
//!
//! # How a provider call is handled
//!
//! 1. It is counted ([`Sim::subscribe_requests`], [`Sim::request_count`]) and its real arrival
//!    time recorded ([`Sim::arrivals_ms`]), before anything else.
//! 2. The carrier and verify check their natural limit (30 admitted requests in any sliding real
//!    second); the provider's faults are drawn for this call and count against `calls`.
//! 3. `hold` (effects only): the call waits, before anything is applied, until the provider's
//!    faults are next set or cleared. Then `latency_ms` is waited.
//! 4. Over the natural limit: `429`, `Retry-After: 1`. Then `rate_429` → `429` with
//!    `Retry-After: retry_after_s`, `rate_5xx` → `503`. None of these applies anything.
//! 5. The provider handles the call (applying its effect, writing the ledger).
//! 6. `timeout_after_apply` (effects only): the connection is held `hang_ms` and dropped without
//!    an answer. `malformed`: the answer is replaced by `200 {"malformed": true}`.

mod book;
mod clock;
mod dispatch;
mod faults;
mod http;
mod providers;
mod world;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State as AxState};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use clock::{DEFAULT_START, ZONE};
pub use faults::Faults;
pub use world::{DRIVER_COUNT, LUMBER_YARD, ORDER_COUNT, STORE_COUNT};

use book::{Book, RateWindow, Sent};
use clock::SimClock;
use faults::{FaultBoard, Plan};
use http::{problem, reply, too_many};
use world::{World, seeded};

/// Every provider, in the order they are listed.
pub const PROVIDERS: [&str; 10] = [
    "orders",
    "portal",
    "gps",
    "optimizer",
    "carrier",
    "warehouse",
    "inventory",
    "verify",
    "notify",
    "payments",
];

/// The natural rate limit of the carrier and of address verification, per real second.
pub const NATURAL_RATE_PER_S: usize = 30;

/// How a simulation starts.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seeds the world and every random draw.
    pub seed: u64,
    /// Simulated seconds per real second (default 1.0; 0 stops the clock between advances).
    pub speed: f64,
    /// The simulated start, RFC 3339 or `now` (default [`DEFAULT_START`], 06:00 when the plan is
    /// made). Start at `now` when Baton checks the freshness of what the providers answer: their
    /// `as_of` stamps are then on Baton's clock.
    pub start: Option<String>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            speed: 1.0,
            start: None,
        }
    }
}

/// State shared by every handler of one simulator.
pub(crate) struct Shared {
    pub seed: u64,
    pub clock: SimClock,
    pub world: World,
    pub faults: FaultBoard,
    pub book: Book,
    /// Natural rate windows (carrier, verify).
    pub limits: HashMap<&'static str, RateWindow>,
    /// Each provider's own generator for its natural behaviour (GPS ages, warehouse lies, ...).
    rngs: Mutex<HashMap<&'static str, StdRng>>,
    /// Bumped whenever the ledger changes, for tests that wait for an effect.
    ledger_changes: watch::Sender<u64>,
    pub live: providers::Live,
    base_url: OnceLock<String>,
}

impl Shared {
    fn new(opts: &SimOptions) -> Result<Shared, String> {
        let clock = SimClock::new(opts.start.as_deref().unwrap_or(DEFAULT_START), opts.speed)?;
        let world = World::generate(opts.seed, &clock);
        let limits = ["carrier", "verify"]
            .into_iter()
            .map(|p| (p, RateWindow::new(NATURAL_RATE_PER_S)))
            .collect();
        let rngs = PROVIDERS
            .iter()
            .map(|p| (*p, seeded(opts.seed, &format!("behaviour/{p}"))))
            .collect();
        Ok(Shared {
            seed: opts.seed,
            clock,
            world,
            faults: FaultBoard::new(opts.seed, &PROVIDERS),
            book: Book::new(&PROVIDERS),
            limits,
            rngs: Mutex::new(rngs),
            ledger_changes: watch::Sender::new(0),
            live: providers::Live::default(),
            base_url: OnceLock::new(),
        })
    }

    /// A draw from the provider's own seeded generator.
    pub(crate) fn draw<T>(&self, provider: &'static str, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let mut rngs = self.rngs.lock().unwrap_or_else(|p| p.into_inner());
        let rng = rngs.entry(provider).or_insert_with(|| seeded(0, provider));
        f(rng)
    }

    /// Changes a ledger entry (see [`Book::effect`]) and wakes those watching the ledger.
    pub(crate) fn effect(
        &self,
        provider: &'static str,
        key: &str,
        change: impl FnOnce(&mut book::Entry),
    ) -> book::Entry {
        let entry = self.book.effect(provider, key, change);
        self.ledger_changes.send_modify(|n| *n += 1);
        entry
    }

    /// Counts a request for an effect; `applied` when this request did the work (the first with
    /// its key, for an idempotent provider).
    pub(crate) fn record_request(&self, provider: &'static str, key: &str, applied: bool) {
        self.effect(provider, key, |e| {
            e.requests += 1;
            if applied {
                e.applied += 1;
            }
        });
    }

    /// Counts a request to undo an effect; `changed` when it undid something (undoing twice
    /// changes nothing the second time).
    pub(crate) fn record_compensation(&self, provider: &'static str, key: &str, changed: bool) {
        self.effect(provider, key, |e| {
            e.requests += 1;
            if changed {
                e.compensated += 1;
            }
        });
    }

    /// `as_of` of data naturally from `natural_ms`, made older when the provider is told to
    /// serve stale data.
    pub(crate) fn as_of_ms(&self, plan: &Plan, natural_ms: i64) -> i64 {
        match plan.stale_s {
            Some(s) => {
                let stale = self
                    .clock
                    .now_ms()
                    .saturating_sub(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX));
                natural_ms.min(stale)
            }
            None => natural_ms,
        }
    }

    pub(crate) fn as_of(&self, plan: &Plan, natural_ms: i64) -> String {
        self.clock.format(self.as_of_ms(plan, natural_ms))
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("")
    }

    fn set_faults(&self, provider: &str, faults: Faults) -> bool {
        if provider == "gps" {
            providers::gps::on_control(self, &faults);
        }
        self.faults.set(provider, faults)
    }

    fn clock_json(&self) -> Value {
        json!({ "now": self.clock.now_rfc3339(), "speed": self.clock.speed() })
    }
}

/// A running simulator. Stops when dropped or on [`Sim::shutdown`].
pub struct Sim {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sim {
    /// Starts a simulator on `127.0.0.1` with a port chosen by the OS.
    pub async fn start(opts: SimOptions) -> std::io::Result<Sim> {
        Sim::bind(SocketAddr::from(([127, 0, 0, 1], 0)), opts).await
    }

    /// Starts a simulator on `addr` (port 0 picks a free port). Fails with `InvalidInput` when
    /// `start` is not RFC 3339 or `speed` is negative.
    pub async fn bind(addr: SocketAddr, opts: SimOptions) -> std::io::Result<Sim> {
        let shared = Shared::new(&opts)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let _ = shared.base_url.set(format!("http://{addr}"));
        let shared = Arc::new(shared);
        let app = router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, stopped));
        Ok(Sim {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What every effect did, as `GET /ledger` answers.
    pub fn ledger(&self) -> Value {
        self.shared.book.ledger()
    }

    /// Real-time arrival stamps (ms since the simulator started) of every request to `provider`,
    /// oldest first (the last 100 000).
    pub fn arrivals_ms(&self, provider: &str) -> Vec<u64> {
        self.shared.book.arrivals_ms(provider)
    }

    /// The dispatcher's week of reroute decisions, as `GET /dispatch/decisions` answers.
    pub fn dispatcher_week(&self) -> Value {
        dispatch::decisions(&self.shared)
    }

    /// Which of the week's decisions broke a hard rule, as `GET /dispatch/deviations` answers.
    pub fn dispatcher_deviations(&self) -> Value {
        dispatch::deviations(&self.shared)
    }

    /// Requests that arrived at `provider`, whatever they were answered.
    pub fn request_count(&self, provider: &str) -> u64 {
        self.shared.book.request_count(provider)
    }

    /// The number of provider requests that arrived so far (control and inspection routes are not
    /// counted), for tests that wait for the n-th one.
    pub fn subscribe_requests(&self) -> watch::Receiver<u64> {
        self.shared.book.subscribe()
    }

    /// A counter bumped at every ledger change, for tests that wait until an effect is applied.
    pub fn subscribe_ledger(&self) -> watch::Receiver<u64> {
        self.shared.ledger_changes.subscribe()
    }

    /// Sets a provider's faults, as `POST /control/{provider}` does.
    ///
    /// # Panics
    /// When `provider` is not one of [`PROVIDERS`] or the faults are out of range (a mistake in
    /// the calling test, not a simulated fault).
    pub fn control(&self, provider: &str, faults: Faults) {
        if let Err(e) = faults.validate() {
            panic!("faults for {provider}: {e}");
        }
        if !self.shared.set_faults(provider, faults) {
            panic!("'{provider}' is not a Maplewood provider (one of {PROVIDERS:?})");
        }
    }

    /// The simulated time, RFC 3339.
    pub fn now(&self) -> String {
        self.shared.clock.now_rfc3339()
    }

    /// Moves the simulated clock forward.
    pub fn advance(&self, seconds: u64) {
        self.shared.clock.advance(seconds);
    }

    /// Stops accepting connections and drops open ones (including held ones).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Lets a handler drop its own connection without answering (`timeout_after_apply`).
#[derive(Clone)]
struct Hangup(Arc<Notify>);

/// Accepts connections until told to stop, then drops every open one. Each connection is served
/// by hyper directly (not `axum::serve`) so that a held request can close its socket unanswered.
async fn serve(listener: TcpListener, app: Router, mut stop: oneshot::Receiver<()>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of descriptors and the like: wait a little instead of spinning.
            Err(_) => {
                clock::delay(Duration::from_millis(20)).await;
                continue;
            }
        };
        let hangup = Hangup(Arc::new(Notify::new()));
        let app = app.clone();
        let tag = hangup.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(tag.clone());
            let mut app = app.clone();
            async move {
                let resp: Result<Response, Infallible> =
                    tower_service::Service::call(&mut app, req).await;
                resp
            }
        });
        conns.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = hangup.0.notified() => {}
            }
        });
    }
    conns.abort_all();
}

fn router(shared: Arc<Shared>) -> Router {
    let mut app = Router::new();
    for (provider, routes) in providers::routes() {
        let gate_state = Gate {
            shared: shared.clone(),
            provider,
        };
        let routes = routes
            .with_state(shared.clone())
            .layer(middleware::from_fn_with_state(gate_state, gate));
        app = app.nest(&format!("/{provider}"), routes);
    }
    let control = Router::new()
        .route("/", get(index))
        .route("/control", get(control_all))
        .route(
            "/control/{provider}",
            post(control_set).delete(control_clear),
        )
        .route(
            "/ledger",
            get(|s: AxState<Arc<Shared>>| async move { Json(s.book.ledger()) }),
        )
        .route(
            "/stats",
            get(|s: AxState<Arc<Shared>>| async move { Json(s.book.stats()) }),
        )
        .route(
            "/clock",
            get(|s: AxState<Arc<Shared>>| async move { Json(s.clock_json()) }),
        )
        .route("/clock/advance", post(clock_advance))
        .route(
            "/dispatch/decisions",
            get(|s: AxState<Arc<Shared>>| async move { Json(dispatch::decisions(&s)) }),
        )
        .route(
            "/dispatch/deviations",
            get(|s: AxState<Arc<Shared>>| async move { Json(dispatch::deviations(&s)) }),
        )
        .with_state(shared);
    app.merge(control).fallback(|| async {
        problem(
            StatusCode::NOT_FOUND,
            "Not Found",
            "no Maplewood route matches this request",
        )
    })
}

#[derive(Clone)]
struct Gate {
    shared: Arc<Shared>,
    provider: &'static str,
}

/// Counting, natural limits and faults around every provider call (see the crate docs).
async fn gate(AxState(g): AxState<Gate>, mut req: Request, next: Next) -> Response {
    let s = &g.shared;
    s.book.arrive(g.provider, s.clock.real_elapsed_ms());
    let natural = s.limits.get(g.provider).map(|w| w.admit(clock::real_now()));
    let effect = !matches!(*req.method(), Method::GET | Method::HEAD);
    let mut plan = s.faults.draw(g.provider, effect);
    if let Some(generation) = plan.hold {
        s.faults.released(generation).await;
    }
    if !plan.latency.is_zero() {
        clock::delay(plan.latency).await;
    }
    if let Some((false, _)) = natural {
        s.book.sent(g.provider, Sent::TooMany);
        return too_many(
            1,
            &format!(
                "{} takes at most {NATURAL_RATE_PER_S} requests a second",
                g.provider
            ),
        );
    }
    if let Some(after) = plan.reject_429 {
        s.book.sent(g.provider, Sent::TooMany);
        return too_many(after, "injected 429");
    }
    if plan.reject_5xx {
        s.book.sent(g.provider, Sent::Unavailable);
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "injected 5xx",
        );
    }
    plan.load = natural.map(|(_, load)| load).unwrap_or(0);
    let hang = plan.hang;
    let malformed = plan.malformed;
    let hangup = req.extensions().get::<Hangup>().cloned();
    req.extensions_mut().insert(plan);
    let resp = next.run(req).await;
    if let Some(hold) = hang {
        s.book.sent(g.provider, Sent::Hung);
        clock::delay(hold).await;
        if let Some(hangup) = hangup {
            hangup.0.notify_one();
            // The connection task drops this request (and its socket) on the notification.
            std::future::pending::<()>().await;
        }
        return problem(
            StatusCode::GATEWAY_TIMEOUT,
            "Gateway Timeout",
            "held after applying; this server cannot drop the connection",
        );
    }
    if malformed {
        s.book.sent(g.provider, Sent::Malformed);
        return reply(StatusCode::OK, json!({ "malformed": true }));
    }
    resp
}

async fn index(AxState(s): AxState<Arc<Shared>>) -> Json<Value> {
    let base = s.base_url();
    let providers: serde_json::Map<String, Value> = PROVIDERS
        .iter()
        .map(|p| ((*p).to_string(), json!(format!("{base}/{p}"))))
        .collect();
    Json(json!({
        "world": "maplewood",
        "now": s.clock.now_rfc3339(),
        "speed": s.clock.speed(),
        "providers": providers,
        "dispatcher_week": format!("{base}/dispatch/decisions"),
    }))
}

async fn control_all(AxState(s): AxState<Arc<Shared>>) -> Json<Value> {
    Json(s.faults.report(&PROVIDERS))
}

async fn control_set(
    AxState(s): AxState<Arc<Shared>>,
    Path(provider): Path<String>,
    bytes: Bytes,
) -> Response {
    let faults: Faults = match http::body(&bytes) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    if let Err(e) = faults.validate() {
        return problem(StatusCode::BAD_REQUEST, "Bad faults", &e);
    }
    if !PROVIDERS.contains(&provider.as_str()) {
        return unknown_provider(&provider);
    }
    s.set_faults(&provider, faults.clone());
    reply(
        StatusCode::OK,
        json!({ "provider": provider, "faults": faults }),
    )
}

async fn control_clear(AxState(s): AxState<Arc<Shared>>, Path(provider): Path<String>) -> Response {
    if !s.set_faults(&provider, Faults::default()) {
        return unknown_provider(&provider);
    }
    reply(
        StatusCode::OK,
        json!({ "provider": provider, "faults": {} }),
    )
}

fn unknown_provider(provider: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Unknown provider",
        &format!(
            "'{provider}' is not a Maplewood provider; they are: {}",
            PROVIDERS.join(", ")
        ),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn clock_advance(AxState(s): AxState<Arc<Shared>>, bytes: Bytes) -> Response {
    let advance: Advance = match http::body(&bytes) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    s.clock.advance(advance.seconds);
    reply(StatusCode::OK, s.clock_json())
}

/// One line on what a provider is, for listings.
pub fn describe(provider: &str) -> &'static str {
    match provider {
        "orders" => "legacy orders, nightly export (as_of = midnight)",
        "portal" => "customer portal: fresh status, cancellations",
        "gps" => "truck positions, 5-120 s old",
        "optimizer" => "route plans: 202, then done 2-14 s later",
        "carrier" => "partner carrier: 30 req/s, Idempotency-Key",
        "warehouse" => "picks: sometimes 200 without doing it",
        "inventory" => "stock (some from the nightly export), reservations",
        "verify" => "address verification: 30 req/s, null verdicts under load",
        "notify" => "driver tablets and customer texts",
        "payments" => "charges, and refunds by API and by hand",
        _ => "",
    }
}

/// Serves the world on `addr`, prints the base URL (first line of stdout) and each provider,
/// and runs until Ctrl-C. Used by the `baton-sim` binary and `baton sim`.
pub async fn serve_until_interrupted(addr: SocketAddr, opts: SimOptions) -> std::io::Result<()> {
    let sim = Sim::bind(addr, opts).await?;
    let base = sim.base_url();
    println!("{base}");
    for p in PROVIDERS {
        println!("{p:<10} {base}/{p:<10} {}", describe(p));
    }
    println!("control    {base}/control  ledger {base}/ledger  clock {base}/clock");
    let interrupted = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    interrupted
}
