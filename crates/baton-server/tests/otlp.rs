//! The OTLP/HTTP trace exporter against a fake collector on 127.0.0.1: task spans in the
//! instance's trace, request spans, no secrets on the wire, retries, drops when full.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use baton_core::InstanceId;
use baton_engine::RuntimeOptions;
use baton_server::otlp::{self, OtlpExporter, OtlpOptions};
use baton_server::{AppState, ServerRuntime, load_config};
use baton_store::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// What the collector saw in one request.
struct Received {
    content_type: String,
    raw: String,
    body: Value,
}

/// A fake OTLP collector: records every `POST /v1/traces` and answers with the queued statuses
/// first, then 200.
struct Collector {
    endpoint: String,
    rx: mpsc::UnboundedReceiver<Received>,
    /// Every raw body so far, to look for secrets in all of it.
    raw: Vec<String>,
}

#[derive(Clone)]
struct CollectorState {
    tx: mpsc::UnboundedSender<Received>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

async fn collect(State(s): State<CollectorState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = s.statuses.lock().unwrap().pop_front().unwrap_or(200);
    let raw = String::from_utf8_lossy(&body).into_owned();
    let _ = s.tx.send(Received {
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    });
    StatusCode::from_u16(status).unwrap()
}

async fn collector(statuses: &[u16]) -> Collector {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = CollectorState {
        tx,
        statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
    };
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Collector {
        endpoint,
        rx,
        raw: Vec::new(),
    }
}

impl Collector {
    /// The next request, within a bound (the exporter sends at least once a second).
    async fn next(&mut self) -> Received {
        let r = tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("the collector received nothing within 10 s")
            .expect("the collector stopped");
        self.raw.push(r.raw.clone());
        r
    }

    /// Spans received until `done` holds for the spans so far (each request's resource kept
    /// beside its spans).
    async fn spans_until(
        &mut self,
        done: impl Fn(&[(Value, Value)]) -> bool,
    ) -> Vec<(Value, Value)> {
        let mut spans = Vec::new();
        while !done(&spans) {
            let r = self.next().await;
            assert_eq!(r.content_type, "application/json");
            for rs in r.body["resourceSpans"].as_array().expect("resourceSpans") {
                for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                    assert_eq!(ss["scope"]["name"], "baton");
                    for span in ss["spans"].as_array().expect("spans") {
                        spans.push((rs["resource"].clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

fn runtime(dir: &tempfile::TempDir) -> ServerRuntime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("b.db"), SqliteOptions::default()).unwrap());
    baton_engine::runtime(store, RuntimeOptions::default())
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn str_attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attr(span, key)?["stringValue"].as_str()
}

fn is_hex(s: &Value, len: usize) -> bool {
    s.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    })
}

fn nanos(span: &Value, key: &str) -> u64 {
    span[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a decimal string: {span}"))
        .parse()
        .unwrap()
}

fn task_span<'a>(spans: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s["name"] == name && str_attr(s, "baton.task.reference").is_some())
}

const TWO_SETS: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: two-sets, version: '1.0.0' }
do:
  - first:
      set: { a: 1, pass: '${ .password }' }
  - second:
      set: { b: 2 }
"#;

const SECRET_INPUT: &str = "hunter2-do-not-export";

#[tokio::test]
async fn each_task_is_a_span_in_the_instance_trace() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir);
    let mut col = collector(&[]).await;
    // Default options: what arrives comes from the one-second interval, not a flush.
    let exporter = OtlpExporter::start(col.endpoint.clone(), "baton-test", &rt);
    let program = rt.register_flow(TWO_SETS).await.unwrap();
    let id = rt
        .start(program, json!({ "password": SECRET_INPUT }))
        .await
        .unwrap();
    rt.wait(&id).await.unwrap();

