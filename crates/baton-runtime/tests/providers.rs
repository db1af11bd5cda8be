//! The provider layer against the Maplewood simulator (a real HTTP server on 127.0.0.1): the rate
//! is never exceeded across instances, 429s are waited out, the breaker opens, fails fast and
//! recovers through half-open, fallbacks are used, unknown outcomes are reconciled and applied at
//! most once, 202 is polled to completion, and contract violations or stale answers never reach
//! a later step as data.

use std::sync::Arc;

use baton_core::{JournalEntry, Outcome, Status, baton_types};
use baton_runtime::{Clock, ManualClock, ProviderLayer, Runtime, RuntimeOptions, Secrets};
use baton_sim::{Faults, Sim, SimOptions};
use baton_store::{MemoryStore, Store};
use serde_json::{Value, json};

async fn sim() -> Sim {
    Sim::start(SimOptions {
        start: Some("now".to_string()),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

fn runtime(catalog: &str, clock: Option<Arc<ManualClock>>) -> Runtime<MemoryStore> {
    let catalog = baton_provider::load_catalog(catalog).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.render("test"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let mut secrets = Secrets::default();
    secrets
        .file
        .insert("carrier_token".into(), "s3cret-carrier-token".into());
    let now = clock.as_ref().map(|c| c.now_ms()).unwrap_or(0);
    let layer = ProviderLayer::new(catalog, &secrets, now).expect("secrets resolve");
    let options = RuntimeOptions {
        allowed_url_prefixes: Some(layer.catalog().base_urls()),
        providers: Some(Arc::new(layer)),
        ..RuntimeOptions::default()
    };
    let store = Arc::new(MemoryStore::new());
    match clock {
        Some(c) => Runtime::with_clock(store, options, c),
        None => Runtime::new(store, options),
    }
}

/// A flow of one provider call; communication, contract and stale errors are caught and
/// reported as data so the test can see which one happened, and `after` proves whether the step
/// after the call ran.
fn call_flow(provider: &str, operation: &str, args: Value) -> String {
    format!(
        r#"
document: {{ dsl: '1.0.3', namespace: test, name: call-{provider}-{operation}, version: '1.0.0' }}
do:
  - guarded:
      try:
        - theCall:
            call: provider
            with:
              provider: {provider}
              operation: {operation}
              args: {args}
        - after:
            set:
              value: ${{ . }}
              after: true
      catch:
        as: err
        do:
          - report:
              set:
                error: ${{ $err.type }}
                title: ${{ $err.title }}
                detail: ${{ $err.detail }}
"#
    )
}

fn notes(journal: &[JournalEntry]) -> Vec<Value> {
    journal
        .iter()
        .filter_map(|e| match e {
            JournalEntry::EffectNote { note, .. } => Some(note.clone()),
            _ => None,
        })
        .collect()
}

async fn journal(rt: &Runtime<MemoryStore>, id: &baton_core::InstanceId) -> Vec<JournalEntry> {
    rt.store().journal(id).await.expect("journal")
}

fn carrier_catalog(sim: &Sim, extra: &str) -> String {
    format!(
        r#"
providers:
  carrier:
    base_url: {base}/carrier
    auth: {{ bearer: {{ token: {{ secret: carrier_token }} }} }}
{extra}
    operations:
      book: {{ method: POST, path: /bookings, contract: {{ type: object, required: [booking_id, key] }} }}
      booking: {{ path: "/bookings/{{key}}", applied: .applied }}
"#,
        base = sim.base_url()
    )
}

fn max_in_window(times: &[u64], window: u64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_of_200_calls_keeps_to_30_a_second() {
    let sim = sim().await;
    let rt = runtime(
        &carrier_catalog(
            &sim,
            "    rate_limit: { rate: 30, per: 1s, burst: 1 }\n    max_concurrent: 32\n    retry: { max_attempts: 5 }",
        ),
        None,
    );
    let flow = rt
        .register_flow(&call_flow(
            "carrier",
            "book",
            json!({"body": {"order": "${ .order }"}}),
        ))
        .await
        .expect("flow");
    let mut ids = Vec::new();
    for i in 0..200 {
        let id = rt
            .start(flow.clone(), json!({"order": format!("o-{}", 1000 + i)}))
            .await
            .expect("start");
        ids.push(id);
    }
    for id in &ids {
        let r = rt.wait(id).await.expect("wait");
        assert_eq!(r.status, Status::Completed, "{:?}", r.error);
        assert_eq!(
            r.output.as_ref().and_then(|o| o.get("after")),
            Some(&json!(true))
        );
    }
    let arrivals = sim.arrivals_ms("carrier");
    assert_eq!(arrivals.len(), 200, "no call needed a retry at this pace");
    assert!(
        max_in_window(&arrivals, 1000) <= 30,
        "at most 30 calls in any second, saw {}",
        max_in_window(&arrivals, 1000)
    );
    let span = arrivals[199] - arrivals[0];
    assert!(
        (6_000..=10_000).contains(&span),
        "about 7 s, took {span} ms"
    );
    // Every booking applied exactly once.
    let ledger = sim.ledger();
    let carrier = ledger["carrier"].as_object().expect("carrier ledger");
    assert_eq!(carrier.len(), 200);
    assert!(carrier.values().all(|k| k["applied"] == json!(1)));
    let snap = rt.provider_snapshot().expect("snapshot");
    assert!(snap["carrier"]["limiter_waits"].as_u64() > Some(150));
}

#[tokio::test]
async fn a_429_is_waited_out_for_as_long_as_retry_after_says() {
    let sim = sim().await;
    let rt = runtime(
        &carrier_catalog(
            &sim,
            "    retry: { max_attempts: 3, backoff: { initial: 10ms } }",
        ),
        None,
    );
    sim.control(
        "carrier",
        Faults {
            rate_429: Some(1.0),
            retry_after_s: Some(1),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let flow = rt
        .register_flow(&call_flow(
            "carrier",
            "book",
            json!({"body": {"order": "o-1"}}),
        ))
        .await
        .expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    assert_eq!(
        r.output.as_ref().and_then(|o| o.get("after")),
        Some(&json!(true)),
        "{:?}",
        r.output
    );
    let arrivals = sim.arrivals_ms("carrier");
    assert_eq!(arrivals.len(), 2);
    assert!(arrivals[1] - arrivals[0] >= 1_000, "{arrivals:?}");
    let n = notes(&journal(&rt, &r.id).await);
    assert!(
        n.iter().any(
            |n| n["retry"]["after"] == json!("HTTP 429 Too Many Requests")
                && n["retry"]["wait_ms"].as_u64() >= Some(1_000)
        ),
        "{n:?}"
    );
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers_through_half_open() {
    let sim = sim().await;
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let rt = runtime(
        &carrier_catalog(
            &sim,
            "    retry: { max_attempts: 1 }\n    breaker: { consecutive_failures: 2, open_for: 10s, half_open_probes: 1 }",
        ),
        Some(clock.clone()),
    );
    let flow = rt
        .register_flow(&call_flow(
            "carrier",
            "book",
            json!({"body": {"order": "o-1"}}),
        ))
        .await
        .expect("flow");
    sim.control(
        "carrier",
        Faults {
            rate_5xx: Some(1.0),
            ..Faults::default()
        },
    );
    for _ in 0..2 {
        let r = rt.run(flow.clone(), json!({})).await.expect("run");
        assert_eq!(
            r.output.as_ref().map(|o| o["title"].clone()),
            Some(json!("HTTP 503"))
        );
    }
    assert_eq!(sim.request_count("carrier"), 2);
    // Open: the third call fails fast, as a communication error the flow catches.
    let r = rt.run(flow.clone(), json!({})).await.expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["title"], json!("Circuit open"));
    assert_eq!(
        out["error"],
        json!("https://serverlessworkflow.io/spec/1.0.0/errors/communication")
    );
    assert_eq!(sim.request_count("carrier"), 2, "no request while open");
    // The provider recovers; once the open interval has passed a probe closes the breaker.
    sim.control("carrier", Faults::default());
    clock.advance(9_999);
    let r = rt.run(flow.clone(), json!({})).await.expect("run");
    assert_eq!(r.output.expect("output")["title"], json!("Circuit open"));
    clock.advance(1);
    let r = rt.run(flow.clone(), json!({})).await.expect("run");
    assert_eq!(
        r.output.as_ref().and_then(|o| o.get("after")),
        Some(&json!(true))
    );
    assert_eq!(sim.request_count("carrier"), 3);
    let n = notes(&journal(&rt, &r.id).await);
    let moves: Vec<(Value, Value)> = n
        .iter()
        .filter_map(|n| {
            Some((
                n["breaker"]["from"].clone(),
                n.get("breaker")?["to"].clone(),
            ))
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            (json!("open"), json!("half-open")),
            (json!("half-open"), json!("closed"))
        ]
    );
    let snap = rt.provider_snapshot().expect("snapshot");
    assert_eq!(snap["carrier"]["breaker"], json!("closed"));
    assert_eq!(snap["carrier"]["breaker_transitions"], json!(3));
    assert_eq!(snap["carrier"]["rejected_open"], json!(2));
}

#[tokio::test]
async fn the_fallback_serves_when_the_primary_is_down() {
    let sim = sim().await;
    let backup = baton_testkit::FakeServer::start().await;
    let catalog = format!(
        r#"
providers:
  carrier:
    base_url: {sim}/carrier
    retry: {{ max_attempts: 2, backoff: {{ initial: 1ms }} }}
    fallbacks: [backup]
    operations:
      book: {{ method: POST, path: /bookings }}
  backup:
    base_url: {backup}/ledger
    operations:
      book: {{ method: POST, path: /effects }}
"#,
        sim = sim.base_url(),
        backup = backup.base_url()
    );
    let rt = runtime(&catalog, None);
    sim.control(
        "carrier",
        Faults {
            rate_5xx: Some(1.0),
            ..Faults::default()
        },
    );
    let flow = rt
        .register_flow(&call_flow(
            "carrier",
            "book",
            json!({"body": {"order": "o-7"}}),
        ))
        .await
        .expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["after"], json!(true), "{out}");
    assert_eq!(
        sim.request_count("carrier"),
        2,
        "the primary was tried twice"
    );
    assert_eq!(
        backup.ledger_report().as_object().map(|o| o.len()),
        Some(1),
        "the backup applied it"
    );
    let n = notes(&journal(&rt, &r.id).await);
    assert!(
        n.iter()
            .any(|n| n["fallback"]["from"] == json!("carrier")
                && n["fallback"]["to"] == json!("backup")),
        "{n:?}"
    );
}

fn inventory_catalog(sim: &Sim, extra: &str, with_reconcile: bool) -> String {
    format!(
        r#"
providers:
  inventory:
    base_url: {base}/inventory
    timeouts: {{ request: 300ms }}
{extra}
{reconcile}
    operations:
      reserve: {{ method: POST, path: /reservations, contract: {{ type: object, required: [reservation_id] }} }}
      reservation: {{ path: "/reservations/{{key}}", applied: .applied }}
      stock:
        path: "/stock/{{store}}"
        contract: {{ type: object, required: [store, stock, as_of] }}
        freshness: {{ as_of: .as_of, max_age: 15m }}
"#,
        base = sim.base_url(),
        reconcile = if with_reconcile {
            "    reconcile: { operation: reservation }"
        } else {
            ""
        }
    )
}

fn hang_next_effect(sim: &Sim) {
    sim.control(
        "inventory",
        Faults {
            timeout_after_apply: Some(1.0),
            hang_ms: Some(3_000),
            calls: Some(1),
            ..Faults::default()
        },
    );
}

fn reserve_args() -> Value {
    json!({"body": {"store": "store-02", "sku": "sku-lumber-2x4", "qty": 3}})
}

#[tokio::test]
async fn an_unknown_outcome_is_reconciled_before_anything_else() {
    let sim = sim().await;
    let rt = runtime(&inventory_catalog(&sim, "", true), None);
    hang_next_effect(&sim);
    let flow = rt
        .register_flow(&call_flow("inventory", "reserve", reserve_args()))
        .await
        .expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["after"], json!(true), "{out}");
    assert_eq!(
        out["value"]["applied"],
        json!(true),
        "the reconcile answer is the value"
    );
    let ledger = sim.ledger();
    let keys = ledger["inventory"].as_object().expect("inventory ledger");
    assert_eq!(keys.len(), 1);
    let entry = keys.values().next().expect("one key");
    assert_eq!(entry["applied"], json!(1), "applied once: {ledger}");
    assert_eq!(
        entry["requests"],
        json!(1),
        "reconciled by asking, not by re-sending"
    );
    let n = notes(&journal(&rt, &r.id).await);
    let unknown = n.iter().position(|n| n.get("unknown").is_some());
    let reconciled = n.iter().position(|n| n["reconciled"] == json!("applied"));
    assert!(
        unknown.is_some() && reconciled > unknown,
        "unknown, then reconciled: {n:?}"
    );
}

#[tokio::test]
async fn an_idempotent_provider_is_reconciled_by_resending_the_same_key() {
    let sim = sim().await;
    let rt = runtime(
        &inventory_catalog(&sim, "    idempotent: true", false),
        None,
    );
    hang_next_effect(&sim);
    let flow = rt
        .register_flow(&call_flow("inventory", "reserve", reserve_args()))
        .await
        .expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    assert_eq!(r.output.expect("output")["after"], json!(true));
    let ledger = sim.ledger();
    let entry = ledger["inventory"]
        .as_object()
        .and_then(|o| o.values().next().cloned())
        .expect("one key");
    assert_eq!(
        (entry["applied"].clone(), entry["requests"].clone()),
        (json!(1), json!(2)),
        "{ledger}"
    );
}

#[tokio::test]
async fn an_unknown_outcome_that_cannot_be_reconciled_stays_unknown() {
    let sim = sim().await;
    let rt = runtime(&inventory_catalog(&sim, "", false), None);
    hang_next_effect(&sim);
    let flow = rt
        .register_flow(&call_flow("inventory", "reserve", reserve_args()))
        .await
        .expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["title"], json!("Outcome unknown"), "{out}");
    assert_eq!(sim.request_count("inventory"), 1, "never blindly re-sent");
    let j = journal(&rt, &r.id).await;
    assert!(j.iter().any(|e| matches!(
        e,
        JournalEntry::EffectCompleted {
            outcome: Outcome::Unknown { .. },
            ..
        }
    )));
}

#[tokio::test]
async fn accepted_work_is_polled_to_completion() {
    let sim = sim().await;
    let catalog = format!(
        r#"
providers:
  optimizer:
    base_url: {}/optimizer
    operations:
      plan:
        method: POST
        path: /plans
        accepted: {{ result: .plan, interval: 20ms, max_interval: 50ms, deadline: 1m }}
"#,
        sim.base_url()
    );
    let rt = runtime(&catalog, None);
    let flow = rt
        .register_flow(&call_flow("optimizer", "plan", json!({"body": {}})))
        .await
        .expect("flow");
    let mut requests = sim.subscribe_requests();
    let run = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run(flow, json!({})).await }
    });
    // Once a status poll has seen the job running, the optimizer's hours pass in a moment.
    requests.wait_for(|n| *n >= 2).await.expect("requests");
    sim.advance(60);
    let r = run.await.expect("join").expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["after"], json!(true), "{out}");
    assert!(
        out["value"]["routes"].is_array(),
        "the plan is the value: {out}"
    );
    let n = notes(&journal(&rt, &r.id).await);
    assert!(
        n.iter().any(|n| n["accepted"]["next_poll_at"].is_string()),
        "{n:?}"
    );
    assert!(
        n.iter().any(|n| n["accepted"]["done"] == json!(true)),
        "{n:?}"
    );
}

