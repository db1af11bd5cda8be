//! The embedded store: SQLite on disk in WAL mode, one writer thread doing group commit, one
//! reader connection.
//!
//! Why a dedicated writer thread: SQLite has one writer anyway; funnelling every write through one
//! thread lets it take everything queued, write it in one transaction and commit once, which is
//! what makes thousands of durable steps per second possible on one disk. Callers wait on a
//! oneshot that fires after the commit: nothing is acknowledged before it is durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use baton_core::{FlowRef, InstanceId, JournalEntry, Problem, Status};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::watch::{DocWatch, KeyRange, WatchHub};
use crate::{
    Append, Doc, DocQuery, DocStore, DocWrite, FlowRecord, InstanceQuery, InstanceRecord, Store,
    StoreError, StoredEvent, check_expect, event_identity, terminal_fields,
};

/// How many queued writes one transaction takes at most.
const GROUP_COMMIT_BATCH_MAX: usize = 4096;
/// How often the change poller asks SQLite whether another connection committed. A write
/// through this handle wakes the poller at once; this bounds how late a waiter learns of a write
/// made by another process over the same file.
const WATCH_POLL_MS: u64 = 50;
/// How many rows of the change log the poller reads per query.
const CHANGE_PAGE: i64 = 4096;
/// How many change-log rows are kept. A reader that falls further behind than this (a process
/// paused that long) cannot tell what changed and wakes every watch instead.
const CHANGE_LOG_KEEP: i64 = 100_000;
/// The writer trims the change log once per this many commits.
const CHANGE_LOG_TRIM_EVERY: u64 = 1024;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (fsync at every commit: survives power loss) when true;
    /// `NORMAL` (survives a process crash, may lose the last commits on power loss) when false.
    pub fsync_every_commit: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            fsync_every_commit: true,
        }
    }
}

enum Write {
    Append(Append, oneshot::Sender<Result<(), StoreError>>),
    Flow(FlowRef, String, oneshot::Sender<Result<(), StoreError>>),
    Event(Value, u64, oneshot::Sender<Result<bool, StoreError>>),
    PruneEvents(u64, oneshot::Sender<Result<u64, StoreError>>),
    Doc(DocWrite, oneshot::Sender<Result<u64, StoreError>>),
    /// Kind, id and, for a conditional delete, the version it must still be at.
    DeleteDoc(
        String,
        String,
        Option<u64>,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Write>>>,
    reader: Arc<Mutex<Connection>>,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    hub: Arc<WatchHub>,
    poke: Arc<Poke>,
    poller_thread: Mutex<Option<thread::JoinHandle<()>>>,
}

/// How the writer tells the change poller that it committed document changes (so in-process
/// waiters do not wait for the next poll), and how `close` stops the poller.
#[derive(Default)]
struct Poke {
    pending: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Poke {
    fn poke(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }

    /// Waits until poked or `timeout` passes; true when poked.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .wake
            .wait_timeout_while(guard, timeout, |p| !*p && !self.stop.load(Ordering::SeqCst))
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *guard)
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flows (
    hash TEXT PRIMARY KEY,
    namespace TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    flow_hash TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
    journal_len INTEGER NOT NULL,
    output TEXT, error TEXT,
    created_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_status ON instances(status, created_seq);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances(created_seq);
CREATE TABLE IF NOT EXISTS journal (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, id TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (source, id)
);
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL, id TEXT NOT NULL,
    status TEXT NOT NULL, at_ms INTEGER NOT NULL, version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS docs_by_time ON docs(kind, at_ms, id);
CREATE INDEX IF NOT EXISTS docs_by_status ON docs(kind, status, at_ms, id);
-- Every document write or delete, in commit order, so that a watcher in any process can tell
-- what changed since it last looked (trimmed to the last CHANGE_LOG_KEEP rows).
CREATE TABLE IF NOT EXISTS doc_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL, id TEXT NOT NULL
);
";

/// The schema this Baton writes, kept in `PRAGMA user_version`: 0 is a fresh file (or one
/// written before the version was kept), 1 has `events.received_at_ms`.
const SCHEMA_VERSION: i64 = 1;

/// How long opening waits for another process that holds the file (creating or migrating it,
/// or switching it to WAL) before it gives up with an error saying so.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// Creates or brings the schema up to [`SCHEMA_VERSION`], once, whoever opens the file first:
/// in one exclusive transaction that reads the version inside it, so processes opening a fresh
/// file at the same time wait for the first and then find the schema made (never run the
/// migration twice, never see half a schema). A file written by a newer Baton is refused.
fn prepare_schema(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(busy)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(io)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Io(format!(
            "the store was written by a newer Baton (schema version {version}; this one knows \
             {SCHEMA_VERSION})"
        )));
    }
    if version < SCHEMA_VERSION {
        tx.execute_batch(SCHEMA).map_err(io)?;
        migrate(&tx)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(io)?;
    }
    tx.commit().map_err(busy)
}

