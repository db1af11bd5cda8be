//! Requests from outside an instance: cancel, suspend and resume are journaled with who asked,
//! answered only once durable, refused when the instance's state does not allow them, and
//! survive a restart of the runtime.

use baton_engine::Features;
use std::sync::Arc;

use baton_core::{InstanceId, JournalEntry, Status};
use baton_engine::{ManualClock, Runtime, RuntimeError, RuntimeOptions};
use baton_store::{SqliteOptions, SqliteStore, Store};
use serde_json::json;

const WAIT_THEN_SET: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: pause, version: '1.0.0' }
do:
  - nap:
      wait: { seconds: 60 }
  - done:
      set: { finished: true }
"#;

fn runtime(store: Arc<SqliteStore>, clock: Arc<ManualClock>) -> Runtime<SqliteStore> {
    baton_engine::runtime_with_clock(store, RuntimeOptions::default(), clock)
}

/// A runtime over a fresh SQLite store in a temporary directory (kept while the guard lives),
/// on a manual clock at 1 s.
fn scratch() -> (tempfile::TempDir, Arc<SqliteStore>, Runtime<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("b.db"), SqliteOptions::default()).unwrap());
    let rt = runtime(store.clone(), Arc::new(ManualClock::new(1_000)));
    (dir, store, rt)
}

async fn status_of(store: &SqliteStore, id: &InstanceId) -> Status {
    store.instance(id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn cancel_is_journaled_with_who_asked_and_refused_once_ended() {
    let (_dir, store, rt) = scratch();
    let program = rt.register_flow(WAIT_THEN_SET).await.unwrap();
    let id = rt.start(program, json!({})).await.unwrap();

    let status = rt.cancel(&id, "customer called", "ops").await.unwrap();
    assert_eq!(status, Status::Cancelled);
    assert_eq!(status_of(&store, &id).await, Status::Cancelled);
    let journal = store.journal(&id).await.unwrap();
    assert!(journal.iter().any(|e| matches!(e,
        JournalEntry::CancelRequested { by: Some(by), reason, .. } if by == "ops" && reason == "customer called")));

    let again = rt.cancel(&id, "twice", "ops").await;
    assert!(
        matches!(again, Err(RuntimeError::Refused { .. })),
        "{again:?}"
    );
    let unknown = rt.cancel(&InstanceId("nope".into()), "x", "ops").await;
    assert!(matches!(unknown, Err(RuntimeError::UnknownInstance(_))));
}

#[tokio::test]
async fn a_suspended_instance_holds_past_its_timer_and_goes_on_when_resumed_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let clock = Arc::new(ManualClock::new(1_000));
    let id;
    {
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let rt = runtime(store.clone(), clock.clone());
        let program = rt.register_flow(WAIT_THEN_SET).await.unwrap();
        id = rt.start(program, json!({})).await.unwrap();
        assert_eq!(
            rt.suspend(&id, "dispatcher", Some("storm")).await.unwrap(),
            Status::Suspended
        );
        assert!(matches!(
            rt.suspend(&id, "dispatcher", None).await,
            Err(RuntimeError::Refused { .. })
        ));
        assert_eq!(status_of(&store, &id).await, Status::Suspended);
        store.close();
    }
    // A new runtime over the same store: the instance is still suspended after its timer.
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let rt = runtime(store.clone(), clock.clone());
    rt.resume_all().await.unwrap();
    clock.advance(120_000);
    // The timer's outcome is journaled while the instance stays suspended (bounded poll of the
    // store: the driver runs on another task).
    let mut fired = false;
    for _ in 0..10_000 {
        let journal = store.journal(&id).await.unwrap();
        if journal.iter().any(|e| e.kind() == "effect_completed") {
            fired = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(fired, "the timer's outcome reached the journal");
    assert_eq!(status_of(&store, &id).await, Status::Suspended);

    assert_eq!(
        rt.unsuspend(&id, "dispatcher").await.unwrap(),
        Status::Completed,
        "the timer fired while suspended; resuming goes straight on"
    );
    let end = rt.wait(&id).await.unwrap();
    assert_eq!(end.status, Status::Completed);
    assert_eq!(end.output, Some(json!({"finished": true})));
    let journal = store.journal(&id).await.unwrap();
    let kinds: Vec<&str> = journal.iter().map(JournalEntry::kind).collect();
    let s = kinds.iter().position(|k| *k == "suspended").unwrap();
    let r = kinds.iter().position(|k| *k == "resumed").unwrap();
    assert!(s < r, "{kinds:?}");
}

#[tokio::test]
async fn cancelling_an_instance_closes_its_open_approval_task() {
    use baton_engine::approvals::{ApprovalQuery, ApprovalStatus};
    let (_dir, store, rt) = scratch();
    // No `instance:` argument: the task learns its instance from the runtime.
    let program = rt
        .register_flow(
            "document: { dsl: '1.0.3', namespace: test, name: ask, version: '1.0.0' }
do:
  - ask:
      call: approval
      with: { title: Reroute, assignees: [dana], window: PT1H }
",
        )
        .await
        .unwrap();
    let id = rt.start(program, json!({})).await.unwrap();
    let mut changes = rt.approvals().changes();
    let task = loop {
        let open = rt
            .approvals()
            .list(&ApprovalQuery {
                status: Some(ApprovalStatus::Open),
                ..ApprovalQuery::default()
            })
            .await
            .unwrap();
        if let Some(t) = open.into_iter().next() {
            break t;
        }
        changes.changed().await.unwrap();
    };
    assert_eq!(task.instance.as_deref(), Some(id.0.as_str()));
    assert_eq!(status_of(&store, &id).await, Status::Waiting);

    rt.cancel(&id, "order withdrawn", "ops").await.unwrap();
    rt.wait(&id).await.unwrap();
    let closed = rt.approvals().get(&task.id).await.unwrap();
    assert_eq!(closed.status, ApprovalStatus::Expired);
    assert_eq!(closed.decided_by.as_deref(), Some("baton"));
    assert!(closed.reason.unwrap().contains("cancelled"));
}

/// Issue 16: a cancel the store could not make durable is a store failure (the API's 503, try
/// again), not a refusal by the instance's state (409). It was answered as `Refused`.
#[tokio::test]
async fn a_cancel_the_store_cannot_keep_is_a_store_failure_not_a_refusal() {
    let (_dir, store, rt) = scratch();
    let program = rt.register_flow(WAIT_THEN_SET).await.unwrap();
    let id = rt.start(program, json!({})).await.unwrap();
    // The instance waits on its timer (nothing touches the store) while the store goes away.
    store.close();
    let answer = rt.cancel(&id, "customer called", "ops").await;
    assert!(
        matches!(answer, Err(RuntimeError::Store(_))),
        "a store failure, not a refusal: {answer:?}"
    );
}
