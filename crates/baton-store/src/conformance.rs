//! The store conformance suite: what every backend must do, written once against the [`Store`]
//! trait. A backend's test file runs each check with [`store_conformance!`](crate::store_conformance)
//! (`tests/conformance.rs` does it for the memory and SQLite stores); a new backend passes the
//! same checks unchanged before anything runs on it.
//!
//! Each check takes a fresh, empty store and panics with what went wrong. Checks that need a
//! second, independent handle on the same data (another connection, as another process has)
//! take two; the memory store, which has no second handle, skips them. Crash consistency after a
//! `kill -9` is checked by [`crash`]: a child process writes through [`crash::write_until_killed`]
//! and the parent checks what survived with [`crash::check_survivors`].

use std::sync::Arc;
use std::time::Duration;

use baton_core::{ErrorKind, FlowRef, InstanceId, JournalEntry, Problem, Status};
use serde_json::{Value, json};

use crate::{
    Append, Change, Collection, DocQuery, DocWrite, Entry, Expect, InstanceQuery, KeyRange, Store,
    StoreError,
};

/// How long a watch may take to see a committed change, here or from another handle. The
/// product's bound is a second; the memory and SQLite stores take microseconds and about 50 ms.
pub const WATCH_LATENCY_MAX: Duration = Duration::from_secs(1);

fn flow(name: &str, version: &str) -> FlowRef {
    FlowRef {
        namespace: "conformance".into(),
        name: name.into(),
        version: version.into(),
        hash: format!("hash-{name}-{version}"),
    }
}

fn started(at_ms: u64, f: &FlowRef) -> JournalEntry {
    JournalEntry::Started {
        at_ms,
        flow: f.clone(),
        input: json!({"n": at_ms}),
    }
}

fn note(at_ms: u64, task: &str) -> JournalEntry {
    JournalEntry::TaskNote {
        at_ms,
        task: task.into(),
        note: json!({"at": at_ms}),
    }
}

