//! Facts with freshness, end to end against the Maplewood simulator: a figure from last night's
//! export is `unknown` (never data) even after a refresh, the flow holds for a fresher
//! observation instead of sending trucks, a live figure decides at once, and the fact store is
//! bounded and never rolled back by late observations.
//!
//! The simulator's clock is stopped at 06:00 New York time (speed 0) and the runtime's clock is a
//! `ManualClock` at the same instant, so the nightly export is exactly six hours old and holds
//! end only when a test moves time.

use baton_engine::Features;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{InstanceId, JournalEntry, Outcome, Status};
use baton_engine::facts::Facts;
use baton_engine::{
    Clock, ManualClock, ProviderLayer, RunResult, Runtime, RuntimeOptions, Secrets,
};
use baton_sim::{Faults, Sim, SimOptions};
use baton_store::{MemoryStore, Store};
use serde_json::{Value, json};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const SKU: &str = "sku-lumber-2x4";
const STOCK: &str = "stock:sku-lumber-2x4";

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples/maplewood").join(name)).expect("the example")
}

/// Fails the test instead of hanging it when something never happens.
async fn guard<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

struct World {
    sim: Sim,
    clock: Arc<ManualClock>,
    rt: Runtime<MemoryStore>,
}

/// The simulator stopped at 06:00, a runtime on a manual clock at the same instant, and the
/// Maplewood catalogue pointed at the simulator.
async fn world() -> World {
    let sim = Sim::start(SimOptions {
        speed: 0.0,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let start = sim
        .now()
        .parse::<jiff::Timestamp>()
        .expect("the simulator's time")
        .as_millisecond() as u64;
    let clock = Arc::new(ManualClock::new(start));
    let text = example("providers.yaml")
        .replace("${MAPLEWOOD_URL:-http://127.0.0.1:7400}", &sim.base_url());
    let catalog = baton_provider::load_catalog(&text).expect("the catalogue loads");
    let mut secrets = Secrets::default();
    secrets
        .file
        .insert("carrier_token".into(), "s3cret-carrier-token".into());
    let layer = ProviderLayer::new(catalog, &secrets, start).expect("secrets resolve");
    let options = RuntimeOptions {
        allowed_url_prefixes: Some(layer.catalog().base_urls()),
        providers: Some(Arc::new(layer)),
        ..RuntimeOptions::default()
    };
    let rt = baton_engine::runtime_with_clock(Arc::new(MemoryStore::new()), options, clock.clone());
    World { sim, clock, rt }
}

async fn start(w: &World, input: Value) -> InstanceId {
    let program =
        w.rt.register_flow(&example("stale-stock-facts.yaml"))
            .await
            .expect("the example is valid");
    w.rt.start(program, input).await.expect("started")
}

async fn finish(w: &World, id: &InstanceId) -> Value {
    let r: RunResult = guard("the instance to end", w.rt.wait(id))
        .await
        .expect("wait");
    assert_eq!(r.status, Status::Completed, "{:?}", r.error);
    r.output.expect("an output")
}

/// Waits until `instance` holds for a fresher observation.
async fn holding(facts: &Facts<MemoryStore>, instance: &InstanceId) {
    guard("the read to hold", async {
        let mut changes = facts.changes();
        loop {
            let holds = facts.holds().await.expect("holds");
            if holds
                .iter()
                .any(|h| h.instance.as_deref() == Some(instance.0.as_str()))
            {
                return;
            }
            changes.changed().await.expect("the notifier lives");
        }
    })
    .await
}

/// Reservations the inventory applied: what "sending trucks" did in the world.
fn reservations(sim: &Sim) -> u64 {
    sim.ledger()["inventory"]
        .as_object()
        .map(|keys| keys.values().filter_map(|e| e["applied"].as_u64()).sum())
        .unwrap_or(0)
}

/// The answers of the instance's `call: fact` steps, in journal order (the only effects whose
/// answers carry both `status` and `fact`).
async fn fact_answers(rt: &Runtime<MemoryStore>, id: &InstanceId) -> Vec<Value> {
    let journal = rt.store().journal(id).await.expect("journal");
    journal
        .iter()
        .filter_map(|e| match e {
            JournalEntry::EffectCompleted {
                outcome: Outcome::Ok { value },
                ..
            } if value.get("fact").is_some() && value.get("status").is_some() => {
                Some(value.clone())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_nights_stock_is_unknown_after_refresh_and_hold_and_sends_no_trucks() {
    let w = world().await;
    let id = start(
        &w,
        json!({"store": "store-01", "sku": SKU, "qty": 1, "hold_for": "10m"}),
    )
    .await;
    let facts = w.rt.facts();
    holding(&facts, &id).await;

    // The refresh read the export and recorded it as what it is: a six-hour-old observation.
    let fact = facts
        .get("store-01", STOCK)
        .await
        .expect("read")
        .expect("the export was recorded");
    assert_eq!(fact.age_ms(w.clock.now_ms()), 6 * HOUR);
    assert_eq!(fact.source, "provider:inventory/stock");
    assert_eq!(fact.ttl_ms, Some(15 * MIN), "the catalogue's bound");
    let old_figure = fact.value.as_u64().expect("a number");
    assert!(
        old_figure >= 1,
        "the old figure would have been enough: only honesty stops the trucks"
    );

    w.clock.advance(10 * MIN);
    let out = finish(&w, &id).await;
    assert_eq!(out["decision"], "unknown", "{out}");
    let reason = out["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("stale:store-01/stock:sku-lumber-2x4 6h10m old, max 15m"),
        "{reason}"
    );
    assert!(
        out["first_read"]
            .as_str()
            .is_some_and(|r| r.starts_with("stale:store-01/stock:sku-lumber-2x4 6h old")),
        "{out}"
    );
    assert_eq!(out["fact"]["stale_value"], json!(old_figure));
    assert!(out.get("on_hand").is_none());
    assert_eq!(reservations(&w.sim), 0, "no trucks on old numbers");
    assert_eq!(
        w.sim.request_count("inventory"),
        1,
        "one refresh, no reservation"
    );

    // The journal says which fact each step used, and that the refresh was stale.
    let answers = fact_answers(&w.rt, &id).await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["status"], "unknown");
    assert_eq!(answers[0]["refresh"]["outcome"], "stale");
    assert_eq!(answers[0]["fact"]["version"], 1);
    assert_eq!(answers[0]["fact"]["age_ms"], json!(6 * HOUR));
    assert!(
        answers[0].get("value").is_none(),
        "never the stale value as data"
    );
    assert_eq!(answers[1]["status"], "unknown");
    assert_eq!(answers[1]["held_ms"], json!(10 * MIN));
    assert!(facts.holds().await.expect("holds").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stock_decides_at_once_and_is_reused_while_fresh() {
    let w = world().await;
    let id = start(&w, json!({"store": "store-02", "sku": SKU, "qty": 1})).await;
    let out = finish(&w, &id).await;
    assert_eq!(out["decision"], "send-trucks", "{out}");
    assert_eq!(out["via"], "refresh");
    assert_eq!(out["fact"]["age_ms"], 0);
    assert_eq!(out["fact"]["version"], 1);
    assert_eq!(reservations(&w.sim), 1);
    assert_eq!(
        w.sim.request_count("inventory"),
        2,
        "one read, one reservation"
    );

    // Five minutes later the figure is still within 15 minutes: no second read.
    w.clock.advance(5 * MIN);
    let id = start(&w, json!({"store": "store-02", "sku": SKU, "qty": 1})).await;
    let out = finish(&w, &id).await;
    assert_eq!(out["via"], "store", "{out}");
    assert_eq!(out["fact"]["age_ms"], json!(5 * MIN));
    assert_eq!(w.sim.request_count("inventory"), 3, "only the reservation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_proceeds_with_the_observation_that_arrives() {
    let w = world().await;
    let id = start(
        &w,
        json!({"store": "store-01", "sku": SKU, "qty": 30, "hold_for": "10m"}),
    )
    .await;
    let facts = w.rt.facts();
    holding(&facts, &id).await;
    let hold = facts.holds().await.expect("holds").remove(0);
    assert_eq!(
        (hold.entity.as_str(), hold.name.as_str()),
        ("store-01", STOCK)
    );
    assert!(
        hold.reason.starts_with("stale:store-01/"),
        "{}",
        hold.reason
    );

    // Three minutes in, the store counts its shelves: a stock.changed event.
    w.clock.advance(3 * MIN);
    let seen = w.clock.now_ms() - 20_000;
    let recorded = facts
        .observe(
            "store-01",
            STOCK,
            json!(40),
            seen,
            "event:maplewood.stock.changed",
        )
        .await
        .expect("recorded");
    assert!(recorded.stored);
    let out = finish(&w, &id).await;
    assert_eq!(out["decision"], "send-trucks", "{out}");
    assert_eq!(out["via"], "hold");
    assert_eq!(out["on_hand"], 40);
    assert_eq!(out["fact"]["version"], 2, "the export was version 1");
    assert_eq!(out["fact"]["source"], "event:maplewood.stock.changed");
    assert_eq!(out["fact"]["age_ms"], 20_000);
    assert_eq!(reservations(&w.sim), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_fails_is_unknown_and_a_default_is_marked_as_such() {
    let w = world().await;
    w.sim.control(
        "inventory",
        Faults {
            // A body that breaks the contract: a definite failure (a 5xx would be retried with
            // backoff on the manual clock, which this test does not move).
            malformed: Some(1.0),
            ..Faults::default()
        },
    );
    let flow = r#"
document: { dsl: '1.0.3', namespace: test, name: fact-policies, version: '1.0.0' }
do:
  - refreshed:
      call: fact
      with:
        entity: store-02
        name: stock:sku-lumber-2x4
        max_age: 15m
        on_stale: refresh
        source: { provider: inventory, operation: stock, args: { store: store-02 }, value: '.stock["sku-lumber-2x4"]' }
      export:
        as: '${ {refreshed: .} }'
  - defaulted:
      call: fact
      with:
        entity: store-02
        name: stock:sku-lumber-2x4
        max_age: 15m
        on_stale: default
        default: 0
      output:
        as: '${ $context + {defaulted: .} }'
"#;
    let program = w.rt.register_flow(flow).await.expect("valid");
    let r = guard("the flow", w.rt.run(program, json!({})))
        .await
        .expect("run");
    let out = r.output.expect("output");
    let refreshed = &out["refreshed"];
    assert_eq!(refreshed["status"], "unknown", "{out}");
    assert_eq!(
        refreshed["reason"],
        "stale:store-02/stock:sku-lumber-2x4 never observed, max 15m"
    );
    assert_eq!(refreshed["refresh"]["outcome"], "failed");
    assert!(refreshed.get("value").is_none());
    let defaulted = &out["defaulted"];
    assert_eq!(defaulted["status"], "default");
    assert_eq!(defaulted["value"], 0);
    assert!(
        defaulted["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("stale:store-02/"))
    );
}

#[tokio::test]
async fn the_fact_store_is_bounded_and_never_rolled_back() {
    let clock = Arc::new(ManualClock::new(10 * HOUR));
    let store = Arc::new(MemoryStore::new());
    let facts = Facts::new(store.clone(), clock.clone(), None).with_max_facts(3);
    for (i, truck) in ["t1", "t2", "t3", "t4", "t5"].iter().enumerate() {
        facts
            .observe(truck, "position", json!(i), (i as u64 + 1) * MIN, "gps")
            .await
            .expect("recorded");
    }
    assert_eq!(facts.count().await.expect("count"), 3);
    assert_eq!(facts.evicted(), 2);
    let listed: Vec<String> = facts
        .list(0)
        .await
        .expect("list")
        .iter()
        .map(|f| f.entity.clone())
        .collect();
    assert_eq!(listed, ["t5", "t4", "t3"], "newest first, oldest evicted");

    // An event that arrives late does not replace what is newer.
    let late = facts
        .observe("t5", "position", json!("old"), 2 * MIN, "gps")
        .await
        .expect("answered");
    assert!(!late.stored);
    assert_eq!(late.fact.value, json!(4));
    let newer = facts
        .observe("t5", "position", json!("new"), 6 * MIN, "gps")
        .await
        .expect("answered");
    assert!(newer.stored);
    assert_eq!(newer.fact.version, 2);
    assert_eq!(newer.fact.lateness_ms, 10 * HOUR - 6 * MIN);
    // The same observation again (an event delivered twice) changes nothing.
    let again = facts
        .observe("t5", "position", json!("new"), 6 * MIN, "gps")
        .await
        .expect("answered");
    assert!(!again.stored);
    assert_eq!(facts.count().await.expect("count"), 3);
    assert!(
        facts
            .observe("a/b", "position", json!(1), MIN, "gps")
            .await
            .is_err(),
        "an entity with a slash would share ids"
    );
}
