//! The driver loop of one instance: step the core, make its entries durable, perform its
//! effects, deliver their outcomes, repeat.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use baton_core::{
    EffectCall, EffectKey, EffectRequest, Instance, InstanceId, JournalEntry, Outcome, Program,
    Status,
};
use baton_store::{Append, Store};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::providers::{Notes, Target};
use crate::{PROVIDER_FUNCTION, RunResult, RuntimeError, Shared, http};
use baton_api::{Call, EffectPolicy, Intercept};

fn new_instance_id() -> InstanceId {
    InstanceId(uuid::Uuid::now_v7().to_string())
}

pub(crate) async fn start<S: Store>(
    shared: Arc<Shared<S>>,
    program: Arc<Program>,
    input: Value,
    id: Option<InstanceId>,
) -> Result<(InstanceId, watch::Receiver<Option<RunResult>>), RuntimeError> {
    start_with_policy(shared, program, input, id, None).await
}

/// Starts an instance whose effects a policy may hold back (a shadow, a replay); `None` is an
/// ordinary (live) instance, whose start the start hooks hear of (a shadow feature starts the
/// shadows registered for its flow version).
pub(crate) async fn start_with_policy<S: Store>(
    shared: Arc<Shared<S>>,
    program: Arc<Program>,
    input: Value,
    id: Option<InstanceId>,
    policy: Option<Arc<dyn EffectPolicy>>,
) -> Result<(InstanceId, watch::Receiver<Option<RunResult>>), RuntimeError> {
    let id = id.unwrap_or_else(new_instance_id);
    let now = shared.clock.now_ms();
    let hooks = shared.start_hooks();
    // The input is kept only when a hook may want it: most runtimes have no shadow.
    let live_start = hooks
        .as_ref()
        .filter(|h| policy.is_none() && h.wants_live_starts())
        .map(|h| (h.clone(), program.flow.clone(), input.clone()));
    let inst = Instance::start(id.clone(), program, shared.options.env.clone(), input, now);
    let (tx, rx) = watch::channel(None);
    let channel = mpsc::unbounded_channel();
    {
        // A second start of an id already running here (two requests racing to start one
        // shadow case) must neither replace the running driver's entry nor, when its own start
        // fails on the journal, remove it: the running instance would lose its controls.
        let mut running = shared.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&id) {
            return Err(RuntimeError::Refused {
                id: id.0.clone(),
                why: "the instance is already running".into(),
            });
        }
        running.insert(
            id.clone(),
            Running {
                result: rx.clone(),
                control: channel.0.clone(),
            },
        );
    }
    let mut driver = Driver::new(shared.clone(), inst, 0, HashSet::new(), tx, channel);
    driver.policy = policy;
    // The start is acknowledged only once the `started` entry (and whatever the first step
    // produced) is durable.
    let first = driver.advance().await;
    match first {
        Ok(()) => {
            // Before the live driver runs, so that its end finds what the hook made of its
            // start (a shadow's case).
            if let Some((hooks, flow, input)) = live_start {
                hooks.live_started(&flow, &id, input).await;
            }
            tokio::spawn(driver.run());
            Ok((id, rx))
        }
        Err(e) => {
            shared
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            Err(e)
        }
    }
}

pub(crate) async fn resume<S: Store>(
    shared: Arc<Shared<S>>,
    id: InstanceId,
    flow: baton_core::FlowRef,
) -> Result<(), RuntimeError> {
    if shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&id)
    {
        return Ok(());
    }
    let program = program_for(&shared, &flow).await?;
    let hooks = shared.start_hooks();
    // A policy that outlives a restart is kept (a shadow stays a shadow: its mark was made
    // durable before it started).
    let policy = match &hooks {
        Some(h) => h.resume_policy(&id).await?,
        None => None,
    };
    let journal = shared.store.journal(&id).await?;
    // A live instance whose hooks did not hear of its start before the process died (its
    // shadows did not start) is told of its resume.
    if let Some(h) = &hooks
        && policy.is_none()
        && h.wants_live_starts()
        && let Some(JournalEntry::Started { at_ms, input, .. }) = journal.first()
    {
        h.live_resumed(&flow, &id, *at_ms, input).await;
    }
    let consumed = consumed_events(&journal);
    let len = journal.len() as u64;
    let inst = Instance::recover(id.clone(), program, shared.options.env.clone(), &journal)
        .map_err(|e| RuntimeError::Recover {
            id: id.0.clone(),
            why: e.to_string(),
        })?;
    let (tx, rx) = watch::channel(None);
    let channel = mpsc::unbounded_channel();
    shared
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            id.clone(),
            Running {
                result: rx,
                control: channel.0.clone(),
            },
        );
    let mut driver = Driver::new(shared, inst, len, consumed, tx, channel);
    driver.policy = policy;
    driver.recovering = true;
    driver.advance().await?;
    driver.recovering = false;
    tokio::spawn(driver.run());
    Ok(())
}

