//! The provider catalogue: a YAML file declaring each external system once, loaded with
//! `file:line:column` diagnostics like flows.
//!
//! Loading has three stages, each reporting everything it finds: YAML parsing with source spans
//! (the flow parser, so anchors, duplicate keys and oversized documents are refused the same
//! way), the typed model (unknown fields and wrong types are errors, with the pointer of the
//! offending node), and semantic checks (fallbacks exist and offer the same operations, the
//! reconcile operation exists and takes the key, jq expressions and JSON Schemas compile).
//!
//! Codes (stable, never reused):
//! - `BATON-PROV-001`: not valid YAML (the flow parser's codes are kept for the detail).
//! - `BATON-PROV-002`: not accepted by the catalogue model (type, unknown field, bad duration).
//! - `BATON-PROV-003`: an invalid value (URL, rate, count, method, name).
//! - `BATON-PROV-004`: a reference to a provider or operation that does not exist.
//! - `BATON-PROV-005`: a jq expression or JSON Schema that does not compile.
//! - `BATON-PROV-006`: a secret reference that is not exactly one of `env` / `secret`.

use std::collections::BTreeMap;
use std::sync::Arc;

use baton_expr::Expr;
use baton_flow::diag::pointer_push;
use baton_flow::{Diagnostic, SpanIndex};
use serde::Deserialize;
use serde_json::Value;

use crate::duration::Dur;

const CODE_SYNTAX: &str = "BATON-PROV-001";
const CODE_MODEL: &str = "BATON-PROV-002";
const CODE_VALUE: &str = "BATON-PROV-003";
const CODE_REFERENCE: &str = "BATON-PROV-004";
const CODE_COMPILE: &str = "BATON-PROV-005";
const CODE_SECRET: &str = "BATON-PROV-006";

/// The file: `providers:` mapping names to declarations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub providers: BTreeMap<String, ProviderSpec>,
}

/// One external system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Every operation's path is resolved against this; `call: http` URIs under it are calls to
    /// this provider. `${VAR}` and `${VAR:-default}` are expanded from the environment.
    pub base_url: String,
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    /// Calls in flight at once, across every instance of the process.
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub breaker: Option<BreakerSpec>,
    /// Providers tried, in order, for the same operation when this one's breaker is open or its
    /// transient failures exhaust the retries. One level: a fallback's own fallbacks are not
    /// followed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Whether the provider honours `Idempotency-Key`: a re-send with the same key is applied at
    /// most once. This is what makes re-sending a safe reconciliation.
    #[serde(default)]
    pub idempotent: bool,
    #[serde(default)]
    pub reconcile: Option<ReconcileSpec>,
    #[serde(default)]
    pub operations: BTreeMap<String, OperationSpec>,
}

/// Credentials. Secrets are references, resolved when the catalogue is bound to a runtime and
/// never written to logs or journals.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    Bearer {
        token: SecretRef,
    },
    Basic {
        username: String,
        password: SecretRef,
    },
    ApiKey {
        header: String,
        key: SecretRef,
    },
}

/// Where a secret comes from: an environment variable or a key of the secrets file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
}

/// A token bucket: `rate` tokens per `per`, holding at most `burst`. In any window of length
/// `per` at most `burst + rate - 1` calls start; `burst: 1` (the default) makes that exactly
/// `rate`, which is what a provider that counts requests per window expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub rate: f64,
    #[serde(default = "one_second")]
    pub per: Dur,
    #[serde(default = "one")]
    pub burst: u32,
}

fn one_second() -> Dur {
    Dur(1000)
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSpec {
    #[serde(default = "default_connect")]
    pub connect: Dur,
    /// From sending the request to the end of the response body. A call that passes it after
    /// the request was sent has an `unknown` outcome.
    #[serde(default = "default_request")]
    pub request: Dur,
}

fn default_connect() -> Dur {
    Dur(2_000)
}
fn default_request() -> Dur {
    Dur(10_000)
}

impl Default for TimeoutSpec {
    fn default() -> Self {
        TimeoutSpec {
            connect: default_connect(),
            request: default_request(),
        }
    }
}

/// Which transient answers are retried, how often and how far apart. An `unknown` outcome is
/// never simply retried: it is reconciled first (see [`ReconcileSpec`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    #[serde(default = "default_retry_on")]
    pub on: Vec<RetryOn>,
    /// Attempts in all, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub backoff: BackoffSpec,
    /// Wait at least as long as a 429's or 503's `Retry-After` says.
    #[serde(default = "yes")]
    pub honour_retry_after: bool,
}

