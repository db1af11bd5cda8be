//! Story 4, the echo loop, end to end against the Maplewood simulator with the example flow and
//! rules (`examples/maplewood/echo-reroute.yaml`, `echo-triggers.yaml`): a delay reroutes a
//! shipment and notifies its driver; the tablet's ETA that comes back is recognised as the echo
//! of that reroute (by the causation id it carries, or by the change the flow announced) and
//! reroutes nothing; a genuine new delay reroutes again; the fourth reroute of a shipment within
//! the hour holds for a dispatcher. Then the pieces alone: a held-back signal released when
//! its rule does not act on an echo, announced changes and their window, the reserved type, and
//! the flap guard's count under concurrency, after a crash and across its sliding window.
//!
//! The simulator does not send the tablet's answer itself (its README: "Not modelled"), so the
//! tests read the notification from the simulator's message log (`GET /notify/messages`) and
//! build the tablet's CloudEvent from it, with the causation id the simulator received.
//!
//! Nothing sleeps: instances are awaited through `Runtime::wait`, approval tasks through the
//! inbox's change notifications and trigger counters through their watch, each bounded.

use baton_engine::Features;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{FlowResolver, InstanceId, Status};
use baton_engine::approvals::{Answer, ApprovalQuery, ApprovalStatus, ApprovalTask};
use baton_engine::guard::{self, GUARD_FUNCTION};
use baton_engine::triggers::{
    EchoBasis, EventOutcome, EventReport, IngestReport, RuleAction, TriggerCounters, Triggers,
    load_triggers,
};
use baton_engine::{Actor, ManualClock, ProviderLayer, Role, Runtime, RuntimeOptions, Secrets};
use baton_sim::{Sim, SimOptions};
use baton_store::{InstanceQuery, MemoryStore, Store};
use serde_json::{Value, json};

