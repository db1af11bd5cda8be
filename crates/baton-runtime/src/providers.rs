//! The provider layer: every call to a declared provider goes through one shared gate per
//! provider (concurrency cap, token bucket, circuit breaker) and ends in an honest outcome.
//!
//! A call's path: breaker → concurrency slot → rate token → send → classify. Transient answers
//! (429, 5xx, 408, no connection) are retried with backoff (honouring `Retry-After`, which also
//! holds the provider's limiter for everyone); when they run out, or the breaker is open, the
//! declared fallbacks are tried in order. An answer lost after sending is `unknown` and is
//! reconciled before anything else: the provider's reconcile operation asks whether the key was
//! applied (not applied: send again; applied: its answer is the value), or, for an idempotent
//! provider, the request is re-sent with the same key. `202 Accepted` is polled with backoff
//! until done, failed or its deadline. Each of these steps is journaled as a note on the effect.
//!
//! The gate state lives in this process; [`baton_provider::RateLimiter`] is the seam where a
//! store-backed limiter can share one provider's budget across nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_core::http::scalar_text;
use baton_core::{EffectCall, ErrorKind, HttpOutput, HttpRequest, Outcome, Problem};
use baton_provider::catalog::{AuthSpec, RetryOn, SecretRef};
use baton_provider::classify::{Answer, check_data, reconcile_answer};
use baton_provider::{
    Admit, Breaker, Catalog, Operation, Provider, RateLimiter, TokenBucket, Transition, Verdict,
    classify,
};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::Clock;
use crate::http::{ProviderAuth, RawAnswer, Sent, send, shape_value};

/// Re-sends after an unknown outcome (reconciled as not applied, or idempotent re-send).
const RESENDS_MAX: u32 = 3;

/// Where secrets referenced by the catalogue come from.
#[derive(Default, Clone)]
pub struct Secrets {
    /// Keys of the secrets file (`secret: NAME`).
    pub file: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} keys, values hidden)", self.file.len())
    }
}

impl Secrets {
    fn resolve(&self, r: &SecretRef) -> Result<String, String> {
        match (&r.env, &r.secret) {
            (Some(var), _) => {
                std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"))
            }
            (None, Some(name)) => self
                .file
                .get(name)
                .cloned()
                .ok_or_else(|| format!("the secrets file has no `{name}`")),
            (None, None) => Err("empty secret reference".to_string()),
        }
    }
}

/// Counters of one provider, for `baton show`, the providers page and metrics.
#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
    stale: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    limiter_waits: AtomicU64,
    limiter_wait_ms: AtomicU64,
    rejected_open: AtomicU64,
    breaker_transitions: AtomicU64,
    fallbacks: AtomicU64,
    reconciled_applied: AtomicU64,
    reconciled_not_applied: AtomicU64,
    polls: AtomicU64,
    latency: Latency,
}

/// Upper bounds (ms) of the latency buckets; the last bucket holds everything slower.
const LATENCY_BOUNDS_MS: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// A fixed-bucket histogram of request latencies: lock-free to record, and enough to answer
/// "p50 and p99" within a bucket's resolution on the dashboard and in snapshots.
#[derive(Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
}