fn default_retry_on() -> Vec<RetryOn> {
    vec![
        RetryOn::Throttled,
        RetryOn::ServerError,
        RetryOn::RequestTimeout,
        RetryOn::Connect,
    ]
}
fn default_attempts() -> u32 {
    3
}
fn yes() -> bool {
    true
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            on: default_retry_on(),
            max_attempts: default_attempts(),
            backoff: BackoffSpec::default(),
            honour_retry_after: true,
        }
    }
}

/// A transient answer class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RetryOn {
    /// 429 Too Many Requests.
    #[serde(rename = "429")]
    Throttled,
    /// Any 5xx.
    #[serde(rename = "5xx")]
    ServerError,
    /// 408 Request Timeout (the server says it did not process the request).
    #[serde(rename = "408")]
    RequestTimeout,
    /// The connection could not be made: nothing was sent.
    #[serde(rename = "connect")]
    Connect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSpec {
    #[serde(default = "default_initial")]
    pub initial: Dur,
    #[serde(default = "two")]
    pub multiplier: f64,
    #[serde(default = "default_max_backoff")]
    pub max: Dur,
}

fn default_initial() -> Dur {
    Dur(200)
}
fn two() -> f64 {
    2.0
}
fn default_max_backoff() -> Dur {
    Dur(10_000)
}

impl Default for BackoffSpec {
    fn default() -> Self {
        BackoffSpec {
            initial: default_initial(),
            multiplier: 2.0,
            max: default_max_backoff(),
        }
    }
}

/// When the breaker opens (either or both thresholds), how long it stays open and how many
/// probes it lets through half-open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    #[serde(default)]
    pub failure_rate: Option<FailureRateSpec>,
    #[serde(default = "default_open_for")]
    pub open_for: Dur,
    #[serde(default = "one")]
    pub half_open_probes: u32,
}

fn default_open_for() -> Dur {
    Dur(30_000)
}

/// Open when at least `threshold` of the last `window` calls failed (and at least `min_calls`
/// were made).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRateSpec {
    pub threshold: f64,
    #[serde(default = "default_window")]
    pub window: u32,
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
}

fn default_window() -> u32 {
    20
}
fn default_min_calls() -> u32 {
    10
}

/// The operation that answers "did the request with key K happen?". Its path holds `{key}`; a
/// 2xx answer means applied (unless its `applied` expression says otherwise), 404 means not.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSpec {
    pub operation: String,
}

/// A named operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSpec {
    #[serde(default = "get")]
    pub method: String,
    /// Relative to `base_url`; `{name}` placeholders are filled from the call's arguments.
    pub path: String,
    /// JSON Schema the response body must satisfy; a 2xx body that does not is a failed read,
    /// never data.
    #[serde(default)]
    pub contract: Option<Value>,
    #[serde(default)]
    pub freshness: Option<FreshnessSpec>,
    /// How a `202 Accepted` answer is followed to its end.
    #[serde(default)]
    pub accepted: Option<AcceptedSpec>,
    /// For a reconcile operation: jq over the 2xx body giving whether the request happened
    /// (default: `.applied` when present, else true).
    #[serde(default)]
    pub applied: Option<String>,
}

fn get() -> String {
    "GET".to_string()
}

/// Where a response says how old it is, and the oldest accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessSpec {
    /// jq over the body giving an RFC 3339 time or epoch milliseconds.
    #[serde(default)]
    pub as_of: Option<String>,
    /// A response header holding an RFC 3339 or HTTP date (`Last-Modified`, `Date`).
    #[serde(default)]
    pub header: Option<String>,
    pub max_age: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedSpec {
    /// jq over the 202 body giving the status URL; the `Location` header when absent.
    #[serde(default)]
    pub status_url: Option<String>,
    /// jq over a status answer: true when the work is done.
    #[serde(default = "default_done")]
    pub done: String,
    /// jq over a status answer: true when the work failed.
    #[serde(default)]
    pub failed: Option<String>,
    /// jq over the final status answer giving the call's value (default: the whole answer).
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default = "default_poll")]
    pub interval: Dur,
    #[serde(default = "default_poll_max")]
    pub max_interval: Dur,
    /// Give up polling after this long (the outcome is then `unknown`: the work may finish).
    #[serde(default = "default_poll_deadline")]
    pub deadline: Dur,
}

