//! Issue 16: a claimant waiting in this process is woken within a second by a release that
//! another process (`baton-claims-probe`) makes over the same SQLite file. The processes share
//! nothing but the file, and the clock here does not move, so only the store's watch (its change
//! log, read when `PRAGMA data_version` says another connection committed) can end the wait.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use baton_api::{Function, ManualClock};
use baton_claims::{ClaimFunction, Claims};
use baton_core::Outcome;
use baton_store::{SqliteOptions, SqliteStore};
use serde_json::json;

/// 2026-11-23T15:00:00Z.
const T0: u64 = 1_795_446_000_000;
const SLOT: &str = "slot:addr-19/10:00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_by_another_process_wakes_the_waiting_claimant_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.db");
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let clock = Arc::new(ManualClock::new(T0));
    let claim = ClaimFunction::new(store.clone(), clock.clone());
    let held = claim
        .call(
            json!({"entity": SLOT, "owner": "dispatcher", "lease": "15m"}),
            "key-dispatcher",
        )
        .await;
    assert!(
        matches!(&held, Outcome::Ok { value } if value["claimed"] == true),
        "{held:?}"
    );

    let waiting = tokio::spawn(async move {
        claim
            .call(
                json!({"entity": SLOT, "owner": "optimizer", "lease": "15m",
                       "on_conflict": "wait", "wait_for": "10m"}),
                "key-optimizer",
            )
            .await
    });
    // Until the waiter has recorded its wait (it subscribed before reading the claim).
    let claims = Claims::new(store.clone(), clock.clone());
    let mut changes = claims.changes();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !claims
            .waiting()
            .await
            .unwrap()
            .iter()
            .any(|w| w.entity == SLOT)
        {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the optimizer waits");

    let out = Command::new(env!("CARGO_BIN_EXE_baton-claims-probe"))
        .args(["release", path.to_str().unwrap(), SLOT, "dispatcher"])
        .output()
        .expect("run the other process");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "released",
        "{out:?}"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("woken within a second of the other process's release")
        .expect("the waiting call");
    match outcome {
        Outcome::Ok { value } => {
            assert_eq!(value["claimed"], true, "{value}");
            assert_eq!(
                value["token"], 2,
                "the next holding has the next token: {value}"
            );
        }
        other => panic!("{other:?}"),
    }
}
