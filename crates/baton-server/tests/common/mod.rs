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

/// Checks an answer against the schema `name` of the server's OpenAPI document `doc`: every
/// field of the answer is named by the schema (recursively, through `$ref`s, `oneOf`s and
/// arrays), every required field is there, and JSON types agree. A field the document does not
/// name fails with its path, so the document cannot fall behind what the server sends.
pub fn assert_named_by(doc: &Value, name: &str, value: &Value) {
    let schema = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
    walk(doc, &schema, value, name);
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{r} is not in the OpenAPI document"));
            resolve(doc, target)
        }
        None => schema,
    }
}

fn json_type_is(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn admits(schema: &Value, v: &Value) -> bool {
    match schema.get("type") {
        None => true,
        Some(Value::String(t)) => json_type_is(t, v),
        Some(Value::Array(ts)) => ts
            .iter()
            .any(|t| t.as_str().is_some_and(|t| json_type_is(t, v))),
        Some(_) => true,
    }
}

fn walk(doc: &Value, schema: &Value, value: &Value, path: &str) {
    let s = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = s.get(key).and_then(Value::as_array) {
            let alt = alternatives
                .iter()
                .map(|a| resolve(doc, a))
                .find(|a| admits(a, value))
                .unwrap_or_else(|| panic!("{path}: {value} fits none of {alternatives:?}"));
            return walk(doc, alt, value, path);
        }
    }
    assert!(
        admits(s, value),
        "{path}: {value} is not of type {}",
        s["type"]
    );
    match value {
        Value::Object(map) => {
            // A free-form object (no `properties`) admits any fields.
            let Some(props) = s.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (k, v) in map {
                let p = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k}: not named by the OpenAPI document"));
                walk(doc, p, v, &format!("{path}.{k}"));
            }
            for r in s["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                assert!(map.contains_key(r), "{path}.{r}: required, and missing");
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(doc, item, v, &format!("{path}[{i}]"));
                }
            }
        }
        _ => {}
    }
}
