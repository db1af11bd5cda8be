//! Shadow runs and replay in the runtime: a shadow performs reads and records (does not
//! perform) effects, stays a shadow across a restart, and is compared with the live side; a
//! replay answers recorded effects from the journal and writes nothing to the recorded store.

mod support;

use std::sync::Arc;

use baton_core::{InstanceId, JournalEntry, Status};
use baton_engine::replay::ReplayOptions;
use baton_engine::shadow::{LegacyDecision, LiveSide};
use baton_engine::{Features, ManualClock, RuntimeOptions};
use baton_store::{MemoryStore, SqliteOptions, SqliteStore, Store};
use baton_testkit::FakeServer;
use serde_json::json;
use support::compared;

/// A flow that decides, reads (GET) and acts (POST to the ledger). `threshold` is what versions
/// disagree on.
fn flow(base: &str, version: &str, threshold: u32) -> String {
    format!(
        r#"
document: {{ dsl: '1.0.3', namespace: test, name: reroute, version: '{version}' }}
do:
  - look:
      call: http
      with: {{ method: get, endpoint: '{base}/ledger/ok' }}
      output: {{ as: '${{ $input + {{seen: .ok}} }}' }}
  - act:
      call: http
      with: {{ method: post, endpoint: '{base}/ledger/effects', body: {{ order: '${{ .order }}' }} }}
      output: {{ as: '${{ $input }}' }}
  - answer:
      set:
        order: ${{ .order }}
        seen: ${{ .seen }}
        action: '${{ if .delay > {threshold} then "reroute" else "keep" end }}'
"#
    )
}

