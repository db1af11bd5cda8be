//! What the server's integration tests share: a server running in this process over a real
//! socket and a SQLite store in a temporary directory, stopped when dropped, and a JSON call to
//! its API with a bearer token. Each test file keeps its own configuration, flows and requests;
//! only the starting and stopping, written the same in every file, lives here.

// Each test file is its own crate and uses part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use baton_engine::RuntimeOptions;
use baton_server::{AppState, load_config};
use baton_store::{SqliteOptions, SqliteStore};
use serde_json::Value;

/// A running server; dropping it stops it (and removes its store).
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a server with `config` (tokens, rules) over a fresh store on a free local port.
/// `with_triggers` installs an empty trigger set, as `baton serve` does. Requests go through a
/// client built from `http` (built here, once the TLS crypto provider is installed).
pub async fn start(config: &str, with_triggers: bool, http: reqwest::ClientBuilder) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("b.db"), SqliteOptions::default()).unwrap());
    let runtime = baton_engine::runtime(store, RuntimeOptions::default());
    let config = load_config(config, &|_| None).unwrap();
    let state = AppState::new(runtime, config);
    if with_triggers {
        state
            .install_triggers(baton_engine::triggers::TriggerSet { rules: Vec::new() })
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(baton_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    Server {
        base,
        http: http.build().unwrap(),
        _dir: dir,
        stop: Some(tx),
    }
}

impl Server {
    /// An API call with `token`: the status and the JSON answer (or its text, when not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A form field's value as `application/x-www-form-urlencoded` wants it.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