/// Brings a store written by an older Baton up to the current schema (inside
/// [`prepare_schema`]'s exclusive transaction, so the checks and the changes cannot interleave
/// with another process's).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_received: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'received_at_ms'")
        .map_err(io)?
        .exists([])
        .map_err(io)?;
    if !has_received {
        conn.execute_batch(
            "ALTER TABLE events ADD COLUMN received_at_ms INTEGER NOT NULL DEFAULT 0;",
        )
        .map_err(io)?;
    }
    conn.execute_batch("CREATE INDEX IF NOT EXISTS events_by_received ON events(received_at_ms);")
        .map_err(io)?;
    Ok(())
}

/// A lock another process held longer than [`OPEN_WAIT`], said as such.
fn busy(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) {
        StoreError::Io(format!(
            "the store is locked by another process (waited {}s): {e}",
            OPEN_WAIT.as_secs()
        ))
    } else {
        io(e)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Switches the file to WAL. The switch takes the file's exclusive lock, and SQLite answers
/// "busy" at once rather than through the busy handler when another connection holds it (two
/// processes opening a fresh file), so it is retried until [`OPEN_WAIT`] has passed.
fn set_wal(conn: &Connection) -> Result<(), StoreError> {
    #[allow(clippy::disallowed_methods)] // a bounded wait for another process, not a clock read
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) && started.elapsed() < OPEN_WAIT => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(busy(e)),
        }
    }
}

fn open(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(io)?;
    conn.busy_timeout(OPEN_WAIT).map_err(io)?;
    set_wal(&conn)?;
    conn.pragma_update(
        None,
        "synchronous",
        if opts.fsync_every_commit {
            "FULL"
        } else {
            "NORMAL"
        },
    )
    .map_err(io)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(io)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer_conn = open(&path, &opts)?;
        prepare_schema(&mut writer_conn)?;
        let reader = open(&path, &opts)?;
        let hub = WatchHub::new();
        let poke = Arc::new(Poke::default());
        let poller = ChangePoller::new(open(&path, &opts)?, hub.clone(), poke.clone())?;
        let poller_thread = thread::Builder::new()
            .name("baton-store-watch".into())
            .spawn(move || poller.run())
            .map_err(io)?;
        let (tx, rx) = mpsc::channel::<Write>();
        let writer_poke = poke.clone();
        let handle = thread::Builder::new()
            .name("baton-store-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, &writer_poke))
            .map_err(io)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(Some(tx)),
            reader: Arc::new(Mutex::new(reader)),
            writer_thread: Mutex::new(Some(handle)),
            hub,
            poke,
            poller_thread: Mutex::new(Some(poller_thread)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, w: Write) -> Result<(), StoreError> {
        let guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(w)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs a read on the reader connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(io)?
    }

    /// Stops the writer after it has committed everything queued, then the change poller
    /// after it has woken the watchers of those commits; every watch then reports
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        join(&self.writer_thread);
        self.poke.stop.store(true, Ordering::SeqCst);
        self.poke.poke();
        join(&self.poller_thread);
        self.hub.close();
    }
}