const FLOW: &str = "reroute-shipment";
const MIN: u64 = 60_000;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/maplewood")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails the test instead of hanging it when something never happens.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A fast simulated clock: the optimizer's 2-14 simulated seconds pass before Baton's first poll.
async fn sim() -> Sim {
    Sim::start(SimOptions {
        speed: 1000.0,
        start: Some("now".to_string()),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// The example catalogue pointed at this test's simulator, with the `notify` provider the
/// example needs (the shared catalogue does not declare it).
fn catalogue(sim: &Sim) -> String {
    let mut text = example("providers.yaml");
    if !text.contains("\n  notify:") {
        text.push_str(
            "
  notify:
    base_url: ${MAPLEWOOD_URL:-http://127.0.0.1:7400}/notify
    idempotent: true
    operations:
      send:
        method: POST
        path: /messages
        contract: { type: object, required: [message_id, key] }
",
        );
    }
    text.replace("${MAPLEWOOD_URL:-http://127.0.0.1:7400}", &sim.base_url())
}

struct World {
    sim: Sim,
    rt: Runtime<MemoryStore>,
    triggers: Triggers<MemoryStore>,
    http: reqwest::Client,
}

async fn world() -> World {
    let sim = sim().await;
    let catalog = baton_provider::load_catalog(&catalogue(&sim)).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.render("providers.yaml"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let mut secrets = Secrets::default();
    secrets
        .file
        .insert("carrier_token".into(), "s3cret-carrier-token".into());
    let layer = ProviderLayer::new(catalog, &secrets, 0).expect("secrets resolve");
    let options = RuntimeOptions {
        allowed_url_prefixes: Some(layer.catalog().base_urls()),
        providers: Some(Arc::new(layer)),
        ..RuntimeOptions::default()
    };
    let rt = baton_engine::runtime(Arc::new(MemoryStore::new()), options);
    rt.register_flow(&example("echo-reroute.yaml"))
        .await
        .expect("the example flow is valid");
    let rules = load_triggers(&example("echo-triggers.yaml")).unwrap_or_else(|d| {
        panic!(
            "{}",
            d.iter()
                .map(|d| d.render("echo-triggers.yaml"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let triggers = rt.triggers(rules).await.expect("the trigger engine starts");
    let _ = rustls::crypto::ring::default_provider().install_default();
    World {
        sim,
        rt,
        triggers,
        http: reqwest::Client::new(),
    }
}

fn delayed(id: &str, shipment: &str, driver: &str, minutes: u64) -> Value {
    json!({
        "specversion": "1.0",
        "type": "maplewood.shipment.delayed",
        "source": "maplewood/gps",
        "id": id,
        "data": {"shipment": shipment, "driver": driver, "minutes": minutes},
    })
}

/// A tablet's ETA report; `causation` is what the tablet was given with the notification.
fn eta_updated(
    id: &str,
    shipment: &str,
    driver: &str,
    late: u64,
    causation: Option<&str>,
) -> Value {
    let mut ev = json!({
        "specversion": "1.0",
        "type": "maplewood.eta.updated",
        "source": format!("maplewood/tablet/{driver}"),
        "id": id,
        "data": {"shipment": shipment, "driver": driver, "late_minutes": late},
    });
    if let Some(c) = causation {
        ev["batoncausation"] = json!(c);
    }
    ev
}

impl World {
    async fn ingest(&self, event: Value) -> EventReport {
        let report: IngestReport = self.triggers.ingest_value(event).await.expect("ingest");
        assert_eq!(report.events.len(), 1, "{report:?}");
        report.events.into_iter().next().unwrap()
    }

    /// The reroutes started so far.
    async fn reroutes(&self) -> Vec<InstanceId> {
        self.rt
            .store()
            .instances(&InstanceQuery {
                flow: Some(FLOW.into()),
                limit: 100,
                ..InstanceQuery::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    async fn finish(&self, id: &InstanceId) -> Value {
        let r = bounded("the reroute to end", self.rt.wait(id))
            .await
            .expect("wait");
        assert_eq!(r.status, Status::Completed, "{:?}", r.error);
        r.output.expect("an output")
    }

    /// The driver messages the simulator received, oldest first.
    async fn messages(&self, driver: &str) -> Vec<Value> {
        let url = format!("{}/notify/messages?to={driver}", self.sim.base_url());
        let body: Value = self
            .http
            .get(url)
            .send()
            .await
            .expect("the simulator answers")
            .json()
            .await
            .expect("JSON");
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// What the driver's tablet sends back a few seconds after `message`: its new ETA (still
    /// `late` minutes behind), with the causation id the notification carried.
    fn tablet_answer(&self, message: &Value, late: u64) -> Value {
        let causation = message["causation_id"]
            .as_str()
            .expect("the notification carried a causation id");
        let mut ev = eta_updated(
            &format!("eta-{}", message["message_id"].as_str().unwrap()),
            message["request"]["shipment"].as_str().unwrap(),
            message["to"].as_str().unwrap(),
            late,
            Some(causation),
        );
        ev["data"]["eta"] = message["request"]["eta"].clone();
        ev
    }

    async fn open_task(&self, instance: &InstanceId) -> ApprovalTask {
        let approvals = self.rt.approvals();
        bounded("the dispatcher's task to open", async {
            let mut changes = approvals.changes();
            loop {
                let q = ApprovalQuery {
                    status: Some(ApprovalStatus::Open),
                    instance: Some(instance.0.clone()),
                    ..ApprovalQuery::default()
                };
                if let Some(t) = approvals.list(&q).await.expect("list").into_iter().next() {
                    return t;
                }
                changes.changed().await.expect("the inbox is alive");
            }
        })
        .await
    }
}

fn started(report: &EventReport) -> Vec<InstanceId> {
    match &report.outcome {
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

fn one_started(report: &EventReport) -> InstanceId {
    let ids = started(report);
    assert_eq!(ids.len(), 1, "one reroute: {report:?}");
    ids.into_iter().next().unwrap()
}

async fn counters_until(
    t: &Triggers<impl Store>,
    done: impl FnMut(&TriggerCounters) -> bool,
) -> TriggerCounters {
    let mut rx = t.watch();
    bounded("the trigger counters", rx.wait_for(done))
        .await
        .expect("the engine is alive")
        .clone()
}

fn dispatcher() -> Actor {
    Actor {
        name: "dana".into(),
        roles: vec![Role::Approver],
        groups: vec!["dispatchers".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eta_echo_of_a_reroute_does_not_reroute_again_but_a_genuine_delay_does() {
    let w = world().await;

    // A stop is 25 minutes late: one reroute, and the driver is told the new ETA.
    let first = w.ingest(delayed("delay-1", "o-1007", "d-07", 25)).await;
    assert!(first.echo.is_none(), "{first:?}");
    let reroute = one_started(&first);
    let out = w.finish(&reroute).await;
    assert_eq!(out["rerouted"], true, "{out}");
    assert_eq!(out["guard"]["count"], 1);
    let sent = w.messages("d-07").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let causation = sent[0]["causation_id"].as_str().unwrap().to_string();
    assert!(
        causation.starts_with(&format!("{}/", reroute.0)),
        "the notification names the reroute that sent it: {causation}"
    );

    // The tablet answers with the new ETA, still 20 minutes behind: past the rule's gate, so
    // only the echo marking stands between it and a second reroute.
    let answer = w.tablet_answer(&sent[0], 20);
    let report = w.ingest(answer).await;
    assert_eq!(
        report.outcome,
        EventOutcome::Unmatched { gated_out: vec![] },
        "{report:?}"
    );
    let echo = report.echo.clone().expect("marked as an echo");
    assert_eq!(echo.by, EchoBasis::Lineage);
    assert_eq!(echo.causation, causation);
    assert_eq!(echo.instance.as_ref(), Some(&reroute));
    assert_eq!(echo.suppressed, ["eta-slipped"]);
    assert_eq!(
        w.reroutes().await,
        vec![reroute.clone()],
        "no second reroute"
    );
    assert_eq!(
        w.messages("d-07").await.len(),
        1,
        "the driver is not told twice"
    );
    let c = w.triggers.counters();
    assert_eq!((c.echoes, c.echoes_suppressed), (1, 1), "{c:?}");
    assert_eq!(c.rules["eta-slipped"].echoes_suppressed, 1);
    assert_eq!(c.rules["eta-slipped"].started, 0);
    assert_eq!(
        serde_json::to_value(&c).unwrap()["echoes_suppressed"],
        1,
        "the metrics read this name"
    );

    // A genuine new delay of the same stop (no causation: the world caused it) reroutes again.
    let second = w.ingest(delayed("delay-2", "o-1007", "d-07", 30)).await;
    assert!(second.echo.is_none(), "{second:?}");
    let again = one_started(&second);
    assert_ne!(again, reroute);
    let out = w.finish(&again).await;
    assert_eq!(out["rerouted"], true, "{out}");
    assert_eq!(out["guard"]["count"], 2, "the second reroute of the hour");
    assert_eq!(w.reroutes().await.len(), 2);
    assert_eq!(w.messages("d-07").await.len(), 2);

    // A tablet's report with a causation id Baton does not know is not an echo: it reroutes.
    let stranger = w
        .ingest(eta_updated(
            "eta-x",
            "o-1031",
            "d-31",
            40,
            Some("not-an-instance/do/0"),
        ))
        .await;
    assert!(stranger.echo.is_none(), "{stranger:?}");
    let third = one_started(&stranger);
    assert_eq!(w.finish(&third).await["rerouted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eta_without_the_causation_id_is_the_echo_of_the_change_the_reroute_announced() {
    let w = world().await;
    let reroute = one_started(&w.ingest(delayed("delay-9", "o-1009", "d-09", 20)).await);
    assert_eq!(w.finish(&reroute).await["rerouted"], true);
    // The flow announced its change (an emitted event the engine processes in log order).
    counters_until(&w.triggers, |c| c.expected_changes == 1).await;

    // An older tablet that does not send the causation id back.
    let report = w
        .ingest(eta_updated("eta-9a", "o-1009", "d-09", 20, None))
        .await;
    let echo = report
        .echo
        .clone()
        .expect("recognised by the announced change");
    assert_eq!(echo.by, EchoBasis::Expected);
    assert_eq!(echo.entity.as_deref(), Some("o-1009"));
    assert_eq!(
        echo.causation, reroute.0,
        "the flow gave its instance as the cause"
    );
    assert_eq!(echo.suppressed, ["eta-slipped"]);
    assert!(started(&report).is_empty(), "{report:?}");
    assert_eq!(w.reroutes().await.len(), 1);

    // The announcement had one echo; a later slip of the same shipment is genuine.
    let later = w
        .ingest(eta_updated("eta-9b", "o-1009", "d-09", 35, None))
        .await;
    assert!(later.echo.is_none(), "{later:?}");
    let second = one_started(&later);
    assert_eq!(w.finish(&second).await["rerouted"], true);
    assert_eq!(w.reroutes().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_is_not_moved_more_than_three_times_an_hour_without_the_dispatcher() {
    let w = world().await;
    for n in 1..=3 {
        let id = one_started(
            &w.ingest(delayed(&format!("d-{n}"), "o-1012", "d-12", 20))
                .await,
        );
        let out = w.finish(&id).await;
        assert_eq!(out["rerouted"], true, "{out}");
        assert_eq!(
            out["guard"],
            json!({"entity": "o-1012", "count": n, "max": 3, "allowed": true, "held": false})
        );
    }
    assert_eq!(w.messages("d-12").await.len(), 3);

    // The fourth within the hour holds: waiting, with a task in the dispatchers' inbox, and the
    // driver hears nothing.
    let fourth = one_started(&w.ingest(delayed("d-4", "o-1012", "d-12", 20)).await);
    let task = w.open_task(&fourth).await;
    assert_eq!(task.assignees, ["group:dispatchers"]);
    assert_eq!(task.title, "Shipment o-1012 keeps being rerouted");
    let reason = task.data["flap"]["reason"].as_str().unwrap();
    assert_eq!(reason, "flapping: o-1012 re-decided 4 times in 1h");
    assert_eq!(task.data["shipment"], "o-1012");
    let rec = w.rt.store().instance(&fourth).await.unwrap().unwrap();
    assert_eq!(rec.status, Status::Waiting);
    assert_eq!(w.messages("d-12").await.len(), 3, "not moved while held");

    // The dispatcher lets it go ahead.
    w.rt.approvals()
        .decide(
            &task.id,
            &dispatcher(),
            Answer::Approve,
            Some("customer agreed".into()),
        )
        .await
        .expect("a dispatcher may answer");
    let out = w.finish(&fourth).await;
    assert_eq!(out["rerouted"], true, "{out}");
    assert_eq!(out["guard"]["held"], true);
    assert_eq!(out["guard"]["allowed"], true);
    assert_eq!(out["guard"]["reason"], reason);
    assert_eq!(out["guard"]["approval"]["by"], "dana");
    assert_eq!(w.messages("d-12").await.len(), 4);

    // A fifth holds too, and a rejection keeps the shipment where it is.
    let fifth = one_started(&w.ingest(delayed("d-5", "o-1012", "d-12", 20)).await);
    let task = w.open_task(&fifth).await;
    assert_eq!(
        task.data["flap"]["reason"],
        "flapping: o-1012 re-decided 5 times in 1h"
    );
    w.rt.approvals()
        .decide(
            &task.id,
            &dispatcher(),
            Answer::Reject,
            Some("leave it".into()),
        )
        .await
        .expect("a dispatcher may answer");
    let out = w.finish(&fifth).await;
    assert_eq!(out["rerouted"], false, "{out}");
    assert_eq!(out["guard"]["allowed"], false);
    assert_eq!(w.messages("d-12").await.len(), 4, "not moved");

    // Another shipment has its own count.
    let other = one_started(&w.ingest(delayed("d-6", "o-1013", "d-13", 20)).await);
    assert_eq!(w.finish(&other).await["guard"]["count"], 1);
}

// ---- The pieces alone, on a manual clock and without providers. ----

const T0: u64 = 1_700_000_000_000;

/// Waits for any `test.eta`, and for nothing else.
const WAIT_ETA: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: wait-eta, version: '1.0.0' }
do:
  - waitEta:
      listen:
        to:
          one:
            with:
              type: test.eta
"#;

const RULES: &str = r#"
triggers:
  - name: eta-to-instance
    on: { type: test.eta }
    signal:
      flow: wait-eta
      namespace: test
      instance: ${ .data.instance }
  - name: stock-moved
    on: { type: test.stock }
    echo:
      entity: ${ .data.store }
      expect_within: 10m
    start: { flow: wait-eta, namespace: test }
  - name: stock-audit
    on: { type: test.stock }
    echoes: true
    start: { flow: wait-eta, namespace: test }
"#;

fn ev(ty: &str, id: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "type": ty, "source": "test", "id": id, "data": data})
}

async fn manual() -> (
    Runtime<MemoryStore>,
    Triggers<MemoryStore>,
    Arc<ManualClock>,
) {
    let clock = Arc::new(ManualClock::new(T0));
    let rt = baton_engine::runtime_with_clock(
        Arc::new(MemoryStore::new()),
        RuntimeOptions::default(),
        clock.clone(),
    );
    rt.register_flow(WAIT_ETA).await.unwrap();
    let rules = load_triggers(RULES).unwrap_or_else(|d| panic!("{d:?}"));
    let t = rt.triggers(rules).await.unwrap();
    (rt, t, clock)
}

async fn ingest_one(t: &Triggers<MemoryStore>, event: Value) -> EventReport {
    let r = t.ingest_value(event).await.unwrap();
    assert_eq!(r.events.len(), 1, "{r:?}");
    r.events.into_iter().next().unwrap()
}

#[tokio::test]
async fn an_echo_held_back_for_a_signal_rule_is_still_taken_by_its_listener() {
    let (rt, t, _clock) = manual().await;
    let program = rt.catalog().resolve("test", "wait-eta", "latest").unwrap();
    let waiting = rt.start(program, json!({})).await.unwrap();

    // Aimed at the instance by the signal rule, so held back from listeners when stored; then
    // an echo (its causation names the waiting instance), so the rule does not deliver it.
    let mut echo = ev(
        "test.eta",
        "e-1",
        json!({"instance": waiting.0, "eta": "10:40"}),
    );
    echo["batoncausation"] = json!(format!("{}/do/0/waitEta", waiting.0));
    let report = ingest_one(&t, echo).await;
    let mark = report.echo.clone().expect("an echo");
    assert_eq!(mark.suppressed, ["eta-to-instance"]);
    assert_eq!(
        report.outcome,
        EventOutcome::Unmatched { gated_out: vec![] }
    );
    // Released to listeners: the instance that asks for such events takes it.
    let r = bounded("the listener to take the echo", rt.wait(&waiting))
        .await
        .unwrap();
    assert_eq!(r.status, Status::Completed, "{r:?}");
    assert_eq!(r.output.unwrap()[0]["eta"], "10:40");
    assert_eq!(t.counters().rules["eta-to-instance"].signalled, 0);
}

#[tokio::test]
async fn an_announced_change_has_one_echo_within_its_window_and_rules_may_take_echoes() {
    let (rt, t, clock) = manual().await;
    let starts = |r: &EventReport| -> Vec<String> {
        match &r.outcome {
            EventOutcome::Accepted { actions } => actions
                .iter()
                .filter_map(|a| match a {
                    RuleAction::Started { rule, .. } => Some(rule.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };

    t.expect_change("store-03", 5 * MIN, "restock-42")
        .await
        .unwrap();
    clock.advance(2 * MIN);
    let first = ingest_one(&t, ev("test.stock", "s-1", json!({"store": "store-03"}))).await;
    let echo = first.echo.clone().expect("the announced change's echo");
    assert_eq!(echo.by, EchoBasis::Expected);
    assert_eq!(echo.causation, "restock-42");
    assert_eq!(echo.suppressed, ["stock-moved"]);
    assert_eq!(
        starts(&first),
        ["stock-audit"],
        "`echoes: true` acts on echoes"
    );
    // Consumed: the next change of the store is genuine.
    let second = ingest_one(&t, ev("test.stock", "s-2", json!({"store": "store-03"}))).await;
    assert!(second.echo.is_none(), "{second:?}");
    assert_eq!(starts(&second), ["stock-moved", "stock-audit"]);

    // Past the shorter of the two windows (5 minutes announced, 10 for the rule) nothing is an
    // echo any more; another store's change never was.
    t.expect_change("store-03", 5 * MIN, "restock-43")
        .await
        .unwrap();
    t.expect_change("store-03", 5 * MIN, "restock-43")
        .await
        .unwrap();
    clock.advance(6 * MIN);
    let late = ingest_one(&t, ev("test.stock", "s-3", json!({"store": "store-03"}))).await;
    assert!(late.echo.is_none(), "{late:?}");
    t.expect_change("store-04", 5 * MIN, "restock-44")
        .await
        .unwrap();
    let other = ingest_one(&t, ev("test.stock", "s-4", json!({"store": "store-05"}))).await;
    assert!(other.echo.is_none(), "{other:?}");
    let c = t.counters();
    assert_eq!((c.echoes, c.echoes_suppressed), (1, 1), "{c:?}");
    assert_eq!(c.rules["stock-moved"].started, 3);
    assert_eq!(c.rules["stock-audit"].started, 4);

    // Announcements come from Baton's flows only: from outside one could hide genuine events.
    let forged = ingest_one(
        &t,
        ev(
            "baton.echo.expected",
            "x-1",
            json!({"entity": "store-05", "within": "1h"}),
        ),
    )
    .await;
    assert!(
        matches!(&forged.outcome, EventOutcome::Quarantined { reason, .. } if reason.contains("reserved")),
        "{forged:?}"
    );
    let after = ingest_one(&t, ev("test.stock", "s-5", json!({"store": "store-05"}))).await;
    assert!(after.echo.is_none(), "{after:?}");
    drop(rt);
}

/// One guarded decision about `.entity` (no approval: past the cap the flow sees `allowed:
/// false`).
const GUARDED: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: guarded, version: '1.0.0' }
do:
  - cap:
      call: guard
      with:
        entity: ${ .entity }
        max: 3
        window: 1h
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flap_guard_counts_each_decision_once_under_concurrency_and_slides_its_window() {
    let clock = Arc::new(ManualClock::new(T0));
    let store = Arc::new(MemoryStore::new());
    let rt =
        baton_engine::runtime_with_clock(store.clone(), RuntimeOptions::default(), clock.clone());
    let program = rt.register_flow(GUARDED).await.unwrap();

    // Five instances decide about one shipment at once: each is counted, none twice.
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            rt.start(program.clone(), json!({"entity": "s-9"}))
                .await
                .unwrap(),
        );
    }
    let mut counts = Vec::new();
    let mut allowed = 0;
    for id in &ids {
        let r = bounded("a guarded instance", rt.wait(id)).await.unwrap();
        assert_eq!(r.status, Status::Completed, "{r:?}");
        let out = r.output.unwrap();
        counts.push(out["count"].as_u64().unwrap());
        if out["allowed"] == true {
            allowed += 1;
        } else {
            assert_eq!(out["held"], false, "no approval was given: {out}");
            assert_eq!(
                out["reason"],
                format!("flapping: s-9 re-decided {} times in 1h", out["count"])
            );
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, [1, 2, 3, 4, 5]);
    assert_eq!(allowed, 3);
    assert_eq!(guard::decisions(&*store, "s-9").await.unwrap().len(), 5);

    // The same call performed again (a crash before its outcome was journaled) is not counted
    // again and answers the same.
    let f = rt.functions().get(GUARD_FUNCTION).unwrap();
    let args = json!({"entity": "s-10", "max": 1, "window": "1h"});
    let once = f.call(args.clone(), "key-a").await;
    let twice = f.call(args.clone(), "key-a").await;
    assert_eq!(once, twice);
    assert_eq!(guard::decisions(&*store, "s-10").await.unwrap().len(), 1);
    let other = f.call(args, "key-b").await;
    assert!(
        matches!(&other, baton_core::Outcome::Ok { value } if value["allowed"] == false && value["count"] == 2),
        "{other:?}"
    );

    // The window slides: an hour after the five, a decision is the first of its window.
    clock.advance(61 * MIN);
    let later = rt.start(program, json!({"entity": "s-9"})).await.unwrap();
    let out = bounded("the later decision", rt.wait(&later))
        .await
        .unwrap()
        .output
        .unwrap();
    assert_eq!(out["count"], 1, "{out}");
    assert_eq!(out["allowed"], true);
    assert_eq!(
        guard::decisions(&*store, "s-9").await.unwrap().len(),
        1,
        "decisions older than every window are forgotten"
    );
}
