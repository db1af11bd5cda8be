//! Helpers shared by the simulator's HTTP tests.

#![allow(dead_code)] // each test file uses its own subset

use std::time::Duration;

use baton_sim::{Sim, SimOptions};
use reqwest::StatusCode;
use serde_json::Value;

/// A simulator whose clock only moves when a test advances it.
pub async fn still_sim(seed: u64) -> Sim {
    Sim::start(SimOptions {
        seed,
        speed: 0.0,
        start: None,
    })
    .await
    .expect("simulator starts")
}

pub fn client() -> reqwest::Client {
    client_with_timeout(None)
}

pub fn client_with_timeout(timeout: Option<Duration>) -> reqwest::Client {
    // reqwest is built without a default TLS provider; it needs one installed even for plain
    // http. A second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().expect("client")
}

pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn get(url: &str) -> (StatusCode, Value) {
    read(client().get(url).send().await.expect("request")).await
}

pub async fn post(url: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = client().post(url).json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    read(req.send().await.expect("request")).await
}

pub async fn delete(url: &str) -> (StatusCode, Value) {
    read(client().delete(url).send().await.expect("request")).await
}

/// Seconds from `earlier` to `later`, both RFC 3339.
pub fn seconds_between(earlier: &Value, later: &Value) -> f64 {
    let parse = |v: &Value| -> jiff::Timestamp {
        v.as_str()
            .unwrap_or_else(|| panic!("{v} is not a string"))
            .parse()
            .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
    };
    let d = parse(later).duration_since(parse(earlier));
    d.as_secs_f64()
}