/// Waits for a thread of the store to end (once: a second close finds nothing to join).
fn join(thread: &Mutex<Option<thread::JoinHandle<()>>>) {
    if let Some(h) = thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = h.join();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Write>, poke: &Poke) {
    let mut commits = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_BATCH_MAX {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let results = write_batch(&mut conn, &batch);
        commits += 1;
        if commits.is_multiple_of(CHANGE_LOG_TRIM_EVERY) {
            // Best effort: a failed trim leaves a longer log, which only costs disk.
            let _ = conn.execute(
                "DELETE FROM doc_changes WHERE seq <= (SELECT MAX(seq) FROM doc_changes) - ?1",
                [CHANGE_LOG_KEEP],
            );
        }
        let docs_changed = batch.iter().zip(&results).any(|(w, r)| {
            matches!(w, Write::Doc(..) | Write::DeleteDoc(..) | Write::Event(..)) && r.is_ok()
        });
        if docs_changed {
            poke.poke();
        }
        for (w, r) in batch.into_iter().zip(results) {
            match (w, r) {
                (Write::Append(_, tx), r) | (Write::Flow(_, _, tx), r) => {
                    let _ = tx.send(r.map(|_| ()));
                }
                (Write::Event(_, _, tx), r) | (Write::DeleteDoc(_, _, _, tx), r) => {
                    let _ = tx.send(r.map(|n| n == 1));
                }
                (Write::PruneEvents(_, tx), r) | (Write::Doc(_, tx), r) => {
                    let _ = tx.send(r);
                }
            }
        }
    }
}

/// Writes a batch in one transaction. Each write runs under a savepoint so that one bad write
/// (a sequence conflict) fails alone; a failed commit fails them all.
fn write_batch(conn: &mut Connection, batch: &[Write]) -> Vec<Result<u64, StoreError>> {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(t) => t,
        Err(e) => return batch.iter().map(|_| Err(io(&e))).collect(),
    };
    let mut results = Vec::with_capacity(batch.len());
    for w in batch {
        let r = match tx.savepoint() {
            Ok(mut sp) => {
                let r = apply(&sp, w);
                let end = if r.is_ok() {
                    sp.commit()
                } else {
                    sp.rollback()
                };
                match end {
                    Ok(()) => r,
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        };
        results.push(r);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => batch.iter().map(|_| Err(io(&e))).collect(),
    }
}

/// Applies one write; the number is what its caller is told (rows, or a document's version).
fn apply(conn: &Connection, w: &Write) -> Result<u64, StoreError> {
    match w {
        Write::Flow(flow, source, _) => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO flows (hash, namespace, name, version, source) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(io)?
            .execute(params![flow.hash, flow.namespace, flow.name, flow.version, source])
            .map_err(io)?;
            Ok(1)
        }
        Write::Event(event, received_at_ms, _) => {
            let (source, id) = event_identity(event);
            let n = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (source, id, body, received_at_ms) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(io)?
                .execute(params![source, id, event.to_string(), *received_at_ms as i64])
                .map_err(io)?;
            // A duplicate changes nothing a listener could see.
            if n > 0 {
                log_change(conn, crate::EVENT_LOG, "")?;
            }
            Ok(n as u64)
        }
        Write::PruneEvents(before, _) => Ok(conn
            .prepare_cached("DELETE FROM events WHERE received_at_ms < ?1")
            .map_err(io)?
            .execute([*before as i64])
            .map_err(io)? as u64),
        Write::Append(a, _) => {
            append(conn, a)?;
            Ok(1)
        }
        Write::Doc(d, _) => {
            let version = put_doc(conn, d)?;
            log_change(conn, &d.kind, &d.id)?;
            Ok(version)
        }
        Write::DeleteDoc(kind, id, at_version, _) => {
            if let Some(v) = at_version {
                let found: Option<i64> = conn
                    .prepare_cached("SELECT version FROM docs WHERE kind = ?1 AND id = ?2")
                    .map_err(io)?
                    .query_row(params![kind, id], |r| r.get(0))
                    .optional()
                    .map_err(io)?;
                match found {
                    None => return Ok(0),
                    Some(f) => check_expect(kind, id, crate::Expect::Version(*v), Some(f as u64))?,
                }
            }
            let n = conn
                .prepare_cached("DELETE FROM docs WHERE kind = ?1 AND id = ?2")
                .map_err(io)?
                .execute(params![kind, id])
                .map_err(io)? as u64;
            if n > 0 {
                log_change(conn, kind, id)?;
            }
            Ok(n)
        }
    }
}