/// A batch of `entries` for `instance`, from sequence `first_seq`.
fn batch(instance: &str, first_seq: u64, entries: Vec<JournalEntry>, status: Status) -> Append {
    Append {
        instance: id(instance),
        first_seq,
        entries,
        status,
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId(s.to_string())
}

fn doc(kind: &str, id: &str, status: &str, at_ms: u64, expect: Expect) -> DocWrite {
    DocWrite {
        kind: kind.into(),
        id: id.into(),
        status: status.into(),
        at_ms,
        body: json!({"id": id, "at": at_ms}),
        expect,
    }
}

/// Starts an instance with `len` entries (started + notes).
async fn start<S: Store>(store: &S, instance: &str, f: &FlowRef, at_ms: u64, status: Status) {
    store
        .append(batch(instance, 0, vec![started(at_ms, f)], status))
        .await
        .expect("start an instance");
}

/// Flows are kept by hash, idempotently, and listed in registration order.
pub async fn flows_by_hash<S: Store>(store: Arc<S>) {
    let (a, b) = (flow("a", "1"), flow("a", "2"));
    store.put_flow(&a, "source a1").await.unwrap();
    store.put_flow(&b, "source a2").await.unwrap();
    store.put_flow(&a, "source a1").await.unwrap();
    assert_eq!(
        store.flow_source(&a.hash).await.unwrap().as_deref(),
        Some("source a1")
    );
    assert_eq!(store.flow_source("no-such-hash").await.unwrap(), None);
    let listed = store.flows().await.unwrap();
    let refs: Vec<_> = listed.iter().map(|r| r.flow.clone()).collect();
    assert_eq!(refs, vec![a, b], "registration order, each once");
    assert!(listed[0].seq < listed[1].seq);
}

/// A journal is read back as appended; its summary follows its appends.
pub async fn journal_round_trip<S: Store>(store: Arc<S>) {
    let f = flow("j", "1");
    start(&*store, "i1", &f, 10, Status::Running).await;
    store
        .append(batch(
            "i1",
            1,
            vec![
                note(11, "/do/0"),
                note(12, "/do/1"),
                JournalEntry::Completed {
                    at_ms: 13,
                    output: json!({"ok": true}),
                },
            ],
            Status::Completed,
        ))
        .await
        .unwrap();
    let journal = store.journal(&id("i1")).await.unwrap();
    assert_eq!(journal.len(), 4);
    assert_eq!(journal[0], started(10, &f));
    assert_eq!(journal[2], note(12, "/do/1"));
    let rec = store.instance(&id("i1")).await.unwrap().expect("a record");
    assert_eq!(rec.status, Status::Completed);
    assert_eq!(rec.journal_len, 4);
    assert_eq!((rec.created_at_ms, rec.updated_at_ms), (10, 13));
    assert_eq!(rec.output, Some(json!({"ok": true})));
    assert_eq!(rec.flow, f);

    start(&*store, "i2", &f, 20, Status::Running).await;
    let problem = Problem::new(ErrorKind::Runtime, "it broke");
    store
        .append(batch(
            "i2",
            1,
            vec![JournalEntry::Faulted {
                at_ms: 21,
                problem: problem.clone(),
            }],
            Status::Faulted,
        ))
        .await
        .unwrap();
    let rec = store.instance(&id("i2")).await.unwrap().unwrap();
    assert_eq!(rec.error, Some(problem));
    assert_eq!(store.instance(&id("nobody")).await.unwrap(), None);
    assert!(store.journal(&id("nobody")).await.unwrap().is_empty());
}

/// Sequence numbers are checked on append, and a refused batch leaves nothing behind.
pub async fn appends_are_sequenced_and_atomic<S: Store>(store: Arc<S>) {
    let f = flow("seq", "1");
    let refused = store
        .append(batch("x", 0, vec![note(1, "/do/0")], Status::Running))
        .await;
    assert!(
        matches!(refused, Err(StoreError::UnknownInstance(_))),
        "a first batch must start with `started`: {refused:?}"
    );
    start(&*store, "x", &f, 1, Status::Running).await;
    for first_seq in [0, 2, 7] {
        let r = store
            .append(batch(
                "x",
                first_seq,
                vec![note(2, "/do/0"), note(3, "/do/1")],
                Status::Completed,
            ))
            .await;
        match r {
            Err(StoreError::Conflict {
                expected, found, ..
            }) => assert_eq!((expected, found), (first_seq, 1)),
            other => {
                panic!("an append at {first_seq} onto a journal of 1 must conflict: {other:?}")
            }
        }
    }
    assert_eq!(store.journal(&id("x")).await.unwrap().len(), 1);
    let rec = store.instance(&id("x")).await.unwrap().unwrap();
    assert_eq!((rec.status, rec.journal_len), (Status::Running, 1));
    // A second `started` for an existing id is a conflict too: one journal per id.
    let twice = store
        .append(batch("x", 0, vec![started(5, &f)], Status::Running))
        .await;
    assert!(
        matches!(twice, Err(StoreError::Conflict { .. })),
        "{twice:?}"
    );
}

/// Instances list newest first, with filters and a cursor; counts and the unfinished agree.
pub async fn instance_queries<S: Store>(store: Arc<S>) {
    let (a1, a2, b1) = (flow("a", "1"), flow("a", "2"), flow("b", "1"));
    let plan = [
        ("i1", &a1, Status::Completed),
        ("i2", &a2, Status::Running),
        ("i3", &b1, Status::Waiting),
        ("i4", &a1, Status::Running),
        ("i5", &b1, Status::Faulted),
    ];
    for (n, (i, f, s)) in plan.iter().enumerate() {
        start(&*store, i, f, n as u64, *s).await;
    }
    let ids = |v: Vec<crate::InstanceRecord>| v.into_iter().map(|r| r.id.0).collect::<Vec<_>>();
    let all = store.instances(&InstanceQuery::newest(10)).await.unwrap();
    assert_eq!(ids(all), ["i5", "i4", "i3", "i2", "i1"]);
    let page1 = store.instances(&InstanceQuery::newest(2)).await.unwrap();
    let cursor = page1.last().unwrap().id.clone();
    assert_eq!(ids(page1), ["i5", "i4"]);
    let page2 = store
        .instances(&InstanceQuery {
            before: Some(cursor),
            limit: 2,
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page2), ["i3", "i2"]);
    let running_a = store
        .instances(&InstanceQuery {
            status: Some(Status::Running),
            flow: Some("a".into()),
            limit: 10,
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(running_a), ["i4", "i2"]);
    let a1_only = store
        .instances(&InstanceQuery {
            flow: Some("a".into()),
            version: Some("1".into()),
            limit: 10,
            ..InstanceQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(a1_only), ["i4", "i1"]);
    let mut counts = store.instance_counts().await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    let mut expected = vec![
        (Status::Completed, 1),
        (Status::Faulted, 1),
        (Status::Running, 2),
        (Status::Waiting, 1),
    ];
    expected.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, expected);
    let unfinished = store.unfinished().await.unwrap();
    assert_eq!(ids(unfinished), ["i2", "i3", "i4"], "oldest first");
}

/// Events: deduplicated by `source` and `id`, read in arrival order, pruned by arrival time.
pub async fn events_dedupe_order_prune<S: Store>(store: Arc<S>) {
    let ev = |source: &str, id: &str| json!({"specversion": "1.0", "source": source, "id": id, "type": "t"});
    assert!(store.put_event(&ev("s", "1"), 100).await.unwrap());
    assert!(store.put_event(&ev("s", "2"), 200).await.unwrap());
    assert!(
        !store.put_event(&ev("s", "1"), 300).await.unwrap(),
        "a duplicate"
    );
    assert!(
        store.put_event(&ev("other", "1"), 300).await.unwrap(),
        "another source"
    );
    let all = store.events_after(0, 10).await.unwrap();
    let first = store
        .event_by_identity("s", "1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (first.seq, &first.event),
        (all[0].seq, &all[0].event),
        "found by identity"
    );
    assert!(store.event_by_identity("s", "9").await.unwrap().is_none());
    let got: Vec<Value> = all.iter().map(|e| e.event["id"].clone()).collect();
    assert_eq!(got, [json!("1"), json!("2"), json!("1")]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let after = store.events_after(all[0].seq, 1).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, all[1].seq);
    assert_eq!(store.prune_events(250).await.unwrap(), 2);
    assert_eq!(store.events_after(0, 10).await.unwrap().len(), 1);
    assert!(
        store.put_event(&ev("s", "1"), 400).await.unwrap(),
        "a pruned identity may come again"
    );
}

/// Conditional document writes: create only, replace a version, write whatever is there.
pub async fn conditional_doc_writes<S: Store>(store: Arc<S>) {
    let v1 = store
        .put_doc(doc("k", "a", "open", 5, Expect::Absent))
        .await
        .unwrap();
    assert_eq!(v1, 1);
    match store
        .put_doc(doc("k", "a", "open", 5, Expect::Absent))
        .await
    {
        Err(StoreError::DocConflict { found, .. }) => assert_eq!(found, Some(1)),
        other => panic!("a second create must conflict: {other:?}"),
    }
    assert_eq!(
        store
            .put_doc(doc("k", "a", "done", 6, Expect::Version(1)))
            .await
            .unwrap(),
        2
    );
    match store
        .put_doc(doc("k", "a", "lost", 7, Expect::Version(1)))
        .await
    {
        Err(StoreError::DocConflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (Expect::Version(1), Some(2))),
        other => panic!("a stale version must conflict: {other:?}"),
    }
    match store
        .put_doc(doc("k", "nobody", "x", 7, Expect::Version(1)))
        .await
    {
        Err(StoreError::DocConflict { found, .. }) => assert_eq!(found, None),
        other => panic!("replacing a missing document must conflict: {other:?}"),
    }
    assert_eq!(
        store
            .put_doc(doc("k", "a", "any", 8, Expect::Any))
            .await
            .unwrap(),
        3
    );
    let d = store.doc("k", "a").await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.at_ms, d.version), ("any", 8, 3));
    assert_eq!(d.body, json!({"id": "a", "at": 8}));
    assert_eq!(
        store.doc("other-kind", "a").await.unwrap(),
        None,
        "kinds are apart"
    );
    match store.delete_doc_at("k", "a", 2).await {
        Err(StoreError::DocConflict { found, .. }) => assert_eq!(found, Some(3)),
        other => panic!("a delete at a stale version must conflict: {other:?}"),
    }
    assert!(store.delete_doc_at("k", "a", 3).await.unwrap());
    assert!(!store.delete_doc_at("k", "a", 3).await.unwrap());
    store
        .put_doc(doc("k", "b", "x", 1, Expect::Any))
        .await
        .unwrap();
    assert!(store.delete_doc("k", "b").await.unwrap());
    assert!(!store.delete_doc("k", "b").await.unwrap());
    assert_eq!(
        store
            .put_doc(doc("k", "b", "x", 1, Expect::Absent))
            .await
            .unwrap(),
        1,
        "a deleted document starts again at version 1"
    );
}