impl Latency {
    fn record(&self, ms: u64) {
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound of the bucket holding the `q` quantile (None without samples; the
    /// slowest bucket reports the largest bound).
    fn quantile_ms(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS[i.min(LATENCY_BOUNDS_MS.len() - 1)]);
            }
        }
        LATENCY_BOUNDS_MS.last().copied()
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One provider's shared gate.
struct Gate {
    provider: Arc<Provider>,
    follow: reqwest::Client,
    no_follow: reqwest::Client,
    auth: Option<ProviderAuth>,
    limiter: Option<Arc<dyn RateLimiter>>,
    slots: Option<Semaphore>,
    breaker: Option<Breaker>,
    counters: Counters,
}

/// What a call asks for.
pub(crate) enum Target<'a> {
    /// `call: provider` with a named operation and its arguments.
    Operation { operation: &'a str, args: &'a Value },
    /// A `call: http` whose URI is under the provider's base URL.
    Http(&'a HttpRequest),
}

/// The shared provider layer of a process.
pub struct ProviderLayer {
    catalog: Arc<Catalog>,
    gates: BTreeMap<String, Gate>,
}

impl std::fmt::Debug for ProviderLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderLayer")
            .field("providers", &self.gates.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A note about the effect under way, journaled by the driver.
pub(crate) use baton_api::Notes;

enum Attempted {
    /// The call ended (in any outcome); no fallback.
    Done(Outcome),
    /// This provider cannot serve the call now (breaker open, transient failures exhausted):
    /// a fallback may.
    Unavailable(Problem),
}

impl ProviderLayer {
    /// Binds a checked catalogue: resolves secrets and builds each provider's gate. `now_ms`
    /// fills the token buckets.
    pub fn new(catalog: Catalog, secrets: &Secrets, now_ms: u64) -> Result<ProviderLayer, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let catalog = Arc::new(catalog);
        let mut gates = BTreeMap::new();
        for (name, p) in &catalog.providers {
            let spec = &p.spec;
            let auth = match &spec.auth {
                None => None,
                Some(AuthSpec::Bearer { token }) => Some(ProviderAuth::Bearer(
                    secrets
                        .resolve(token)
                        .map_err(|e| format!("provider `{name}`: {e}"))?,
                )),
                Some(AuthSpec::Basic { username, password }) => Some(ProviderAuth::Basic(
                    username.clone(),
                    secrets
                        .resolve(password)
                        .map_err(|e| format!("provider `{name}`: {e}"))?,
                )),
                Some(AuthSpec::ApiKey { header, key }) => Some(ProviderAuth::Header(
                    header.clone(),
                    secrets
                        .resolve(key)
                        .map_err(|e| format!("provider `{name}`: {e}"))?,
                )),
            };
            let build = |policy| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_millis(spec.timeouts.connect.ms()))
                    .timeout(Duration::from_millis(spec.timeouts.request.ms()))
                    .redirect(policy)
                    .build()
                    .map_err(|e| format!("provider `{name}`: cannot build its HTTP client: {e}"))
            };
            let limiter: Option<Arc<dyn RateLimiter>> = spec.rate_limit.as_ref().map(|r| {
                Arc::new(TokenBucket::new(r.rate, r.per.ms(), r.burst, now_ms))
                    as Arc<dyn RateLimiter>
            });
            gates.insert(
                name.clone(),
                Gate {
                    provider: p.clone(),
                    follow: build(reqwest::redirect::Policy::limited(10))?,
                    no_follow: build(reqwest::redirect::Policy::none())?,
                    auth,
                    limiter,
                    slots: spec.max_concurrent.map(|n| Semaphore::new(n as usize)),
                    breaker: spec.breaker.clone().map(Breaker::new),
                    counters: Counters::default(),
                },
            );
        }
        Ok(ProviderLayer { catalog, gates })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The provider a `call: http` URI belongs to, if any.
    pub(crate) fn provider_for_uri(&self, uri: &str) -> Option<&str> {
        self.catalog.provider_for_uri(uri).map(|p| p.name.as_str())
    }

    /// Per provider: breaker state, tokens available, free slots and counters.
    pub fn snapshot(&self, now_ms: u64) -> Value {
        let mut out = Map::new();
        for (name, g) in &self.gates {
            let c = &g.counters;
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            out.insert(
                name.clone(),
                json!({
                    "breaker": g.breaker.as_ref().map(|b| b.state()),
                    "tokens": g.limiter.as_ref().map(|l| l.available(now_ms)),
                    "free_slots": g.slots.as_ref().map(|s| s.available_permits()),
                    "calls": load(&c.calls),
                    "ok": load(&c.ok),
                    "failed": load(&c.failed),
                    "unknown": load(&c.unknown),
                    "stale": load(&c.stale),
                    "retries": load(&c.retries),
                    "throttled": load(&c.throttled),
                    "limiter_waits": load(&c.limiter_waits),
                    "limiter_wait_ms": load(&c.limiter_wait_ms),
                    "rejected_open": load(&c.rejected_open),
                    "breaker_transitions": load(&c.breaker_transitions),
                    "fallbacks": load(&c.fallbacks),
                    "reconciled_applied": load(&c.reconciled_applied),
                    "reconciled_not_applied": load(&c.reconciled_not_applied),
                    "polls": load(&c.polls),
                    "latency_p50_ms": c.latency.quantile_ms(0.50),
                    "latency_p99_ms": c.latency.quantile_ms(0.99),
                }),
            );
        }
        Value::Object(out)
    }

