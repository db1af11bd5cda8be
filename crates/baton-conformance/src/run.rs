//! Running one scenario: a fresh fake server, a fresh SQLite store in a temporary directory and a
//! fresh runtime over it; the steps act on that world in order.
//!
//! Network: the CTK names public services (`https://petstore.swagger.io/v2/...`,
//! `https://httpbin.org/...`). Conformance must not depend on the Internet, so before a
//! definition is registered those URL prefixes are rewritten to this scenario's local
//! [`FakeServer`], which serves stand-ins for the operations the CTK uses (see `baton-testkit`).
//! Our own feature files name the fake server `http://baton-fake.test` (the `.test` TLD is
//! reserved and never resolves). The runtime is also told to call nothing but the fake server, so
//! a URL that escaped the rewrite fails loudly instead of reaching out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{InstanceId, Problem, Program, Status, TaskEvent};
use baton_runtime::{RunResult, Runtime, RuntimeOptions};
use baton_store::{SqliteOptions, SqliteStore};
use baton_testkit::FakeServer;
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};

use crate::steps::Action;

/// Public service prefixes and the fake server paths that stand in for them.
const REWRITES: [(&str, &str); 3] = [
    ("https://petstore.swagger.io/v2", "/petstore/v2"),
    ("https://httpbin.org", "/httpbin"),
    ("http://baton-fake.test", ""),
];

/// Per-request timeout of the runtime's HTTP calls in a scenario: the fake server answers in
/// milliseconds, so a hang is a failure to report, not to wait out.
const HTTP_TIMEOUT_MS: u64 = 10_000;
/// How long the crashing half of a crash/resume step may take to reach its crash point.
const CRASH_POINT_WAIT_MS: u64 = 10_000;

/// How a run ended, as the checks see it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<Problem>,
    pub events: Vec<TaskEvent>,
}

/// Everything one scenario has set up so far.
pub struct World {
    pub server: FakeServer,
    dir: tempfile::TempDir,
    definition: Option<String>,
    subflows: Vec<String>,
    input: Value,
    pub outcome: Option<Outcome>,
}

impl World {
    pub async fn new() -> Result<World, String> {
        let dir =
            tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        Ok(World {
            server: FakeServer::start().await,
            dir,
            definition: None,
            subflows: Vec::new(),
            // The CTK runs scenarios without an input step on an empty object (`.colors + [..]`
            // then starts from null).
            input: Value::Object(Map::new()),
            outcome: None,
        })
    }