fn default_done() -> String {
    r#".status == "done""#.to_string()
}
fn default_poll() -> Dur {
    Dur(500)
}
fn default_poll_max() -> Dur {
    Dur(5_000)
}
fn default_poll_deadline() -> Dur {
    Dur(120_000)
}

/// A catalogue that passed every check, with its expressions and schemas compiled.
#[derive(Debug, Default)]
pub struct Catalog {
    pub providers: BTreeMap<String, Arc<Provider>>,
}

/// A checked provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub spec: ProviderSpec,
    /// `base_url` without a trailing slash.
    pub base: String,
    pub operations: BTreeMap<String, Operation>,
}

/// A checked operation with its compiled parts.
pub struct Operation {
    pub name: String,
    pub spec: OperationSpec,
    pub contract: Option<jsonschema::Validator>,
    pub as_of: Option<Expr>,
    pub applied: Option<Expr>,
    pub accepted: Option<CompiledAccepted>,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct CompiledAccepted {
    pub status_url: Option<Expr>,
    pub done: Expr,
    pub failed: Option<Expr>,
    pub result: Option<Expr>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.get(name)
    }

    /// The provider whose `base_url` prefixes `uri` (the longest such base wins), so a plain
    /// `call: http` to a declared system is limited and guarded like a named operation.
    pub fn provider_for_uri(&self, uri: &str) -> Option<&Arc<Provider>> {
        self.providers
            .values()
            .filter(|p| {
                uri.strip_prefix(p.base.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
            })
            .max_by_key(|p| p.base.len())
    }

    /// Every base URL with a closing `/`: the prefixes outbound calls may start with (the slash
    /// keeps `…/carrier` from admitting `…/carrier-elsewhere`).
    pub fn base_urls(&self) -> Vec<String> {
        self.providers
            .values()
            .map(|p| format!("{}/", p.base))
            .collect()
    }
}

/// Loads and checks a catalogue. `Ok` only when nothing is wrong; otherwise every diagnostic
/// found, in source order.
pub fn load_catalog(text: &str) -> Result<Catalog, Vec<Diagnostic>> {
    let parsed = baton_flow::parse::parse_document(text).map_err(|ds| {
        ds.into_iter()
            .map(|d| {
                let msg = format!("{} ({})", d.message, d.code);
                Diagnostic::coded(
                    CODE_SYNTAX,
                    msg,
                    d.pointer,
                    baton_flow::SourceLocation {
                        line: d.line,
                        column: d.column,
                    },
                )
            })
            .collect::<Vec<_>>()
    })?;
    let (raw, spans) = (parsed.value, parsed.spans);
    let file: CatalogFile = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let pointer = baton_flow::error_pointer(e.path());
        let at = spans.nearest_key(&pointer);
        vec![Diagnostic::coded(
            CODE_MODEL,
            format!("not a valid provider catalogue: {}", e.inner()),
            pointer,
            at,
        )]
    })?;
    let mut diags = Vec::new();
    let mut file = file;
    for (name, spec) in file.providers.iter_mut() {
        match expand_env(&spec.base_url) {
            Ok(url) => spec.base_url = url,
            Err(e) => {
                let pointer = format!("{}/base_url", pointer_push("/providers", name));
                let at = spans.nearest_value(&pointer);
                diags.push(Diagnostic::coded(CODE_VALUE, e, pointer, at));
            }
        }
    }
    let mut checker = Checker {
        spans: &spans,
        diags: &mut diags,
    };
    let mut providers = BTreeMap::new();
    for (name, spec) in &file.providers {
        if let Some(p) = checker.provider(name, spec, &file) {
            providers.insert(name.clone(), Arc::new(p));
        }
    }
    if diags.is_empty() {
        Ok(Catalog { providers })
    } else {
        diags.sort_by_key(|d| (d.line, d.column));
        Err(diags)
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in a base URL, so one catalogue serves several
/// environments (the simulator on a test's port, staging, production).
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            return Err(format!("unclosed `${{` in `{text}`"));
        };
        let inner = &rest[start + 2..start + len];
        let (var, default) = match inner.split_once(":-") {
            Some((v, d)) => (v, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(var), default) {
            (Ok(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            _ => {
                return Err(format!(
                    "environment variable `{var}` is not set (in `{text}`)"
                ));
            }
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Checker<'a> {
    spans: &'a SpanIndex,
    diags: &'a mut Vec<Diagnostic>,
}

impl Checker<'_> {
    fn report(&mut self, code: &str, pointer: &str, message: String) {
        let at = self.spans.nearest_value(pointer);
        self.diags
            .push(Diagnostic::coded(code, message, pointer.to_string(), at));
    }

    fn expr(&mut self, pointer: &str, src: &str) -> Option<Expr> {
        match Expr::compile(src, &[]) {
            Ok(e) => Some(e),
            Err(e) => {
                self.report(
                    CODE_COMPILE,
                    pointer,
                    format!("`{src}` is not a valid jq expression: {e}"),
                );
                None
            }
        }
    }

    fn secret(&mut self, pointer: &str, s: &SecretRef) {
        if s.env.is_some() == s.secret.is_some() {
            self.report(
                CODE_SECRET,
                pointer,
                "a secret is exactly one of `env: VAR` or `secret: NAME` (a key of the secrets file)"
                    .to_string(),
            );
        }
    }

    fn provider(
        &mut self,
        name: &str,
        spec: &ProviderSpec,
        file: &CatalogFile,
    ) -> Option<Provider> {
        let at = pointer_push("/providers", name);
        let errors_before = self.diags.len();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.report(
                CODE_VALUE,
                &at,
                format!("provider name `{name}` may only hold letters, digits, `-` and `_`"),
            );
        }
        match url::Url::parse(&spec.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => self.report(
                CODE_VALUE,
                &pointer_push(&at, "base_url"),
                format!("`{}` is not an http(s) URL", spec.base_url),
            ),
        }
        match &spec.auth {
            Some(AuthSpec::Bearer { token }) => {
                self.secret(&format!("{at}/auth/bearer/token"), token)
            }
            Some(AuthSpec::Basic { password, .. }) => {
                self.secret(&format!("{at}/auth/basic/password"), password)
            }
            Some(AuthSpec::ApiKey { header, key }) => {
                if !header_name_ok(header) {
                    self.report(
                        CODE_VALUE,
                        &format!("{at}/auth/api_key/header"),
                        format!("`{header}` is not a valid header name"),
                    );
                }
                self.secret(&format!("{at}/auth/api_key/key"), key)
            }
            None => {}
        }
        if let Some(rl) = &spec.rate_limit {
            if !(rl.rate.is_finite() && rl.rate > 0.0) {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/rate_limit/rate"),
                    "the rate must be a positive number".to_string(),
                );
            }
            if rl.burst == 0 {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/rate_limit/burst"),
                    "the burst must be at least 1".to_string(),
                );
            }
            if rl.per.ms() == 0 {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/rate_limit/per"),
                    "the period must be longer than 0".to_string(),
                );
            }
        }
        if spec.max_concurrent == Some(0) {
            self.report(
                CODE_VALUE,
                &format!("{at}/max_concurrent"),
                "max_concurrent must be at least 1".to_string(),
            );
        }
        if spec.retry.max_attempts == 0 {
            self.report(
                CODE_VALUE,
                &format!("{at}/retry/max_attempts"),
                "max_attempts counts the first attempt: at least 1".to_string(),
            );
        }
        if !(spec.retry.backoff.multiplier.is_finite() && spec.retry.backoff.multiplier >= 1.0) {
            self.report(
                CODE_VALUE,
                &format!("{at}/retry/backoff/multiplier"),
                "the backoff multiplier must be at least 1".to_string(),
            );
        }
        if let Some(b) = &spec.breaker {
            if b.consecutive_failures.is_none() && b.failure_rate.is_none() {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/breaker"),
                    "a breaker needs `consecutive_failures` or `failure_rate`".to_string(),
                );
            }
            if b.consecutive_failures == Some(0) {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/breaker/consecutive_failures"),
                    "must be at least 1".to_string(),
                );
            }
            if let Some(fr) = &b.failure_rate
                && (!(fr.threshold > 0.0 && fr.threshold <= 1.0)
                    || fr.window == 0
                    || fr.min_calls > fr.window)
            {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/breaker/failure_rate"),
                    "threshold is in (0, 1], window at least 1, min_calls at most window"
                        .to_string(),
                );
            }
            if b.half_open_probes == 0 {
                self.report(
                    CODE_VALUE,
                    &format!("{at}/breaker/half_open_probes"),
                    "at least one probe is needed to close the breaker again".to_string(),
                );
            }
        }
        for (i, fb) in spec.fallbacks.iter().enumerate() {
            let p = format!("{at}/fallbacks/{i}");
            match file.providers.get(fb) {
                None => self.report(CODE_REFERENCE, &p, format!("no provider named `{fb}`")),
                Some(_) if fb == name => self.report(
                    CODE_REFERENCE,
                    &p,
                    "a provider cannot fall back to itself".into(),
                ),
                Some(other) => {
                    for op in spec.operations.keys() {
                        if !other.operations.contains_key(op) {
                            self.report(
                                CODE_REFERENCE,
                                &p,
                                format!("fallback `{fb}` has no operation `{op}`"),
                            );
                        }
                    }
                }
            }
        }
        if let Some(r) = &spec.reconcile {
            let p = format!("{at}/reconcile/operation");
            match spec.operations.get(&r.operation) {
                None => self.report(
                    CODE_REFERENCE,
                    &p,
                    format!("no operation `{}` in provider `{name}`", r.operation),
                ),
                Some(op) if !op.path.contains("{key}") => self.report(
                    CODE_VALUE,
                    &p,
                    format!(
                        "the reconcile operation's path `{}` must hold `{{key}}` (the idempotency key asked about)",
                        op.path
                    ),
                ),
                Some(_) => {}
            }
        }
        let mut operations = BTreeMap::new();
        for (op_name, op) in &spec.operations {
            if let Some(o) = self.operation(
                &pointer_push(&format!("{at}/operations"), op_name),
                op_name,
                op,
            ) {
                operations.insert(op_name.clone(), o);
            }
        }
        if self.diags.len() > errors_before {
            return None;
        }
        Some(Provider {
            name: name.to_string(),
            spec: spec.clone(),
            base: spec.base_url.trim_end_matches('/').to_string(),
            operations,
        })
    }

    fn operation(&mut self, at: &str, name: &str, op: &OperationSpec) -> Option<Operation> {
        let before = self.diags.len();
        let method = op.method.to_ascii_uppercase();
        if !matches!(
            method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
        ) {
            self.report(
                CODE_VALUE,
                &format!("{at}/method"),
                format!("`{}` is not an HTTP method", op.method),
            );
        }
        if !op.path.starts_with('/') {
            self.report(
                CODE_VALUE,
                &format!("{at}/path"),
                format!("the path `{}` must start with `/`", op.path),
            );
        }
        let contract = match &op.contract {
            Some(schema) => match jsonschema::validator_for(schema) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.report(
                        CODE_COMPILE,
                        &format!("{at}/contract"),
                        format!("the contract is not a valid JSON Schema: {e}"),
                    );
                    None
                }
            },
            None => None,
        };
        let mut as_of = None;
        if let Some(f) = &op.freshness {
            let p = format!("{at}/freshness");
            match (&f.as_of, &f.header) {
                (Some(src), None) => as_of = self.expr(&format!("{p}/as_of"), src),
                (None, Some(h)) => {
                    if !header_name_ok(h) {
                        self.report(
                            CODE_VALUE,
                            &format!("{p}/header"),
                            format!("`{h}` is not a valid header name"),
                        );
                    }
                }
                _ => self.report(
                    CODE_VALUE,
                    &p,
                    "freshness reads exactly one of `as_of` (jq over the body) or `header`"
                        .to_string(),
                ),
            }
        }
        let applied = op
            .applied
            .as_ref()
            .and_then(|src| self.expr(&format!("{at}/applied"), src));
        let accepted = op.accepted.as_ref().map(|a| {
            let p = format!("{at}/accepted");
            CompiledAccepted {
                status_url: a
                    .status_url
                    .as_ref()
                    .and_then(|s| self.expr(&format!("{p}/status_url"), s)),
                done: self
                    .expr(&format!("{p}/done"), &a.done)
                    .unwrap_or_else(|| Expr::compile("false", &[]).expect("constant compiles")),
                failed: a
                    .failed
                    .as_ref()
                    .and_then(|s| self.expr(&format!("{p}/failed"), s)),
                result: a
                    .result
                    .as_ref()
                    .and_then(|s| self.expr(&format!("{p}/result"), s)),
            }
        });
        if self.diags.len() > before {
            return None;
        }
        Some(Operation {
            name: name.to_string(),
            spec: OperationSpec {
                method,
                ..op.clone()
            },
            contract,
            as_of,
            applied,
            accepted,
        })
    }
}