    /// Performs one call to `provider` (and its fallbacks, for named operations). `resumed` says
    /// the effect was in flight when the process stopped: its request may have been applied, so
    /// a provider that can say so is asked before anything is sent again.
    pub(crate) async fn call(
        &self,
        clock: &dyn Clock,
        provider: &str,
        target: Target<'_>,
        call: &EffectCall,
        notes: Notes<'_>,
        resumed: bool,
    ) -> Outcome {
        let Some(primary) = self.gates.get(provider) else {
            return Outcome::failed(Problem::new(
                ErrorKind::Configuration,
                format!("no provider named `{provider}` in the catalogue"),
            ));
        };
        let mut chain = vec![primary];
        if let Target::Operation { .. } = target {
            chain.extend(
                primary
                    .provider
                    .spec
                    .fallbacks
                    .iter()
                    .filter_map(|f| self.gates.get(f)),
            );
        }
        // Only on a resume: is this an effect the provider could have applied before the stop?
        if resumed
            && primary.provider.spec.reconcile.is_some()
            && build_request(primary, &target).is_ok_and(|r| changes_the_world(&r))
        {
            notes(
                json!({"resumed": "the request may have been sent before a restart; asking the provider first"}),
            );
            match primary
                .reconcile(clock, call, "resumed after a restart", notes)
                .await
            {
                Reconciled::Applied(value) => {
                    bump(&primary.counters.ok);
                    return Outcome::ok(value);
                }
                Reconciled::Resend => {}
                Reconciled::Unresolved => {
                    bump(&primary.counters.unknown);
                    return Outcome::Unknown {
                        reason: format!(
                            "resumed after a restart; provider `{provider}` could not say whether the earlier request was applied"
                        ),
                    };
                }
            }
        }
        let mut last = None;
        for (i, gate) in chain.iter().enumerate() {
            if i > 0 {
                bump(&gate.counters.fallbacks);
                notes(json!({
                    "fallback": {
                        "from": chain[i - 1].provider.name,
                        "to": gate.provider.name,
                        "why": last.as_ref().and_then(|p: &Problem| p.title.clone()),
                    }
                }));
            }
            let request = match build_request(gate, &target) {
                Ok(r) => r,
                Err(p) => return Outcome::failed(p),
            };
            let op = match &target {
                Target::Operation { operation, .. } => gate.provider.operations.get(*operation),
                Target::Http(_) => None,
            };
            match gate.attempt(clock, op, &request, call, notes).await {
                Attempted::Done(outcome) => {
                    let c = &gate.counters;
                    bump(match &outcome {
                        Outcome::Ok { .. } => &c.ok,
                        Outcome::Failed { .. } => &c.failed,
                        Outcome::Unknown { .. } => &c.unknown,
                        Outcome::Stale { .. } => &c.stale,
                    });
                    return outcome;
                }
                Attempted::Unavailable(p) => {
                    bump(&gate.counters.failed);
                    last = Some(p);
                }
            }
        }
        Outcome::failed(last.unwrap_or_else(|| {
            Problem::new(ErrorKind::Communication, "No provider could serve the call")
        }))
    }
}

/// The request of a named operation: its path filled from the arguments, `query`, `headers`
/// and `body` taken from them.
fn build_request(gate: &Gate, target: &Target<'_>) -> Result<HttpRequest, Problem> {
    let p = &gate.provider;
    match target {
        Target::Http(req) => Ok((*req).clone()),
        Target::Operation { operation, args } => {
            let op = p.operations.get(*operation).ok_or_else(|| {
                Problem::new(
                    ErrorKind::Configuration,
                    format!("provider `{}` has no operation `{operation}`", p.name),
                )
            })?;
            let path = fill_path(&op.spec.path, args).map_err(|name| {
                Problem::new(
                    ErrorKind::Validation,
                    format!("`{operation}` of `{}` needs the argument `{name}`", p.name),
                )
            })?;
            let pairs = |key: &str| -> Vec<(String, String)> {
                args.get(key)
                    .and_then(Value::as_object)
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect())
                    .unwrap_or_default()
            };
            Ok(HttpRequest {
                method: op.spec.method.clone(),
                uri: format!("{}{path}", p.base),
                headers: pairs("headers"),
                query: pairs("query"),
                body: args.get("body").cloned(),
                output: HttpOutput::Content,
                redirect: false,
                auth: None,
            })
        }
    }
}

