//! The runtime: drives core instances against a store, performs their effects (HTTP, timers,
//! events, registered functions) and resumes unfinished instances after a crash.
//!
//! Architecture invariant (write-ahead): an instance's journal entries are durable before any
//! effect that depends on them is performed outside the process, and before its end is reported.
//! Registered *local* functions (no effect outside the process, like `noop`) run inline between
//! two barriers; their results are journaled in order with everything else.

mod catalog;
mod driver;
mod http;
mod providers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_core::{Env, InstanceId, Problem, Program, Status, TaskEvent};
use baton_store::{Store, StoreError};
use serde_json::Value;
use tokio::sync::watch;

pub use baton_api::events::{EVENT_BYTES_MAX, validate_cloud_event};
pub use baton_api::explain;
pub use baton_api::{
    Actor, Call, Clock, EffectPolicy, EndHook, Ended, EventBus, Function, FunctionRegistry,
    FunctionResult, InstanceEnd, Instances, Intercept, ManualClock, Role, SIGNAL_TARGET,
    StartError, StartHooks, StartResult, SystemClock,
};
pub use catalog::FlowCatalog;
pub use providers::{ProviderLayer, Secrets};

/// The function name of calls to catalogue operations: `call: provider` with
/// `with: {provider, operation, args}`.
pub const PROVIDER_FUNCTION: &str = baton_core::functions::names::PROVIDER;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid flow:\n{}", .0.join("\n"))]
    InvalidFlow(Vec<String>),
    #[error("the flow {0} needed to resume this instance is not in the store")]
    MissingFlow(String),
    #[error("cannot resume instance {id}: {why}")]
    Recover { id: String, why: String },
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("unknown instance {0}")]
    UnknownInstance(String),
    /// A request the instance's state does not allow (cancel a completed instance, resume one
    /// that is not suspended).
    #[error("instance {id}: {why}")]
    Refused { id: String, why: String },
    /// The instance's driver did not answer (it is starting or stopping); asking again may
    /// succeed, unlike a refusal.
    #[error("instance {id}: {why}")]
    Unavailable { id: String, why: String },
}

/// Knobs of a runtime.
#[derive(Clone)]
pub struct RuntimeOptions {
    /// Wait for durability after every step, even between local functions (slower; for
    /// measuring the strict mode).
    pub barrier_every_step: bool,
    /// Per-request timeout of HTTP calls.
    pub http_timeout_ms: u64,
    /// Re-sends of a request whose outcome is unknown, with the same idempotency key.
    pub unknown_resends_max: u32,
    /// When set, outbound HTTP calls may only go to URLs starting with one of these prefixes.
    pub allowed_url_prefixes: Option<Vec<String>>,
    /// The declared providers, shared by every instance (and runtime) holding this layer.
    pub providers: Option<Arc<ProviderLayer>>,
    pub env: Env,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            barrier_every_step: false,
            http_timeout_ms: 30_000,
            unknown_resends_max: 3,
            allowed_url_prefixes: None,
            providers: None,
            env: Env::default(),
        }
    }
}

/// How an instance ended (or where it stands).
#[derive(Debug, Clone)]
pub struct RunResult {
    pub id: InstanceId,
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<Problem>,
    /// Task progress seen by this process (after a resume, only what ran after it).
    pub events: Vec<TaskEvent>,
}

/// What hears each task event of every instance.
pub type ProgressFn = Arc<dyn Fn(&InstanceId, &TaskEvent) + Send + Sync>;

pub(crate) struct Shared<S: Store> {
    pub store: Arc<S>,
    pub clock: Arc<dyn Clock>,
    pub options: RuntimeOptions,
    pub functions: FunctionRegistry,
    pub catalog: Arc<FlowCatalog>,
    pub http: http::HttpClients,
    pub events: Arc<EventBus>,
    pub running: Mutex<HashMap<InstanceId, driver::Running>>,
    /// Called when an instance has ended, in registration order (see [`Runtime::on_instance_end`]).
    pub end_hooks: Mutex<Vec<EndHook>>,
    /// Called with each task event of every instance (progress display).
    pub progress: Mutex<Option<ProgressFn>>,
    /// What hears of live starts and resumes, and gives a resumed instance its policy (the
    /// shadow feature); see [`Runtime::set_start_hooks`].
    pub start_hooks: std::sync::RwLock<Option<Arc<dyn StartHooks>>>,
    /// Per-runtime state of features, by type (see [`Runtime::extension`]).
    pub extensions: Mutex<HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
}