/// Documents list by `(at_ms, id)` both ways, with a status filter and a cursor that neither
/// repeats nor skips; counts agree.
pub async fn doc_paging_order<S: Store>(store: Arc<S>) {
    // Equal times on purpose: the id breaks the tie.
    let plan = [
        ("d", 30, "open"),
        ("a", 10, "open"),
        ("c", 20, "done"),
        ("b", 20, "open"),
        ("e", 40, "done"),
    ];
    for (i, at, status) in plan {
        store
            .put_doc(doc("p", i, status, at, Expect::Absent))
            .await
            .unwrap();
    }
    store
        .put_doc(doc("q", "z", "open", 0, Expect::Absent))
        .await
        .unwrap();
    let ids = |v: Vec<crate::Doc>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let q = |newest_first, after, status: Option<&str>, limit| DocQuery {
        status: status.map(str::to_string),
        newest_first,
        after,
        limit,
    };
    assert_eq!(
        ids(store.docs("p", &q(false, None, None, 10)).await.unwrap()),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(
        ids(store.docs("p", &q(true, None, None, 10)).await.unwrap()),
        ["e", "d", "c", "b", "a"]
    );
    assert_eq!(
        ids(store
            .docs("p", &q(false, Some((20, "b".into())), None, 2))
            .await
            .unwrap()),
        ["c", "d"]
    );
    assert_eq!(
        ids(store
            .docs("p", &q(true, Some((20, "c".into())), None, 10))
            .await
            .unwrap()),
        ["b", "a"]
    );
    assert_eq!(
        ids(store
            .docs("p", &q(false, None, Some("open"), 10))
            .await
            .unwrap()),
        ["a", "b", "d"]
    );
    assert_eq!(
        ids(store.docs("p", &DocQuery::from_time(20, 10)).await.unwrap()),
        ["b", "c", "d", "e"]
    );
    let first = store.docs("p", &q(false, None, None, 1)).await.unwrap();
    let cursor = DocQuery::cursor_of(&first[0]);
    assert_eq!(DocQuery::parse_cursor(&cursor), Some((10, "a".into())));
    assert_eq!(store.count_docs("p", None).await.unwrap(), 5);
    assert_eq!(store.count_docs("p", Some("done")).await.unwrap(), 2);
    assert_eq!(store.count_docs("nothing", None).await.unwrap(), 0);

    // The typed pages read everything once, in order, whatever the page size.
    let c: Collection<Value> = Collection::new("p");
    for page_size in [1, 2, 3, 5, 6] {
        let (all, more) = c
            .all(&*store, q(false, None, None, page_size), 100)
            .await
            .unwrap();
        assert!(!more);
        let got: Vec<_> = all.into_iter().map(|d| d.id).collect();
        assert_eq!(got, ["a", "b", "c", "d", "e"], "page size {page_size}");
    }
    let (capped, more) = c.all(&*store, q(true, None, None, 2), 3).await.unwrap();
    assert_eq!(
        (capped.len(), more),
        (3, true),
        "a cap says that more were left"
    );
}

/// Many writers at once: conditional read-modify-writes of one document lose no update, and
/// appends to different instances all land.
pub async fn concurrent_writers<S: Store>(store: Arc<S>) {
    const WRITERS: u64 = 8;
    const EACH: u64 = 25;
    let counter: Collection<u64> = Collection::new("counter");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                counter
                    .update(&*store, "c", |cur| {
                        let n = cur.map_or(0, |c| c.value) + 1;
                        Change::Put(Entry::new("n", n, n), ())
                    })
                    .await
                    .expect("an update");
            }
            let f = flow("w", "1");
            let instance = format!("w{w}");
            start(&*store, &instance, &f, w, Status::Running).await;
            for seq in 1..=EACH {
                store
                    .append(batch(
                        &instance,
                        seq,
                        vec![note(seq, "/do/0")],
                        Status::Running,
                    ))
                    .await
                    .expect("an append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("a writer");
    }
    let c = counter.get(&*store, "c").await.unwrap().unwrap();
    assert_eq!(c.value, WRITERS * EACH, "no update lost");
    assert_eq!(c.version, WRITERS * EACH);
    for w in 0..WRITERS {
        let j = store.journal(&id(&format!("w{w}"))).await.unwrap();
        assert_eq!(j.len() as u64, EACH + 1);
    }
    // A delete in an update is conditional too.
    let gone = counter
        .update(&*store, "c", |cur| match cur {
            Some(c) if c.value == WRITERS * EACH => Change::Delete(true),
            _ => Change::Keep(false),
        })
        .await
        .unwrap();
    assert!(gone);
    assert_eq!(counter.get(&*store, "c").await.unwrap(), None);
    let created = counter
        .create(&*store, "c", &Entry::new("n", 0, 7))
        .await
        .unwrap();
    assert_eq!(created, None);
    let existing = counter
        .create(&*store, "c", &Entry::new("n", 0, 8))
        .await
        .unwrap();
    assert_eq!(existing.map(|e| e.value), Some(7), "the first create wins");
}

/// A typed read of a body that is not the collection's type is a corrupt record, not a panic.
pub async fn typed_reads_refuse_foreign_bodies<S: Store>(store: Arc<S>) {
    store
        .put_doc(doc("typed", "x", "s", 1, Expect::Absent))
        .await
        .unwrap();
    let numbers: Collection<u64> = Collection::new("typed");
    match numbers.get(&*store, "x").await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("typed/x"), "{why}"),
        other => panic!("an object is not a number: {other:?}"),
    }
}