/// Whether a request may change something at the provider (reads are safe to send again).
fn changes_the_world(req: &HttpRequest) -> bool {
    !matches!(
        req.method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS"
    )
}

/// Replaces each `{name}` of `path` with the percent-encoded argument `name`.
fn fill_path(path: &str, args: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = &rest[open + 1..open + close];
        let value = args.get(name).filter(|v| !v.is_null()).ok_or(name)?;
        out.push_str(&baton_core::http::percent_encode(&scalar_text(value)));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn transition_note(t: &Transition) -> Value {
    json!({"breaker": {"from": t.from, "to": t.to, "reason": t.reason}})
}

impl Gate {
    fn client(&self, req: &HttpRequest) -> &reqwest::Client {
        if req.redirect {
            &self.follow
        } else {
            &self.no_follow
        }
    }

    fn record_transition(&self, t: Option<Transition>, notes: Notes<'_>) {
        if let Some(t) = t {
            bump(&self.counters.breaker_transitions);
            tracing::info!(provider = %self.provider.name, from = ?t.from, to = ?t.to, reason = %t.reason, "circuit breaker");
            notes(transition_note(&t));
        }
    }

    /// Waits for a rate token (the caller holds a concurrency slot).
    async fn take_token(&self, clock: &dyn Clock, notes: Notes<'_>) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        let first_ask = clock.now_ms();
        let mut waited = false;
        loop {
            match limiter.try_acquire(clock.now_ms()) {
                Ok(()) => break,
                Err(at) => {
                    waited = true;
                    clock.sleep_until(at).await;
                }
            }
        }
        if waited {
            let ms = clock.now_ms().saturating_sub(first_ask);
            bump(&self.counters.limiter_waits);
            self.counters
                .limiter_wait_ms
                .fetch_add(ms, Ordering::Relaxed);
            // Short waits are the limiter doing its job; only long ones are worth a journal entry.
            if ms >= 1_000 {
                notes(json!({"limiter": {"waited_ms": ms}}));
            }
        }
    }

    /// Sends once through the gate: breaker, slot, token. `Err` (a `Circuit open` problem) when
    /// the breaker refuses; otherwise what sending came to and whether it was a half-open probe.
    async fn send_once(
        &self,
        clock: &dyn Clock,
        req: &HttpRequest,
        call: &EffectCall,
        notes: Notes<'_>,
    ) -> Result<(Sent, bool), Problem> {
        let probe = match &self.breaker {
            Some(b) => {
                let (admit, t) = b.admit(clock.now_ms());
                self.record_transition(t, notes);
                match admit {
                    Admit::Allowed { probe } => probe,
                    Admit::Rejected { until_ms } => {
                        bump(&self.counters.rejected_open);
                        return Err(Problem::new(ErrorKind::Communication, "Circuit open")
                            .with_status(503)
                            .with_detail(format!(
                                "provider `{}` is failing; its circuit breaker refuses calls until {}",
                                self.provider.name,
                                baton_core::time::iso8601_utc(until_ms)
                            )));
                    }
                }
            }
            None => false,
        };
        let _slot = match &self.slots {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        self.take_token(clock, notes).await;
        bump(&self.counters.calls);
        let sent_at = clock.now_ms();
        let sent = send(self.client(req), call, req, self.auth.as_ref()).await;
        self.counters
            .latency
            .record(clock.now_ms().saturating_sub(sent_at));
        Ok((sent, probe))
    }

    /// A reconcile question or a status poll through the gate; `None` when the breaker refuses.
    /// Any answer below 500 counts as the provider being healthy.
    async fn follow_up(
        &self,
        clock: &dyn Clock,
        req: &HttpRequest,
        call: &EffectCall,
        notes: Notes<'_>,
    ) -> Option<Sent> {
        let (sent, probe) = self.send_once(clock, req, call, notes).await.ok()?;
        let failure = !matches!(&sent, Sent::Answer(a) if a.status < 500);
        self.breaker_result(failure, probe, clock.now_ms(), notes);
        Some(sent)
    }

    fn breaker_result(&self, failure: bool, probe: bool, now_ms: u64, notes: Notes<'_>) {
        if let Some(b) = &self.breaker {
            let t = b.record(failure, probe, now_ms);
            self.record_transition(t, notes);
        }
    }

    async fn attempt(
        &self,
        clock: &dyn Clock,
        op: Option<&Operation>,
        req: &HttpRequest,
        call: &EffectCall,
        notes: Notes<'_>,
    ) -> Attempted {
        let retry = &self.provider.spec.retry;
        let mut attempt = 0u32;
        let mut resends = 0u32;
        loop {
            attempt += 1;
            let (sent, probe) = match self.send_once(clock, req, call, notes).await {
                Ok(s) => s,
                Err(open) => return Attempted::Unavailable(open),
            };
            let now = clock.now_ms();
            let (problem, class, after_ms) = match sent {
                Sent::Refused(p) => {
                    self.breaker_result(true, probe, now, notes);
                    (p, RetryOn::Connect, None)
                }
                Sent::Lost(reason) => {
                    self.breaker_result(true, probe, now, notes);
                    notes(json!({"unknown": {"reason": reason}}));
                    let reconciled = if changes_the_world(req) {
                        self.reconcile(clock, call, &reason, notes).await
                    } else {
                        notes(json!({"reconciled": "resend", "why": "a read changes nothing"}));
                        Reconciled::Resend
                    };
                    match reconciled {
                        Reconciled::Applied(value) => {
                            return Attempted::Done(Outcome::ok(value));
                        }
                        Reconciled::Resend if resends < RESENDS_MAX => {
                            resends += 1;
                            attempt -= 1;
                            continue;
                        }
                        Reconciled::Resend | Reconciled::Unresolved => {
                            return Attempted::Done(Outcome::Unknown {
                                reason: format!(
                                    "{reason}; provider `{}` could not confirm whether it was applied",
                                    self.provider.name
                                ),
                            });
                        }
                    }
                }
                Sent::Answer(raw) => {
                    let answer = Answer {
                        status: raw.status,
                        headers: &raw.headers,
                        body: &raw.body,
                    };
                    let verdict = classify(op, &answer, now);
                    self.breaker_result(verdict.breaker_failure(), probe, now, notes);
                    match verdict {
                        Verdict::Ok(v) => {
                            return Attempted::Done(Outcome::ok(shape_value(req, &raw, v)));
                        }
                        Verdict::Failed(p) => return Attempted::Done(Outcome::failed(p)),
                        Verdict::Stale {
                            value,
                            observed_at_ms,
                            reason,
                        } => {
                            return Attempted::Done(Outcome::Stale {
                                value,
                                observed_at_ms,
                                reason,
                            });
                        }
                        Verdict::Accepted { status_url, body } => {
                            let Some(op) = op else {
                                return Attempted::Done(Outcome::ok(body));
                            };
                            return Attempted::Done(
                                self.poll(clock, op, call, status_url, notes).await,
                            );
                        }
                        Verdict::Transient {
                            class,
                            after_ms,
                            problem,
                        } => {
                            if class == RetryOn::Throttled {
                                bump(&self.counters.throttled);
                                if let (Some(after), Some(l)) = (after_ms, &self.limiter) {
                                    l.hold_until(now + after);
                                }
                            }
                            (problem, class, after_ms)
                        }
                    }
                }
            };
            if !retry.on.contains(&class) || attempt >= retry.max_attempts {
                let detail = format!(
                    "provider `{}`: {} after {attempt} attempt(s)",
                    self.provider.name,
                    problem
                        .detail
                        .as_deref()
                        .or(problem.title.as_deref())
                        .unwrap_or("failed")
                );
                return Attempted::Unavailable(problem.with_detail(detail));
            }
            bump(&self.counters.retries);
            let wait =
                baton_provider::retry::backoff_ms(retry, attempt, &call.idempotency_key, after_ms);
            notes(json!({"retry": {
                "attempt": attempt + 1,
                "after": problem.title,
                "wait_ms": wait,
            }}));
            clock.sleep_until(clock.now_ms() + wait).await;
        }
    }

    /// Finds out whether a request whose answer was lost happened.
    async fn reconcile(
        &self,
        clock: &dyn Clock,
        call: &EffectCall,
        reason: &str,
        notes: Notes<'_>,
    ) -> Reconciled {
        let spec = &self.provider.spec;
        if let Some(r) = &spec.reconcile
            && let Some(op) = self.provider.operations.get(&r.operation)
        {
            let args = json!({"key": call.idempotency_key});
            let Ok(path) = fill_path(&op.spec.path, &args) else {
                return Reconciled::Unresolved;
            };
            let check = HttpRequest {
                method: op.spec.method.clone(),
                uri: format!("{}{path}", self.provider.base),
                headers: Vec::new(),
                query: Vec::new(),
                body: None,
                output: HttpOutput::Content,
                redirect: false,
                auth: None,
            };
            for _ in 0..spec.retry.max_attempts.max(2) {
                let Some(sent) = self.follow_up(clock, &check, call, notes).await else {
                    break;
                };
                let Sent::Answer(raw) = sent else { continue };
                let answer = Answer {
                    status: raw.status,
                    headers: &raw.headers,
                    body: &raw.body,
                };
                match reconcile_answer(op, &answer) {
                    Some(true) => {
                        bump(&self.counters.reconciled_applied);
                        notes(json!({"reconciled": "applied", "by": op.name}));
                        let value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
                        return Reconciled::Applied(value);
                    }
                    Some(false) => {
                        bump(&self.counters.reconciled_not_applied);
                        notes(
                            json!({"reconciled": "not-applied", "by": op.name, "then": "send again with the same key"}),
                        );
                        return Reconciled::Resend;
                    }
                    None => {}
                }
            }
            notes(json!({"reconciled": "unresolved", "by": op.name}));
            return Reconciled::Unresolved;
        }
        if spec.idempotent {
            notes(
                json!({"reconciled": "resend", "why": "the provider honours Idempotency-Key", "after": reason}),
            );
            return Reconciled::Resend;
        }
        notes(
            json!({"reconciled": "impossible", "why": "no reconcile operation and not idempotent"}),
        );
        Reconciled::Unresolved
    }

    /// Follows a `202 Accepted` job to its end.
    async fn poll(
        &self,
        clock: &dyn Clock,
        op: &Operation,
        call: &EffectCall,
        status_url: Option<String>,
        notes: Notes<'_>,
    ) -> Outcome {
        // `classify` only answers `Accepted` for operations that declare `accepted`.
        let (Some(acc_spec), Some(acc)) = (&op.spec.accepted, &op.accepted) else {
            return Outcome::failed(Problem::new(
                ErrorKind::Runtime,
                format!(
                    "`{}` has no `accepted` declaration to follow a 202 with",
                    op.name
                ),
            ));
        };
        let Some(url) = status_url.map(|u| self.absolute(&u)) else {
            return Outcome::failed(
                Problem::of_type(baton_core::baton_types::CONTRACT, 502, "Contract violation")
                    .with_detail(format!(
                        "`{}` answered 202 without a status URL or Location",
                        op.name
                    )),
            );
        };
        let deadline = clock.now_ms() + acc_spec.deadline.ms();
        let mut interval = acc_spec.interval.ms().max(1);
        let status_req = HttpRequest {
            method: "GET".into(),
            uri: url.clone(),
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            output: HttpOutput::Content,
            redirect: false,
            auth: None,
        };
        let budget = baton_expr::Budget::default();
        let truthy = |e: &baton_expr::Expr, v: &Value| {
            e.eval(v, &[], &budget)
                .ok()
                .is_some_and(|r| r.as_bool() == Some(true))
        };
        loop {
            let now = clock.now_ms();
            if now >= deadline {
                return Outcome::Unknown {
                    reason: format!(
                        "`{}` accepted the request but had not finished by its deadline ({} ms); the work may still complete",
                        op.name,
                        acc_spec.deadline.ms()
                    ),
                };
            }
            let next = (now + interval).min(deadline);
            notes(
                json!({"accepted": {"status_url": url, "next_poll_at": baton_core::time::iso8601_utc(next)}}),
            );
            clock.sleep_until(next).await;
            interval = (interval.saturating_mul(2)).min(acc_spec.max_interval.ms().max(1));
            bump(&self.counters.polls);
            let Some(sent) = self.follow_up(clock, &status_req, call, notes).await else {
                continue;
            };
            let raw: RawAnswer = match sent {
                Sent::Answer(raw) => raw,
                Sent::Refused(_) | Sent::Lost(_) => continue,
            };
            if raw.status >= 500 || raw.status == 429 || raw.status == 408 {
                continue;
            }
            let answer = Answer {
                status: raw.status,
                headers: &raw.headers,
                body: &raw.body,
            };
            if !(200..300).contains(&raw.status) {
                return Outcome::failed(
                    Problem::new(ErrorKind::Communication, format!("HTTP {}", raw.status))
                        .with_status(raw.status)
                        .with_detail(format!("polling {url} for `{}`", op.name)),
                );
            }
            let body: Value = match serde_json::from_slice(&raw.body) {
                Ok(v) => v,
                Err(e) => {
                    return Outcome::failed(
                        Problem::of_type(
                            baton_core::baton_types::CONTRACT,
                            502,
                            "Contract violation",
                        )
                        .with_detail(format!("status of `{}` is not JSON: {e}", op.name)),
                    );
                }
            };
            if let Some(f) = &acc.failed
                && truthy(f, &body)
            {
                return Outcome::failed(
                    Problem::new(ErrorKind::Communication, "Accepted job failed")
                        .with_detail(format!("`{}`: {}", op.name, body)),
                );
            }
            if !truthy(&acc.done, &body) {
                continue;
            }
            let result = match &acc.result {
                Some(e) => e.eval(&body, &[], &budget).unwrap_or(Value::Null),
                None => body,
            };
            notes(json!({"accepted": {"done": true}}));
            return match check_data(op, &answer, result, clock.now_ms()) {
                Verdict::Ok(v) => Outcome::ok(v),
                Verdict::Stale {
                    value,
                    observed_at_ms,
                    reason,
                } => Outcome::Stale {
                    value,
                    observed_at_ms,
                    reason,
                },
                Verdict::Failed(p) => Outcome::failed(p),
                other => Outcome::failed(Problem::new(
                    ErrorKind::Runtime,
                    format!("unexpected verdict {}", other.label()),
                )),
            };
        }
    }

    /// A status URL relative to the provider's origin made absolute.
    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            return url.to_string();
        }
        match url::Url::parse(&self.provider.base).and_then(|b| b.join(url)) {
            Ok(u) => u.to_string(),
            Err(_) => url.to_string(),
        }
    }
}