/// RFC 9110 token characters: what a header name may hold.
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
providers:
  carrier:
    base_url: http://127.0.0.1:9/carrier
    auth: { bearer: { token: { env: CARRIER_TOKEN } } }
    rate_limit: { rate: 30 }
    max_concurrent: 8
    timeouts: { connect: 1s, request: 2s }
    retry: { on: ["429", "5xx"], max_attempts: 4, backoff: { initial: 100ms, max: 2s } }
    breaker: { consecutive_failures: 5, open_for: 10s }
    fallbacks: [backup]
    idempotent: true
    reconcile: { operation: booking }
    operations:
      book: { method: post, path: /bookings, contract: { type: object, required: [booking_id] } }
      booking: { path: "/bookings/{key}", applied: .applied }
  backup:
    base_url: http://127.0.0.1:9/backup
    operations:
      book: { method: POST, path: /bookings }
      booking: { path: "/bookings/{key}" }
"#;

    #[test]
    fn a_good_catalogue_loads() {
        let c = load_catalog(GOOD).expect("loads");
        let carrier = c.get("carrier").expect("carrier");
        assert_eq!(carrier.operations["book"].spec.method, "POST");
        assert_eq!(carrier.spec.rate_limit.as_ref().map(|r| r.burst), Some(1));
        assert_eq!(
            c.provider_for_uri("http://127.0.0.1:9/carrier/bookings/1")
                .map(|p| p.name.as_str()),
            Some("carrier")
        );
        assert!(c.provider_for_uri("http://127.0.0.1:9/carrierx").is_none());
    }

    fn errors(text: &str) -> Vec<String> {
        load_catalog(text)
            .expect_err("must fail")
            .iter()
            .map(|d| d.render("p.yaml"))
            .collect()
    }

    #[test]
    fn wrong_types_and_unknown_fields_point_at_the_line() {
        let e = errors("providers:\n  a:\n    base_url: http://x\n    rate_limt: { rate: 3 }\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("p.yaml:4:5: error[BATON-PROV-002]"),
            "{e:?}"
        );
        let e =
            errors("providers:\n  a:\n    base_url: http://x\n    timeouts: { request: soon }\n");
        assert!(e[0].contains("not a duration"), "{e:?}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let text = r#"
providers:
  a:
    base_url: ftp://x
    fallbacks: [nobody]
    reconcile: { operation: status }
    breaker: { open_for: 1s }
    auth: { bearer: { token: { env: A, secret: B } } }
    operations:
      status: { path: /status, applied: ".applied |" }
      read: { path: /r, freshness: { max_age: 1h } }
"#;
        let e = errors(text);
        let joined = e.join("\n");
        for needle in [
            "p.yaml:4:15: error[BATON-PROV-003]: `ftp://x` is not an http(s) URL",
            "error[BATON-PROV-004]: no provider named `nobody`",
            "must hold `{key}`",
            "a breaker needs",
            "error[BATON-PROV-006]",
            "error[BATON-PROV-005]",
            "freshness reads exactly one",
        ] {
            assert!(joined.contains(needle), "missing {needle} in\n{joined}");
        }
    }

    #[test]
    fn base_urls_expand_environment_variables() {
        assert_eq!(
            expand_env("${BATON_TEST_SURELY_UNSET:-http://127.0.0.1:7400}/carrier"),
            Ok("http://127.0.0.1:7400/carrier".to_string())
        );
        assert!(expand_env("${BATON_TEST_SURELY_UNSET}/x").is_err());
        assert!(expand_env("http://x/${oops").is_err());
    }

    #[test]
    fn a_fallback_must_offer_the_same_operations() {
        let text = r#"
providers:
  a:
    base_url: http://x/a
    fallbacks: [b]
    operations: { book: { path: /b } }
  b:
    base_url: http://x/b
"#;
        assert!(errors(text)[0].contains("fallback `b` has no operation `book`"));
    }
}