async fn woken(w: &mut crate::DocWatch, what: &str) {
    match tokio::time::timeout(WATCH_LATENCY_MAX, w.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what}: the watch failed: {e}"),
        Err(_) => panic!("{what}: not woken within {WATCH_LATENCY_MAX:?}"),
    }
}

/// A watch wakes on a committed write or delete of what it covers.
pub async fn watch_wakes_on_commit<S: Store>(store: Arc<S>) {
    let mut one = store.watch(&[("approval", KeyRange::Exact("t1".into()))]);
    let mut kind = store.watch(&[("claim", KeyRange::All)]);
    let mut prefix = store.watch(&[("fact", KeyRange::Prefix("sku-1/".into()))]);
    store
        .put_doc(doc("approval", "t1", "open", 1, Expect::Absent))
        .await
        .unwrap();
    woken(&mut one, "an exact watch, on a create").await;
    let mut events = store.watch_events();
    store
        .put_doc(doc("claim", "truck-7", "held", 1, Expect::Any))
        .await
        .unwrap();
    woken(&mut kind, "a kind watch").await;
    store
        .put_doc(doc("fact", "sku-1/stock", "fact", 1, Expect::Any))
        .await
        .unwrap();
    woken(&mut prefix, "a prefix watch").await;
    store.delete_doc("approval", "t1").await.unwrap();
    woken(&mut one, "an exact watch, on a delete").await;
    // A refused write changes nothing and need not wake anyone; a later write still does.
    let _ = store
        .put_doc(doc("claim", "truck-7", "held", 2, Expect::Absent))
        .await;
    store
        .put_doc(doc("claim", "truck-8", "held", 2, Expect::Any))
        .await
        .unwrap();
    woken(&mut kind, "a kind watch after a refused write").await;
    let ev = json!({"specversion": "1.0", "source": "gps", "id": "p-1", "type": "position"});
    assert!(store.put_event(&ev, 1).await.unwrap());
    woken(&mut events, "an event-log watch, on a stored event").await;
}