    /// Performs an arrange or act step.
    pub async fn act(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Definition(text) => {
                if self.definition.is_some() {
                    return Err("a second workflow definition in one scenario".into());
                }
                self.definition = Some(self.rewrite(&text));
            }
            Action::SubWorkflow(text) => self.subflows.push(self.rewrite(&text)),
            Action::Input(value) => self.input = value,
            Action::Execute => self.execute(Vec::new()).await?,
            Action::ExecuteWithEvents(events) => self.execute(events).await?,
            Action::ExecuteCrashResume { ledger_requests } => {
                self.crash_and_resume(ledger_requests).await?
            }
            Action::Check(_) => return Err("internal: a check passed to act".into()),
        }
        Ok(())
    }

    fn rewrite(&self, text: &str) -> String {
        let base = self.server.base_url();
        REWRITES
            .iter()
            .fold(text.to_string(), |t, (public, local)| {
                t.replace(public, &format!("{base}{local}"))
            })
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("baton.db")
    }

    fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            allowed_url_prefixes: Some(vec![format!("{}/", self.server.base_url())]),
            http_timeout_ms: HTTP_TIMEOUT_MS,
            ..RuntimeOptions::default()
        }
    }

    /// The flows to register, sub-workflows first, the main one last.
    fn flows(&self) -> Result<Vec<String>, String> {
        let main = self
            .definition
            .clone()
            .ok_or("the workflow is executed before any `a workflow with definition:` step")?;
        let mut flows = self.subflows.clone();
        flows.push(main);
        Ok(flows)
    }

    fn ensure_not_run(&self) -> Result<(), String> {
        match self.outcome {
            Some(_) => Err("the workflow was already executed in this scenario".into()),
            None => Ok(()),
        }
    }

    /// Runs the instance to its end, publishing `events` (in order) once it has started.
    /// Listeners read every stored event of the store, so publishing right after the start is
    /// not a race with the instance reaching its `listen` task.
    async fn execute(&mut self, events: Vec<Value>) -> Result<(), String> {
        self.ensure_not_run()?;
        let flows = self.flows()?;
        let rt = open_runtime(&self.db_path(), self.options())?;
        let log = EventLog::attach(&rt);
        let program = register_all(&rt, &flows).await?;
        let id = rt
            .start(program, self.input.clone())
            .await
            .map_err(|e| format!("the workflow did not start: {e}"))?;
        for event in events {
            rt.publish_event(event)
                .await
                .map_err(|e| format!("publishing an event failed: {e}"))?;
        }
        let result = rt
            .wait(&id)
            .await
            .map_err(|e| format!("waiting for the workflow failed: {e}"))?;
        self.outcome = Some(outcome(result, &log));
        Ok(())
    }

    /// Starts the instance in a runtime of its own, lets the ledger receive `ledger_requests`
    /// more requests, then drops that runtime where it stands (every task it spawned is dropped
    /// mid-flight: the in-process equivalent of `kill -9`) and closes its store. A new runtime
    /// over the same SQLite file then resumes the instance and runs it to its end.
    async fn crash_and_resume(&mut self, ledger_requests: u64) -> Result<(), String> {
        self.ensure_not_run()?;
        let flows = self.flows()?;
        let crash = CrashPlan {
            db: self.db_path(),
            flows: flows.clone(),
            input: self.input.clone(),
            options: self.options(),
            requests: self.server.ledger_requests(),
            ledger_requests,
        };
        let (tx, rx) = oneshot::channel();
        // The first runtime gets a thread and a current-thread executor of its own, so that
        // dropping the executor stops it dead without touching the fake server's executor.
        std::thread::Builder::new()
            .name("baton-crashing-runtime".into())
            .spawn(move || {
                let _ = tx.send(crash.run());
            })
            .map_err(|e| format!("cannot start the crashing runtime's thread: {e}"))?;
        let id = rx
            .await
            .map_err(|_| "the crashing runtime's thread panicked".to_string())??;

        let rt = open_runtime(&self.db_path(), self.options())?;
        let log = EventLog::attach(&rt);
        register_all(&rt, &flows).await?;
        let resumed = rt
            .resume_all()
            .await
            .map_err(|e| format!("resume_all failed: {e}"))?;
        if !resumed.contains(&id) {
            return Err(format!(
                "instance {id} was not resumed (resumed: {resumed:?}); it had already ended before the crash, so the crash tested nothing"
            ));
        }
        let result = rt
            .wait(&id)
            .await
            .map_err(|e| format!("waiting for the resumed workflow failed: {e}"))?;
        self.outcome = Some(outcome(result, &log));
        Ok(())
    }
}

fn open_runtime(db: &Path, options: RuntimeOptions) -> Result<Runtime<SqliteStore>, String> {
    let store = SqliteStore::open(db, SqliteOptions::default())
        .map_err(|e| format!("cannot open the SQLite store: {e}"))?;
    Ok(Runtime::new(Arc::new(store), options))
}

/// Task events of every instance of a runtime, in the order the runtime reports them.
///
/// Why not `RunResult::events`: `wait` only has them when it subscribes before the instance
/// ends; an instance that finishes first is answered from the store, without events. The
/// progress hook sees every event whatever the timing.
#[derive(Clone, Default)]
struct EventLog(Arc<Mutex<Vec<(InstanceId, TaskEvent)>>>);