    let spans = col
        .spans_until(|s| task_span(s, "first").is_some() && task_span(s, "second").is_some())
        .await;
    let expected_trace = hex::encode(&Sha256::digest(id.0.as_bytes())[..16]);
    assert_eq!(
        hex::encode(otlp::trace_id(&InstanceId(id.0.clone()))),
        expected_trace
    );
    let mut span_ids = Vec::new();
    for (name, reference) in [("first", "/do/0/first"), ("second", "/do/1/second")] {
        let (resource, span) = spans
            .iter()
            .find(|(_, s)| s["name"] == name)
            .expect("task span");
        assert_eq!(span["traceId"], expected_trace.as_str(), "{span}");
        assert!(is_hex(&span["traceId"], 32), "{span}");
        assert!(is_hex(&span["spanId"], 16), "{span}");
        // Top-level tasks are the roots of the instance's trace.
        assert!(span.get("parentSpanId").is_none(), "{span}");
        assert_eq!(span["kind"], 1);
        let (start, end) = (
            nanos(span, "startTimeUnixNano"),
            nanos(span, "endTimeUnixNano"),
        );
        assert!(start > 1_600_000_000_000_000_000, "{span}");
        assert!(end >= start, "{span}");
        assert_eq!(str_attr(span, "baton.instance"), Some(id.0.as_str()));
        assert_eq!(str_attr(span, "baton.task.reference"), Some(reference));
        assert_eq!(str_attr(span, "baton.task.phase"), Some("completed"));
        assert_eq!(span["status"]["code"], 1);
        assert_eq!(
            str_attr(resource, "service.name"),
            Some("baton-test"),
            "{resource}"
        );
        span_ids.push(span["spanId"].clone());
    }
    assert_ne!(span_ids[0], span_ids[1]);
    // The instance's input reached a task's output; neither is exported.
    assert!(col.raw.iter().all(|r| !r.contains(SECRET_INPUT)));
    assert_eq!(exporter.stats().dropped_export_failed, 0);
}

#[tokio::test]
async fn nested_tasks_are_children_and_skipped_tasks_are_spans() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir);
    let mut col = collector(&[]).await;
    let exporter = OtlpExporter::start(col.endpoint.clone(), "baton-test", &rt);
    let program = rt
        .register_flow(
            r#"
document: { dsl: '1.0.3', namespace: test, name: nested, version: '1.0.0' }
do:
  - outer:
      do:
        - inner:
            set: { a: 1 }
        - never:
            if: '${ false }'
            set: { b: 2 }
"#,
        )
        .await
        .unwrap();
    let id = rt.start(program, json!({})).await.unwrap();
    rt.wait(&id).await.unwrap();
    exporter.flush().await;
    let spans = col
        .spans_until(|s| {
            ["outer", "inner", "never"]
                .iter()
                .all(|n| task_span(s, n).is_some())
        })
        .await;
    let outer = task_span(&spans, "outer").unwrap();
    let inner = task_span(&spans, "inner").unwrap();
    let never = task_span(&spans, "never").unwrap();
    assert!(outer.get("parentSpanId").is_none());
    assert_eq!(inner["parentSpanId"], outer["spanId"]);
    assert_eq!(never["parentSpanId"], outer["spanId"]);
    assert_eq!(str_attr(never, "baton.task.phase"), Some("skipped"));
    assert_eq!(never["startTimeUnixNano"], never["endTimeUnixNano"]);
    assert!(nanos(outer, "startTimeUnixNano") <= nanos(inner, "startTimeUnixNano"));
    assert!(nanos(inner, "endTimeUnixNano") <= nanos(outer, "endTimeUnixNano"));
}

