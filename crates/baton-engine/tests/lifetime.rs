//! A runtime with every feature installed is freed when its last handle goes: the features'
//! state kept in the runtime (the shadows' registrations cache, their hooks) reaches the kernel
//! through a weak handle, so nothing keeps the runtime, and with it the store, its writer and
//! its poller threads, alive.

use std::sync::Arc;

use baton_engine::{Features, RuntimeOptions};
use baton_store::{SqliteOptions, SqliteStore};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_runtime_releases_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("b.db"), SqliteOptions::default()).unwrap());
    let rt = baton_engine::runtime(store.clone(), RuntimeOptions::default());
    let program = rt
        .register_flow(
            "document: { dsl: '1.0.3', namespace: test, name: one, version: '1.0.0' }
do:
  - keep:
      set: { ok: true }
",
        )
        .await
        .unwrap();
    let done = rt.run(program, json!({})).await.unwrap();
    assert_eq!(done.output, Some(json!({"ok": true})));
    // Every feature's state exists now (the shadows' is made on first use).
    assert!(rt.shadows().list().await.unwrap().is_empty());
    assert!(Arc::strong_count(&store) > 1, "the runtime holds the store");
    drop(rt);
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "nothing but this test holds the store once the runtime is gone"
    );
}
