//! Triggers: events start or signal instances through rules with a gate, dedupe and debounce;
//! what cannot be processed is quarantined with its reason and can be replayed; `listen`
//! correlation and signals aimed at one instance deliver each event to its own instance only.

mod support;

use baton_engine::Features;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{InstanceId, Status};
use baton_engine::triggers::{EventOutcome, RuleAction, TriggerCounters, Triggers, load_triggers};
use baton_engine::{Clock, ManualClock, Runtime, RuntimeOptions};
use baton_store::{DocQuery, InstanceQuery, MemoryStore, SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};

const INTAKE: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: intake, version: '1.0.0' }
do:
  - keep:
      set:
        got: ${ . }
"#;

/// Waits for a payment of its own order: `expect` is resolved from the instance's input.
const PAY: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: pay, version: '1.0.0' }
do:
  - waitPayment:
      listen:
        to:
          one:
            with:
              type: test.payment
            correlate:
              order:
                from: ${ .data.order }
                expect: ${ .order }
"#;

/// Waits for any nudge (no correlation).
const NUDGE: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: nudge, version: '1.0.0' }
do:
  - waitNudge:
      listen:
        to:
          one:
            with:
              type: test.nudge
"#;

const RULES: &str = r#"
triggers:
  - name: order-created
    on: { type: test.order.created, source: shop/* }
    when: ${ .data.total > 100 }
    start:
      flow: intake
      namespace: test
      input: '${ {order: .data.order, total: .data.total} }'
  - name: payment
    on: { type: test.payment }
    signal: { flow: pay, namespace: test }
  - name: nudge-one
    on: { type: test.nudge }
    signal:
      flow: nudge
      namespace: test
      instance: ${ .data.instance }
  - name: truck-moved
    on: { type: test.gps }
    debounce:
      key: ${ .data.truck }
      window: 30s
    start: { flow: intake, namespace: test }
  - name: price-settled
    on: { type: test.price }
    debounce:
      key: ${ .data.item }
      window: 10s
    signal: { flow: quote, namespace: test }
"#;

/// Waits for a settled price (delivered by the debounced signal rule).
const QUOTE: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: quote, version: '1.0.0' }
do:
  - waitPrice:
      listen:
        to:
          one:
            with:
              type: test.price
"#;

const T0: u64 = 1_700_000_000_000;

fn event(ty: &str, source: &str, id: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "type": ty, "source": source, "id": id, "data": data})
}

async fn setup<S: Store>(store: Arc<S>, clock: Arc<ManualClock>) -> (Runtime<S>, Triggers<S>) {
    let rt = baton_engine::runtime_with_clock(store, RuntimeOptions::default(), clock);
    for flow in [INTAKE, PAY, NUDGE, QUOTE] {
        rt.register_flow(flow).await.unwrap();
    }
    let rules = load_triggers(RULES).unwrap_or_else(|d| panic!("{d:?}"));
    let triggers = rt.triggers(rules).await.unwrap();
    (rt, triggers)
}

async fn memory() -> (
    Runtime<MemoryStore>,
    Triggers<MemoryStore>,
    Arc<ManualClock>,
) {
    let clock = Arc::new(ManualClock::new(T0));
    let (rt, t) = setup(Arc::new(MemoryStore::new()), clock.clone()).await;
    (rt, t, clock)
}

fn one(report: &baton_engine::triggers::IngestReport) -> &EventOutcome {
    assert_eq!(report.events.len(), 1, "{report:?}");
    &report.events[0].outcome
}

fn started(outcome: &EventOutcome) -> Vec<InstanceId> {
    match outcome {
        EventOutcome::Accepted { actions } => actions
            .iter()
            .filter_map(|a| match a {
                RuleAction::Started { instance, .. } => Some(instance.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn output_of<S: Store>(rt: &Runtime<S>, id: &InstanceId) -> Value {
    let r = tokio::time::timeout(Duration::from_secs(20), rt.wait(id))
        .await
        .expect("the instance ends")
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r:?}");
    r.output.unwrap()
}

/// Waits (on the engine's own notifications, with a generous guard) until `done` holds.
async fn counters_until(
    t: &Triggers<impl Store>,
    done: impl FnMut(&TriggerCounters) -> bool,
) -> TriggerCounters {
    let mut rx = t.watch();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(done))
        .await
        .expect("the counters reach the expected state")
        .unwrap()
        .clone()
}

async fn instances_of<S: Store>(rt: &Runtime<S>, flow: &str) -> Vec<InstanceId> {
    rt.store()
        .instances(&InstanceQuery {
            flow: Some(flow.into()),
            limit: 100,
            ..InstanceQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[tokio::test]
async fn a_repeated_event_is_a_duplicate_and_starts_one_instance() {
    let (rt, t, _clock) = memory().await;
    let ev = event(
        "test.order.created",
        "shop/eu",
        "o-1",
        json!({"order": 1, "total": 250}),
    );
    let first = t.ingest(ev.to_string().as_bytes()).await.unwrap();
    let ids = started(one(&first));
    assert_eq!(ids.len(), 1, "{first:?}");
    let second = t.ingest(ev.to_string().as_bytes()).await.unwrap();
    assert_eq!(one(&second), &EventOutcome::Duplicate);

    assert_eq!(instances_of(&rt, "intake").await, ids);
    assert_eq!(
        output_of(&rt, &ids[0]).await,
        json!({"got": {"order": 1, "total": 250}})
    );
    let c = t.counters();
    assert_eq!((c.accepted, c.duplicate, c.started), (1, 1, 1), "{c:?}");
    assert_eq!(c.rules["order-created"].started, 1);
}

#[tokio::test]
async fn an_event_missing_its_type_is_quarantined_and_replays_after_correction() {
    let (rt, t, _clock) = memory().await;
    let mut bad = event(
        "test.order.created",
        "shop/eu",
        "o-2",
        json!({"order": 2, "total": 500}),
    );
    bad.as_object_mut().unwrap().remove("type");
    let report = t.ingest_value(bad.clone()).await.unwrap();
    let EventOutcome::Quarantined {
        quarantine_id,
        reason,
    } = one(&report).clone()
    else {
        panic!("{report:?}")
    };
    assert!(reason.contains("`type`"), "{reason}");

    let listed = t
        .quarantine(&DocQuery {
            status: Some("held".into()),
            limit: 10,
            ..DocQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, quarantine_id);
    assert_eq!(listed[0].raw, bad, "kept as received");
    assert_eq!(listed[0].reason, reason);
    assert_eq!(t.quarantine_count().await.unwrap(), 1);
    assert!(
        instances_of(&rt, "intake").await.is_empty(),
        "nothing started"
    );

    // Replaying it unchanged fails the same way and keeps it held.
    let again = t.replay(&quarantine_id, None).await.unwrap();
    assert!(
        matches!(&again.outcome, EventOutcome::Quarantined { quarantine_id: q, .. } if *q == quarantine_id),
        "{again:?}"
    );
    assert_eq!(t.quarantine_count().await.unwrap(), 1);

    let mut fixed = bad.clone();
    fixed["type"] = json!("test.order.created");
    let replayed = t.replay(&quarantine_id, Some(fixed)).await.unwrap();
    let ids = started(&replayed.outcome);
    assert_eq!(ids.len(), 1, "{replayed:?}");
    assert_eq!(
        output_of(&rt, &ids[0]).await,
        json!({"got": {"order": 2, "total": 500}})
    );
    let doc = t.quarantined(&quarantine_id).await.unwrap().unwrap();
    assert_eq!(doc.status, "replayed");
    assert!(doc.replayed_at_ms.is_some() && doc.replay.is_some());
    assert_eq!(t.quarantine_count().await.unwrap(), 0);
    assert!(t.replay(&quarantine_id, None).await.is_err(), "only once");
    assert_eq!(t.counters().quarantined, 1);
    assert_eq!(t.counters().replayed, 1);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_quarantined_as_text_and_replays_after_correction() {
    let (rt, t, _clock) = memory().await;
    let report = t
        .ingest(b"type=test.order.created&total=N/A")
        .await
        .unwrap();
    let EventOutcome::Quarantined {
        quarantine_id,
        reason,
    } = one(&report).clone()
    else {
        panic!("{report:?}")
    };
    assert!(reason.starts_with("not JSON"), "{reason}");
    let q = t.quarantined(&quarantine_id).await.unwrap().unwrap();
    assert_eq!(q.raw, json!("type=test.order.created&total=N/A"));
    assert_eq!(q.status, "held");

    let fixed = event(
        "test.order.created",
        "shop/us",
        "o-3",
        json!({"order": 3, "total": 101}),
    );
    let replayed = t.replay(&quarantine_id, Some(fixed)).await.unwrap();
    let ids = started(&replayed.outcome);
    assert_eq!(ids.len(), 1, "{replayed:?}");
    output_of(&rt, &ids[0]).await;
}

#[tokio::test]
async fn the_gate_lets_through_only_what_it_accepts() {
    let (rt, t, _clock) = memory().await;
    let small = event(
        "test.order.created",
        "shop/eu",
        "o-10",
        json!({"order": 10, "total": 5}),
    );
    let report = t.ingest_value(small).await.unwrap();
    assert_eq!(
        one(&report),
        &EventOutcome::Unmatched {
            gated_out: vec!["order-created".into()]
        }
    );
    // The source pattern is part of the match: another shop prefix is not this rule's.
    let elsewhere = event(
        "test.order.created",
        "market/eu",
        "o-11",
        json!({"order": 11, "total": 500}),
    );
    let report = t.ingest_value(elsewhere).await.unwrap();
    assert_eq!(one(&report), &EventOutcome::Unmatched { gated_out: vec![] });
    let big = event(
        "test.order.created",
        "shop/eu",
        "o-12",
        json!({"order": 12, "total": 500}),
    );
    let report = t.ingest_value(big).await.unwrap();
    assert_eq!(started(one(&report)).len(), 1);
    assert_eq!(instances_of(&rt, "intake").await.len(), 1);
    let c = t.counters();
    assert_eq!((c.gated_out, c.unmatched, c.started), (1, 2, 1), "{c:?}");
    assert_eq!(c.rules["order-created"].matched, 2);
}

#[tokio::test]
async fn an_event_no_rule_wants_is_counted_unmatched_and_left_for_listeners() {
    let (rt, t, _clock) = memory().await;
    let report = t
        .ingest_value(event("test.other", "x", "u-1", json!({"u": 1})))
        .await
        .unwrap();
    assert_eq!(one(&report), &EventOutcome::Unmatched { gated_out: vec![] });
    assert_eq!(t.counters().unmatched, 1);
    // Stored all the same: a listener that starts later takes it.
    let program = rt
        .register_flow(
            r#"
document: { dsl: '1.0.3', namespace: test, name: other, version: '1.0.0' }
do:
  - waitOther:
      listen:
        to:
          one:
            with:
              type: test.other
"#,
        )
        .await
        .unwrap();
    let waiting = rt.start(program, json!({})).await.unwrap();
    assert_eq!(output_of(&rt, &waiting).await, json!([{"u": 1}]));
}

#[tokio::test]
async fn debounce_collapses_a_burst_into_one_start_with_the_last_data() {
    let (rt, t, clock) = memory().await;
    for (i, at) in [(1, 0), (2, 5_000), (3, 10_000)] {
        clock.advance(at - (clock.now_ms() - T0));
        let report = t
            .ingest_value(event(
                "test.gps",
                "gps",
                &format!("g-{i}"),
                json!({"truck": "t-7", "seq": i}),
            ))
            .await
            .unwrap();
        let EventOutcome::Accepted { actions } = one(&report) else {
            panic!("{report:?}")
        };
        assert!(
            matches!(&actions[0], RuleAction::Debounced { due_at_ms, .. } if *due_at_ms == clock.now_ms() + 30_000),
            "{actions:?}"
        );
    }
    // Another truck is its own key.
    t.ingest_value(event(
        "test.gps",
        "gps",
        "g-9",
        json!({"truck": "t-9", "seq": 9}),
    ))
    .await
    .unwrap();
    let held = t.held().await.unwrap();
    assert_eq!(held.len(), 2, "{held:?}");
    let t7 = held.iter().find(|h| h.key == json!("t-7")).unwrap();
    assert_eq!(t7.count, 3);
    assert!(instances_of(&rt, "intake").await.is_empty(), "nothing yet");

    // 30 s after the last events: both windows have ended.
    clock.advance(30_000);
    let c = counters_until(&t, |c| c.started >= 2).await;
    assert_eq!((c.debounced, c.started), (4, 2), "{c:?}");
    assert!(t.held().await.unwrap().is_empty());
    let ids = instances_of(&rt, "intake").await;
    assert_eq!(ids.len(), 2);
    let mut outputs = Vec::new();
    for id in &ids {
        outputs.push(output_of(&rt, id).await);
    }
    assert!(
        outputs.contains(&json!({"got": {"truck": "t-7", "seq": 3}})),
        "{outputs:?}"
    );
    assert!(
        outputs.contains(&json!({"got": {"truck": "t-9", "seq": 9}})),
        "{outputs:?}"
    );
}

#[tokio::test]
async fn a_debounced_signal_delivers_only_the_last_event_of_the_burst() {
    let (rt, t, clock) = memory().await;
    let quote = rt.register_flow(QUOTE).await.unwrap();
    let waiting = rt.start(quote, json!({})).await.unwrap();
    for i in 1..=3 {
        let report = t
            .ingest_value(event(
                "test.price",
                "pricing",
                &format!("p-{i}"),
                json!({"item": "oak", "price": i}),
            ))
            .await
            .unwrap();
        assert!(
            matches!(one(&report), EventOutcome::Accepted { actions } if matches!(actions[0], RuleAction::Debounced { .. })),
            "{report:?}"
        );
        clock.advance(1_000);
    }
    // The burst's events are held back from listeners: were they visible, the waiting
    // instance would already have taken the first one.
    clock.advance(10_000);
    counters_until(&t, |c| c.signalled == 1).await;
    let out = output_of(&rt, &waiting).await;
    assert_eq!(out, json!([{"item": "oak", "price": 3}]));
}

#[tokio::test]
async fn a_debounced_event_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.db");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let (_rt, t) = setup(store, clock.clone()).await;
        let report = t
            .ingest_value(event(
                "test.gps",
                "gps",
                "g-1",
                json!({"truck": "t-1", "seq": 1}),
            ))
            .await
            .unwrap();
        assert!(matches!(one(&report), EventOutcome::Accepted { .. }));
    }
    // A new process: the hold is in the store and fires when its window ends.
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let (rt, t) = setup(store, clock.clone()).await;
    assert_eq!(t.held().await.unwrap().len(), 1);
    clock.advance(30_000);
    counters_until(&t, |c| c.started == 1).await;
    let ids = instances_of(&rt, "intake").await;
    assert_eq!(ids.len(), 1);
    assert_eq!(
        output_of(&rt, &ids[0]).await,
        json!({"got": {"truck": "t-1", "seq": 1}})
    );
}

#[tokio::test]
async fn a_signal_reaches_only_the_correlated_waiting_instance() {
    let (rt, t, _clock) = memory().await;
    let pay = rt.register_flow(PAY).await.unwrap();
    let a = rt.start(pay.clone(), json!({"order": 1})).await.unwrap();
    let b = rt.start(pay, json!({"order": 2})).await.unwrap();

    // B's payment first: were correlation ignored, A would take it (the oldest match).
    let report = t
        .ingest_value(event(
            "test.payment",
            "bank",
            "p-2",
            json!({"order": 2, "amount": 20}),
        ))
        .await
        .unwrap();
    assert!(
        matches!(one(&report), EventOutcome::Accepted { actions } if matches!(&actions[0], RuleAction::Signalled { flow, instance: None, .. } if flow == "pay")),
        "{report:?}"
    );
    assert_eq!(
        output_of(&rt, &b).await,
        json!([{"order": 2, "amount": 20}])
    );
    t.ingest_value(event(
        "test.payment",
        "bank",
        "p-1",
        json!({"order": 1, "amount": 10}),
    ))
    .await
    .unwrap();
    assert_eq!(
        output_of(&rt, &a).await,
        json!([{"order": 1, "amount": 10}])
    );
    assert_eq!(t.counters().signalled, 2);
}

#[tokio::test]
async fn a_signal_aimed_at_one_instance_is_invisible_to_the_others() {
    let (rt, t, _clock) = memory().await;
    let nudge = rt.register_flow(NUDGE).await.unwrap();
    let a = rt.start(nudge.clone(), json!({})).await.unwrap();
    let b = rt.start(nudge.clone(), json!({})).await.unwrap();

    // Aimed at B, and first: A, listening for any nudge, would otherwise take it.
    let report = t
        .ingest_value(event(
            "test.nudge",
            "ops",
            "n-1",
            json!({"instance": b.0, "n": 1}),
        ))
        .await
        .unwrap();
    assert!(
        matches!(one(&report), EventOutcome::Accepted { actions } if matches!(&actions[0], RuleAction::Signalled { instance: Some(i), .. } if *i == b)),
        "{report:?}"
    );
    assert_eq!(output_of(&rt, &b).await[0]["n"], json!(1));
    t.ingest_value(event(
        "test.nudge",
        "ops",
        "n-2",
        json!({"instance": a.0, "n": 2}),
    ))
    .await
    .unwrap();
    assert_eq!(output_of(&rt, &a).await[0]["n"], json!(2));

    // The API's signal to one instance is scoped the same way.
    let c = rt.start(nudge, json!({})).await.unwrap();
    rt.signal(&c, event("test.nudge", "ops", "n-3", json!({"n": 3})))
        .await
        .unwrap();
    assert_eq!(output_of(&rt, &c).await[0]["n"], json!(3));
}

#[tokio::test]
async fn listen_correlate_takes_only_the_events_of_its_own_instance() {
    // No triggers: the flow's own `correlate`, with `expect` from the instance's input.
    let clock = Arc::new(ManualClock::new(T0));
    let rt = baton_engine::runtime_with_clock(
        Arc::new(MemoryStore::new()),
        RuntimeOptions::default(),
        clock,
    );
    let pay = rt.register_flow(PAY).await.unwrap();
    let a = rt.start(pay.clone(), json!({"order": 1})).await.unwrap();
    let b = rt.start(pay, json!({"order": 2})).await.unwrap();
    // Neither correlates with order 3, and the string "1" is not the number 1.
    for (id, order) in [
        ("p-3", json!(3)),
        ("p-s", json!("1")),
        ("p-2", json!(2)),
        ("p-1", json!(1)),
    ] {
        rt.publish_event(event("test.payment", "bank", id, json!({"order": order})))
            .await
            .unwrap();
    }
    assert_eq!(output_of(&rt, &a).await, json!([{"order": 1}]));
    assert_eq!(output_of(&rt, &b).await, json!([{"order": 2}]));
}

#[tokio::test]
async fn the_dedupe_window_expires_after_prune() {
    let (rt, t, clock) = memory().await;
    let ev = event(
        "test.order.created",
        "shop/eu",
        "o-5",
        json!({"order": 5, "total": 900}),
    );
    let first = started(one(&t.ingest_value(ev.clone()).await.unwrap()));
    assert_eq!(first.len(), 1);
    clock.advance(23 * 3_600_000);
    assert_eq!(
        t.prune(clock.now_ms()).await.unwrap(),
        0,
        "still in the window"
    );
    assert_eq!(
        one(&t.ingest_value(ev.clone()).await.unwrap()),
        &EventOutcome::Duplicate
    );
    clock.advance(3_600_001);
    assert_eq!(t.prune(clock.now_ms()).await.unwrap(), 1);
    let again = started(one(&t.ingest_value(ev).await.unwrap()));
    assert_eq!(again.len(), 1);
    assert_ne!(again, first, "a new acceptance starts a new instance");
    assert_eq!(instances_of(&rt, "intake").await.len(), 2);
}

#[tokio::test]
async fn a_batch_is_reported_per_event() {
    let (_rt, t, _clock) = memory().await;
    let ok = event(
        "test.order.created",
        "shop/eu",
        "b-1",
        json!({"order": 1, "total": 200}),
    );
    let body =
        json!([ok, {"specversion": "1.0", "id": "b-2"}, ok, event("x", "y", "b-3", json!(null))]);
    let report = t.ingest(body.to_string().as_bytes()).await.unwrap();
    let kinds: Vec<&str> = report
        .events
        .iter()
        .map(|e| match e.outcome {
            EventOutcome::Accepted { .. } => "accepted",
            EventOutcome::Unmatched { .. } => "unmatched",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Quarantined { .. } => "quarantined",
        })
        .collect();
    assert_eq!(kinds, ["accepted", "quarantined", "duplicate", "unmatched"]);
    assert_eq!(
        report.events.iter().map(|e| e.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    let c = t.counters();
    assert_eq!(
        (c.accepted, c.quarantined, c.duplicate, c.unmatched),
        (2, 1, 1, 1),
        "{c:?}"
    );
}

#[test]
fn the_example_trigger_file_loads() {
    let set = load_triggers(include_str!("../../../examples/triggers.yaml"))
        .unwrap_or_else(|d| panic!("{d:#?}"));
    let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["delay-reroute", "portal-cancellation", "route-settled"]
    );
}

#[test]
fn trigger_file_errors_carry_line_and_column() {
    let text = "triggers:
  - name: a
    on: { type: t }
    debounce: { key: .x, window: soon }
    start: { flow: f, namespace: n }
  - name: b
    on: { type: 'a*b' }
    when: ${ .data | }
    signal: { flow: f, namespace: n, colour: red }
  - name: a
    on: { type: t }
";
    let diags = load_triggers(text).unwrap_err();
    let found: Vec<(String, u32, u32)> = diags
        .iter()
        .map(|d| (d.code.clone(), d.line, d.column))
        .collect();
    assert_eq!(
        found,
        [
            ("BATON-TRIG-003".to_string(), 4, 34),  // window: soon
            ("BATON-TRIG-003".to_string(), 7, 17),  // `*` inside a pattern
            ("BATON-TRIG-004".to_string(), 8, 11),  // jq that does not compile
            ("BATON-TRIG-002".to_string(), 9, 38),  // unknown field
            ("BATON-TRIG-003".to_string(), 10, 5),  // no action
            ("BATON-TRIG-003".to_string(), 10, 11), // the name `a` again
        ],
        "{diags:#?}"
    );
    let rendered = diags[0].render("triggers.yaml");
    assert!(
        rendered.starts_with("triggers.yaml:4:34: error[BATON-TRIG-003]"),
        "{rendered}"
    );
    assert!(
        load_triggers("triggers: [\n").unwrap_err()[0].code == "BATON-TRIG-001",
        "YAML syntax"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_a_trigger_starts_gets_its_shadow_too() {
    use baton_engine::shadow::LiveSide;
    use support::compared;
    let rt = baton_engine::runtime(Arc::new(MemoryStore::new()), RuntimeOptions::default());
    rt.register_flow(
        "document: { dsl: '1.0.3', namespace: test, name: intake, version: '1.0.0' }
do:
  - keep:
      set: { got: '${ . }' }
",
    )
    .await
    .unwrap();
    rt.register_flow(
        "document: { dsl: '1.0.3', namespace: test, name: intake-next, version: '1.0.0' }
do:
  - keep:
      set: { got: '${ . }', checked: true }
",
    )
    .await
    .unwrap();
    rt.shadows()
        .register(
            "next",
            ("test", "intake-next", "1.0.0"),
            LiveSide::Flow {
                namespace: "test".into(),
                name: "intake".into(),
                version: "1.0.0".into(),
            },
            vec!["got".into()],
            "admin",
        )
        .await
        .unwrap();
    let rules = load_triggers(
        "triggers:
  - name: created
    on: { type: test.created }
    start: { flow: intake, namespace: test, input: '${ .data }' }
",
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let triggers = rt.triggers(rules).await.unwrap();
    let report = triggers
        .ingest_value(json!({"specversion": "1.0", "type": "test.created", "source": "shop", "id": "e-1", "data": {"order": 7}}))
        .await
        .unwrap();
    let EventOutcome::Accepted { actions } = &report.events[0].outcome else {
        panic!("{report:?}");
    };
    let id = actions
        .iter()
        .find_map(|a| match a {
            RuleAction::Started { instance, .. } => Some(instance.clone()),
            _ => None,
        })
        .expect("the rule started an instance");
    let case = compared(&rt, "next", &id.0).await;
    // Only `.got` is compared: the candidate's extra field does not count.
    assert_eq!(case["comparison"]["agreed"], true, "{case}");
    assert_eq!(case["shadow"]["output"]["checked"], true);
    assert_eq!(case["live"]["output"], json!({"got": {"order": 7}}));
}

/// Issue 16: an event another process stores in the same database (a second node, a CLI) is
/// processed by the rules when it commits, through the store's watch of its event log. The
/// clock does not move, so no timed re-read can find it: only the store's notification can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stored_by_another_process_is_processed_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triggers.db");
    let open = || Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let (here, there) = (open(), open());
    let clock = Arc::new(ManualClock::new(T0));
    let (rt, t) = setup(here, clock).await;
    let ev = event(
        "test.order.created",
        "shop/eu",
        "o-77",
        json!({"order": 77, "total": 250}),
    );
    assert!(there.put_event(&ev, T0).await.unwrap(), "stored over there");
    let mut rx = t.watch();
    tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|c| c.started == 1))
        .await
        .expect("processed within a second of the commit")
        .unwrap();
    let started = instances_of(&rt, "intake").await;
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        output_of(&rt, &started[0]).await,
        json!({"got": {"order": 77, "total": 250}})
    );
}
