//! Effects: what the core asks the outside world to do. The driver performs them and delivers
//! an [`Outcome`](crate::Outcome) per [`EffectKey`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::journal::{EffectKey, InstanceId};

/// A resolved HTTP request (`call: http` after expressions and URI templates are evaluated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub query: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// `content`, `response` or `raw`.
    pub output: HttpOutput,
    /// When true, 3xx answers are followed and accepted; when false they are errors.
    pub redirect: bool,
    /// Resolved authentication. Kept out of journals and logs by the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HttpOutput {
    #[default]
    Content,
    Response,
    Raw,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for HttpAuth {
    // Secrets never reach logs, even through a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            HttpAuth::Bearer { .. } => write!(f, "Bearer(***)"),
        }
    }
}

/// What an effect does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum EffectRequest {
    Http(HttpRequest),
    /// A registered custom function (`call: <name>`), or `openapi`, with evaluated arguments.
    Function {
        name: String,
        args: Value,
    },
    /// Fire at this time (driver clock, ms since the Unix epoch).
    Timer {
        fire_at_ms: u64,
    },
    /// Publish this CloudEvent.
    Emit {
        event: Value,
    },
    /// Deliver the next event that matches one of these filters (`with` objects of the spec's
    /// event filters; data expressions already compiled by the driver's matcher).
    Listen {
        filters: Vec<Value>,
    },
}

impl EffectRequest {
    /// Timers and listeners only wait; an instance whose effects are all of these is `waiting`.
    pub fn is_wait(&self) -> bool {
        match self {
            EffectRequest::Timer { .. } | EffectRequest::Listen { .. } => true,
            EffectRequest::Function { name, .. } => crate::functions::is_waiting_function(name),
            _ => false,
        }
    }
}

/// Marks the effect keys of `listen` tasks (`…#event<n>`): a resumed runtime finds in the journal
/// which events an instance already consumed by this mark.
pub const LISTEN_KEY_MARK: &str = "#event";

/// An effect to start, with the identities the outside world sees.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectCall {
    pub key: EffectKey,
    pub request: EffectRequest,
    /// Sent as `Idempotency-Key`: the same for every attempt and after a crash.
    pub idempotency_key: String,
    /// Sent as a causation header so that echoes of Baton's own effects can be recognised.
    pub causation_id: String,
}

impl EffectCall {
    pub fn new(instance: &InstanceId, key: EffectKey, request: EffectRequest) -> EffectCall {
        EffectCall {
            idempotency_key: idempotency_key(instance, &key),
            causation_id: format!("{instance}{key}"),
            key,
            request,
        }
    }
}

/// `hex(sha256(instance "\n" key))[..32]`: stable, opaque, and free of the flow's internals.
pub fn idempotency_key(instance: &InstanceId, key: &EffectKey) -> String {
    let mut h = Sha256::new();
    h.update(instance.0.as_bytes());
    h.update(b"\n");
    h.update(key.0.as_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..16])
}

/// A deterministic number in `[0, 1)` from an instance, a key and a salt: used for jitter so
/// that replay draws the same "random" delay.
pub fn deterministic_unit(instance: &InstanceId, key: &str, salt: u64) -> f64 {
    let mut h = Sha256::new();
    h.update(instance.0.as_bytes());
    h.update(key.as_bytes());
    h.update(salt.to_le_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
