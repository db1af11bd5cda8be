//! The `examples/maplewood/` flows run end to end against the simulator, exactly as the README
//! shows (`baton run FLOW --providers … --secrets …`), with the catalogue pointed at this test's
//! simulator through `MAPLEWOOD_URL`.

use std::path::PathBuf;
use std::process::Command;

use baton_sim::{Faults, Sim, SimOptions};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn sim() -> Sim {
    Sim::start(SimOptions {
        start: Some("now".to_string()),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// Runs `baton` on a blocking thread so the in-process simulator keeps serving.
async fn baton(sim: &Sim, db: PathBuf, args: Vec<String>) -> std::process::Output {
    let base = sim.base_url();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .current_dir(root())
            .env("MAPLEWOOD_URL", base)
            .env("BATON_STORE", db)
            .env_remove("BATON_PROVIDERS")
            .args(args)
            .output()
            .expect("baton runs")
    })
    .await
    .expect("join")
}

async fn run(
    sim: &Sim,
    flow: &str,
    input: Option<&str>,
) -> (Value, String, PathBuf, tempfile::TempDir) {
    let (out, dir) = run_output(sim, flow, input).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{flow} failed: {stderr}");
    (
        serde_json::from_slice(&out.stdout).expect("JSON output"),
        stderr,
        dir.path().join("baton.db"),
        dir,
    )
}

/// `baton run FLOW` with the Maplewood catalogue, however it ends.
async fn run_output(
    sim: &Sim,
    flow: &str,
    input: Option<&str>,
) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let mut args: Vec<String> = [
        "run",
        flow,
        "--providers",
        "examples/maplewood/providers.yaml",
        "--secrets",
        "examples/maplewood/secrets.yaml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(i) = input {
        args.extend(["--input".to_string(), i.to_string()]);
    }
    (baton(sim, db, args).await, dir)
}

/// The journal of the only instance in `db`, as `baton show ID --json` prints it.
async fn only_journal(sim: &Sim, db: PathBuf) -> Value {
    let list = baton(sim, db.clone(), vec!["instances".into(), "--json".into()]).await;
    let list: Value = serde_json::from_slice(&list.stdout).expect("list");
    let id = list[0]["id"].as_str().expect("id").to_string();
    let shown = baton(sim, db, vec!["show".into(), id, "--json".into()]).await;
    serde_json::from_slice(&shown.stdout).expect("show --json")
}

/// The compensation notes of a shown instance, in journal order.
fn compensations(shown: &Value) -> Vec<Value> {
    shown["journal"]
        .as_array()
        .expect("journal")
        .iter()
        .filter(|e| e["note"]["compensation"].is_string())
        .map(|e| e["note"].clone())
        .collect()
}

