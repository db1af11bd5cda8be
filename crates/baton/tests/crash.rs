//! Durability across kill -9: a real `baton run` process is killed while a call is in flight;
//! `baton resume` finishes the instance, and the fake provider's ledger shows every idempotency
//! key applied exactly once (the in-flight call was re-sent with the same key).

use std::process::{Command, Stdio};

use serde_json::Value;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_flow_then_resume_applies_each_effect_once() {
    let server = baton_testkit::FakeServer::start().await;
    let base = server.base_url();
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("reserve.yaml");
    // Three effects; each answer takes 400 ms, so the kill lands while the second is in flight.
    std::fs::write(
        &flow,
        format!(
            "document: {{dsl: '1.0.3', namespace: test, name: reserve, version: '1.0.0'}}
do:
  - first:
      call: http
      with: {{method: post, endpoint: '{base}/ledger/effects?delay_ms=400', body: {{step: 1}}}}
      output: {{as: '${{ {{first: .applied}} }}'}}
  - second:
      call: http
      with: {{method: post, endpoint: '{base}/ledger/effects?delay_ms=400', body: {{step: 2}}}}
      output: {{as: '${{ $input + {{second: .applied}} }}'}}
  - third:
      call: http
      with: {{method: post, endpoint: '{base}/ledger/effects?delay_ms=400', body: {{step: 3}}}}
      output: {{as: '${{ $input + {{third: .applied}} }}'}}
"
        ),
    )
    .unwrap();
    let db = dir.path().join("baton.db");

    let mut child = baton()
        .args([
            "run",
            flow.to_str().unwrap(),
            "--store",
            db.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (on the provider's own request counter, not a timer) until the second request has
    // reached the provider, which holds its answer for 400 ms; kill the run without warning then.
    let mut requests = server.ledger_requests();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        requests.wait_for(|n| *n >= 2),
    )
    .await
    .expect("the run never sent its second request")
    .unwrap();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run must have been killed, not finished"
    );
    let out = baton()
        .args(["instances", "--store", db.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        listed[0]["status"], "running",
        "the killed instance is unfinished in the store"
    );

    let out = baton()
        .args(["resume", "--store", db.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "resume failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{id} completed")),
        "resume output: {stdout}"
    );

    let out = baton()
        .args(["show", &id, "--store", db.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["instance"]["status"], "completed");
    assert_eq!(
        shown["instance"]["output"],
        serde_json::json!({"first": 1, "second": 1, "third": 1})
    );

    let report: Value = server.ledger_report();
    let keys = report["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 3, "three distinct effects: {report}");
    for (key, v) in keys {
        assert_eq!(
            v["applied"], 1,
            "effect {key} applied more than once: {report}"
        );
    }
    // The second call was in flight at the kill: it was sent again, with the same key.
    assert!(
        keys.values().any(|v| v["seen"].as_u64().unwrap_or(0) >= 2),
        "the in-flight call was not re-sent: {report}"
    );
}
