//! Story 5 end to end against the Maplewood simulator: fifty address checks through the `verify`
//! provider (30 requests a second, 429s injected, null verdicts under load) with the completeness
//! rule of `examples/maplewood/address-checks.yaml`. A result with missing addresses is marked
//! `unknown` (or `partial` under `at_least`) and names them; the go-ahead that needs all 50 is
//! not sent. Without faults and below the load that makes null verdicts, the result is
//! `complete` and the go-ahead is sent.

use std::path::PathBuf;
use std::sync::Arc;

use baton_core::{JournalEntry, Status, TaskPhase};
use baton_runtime::{ProviderLayer, RunResult, Runtime, RuntimeOptions, Secrets};
use baton_sim::{Faults, Sim, SimOptions};
use baton_store::{MemoryStore, Store};
use serde_json::{Value, json};

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/maplewood")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn sim() -> Sim {
    Sim::start(SimOptions {
        start: Some("now".to_string()),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// The example catalogue pointed at this test's simulator. `verify_rate` replaces verify's
/// 30/s when given: below 20 a second the simulator is not under load and answers every verdict.
fn runtime(sim: &Sim, verify_rate: Option<u32>) -> Runtime<MemoryStore> {
    let mut text = example("providers.yaml")
        .replace("${MAPLEWOOD_URL:-http://127.0.0.1:7400}", &sim.base_url());
    if let Some(rate) = verify_rate {
        let from = "rate_limit: { rate: 30, burst: 1 }\n    max_concurrent: 8";
        assert!(
            text.contains(from),
            "verify's limit moved in providers.yaml"
        );
        text = text.replace(
            from,
            &format!("rate_limit: {{ rate: {rate}, burst: 1 }}\n    max_concurrent: 8"),
        );
    }
    let catalog = baton_provider::load_catalog(&text).unwrap_or_else(|d| {
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
    Runtime::new(Arc::new(MemoryStore::new()), options)
}

async fn run(rt: &Runtime<MemoryStore>, flow: &str) -> (RunResult, Vec<JournalEntry>) {
    let program = rt.register_flow(flow).await.expect("the example is valid");
    let id = rt.start(program, json!({})).await.expect("start");
    let result = rt.wait(&id).await.expect("wait");
    assert_eq!(result.status, Status::Completed, "{:?}", result.error);
    let journal = rt.store().journal(&id).await.expect("journal");
    (result, journal)
}

/// The flow's summary of the `verifyEach` result (status, counts, the missing orders and why).
fn summary(result: &RunResult) -> &Value {
    result.output.as_ref().expect("an output")
}

/// Whether the go-ahead (the decision that needs all 50) ran: its task started, or its effect
/// was requested and journaled.
fn go_ahead_ran(result: &RunResult, journal: &[JournalEntry]) -> bool {
    let started = result
        .events
        .iter()
        .any(|e| e.name == "goAhead" && e.phase == TaskPhase::Started);
    let effect = journal.iter().any(|e| match e {
        JournalEntry::EffectCompleted { key, .. } => key.0.contains("/goAhead"),
        _ => false,
    });
    started || effect
}

fn checks_429_waited(journal: &[JournalEntry]) -> usize {
    journal
        .iter()
        .filter(|e| match e {
            JournalEntry::EffectNote { key, note, .. } => {
                key.0.contains("/verifyEach/")
                    && note["retry"]["after"]
                        .as_str()
                        .is_some_and(|a| a.contains("429"))
            }
            _ => false,
        })
        .count()
}

fn max_in_a_second(times: &[u64]) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < 1000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The missing orders are named, each with a reason, and every order is either verified or
/// missing, never both.
fn assert_missing_named(out: &Value) -> Vec<String> {
    let missing = out["missing"].as_array().expect("missing");
    assert!(!missing.is_empty(), "{out}");
    for m in missing {
        assert!(
            m["order"].as_str().is_some_and(|o| !o.is_empty()),
            "named: {m}"
        );
        assert!(
            ["not_ok", "faulted", "deadline"].contains(&m["reason"].as_str().unwrap_or("")),
            "{m}"
        );
        assert!(m["detail"].is_string(), "{m}");
    }
    assert_eq!(out["checked"], json!(50), "{out}");
    assert_eq!(
        out["verified"].as_u64().expect("verified") + missing.len() as u64,
        50,
        "{out}"
    );
    missing
        .iter()
        .map(|m| m["order"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_checks_with_429s_and_null_verdicts_are_unknown_and_the_go_ahead_is_withheld() {
    let sim = sim().await;
    let rt = runtime(&sim, None);
    // Some 429s (waited out as Retry-After says) and some null verdicts on top of the ones the
    // simulator gives under load. The fault draws are seeded, so the same calls get them.
    sim.control(
        "verify",
        Faults {
            rate_429: Some(0.06),
            retry_after_s: Some(1),
            null_rate: Some(0.1),
            ..Faults::default()
        },
    );
    let (result, journal) = run(&rt, &example("address-checks.yaml")).await;
    let out = summary(&result);
    assert_eq!(out["status"], "unknown", "{out}");
    let missing = assert_missing_named(out);
    assert!(
        out["go_ahead"]
            .as_str()
            .is_some_and(|g| g.starts_with(&format!("withheld: {} of 50", missing.len()))),
        "{out}"
    );
    // The null verdicts are missing, not merged: they count neither as deliverable nor as
    // undeliverable.
    let undeliverable = out["undeliverable"].as_array().expect("undeliverable");
    assert_eq!(
        out["deliverable"].as_u64().expect("deliverable") + undeliverable.len() as u64,
        out["verified"].as_u64().expect("verified")
    );
    assert!(
        undeliverable
            .iter()
            .all(|o| !missing.contains(&o.as_str().unwrap_or("").to_string()))
    );
    // The 429s were waited out rather than turned into missing addresses.
    assert!(checks_429_waited(&journal) > 0, "some 429s were injected");
    assert!(
        out["missing"]
            .as_array()
            .expect("missing")
            .iter()
            .all(|m| m["reason"] == "not_ok"),
        "{out}"
    );
    // The limiter kept to the provider's rate.
    let arrivals = sim.arrivals_ms("verify");
    assert!(arrivals.len() >= 50);
    assert!(max_in_a_second(&arrivals) <= 30, "at most 30 a second");
    // The decision that needs all 50 did not run: no task, no effect, no event.
    assert!(!go_ahead_ran(&result, &journal));
    let events = rt.store().events_after(0, 10).await.expect("events");
    assert!(events.is_empty(), "no go-ahead event: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_at_least_the_missing_addresses_give_a_result_marked_partial() {
    let sim = sim().await;
    // 15 a second: no load-made nulls, so the missing ones are exactly the seeded null verdicts.
    let rt = runtime(&sim, Some(15));
    sim.control(
        "verify",
        Faults {
            null_rate: Some(0.1),
            ..Faults::default()
        },
    );
    let flow = example("address-checks.yaml");
    let rule = "complete: all\n";
    assert!(flow.contains(rule));
    let flow = flow.replace(rule, "complete: { at_least: 40 }\n");
    let (result, journal) = run(&rt, &flow).await;
    let out = summary(&result);
    assert_eq!(out["status"], "partial", "{out}");
    let missing = assert_missing_named(out);
    assert!(missing.len() <= 10, "{out}");
    // Partial is not complete: the go-ahead that needs all 50 is still withheld.
    assert!(
        out["go_ahead"]
            .as_str()
            .is_some_and(|g| g.contains("(partial)"))
    );
    assert!(!go_ahead_ran(&result, &journal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_checks_without_faults_are_complete_and_the_go_ahead_is_sent() {
    let sim = sim().await;
    let rt = runtime(&sim, Some(15));
    let (result, journal) = run(&rt, &example("address-checks.yaml")).await;
    let out = summary(&result);
    assert_eq!(out["status"], "complete", "{out}");
    assert_eq!(out["missing"], json!([]));
    assert_eq!(out["verified"], json!(50));
    assert_eq!(out["go_ahead"], "yes");
    assert!(go_ahead_ran(&result, &journal));
    let events = rt.store().events_after(0, 10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event["type"], "maplewood.addresses.verified");
}

/// Runs `examples/maplewood/deadline-default.yaml` to its end.
async fn run_deadline_example(
    rt: &Runtime<MemoryStore>,
    input: Value,
) -> (Value, Vec<JournalEntry>) {
    let program = rt
        .register_flow(&example("deadline-default.yaml"))
        .await
        .expect("the example is valid");
    let id = rt.start(program, input).await.expect("start");
    let result = rt.wait(&id).await.expect("wait");
    assert_eq!(result.status, Status::Completed, "{:?}", result.error);
    let journal = rt.store().journal(&id).await.expect("journal");
    (result.output.expect("output"), journal)
}

/// The keys whose deadline timer fired: the tasks whose default was taken.
fn defaults_taken(journal: &[JournalEntry]) -> Vec<String> {
    journal
        .iter()
        .filter_map(|e| match e {
            JournalEntry::EffectCompleted { key, .. } if baton_core::is_deadline_key(&key.0) => {
                Some(key.0.clone())
            }
            _ => None,
        })
        .collect()
}

fn eta_event(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "maplewood/notify",
        "type": "maplewood.eta.updated",
        "data": {"truck": "t-07", "eta": "11:40"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eta_that_never_comes_ends_at_the_deadline_on_the_safe_path() {
    let sim = sim().await;
    let rt = runtime(&sim, None);
    let (out, journal) =
        run_deadline_example(&rt, json!({"truck": "t-07", "eta_within": "PT1S"})).await;
    assert_eq!(out["decision"], "keep-route", "{out}");
    assert_eq!(out["reason"], "no ETA from the driver within PT1S");
    assert!(
        out["position"]["lat"].is_number(),
        "the GPS answered: {out}"
    );
    assert_eq!(defaults_taken(&journal), ["/do/1/awaitEta#deadline"]);
    // The listen was abandoned: no event was ever consumed for it.
    assert!(!journal.iter().any(|e| matches!(e,
        JournalEntry::EffectCompleted { key, .. } if key.is_listen())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gps_read_past_its_deadline_takes_the_safe_default() {
    let sim = sim().await;
    let rt = runtime(&sim, None);
    sim.control(
        "gps",
        Faults {
            latency_ms: Some(20_000),
            ..Faults::default()
        },
    );
    // The driver's ETA is already there; only the position is missing.
    assert!(rt.publish_event(eta_event("eta-1")).await.expect("stored"));
    let (out, journal) = run_deadline_example(&rt, json!({"truck": "t-07"})).await;
    assert_eq!(out["decision"], "keep-route", "{out}");
    assert_eq!(out["position"], Value::Null);
    assert!(
        out["reason"]
            .as_str()
            .is_some_and(|r| r.contains("position is unknown"))
    );
    assert_eq!(defaults_taken(&journal), ["/do/0/locate#deadline"]);
    // The GPS call was abandoned: its outcome was never journaled.
    assert!(!journal.iter().any(|e| matches!(e,
        JournalEntry::EffectCompleted { key, .. } if key.0 == "/do/0/locate#call")));
    let started = journal.first().expect("started").at_ms();
    let fired = journal
        .iter()
        .find_map(|e| match e {
            JournalEntry::EffectCompleted { key, at_ms, .. } if key.0.ends_with("#deadline") => {
                Some(*at_ms)
            }
            _ => None,
        })
        .expect("fired");
    assert!(fired - started >= 3_000, "not before the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_time_takes_no_default() {
    let sim = sim().await;
    let rt = runtime(&sim, None);
    assert!(rt.publish_event(eta_event("eta-2")).await.expect("stored"));
    let (out, journal) = run_deadline_example(&rt, json!({"truck": "t-07"})).await;
    assert_eq!(out["decision"], "reroute", "{out}");
    assert_eq!(out["eta"], "11:40");
    assert!(defaults_taken(&journal).is_empty());
}