/// Records a document change in the change log, in the transaction that makes it.
fn log_change(conn: &Connection, kind: &str, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO doc_changes (kind, id) VALUES (?1, ?2)")
        .map_err(io)?
        .execute(params![kind, id])
        .map_err(io)?;
    Ok(())
}

/// Reads the change log on its own connection and wakes the watchers of what changed: at once
/// when this handle's writer pokes it, otherwise when `PRAGMA data_version` says another
/// connection (another process) committed.
struct ChangePoller {
    conn: Connection,
    hub: Arc<WatchHub>,
    poke: Arc<Poke>,
    /// The last change-log row dispatched.
    last_seq: i64,
    data_version: i64,
}

impl ChangePoller {
    fn new(conn: Connection, hub: Arc<WatchHub>, poke: Arc<Poke>) -> Result<Self, StoreError> {
        let last_seq = max_change(&conn)?;
        let data_version = data_version(&conn)?;
        Ok(ChangePoller {
            conn,
            hub,
            poke,
            last_seq,
            data_version,
        })
    }

    fn run(mut self) {
        loop {
            let poked = self.poke.wait(Duration::from_millis(WATCH_POLL_MS));
            let stopping = self.poke.stop.load(Ordering::SeqCst);
            if let Err(e) = self.poll(poked || stopping) {
                // The database could not be read this time: wake everyone so nobody waits on
                // a change we could not see, and try again at the next poll.
                tracing::warn!(error = %e, "reading the store's change log failed");
                self.hub.changed_all();
            }
            if stopping {
                return;
            }
        }
    }

    fn poll(&mut self, force: bool) -> Result<(), StoreError> {
        let v = data_version(&self.conn)?;
        if v == self.data_version && !force {
            return Ok(());
        }
        self.data_version = v;
        if !self.hub.has_subscribers() {
            self.last_seq = max_change(&self.conn)?;
            return Ok(());
        }
        loop {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT seq, kind, id FROM doc_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(io)?;
            let rows = st
                .query_map(params![self.last_seq, CHANGE_PAGE], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(io)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io)?;
            let Some(first) = rows.first() else {
                return Ok(());
            };
            if first.0 > self.last_seq + 1 && self.trimmed_past_us()? {
                self.hub.changed_all();
            }
            for (_, kind, id) in &rows {
                self.hub.changed(kind, id);
            }
            self.last_seq = rows.last().map_or(self.last_seq, |r| r.0);
            if (rows.len() as i64) < CHANGE_PAGE {
                return Ok(());
            }
        }
    }

    /// Whether rows after the last one read were trimmed before we read them (a gap can also be
    /// a rolled-back write, which lost nothing).
    fn trimmed_past_us(&self) -> Result<bool, StoreError> {
        let min: Option<i64> = self
            .conn
            .query_row("SELECT MIN(seq) FROM doc_changes", [], |r| r.get(0))
            .map_err(io)?;
        Ok(min.is_some_and(|m| m > self.last_seq + 1))
    }
}

fn max_change(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM doc_changes", [], |r| {
        r.get(0)
    })
    .map_err(io)
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(io)
}

