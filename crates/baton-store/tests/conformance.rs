//! The store conformance suite (`baton_store::conformance`) against every backend, and the
//! checks only a real second process can make: crash consistency after `kill -9`, and a watch
//! woken by a write another process commits.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use baton_store::conformance::{WATCH_LATENCY_MAX, crash};
use baton_store::{DocStore, KeyRange, MemoryStore, SqliteOptions, SqliteStore};

mod memory {
    use super::*;
    baton_store::store_conformance!(fresh: (Arc::new(MemoryStore::new()), ()));
}

/// A fresh SQLite store's path in its own temporary directory, removed when the guard drops.
fn sqlite_path() -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    (dir.path().join("store.db"), dir)
}

fn open(path: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path, SqliteOptions::default()).expect("open the store"))
}

mod sqlite {
    use super::*;
    baton_store::store_conformance!(
        fresh: {
            let (path, dir) = sqlite_path();
            (open(&path), dir)
        },
        pair: {
            let (path, dir) = sqlite_path();
            (open(&path), open(&path), dir)
        },
    );
}

fn probe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton-store-probe"))
}

/// kill -9 a process in the middle of group-committed writes: everything it was told is durable
/// survives, no batch is torn, and the store goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kill_9_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut child = probe()
        .args(["crash", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = std::collections::BTreeMap::<String, u64>::new();
    // Let it write a good while (bounded: 400 acknowledged batches), then kill it mid-stream.
    let mut seen = 0;
    for line in lines.by_ref() {
        let line = line.expect("a line");
        let mut parts = line.split_whitespace().skip(1);
        let (i, n) = (parts.next().unwrap().to_string(), parts.next().unwrap());
        acked.insert(i, n.parse().unwrap());
        seen += 1;
        if seen == 400 {
            break;
        }
    }
    child.kill().expect("kill -9");
    // Acknowledgements printed before the kill landed count as promises too.
    for line in lines.map_while(Result::ok) {
        let mut parts = line.split_whitespace().skip(1);
        if let (Some(i), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse().ok())) {
            acked.insert(i.to_string(), n);
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len() as u64, crash::INSTANCES);
    let acked: Vec<_> = acked.into_iter().collect();
    crash::check_survivors(open(&path), &acked).await;
}

/// A watch in this process is woken by a document another process writes, within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_watch_wakes_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = open(&path);
    let mut watch = store.watch(&[("claim", KeyRange::Exact("truck-7".into()))]);
    let mut child = probe()
        .args(["put", path.to_str().unwrap(), "claim", "truck-7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the other process");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "ready");
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    assert_eq!(out.next().unwrap().unwrap(), "written");
    tokio::time::timeout(WATCH_LATENCY_MAX, watch.changed())
        .await
        .expect("woken within the bound")
        .expect("the watch works");
    let doc = store
        .doc("claim", "truck-7")
        .await
        .unwrap()
        .expect("the other process's write");
    assert_eq!(doc.body["by"], "probe");
    assert!(child.wait().unwrap().success());
}

/// Issue 14: a fresh store file opened by 8 processes at once (a `serve` and a few `run`s, as a
/// script starts them) opens in every one of them, 50 times over: the schema is created and
/// migrated once, in one exclusive transaction, and the others wait for it.
#[test]
fn a_fresh_store_opened_by_eight_processes_at_once_opens_in_all() {
    const PROCESSES: usize = 8;
    const ROUNDS: usize = 50;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let (path, _dir) = sqlite_path();
        let mut children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                probe()
                    .args(["open", path.to_str().unwrap()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("start a process")
            })
            .collect();
        let mut outs: Vec<_> = children
            .iter_mut()
            .map(|c| BufReader::new(c.stdout.take().unwrap()).lines())
            .collect();
        for out in &mut outs {
            assert_eq!(out.next().unwrap().unwrap(), "ready");
        }
        // All of them are up: let them go at once.
        for c in &mut children {
            writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
        }
        for (c, out) in children.iter_mut().zip(&mut outs) {
            let said = out.next().and_then(Result::ok).unwrap_or_default();
            let ok = c.wait().unwrap().success();
            if !ok || said != "opened" {
                failures.push(format!("round {round}: {said}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed: {failures:?}",
        failures.len(),
        PROCESSES * ROUNDS
    );
}