/// The program of a flow version: from the catalog, or loaded from the store's copy of its source.
pub(crate) async fn program_for<S: Store>(
    shared: &Shared<S>,
    flow: &baton_core::FlowRef,
) -> Result<Arc<Program>, RuntimeError> {
    if let Some(p) = shared.catalog.by_hash(&flow.hash) {
        return Ok(p);
    }
    let source = shared.store.flow_source(&flow.hash).await?.ok_or_else(|| {
        RuntimeError::MissingFlow(format!(
            "{}/{}:{} ({})",
            flow.namespace, flow.name, flow.version, flow.hash
        ))
    })?;
    let opts = baton_flow::ValidateOptions {
        known_functions: shared.known_functions(),
    };
    let loaded = baton_flow::load_flow(&source, &opts).map_err(|ds| {
        RuntimeError::InvalidFlow(ds.iter().map(|d| d.render("stored flow")).collect())
    })?;
    let p = Arc::new(Program::new(loaded.workflow, loaded.raw, &source));
    shared.catalog.insert(p.clone());
    Ok(p)
}

/// `(source, id)` of the events an instance already consumed, so a resumed listener does not take
/// them again.
fn consumed_events(journal: &[JournalEntry]) -> HashSet<(String, String)> {
    journal
        .iter()
        .filter_map(|e| match e {
            JournalEntry::EffectCompleted {
                key,
                outcome: Outcome::Ok { value },
                ..
            } if key.is_listen() => Some((
                value.get("source")?.as_str()?.to_string(),
                value.get("id")?.as_str()?.to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// What a driver is told: an effect's progress, or a person's request.
pub(crate) enum DriverMsg {
    Effect(EffectKey, EffectMsg),
    Control(
        Control,
        tokio::sync::oneshot::Sender<Result<Status, RuntimeError>>,
    ),
}

/// A request from outside the instance (API, CLI), answered once its journal entry is durable.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    Cancel { reason: String, by: String },
    Suspend { by: String, reason: Option<String> },
    Resume { by: String },
}

/// What an effect task reports to its driver.
pub(crate) enum EffectMsg {
    /// Something worth journaling happened on the way (a retry, a reconciliation, a poll).
    Note(Value),
    /// The effect ended.
    Done(Outcome),
}

type Reply = (
    tokio::sync::oneshot::Sender<Result<Status, RuntimeError>>,
    Result<(), RuntimeError>,
);

/// A driver as the runtime sees it: its result, and where to send it requests.
pub(crate) struct Running {
    pub result: watch::Receiver<Option<RunResult>>,
    pub control: mpsc::UnboundedSender<DriverMsg>,
}

struct Driver<S: Store> {
    shared: Arc<Shared<S>>,
    inst: Instance,
    next_seq: u64,
    tx: mpsc::UnboundedSender<DriverMsg>,
    rx: mpsc::UnboundedReceiver<DriverMsg>,
    tasks: HashMap<EffectKey, JoinHandle<()>>,
    consumed: Arc<std::sync::Mutex<HashSet<(String, String)>>>,
    result: watch::Sender<Option<RunResult>>,
    events: Vec<baton_core::TaskEvent>,
    status: Status,
    /// True while starting the effects that were outstanding when the journal was recovered:
    /// their requests may have reached the provider before the crash.
    recovering: bool,
    /// Set for shadows and replays: which effects are performed and which answered in place.
    policy: Option<Arc<dyn EffectPolicy>>,
}

impl<S: Store> Driver<S> {
    fn new(
        shared: Arc<Shared<S>>,
        inst: Instance,
        next_seq: u64,
        consumed: HashSet<(String, String)>,
        result: watch::Sender<Option<RunResult>>,
        (tx, rx): (
            mpsc::UnboundedSender<DriverMsg>,
            mpsc::UnboundedReceiver<DriverMsg>,
        ),
    ) -> Driver<S> {
        Driver {
            shared,
            inst,
            next_seq,
            tx,
            rx,
            tasks: HashMap::new(),
            consumed: Arc::new(std::sync::Mutex::new(consumed)),
            result,
            events: Vec::new(),
            status: Status::Running,
            recovering: false,
            policy: None,
        }
    }

    /// Steps the instance until it waits on the outside world: local functions run inline,
    /// entries are made durable (one append), then external effects start.
    async fn advance(&mut self) -> Result<(), RuntimeError> {
        let mut entries: Vec<JournalEntry> = Vec::new();
        let mut external: Vec<EffectCall> = Vec::new();
        loop {
            let step = self.inst.step();
            entries.extend(step.entries);
            self.status = step.status;
            for key in step.cancel {
                if let Some(h) = self.tasks.remove(&key) {
                    h.abort();
                }
                external.retain(|c| c.key != key);
            }
            if let Some(cb) = self
                .shared
                .progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                for e in &step.events {
                    cb(self.inst.id(), e);
                }
            }
            self.events.extend(step.events);
            let mut ran_local = false;
            for call in step.start {
                // A shadow or a replay answers the effects it must not perform here, with a
                // note of what would have been done (journaled before the answer).
                if let Some(policy) = &self.policy
                    && let Intercept::Answer { outcome, note } = policy.intercept(&call)
                {
                    let now = self.shared.clock.now_ms();
                    self.inst.note(&call.key, note, now);
                    self.inst.deliver(&call.key, outcome, now);
                    ran_local = true;
                    continue;
                }
                let local = match &call.request {
                    EffectRequest::Function { name, .. } => {
                        self.shared.functions.get(name).filter(|f| f.is_local())
                    }
                    _ => None,
                };
                match local {
                    Some(f) => {
                        let EffectRequest::Function { args, .. } = &call.request else {
                            continue;
                        };
                        let outcome = f
                            .invoke(
                                Call::of(self.inst.id(), &call.idempotency_key),
                                args.clone(),
                            )
                            .await;
                        self.inst
                            .deliver(&call.key, outcome, self.shared.clock.now_ms());
                        ran_local = true;
                        if self.shared.options.barrier_every_step {
                            self.append(std::mem::take(&mut entries)).await?;
                        }
                    }
                    None => external.push(call),
                }
            }
            if !ran_local {
                break;
            }
        }
        self.append(entries).await?;
        for call in external {
            self.spawn_effect(call);
        }
        Ok(())
    }

    async fn append(&mut self, entries: Vec<JournalEntry>) -> Result<(), RuntimeError> {
        if entries.is_empty() {
            return Ok(());
        }
        let n = entries.len() as u64;
        let batch = Append {
            instance: self.inst.id().clone(),
            first_seq: self.next_seq,
            entries,
            status: self.status,
        };
        self.shared.store.append(batch).await?;
        self.next_seq += n;
        Ok(())
    }

    fn spawn_effect(&mut self, call: EffectCall) {
        let shared = self.shared.clone();
        let tx = self.tx.clone();
        let consumed = self.consumed.clone();
        let key = call.key.clone();
        let resumed = self.recovering;
        let instance = self.inst.id().clone();
        let handle = tokio::spawn(async move {
            let note_tx = tx.clone();
            let note_key = call.key.clone();
            let notes = move |note: Value| {
                let _ = note_tx.send(DriverMsg::Effect(note_key.clone(), EffectMsg::Note(note)));
            };
            let outcome = perform(&shared, &instance, &call, &consumed, &notes, resumed).await;
            let _ = tx.send(DriverMsg::Effect(call.key, EffectMsg::Done(outcome)));
        });
        self.tasks.insert(key, handle);
    }

    /// Applies a message to the instance; a control request's answer is returned to be sent
    /// once the entries it made are durable.
    fn take(&mut self, msg: DriverMsg, now: u64) -> Option<Reply> {
        match msg {
            DriverMsg::Effect(key, EffectMsg::Note(note)) => {
                self.inst.note(&key, note, now);
                None
            }
            DriverMsg::Effect(key, EffectMsg::Done(outcome)) => {
                self.tasks.remove(&key);
                self.inst.deliver(&key, outcome, now);
                None
            }
            DriverMsg::Control(control, reply) => {
                let id = self.inst.id().0.clone();
                let refused = |why: &str| {
                    Err(RuntimeError::Refused {
                        id: id.clone(),
                        why: why.to_string(),
                    })
                };
                let answer = match control {
                    Control::Cancel { reason, by } => {
                        if self.inst.cancel_by(&reason, Some(&by), now) {
                            Ok(())
                        } else {
                            refused(
                                "the instance is undoing its effects (compensation); it ends \
                                 when they are undone",
                            )
                        }
                    }
                    Control::Suspend { by, reason } => {
                        if self.inst.suspend(&by, reason.as_deref(), now) {
                            Ok(())
                        } else {
                            refused("the instance is already suspended")
                        }
                    }
                    Control::Resume { by } => {
                        if self.inst.resume(&by, now) {
                            Ok(())
                        } else {
                            refused("the instance is not suspended")
                        }
                    }
                };
                Some((reply, answer))
            }
        }
    }

    async fn run(mut self) {
        let end = loop {
            if self.status.is_terminal() {
                break Ok(());
            }
            let Some(first) = self.rx.recv().await else {
                break Ok(());
            };
            let now = self.shared.clock.now_ms();
            let mut replies: Vec<Reply> = Vec::new();
            replies.extend(self.take(first, now));
            // Take every other message already waiting, so they share one durable append.
            while let Ok(msg) = self.rx.try_recv() {
                replies.extend(self.take(msg, now));
            }
            let advanced = self.advance().await;
            // Control requests are answered only now: their entries are durable (or failed).
            for (reply, answer) in replies {
                // A request that could not be made durable failed for the store's sake, not
                // the instance's state: the caller may try again (the API answers 503).
                let answer = match (&advanced, answer) {
                    (Err(e), _) => Err(RuntimeError::Store(baton_store::StoreError::Io(format!(
                        "instance {}: the request could not be made durable: {e}",
                        self.inst.id()
                    )))),
                    (Ok(()), a) => a.map(|()| self.status),
                };
                let _ = reply.send(answer);
            }
            if let Err(e) = advanced {
                break Err(e);
            }
        };
        for (_, h) in self.tasks.drain() {
            h.abort();
        }
        // What other parts keep about the instance (claims it holds, approval tasks still open)
        // is settled once it has ended.
        if self.status.is_terminal() {
            let hooks = self
                .shared
                .end_hooks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for hook in hooks {
                hook(crate::InstanceEnd {
                    id: self.inst.id().clone(),
                    status: self.status,
                    program: self.inst.program().clone(),
                })
                .await;
            }
        }
        let id = self.inst.id().clone();
        let rec = self.shared.store.instance(&id).await.ok().flatten();
        let result = match (end, rec) {
            (Ok(()), Some(rec)) => RunResult {
                id: id.clone(),
                status: rec.status,
                output: rec.output,
                error: rec.error,
                events: std::mem::take(&mut self.events),
            },
            (Err(e), _) => RunResult {
                id: id.clone(),
                status: Status::Faulted,
                output: None,
                error: Some(
                    baton_core::Problem::new(baton_core::ErrorKind::Runtime, "Store failure")
                        .with_detail(e.to_string()),
                ),
                events: std::mem::take(&mut self.events),
            },
            (Ok(()), None) => RunResult {
                id: id.clone(),
                status: self.status,
                output: None,
                error: None,
                events: std::mem::take(&mut self.events),
            },
        };
        let _ = self.result.send(Some(result));
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// Performs one external effect to an outcome.
async fn perform<S: Store>(
    shared: &Arc<Shared<S>>,
    instance: &InstanceId,
    call: &EffectCall,
    consumed: &std::sync::Mutex<HashSet<(String, String)>>,
    notes: Notes<'_>,
    resumed: bool,
) -> Outcome {
    let allowed = &shared.options.allowed_url_prefixes;
    let providers = shared.options.providers.as_deref();
    match &call.request {
        EffectRequest::Timer { fire_at_ms } => {
            shared.clock.sleep_until(*fire_at_ms).await;
            Outcome::ok(Value::Null)
        }
        // A plain `call: http` to a declared provider shares that provider's gate.
        EffectRequest::Http(req)
            if let Some((layer, name)) =
                providers.and_then(|l| l.provider_for_uri(&req.uri).map(|n| (l, n))) =>
        {
            layer
                .call(
                    &*shared.clock,
                    name,
                    Target::Http(req),
                    call,
                    notes,
                    resumed,
                )
                .await
        }
        EffectRequest::Function { name, args } if name == PROVIDER_FUNCTION => {
            let Some(layer) = providers else {
                return Outcome::failed(baton_core::Problem::new(
                    baton_core::ErrorKind::Configuration,
                    "`call: provider` needs a provider catalogue (--providers FILE)",
                ));
            };
            let (Some(provider), Some(operation)) = (
                args.get("provider").and_then(Value::as_str),
                args.get("operation").and_then(Value::as_str),
            ) else {
                return Outcome::failed(baton_core::Problem::new(
                    baton_core::ErrorKind::Validation,
                    "`call: provider` takes `with: {provider, operation, args}`",
                ));
            };
            let op_args = args.get("args").cloned().unwrap_or(Value::Null);
            layer
                .call(
                    &*shared.clock,
                    provider,
                    Target::Operation {
                        operation,
                        args: &op_args,
                    },
                    call,
                    notes,
                    resumed,
                )
                .await
        }
        EffectRequest::Http(req) => {
            // An unknown outcome is reconciled by re-sending with the same idempotency key: a
            // provider that honours the key applies the request at most once.
            let mut outcome = http::perform(&shared.http, call, req, allowed).await;
            let mut resends = 0;
            while matches!(outcome, Outcome::Unknown { .. })
                && resends < shared.options.unknown_resends_max
            {
                resends += 1;
                outcome = http::perform(&shared.http, call, req, allowed).await;
            }
            outcome
        }
        EffectRequest::Function { name, args } if name == "openapi" => {
            http::perform_openapi(&shared.http, call, args, allowed).await
        }
        EffectRequest::Function { name, args } => match shared.functions.get(name) {
            Some(f) => {
                f.invoke(Call::of(instance, &call.idempotency_key), args.clone())
                    .await
            }
            None => Outcome::failed(baton_core::Problem::new(
                baton_core::ErrorKind::Configuration,
                format!("Unknown function `{name}`"),
            )),
        },
        EffectRequest::Emit { event } => {
            if let Err(e) = crate::validate_cloud_event(event) {
                return Outcome::failed(
                    baton_core::Problem::new(baton_core::ErrorKind::Validation, "Invalid event")
                        .with_detail(e),
                );
            }
            match shared.store.put_event(event, shared.clock.now_ms()).await {
                Ok(_) => {
                    shared.events.notify();
                    Outcome::ok(event.clone())
                }
                Err(e) => Outcome::failed(
                    baton_core::Problem::new(
                        baton_core::ErrorKind::Runtime,
                        "Cannot store the event",
                    )
                    .with_detail(e.to_string()),
                ),
            }
        }
        EffectRequest::Listen { filters } => listen(shared, filters, consumed).await,
    }
}

/// Waits for the oldest stored event that matches one of `filters` and that this instance has not
/// consumed yet. The filters carry the listening instance's id and the correlations the core
/// resolved (see `baton_core::listen`): an event aimed at another instance, or whose correlated
/// values differ, is not taken.
async fn listen<S: Store>(
    shared: &Arc<Shared<S>>,
    filters: &[Value],
    consumed: &std::sync::Mutex<HashSet<(String, String)>>,
) -> Outcome {
    // Compiled once: the scan below may test thousands of stored events against them.
    let matchers: Vec<baton_core::listen::Matcher> = filters
        .iter()
        .map(baton_core::listen::Matcher::new)
        .collect();
    let mut cursor = 0u64;
    // The store's watch of its event log wakes this listener when any process stores an event
    // (subscribed before the first read, so nothing stored in between is missed); the bus is
    // the faster path for events stored through this runtime.
    let mut stored_anywhere = shared.store.watch_events();
    let mut watch_open = true;
    loop {
        // Register for wake-ups before reading, so an event stored in between is not missed.
        let notified = shared.events.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let batch = match shared.store.events_after(cursor, 1000).await {
            Ok(b) => b,
            Err(e) => {
                return Outcome::failed(
                    baton_core::Problem::new(baton_core::ErrorKind::Runtime, "Cannot read events")
                        .with_detail(e.to_string()),
                );
            }
        };
        let got_full_batch = batch.len() == 1000;
        for stored in batch {
            cursor = stored.seq;
            if !matchers.iter().any(|m| m.matches(&stored.event)) {
                continue;
            }
            let ident = (
                stored
                    .event
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                stored
                    .event
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            let mut c = consumed.lock().unwrap_or_else(|p| p.into_inner());
            if c.insert(ident) {
                return Outcome::ok(stored.event);
            }
        }
        if !got_full_batch {
            if watch_open {
                tokio::select! {
                    _ = notified => {}
                    woke = stored_anywhere.changed() => {
                        // A closed store wakes nobody again: wait on the bus alone.
                        watch_open = woke.is_ok();
                    }
                }
            } else {
                notified.await;
            }
        }
    }
}
