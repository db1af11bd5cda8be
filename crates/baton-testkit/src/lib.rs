//! Fake provider servers for tests, conformance runs and benchmarks: real HTTP/1.1 servers (axum)
//! on a local port standing in for the public services the Serverless Workflow CTK names
//! (petstore, httpbin), plus scripted providers of our own (an idempotent ledger, redirects,
//! arbitrary statuses, flaky endpoints for retries).
//!
//! Everything lives under one router so a single [`FakeServer`] (one port) serves every scenario:
//!
//! | prefix              | stands in for / purpose                                        |
//! |---------------------|----------------------------------------------------------------|
//! | `/petstore/v2`      | `https://petstore.swagger.io/v2` (pets, `swagger.json`)       |
//! | `/httpbin`          | `https://httpbin.org` (`/basic-auth/{user}/{passwd}`)          |
//! | `/ledger`           | a provider that applies each `Idempotency-Key` at most once    |
//! | `/redirect`, `/status/{code}`, `/flaky/{key}` | scripted faults                      |
//!
//! State (ledger keys, flaky counters) belongs to one server: two servers never share it.

mod httpbin;
mod ledger;
mod misc;
mod petstore;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Mutable state of one fake server.
#[derive(Default)]
pub(crate) struct State {
    pub ledger: ledger::Ledger,
    pub flaky: misc::FlakyCounters,
}

/// A fake provider server on a local port. Stops when dropped or on [`FakeServer::shutdown`].
pub struct FakeServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a server on `127.0.0.1` with a port chosen by the OS.
    ///
    /// # Panics
    /// When no local port can be bound (a broken test environment, not a test outcome).
    pub async fn start() -> FakeServer {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        match FakeServer::bind(addr).await {
            Ok(server) => server,
            Err(e) => panic!("the fake server cannot bind {addr}: {e}"),
        }
    }

    /// Starts a server on `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<FakeServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let app = router(state.clone(), addr);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                // A dropped sender stops the server as well as an explicit signal.
                let _ = stopped.await;
            });
            // Serving only ends on shutdown or a listener failure; neither needs reporting to a
            // test that has already let go of the server.
            let _ = serve.await;
        });
        Ok(FakeServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The ledger's report, as `GET /ledger/report` returns it.
    pub fn ledger_report(&self) -> Value {
        self.state.ledger.report()
    }

    /// The number of requests `POST /ledger/effects` has recorded so far, watchable: a test can
    /// wait for the n-th one (e.g. to crash a runtime while that request is in flight).
    pub fn ledger_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.ledger.requests()
    }

    /// How many times `GET /flaky/{key}` was called for `key`.
    pub fn flaky_calls(&self, key: &str) -> u64 {
        self.state.flaky.calls(key)
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the fake providers on `addr` until the process ends (for `baton fake-server`).
pub async fn serve_forever(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    axum::serve(listener, router(Arc::new(State::default()), local)).await
}

/// Every route of the fake server. `local` is the bound address, used when a document must name
/// the server itself and the request carries no `Host` header.
fn router(state: Arc<State>, local: SocketAddr) -> Router {
    Router::new()
        .nest("/petstore/v2", petstore::routes(local))
        .nest("/httpbin", httpbin::routes())
        .nest("/ledger", ledger::routes(state.clone()))
        .merge(misc::routes(state))
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "Not Found",
                "no fake route matches this request",
            )
        })
}

/// An RFC 9457 problem response.
pub(crate) fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "status": status.as_u16(),
        "title": title,
        "detail": detail,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