#[tokio::test]
async fn api_requests_are_spans_without_the_token() {
    const TOKEN: &str = "t-secret-bearer-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir);
    let mut col = collector(&[]).await;
    let exporter = OtlpExporter::start(col.endpoint.clone(), "baton-test", &rt);
    let config = load_config(
        &format!("tokens:\n  - {{ name: vic, token: {TOKEN}, roles: [viewer] }}\n"),
        &|_| None,
    )
    .unwrap();
    let state = AppState::new(rt, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(otlp::serve_with_tracing(
        listener,
        state,
        exporter.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{base}/v1/instances?limit=5&token={TOKEN}"))
        .bearer_auth(TOKEN)
        .header("cookie", format!("baton_token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http
        .get(format!("{base}/v1/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    exporter.flush().await;

    let spans = col
        .spans_until(|s| s.iter().filter(|(_, s)| s["kind"] == 2).count() >= 2)
        .await;
    let server: Vec<&Value> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s["kind"] == 2)
        .collect();
    let ok = server
        .iter()
        .find(|s| attr(s, "http.response.status_code") == Some(&json!({"intValue": "200"})))
        .expect("a span for the authenticated request");
    assert_eq!(ok["name"], "GET /v1/instances");
    assert_eq!(str_attr(ok, "http.request.method"), Some("GET"));
    assert_eq!(str_attr(ok, "http.route"), Some("/v1/instances"));
    assert!(is_hex(&ok["traceId"], 32) && is_hex(&ok["spanId"], 16));
    assert!(nanos(ok, "endTimeUnixNano") >= nanos(ok, "startTimeUnixNano"));
    // A refused request is the caller's error, not the server's.
    let refused = server
        .iter()
        .find(|s| attr(s, "http.response.status_code") == Some(&json!({"intValue": "401"})))
        .expect("a span for the refused request");
    assert!(refused.get("status").is_none(), "{refused}");
    // Not in the header, cookie or query string: nowhere in anything the collector got.
    assert!(!col.raw.is_empty());
    for raw in &col.raw {
        assert!(!raw.contains(TOKEN), "the token was exported: {raw}");
        assert!(!raw.contains("limit=5"), "the query string was exported");
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn retryable_failures_are_retried_then_refusals_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir);
    // 503 and 429 are retried; the third try succeeds. Then a 400 is final: that batch is
    // dropped without a retry.
    let mut col = collector(&[503, 429, 200, 400]).await;
    let options = OtlpOptions {
        interval_ms: 3_600_000,
        backoff_ms: 10,
        attempts: 3,
        ..OtlpOptions::default()
    };
    let exporter = OtlpExporter::start_with(col.endpoint.clone(), "baton-test", &rt, options);
    let program = rt.register_flow(TWO_SETS).await.unwrap();
    let id = rt.start(program.clone(), json!({})).await.unwrap();
    rt.wait(&id).await.unwrap();
    exporter.flush().await;
    for _ in 0..3 {
        col.next().await;
    }
    let stats = exporter.stats();
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.exported, 2, "{stats:?}");
    assert_eq!(stats.dropped_export_failed, 0, "{stats:?}");

    let id = rt.start(program, json!({})).await.unwrap();
    rt.wait(&id).await.unwrap();
    exporter.flush().await;
    col.next().await;
    let stats = exporter.stats();
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(stats.exported, 2, "{stats:?}");
    assert_eq!(stats.dropped_export_failed, 2, "{stats:?}");
    assert!(col.rx.try_recv().is_err(), "a refused batch was sent again");
}

#[tokio::test]
async fn an_unreachable_collector_costs_only_the_spans() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir);
    // A port that was just free: connections are refused.
    let endpoint = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let options = OtlpOptions {
        interval_ms: 3_600_000,
        backoff_ms: 1,
        attempts: 2,
        ..OtlpOptions::default()
    };
    let exporter = OtlpExporter::start_with(endpoint, "baton-test", &rt, options);
    let program = rt.register_flow(TWO_SETS).await.unwrap();
    let r = rt.run(program, json!({})).await.unwrap();
    assert_eq!(r.status, baton_core::Status::Completed);
    exporter.flush().await;
    let stats = exporter.stats();
    assert_eq!(stats.dropped_export_failed, 2, "{stats:?}");
    assert_eq!(stats.retries, 1, "{stats:?}");
    assert_eq!(stats.exported, 0, "{stats:?}");
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_spans() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir);
    let mut col = collector(&[]).await;
    // Nothing is sent before the flush: the interval is an hour and a batch is never full.
    let options = OtlpOptions {
        queue_max: 2,
        batch_max: 100,
        interval_ms: 3_600_000,
        ..OtlpOptions::default()
    };
    let exporter = OtlpExporter::start_with(col.endpoint.clone(), "baton-test", &rt, options);
    let program = rt
        .register_flow(
            r#"
document: { dsl: '1.0.3', namespace: test, name: four, version: '1.0.0' }
do:
  - t1: { set: { a: 1 } }
  - t2: { set: { a: 2 } }
  - t3: { set: { a: 3 } }
  - t4: { set: { a: 4 } }
"#,
        )
        .await
        .unwrap();
    rt.run(program, json!({})).await.unwrap();
    assert!(col.rx.try_recv().is_err(), "sent before the flush");
    exporter.flush().await;
    let spans = col.spans_until(|s| !s.is_empty()).await;
    let names: Vec<&str> = spans
        .iter()
        .map(|(_, s)| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t3", "t4"]);
    let stats = exporter.stats();
    assert_eq!(stats.dropped_queue_full, 2, "{stats:?}");
    assert_eq!(stats.exported, 2, "{stats:?}");
}
