//! OpenTelemetry traces over OTLP/HTTP with the JSON encoding, off unless an endpoint is given.
//!
//! Written by hand rather than with the opentelemetry crates: those bring a second HTTP stack and
//! a global tracer, and what Baton needs is small: one trace per instance with one span per task
//! (from the runtime's progress reports), and one span per API request.
//!
//! The body is an `ExportTraceServiceRequest` in OTLP's JSON mapping: ids are hex (not base64),
//! 64-bit integers (times, `intValue`) are decimal strings, enums are their numbers.
//!
//! Invariants:
//! - The engine never waits for the exporter: a progress report takes two short mutex sections
//!   and never awaits; the queue is bounded and drops its oldest spans when full (counted).
//! - Nothing secret is exported: span attributes are names, references, methods, route templates
//!   and status codes. Never headers (tokens), bodies, query strings, instance input or output.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use baton_core::{InstanceId, TaskEvent, TaskPhase};
use baton_engine::Clock;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::{AppState, ServerRuntime};

/// Tuning of the exporter. The defaults suit a collector on the same host or network.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// Finished spans waiting to be sent; past this the oldest are dropped.
    pub queue_max: usize,
    /// Spans per request; a full batch is sent without waiting for the interval.
    pub batch_max: usize,
    /// How often whatever is queued is sent.
    pub interval_ms: u64,
    /// Tries per batch (the first one included) before it is dropped.
    pub attempts: u32,
    /// First wait between tries; doubled each time, capped by `backoff_max_ms`.
    pub backoff_ms: u64,
    /// Longest wait between tries, also the cap on a collector's `Retry-After`.
    pub backoff_max_ms: u64,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Tasks started and not yet ended that are remembered. A task whose instance is cancelled
    /// or stops mid-task never ends, so without a bound these would accumulate.
    pub open_spans_max: usize,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        OtlpOptions {
            queue_max: 10_000,
            batch_max: 512,
            interval_ms: 1_000,
            attempts: 4,
            backoff_ms: 500,
            backoff_max_ms: 10_000,
            timeout_ms: 10_000,
            open_spans_max: 100_000,
        }
    }
}

/// What the exporter did so far (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpStats {
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans dropped because the queue was full (the oldest go first).
    pub dropped_queue_full: u64,
    /// Spans dropped after their batch failed every try (or was refused outright).
    pub dropped_export_failed: u64,
    /// Spans the collector answered as rejected (`partialSuccess.rejectedSpans`).
    pub rejected_by_collector: u64,
    /// Tries repeated after a retryable failure.
    pub retries: u64,
    /// Open task spans forgotten to keep the open-span map bounded.
    pub open_spans_evicted: u64,
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
    rejected_by_collector: AtomicU64,
    retries: AtomicU64,
    open_spans_evicted: AtomicU64,
    /// `dropped_queue_full` when it was last reported, to warn once per export round.
    queue_drops_reported: AtomicU64,
}