impl EventLog {
    fn attach(rt: &Runtime<SqliteStore>) -> EventLog {
        let log = EventLog::default();
        let sink = log.clone();
        rt.on_progress(move |id, event| {
            sink.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id.clone(), event.clone()));
        });
        log
    }

    /// The events of instance `id`.
    fn of(&self, id: &InstanceId) -> Vec<TaskEvent> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|(i, _)| i == id)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

fn outcome(result: RunResult, log: &EventLog) -> Outcome {
    let events = log.of(&result.id);
    Outcome {
        status: result.status,
        output: result.output,
        error: result.error,
        events,
    }
}

/// Registers every flow; returns the last one's program.
async fn register_all(rt: &Runtime<SqliteStore>, flows: &[String]) -> Result<Arc<Program>, String> {
    let mut last = None;
    for (i, text) in flows.iter().enumerate() {
        let what = if i + 1 == flows.len() {
            "the workflow"
        } else {
            "a sub-workflow"
        };
        last = Some(
            rt.register_flow(text)
                .await
                .map_err(|e| format!("{what} was rejected: {e}"))?,
        );
    }
    last.ok_or_else(|| "no workflow to register".to_string())
}

/// The first half of a crash/resume step, run on its own thread.
struct CrashPlan {
    db: PathBuf,
    flows: Vec<String>,
    input: Value,
    options: RuntimeOptions,
    requests: watch::Receiver<u64>,
    ledger_requests: u64,
}

impl CrashPlan {
    fn run(self) -> Result<InstanceId, String> {
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build the crashing runtime's executor: {e}"))?;
        let store = SqliteStore::open(&self.db, SqliteOptions::default())
            .map_err(|e| format!("cannot open the SQLite store: {e}"))?;
        let store = Arc::new(store);
        let outcome = executor.block_on(async {
            let rt = Runtime::new(store.clone(), self.options.clone());
            let reach = tokio::time::timeout(
                Duration::from_millis(CRASH_POINT_WAIT_MS),
                self.start_and_reach_crash_point(&rt),
            );
            reach.await.map_err(|_| {
                format!(
                    "the ledger did not receive {} request(s) within {CRASH_POINT_WAIT_MS} ms",
                    self.ledger_requests
                )
            })?
        });
        // The crash: the executor goes with every task of the instance in it, wherever each
        // one stands; then the store stops (writes already queued are committed, like a crash
        // just after a commit; nothing acknowledged is lost either way).
        drop(executor);
        store.close();
        outcome
    }

    async fn start_and_reach_crash_point(
        &self,
        rt: &Runtime<SqliteStore>,
    ) -> Result<InstanceId, String> {
        let mut requests = self.requests.clone();
        let target = *requests.borrow() + self.ledger_requests;
        let program = register_all(rt, &self.flows).await?;
        let id = rt
            .start(program, self.input.clone())
            .await
            .map_err(|e| format!("the workflow did not start: {e}"))?;
        if self.ledger_requests == 0 {
            return Ok(id);
        }
        tokio::select! {
            reached = requests.wait_for(|n| *n >= target) => {
                reached.map_err(|_| "the fake server stopped".to_string())?;
                Ok(id)
            }
            ended = rt.wait(&id) => Err(match ended {
                Ok(r) => format!(
                    "the workflow ended ({}) before the ledger received {} request(s){}",
                    r.status.as_str(),
                    self.ledger_requests,
                    r.error.map(|p| format!(": {p}")).unwrap_or_default()
                ),
                Err(e) => format!("waiting for the workflow failed: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn public_services_are_rewritten_to_the_fake_server() {
        let world = World::new().await.expect("world");
        let base = world.server.base_url();
        let text = "a: https://petstore.swagger.io/v2/pet/{petId}\nb: https://httpbin.org/basic-auth/u/p\nc: http://baton-fake.test/flaky/k";
        assert_eq!(
            world.rewrite(text),
            format!(
                "a: {base}/petstore/v2/pet/{{petId}}\nb: {base}/httpbin/basic-auth/u/p\nc: {base}/flaky/k"
            )
        );
    }
}