/// A watch on one handle wakes on a write committed through another handle on the same data
/// (another connection, as another process or node has), within [`WATCH_LATENCY_MAX`].
pub async fn watch_sees_other_handles<S: Store>(writer: Arc<S>, watcher: Arc<S>) {
    let mut w = watcher.watch(&[("claim", KeyRange::Exact("truck-7".into()))]);
    writer
        .put_doc(doc("claim", "truck-7", "held", 1, Expect::Absent))
        .await
        .unwrap();
    woken(&mut w, "a write through another handle").await;
    assert_eq!(
        watcher
            .doc("claim", "truck-7")
            .await
            .unwrap()
            .map(|d| d.version),
        Some(1),
        "what woke the watch is there to read"
    );
    writer.delete_doc("claim", "truck-7").await.unwrap();
    woken(&mut w, "a delete through another handle").await;
}

/// A watch of the event log wakes when an event is stored through another handle (another
/// process's listener learns of it when it commits), and not for a duplicate.
pub async fn event_watch_sees_other_handles<S: Store>(writer: Arc<S>, watcher: Arc<S>) {
    let ev = json!({"specversion": "1.0", "source": "portal", "id": "e-1", "type": "eta.changed"});
    let mut w = watcher.watch_events();
    assert!(writer.put_event(&ev, 100).await.unwrap());
    woken(&mut w, "an event stored through another handle").await;
    let seen = watcher.events_after(0, 10).await.unwrap();
    assert_eq!(seen.len(), 1, "what woke the watch is there to read");
    // A duplicate stores nothing: the watch may stay asleep (a spurious wake is allowed, so
    // only the log is checked).
    assert!(!writer.put_event(&ev, 200).await.unwrap());
    assert_eq!(watcher.events_after(0, 10).await.unwrap().len(), 1);
}