/// The trace id of every task span of an instance: the first 16 bytes of SHA-256 of its id, so
/// that spans recorded by another process (after a restart) land in the same trace.
pub fn trace_id(instance: &InstanceId) -> [u8; 16] {
    let digest = Sha256::digest(instance.0.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Checks an OTLP endpoint given by the operator (a clap `value_parser`): an http(s) URL with a
/// host. Without the check, `localhost:4318` would parse as a URL of scheme `localhost` and every
/// export would fail later, far from the mistake.
pub fn parse_endpoint(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected http://HOST:PORT or https://HOST:PORT".into());
    }
    Ok(s.to_string())
}

/// The URL without user and password, for messages: credentials in a URL must not reach logs.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// An error with its causes ("error sending request" alone does not say what went wrong), and
/// without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A non-zero random id (all zeroes means "no id" in OTLP).
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanKind {
    Internal = 1,
    Server = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanStatus {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

#[derive(Debug, Clone)]
enum Attr {
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    start_ms: u64,
    end_ms: u64,
    attributes: Vec<(&'static str, Attr)>,
    status: SpanStatus,
}

fn attr_json(key: &str, value: &Attr) -> Value {
    let value = match value {
        Attr::Str(s) => json!({ "stringValue": s }),
        // int64 is a decimal string in OTLP/JSON (JavaScript numbers lose precision past 2^53).
        Attr::Int(n) => json!({ "intValue": n.to_string() }),
    };
    json!({ "key": key, "value": value })
}

fn unix_nanos(ms: u64) -> String {
    ms.saturating_mul(1_000_000).to_string()
}

impl SpanData {
    fn to_json(&self) -> Value {
        let mut span = json!({
            "traceId": hex::encode(self.trace_id),
            "spanId": hex::encode(self.span_id),
            "name": self.name,
            "kind": self.kind as u8,
            "startTimeUnixNano": unix_nanos(self.start_ms),
            "endTimeUnixNano": unix_nanos(self.end_ms),
            "attributes": self
                .attributes
                .iter()
                .map(|(k, v)| attr_json(k, v))
                .collect::<Vec<_>>(),
        });
        if let Some(parent) = self.parent {
            span["parentSpanId"] = json!(hex::encode(parent));
        }
        if self.status != SpanStatus::Unset {
            span["status"] = json!({ "code": self.status as u8 });
        }
        span
    }
}

/// A task that started and has not ended yet.
struct OpenSpan {
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    start_ms: u64,
    /// Start order, to evict the oldest when the map is full.
    seq: u64,
}

/// Open task spans by instance, then by task reference (a JSON Pointer; a nested task's
/// reference extends its parent's, which is how the parent span is found).
#[derive(Default)]
struct OpenSpans {
    by_instance: HashMap<String, HashMap<String, OpenSpan>>,
    len: usize,
    seq: u64,
}

impl OpenSpans {
    /// The span of the closest enclosing task still open in this instance.
    fn parent_of(&self, instance: &str, reference: &str) -> Option<[u8; 8]> {
        let spans = self.by_instance.get(instance)?;
        let mut prefix = reference;
        while let Some(cut) = prefix.rfind('/') {
            prefix = &prefix[..cut];
            if let Some(open) = spans.get(prefix) {
                return Some(open.span_id);
            }
        }
        None
    }

    fn remove(&mut self, instance: &str, reference: &str) -> Option<OpenSpan> {
        let spans = self.by_instance.get_mut(instance)?;
        let open = spans.remove(reference)?;
        if spans.is_empty() {
            self.by_instance.remove(instance);
        }
        self.len -= 1;
        Some(open)
    }

    /// Forgets the oldest quarter; returns how many. A quarter rather than one so that the
    /// O(n) pass is paid once per n/4 starts.
    fn evict_oldest(&mut self) -> usize {
        let mut seqs: Vec<u64> = self
            .by_instance
            .values()
            .flat_map(|m| m.values().map(|o| o.seq))
            .collect();
        if seqs.is_empty() {
            return 0;
        }
        let n = (seqs.len() / 4).max(1);
        let (_, cutoff, _) = seqs.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        for spans in self.by_instance.values_mut() {
            spans.retain(|_, o| o.seq > cutoff);
        }
        self.by_instance.retain(|_, m| !m.is_empty());
        let before = self.len;
        self.len = self.by_instance.values().map(HashMap::len).sum();
        before - self.len
    }
}

struct Inner {
    url: String,
    options: OtlpOptions,
    clock: Arc<dyn Clock>,
    /// `resourceSpans[].resource` and `scope`, the same in every request.
    resource: Value,
    scope: Value,
    queue: Mutex<VecDeque<SpanData>>,
    open: Mutex<OpenSpans>,
    counters: Counters,
    /// Wakes the worker when a full batch is queued.
    wake: Arc<Notify>,
    /// Flush requests; dropping the sender (with the last handle) stops the worker.
    flushes: mpsc::Sender<oneshot::Sender<()>>,
}

/// The exporter: cheap to clone; every clone feeds the same queue and worker.
#[derive(Clone)]
pub struct OtlpExporter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("url", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// Starts exporting to `endpoint` (the collector's base URL, e.g. `http://127.0.0.1:4318`;
    /// `/v1/traces` is added) and records a span for every task of every instance of `runtime`.
    /// Must be called inside a tokio runtime: the sender is a background task. Tracing lasts
    /// while a handle (or a router made with it) is alive.
    pub fn start(endpoint: String, service_name: &str, runtime: &ServerRuntime) -> OtlpExporter {
        OtlpExporter::start_with(endpoint, service_name, runtime, OtlpOptions::default())
    }

    pub fn start_with(
        endpoint: String,
        service_name: &str,
        runtime: &ServerRuntime,
        options: OtlpOptions,
    ) -> OtlpExporter {
        let exporter = OtlpExporter::detached(endpoint, service_name, runtime.clock(), options);
        let weak = Arc::downgrade(&exporter.inner);
        runtime.on_progress(move |id, ev| {
            // Weak: the runtime keeps its listeners for ever; once every handle of the exporter
            // is gone, reports cost one failed upgrade and nothing is queued.
            if let Some(inner) = weak.upgrade() {
                inner.on_task(id, ev);
            }
        });
        exporter
    }

    /// The exporter without the runtime's progress hook (request spans only).
    fn detached(
        endpoint: String,
        service_name: &str,
        clock: &Arc<dyn Clock>,
        options: OtlpOptions,
    ) -> OtlpExporter {
        // ring is the only crypto provider compiled in; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(options.timeout_ms))
            .connect_timeout(Duration::from_millis(options.timeout_ms.min(5_000)))
            // A collector has no reason to redirect; following one could send spans elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        };
        let (flushes, flush_rx) = mpsc::channel(16);
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            url,
            clock: clock.clone(),
            resource: json!({
                "attributes": [
                    attr_json("service.name", &Attr::Str(service_name.to_string())),
                    attr_json("service.version", &Attr::Str(env!("CARGO_PKG_VERSION").into())),
                    attr_json("telemetry.sdk.name", &Attr::Str("baton".into())),
                    attr_json("telemetry.sdk.language", &Attr::Str("rust".into())),
                ]
            }),
            scope: json!({ "name": "baton", "version": env!("CARGO_PKG_VERSION") }),
            queue: Mutex::new(VecDeque::new()),
            open: Mutex::new(OpenSpans::default()),
            counters: Counters::default(),
            wake: wake.clone(),
            flushes,
            options,
        });
        tokio::spawn(worker(
            Arc::downgrade(&inner),
            clock.clone(),
            wake,
            flush_rx,
            http,
        ));
        OtlpExporter { inner }
    }

    /// Sends everything queued now and returns when that is done (sent, or dropped after its
    /// tries). For a clean shutdown; bound it with a timeout, since tries take time.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.flushes.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Where spans go (`…/v1/traces`), without credentials.
    pub fn endpoint(&self) -> String {
        redacted(&self.inner.url)
    }

    pub fn stats(&self) -> OtlpStats {
        let c = &self.inner.counters;
        OtlpStats {
            exported: c.exported.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_export_failed: c.dropped_export_failed.load(Ordering::Relaxed),
            rejected_by_collector: c.rejected_by_collector.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            open_spans_evicted: c.open_spans_evicted.load(Ordering::Relaxed),
        }
    }

    /// Records one API request as a server span of its own trace.
    fn record_request(&self, method: &str, route: Option<&str>, status: u16, start_ms: u64) {
        let end_ms = self.inner.clock.now_ms().max(start_ms);
        // The route template (`/v1/instances/{id}`), never the raw path or query: names stay
        // few, and nothing a caller put in the URL is exported.
        let name = match route {
            Some(r) => format!("{method} {r}"),
            None => method.to_string(),
        };
        let mut attributes = vec![
            ("http.request.method", Attr::Str(method.to_string())),
            ("http.response.status_code", Attr::Int(i64::from(status))),
        ];
        if let Some(r) = route {
            attributes.push(("http.route", Attr::Str(r.to_string())));
        }
        self.inner.enqueue(SpanData {
            trace_id: random_id(),
            span_id: random_id(),
            parent: None,
            name,
            kind: SpanKind::Server,
            start_ms,
            end_ms,
            attributes,
            // For a server span only a 5xx is the server's error; a 4xx is the caller's, and
            // success is left unset as the HTTP semantic conventions ask.
            status: if status >= 500 {
                SpanStatus::Error
            } else {
                SpanStatus::Unset
            },
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Called on the driver's task for every task event: no awaiting, no IO.
    fn on_task(&self, id: &InstanceId, ev: &TaskEvent) {
        let now = self.clock.now_ms();
        let mut open = lock(&self.open);
        if ev.phase == TaskPhase::Started {
            if open.len >= self.options.open_spans_max {
                let n = open.evict_oldest();
                self.counters
                    .open_spans_evicted
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            let parent = open.parent_of(&id.0, &ev.reference);
            open.seq += 1;
            let seq = open.seq;
            let span = OpenSpan {
                span_id: random_id(),
                parent,
                start_ms: now,
                seq,
            };
            let spans = open.by_instance.entry(id.0.clone()).or_default();
            if spans.insert(ev.reference.clone(), span).is_none() {
                open.len += 1;
            }
            return;
        }
        let (span_id, parent, start_ms) = match open.remove(&id.0, &ev.reference) {
            Some(o) => (o.span_id, o.parent, o.start_ms),
            // A skipped task (its `if` was false) never starts: a span of no length says so.
            None if ev.phase == TaskPhase::Skipped => {
                (random_id(), open.parent_of(&id.0, &ev.reference), now)
            }
            // Started before this process (resumed after a restart): its start is unknown, and
            // a span with a made-up start would show a false duration.
            None => return,
        };
        drop(open);
        let (phase, status) = match ev.phase {
            TaskPhase::Completed => ("completed", SpanStatus::Ok),
            TaskPhase::Skipped => ("skipped", SpanStatus::Ok),
            TaskPhase::Faulted => ("faulted", SpanStatus::Error),
            // A compensation reports on a task whose span has ended already.
            TaskPhase::Started
            | TaskPhase::Compensated
            | TaskPhase::CompensationSkipped
            | TaskPhase::CompensationUnresolved => return,
        };
        self.enqueue(SpanData {
            trace_id: trace_id(id),
            span_id,
            parent,
            name: ev.name.clone(),
            kind: SpanKind::Internal,
            start_ms,
            end_ms: now.max(start_ms),
            attributes: vec![
                ("baton.instance", Attr::Str(id.0.clone())),
                ("baton.task.name", Attr::Str(ev.name.clone())),
                ("baton.task.reference", Attr::Str(ev.reference.clone())),
                ("baton.task.phase", Attr::Str(phase.into())),
            ],
            status,
        });
    }

    fn enqueue(&self, span: SpanData) {
        let len = {
            let mut q = lock(&self.queue);
            if q.len() >= self.options.queue_max {
                // The oldest go first: recent spans say more about what is happening now.
                q.pop_front();
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(span);
            q.len()
        };
        if len >= self.options.batch_max {
            self.wake.notify_one();
        }
    }

    /// Sends what is queued, in batches; with `full_only`, only full batches (the interval has
    /// not come yet).
    async fn export_pending(&self, http: &reqwest::Client, full_only: bool) {
        loop {
            let batch: Vec<SpanData> = {
                let mut q = lock(&self.queue);
                if q.is_empty() || (full_only && q.len() < self.options.batch_max) {
                    break;
                }
                let n = q.len().min(self.options.batch_max);
                q.drain(..n).collect()
            };
            self.send(http, batch).await;
        }
        let dropped = self.counters.dropped_queue_full.load(Ordering::Relaxed);
        let reported = self
            .counters
            .queue_drops_reported
            .swap(dropped, Ordering::Relaxed);
        if dropped > reported {
            tracing::warn!(
                dropped = dropped - reported,
                total = dropped,
                "OTLP export queue full: oldest spans dropped"
            );
        }
    }

    fn body(&self, spans: &[SpanData]) -> Vec<u8> {
        let body = json!({
            "resourceSpans": [{
                "resource": self.resource,
                "scopeSpans": [{
                    "scope": self.scope,
                    "spans": spans.iter().map(SpanData::to_json).collect::<Vec<_>>(),
                }],
            }],
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// One batch, with bounded tries. Never panics; a batch that cannot be sent is dropped with
    /// a warning and counted.
    async fn send(&self, http: &reqwest::Client, spans: Vec<SpanData>) {
        let n = spans.len() as u64;
        let body = self.body(&spans);
        let mut backoff = self.options.backoff_ms;
        let mut last_error = String::new();
        for attempt in 1..=self.options.attempts.max(1) {
            let answer = http
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let retry_after_ms = match answer {
                Ok(resp) if resp.status().is_success() => {
                    let rejected = resp
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| rejected_spans(&v))
                        .unwrap_or(0)
                        .min(n);
                    if rejected > 0 {
                        self.counters
                            .rejected_by_collector
                            .fetch_add(rejected, Ordering::Relaxed);
                        tracing::warn!(rejected, "OTLP collector rejected spans");
                    }
                    self.counters
                        .exported
                        .fetch_add(n - rejected, Ordering::Relaxed);
                    return;
                }
                // The only statuses OTLP/HTTP says to retry; any other refusal is final.
                Ok(resp) if matches!(resp.status().as_u16(), 429 | 502 | 503 | 504) => {
                    last_error = format!("HTTP {}", resp.status().as_u16());
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| s.saturating_mul(1000))
                }
                Ok(resp) => {
                    last_error = format!("HTTP {} (not retryable)", resp.status().as_u16());
                    break;
                }
                // Connection refused, timeout...: the collector may come back.
                Err(e) => {
                    last_error = describe(e);
                    None
                }
            };
            if attempt >= self.options.attempts {
                break;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let wait = retry_after_ms
                .unwrap_or(backoff)
                .min(self.options.backoff_max_ms);
            self.clock.sleep_until(self.clock.now_ms() + wait).await;
            backoff = backoff.saturating_mul(2).min(self.options.backoff_max_ms);
        }
        let total = self
            .counters
            .dropped_export_failed
            .fetch_add(n, Ordering::Relaxed)
            + n;
        tracing::warn!(
            spans = n,
            total,
            error = %last_error,
            url = %redacted(&self.url),
            "OTLP export failed: spans dropped"
        );
    }
}

/// `partialSuccess.rejectedSpans` of an `ExportTraceServiceResponse` (an int64, so a string in
/// JSON; a number is accepted too).
fn rejected_spans(v: &Value) -> Option<u64> {
    let r = v.get("partialSuccess")?.get("rejectedSpans")?;
    r.as_u64().or_else(|| r.as_str()?.parse().ok())
}

/// Sends on the interval, on a full batch, or when asked to flush. Holds the exporter weakly:
/// it stops once the last handle is dropped.
async fn worker(
    inner: Weak<Inner>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    http: reqwest::Client,
) {
    let Some(interval) = inner.upgrade().map(|i| i.options.interval_ms.max(1)) else {
        return;
    };
    let mut next = clock.now_ms() + interval;
    loop {
        let reply = tokio::select! {
            r = flushes.recv() => match r {
                Some(tx) => Some(tx),
                // The last handle is gone: nothing can be queued any more.
                None => return,
            },
            _ = wake.notified() => None,
            _ = clock.sleep_until(next) => None,
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let now = clock.now_ms();
        let due = now >= next;
        if due {
            next = now + interval;
        }
        inner.export_pending(&http, reply.is_none() && !due).await;
        if let Some(tx) = reply {
            let _ = tx.send(());
        }
    }
}

/// Axum middleware recording each request as a span: method, route template and status. Never
/// headers (bearer tokens, cookies), bodies or query strings.
pub async fn trace_requests(
    State(exporter): State<OtlpExporter>,
    req: Request,
    next: Next,
) -> Response {
    let start_ms = exporter.inner.clock.now_ms();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let resp = next.run(req).await;
    exporter.record_request(&method, route.as_deref(), resp.status().as_u16(), start_ms);
    resp
}

/// [`crate::router`] with a span per request. Added with `Router::layer`, so it runs after
/// routing and sees the matched route template.
pub fn router_with_tracing(state: Arc<AppState>, exporter: OtlpExporter) -> Router {
    crate::router(state).layer(axum::middleware::from_fn_with_state(
        exporter,
        trace_requests,
    ))
}

/// [`crate::serve`] with request spans.
pub async fn serve_with_tracing(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    exporter: OtlpExporter,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router_with_tracing(state, exporter))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_at(spans: &mut OpenSpans, instance: &str, reference: &str) -> [u8; 8] {
        let parent = spans.parent_of(instance, reference);
        spans.seq += 1;
        let id = random_id();
        spans
            .by_instance
            .entry(instance.into())
            .or_default()
            .insert(
                reference.into(),
                OpenSpan {
                    span_id: id,
                    parent,
                    start_ms: 0,
                    seq: spans.seq,
                },
            );
        spans.len += 1;
        id
    }

    #[test]
    fn the_parent_is_the_closest_open_enclosing_task() {
        let mut spans = OpenSpans::default();
        let outer = open_at(&mut spans, "i1", "/do/0/outer");
        let _other = open_at(&mut spans, "i2", "/do/0/outer/do/0/inner");
        assert_eq!(spans.parent_of("i1", "/do/0/outer/do/0/inner"), Some(outer));
        assert_eq!(spans.parent_of("i1", "/do/1/next"), None);
        // Another instance's open tasks are never parents.
        assert_eq!(spans.parent_of("i3", "/do/0/outer/do/0/inner"), None);
        assert!(spans.remove("i1", "/do/0/outer").is_some());
        assert_eq!(spans.parent_of("i1", "/do/0/outer/do/0/inner"), None);
        assert!(!spans.by_instance.contains_key("i1"));
    }

    #[test]
    fn eviction_forgets_the_oldest_quarter() {
        let mut spans = OpenSpans::default();
        for i in 0..8 {
            open_at(&mut spans, &format!("i{}", i % 3), &format!("/do/{i}/t"));
        }
        assert_eq!(spans.evict_oldest(), 2);
        assert_eq!(spans.len, 6);
        // The first two started (seq 1 and 2: i0's /do/0 and i1's /do/1) are the ones gone.
        assert!(spans.remove("i0", "/do/0/t").is_none());
        assert!(spans.remove("i1", "/do/1/t").is_none());
        assert!(spans.remove("i2", "/do/2/t").is_some());
    }

    #[test]
    fn endpoints_are_checked_and_shown_without_credentials() {
        assert!(parse_endpoint("http://127.0.0.1:4318").is_ok());
        assert!(parse_endpoint("https://otel.example.com").is_ok());
        assert!(parse_endpoint("localhost:4318").is_err());
        assert!(parse_endpoint("127.0.0.1:4318").is_err());
        assert_eq!(
            redacted("https://user:pw@otel.example.com/v1/traces"),
            "https://otel.example.com/v1/traces"
        );
    }

    #[test]
    fn trace_ids_are_stable_per_instance() {
        let a = trace_id(&InstanceId("inst-1".into()));
        assert_eq!(a, trace_id(&InstanceId("inst-1".into())));
        assert_ne!(a, trace_id(&InstanceId("inst-2".into())));
    }

    #[test]
    fn span_json_follows_the_otlp_json_mapping() {
        let span = SpanData {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent: Some([0x02; 8]),
            name: "t".into(),
            kind: SpanKind::Internal,
            start_ms: 1_700_000_000_123,
            end_ms: 1_700_000_000_456,
            attributes: vec![("n", Attr::Int(200)), ("s", Attr::Str("x".into()))],
            status: SpanStatus::Error,
        }
        .to_json();
        assert_eq!(span["traceId"], "ab".repeat(16));
        assert_eq!(span["spanId"], "01".repeat(8));
        assert_eq!(span["parentSpanId"], "02".repeat(8));
        assert_eq!(span["kind"], 1);
        assert_eq!(span["startTimeUnixNano"], "1700000000123000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000456000000");
        assert_eq!(
            span["attributes"][0],
            json!({"key": "n", "value": {"intValue": "200"}})
        );
        assert_eq!(
            span["attributes"][1],
            json!({"key": "s", "value": {"stringValue": "x"}})
        );
        assert_eq!(span["status"], json!({"code": 2}));
        assert_eq!(
            rejected_spans(&json!({"partialSuccess": {"rejectedSpans": "3"}})),
            Some(3)
        );
    }
}