fn put_doc(conn: &Connection, d: &DocWrite) -> Result<u64, StoreError> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT version FROM docs WHERE kind = ?1 AND id = ?2")
        .map_err(io)?
        .query_row(params![d.kind, d.id], |r| r.get(0))
        .optional()
        .map_err(io)?;
    let found = found.map(|v| v as u64);
    check_expect(&d.kind, &d.id, d.expect, found)?;
    let version = found.unwrap_or(0) + 1;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO docs (kind, id, status, at_ms, version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(io)?
    .execute(params![
        d.kind,
        d.id,
        d.status,
        d.at_ms as i64,
        version as i64,
        d.body.to_string()
    ])
    .map_err(io)?;
    Ok(version)
}

fn doc_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Doc, String)> {
    Ok((
        Doc {
            kind: r.get(0)?,
            id: r.get(1)?,
            status: r.get(2)?,
            at_ms: r.get::<_, i64>(3)? as u64,
            version: r.get::<_, i64>(4)? as u64,
            body: Value::Null,
        },
        r.get(5)?,
    ))
}

fn finish_doc((mut d, body): (Doc, String)) -> Result<Doc, StoreError> {
    d.body = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(d)
}

const DOC_COLUMNS: &str = "kind, id, status, at_ms, version, body";

fn append(conn: &Connection, a: &Append) -> Result<(), StoreError> {
    let current: Option<i64> = conn
        .prepare_cached("SELECT journal_len FROM instances WHERE id = ?1")
        .map_err(io)?
        .query_row([&a.instance.0], |r| r.get(0))
        .optional()
        .map_err(io)?;
    let now = a.entries.last().map(JournalEntry::at_ms).unwrap_or(0) as i64;
    let (output, error) = terminal_fields(&a.entries);
    match current {
        Some(len) => {
            if len as u64 != a.first_seq {
                return Err(StoreError::Conflict {
                    instance: a.instance.0.clone(),
                    expected: a.first_seq,
                    found: len as u64,
                });
            }
        }
        None => {
            let Some(JournalEntry::Started { at_ms, flow, .. }) = a.entries.first() else {
                return Err(StoreError::UnknownInstance(a.instance.0.clone()));
            };
            if a.first_seq != 0 {
                return Err(StoreError::Conflict {
                    instance: a.instance.0.clone(),
                    expected: a.first_seq,
                    found: 0,
                });
            }
            conn.prepare_cached(
                "INSERT INTO instances (id, flow_hash, namespace, name, version, status, created_at_ms, updated_at_ms, journal_len, created_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0, (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM instances))",
            )
            .map_err(io)?
            .execute(params![a.instance.0, flow.hash, flow.namespace, flow.name, flow.version, a.status.as_str(), *at_ms as i64])
            .map_err(io)?;
        }
    }
    {
        let mut ins = conn
            .prepare_cached("INSERT INTO journal (instance_id, seq, body) VALUES (?1, ?2, ?3)")
            .map_err(io)?;
        for (i, e) in a.entries.iter().enumerate() {
            let body = serde_json::to_string(e).map_err(io)?;
            ins.execute(params![a.instance.0, (a.first_seq + i as u64) as i64, body])
                .map_err(io)?;
        }
    }
    conn.prepare_cached(
        "UPDATE instances SET status = ?2, updated_at_ms = ?3, journal_len = ?4,
            output = COALESCE(?5, output), error = COALESCE(?6, error) WHERE id = ?1",
    )
    .map_err(io)?
    .execute(params![
        a.instance.0,
        a.status.as_str(),
        now,
        (a.first_seq + a.entries.len() as u64) as i64,
        output.map(|o| o.to_string()),
        error.map(|e| e.to_value().to_string()),
    ])
    .map_err(io)?;
    Ok(())
}

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(InstanceRecord, String)> {
    let status: String = r.get(5)?;
    let output: Option<String> = r.get(9)?;
    let error: Option<String> = r.get(10)?;
    Ok((
        InstanceRecord {
            id: InstanceId(r.get(0)?),
            flow: FlowRef {
                hash: r.get(1)?,
                namespace: r.get(2)?,
                name: r.get(3)?,
                version: r.get(4)?,
            },
            status: Status::Pending,
            created_at_ms: r.get::<_, i64>(6)? as u64,
            updated_at_ms: r.get::<_, i64>(7)? as u64,
            journal_len: r.get::<_, i64>(8)? as u64,
            output: output.and_then(|s| serde_json::from_str(&s).ok()),
            error: error.and_then(|s| serde_json::from_str::<Problem>(&s).ok()),
        },
        status,
    ))
}