/// Writes visible through one handle are visible through another (no cache in front).
pub async fn handles_agree<S: Store>(a: Arc<S>, b: Arc<S>) {
    let f = flow("h", "1");
    start(&*a, "h1", &f, 1, Status::Running).await;
    a.put_doc(doc("k", "x", "s", 1, Expect::Absent))
        .await
        .unwrap();
    assert_eq!(
        b.instance(&id("h1")).await.unwrap().map(|r| r.journal_len),
        Some(1)
    );
    assert_eq!(b.doc("k", "x").await.unwrap().map(|d| d.version), Some(1));
    // The sequence check holds across handles: two drivers cannot interleave.
    b.append(batch("h1", 1, vec![note(2, "/do/0")], Status::Running))
        .await
        .unwrap();
    let stale = a
        .append(batch("h1", 1, vec![note(3, "/do/0")], Status::Running))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
}

/// Runs each check of the suite as its own test. `$fresh` is an expression giving a fresh
/// `(Arc<S>, guard)`: a new empty store and whatever must live as long as it (a temporary
/// directory, a server), dropped after the check; `$pair`, when given, gives
/// `(Arc<S>, Arc<S>, guard)`: two handles on one fresh store.
#[macro_export]
macro_rules! store_conformance {
    (fresh: $fresh:expr $(, pair: $pair:expr)? $(,)?) => {
        $crate::store_conformance!(@one $fresh;
            flows_by_hash, journal_round_trip, appends_are_sequenced_and_atomic,
            instance_queries, events_dedupe_order_prune, conditional_doc_writes,
            doc_paging_order, concurrent_writers, typed_reads_refuse_foreign_bodies,
            watch_wakes_on_commit);
        $( $crate::store_conformance!(@two $pair;
            watch_sees_other_handles, event_watch_sees_other_handles, handles_agree); )?
    };
    (@one $fresh:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (store, _guard) = $fresh;
                $crate::conformance::$check(store).await;
            }
        )*
    };
    (@two $pair:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (a, b, _guard) = $pair;
                $crate::conformance::$check(a, b).await;
            }
        )*
    };
}

