//! Issue 16: an instance listening for an event is woken when another process stores it, through
//! the store's watch of its event log. Two `SqliteStore` handles on one file share nothing in
//! memory, so the event stored through the second cannot ring the first's in-process bus; and
//! the clock does not move, so no timed re-read can find it either. Only the store's own
//! notification can end the wait, and it must within a second.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{InstanceId, Status};
use baton_runtime::{ManualClock, Runtime, RuntimeOptions};
use baton_store::{SqliteOptions, SqliteStore, Store};
use serde_json::json;

const FLOW: &str = "document: { dsl: '1.0.3', namespace: test, name: wait-eta, version: '1.0.0' }
do:
  - eta:
      listen: { to: { one: { with: { type: eta.changed } } } }
";

/// Yields until the stored summary of `id` says `status` (the driver appended what made it so).
async fn until_status(store: &SqliteStore, id: &InstanceId, status: Status) {
    for _ in 0..100_000 {
        if store.instance(id).await.unwrap().map(|r| r.status) == Some(status) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{id} never reached {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stored_by_another_process_wakes_the_listener_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let open = || Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let (here, there) = (open(), open());
    let clock = Arc::new(ManualClock::new(1_795_446_000_000));
    let rt = Runtime::with_clock(here.clone(), RuntimeOptions::default(), clock);
    let program = rt.register_flow(FLOW).await.unwrap();
    let id = rt.start(program, json!({})).await.unwrap();
    until_status(&here, &id, Status::Waiting).await;

    let event = json!({"specversion": "1.0", "source": "driver-tablet", "id": "eta-1",
                       "type": "eta.changed", "data": {"eta": "10:40"}});
    assert!(
        there.put_event(&event, 1).await.unwrap(),
        "stored over there"
    );
    let ended = tokio::time::timeout(Duration::from_secs(1), rt.wait(&id))
        .await
        .expect("woken within a second of the event")
        .unwrap();
    assert_eq!(ended.status, Status::Completed, "{ended:?}");
    assert_eq!(
        ended.output,
        Some(json!([{"eta": "10:40"}])),
        "the flow got the event's data"
    );
}