fn finish_record(
    (mut rec, status): (InstanceRecord, String),
) -> Result<InstanceRecord, StoreError> {
    rec.status = Status::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown status `{status}`")))?;
    Ok(rec)
}

const RECORD_COLUMNS: &str = "id, flow_hash, namespace, name, version, status, created_at_ms, updated_at_ms, journal_len, output, error";

impl Store for SqliteStore {
    async fn put_flow(&self, flow: &FlowRef, source: &str) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::Flow(flow.clone(), source.to_string(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn flow_source(&self, hash: &str) -> Result<Option<String>, StoreError> {
        let hash = hash.to_string();
        self.read(move |c| {
            c.query_row("SELECT source FROM flows WHERE hash = ?1", [hash], |r| {
                r.get(0)
            })
            .optional()
            .map_err(io)
        })
        .await
    }

    async fn append(&self, batch: Append) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::Append(batch, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn journal(&self, id: &InstanceId) -> Result<Vec<JournalEntry>, StoreError> {
        let id = id.0.clone();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT body FROM journal WHERE instance_id = ?1 ORDER BY seq")
                .map_err(io)?;
            let rows = st.query_map([id], |r| r.get::<_, String>(0)).map_err(io)?;
            let mut out = Vec::new();
            for row in rows {
                let body = row.map_err(io)?;
                out.push(
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
            Ok(out)
        })
        .await
    }

    async fn instance(&self, id: &InstanceId) -> Result<Option<InstanceRecord>, StoreError> {
        let id = id.0.clone();
        self.read(move |c| {
            let row = c
                .query_row(
                    &format!("SELECT {RECORD_COLUMNS} FROM instances WHERE id = ?1"),
                    [id],
                    record_from_row,
                )
                .optional()
                .map_err(io)?;
            row.map(finish_record).transpose()
        })
        .await
    }

    async fn flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT rowid, namespace, name, version, hash FROM flows ORDER BY rowid",
                )
                .map_err(io)?;
            let rows = st
                .query_map([], |r| {
                    Ok(FlowRecord {
                        seq: r.get::<_, i64>(0)? as u64,
                        flow: FlowRef {
                            namespace: r.get(1)?,
                            name: r.get(2)?,
                            version: r.get(3)?,
                            hash: r.get(4)?,
                        },
                    })
                })
                .map_err(io)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(io)
        })
        .await
    }

    async fn instances(&self, query: &InstanceQuery) -> Result<Vec<InstanceRecord>, StoreError> {
        let q = query.clone();
        self.read(move |c| {
            // Optional filters as `?n IS NULL OR column = ?n`: one cached statement serves
            // every combination.
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM instances
                     WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR name = ?2)
                       AND (?3 IS NULL OR version = ?3)
                       AND (?4 IS NULL OR created_seq < (SELECT created_seq FROM instances WHERE id = ?4))
                     ORDER BY created_seq DESC LIMIT ?5"
                ))
                .map_err(io)?;
            let rows = st
                .query_map(
                    params![
                        q.status.map(|s| s.as_str()),
                        q.flow,
                        q.version,
                        q.before.as_ref().map(|b| b.0.as_str()),
                        q.limit as i64
                    ],
                    record_from_row,
                )
                .map_err(io)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(finish_record(r.map_err(io)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn instance_counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT status, COUNT(*) FROM instances GROUP BY status ORDER BY status",
                )
                .map_err(io)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(io)?;
            let mut out = Vec::new();
            for row in rows {
                let (s, n) = row.map_err(io)?;
                let status = Status::parse(&s)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown status `{s}`")))?;
                out.push((status, n as u64));
            }
            Ok(out)
        })
        .await
    }

    async fn unfinished(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM instances WHERE status NOT IN ('completed', 'faulted', 'cancelled') ORDER BY created_seq"
                ))
                .map_err(io)?;
            let mut out = Vec::new();
            for r in st.query_map([], record_from_row).map_err(io)? {
                out.push(finish_record(r.map_err(io)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn put_event(&self, event: &Value, received_at_ms: u64) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::Event(event.clone(), received_at_ms, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn prune_events(&self, received_before_ms: u64) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::PruneEvents(received_before_ms, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn event_by_identity(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let (source, id) = (source.to_string(), id.to_string());
        self.read(move |c| {
            let row = c
                .prepare_cached("SELECT seq, body FROM events WHERE source = ?1 AND id = ?2")
                .map_err(io)?
                .query_row(params![source, id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .optional()
                .map_err(io)?;
            row.map(|(seq, body)| {
                Ok(StoredEvent {
                    seq: seq as u64,
                    event: serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(io)?;
            let mut out = Vec::new();
            for r in st
                .query_map(params![after as i64, limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(io)?
            {
                let (seq, body) = r.map_err(io)?;
                out.push(StoredEvent {
                    seq: seq as u64,
                    event: serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                });
            }
            Ok(out)
        })
        .await
    }
}

impl DocStore for SqliteStore {
    async fn put_doc(&self, doc: DocWrite) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::Doc(doc, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn doc(&self, kind: &str, id: &str) -> Result<Option<Doc>, StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.read(move |c| {
            let row = c
                .prepare_cached(&format!(
                    "SELECT {DOC_COLUMNS} FROM docs WHERE kind = ?1 AND id = ?2"
                ))
                .map_err(io)?
                .query_row(params![kind, id], doc_from_row)
                .optional()
                .map_err(io)?;
            row.map(finish_doc).transpose()
        })
        .await
    }

    async fn docs(&self, kind: &str, query: &DocQuery) -> Result<Vec<Doc>, StoreError> {
        let kind = kind.to_string();
        let q = query.clone();
        self.read(move |c| {
            let (cmp, order) = if q.newest_first {
                ("<", "DESC")
            } else {
                (">", "ASC")
            };
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {DOC_COLUMNS} FROM docs
                     WHERE kind = ?1 AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR (at_ms, id) {cmp} (?3, ?4))
                     ORDER BY at_ms {order}, id {order} LIMIT ?5"
                ))
                .map_err(io)?;
            let (after_at, after_id) = match &q.after {
                Some((at, id)) => (Some(*at as i64), Some(id.clone())),
                None => (None, None),
            };
            let rows = st
                .query_map(
                    params![kind, q.status, after_at, after_id, q.limit as i64],
                    doc_from_row,
                )
                .map_err(io)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(finish_doc(r.map_err(io)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::DeleteDoc(kind.to_string(), id.to_string(), None, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn delete_doc_at(&self, kind: &str, id: &str, version: u64) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Write::DeleteDoc(
            kind.to_string(),
            id.to_string(),
            Some(version),
            tx,
        ))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn watch(&self, targets: &[(&str, KeyRange)]) -> DocWatch {
        self.hub.subscribe(targets)
    }

    async fn count_docs(&self, kind: &str, status: Option<&str>) -> Result<u64, StoreError> {
        let (kind, status) = (kind.to_string(), status.map(str::to_string));
        self.read(move |c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM docs WHERE kind = ?1 AND (?2 IS NULL OR status = ?2)",
            )
            .map_err(io)?
            .query_row(params![kind, status], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(io)
        })
        .await
    }
}
