//! The Maplewood providers' natural behaviour, over real HTTP.

mod common;

use baton_sim::{Faults, LUMBER_YARD, ORDER_COUNT, Sim, SimOptions};
use common::{get, post, seconds_between, still_sim};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn seeded_runs_give_the_same_orders() {
    let a = still_sim(5).await;
    let b = still_sim(5).await;
    let c = still_sim(6).await;
    let (status, first) = get(&format!("{}/orders/orders", a.base_url())).await;
    assert_eq!(status, StatusCode::OK);
    let (_, same) = get(&format!("{}/orders/orders", b.base_url())).await;
    let (_, other) = get(&format!("{}/orders/orders", c.base_url())).await;
    assert_eq!(first, same);
    assert_ne!(first["orders"], other["orders"]);
    assert_eq!(first["count"], json!(ORDER_COUNT));
    let orders = first["orders"].as_array().expect("orders");
    assert_eq!(orders[0]["id"], json!("o-1001"));
    let lumber: Vec<&Value> = orders
        .iter()
        .filter(|o| o["customer"] == json!(LUMBER_YARD))
        .collect();
    assert_eq!(lumber.len(), 1);
    assert!(
        lumber[0]["window"]["from"]
            .as_str()
            .unwrap_or("")
            .contains("T10:00:00")
    );
    for o in orders {
        let driver = o["driver"].as_str().expect("driver");
        let n: u32 = driver
            .trim_start_matches("d-")
            .parse()
            .expect("driver number");
        assert!((1..=47).contains(&n), "{driver}");
        let zone = o["zone"].as_str().expect("zone");
        assert!(["north", "east", "south", "west", "rural"].contains(&zone));
    }
}