/// The only key of `provider` in the ledger, with its entry.
fn only_effect(ledger: &Value, provider: &str) -> (String, Value) {
    let entries = ledger[provider]
        .as_object()
        .expect("provider in the ledger");
    assert_eq!(entries.len(), 1, "{ledger}");
    let (k, v) = entries.iter().next().expect("one");
    (k.clone(), v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn morning_plan_catches_what_the_optimizer_does_not_know() {
    let sim = sim().await;
    let (out, _, _, _dir) = run(&sim, "examples/maplewood/morning-plan.yaml", None).await;
    assert_eq!(out["plan_ok"], json!(false));
    let violations = out["violations"].as_array().expect("violations");
    assert!(
        violations
            .iter()
            .any(|v| v["rule"] == json!("lumber-yard-window") && v["eta"] == json!("14:15")),
        "{out}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v["rule"] == json!("rural-stop-cap"))
    );
    assert!(sim.request_count("optimizer") >= 2, "202, then polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_stock_is_unknown_and_live_stock_decides() {
    let sim = sim().await;
    // store-01's figure is last midnight's export; just after midnight that is still fresh, so
    // the test makes the export at least two hours old whatever the time of day.
    sim.control(
        "inventory",
        Faults {
            stale_s: Some(7_200),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let (out, _, _, _d) = run(
        &sim,
        "examples/maplewood/stale-stock.yaml",
        Some(r#"{"store": "store-01", "sku": "sku-lumber-2x4", "qty": 10}"#),
    )
    .await;
    assert_eq!(out["decision"], json!("unknown"), "{out}");
    assert!(
        out["reason"]
            .as_str()
            .is_some_and(|r| r.contains("at most 15.0 min"))
    );
    let (out, _, _, _d) = run(
        &sim,
        "examples/maplewood/stale-stock.yaml",
        Some(r#"{"store": "store-02", "sku": "sku-lumber-2x4", "qty": 10}"#),
    )
    .await;
    assert_eq!(out["decision"], json!("send-trucks"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_address_checks_keep_to_the_rate_and_name_the_missing() {
    let sim = sim().await;
    let (out, stderr, _, _d) = run(&sim, "examples/maplewood/address-checks.yaml", None).await;
    assert_eq!(out["checked"], json!(50), "{out}");
    let arrivals = sim.arrivals_ms("verify");
    let worst = (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|t| **t - arrivals[i] < 1000)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(worst <= 30, "at most 30 a second, saw {worst}");
    let missing = out["missing"].as_array().expect("missing").len();
    if missing > 0 {
        assert!(
            out["go_ahead"]
                .as_str()
                .is_some_and(|g| g.starts_with("withheld"))
        );
    }
    assert!(stderr.contains("provider verify: 50 requests"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reservation_that_did_happen_is_reconciled_and_applied_once() {
    let sim = sim().await;
    sim.control(
        "inventory",
        Faults {
            timeout_after_apply: Some(1.0),
            hang_ms: Some(5_000),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let (out, _, db, _d) = run(&sim, "examples/maplewood/reserve-and-book.yaml", None).await;
    assert!(
        out["reservation"].is_string() && out["booking"].is_string(),
        "{out}"
    );
    let ledger = sim.ledger();
    let (_, reservation) = only_effect(&ledger, "inventory");
    assert_eq!(reservation["applied"], json!(1), "{ledger}");
    assert_eq!(
        reservation["compensated"],
        json!(0),
        "nothing failed: {ledger}"
    );
    assert_eq!(out["notified"], json!(true));
    // `baton show` tells the story: unknown, then reconciled as applied.
    let list = baton(&sim, db.clone(), vec!["instances".into(), "--json".into()]).await;
    let list: Value = serde_json::from_slice(&list.stdout).expect("list");
    let id = list[0]["id"].as_str().expect("id").to_string();
    let shown = baton(&sim, db, vec!["show".into(), id]).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    let unknown = text.find("\"unknown\"").expect("unknown noted");
    let reconciled = text
        .find("\"reconciled\":\"applied\"")
        .expect("reconciliation noted");
    assert!(unknown < reconciled, "{text}");
}

#[test]
fn a_broken_catalogue_is_reported_with_locations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("providers.yaml");
    std::fs::write(
        &path,
        "providers:\n  carrier:\n    base_url: http://127.0.0.1:7400/carrier\n    rate_limit: { rate: -3 }\n    fallbacks: [nobody]\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["validate", "--providers", path.to_str().expect("utf-8")])
        .output()
        .expect("baton runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "providers.yaml:4:25: error[BATON-PROV-003]: the rate must be a positive number"
        ),
        "{err}"
    );
    assert!(
        err.contains("providers.yaml:5:17: error[BATON-PROV-004]: no provider named `nobody`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_reservation_hangs_then_resume_asks_before_resending() {
    let sim = sim().await;
    // The inventory applies the reservation, then holds the connection without answering.
    sim.control(
        "inventory",
        Faults {
            timeout_after_apply: Some(1.0),
            hang_ms: Some(30_000),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .current_dir(root())
        .env("MAPLEWOOD_URL", sim.base_url())
        .env("BATON_STORE", &db)
        .args([
            "run",
            "examples/maplewood/reserve-and-book.yaml",
            "--providers",
            "examples/maplewood/providers.yaml",
            "--secrets",
            "examples/maplewood/secrets.yaml",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("baton runs");
    // Kill it the moment the reservation is applied: its answer never arrives.
    let mut ledger = sim.subscribe_ledger();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ledger.wait_for(|n| *n >= 1),
    )
    .await
    .expect("the reservation is applied within a minute")
    .expect("ledger");
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    assert!(!status.success(), "the run was killed, not finished");
    let out = baton(
        &sim,
        db.clone(),
        vec![
            "resume".into(),
            "--providers".into(),
            "examples/maplewood/providers.yaml".into(),
            "--secrets".into(),
            "examples/maplewood/secrets.yaml".into(),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = sim.ledger();
    let reservation = ledger["inventory"]
        .as_object()
        .and_then(|o| o.values().next().cloned())
        .expect("one reservation");
    assert_eq!(reservation["applied"], json!(1), "{ledger}");
    assert_eq!(
        reservation["requests"],
        json!(1),
        "asked, not re-sent: {ledger}"
    );
    assert_eq!(
        ledger["carrier"].as_object().map(|o| o.len()),
        Some(1),
        "the flow went on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_booking_releases_the_reservation_whose_answer_was_lost_once() {
    let sim = sim().await;
    // The reservation is applied but its answer never arrives.
    sim.control(
        "inventory",
        Faults {
            timeout_after_apply: Some(1.0),
            hang_ms: Some(5_000),
            calls: Some(1),
            ..Faults::default()
        },
    );
    // 30 pallets: the carrier refuses the load.
    let (out, dir) = run_output(
        &sim,
        "examples/maplewood/reserve-and-book.yaml",
        Some(r#"{"order": "o-1002", "pallets": 30}"#),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "the instance faults: {stderr}");
    assert!(
        stderr.contains("422") && stderr.contains("compensation: 1 undone, 0 skipped"),
        "the carrier's problem is the fault: {stderr}"
    );
    let ledger = sim.ledger();
    let (_, reservation) = only_effect(&ledger, "inventory");
    assert_eq!(reservation["applied"], json!(1), "{ledger}");
    assert_eq!(
        reservation["compensated"],
        json!(1),
        "released once: {ledger}"
    );
    let (_, booking) = only_effect(&ledger, "carrier");
    assert_eq!(booking["applied"], json!(0), "{ledger}");
    assert!(
        ledger["notify"].as_object().is_none_or(|o| o.is_empty()),
        "{ledger}"
    );

    let shown = only_journal(&sim, dir.path().join("baton.db")).await;
    assert_eq!(shown["instance"]["status"], json!("faulted"), "{shown}");
    let text = shown.to_string();
    let reconciled = text
        .find("\"reconciled\":\"applied\"")
        .expect("reconciliation noted");
    let undone = text
        .find("\"compensation\":\"compensated\"")
        .expect("compensation noted");
    assert!(reconciled < undone, "reconciled before compensated: {text}");
    let notes = compensations(&shown);
    assert_eq!(
        notes.len(),
        1,
        "only the reservation had happened: {notes:?}"
    );
    assert_eq!(notes[0]["task"], json!("reserve"));
}

/// Runs `flow` while the carrier holds the booking at its gate: once the booking has arrived,
/// `meanwhile` plays a person, then the gate opens. Returns how the run ended and its store.
async fn run_while_the_booking_waits(
    sim: &Sim,
    flow: &str,
    input: &str,
    meanwhile: impl AsyncFnOnce(),
) -> (std::process::Output, PathBuf, tempfile::TempDir) {
    sim.control(
        "carrier",
        Faults {
            hold: Some(true),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let mut arrivals = sim.subscribe_requests();
    let carrier_before = sim.request_count("carrier");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let args: Vec<String> = [
        "run",
        flow,
        "--input",
        input,
        "--providers",
        "examples/maplewood/providers.yaml",
        "--secrets",
        "examples/maplewood/secrets.yaml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = {
        let (base, db, root) = (sim.base_url(), db.clone(), root());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_baton"))
                .current_dir(root)
                .env("MAPLEWOOD_URL", base)
                .env("BATON_STORE", db)
                .env_remove("BATON_PROVIDERS")
                .args(args)
                .output()
                .expect("baton runs")
        })
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        arrivals.wait_for(|_| sim.request_count("carrier") > carrier_before),
    )
    .await
    .expect("the booking reaches the carrier within a minute")
    .expect("requests");
    meanwhile().await;
    sim.control("carrier", Faults::default());
    (run.await.expect("join"), db, dir)
}

/// A person acting on the simulator directly, as a provider's own UI would.
fn by_hand() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_a_person_already_released_is_not_released_again() {
    let sim = sim().await;
    let (out, db, _dir) = run_while_the_booking_waits(
        &sim,
        "examples/maplewood/reserve-and-book.yaml",
        r#"{"order": "o-1003", "pallets": 40}"#,
        async || {
            let (key, _) = only_effect(&sim.ledger(), "inventory");
            let released = by_hand()
                .delete(format!("{}/inventory/reservations/{key}", sim.base_url()))
                .send()
                .await
                .expect("released by hand");
            assert!(released.status().is_success());
        },
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = sim.ledger();
    let (_, reservation) = only_effect(&ledger, "inventory");
    assert_eq!(
        reservation["compensated"],
        json!(1),
        "the person's release only: {ledger}"
    );
    assert_eq!(
        reservation["requests"],
        json!(2),
        "reserve, and the person's release: {ledger}"
    );
    let notes = compensations(&only_journal(&sim, db).await);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["compensation"], json!("skipped"));
    assert_eq!(
        notes[0]["guard"]["reservation"]["status"],
        json!("released")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_compensating_then_resume_releases_exactly_once() {
    let sim = sim().await;
    // The booking waits at the carrier's gate, so the release can be held too before it starts.
    sim.control(
        "carrier",
        Faults {
            hold: Some(true),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let mut arrivals = sim.subscribe_requests();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("baton.db");
    let args = [
        "--providers",
        "examples/maplewood/providers.yaml",
        "--secrets",
        "examples/maplewood/secrets.yaml",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .current_dir(root())
        .env("MAPLEWOOD_URL", sim.base_url())
        .env("BATON_STORE", &db)
        .args(["run", "examples/maplewood/reserve-and-book.yaml"])
        .args(["--input", r#"{"order": "o-1004", "pallets": 27}"#])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("baton runs");
    let minute = std::time::Duration::from_secs(60);
    tokio::time::timeout(
        minute,
        arrivals.wait_for(|_| sim.request_count("carrier") >= 1),
    )
    .await
    .expect("the booking arrives")
    .expect("requests");
    // Hold the inventory's next effect (the release), then let the refused booking through.
    sim.control(
        "inventory",
        Faults {
            hold: Some(true),
            calls: Some(1),
            ..Faults::default()
        },
    );
    sim.control("carrier", Faults::default());
    // The reservation, then the release: the guard's read is not counted as an effect request.
    tokio::time::timeout(
        minute,
        arrivals.wait_for(|_| sim.request_count("inventory") >= 3),
    )
    .await
    .expect("the release arrives")
    .expect("requests");
    child.kill().expect("SIGKILL");
    assert!(!child.wait().expect("reaped").success());
    sim.control("inventory", Faults::default());
    let mut resume = vec!["resume".to_string()];
    resume.extend(args.iter().map(|s| s.to_string()));
    let out = baton(&sim, db.clone(), resume).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `resume` exits 1 when an instance did not complete: this one faulted, as it should.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("faulted"), "{stdout} {stderr}");
    let ledger = sim.ledger();
    let (_, reservation) = only_effect(&ledger, "inventory");
    assert_eq!(reservation["applied"], json!(1), "{ledger}");
    assert_eq!(
        reservation["compensated"],
        json!(1),
        "released once: {ledger}"
    );
    let notes = compensations(&only_journal(&sim, db).await);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["compensation"], json!("compensated"));
}

/// Every refund of `order`, as the payments provider lists them.
async fn refunds_of(sim: &Sim, order: &str) -> Value {
    by_hand()
        .get(format!("{}/payments/refunds?order={order}", sim.base_url()))
        .send()
        .await
        .expect("refunds")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_refunded_once() {
    let sim = sim().await;
    let (out, dir) = run_output(
        &sim,
        "examples/maplewood/refund-failed-delivery.yaml",
        Some(r#"{"order": "o-1005", "amount": 84.5, "pallets": 30}"#),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The charge (applied once) and the refund that undid it, each under its own key.
    let ledger = sim.ledger();
    let payments = ledger["payments"].as_object().expect("payments");
    assert_eq!(payments.len(), 2, "{ledger}");
    let charges: Vec<&Value> = payments
        .values()
        .filter(|e| e["compensated"] == json!(1))
        .collect();
    assert_eq!(charges.len(), 1, "the charge is compensated once: {ledger}");
    assert_eq!(charges[0]["applied"], json!(1));
    let refunds = refunds_of(&sim, "o-1005").await;
    assert_eq!(refunds["total"], json!(84.5), "{refunds}");
    assert_eq!(
        refunds["refunds"].as_array().map(Vec::len),
        Some(1),
        "{refunds}"
    );
    let notes = compensations(&only_journal(&sim, dir.path().join("baton.db")).await);
    assert_eq!(notes[0]["compensation"], json!("compensated"), "{notes:?}");
}

/// Runs refund-failed-delivery.yaml for `order` (84.5 for 30 pallets) while a person refunds
/// `amount_by_hand` of it through the payments provider's manual route; the run's exit code, the
/// order's refunds and the instance's compensation notes.
async fn refund_with_some_by_hand(
    sim: &Sim,
    order: &str,
    amount_by_hand: Value,
) -> (Option<i32>, Value, Vec<Value>) {
    let (out, db, _d) = run_while_the_booking_waits(
        sim,
        "examples/maplewood/refund-failed-delivery.yaml",
        &json!({"order": order, "amount": 84.5, "pallets": 30}).to_string(),
        async || {
            let r = by_hand()
                .post(format!("{}/payments/refunds/manual", sim.base_url()))
                .json(&json!({"order": order, "amount": amount_by_hand}))
                .send()
                .await
                .expect("refunded by hand");
            assert!(r.status().is_success());
        },
    )
    .await;
    let refunds = refunds_of(sim, order).await;
    let notes = compensations(&only_journal(sim, db).await);
    (out.status.code(), refunds, notes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_a_person_made_by_hand_is_not_made_again() {
    let sim = sim().await;
    // All of it by hand: nothing is left to refund.
    let (code, refunds, notes) = refund_with_some_by_hand(&sim, "o-1006", json!(84.5)).await;
    assert_eq!(code, Some(1));
    assert_eq!(
        refunds["total"],
        json!(84.5),
        "not refunded twice: {refunds}"
    );
    assert_eq!(notes[0]["compensation"], json!("skipped"), "{notes:?}");

    // Part of it by hand: only the rest is refunded.
    let (code, refunds, notes) = refund_with_some_by_hand(&sim, "o-1007", json!(30)).await;
    assert_eq!(code, Some(1));
    assert_eq!(
        refunds["total"],
        json!(84.5),
        "topped up, not doubled: {refunds}"
    );
    assert_eq!(
        refunds["refunds"].as_array().map(Vec::len),
        Some(2),
        "{refunds}"
    );
    assert_eq!(notes[0]["compensation"], json!("compensated"), "{notes:?}");
}
