//! `/metrics` in the Prometheus text format. Live measurements (step latencies, events) are
//! recorded as they happen; figures that other parts already keep (instances by status, the
//! provider layer's counters, breaker and limiter state, approvals) are read at scrape time.

use baton_engine::Features;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use baton_store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::problem::ApiResult;
use crate::{AppState, ServerRuntime};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabel {
    shadow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowCount {
    shadow: String,
    count: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderOutcome {
    provider: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderQuantile {
    provider: String,
    quantile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// Open step timings, bounded: an instance cancelled mid-step leaves its start behind.
const OPEN_STEPS_MAX: usize = 100_000;

pub struct Metrics {
    registry: Registry,
    instances: Family<StatusLabel, Gauge>,
    step_seconds: Family<TaskLabel, Histogram>,
    provider_calls: Family<ProviderOutcome, Counter>,
    provider_retries: Family<ProviderLabel, Counter>,
    limiter_waits: Family<ProviderLabel, Counter>,
    limiter_wait_ms: Family<ProviderLabel, Counter>,
    breaker_state: Family<ProviderLabel, Gauge>,
    limiter_tokens: Family<ProviderLabel, Gauge>,
    provider_latency: Family<ProviderQuantile, Gauge>,
    approvals: Family<StateLabel, Gauge>,
    events: Family<OutcomeLabel, Counter>,
    compensations: Family<OutcomeLabel, Counter>,
    shadow_agreement: Family<ShadowLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    shadow_cases: Family<ShadowCount, Gauge>,
    /// Last seen values of the provider layer's cumulative counters, to add only the difference.
    seen: Mutex<HashMap<(String, String), u64>>,
    open_steps: Arc<Mutex<HashMap<(String, String), u64>>>,
}

fn step_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let instances = Family::<StatusLabel, Gauge>::default();
        registry.register("instances", "Instances by status", instances.clone());
        let step_seconds = Family::<TaskLabel, Histogram>::new_with_constructor(
            step_histogram as fn() -> Histogram,
        );
        registry.register(
            "step_duration_seconds",
            "Time from a task's start to its end, by task name",
            step_seconds.clone(),
        );
        let provider_calls = Family::<ProviderOutcome, Counter>::default();
        registry.register(
            "provider_calls",
            "Provider calls by outcome (ok, failed, unknown, stale)",
            provider_calls.clone(),
        );
        let provider_retries = Family::<ProviderLabel, Counter>::default();
        registry.register(
            "provider_retries",
            "Retried provider calls",
            provider_retries.clone(),
        );
        let limiter_waits = Family::<ProviderLabel, Counter>::default();
        registry.register(
            "limiter_waits",
            "Calls that waited for a rate-limit token",
            limiter_waits.clone(),
        );
        let limiter_wait_ms = Family::<ProviderLabel, Counter>::default();
        registry.register(
            "limiter_wait_milliseconds",
            "Time spent waiting for rate-limit tokens",
            limiter_wait_ms.clone(),
        );
        let breaker_state = Family::<ProviderLabel, Gauge>::default();
        registry.register(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        let limiter_tokens = Family::<ProviderLabel, Gauge>::default();
        registry.register(
            "limiter_tokens",
            "Rate-limit tokens available now",
            limiter_tokens.clone(),
        );
        let provider_latency = Family::<ProviderQuantile, Gauge>::default();
        registry.register(
            "provider_latency_milliseconds",
            "Provider request latency quantiles (0.5, 0.99), to the resolution of fixed buckets",
            provider_latency.clone(),
        );
        let approvals = Family::<StateLabel, Gauge>::default();
        registry.register(
            "approvals",
            "Open approval tasks (state=open) and those past their due time (state=late)",
            approvals.clone(),
        );
        let events = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "events",
            "Inbound events by outcome (accepted, duplicate, quarantined, ...)",
            events.clone(),
        );
        let shadow_agreement =
            Family::<ShadowLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "shadow_agreement_ratio",
            "Share of compared shadow cases whose outputs agreed with the live decision",
            shadow_agreement.clone(),
        );
        let compensations = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "compensations",
            "Compensations by outcome (compensated, skipped, unresolved) since the start",
            compensations.clone(),
        );
        let shadow_cases = Family::<ShadowCount, Gauge>::default();
        registry.register(
            "shadow_cases",
            "Shadow cases: all, compared, agreed",
            shadow_cases.clone(),
        );
        Metrics {
            registry,
            compensations,
            shadow_agreement,
            shadow_cases,
            instances,
            step_seconds,
            provider_calls,
            provider_retries,
            limiter_waits,
            limiter_wait_ms,
            breaker_state,
            limiter_tokens,
            provider_latency,
            approvals,
            events,
            seen: Mutex::new(HashMap::new()),
            open_steps: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Times every task of every instance through the runtime's progress reports.
    pub fn watch_steps(&self, runtime: &ServerRuntime) {
        let open = self.open_steps.clone();
        let hist = self.step_seconds.clone();
        let compensations = self.compensations.clone();
        let clock = runtime.clock().clone();
        runtime.on_progress(move |id, ev| {
            let key = (id.0.clone(), ev.reference.clone());
            let now = clock.now_ms();
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            let undone = match ev.phase {
                baton_core::TaskPhase::Compensated => Some("compensated"),
                baton_core::TaskPhase::CompensationSkipped => Some("skipped"),
                baton_core::TaskPhase::CompensationUnresolved => Some("unresolved"),
                _ => None,
            };
            if let Some(outcome) = undone {
                compensations
                    .get_or_create(&OutcomeLabel {
                        outcome: outcome.to_string(),
                    })
                    .inc();
                return;
            }
            match ev.phase {
                baton_core::TaskPhase::Started => {
                    if open.len() >= OPEN_STEPS_MAX {
                        open.clear();
                    }
                    open.insert(key, now);
                }
                _ => {
                    if let Some(start) = open.remove(&key) {
                        hist.get_or_create(&TaskLabel {
                            task: ev.name.clone(),
                        })
                        .observe(now.saturating_sub(start) as f64 / 1000.0);
                    }
                }
            }
        });
    }

    fn add_seen(&self, counter: &Counter, key: (String, String), now: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(key).or_insert(0);
        if now > *last {
            counter.inc_by(now - *last);
            *last = now;
        }
    }

    /// Reads the figures kept elsewhere into the registry.
    /// Agreement per shadow, from its cases (read at scrape time, like the instance counts).
    async fn refresh_shadows(&self, state: &AppState) -> ApiResult<()> {
        let shadows = state.runtime.shadows();
        for reg in shadows.list().await? {
            let report = shadows.report(&reg.name, None, None).await?;
            if let Some(rate) = report.agreement_rate {
                self.shadow_agreement
                    .get_or_create(&ShadowLabel {
                        shadow: reg.name.clone(),
                    })
                    .set(rate);
            }
            for (count, n) in [
                ("cases", report.cases),
                ("compared", report.compared),
                ("agreed", report.agreed),
            ] {
                self.shadow_cases
                    .get_or_create(&ShadowCount {
                        shadow: reg.name.clone(),
                        count: count.into(),
                    })
                    .set(n as i64);
            }
        }
        Ok(())
    }

    async fn refresh(&self, state: &AppState) -> ApiResult<()> {
        let counts = state.runtime.store().instance_counts().await?;
        for s in [
            baton_core::Status::Pending,
            baton_core::Status::Running,
            baton_core::Status::Waiting,
            baton_core::Status::Suspended,
            baton_core::Status::Cancelled,
            baton_core::Status::Faulted,
            baton_core::Status::Completed,
        ] {
            let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
            self.instances
                .get_or_create(&StatusLabel {
                    status: s.as_str().into(),
                })
                .set(n as i64);
        }
        self.refresh_shadows(state).await?;
        if let Some(t) = state.triggers.get() {
            let c = serde_json::to_value(t.counters()).unwrap_or_default();
            for outcome in [
                "accepted",
                "duplicate",
                "quarantined",
                "unmatched",
                "started",
                "signalled",
                "debounced",
                "gated_out",
                "replayed",
                "echoes",
                "echoes_suppressed",
                "expected_changes",
            ] {
                let n = c.get(outcome).and_then(Value::as_u64).unwrap_or(0);
                let counter = self.events.get_or_create(&OutcomeLabel {
                    outcome: outcome.into(),
                });
                self.add_seen(&counter, ("events".into(), outcome.into()), n);
            }
        }
        if let Some(Value::Object(providers)) = state.runtime.provider_snapshot() {
            for (name, p) in providers {
                let num = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
                let pl = ProviderLabel {
                    provider: name.clone(),
                };
                for outcome in ["ok", "failed", "unknown", "stale"] {
                    let c = self.provider_calls.get_or_create(&ProviderOutcome {
                        provider: name.clone(),
                        outcome: outcome.into(),
                    });
                    self.add_seen(&c, (name.clone(), outcome.into()), num(outcome));
                }
                let c = self.provider_retries.get_or_create(&pl);
                self.add_seen(&c, (name.clone(), "retries".into()), num("retries"));
                let c = self.limiter_waits.get_or_create(&pl);
                self.add_seen(
                    &c,
                    (name.clone(), "limiter_waits".into()),
                    num("limiter_waits"),
                );
                let c = self.limiter_wait_ms.get_or_create(&pl);
                self.add_seen(
                    &c,
                    (name.clone(), "limiter_wait_ms".into()),
                    num("limiter_wait_ms"),
                );
                let breaker = match p.get("breaker").and_then(Value::as_str) {
                    Some(s) if s.contains("half") => 1,
                    Some(s) if s.contains("open") => 2,
                    _ => 0,
                };
                self.breaker_state.get_or_create(&pl).set(breaker);
                for (q, key) in [("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")] {
                    if let Some(ms) = p.get(key).and_then(Value::as_i64) {
                        self.provider_latency
                            .get_or_create(&ProviderQuantile {
                                provider: name.clone(),
                                quantile: q.into(),
                            })
                            .set(ms);
                    }
                }
                if let Some(t) = p.get("tokens").and_then(Value::as_i64) {
                    self.limiter_tokens.get_or_create(&pl).set(t);
                }
            }
        }
        Ok(())
    }

    pub fn set_approvals(&self, open: u64, late: u64) {
        self.approvals
            .get_or_create(&StateLabel {
                state: "open".into(),
            })
            .set(open as i64);
        self.approvals
            .get_or_create(&StateLabel {
                state: "late".into(),
            })
            .set(late as i64);
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail for want of space; an error would be a bug in a
        // metric's encoder, and an empty page says so better than a panic.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(scrape))
}

/// Metrics are readable without a token, as scrapers expect; they carry counts and names of
/// flows, tasks and providers, never data or secrets.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 503, body = crate::ProblemDoc)))]
pub async fn scrape(State(state): State<Arc<AppState>>) -> ApiResult<Response> {
    state.metrics.refresh(&state).await?;
    crate::api::refresh_approval_metrics(&state).await?;
    let mut resp = state.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}
