//! Control, faults, rate limits and the ledger, over real HTTP.

mod common;

use std::time::Duration;

use baton_sim::Faults;
use common::{client, client_with_timeout, get, post, read, still_sim};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

#[tokio::test]
async fn an_idempotent_post_applies_once_per_key() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let cases = [
        (
            "carrier",
            "/carrier/bookings",
            json!({"order": "o-1001", "pallets": 3}),
        ),
        (
            "inventory",
            "/inventory/reservations",
            json!({"store": "store-02", "sku": "sku-drywall", "qty": 1}),
        ),
        (
            "payments",
            "/payments/refunds",
            json!({"order": "o-1002", "amount": 12.5}),
        ),
        (
            "notify",
            "/notify/messages",
            json!({"to": "d-07", "text": "new stop"}),
        ),
        ("optimizer", "/optimizer/plans", json!({})),
    ];
    for (provider, path, body) in cases {
        let key = format!("{provider}-k1");
        let url = format!("{base}{path}");
        let (first_status, first) = post(&url, Some(&key), body.clone()).await;
        assert!(
            first_status.is_success(),
            "{provider}: {first_status} {first}"
        );
        let (again_status, again) = post(&url, Some(&key), body.clone()).await;
        assert!(again_status.is_success(), "{provider}: {again_status}");
        assert_eq!(
            first, again,
            "{provider}: a repeated key answers the first result"
        );
        let entry = &sim.ledger()[provider][&key];
        assert_eq!(entry["applied"], json!(1), "{provider}: {entry}");
        assert_eq!(entry["requests"], json!(2), "{provider}: {entry}");
        // A different key is a different effect.
        let (status, _) = post(&url, Some(&format!("{provider}-k2")), body).await;
        assert!(status.is_success());
        assert_eq!(
            sim.ledger()[provider][format!("{provider}-k2")]["applied"],
            json!(1)
        );
    }
    // The first answer is 201 (created) and the repeat 200 where the provider creates things.
    let (status, _) = post(
        &format!("{base}/carrier/bookings"),
        Some("fresh"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post(
        &format!("{base}/carrier/bookings"),
        Some("fresh"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cancelling_and_releasing_compensate_once() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    post(&format!("{base}/carrier/bookings"), Some("b"), json!({})).await;
    let (status, first) = common::delete(&format!("{base}/carrier/bookings/b")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["changed"], json!(true));
    let (status, second) = common::delete(&format!("{base}/carrier/bookings/b")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["changed"], json!(false));
    let (_, found) = get(&format!("{base}/carrier/bookings/b")).await;
    assert_eq!(found["booking"]["status"], json!("cancelled"));
    assert_eq!(sim.ledger()["carrier"]["b"]["compensated"], json!(1));
    let (status, _) = common::delete(&format!("{base}/carrier/bookings/never")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let body = json!({"store": "store-02", "sku": "sku-cement", "qty": 2});
    post(&format!("{base}/inventory/reservations"), Some("r"), body).await;
    for changed in [true, false] {
        let (status, answer) = common::delete(&format!("{base}/inventory/reservations/r")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["changed"], json!(changed), "{answer}");
    }
    let entry = &sim.ledger()["inventory"]["r"];
    assert_eq!(
        (entry["applied"].clone(), entry["compensated"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn the_carrier_answers_429_with_retry_after_above_thirty_a_second() {
    let sim = still_sim(1).await;
    let url = format!("{}/carrier/bookings", sim.base_url());
    let burst = 45;
    let http = client();
    let mut calls = JoinSet::new();
    for i in 0..burst {
        let req = http
            .post(&url)
            .header("Idempotency-Key", format!("burst-{i}"))
            .json(&json!({"order": "o-1003"}));
        calls.spawn(async move {
            let resp = req.send().await.expect("request");
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_string());
            (i, resp.status(), retry_after)
        });
    }
    let mut created = Vec::new();
    let mut refused = Vec::new();
    while let Some(done) = calls.join_next().await {
        let (i, status, retry_after) = done.expect("task");
        match status {
            StatusCode::CREATED => created.push(i),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused.push(i);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "45 requests at once must exceed 30 a second"
    );
    assert!(created.len() >= 30, "the first 30 of a second are admitted");
    let ledger = sim.ledger();
    for i in &created {
        assert_eq!(ledger["carrier"][format!("burst-{i}")]["applied"], json!(1));
    }
    for i in &refused {
        assert!(
            ledger["carrier"].get(format!("burst-{i}")).is_none(),
            "a 429 applies nothing"
        );
    }
    assert_eq!(sim.request_count("carrier"), burst);
    assert_eq!(sim.arrivals_ms("carrier").len(), 45);
    let (_, stats) = get(&format!("{}/stats", sim.base_url())).await;
    assert_eq!(stats["carrier"]["sent_429"], json!(refused.len()));
}

#[tokio::test]
async fn a_timeout_after_apply_leaves_an_effect_to_reconcile() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    sim.control(
        "carrier",
        Faults {
            timeout_after_apply: Some(1.0),
            hang_ms: Some(5_000),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let mut applied = sim.subscribe_ledger();
    let impatient = client_with_timeout(Some(Duration::from_millis(200)));
    let err = impatient
        .post(format!("{base}/carrier/bookings"))
        .header("Idempotency-Key", "lost-answer")
        .json(&json!({"order": "o-1004"}))
        .send()
        .await
        .expect_err("the answer never comes");
    assert!(err.is_timeout(), "{err}");
    // The effect is applied before the connection is held; wait for it rather than for time.
    applied.wait_for(|n| *n >= 1).await.expect("ledger");
    assert_eq!(sim.ledger()["carrier"]["lost-answer"]["applied"], json!(1));

    let (status, reconciled) = get(&format!("{base}/carrier/bookings/lost-answer")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reconciled["applied"], json!(true));
    // A re-send with the same key gets the booking that was made, and makes no other.
    let (status, again) = post(
        &format!("{base}/carrier/bookings"),
        Some("lost-answer"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["booking_id"], reconciled["booking"]["booking_id"]);
    assert_eq!(sim.ledger()["carrier"]["lost-answer"]["applied"], json!(1));

    let (status, missing) = get(&format!("{base}/carrier/bookings/never-sent")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["applied"], json!(false));
}

#[tokio::test]
async fn a_held_connection_is_dropped_without_an_answer() {
    let sim = still_sim(1).await;
    sim.control(
        "inventory",
        Faults {
            timeout_after_apply: Some(1.0),
            hang_ms: Some(300),
            ..Faults::default()
        },
    );
    let err = client()
        .post(format!("{}/inventory/reservations", sim.base_url()))
        .header("Idempotency-Key", "held")
        .json(&json!({"store": "store-02", "sku": "sku-cement", "qty": 1}))
        .send()
        .await
        .expect_err("dropped, not answered");
    assert!(!err.is_timeout(), "{err}");
    assert!(err.status().is_none(), "no status was sent: {err}");
    assert_eq!(sim.ledger()["inventory"]["held"]["applied"], json!(1));
    // Reads are not effects: they are answered.
    let (status, found) = get(&format!("{}/inventory/reservations/held", sim.base_url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["applied"], json!(true));
}

#[tokio::test]
async fn faults_given_for_n_calls_clear_after_them() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let (status, set) = post(
        &format!("{base}/control/gps"),
        None,
        json!({"rate_5xx": 1.0, "calls": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let url = format!("{base}/gps/trucks/t-01/position");
    for _ in 0..2 {
        assert_eq!(get(&url).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, position) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(position["truck"], json!("t-01"));
    let (_, control) = get(&format!("{base}/control")).await;
    assert_eq!(control["gps"], json!({}));
    let (_, stats) = get(&format!("{base}/stats")).await;
    assert_eq!(stats["gps"]["sent_5xx"], json!(2));
    assert_eq!(stats["gps"]["requests"], json!(3));
}

#[tokio::test]
async fn certain_faults_are_certain_and_delete_clears_them() {
    let sim = still_sim(9).await;
    let base = sim.base_url();
    let url = format!("{base}/orders/orders/o-1001");
    post(
        &format!("{base}/control/orders"),
        None,
        json!({"rate_5xx": 1.0}),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(get(&url).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    post(
        &format!("{base}/control/orders"),
        None,
        json!({"rate_5xx": 0.0, "rate_429": 0.0}),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(get(&url).await.0, StatusCode::OK);
    }
    post(
        &format!("{base}/control/orders"),
        None,
        json!({"rate_429": 1.0, "retry_after_s": 7}),
    )
    .await;
    let resp = client().get(&url).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    let (_, control) = get(&format!("{base}/control")).await;
    assert_eq!(
        control["orders"],
        json!({"rate_429": 1.0, "retry_after_s": 7})
    );
    let (status, _) = common::delete(&format!("{base}/control/orders")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(&url).await.0, StatusCode::OK);
}

#[tokio::test]
async fn control_refuses_unknown_providers_and_bad_faults() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    let (status, _) = post(&format!("{base}/control/sla"), None, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = post(
        &format!("{base}/control/carrier"),
        None,
        json!({"rate_5xx": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("rate_5xx"),
        "{problem}"
    );
    let (status, _) = post(
        &format!("{base}/control/carrier"),
        None,
        json!({"rate_500": 1}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fault names are refused"
    );
}

#[tokio::test]
async fn a_malformed_answer_lacks_the_contract_and_stale_data_is_old() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    sim.control(
        "gps",
        Faults {
            malformed: Some(1.0),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let url = format!("{base}/gps/trucks/t-02/position");
    let (status, garbage) = get(&url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(garbage, json!({"malformed": true}));

    sim.control(
        "gps",
        Faults {
            stale_s: Some(3_600),
            ..Faults::default()
        },
    );
    let (_, clock) = get(&format!("{base}/clock")).await;
    let (_, stale) = get(&url).await;
    assert!(common::seconds_between(&stale["observed_at"], &clock["now"]) >= 3_600.0);
}

#[tokio::test]
async fn requests_are_counted_on_arrival_before_latency() {
    let sim = still_sim(1).await;
    sim.control(
        "notify",
        Faults {
            latency_ms: Some(60_000),
            ..Faults::default()
        },
    );
    let mut arrived = sim.subscribe_requests();
    let url = format!("{}/notify/messages", sim.base_url());
    let slow = tokio::spawn(async move {
        client()
            .post(url)
            .json(&json!({"to": "d-01", "text": "hi"}))
            .send()
            .await
            .map(|r| r.status())
    });
    arrived.wait_for(|n| *n >= 1).await.expect("watch");
    assert_eq!(sim.request_count("notify"), 1);
    assert_eq!(sim.arrivals_ms("notify").len(), 1);
    assert!(!slow.is_finished(), "the answer is still a minute away");
    assert_eq!(
        sim.ledger()["notify"],
        json!({}),
        "nothing is applied during the latency"
    );
    slow.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn the_warehouse_can_accept_a_pick_without_doing_it() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    sim.control(
        "warehouse",
        Faults {
            lie: Some(true),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let (status, accepted) = post(
        &format!("{base}/warehouse/picks"),
        Some("w1"),
        json!({"order": "o-1005"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(accepted["accepted"], json!(true));
    let (status, found) = get(&format!("{base}/warehouse/picks/w1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(found["exists"], json!(false));
    let entry = &sim.ledger()["warehouse"]["w1"];
    assert_eq!(
        (entry["applied"].clone(), entry["requests"].clone()),
        (json!(0), json!(1))
    );

    // Told the truth again, a retry with the same key is done: queued, then completed at the
    // next quarter hour. (Nature still drops a seeded tenth; seed 1 keeps this one.)
    let (status, _) = post(
        &format!("{base}/warehouse/picks"),
        Some("w1"),
        json!({"order": "o-1005"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, found) = get(&format!("{base}/warehouse/picks/w1")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["pick"]["status"], json!("queued"));
    sim.advance(15 * 60);
    let (_, found) = get(&format!("{base}/warehouse/picks/w1")).await;
    assert_eq!(found["pick"]["status"], json!("completed"));
    assert_eq!(sim.ledger()["warehouse"]["w1"]["applied"], json!(1));
}

#[tokio::test]
async fn verify_answers_null_verdicts_when_told() {
    let sim = still_sim(1).await;
    let url = format!("{}/verify/addresses", sim.base_url());
    let (status, fine) = post(
        &url,
        None,
        json!({"address": "12 Elm St, Dublin, OH 43017"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(fine["verdict"].is_string(), "{fine}");
    let (_, po_box) = post(&url, None, json!({"address": "PO Box 9, Dublin, OH"})).await;
    assert_eq!(po_box["verdict"], json!("undeliverable"));
    sim.control(
        "verify",
        Faults {
            null_rate: Some(1.0),
            ..Faults::default()
        },
    );
    let (status, unsure) = post(
        &url,
        None,
        json!({"address": "12 Elm St, Dublin, OH 43017"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unsure["verdict"], Value::Null);
    assert!(unsure["as_of"].is_string());
    let (status, _) = read(client().post(&url).body("{").send().await.expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_held_effect_waits_for_the_gate_and_a_large_load_is_refused() {
    let sim = still_sim(1).await;
    let base = sim.base_url();
    sim.control(
        "carrier",
        Faults {
            hold: Some(true),
            calls: Some(1),
            ..Faults::default()
        },
    );
    let mut arrivals = sim.subscribe_requests();
    let url = format!("{base}/carrier/bookings");
    let booking = tokio::spawn(async move {
        post(
            &url,
            Some("held-1"),
            json!({"order": "o-1001", "pallets": 4}),
        )
        .await
    });
    tokio::time::timeout(Duration::from_secs(30), arrivals.wait_for(|n| *n >= 1))
        .await
        .expect("the booking arrives")
        .expect("watch");
    // Arrived and held: nothing is booked until the gate opens.
    assert!(sim.ledger()["carrier"].get("held-1").is_none());
    let reads = reqwest::get(format!("{base}/carrier/bookings/held-1"))
        .await
        .expect("a read is not held");
    assert_eq!(reads.status(), StatusCode::NOT_FOUND);
    sim.control("carrier", Faults::default());
    let (status, body) = booking.await.expect("join");
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(sim.ledger()["carrier"]["held-1"]["applied"], json!(1));

    let (status, body) = post(
        &format!("{base}/carrier/bookings"),
        Some("big-1"),
        json!({"order": "o-1002", "pallets": 30}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(sim.ledger()["carrier"]["big-1"]["applied"], json!(0));
}