enum Reconciled {
    Applied(Value),
    Resend,
    Unresolved,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_filled_and_encoded() {
        let args = json!({"id": "a b/c", "n": 7});
        assert_eq!(
            fill_path("/x/{id}/y/{n}", &args),
            Ok("/x/a%20b%2Fc/y/7".to_string())
        );
        assert_eq!(fill_path("/x/{missing}", &args), Err("missing".to_string()));
    }
}

#[cfg(test)]
mod latency_tests {
    use super::Latency;

    #[test]
    fn quantiles_come_from_the_bucket_bounds() {
        let l = Latency::default();
        assert_eq!(l.quantile_ms(0.5), None);
        for _ in 0..98 {
            l.record(3);
        }
        l.record(150);
        l.record(40_000);
        assert_eq!(l.quantile_ms(0.5), Some(5));
        assert_eq!(l.quantile_ms(0.99), Some(200));
        assert_eq!(l.quantile_ms(1.0), Some(30_000));
    }
}

/// How features (the fact store) read through the shared gates.
impl baton_api::ProviderReads for ProviderLayer {
    fn catalog(&self) -> &Arc<Catalog> {
        ProviderLayer::catalog(self)
    }

    fn read<'a>(
        &'a self,
        clock: &'a dyn Clock,
        provider: &'a str,
        operation: &'a str,
        args: &'a Value,
        call: &'a EffectCall,
        notes: Notes<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
        Box::pin(self.call(
            clock,
            provider,
            Target::Operation { operation, args },
            call,
            notes,
            false,
        ))
    }
}