/// Crash consistency: what a process killed with `kill -9` in the middle of writing leaves.
pub mod crash {
    use super::*;

    /// The instances the crash writer uses.
    pub const INSTANCES: u64 = 4;
    /// Entries per batch: a batch is all there or not at all.
    pub const BATCH: u64 = 3;

    /// Writes batches of [`BATCH`] entries round-robin over [`INSTANCES`] instances, and a
    /// document per batch, forever; prints `acked <instance> <journal length>` on stdout after
    /// each acknowledged append, so the parent knows what it was promised. Never returns; the
    /// parent kills the process.
    pub async fn write_until_killed<S: Store>(store: Arc<S>) -> ! {
        use std::io::Write as _;
        let f = flow("crash", "1");
        for i in 0..INSTANCES {
            start(&*store, &format!("c{i}"), &f, i, Status::Running).await;
            println!("acked c{i} 1");
        }
        let mut len = vec![1u64; INSTANCES as usize];
        let mut n = 0u64;
        loop {
            let i = (n % INSTANCES) as usize;
            let entries = (0..BATCH).map(|k| note(n * BATCH + k, "/do/0")).collect();
            store
                .append(batch(&format!("c{i}"), len[i], entries, Status::Running))
                .await
                .expect("an append");
            store
                .put_doc(doc("crash", &format!("c{i}"), "s", n, Expect::Any))
                .await
                .expect("a document");
            len[i] += BATCH;
            println!("acked c{i} {}", len[i]);
            let _ = std::io::stdout().flush();
            n += 1;
        }
    }

    /// Checks a store reopened after the writer was killed: every acknowledged append is there
    /// (`acked`: the highest acknowledged length per instance), and every journal is whole
    /// batches (no torn batch), readable, with its summary agreeing.
    pub async fn check_survivors<S: Store>(store: Arc<S>, acked: &[(String, u64)]) {
        for (instance, len) in acked {
            let journal = store
                .journal(&id(instance))
                .await
                .expect("a readable journal");
            let n = journal.len() as u64;
            assert!(
                n >= *len,
                "{instance}: {len} entries were acknowledged, {n} survived"
            );
            assert_eq!((n - 1) % BATCH, 0, "{instance}: a torn batch ({n} entries)");
            let rec = store
                .instance(&id(instance))
                .await
                .unwrap()
                .expect("a record");
            assert_eq!(
                rec.journal_len, n,
                "{instance}: the summary agrees with the journal"
            );
        }
        // The store takes new writes after the crash.
        let (instance, _) = &acked[0];
        let n = store.journal(&id(instance)).await.unwrap().len() as u64;
        store
            .append(batch(
                instance,
                n,
                vec![note(u64::MAX / 2, "/after")],
                Status::Completed,
            ))
            .await
            .expect("an append after the crash");
    }
}