#[tokio::test]
async fn contract_violations_and_stale_answers_never_reach_the_next_step() {
    let sim = sim().await;
    let rt = runtime(&inventory_catalog(&sim, "", false), None);
    // store-01's stock comes from last night's export; made at least two hours old so the test
    // does not depend on the time of day.
    sim.control(
        "inventory",
        Faults {
            stale_s: Some(7_200),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let stale = rt
        .register_flow(&call_flow(
            "inventory",
            "stock",
            json!({"store": "store-01"}),
        ))
        .await
        .expect("flow");
    let r = rt.run(stale.clone(), json!({})).await.expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["error"], json!(baton_types::STALE), "{out}");
    assert!(out.get("after").is_none());
    let j = journal(&rt, &r.id).await;
    assert!(j.iter().any(|e| matches!(
        e,
        JournalEntry::EffectCompleted {
            outcome: Outcome::Stale { .. },
            ..
        }
    )));
    // store-02 is live: fresh data is data.
    let live = rt
        .register_flow(&call_flow(
            "inventory",
            "stock",
            json!({"store": "store-02"}),
        ))
        .await
        .expect("flow");
    let r = rt.run(live.clone(), json!({})).await.expect("run");
    assert_eq!(r.output.expect("output")["after"], json!(true));
    // A 200 with a body that breaks the contract is a failure, not data.
    sim.control(
        "inventory",
        Faults {
            malformed: Some(1.0),
            ..Faults::default()
        },
    );
    let r = rt.run(live, json!({})).await.expect("run");
    let out = r.output.expect("output");
    assert_eq!(out["error"], json!(baton_types::CONTRACT), "{out}");
    assert!(out.get("after").is_none());
}

#[tokio::test]
async fn secrets_reach_the_provider_but_never_the_journal() {
    let sim = sim().await;
    let rt = runtime(&carrier_catalog(&sim, ""), None);
    let flow = rt
        .register_flow(&call_flow(
            "carrier",
            "book",
            json!({"body": {"order": "o-9"}}),
        ))
        .await
        .expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    assert_eq!(r.status, Status::Completed);
    let text = serde_json::to_string(&journal(&rt, &r.id).await).expect("json");
    assert!(!text.contains("s3cret-carrier-token"));
    assert!(text.contains("booking_id"));
}

#[tokio::test]
async fn plain_http_calls_to_a_provider_share_its_gate_and_others_are_refused() {
    let sim = sim().await;
    let rt = runtime(
        &carrier_catalog(
            &sim,
            "    breaker: { consecutive_failures: 1, open_for: 1h }\n    retry: { max_attempts: 1 }",
        ),
        None,
    );
    sim.control(
        "carrier",
        Faults {
            rate_5xx: Some(1.0),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let flow = format!(
        r#"
document: {{ dsl: '1.0.3', namespace: test, name: plain, version: '1.0.0' }}
do:
  - first:
      try:
        - book:
            call: http
            with: {{ method: post, endpoint: "{base}/carrier/bookings", body: {{ order: o-1 }} }}
      catch:
        as: e
        do:
          - note: {{ set: {{ first: "${{ $e.title }}" }} }}
  - second:
      try:
        - book:
            call: http
            with: {{ method: post, endpoint: "{base}/carrier/bookings", body: {{ order: o-2 }} }}
      catch:
        as: e
        do:
          - note: {{ set: {{ first: "${{ .first }}", second: "${{ $e.title }}" }} }}
  - elsewhere:
      try:
        - call:
            call: http
            with: {{ method: get, endpoint: "http://127.0.0.1:9/not-declared" }}
      catch:
        as: e
        do:
          - note: {{ set: {{ first: "${{ .first }}", second: "${{ .second }}", third: "${{ $e.title }}" }} }}
"#,
        base = sim.base_url()
    );
    let flow = rt.register_flow(&flow).await.expect("flow");
    let r = rt.run(flow, json!({})).await.expect("run");
    assert_eq!(
        r.output.expect("output"),
        json!({"first": "HTTP 503", "second": "Circuit open", "third": "Outbound call to an undeclared destination"})
    );
    assert_eq!(sim.request_count("carrier"), 1);
}

/// Cancelling an instance undoes what it did: the reservation it made is released (after the
/// guard's read), exactly once, and the instance ends `cancelled` only after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_releases_what_the_instance_reserved() {
    let sim = sim().await;
    let catalog = format!(
        r#"
providers:
  inventory:
    base_url: {base}/inventory
    idempotent: true
    operations:
      reserve: {{ method: POST, path: /reservations, contract: {{ type: object, required: [reservation_id, key] }} }}
      reservation: {{ path: "/reservations/{{key}}" }}
      release: {{ method: DELETE, path: "/reservations/{{key}}" }}
"#,
        base = sim.base_url()
    );
    let rt = runtime(&catalog, None);
    let flow = r#"
document: { dsl: '1.0.3', namespace: test, name: reserve-then-wait, version: '1.0.0' }
do:
  - reserve:
      call: provider
      with: { provider: inventory, operation: reserve, args: { body: { store: store-02, sku: sku-drywall, qty: 1 } } }
      metadata:
        baton:
          compensate:
            guard:
              call: provider
              with: { provider: inventory, operation: reservation, args: { key: '${ $effect.key }' } }
              stands: '${ .reservation.status == "held" }'
            call: provider
            with: { provider: inventory, operation: release, args: { key: '${ $effect.key }' } }
  - awaitTruck:
      wait: { hours: 1 }
"#;
    let program = rt.register_flow(flow).await.expect("flow");
    let id = rt.start(program, json!({})).await.expect("start");
    let mut ledger = sim.subscribe_ledger();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        ledger.wait_for(|n| *n >= 1),
    )
    .await
    .expect("reserved")
    .expect("ledger");
    // Whether or not the reservation's answer has reached the instance yet, the cancel undoes
    // it: an answered call is on the saga stack, and one in flight is dropped, found by the
    // guard and released all the same.
    rt.cancel(&id, "the customer cancelled", "olu")
        .await
        .expect("cancel");
    let end = rt.wait(&id).await.expect("ends");
    assert_eq!(end.status, Status::Cancelled);
    let ledger = sim.ledger();
    let entries = ledger["inventory"].as_object().expect("inventory");
    assert_eq!(entries.len(), 1, "{ledger}");
    let entry = entries.values().next().expect("one");
    assert_eq!(entry["applied"], json!(1));
    assert_eq!(entry["compensated"], json!(1), "{ledger}");
    let journal = rt.store().journal(&id).await.expect("journal");
    let cancel_at = journal
        .iter()
        .position(|e| matches!(e, JournalEntry::CancelRequested { .. }))
        .expect("cancel journaled");
    let undone_at = journal
        .iter()
        .position(|e| matches!(e, JournalEntry::TaskNote { note, .. } if note["compensation"] == "compensated"))
        .expect("compensation journaled");
    assert!(cancel_at < undone_at);
    assert!(matches!(
        journal.last(),
        Some(JournalEntry::Cancelled { .. })
    ));
}
