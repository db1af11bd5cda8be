//! Baton as a service: the HTTP API (with its OpenAPI document), authentication and roles, the
//! audit trail, metrics, and the dashboard, over one [`Runtime`].
//!
//! Architecture invariant: handlers do no journaling of their own. Everything that changes an
//! instance goes through the runtime (which makes it durable before answering); the server adds
//! only who asked (the audit trail) and how it is shown.

pub mod api;
mod auth;
mod body;
pub mod config;
pub mod dashboard;
pub mod metrics;
pub mod openapi;
pub mod otlp;
mod problem;

use baton_engine::Features;
use std::sync::Arc;

use axum::Router;
use baton_engine::{Actor, Runtime};
use baton_store::{DocStore, DocWrite, Expect, SqliteStore};
use serde_json::{Value, json};

pub use auth::{Caller, TOKEN_COOKIE};
pub use config::{Limits, ServerConfig, Tokens, load_config};
pub use problem::{ApiError, Code, ProblemDoc};

/// The store the server runs on.
pub type ServerRuntime = Runtime<SqliteStore>;

/// Everything a request handler can reach.
pub struct AppState {
    pub runtime: ServerRuntime,
    pub config: ServerConfig,
    pub metrics: metrics::Metrics,
    /// Serialises starts that carry an `Idempotency-Key` (see `api::instances`).
    pub(crate) start_lock: tokio::sync::Mutex<()>,
    /// The trigger engine (rules, dedupe, debounce, quarantine); installed once at start.
    pub triggers: std::sync::OnceLock<baton_engine::triggers::Triggers<SqliteStore>>,
}

impl AppState {
    pub fn new(runtime: ServerRuntime, config: ServerConfig) -> Arc<AppState> {
        let metrics = metrics::Metrics::new();
        metrics.watch_steps(&runtime);
        Arc::new(AppState {
            runtime,
            config,
            metrics,
            start_lock: tokio::sync::Mutex::new(()),
            triggers: std::sync::OnceLock::new(),
        })
    }

    /// Starts the trigger engine with these rules (an empty set still dedupes and quarantines).
    /// Inbound events go through it from then on.
    pub async fn install_triggers(
        &self,
        set: baton_engine::triggers::TriggerSet,
    ) -> Result<(), ApiError> {
        let triggers = self.runtime.triggers(set).await.map_err(|e| {
            ApiError::new(Code::Internal, "Cannot start the triggers").detail(e.to_string())
        })?;
        let _ = self.triggers.set(triggers);
        Ok(())
    }

    pub fn now_ms(&self) -> u64 {
        self.runtime.now_ms()
    }

    /// Records who did what (kind `audit` in the document store), durably, before the caller is
    /// answered.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: Value,
    ) -> Result<(), ApiError> {
        let at_ms = self.now_ms();
        self.runtime
            .store()
            .put_doc(DocWrite {
                kind: "audit".into(),
                id: uuid::Uuid::now_v7().to_string(),
                status: action.to_string(),
                at_ms,
                body: json!({
                    "actor": actor.name,
                    "action": action,
                    "target": target,
                    "detail": detail,
                    "at_ms": at_ms,
                }),
                expect: Expect::Absent,
            })
            .await?;
        Ok(())
    }
}

/// The whole HTTP surface: API, OpenAPI document and docs page, metrics, health.
pub fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(openapi::routes())
        .merge(metrics::routes())
        .merge(dashboard::routes())
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.limits.request_bytes_max,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves; requests in progress are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