async fn ledger_posts(fake: &FakeServer) -> u64 {
    let report = fake.ledger_report();
    report["keys"]
        .as_object()
        .map(|m| m.values().map(|k| k["seen"].as_u64().unwrap_or(0)).sum())
        .unwrap_or_else(|| panic!("unexpected ledger report {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_of_a_live_version_reads_records_effects_and_is_compared() {
    let fake = FakeServer::start().await;
    let base = fake.base_url();
    let store = Arc::new(MemoryStore::new());
    let rt = baton_engine::runtime(store.clone(), RuntimeOptions::default());
    rt.register_flow(&flow(&base, "1.0.0", 30)).await.unwrap();
    rt.register_flow(&flow(&base, "2.0.0", 10)).await.unwrap();
    let (reg, created) = rt
        .shadows()
        .register(
            "reroute-v2",
            ("test", "reroute", "2.0.0"),
            LiveSide::Flow {
                namespace: "test".into(),
                name: "reroute".into(),
                version: "1.0.0".into(),
            },
            vec![],
            "admin",
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(reg.candidate.version, "2.0.0");
    let live = rt.catalog().by_hash(&reg.candidate.hash).unwrap();
    assert_eq!(live.flow.version, "2.0.0");

    let program =
        baton_core::FlowResolver::resolve(&**rt.catalog(), "test", "reroute", "1.0.0").unwrap();
    let agree = rt
        .start(program.clone(), json!({"order": "o-1", "delay": 45}))
        .await
        .unwrap();
    let differ = rt
        .start(program, json!({"order": "o-2", "delay": 20}))
        .await
        .unwrap();
    assert_eq!(rt.wait(&agree).await.unwrap().status, Status::Completed);
    assert_eq!(rt.wait(&differ).await.unwrap().status, Status::Completed);
    let same = compared(&rt, "reroute-v2", &agree.0).await;
    assert_eq!(same["comparison"]["agreed"], true, "{same}");
    let case = compared(&rt, "reroute-v2", &differ.0).await;
    assert_eq!(
        case["comparison"]["differences"],
        json!([{"field": ".action", "live": "keep", "shadow": "reroute"}])
    );
    // The shadow read (its GET answered: `seen` is true on both sides) but did not post.
    assert_eq!(case["shadow"]["output"]["seen"], true);
    assert_eq!(case["shadow"]["not_performed"], 1);
    assert_eq!(
        ledger_posts(&fake).await,
        2,
        "only the two live instances posted"
    );
    let sid = InstanceId(case["shadow"]["instance"].as_str().unwrap().to_string());
    let journal = store.journal(&sid).await.unwrap();
    let note = journal
        .iter()
        .find_map(|e| match e {
            JournalEntry::EffectNote { note, .. } if note["shadow"] == "not_performed" => {
                Some(note.clone())
            }
            _ => None,
        })
        .expect("the not-performed effect is journaled");
    assert_eq!(note["request"]["method"], "POST");
    assert_eq!(note["request"]["body"], json!({"order": "o-2"}));

    let report = rt.shadows().report("reroute-v2", None, None).await.unwrap();
    assert_eq!((report.cases, report.compared, report.agreed), (2, 2, 1));
    assert_eq!(report.agreement_rate, Some(0.5));
    assert_eq!(report.fields.get(".action"), Some(&1));
    assert_eq!(report.differences.len(), 1);
    assert_eq!(report.differences[0].case, differ.0);
    assert_eq!(report.effects_not_performed, 2);
    // Stopped, the shadow takes no new case; its report stays.
    let (stopped, changed) = rt.shadows().retire("reroute-v2", "admin").await.unwrap();
    assert!(changed && stopped.retired_at_ms.is_some());
    assert!(!rt.shadows().retire("reroute-v2", "admin").await.unwrap().1);
    let later = rt
        .start(
            baton_core::FlowResolver::resolve(&**rt.catalog(), "test", "reroute", "1.0.0").unwrap(),
            json!({"order": "o-3", "delay": 5}),
        )
        .await
        .unwrap();
    rt.wait(&later).await.unwrap();
    assert!(rt.shadows().case("reroute-v2", &later.0).await.is_err());
    let after = rt.shadows().report("reroute-v2", None, None).await.unwrap();
    assert_eq!(after.cases, 2);
    // A replay over this store leaves the shadow instances out: their effects were stand-ins.
    let scratch = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    let v3 = scratch
        .register_flow(&flow(&base, "3.0.0", 30))
        .await
        .unwrap();
    let replayed = scratch
        .shadows()
        .replay_recorded(&*store, v3, &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (replayed.instances, replayed.shadows_skipped),
        (3, 2),
        "{replayed:?}"
    );
    // A period that ends before the cases has none.
    let none = rt
        .shadows()
        .report("reroute-v2", None, Some(1))
        .await
        .unwrap();
    assert_eq!(none.cases, 0);
    assert_eq!(none.agreement_rate, None);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_checked_and_idempotent() {
    let store = Arc::new(MemoryStore::new());
    let rt = baton_engine::runtime(store, RuntimeOptions::default());
    rt.register_flow(&flow("http://127.0.0.1:1", "1.0.0", 30))
        .await
        .unwrap();
    let legacy = || LiveSide::Legacy {
        system: "dispatcher".into(),
    };
    let s = rt.shadows();
    assert!(
        s.register(
            "bad name!",
            ("test", "reroute", "1.0.0"),
            legacy(),
            vec![],
            "a"
        )
        .await
        .is_err()
    );
    assert!(
        s.register("x", ("test", "nope", "1.0.0"), legacy(), vec![], "a")
            .await
            .is_err()
    );
    let self_shadow = LiveSide::Flow {
        namespace: "test".into(),
        name: "reroute".into(),
        version: "1.0.0".into(),
    };
    assert!(
        s.register("x", ("test", "reroute", "1.0.0"), self_shadow, vec![], "a")
            .await
            .is_err()
    );
    let (_, created) = s
        .register(
            "x",
            ("test", "reroute", "1.0.0"),
            legacy(),
            vec![".action".into()],
            "a",
        )
        .await
        .unwrap();
    assert!(created);
    let (_, again) = s
        .register(
            "x",
            ("test", "reroute", "1.0.0"),
            legacy(),
            vec![".action".into()],
            "a",
        )
        .await
        .unwrap();
    assert!(!again);
    let other = s
        .register("x", ("test", "reroute", "1.0.0"), legacy(), vec![], "a")
        .await;
    assert!(
        matches!(other, Err(baton_engine::shadow::ShadowError::Conflict(_))),
        "{other:?}"
    );
    assert!(matches!(
        s.report("nope", None, None).await,
        Err(baton_engine::shadow::ShadowError::NotFound(_))
    ));
}

/// Waits on an event, then posts: killed while waiting, the shadow must still not post after
/// the restart.
fn waiting_flow(base: &str) -> String {
    format!(
        r#"
document: {{ dsl: '1.0.3', namespace: test, name: later, version: '1.0.0' }}
do:
  - hear:
      listen: {{ to: {{ one: {{ with: {{ type: test.go }} }} }} }}
      output: {{ as: '${{ $input }}' }}
  - act:
      call: http
      with: {{ method: post, endpoint: '{base}/ledger/effects', body: {{ order: '${{ .order }}' }} }}
      output: {{ as: '${{ $input }}' }}
  - answer:
      set: {{ order: '${{ .order }}', action: hold }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_stays_a_shadow_after_a_restart() {
    let fake = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let clock = Arc::new(ManualClock::new(1_000));
    let case;
    {
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let rt = baton_engine::runtime_with_clock(
            store.clone(),
            RuntimeOptions::default(),
            clock.clone(),
        );
        rt.register_flow(&waiting_flow(&fake.base_url()))
            .await
            .unwrap();
        rt.shadows()
            .register(
                "later",
                ("test", "later", "1.0.0"),
                LiveSide::Legacy {
                    system: "dispatcher".into(),
                },
                vec![],
                "admin",
            )
            .await
            .unwrap();
        let decision = LegacyDecision {
            case: "c-1".into(),
            inputs: json!({"order": "o-9"}),
            decision: json!({"order": "o-9", "action": "reroute"}),
            decided_at_ms: Some(500),
            decided_by: Some("dispatcher".into()),
        };
        let (posted, created) = rt
            .shadows()
            .post_legacy("later", decision.clone(), "ops")
            .await
            .unwrap();
        assert!(created);
        case = posted;
        // Posting the same case again is idempotent; another decision for it is a conflict.
        let (_, again) = rt
            .shadows()
            .post_legacy("later", decision.clone(), "ops")
            .await
            .unwrap();
        assert!(!again);
        let mut changed = decision;
        changed.decision = json!({"action": "keep"});
        assert!(
            rt.shadows()
                .post_legacy("later", changed, "ops")
                .await
                .is_err()
        );
        store.close();
    }
    let sid = InstanceId(case["shadow"]["instance"].as_str().unwrap().to_string());
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let rt = baton_engine::runtime_with_clock(store.clone(), RuntimeOptions::default(), clock);
    let resumed = rt.resume_all().await.unwrap();
    assert!(resumed.contains(&sid), "{resumed:?}");
    rt.publish_event(
        json!({"specversion": "1.0", "id": "e-1", "source": "test", "type": "test.go"}),
    )
    .await
    .unwrap();
    let end = rt.wait(&sid).await.unwrap();
    assert_eq!(end.status, Status::Completed);
    assert_eq!(ledger_posts(&fake).await, 0, "the resumed shadow posted");
    let c = compared(&rt, "later", "c-1").await;
    assert_eq!(
        c["comparison"]["differences"],
        json!([{"field": ".action", "live": "reroute", "shadow": "hold"}])
    );
    assert_eq!(c["at_ms"], 500);
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_answers_recorded_effects_and_reports_differences() {
    let fake = FakeServer::start().await;
    let base = fake.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("b.db"), SqliteOptions::default()).unwrap());
    let rt = baton_engine::runtime(store.clone(), RuntimeOptions::default());
    let v1 = rt.register_flow(&flow(&base, "1.0.0", 30)).await.unwrap();
    let a = rt
        .run(v1.clone(), json!({"order": "o-1", "delay": 45}))
        .await
        .unwrap();
    let b = rt
        .run(v1, json!({"order": "o-2", "delay": 20}))
        .await
        .unwrap();
    assert_eq!((a.status, b.status), (Status::Completed, Status::Completed));
    let posts = ledger_posts(&fake).await;
    let lens = (
        store.journal(&a.id).await.unwrap().len(),
        store.journal(&b.id).await.unwrap().len(),
    );

    let scratch = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    let v2 = scratch
        .register_flow(&flow(&base, "2.0.0", 10))
        .await
        .unwrap();
    let report = scratch
        .shadows()
        .replay_recorded(&*store, v2.clone(), &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            report.instances,
            report.same,
            report.differed,
            report.failed
        ),
        (2, 1, 1, 0)
    );
    let diff = report.results.iter().find(|r| !r.same).unwrap();
    assert_eq!(diff.instance, b.id.0);
    assert_eq!(diff.differences.len(), 1);
    assert_eq!(diff.differences[0].field, ".action");
    assert_eq!(diff.differences[0].recorded, "keep");
    assert_eq!(diff.differences[0].replayed, "reroute");
    // The GET and the POST had the same key and request as recorded: both answered from the
    // journal, nothing performed, nothing missing.
    assert_eq!(
        (diff.from_record, diff.not_performed, diff.missing.len()),
        (2, 0, 0)
    );
    assert_eq!(ledger_posts(&fake).await, posts, "the replay posted");
    assert_eq!(
        (
            store.journal(&a.id).await.unwrap().len(),
            store.journal(&b.id).await.unwrap().len()
        ),
        lens,
        "the replay wrote to the recorded journals"
    );

    // A version whose POST differs (another body) is not answered from the record, and not
    // performed: its output is still the recorded one.
    let v3 = flow(&base, "3.0.0", 30).replace("order: '${ .order }'", "order: '${ .order }', v: 3");
    let scratch = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    let v3 = scratch.register_flow(&v3).await.unwrap();
    let report = scratch
        .shadows()
        .replay_recorded(&*store, v3, &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!((report.instances, report.same), (2, 2), "{report:?}");
    assert_eq!(report.effects_not_performed, 2, "{report:?}");
    assert_eq!(report.missing_reads, 0, "{report:?}");
    // A version with another read, without providers to perform it: the read is missing, the
    // flow faults on it, and the report says so.
    let v4 = flow(&base, "4.0.0", 30).replace("/ledger/ok", "/ledger/ok?fresh=1");
    let scratch = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    let v4 = scratch.register_flow(&v4).await.unwrap();
    let report = scratch
        .shadows()
        .replay_recorded(&*store, v4, &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!((report.instances, report.differed), (2, 2), "{report:?}");
    assert_eq!(report.missing_reads, 2, "{report:?}");
    assert!(
        report
            .results
            .iter()
            .all(|r| r.replayed_status == "faulted")
    );
    // Allowed to read, the replay performs that read itself: nothing is missing and the outputs
    // are the recorded ones; the POST still is answered from the record.
    let v4 = flow(&base, "4.0.0", 30).replace("/ledger/ok", "/ledger/ok?fresh=1");
    let scratch = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    let v4 = scratch.register_flow(&v4).await.unwrap();
    let report = scratch
        .shadows()
        .replay_recorded(
            &*store,
            v4,
            &ReplayOptions {
                perform_reads: true,
                ..ReplayOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((report.instances, report.same), (2, 2), "{report:?}");
    assert_eq!(report.missing_reads, 0);
    assert!(
        report.results.iter().all(|r| r.from_record == 1),
        "{report:?}"
    );
    assert_eq!(ledger_posts(&fake).await, posts, "the replay posted");
    fake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_start_of_a_running_id_leaves_the_running_instance_its_controls() {
    let rt = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    let program = rt
        .register_flow(
            "document: { dsl: '1.0.3', namespace: test, name: slow, version: '1.0.0' }
do:
  - rest:
      wait: PT1H
",
        )
        .await
        .unwrap();
    let id = InstanceId("shadow-race".into());
    rt.start_with_id(id.clone(), program.clone(), json!({}))
        .await
        .unwrap();
    // What two posts of one legacy case racing to start its shadow amount to.
    assert!(
        rt.start_with_id(id.clone(), program, json!({}))
            .await
            .is_err()
    );
    // The first is still this process's to wait for (not reported from the store as if no
    // driver ran it, which would also make a cancel resume a second driver beside it)...
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), rt.wait(&id))
            .await
            .is_err(),
        "the running instance is still known as running"
    );
    // ... and to control.
    assert_eq!(
        rt.cancel(&id, "test", "admin").await.unwrap(),
        Status::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_posts_of_one_legacy_case_at_once_both_answer() {
    let rt = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    rt.register_flow(
        "document: { dsl: '1.0.3', namespace: test, name: slowly, version: '1.0.0' }
do:
  - rest:
      wait: PT1H
",
    )
    .await
    .unwrap();
    rt.shadows()
        .register(
            "slow-legacy",
            ("test", "slowly", "1.0.0"),
            LiveSide::Legacy {
                system: "old".into(),
            },
            vec![],
            "admin",
        )
        .await
        .unwrap();
    let shadows = rt.shadows();
    for round in 0..20 {
        let post = || {
            shadows.post_legacy(
                "slow-legacy",
                LegacyDecision {
                    case: format!("c-{round}"),
                    inputs: json!({}),
                    decision: json!({"action": "hold"}),
                    decided_at_ms: None,
                    decided_by: None,
                },
                "olu",
            )
        };
        let (a, b) = tokio::join!(post(), post());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.1 != b.1, "one of the two created the case");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulted_shadow_does_not_agree_with_a_completed_decision() {
    let rt = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    rt.register_flow(
        "document: { dsl: '1.0.3', namespace: test, name: broken, version: '1.0.0' }
do:
  - fail:
      raise:
        error: { type: 'https://example.com/broken', status: 500, title: Broken }
",
    )
    .await
    .unwrap();
    rt.shadows()
        .register(
            "broken-candidate",
            ("test", "broken", "1.0.0"),
            LiveSide::Legacy {
                system: "old".into(),
            },
            vec![".driver".into()],
            "admin",
        )
        .await
        .unwrap();
    // The legacy decision has no `.driver` (nobody assigned), nor has the faulted shadow.
    rt.shadows()
        .post_legacy(
            "broken-candidate",
            LegacyDecision {
                case: "c-1".into(),
                inputs: json!({}),
                decision: json!({"action": "hold"}),
                decided_at_ms: None,
                decided_by: None,
            },
            "olu",
        )
        .await
        .unwrap();
    let case = compared(&rt, "broken-candidate", "c-1").await;
    assert_eq!(case["shadow"]["status"], "faulted", "{case}");
    assert_eq!(case["comparison"]["agreed"], false, "{case}");
    assert_eq!(
        case["comparison"]["differences"][0],
        json!({"field": "status", "live": "completed", "shadow": "faulted"})
    );
    let report = rt
        .shadows()
        .report("broken-candidate", None, None)
        .await
        .unwrap();
    assert_eq!((report.compared, report.agreed), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_time_past_the_store_range_is_refused_and_reports_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("t.db"), SqliteOptions::default()).unwrap());
    let rt = baton_engine::runtime(store, RuntimeOptions::default());
    rt.register_flow(
        "document: { dsl: '1.0.3', namespace: test, name: same, version: '1.0.0' }
do:
  - keep:
      set: { action: hold }
",
    )
    .await
    .unwrap();
    rt.shadows()
        .register(
            "times",
            ("test", "same", "1.0.0"),
            LiveSide::Legacy {
                system: "old".into(),
            },
            vec![],
            "admin",
        )
        .await
        .unwrap();
    let shadows = rt.shadows();
    let post = |case: &str, at: u64| {
        shadows.post_legacy(
            "times",
            LegacyDecision {
                case: case.into(),
                inputs: json!({}),
                decision: json!({"action": "hold"}),
                decided_at_ms: Some(at),
                decided_by: None,
            },
            "olu",
        )
    };
    post("ok", 1_000).await.unwrap();
    // Stored as a signed number, this time would sort before every case and end a report's
    // scan at once.
    let far = post("far", u64::MAX).await;
    assert!(
        matches!(far, Err(baton_engine::shadow::ShadowError::Invalid(_))),
        "{far:?}"
    );
    compared(&rt, "times", "ok").await;
    let report = rt
        .shadows()
        .report("times", None, Some(5_000))
        .await
        .unwrap();
    assert_eq!((report.cases, report.agreed), (1, 1));
}

/// A live flow that waits for `test.go`, then answers by `threshold`.
fn listening_flow(version: &str, threshold: u32) -> String {
    format!(
        r#"
document: {{ dsl: '1.0.3', namespace: test, name: gated, version: '{version}' }}
do:
  - hear:
      listen: {{ to: {{ one: {{ with: {{ type: test.go }} }} }} }}
      output: {{ as: '${{ $input }}' }}
  - answer:
      set:
        order: ${{ .order }}
        action: '${{ if .delay > {threshold} then "reroute" else "keep" end }}'
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_instance_whose_shadow_never_started_gets_it_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let clock = Arc::new(ManualClock::new(1_000));
    let live_id;
    {
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        // Process A has read the (empty) registrations before process B registers the shadow,
        // so A's live start begins no shadow: the same state as a crash between the live start
        // and its shadow's.
        let a = baton_engine::runtime_with_clock(
            store.clone(),
            RuntimeOptions::default(),
            clock.clone(),
        );
        a.register_flow(&listening_flow("1.0.0", 30)).await.unwrap();
        a.register_flow(&listening_flow("2.0.0", 10)).await.unwrap();
        assert!(a.shadows().list().await.unwrap().is_empty());
        let b = baton_engine::runtime_with_clock(
            store.clone(),
            RuntimeOptions::default(),
            clock.clone(),
        );
        b.register_flow(&listening_flow("1.0.0", 30)).await.unwrap();
        b.register_flow(&listening_flow("2.0.0", 10)).await.unwrap();
        b.shadows()
            .register(
                "gated-v2",
                ("test", "gated", "2.0.0"),
                LiveSide::Flow {
                    namespace: "test".into(),
                    name: "gated".into(),
                    version: "1.0.0".into(),
                },
                vec![],
                "admin",
            )
            .await
            .unwrap();
        let program =
            baton_core::FlowResolver::resolve(&**a.catalog(), "test", "gated", "1.0.0").unwrap();
        live_id = a
            .start(program, json!({"order": "o-5", "delay": 20}))
            .await
            .unwrap();
        let shadow = InstanceId(format!("{}.shadow.gated-v2", live_id.0));
        assert!(
            store.instance(&shadow).await.unwrap().is_none(),
            "no shadow yet"
        );
        store.close();
    }
    // The restart: resuming the live instance begins its missing case and shadow.
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let rt = baton_engine::runtime_with_clock(store.clone(), RuntimeOptions::default(), clock);
    let resumed = rt.resume_all().await.unwrap();
    assert!(resumed.contains(&live_id), "{resumed:?}");
    let shadow = InstanceId(format!("{}.shadow.gated-v2", live_id.0));
    assert!(
        rt.shadows().mark_of(&shadow).await.unwrap().is_some(),
        "the shadow is marked before it starts"
    );
    rt.publish_event(
        json!({"specversion": "1.0", "id": "e-1", "source": "test", "type": "test.go"}),
    )
    .await
    .unwrap();
    assert_eq!(rt.wait(&live_id).await.unwrap().status, Status::Completed);
    assert_eq!(rt.wait(&shadow).await.unwrap().status, Status::Completed);
    let c = compared(&rt, "gated-v2", &live_id.0).await;
    assert_eq!(
        c["comparison"]["differences"],
        json!([{"field": ".action", "live": "keep", "shadow": "reroute"}])
    );
    // A second restart starts nothing twice.
    let again = baton_engine::runtime_with_clock(
        store.clone(),
        RuntimeOptions::default(),
        Arc::new(ManualClock::new(5_000)),
    );
    again.resume_all().await.unwrap();
    let cases = rt.shadows().report("gated-v2", None, None).await.unwrap();
    assert_eq!((cases.cases, cases.compared), (1, 1), "{cases:?}");
}