impl<S: Store> Shared<S> {
    /// Function names a flow may call: the registered ones, plus `provider` when a catalogue
    /// is loaded.
    pub fn known_functions(&self) -> Vec<String> {
        let mut names = self.functions.names();
        if self.options.providers.is_some() {
            names.push(PROVIDER_FUNCTION.to_string());
        }
        names
    }

    pub fn start_hooks(&self) -> Option<Arc<dyn StartHooks>> {
        self.start_hooks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Waits for a driver's result; `None` if the driver went away without one.
async fn await_result(mut rx: watch::Receiver<Option<RunResult>>) -> Option<RunResult> {
    loop {
        if let Some(r) = rx.borrow_and_update().clone() {
            return Some(r);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

/// A Baton runtime over a store. Cheap to clone.
pub struct Runtime<S: Store> {
    shared: Arc<Shared<S>>,
}

impl<S: Store> Clone for Runtime<S> {
    fn clone(&self) -> Self {
        Runtime {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Store> Runtime<S> {
    pub fn new(store: Arc<S>, options: RuntimeOptions) -> Runtime<S> {
        Self::with_clock(store, options, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<S>,
        mut options: RuntimeOptions,
        clock: Arc<dyn Clock>,
    ) -> Runtime<S> {
        let catalog = Arc::new(FlowCatalog::default());
        options.env.flows = catalog.clone();
        let http = http::HttpClients::new(options.http_timeout_ms);
        let functions = FunctionRegistry::with_builtins();
        Runtime {
            shared: Arc::new(Shared {
                store,
                clock,
                functions,
                catalog,
                http,
                events: Arc::default(),
                running: Mutex::new(HashMap::new()),
                progress: Mutex::new(None),
                end_hooks: Mutex::new(Vec::new()),
                start_hooks: std::sync::RwLock::new(None),
                extensions: Mutex::new(HashMap::new()),
                options,
            }),
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.shared.store
    }

    /// The runtime's clock (the only "now" Baton uses).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    pub fn catalog(&self) -> &Arc<FlowCatalog> {
        &self.shared.catalog
    }

    pub fn functions(&self) -> &FunctionRegistry {
        &self.shared.functions
    }

    /// Names of the registered custom functions (for flow validation).
    pub fn function_names(&self) -> Vec<String> {
        self.shared.known_functions()
    }

    /// The shared provider layer, if a catalogue is loaded.
    pub fn providers(&self) -> Option<&Arc<ProviderLayer>> {
        self.shared.options.providers.as_ref()
    }

    /// The provider layer's state (breakers, tokens, counters), if a catalogue is loaded.
    pub fn provider_snapshot(&self) -> Option<Value> {
        let now = self.shared.clock.now_ms();
        self.shared
            .options
            .providers
            .as_ref()
            .map(|l| l.snapshot(now))
    }

    /// Sets what hears of live starts and resumes and gives a resumed instance its policy (one
    /// per runtime: the shadow feature). Set before instances start or resume.
    pub fn set_start_hooks(&self, hooks: Arc<dyn StartHooks>) {
        *self
            .shared
            .start_hooks
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(hooks);
    }

    /// The feature state of type `T` kept with this runtime, made by `make` the first time:
    /// one per runtime, shared by every handle a feature hands out over it (a cache that every
    /// start consults, say).
    pub fn extension<T: Send + Sync + 'static>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self
            .shared
            .extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let any = map
            .entry(std::any::TypeId::of::<T>())
            .or_insert_with(|| Arc::new(make()))
            .clone();
        // The entry under T's TypeId was made as a T.
        any.downcast::<T>().unwrap_or_else(|_| unreachable!())
    }

    /// Runs `hook` whenever an instance driven by this runtime ends (after its end is durable):
    /// the place to release what the instance held.
    pub fn on_instance_end(&self, hook: EndHook) {
        self.shared
            .end_hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Reports every task event of every instance to `f` (e.g. progress on stderr), after the
    /// listeners added before it (metrics and traces each add one).
    pub fn on_progress(&self, f: impl Fn(&InstanceId, &TaskEvent) + Send + Sync + 'static) {
        let mut slot = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let combined: ProgressFn = match slot.take() {
            Some(before) => Arc::new(move |id: &InstanceId, e: &TaskEvent| {
                before(id, e);
                f(id, e);
            }),
            None => Arc::new(f),
        };
        *slot = Some(combined);
    }

    /// Every static check of a flow against what this runtime can call (see
    /// [`baton_core::check_flow`]), with each problem's location.
    pub fn check_flow(
        &self,
        text: &str,
    ) -> Result<baton_flow::LoadedFlow, Vec<baton_flow::Diagnostic>> {
        baton_core::check_flow(text, self.function_names())
    }

    /// Parses, validates and registers a flow (also making it available to `run: workflow`),
    /// and stores its source so instances can be resumed.
    pub async fn register_flow(&self, text: &str) -> Result<Arc<Program>, RuntimeError> {
        // A misdeclared `metadata.baton` is refused now, not when its task is reached.
        let loaded = self.check_flow(text).map_err(|ds| {
            RuntimeError::InvalidFlow(ds.iter().map(|d| d.render("flow")).collect())
        })?;
        let program = Arc::new(Program::new(loaded.workflow, loaded.raw, text));
        self.shared.store.put_flow(&program.flow, text).await?;
        self.shared.catalog.insert(program.clone());
        Ok(program)
    }

    /// Starts an instance; returns once its start is durable. The instance runs in the
    /// background; [`Runtime::wait`] waits for its end.
    pub async fn start(
        &self,
        program: Arc<Program>,
        input: Value,
    ) -> Result<InstanceId, RuntimeError> {
        Ok(driver::start(self.shared.clone(), program, input, None)
            .await?
            .0)
    }

    /// Like [`Runtime::start`] with a caller-chosen id (idempotent starts use it).
    pub async fn start_with_id(
        &self,
        id: InstanceId,
        program: Arc<Program>,
        input: Value,
    ) -> Result<InstanceId, RuntimeError> {
        Ok(driver::start(self.shared.clone(), program, input, Some(id))
            .await?
            .0)
    }

    /// Starts an instance and waits for its end.
    pub async fn run(
        &self,
        program: Arc<Program>,
        input: Value,
    ) -> Result<RunResult, RuntimeError> {
        // Hold the result channel from the start: a fast instance may end before a separate
        // `wait` could look it up, and its task events would be lost.
        let (id, rx) = driver::start(self.shared.clone(), program, input, None).await?;
        match await_result(rx).await {
            Some(r) => Ok(r),
            None => self.wait(&id).await,
        }
    }

    /// Waits until the instance ends (or reports where it stands if it is not running here).
    pub async fn wait(&self, id: &InstanceId) -> Result<RunResult, RuntimeError> {
        let rx = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|r| r.result.clone());
        if let Some(rx) = rx
            && let Some(r) = await_result(rx).await
        {
            return Ok(r);
        }
        let rec = self
            .shared
            .store
            .instance(id)
            .await?
            .ok_or_else(|| RuntimeError::UnknownInstance(id.0.clone()))?;
        Ok(RunResult {
            id: id.clone(),
            status: rec.status,
            output: rec.output,
            error: rec.error,
            events: Vec::new(),
        })
    }

    /// Cancels an instance; returns once the cancellation is durable.
    pub async fn cancel(
        &self,
        id: &InstanceId,
        reason: &str,
        by: &str,
    ) -> Result<Status, RuntimeError> {
        self.control(
            id,
            driver::Control::Cancel {
                reason: reason.to_string(),
                by: by.to_string(),
            },
        )
        .await
    }

    /// Suspends an instance: effects in flight finish and are journaled; nothing new starts.
    pub async fn suspend(
        &self,
        id: &InstanceId,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Status, RuntimeError> {
        self.control(
            id,
            driver::Control::Suspend {
                by: by.to_string(),
                reason: reason.map(str::to_string),
            },
        )
        .await
    }

    /// Resumes a suspended instance.
    pub async fn unsuspend(&self, id: &InstanceId, by: &str) -> Result<Status, RuntimeError> {
        self.control(id, driver::Control::Resume { by: by.to_string() })
            .await
    }

    /// Sends an event to one instance: it is stored with the extension attribute
    /// `batoninstance` set to the instance id, so only that instance's listeners take it.
    /// Returns false for a duplicate (same `source` and `id`).
    pub async fn signal(&self, id: &InstanceId, mut event: Value) -> Result<bool, RuntimeError> {
        let rec = self
            .shared
            .store
            .instance(id)
            .await?
            .ok_or_else(|| RuntimeError::UnknownInstance(id.0.clone()))?;
        if rec.status.is_terminal() {
            return Err(RuntimeError::Refused {
                id: id.0.clone(),
                why: format!("the instance has already ended ({})", rec.status.as_str()),
            });
        }
        if let Some(obj) = event.as_object_mut() {
            obj.insert(SIGNAL_TARGET.into(), Value::String(id.0.clone()));
        }
        self.publish_event(event).await
    }

    /// Sends a request to an instance's driver, loading the instance from the store first if it
    /// is unfinished but not running in this process.
    async fn control(
        &self,
        id: &InstanceId,
        control: driver::Control,
    ) -> Result<Status, RuntimeError> {
        for attempt in 0..2 {
            let sender = self
                .shared
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .map(|r| r.control.clone());
            if let Some(sender) = sender {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if sender
                    .send(driver::DriverMsg::Control(control.clone(), tx))
                    .is_ok()
                    && let Ok(answer) = rx.await
                {
                    return answer;
                }
            }
            // Not running here (or it ended while we asked): look at the store.
            let rec = self
                .shared
                .store
                .instance(id)
                .await?
                .ok_or_else(|| RuntimeError::UnknownInstance(id.0.clone()))?;
            if rec.status.is_terminal() {
                return Err(RuntimeError::Refused {
                    id: id.0.clone(),
                    why: format!("the instance has already ended ({})", rec.status.as_str()),
                });
            }
            if attempt == 0 {
                driver::resume(self.shared.clone(), rec.id, rec.flow).await?;
            }
        }
        Err(RuntimeError::Unavailable {
            id: id.0.clone(),
            why: "the instance's driver is not answering".into(),
        })
    }

    /// Resumes every unfinished instance in the store; returns their ids.
    pub async fn resume_all(&self) -> Result<Vec<InstanceId>, RuntimeError> {
        let mut ids = Vec::new();
        for rec in self.shared.store.unfinished().await? {
            driver::resume(self.shared.clone(), rec.id.clone(), rec.flow).await?;
            ids.push(rec.id);
        }
        Ok(ids)
    }

    /// Delivers a CloudEvent (structured JSON) to the runtime: stored durably (deduplicated by
    /// `source` + `id`), then offered to listening instances. Returns false for a duplicate.
    pub async fn publish_event(&self, event: Value) -> Result<bool, RuntimeError> {
        validate_cloud_event(&event).map_err(RuntimeError::InvalidEvent)?;
        let fresh = self
            .shared
            .store
            .put_event(&event, self.shared.clock.now_ms())
            .await?;
        self.shared.events.notify();
        Ok(fresh)
    }
}

/// What features (the trigger engine) may ask of the kernel.
impl<S: Store> Instances for Runtime<S> {
    fn resolve_flow(&self, namespace: &str, name: &str, version: &str) -> Option<Arc<Program>> {
        use baton_core::FlowResolver;
        self.shared.catalog.resolve(namespace, name, version)
    }

    fn start_with_id(
        &self,
        id: InstanceId,
        program: Arc<Program>,
        input: Value,
    ) -> StartResult<'_> {
        Box::pin(async move {
            Runtime::start_with_id(self, id, program, input)
                .await
                .map_err(start_error)
        })
    }

    fn events(&self) -> &EventBus {
        &self.shared.events
    }

    fn program_by_hash(&self, hash: &str) -> Option<Arc<Program>> {
        self.shared.catalog.by_hash(hash)
    }

    fn function_names(&self) -> Vec<String> {
        self.shared.known_functions()
    }

    fn env(&self) -> Env {
        self.shared.options.env.clone()
    }

    fn is_shadow<'a>(&'a self, id: &'a InstanceId) -> baton_api::IsShadow<'a> {
        Box::pin(async move {
            match self.shared.start_hooks() {
                Some(h) => Ok(h.resume_policy(id).await?.is_some()),
                None => Ok(false),
            }
        })
    }

    fn start_under(
        &self,
        id: Option<InstanceId>,
        program: Arc<Program>,
        input: Value,
        policy: Arc<dyn EffectPolicy>,
    ) -> StartResult<'_> {
        Box::pin(async move {
            driver::start_with_policy(self.shared.clone(), program, input, id, Some(policy))
                .await
                .map(|(id, _)| id)
                .map_err(start_error)
        })
    }

    fn is_running(&self, id: &InstanceId) -> bool {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn cancel<'a>(
        &'a self,
        id: &'a InstanceId,
        reason: &'a str,
        by: &'a str,
    ) -> baton_api::BoxFuture<'a, Result<Status, StartError>> {
        Box::pin(async move {
            Runtime::cancel(self, id, reason, by)
                .await
                .map_err(start_error)
        })
    }

    fn wait_end<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> baton_api::BoxFuture<'a, Result<Ended, StartError>> {
        Box::pin(async move {
            let r = self.wait(id).await.map_err(start_error)?;
            Ok(Ended {
                status: r.status,
                output: r.output,
                error: r.error,
            })
        })
    }

    fn program_for<'a>(
        &'a self,
        flow: &'a baton_core::FlowRef,
    ) -> baton_api::BoxFuture<'a, Result<Arc<Program>, StartError>> {
        Box::pin(async move {
            driver::program_for(&self.shared, flow)
                .await
                .map_err(start_error)
        })
    }
}

/// A runtime held without keeping it alive: what feature state kept *in* the runtime (its
/// extension map, its hooks) holds to reach the kernel, so the two do not keep each other
/// alive. Once the runtime is dropped, its calls fail with [`StartError::Failed`].
pub struct WeakRuntime<S: Store> {
    shared: std::sync::Weak<Shared<S>>,
    events: Arc<EventBus>,
}

impl<S: Store> Runtime<S> {
    /// A handle that does not keep this runtime alive (see [`WeakRuntime`]).
    pub fn downgrade(&self) -> WeakRuntime<S> {
        WeakRuntime {
            shared: Arc::downgrade(&self.shared),
            events: self.shared.events.clone(),
        }
    }
}

impl<S: Store> WeakRuntime<S> {
    pub fn upgrade(&self) -> Option<Runtime<S>> {
        self.shared.upgrade().map(|shared| Runtime { shared })
    }

    fn live(&self) -> Result<Runtime<S>, StartError> {
        self.upgrade()
            .ok_or_else(|| StartError::Failed("the runtime has been dropped".into()))
    }
}

impl<S: Store> Instances for WeakRuntime<S> {
    fn resolve_flow(&self, namespace: &str, name: &str, version: &str) -> Option<Arc<Program>> {
        Instances::resolve_flow(&self.upgrade()?, namespace, name, version)
    }

    fn start_with_id(
        &self,
        id: InstanceId,
        program: Arc<Program>,
        input: Value,
    ) -> StartResult<'_> {
        Box::pin(async move { Instances::start_with_id(&self.live()?, id, program, input).await })
    }

    fn start_under(
        &self,
        id: Option<InstanceId>,
        program: Arc<Program>,
        input: Value,
        policy: Arc<dyn EffectPolicy>,
    ) -> StartResult<'_> {
        Box::pin(async move { self.live()?.start_under(id, program, input, policy).await })
    }

    fn is_running(&self, id: &InstanceId) -> bool {
        self.upgrade().is_some_and(|rt| rt.is_running(id))
    }

    fn cancel<'a>(
        &'a self,
        id: &'a InstanceId,
        reason: &'a str,
        by: &'a str,
    ) -> baton_api::BoxFuture<'a, Result<Status, StartError>> {
        Box::pin(async move { Instances::cancel(&self.live()?, id, reason, by).await })
    }

    fn wait_end<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> baton_api::BoxFuture<'a, Result<Ended, StartError>> {
        Box::pin(async move { self.live()?.wait_end(id).await })
    }

    fn program_for<'a>(
        &'a self,
        flow: &'a baton_core::FlowRef,
    ) -> baton_api::BoxFuture<'a, Result<Arc<Program>, StartError>> {
        Box::pin(async move { Instances::program_for(&self.live()?, flow).await })
    }

    fn events(&self) -> &EventBus {
        &self.events
    }

    fn program_by_hash(&self, hash: &str) -> Option<Arc<Program>> {
        self.upgrade()?.program_by_hash(hash)
    }

    fn function_names(&self) -> Vec<String> {
        self.upgrade()
            .map(|rt| rt.function_names())
            .unwrap_or_default()
    }

    fn env(&self) -> Env {
        self.upgrade()
            .map(|rt| Instances::env(&rt))
            .unwrap_or_default()
    }

    fn is_shadow<'a>(&'a self, id: &'a InstanceId) -> baton_api::IsShadow<'a> {
        Box::pin(async move {
            match self.upgrade() {
                Some(rt) => rt.is_shadow(id).await,
                None => Ok(false),
            }
        })
    }
}

/// A kernel error as features hear it: a store failure, a refusal by the instance's state, or
/// another failure.
fn start_error(e: RuntimeError) -> StartError {
    match e {
        RuntimeError::Store(s) => StartError::Store(s),
        RuntimeError::Refused { id, why } => StartError::Refused(format!("instance {id}: {why}")),
        other => StartError::Failed(other.to_string()),
    }
}