#[tokio::test]
async fn legacy_orders_are_last_nights_and_miss_todays_cancellations() {
    let sim = still_sim(2).await;
    let base = sim.base_url();
    let (_, order) = get(&format!("{base}/orders/orders/o-1010")).await;
    assert_eq!(order["as_of"], json!("2026-11-23T00:00:00-05:00"));
    assert_eq!(order["status"], json!("open"));

    sim.advance(4 * 3600); // 10:00
    let (status, cancelled) = post(
        &format!("{base}/portal/orders/o-1010/cancel"),
        None,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["changed"], json!(true));
    let (_, portal) = get(&format!("{base}/portal/orders/o-1010")).await;
    assert_eq!(portal["status"], json!("cancelled"));
    assert_eq!(portal["as_of"], json!("2026-11-23T10:00:00-05:00"));
    assert_eq!(portal["cancelled_at"], json!("2026-11-23T10:00:00-05:00"));

    let (_, legacy) = get(&format!("{base}/orders/orders/o-1010")).await;
    assert_eq!(
        legacy["status"],
        json!("open"),
        "the export does not know yet"
    );
    assert_eq!(legacy["as_of"], json!("2026-11-23T00:00:00-05:00"));
    let (status, _) = get(&format!("{base}/orders/orders/o-9999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(sim.ledger()["portal"]["cancel:o-1010"]["applied"], json!(1));
}

#[tokio::test]
async fn the_optimizer_accepts_then_finishes_after_the_clock_moves() {
    let sim = still_sim(3).await;
    let base = sim.base_url();
    let resp = common::client()
        .post(format!("{base}/optimizer/plans"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with("/optimizer/plans/p-"), "{location}");
    let (_, body) = common::read(resp).await;
    assert_eq!(body["status"], json!("running"));
    assert_eq!(body["statusUrl"], json!(format!("{base}{location}")));

    let (_, running) = get(&format!("{base}{location}")).await;
    assert_eq!(running["status"], json!("running"));
    sim.advance(1);
    assert_eq!(
        get(&format!("{base}{location}")).await.1["status"],
        json!("running")
    );
    sim.advance(14);
    let (_, done) = get(&format!("{base}{location}")).await;
    assert_eq!(done["status"], json!("done"));

    // The raw plan knows none of the hard rules.
    let routes = done["plan"]["routes"].as_array().expect("routes");
    let raw_eta = lumber_eta(routes);
    assert!(raw_eta.contains("T14:15:00"), "{raw_eta}");
    assert!(
        routes
            .iter()
            .any(|r| r["rural"] == json!(true) && stops(r) > 6)
    );
    assert!(
        routes
            .iter()
            .any(|r| r["hours"].as_f64().unwrap_or(0.0) > 10.0)
    );
    let planned: usize = routes.iter().map(stops).sum();
    assert_eq!(planned, ORDER_COUNT);

    // Told the rules, it keeps them.
    let rules = json!({"rules": ["driver-hours", "lumber-yard-window", "rural-stops"]});
    let (status, ruled) = post(&format!("{base}/optimizer/plans"), None, rules).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    sim.advance(15);
    let (_, done) = get(ruled["statusUrl"].as_str().expect("statusUrl")).await;
    assert_eq!(done["status"], json!("done"));
    let routes = done["plan"]["routes"].as_array().expect("routes");
    let eta = lumber_eta(routes);
    assert!(eta.contains("T10:") || eta.contains("T11:0"), "{eta}");
    assert!(
        routes
            .iter()
            .all(|r| r["rural"] == json!(false) || stops(r) <= 6)
    );
    assert!(
        routes
            .iter()
            .all(|r| r["hours"].as_f64().unwrap_or(99.0) <= 10.0)
    );

    let (status, _) = post(
        &format!("{base}/optimizer/plans"),
        None,
        json!({"rules": ["be-nice"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(&format!("{base}/optimizer/plans/p-404")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn stops(route: &Value) -> usize {
    route["stops"].as_array().map_or(0, Vec::len)
}

fn lumber_eta(routes: &[Value]) -> String {
    routes
        .iter()
        .flat_map(|r| r["stops"].as_array().cloned().unwrap_or_default())
        .find(|s| s["customer"] == json!(LUMBER_YARD))
        .map(|s| s["eta"].as_str().unwrap_or("").to_string())
        .expect("the lumber yard is planned")
}

#[tokio::test]
async fn gps_positions_lag_and_a_silent_truck_stops_reporting() {
    let sim = still_sim(4).await;
    let base = sim.base_url();
    let now = json!(sim.now());
    for truck in ["t-01", "t-23", "t-47"] {
        let (_, p) = get(&format!("{base}/gps/trucks/{truck}/position")).await;
        assert_eq!(p["truck"], json!(truck));
        assert!(p["lat"].is_f64() && p["lon"].is_f64());
        let age = seconds_between(&p["observed_at"], &now);
        assert!((5.0..=120.0).contains(&age), "{truck} is {age} s old");
    }
    sim.control(
        "gps",
        Faults {
            silent: Some(vec!["t-05".into()]),
            ..Faults::default()
        },
    );
    let url = format!("{base}/gps/trucks/t-05/position");
    let (_, before) = get(&url).await;
    sim.advance(600);
    let (_, after) = get(&url).await;
    assert_eq!(before["observed_at"], after["observed_at"]);
    assert_eq!(
        (before["lat"].clone(), before["lon"].clone()),
        (after["lat"].clone(), after["lon"].clone())
    );
    assert!(seconds_between(&after["observed_at"], &json!(sim.now())) >= 600.0);
    let (status, _) = get(&format!("{base}/gps/trucks/t-48/position")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, all) = get(&format!("{base}/gps/trucks")).await;
    assert_eq!(all["trucks"].as_array().map(Vec::len), Some(47));
}

#[tokio::test]
async fn inventory_stock_is_old_or_live_and_reservations_reconcile() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let (_, nightly) = get(&format!("{base}/inventory/stock/store-01")).await;
    assert_eq!(nightly["source"], json!("nightly-export"));
    assert_eq!(nightly["as_of"], json!("2026-11-23T00:00:00-05:00"));
    let (_, live) = get(&format!("{base}/inventory/stock/store-02")).await;
    assert_eq!(live["source"], json!("live"));
    assert_eq!(live["as_of"], json!(sim.now()));

    // A reservation shows in live stock at once and never in the export.
    let sku = live["stock"]
        .as_object()
        .and_then(|m| m.iter().find(|(_, q)| q.as_u64().unwrap_or(0) >= 3))
        .map(|(k, _)| k.clone())
        .expect("a stocked sku");
    let before = live["stock"][&sku].as_u64().unwrap_or(0);
    let body = json!({"store": "store-02", "sku": sku, "qty": 3});
    let (status, r) = post(
        &format!("{base}/inventory/reservations"),
        Some("res-1"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(r["status"], json!("held"));
    let (_, live) = get(&format!("{base}/inventory/stock/store-02")).await;
    assert_eq!(live["stock"][&sku], json!(before - 3));
    let (status, found) = get(&format!("{base}/inventory/reservations/res-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["applied"], json!(true));
    let (status, missing) = get(&format!("{base}/inventory/reservations/res-2")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["applied"], json!(false));

    let too_much = json!({"store": "store-02", "sku": sku, "qty": 100_000});
    let (status, _) = post(
        &format!("{base}/inventory/reservations"),
        Some("res-3"),
        too_much,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(sim.ledger()["inventory"]["res-3"]["applied"], json!(0));
}

#[tokio::test]
async fn refunds_by_hand_and_by_api_are_all_listed() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let (status, manual) = post(
        &format!("{base}/payments/refunds/manual"),
        None,
        json!({"order": "o-1020", "amount": 40}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(manual["by"], json!("hand"));
    let (status, api) = post(
        &format!("{base}/payments/refunds"),
        Some("refund-1"),
        json!({"order": "o-1020", "amount": 2.5}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(api["by"], json!("api"));
    let (_, listed) = get(&format!("{base}/payments/refunds?order=o-1020")).await;
    assert_eq!(listed["refunds"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["total"], json!(42.5));
    assert!(listed["as_of"].is_string());
    let (_, none) = get(&format!("{base}/payments/refunds?order=o-1021")).await;
    assert_eq!(none["refunds"], json!([]));
    let (status, _) = get(&format!("{base}/payments/refunds")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_clock_runs_from_the_start_and_advances_by_hand() {
    let sim = Sim::start(SimOptions {
        seed: 1,
        speed: 0.0,
        start: Some("2026-11-27T12:10:00-05:00".into()),
    })
    .await
    .expect("sim");
    let base = sim.base_url();
    let (_, clock) = get(&format!("{base}/clock")).await;
    assert_eq!(
        clock,
        json!({"now": "2026-11-27T12:10:00-05:00", "speed": 0.0})
    );
    let (status, moved) = post(
        &format!("{base}/clock/advance"),
        None,
        json!({"seconds": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(moved["now"], json!("2026-11-27T13:10:00-05:00"));
    let (_, index) = get(&format!("{base}/")).await;
    assert_eq!(
        index["providers"]["carrier"],
        json!(format!("{base}/carrier"))
    );

    let bad = Sim::start(SimOptions {
        start: Some("noon".into()),
        ..SimOptions::default()
    })
    .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn the_warehouse_by_nature_drops_some_picks_it_accepted() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let mut dropped = Vec::new();
    for i in 0..40 {
        let key = format!("pick-{i}");
        let (status, accepted) = post(
            &format!("{base}/warehouse/picks"),
            Some(&key),
            json!({"order": "o-1030"}),
        )
        .await;
        assert_eq!(
            (status, accepted["accepted"].clone()),
            (StatusCode::OK, json!(true))
        );
        let (status, _) = get(&format!("{base}/warehouse/picks/{key}")).await;
        if status == StatusCode::NOT_FOUND {
            dropped.push(key);
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert!(!dropped.is_empty() && dropped.len() < 20, "{dropped:?}");
    let ledger = sim.ledger();
    for (key, entry) in ledger["warehouse"].as_object().expect("warehouse") {
        let expected = if dropped.contains(key) { 0 } else { 1 };
        assert_eq!(entry["applied"], json!(expected), "{key}");
    }
}

#[tokio::test]
async fn the_binary_prints_its_url_and_providers_and_serves() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_baton-sim"))
        .args([
            "--port",
            "0",
            "--seed",
            "3",
            "--speed",
            "0",
            "--start",
            baton_sim::DEFAULT_START,
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("baton-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = lines
        .next_line()
        .await
        .expect("read")
        .expect("a first line");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    for provider in baton_sim::PROVIDERS {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("a provider line");
        assert!(line.starts_with(provider), "{line}");
        assert!(line.contains(&format!("{base}/{provider}")), "{line}");
    }
    let (status, clock) = get(&format!("{base}/clock")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clock["now"], json!(baton_sim::DEFAULT_START));
    child.kill().await.expect("stop the child started here");
}

#[tokio::test]
async fn a_charge_applies_once_and_a_refund_that_names_it_compensates_it() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let charge = json!({"order": "o-1001", "amount": 84.5});
    let (status, first) = post(
        &format!("{base}/payments/charges"),
        Some("ch-k1"),
        charge.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = post(&format!("{base}/payments/charges"), Some("ch-k1"), charge).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, again);
    let (status, found) = get(&format!("{base}/payments/charges/ch-k1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["charge"]["amount"], json!(84.5));
    let (status, _) = get(&format!("{base}/payments/charges/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let refund = json!({"order": "o-1001", "amount": 84.5, "charge": "ch-k1"});
    for _ in 0..2 {
        let (status, _) = post(
            &format!("{base}/payments/refunds"),
            Some("rf-k1"),
            refund.clone(),
        )
        .await;
        assert!(status.is_success());
    }
    let ledger = sim.ledger();
    assert_eq!(ledger["payments"]["ch-k1"]["applied"], json!(1), "{ledger}");
    assert_eq!(
        ledger["payments"]["ch-k1"]["compensated"],
        json!(1),
        "{ledger}"
    );
    let (_, refunds) = get(&format!("{base}/payments/refunds?order=o-1001")).await;
    assert_eq!(refunds["total"], json!(84.5), "one refund: {refunds}");
}
