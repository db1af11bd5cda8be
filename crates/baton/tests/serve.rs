//! `baton serve` as a real process: an instance started through the API and waiting for an
//! approval survives a kill -9 of the server; after a restart the approval is answered through
//! the API, the instance completes, and the idempotent start still returns the same instance.
//! A SIGTERM shuts the server down cleanly.

mod common;

use std::process::Command;

use common::Server;

use serde_json::{Value, json};

const CONFIG: &str = "
tokens:
  - { name: olu, token: t-operator, roles: [operator] }
  - { name: dana, token: t-dispatcher, roles: [approver], groups: [dispatchers] }
";

const FLOW: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: reroute, version: '1.0.0' }
do:
  - ask:
      call: approval
      with:
        title: Reroute ord-1
        instance: ${ $workflow.id }
        assignees: [ 'group:dispatchers' ]
        data: { driver: drv-17 }
        window: PT2H
        due: { fixed: PT30M }
  - done:
      set: { approved: '${ .approved }', by: '${ .by }' }
"#;

/// Starts `baton serve` on a free port and returns once it says where it listens.
fn serve(dir: &std::path::Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.args([
        "serve",
        "--store",
        dir.join("baton.db").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--flows",
        dir.join("flows").to_str().unwrap(),
        "--config",
        dir.join("server.yaml").to_str().unwrap(),
    ]);
    common::serve(cmd)
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = http
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls until `done` holds (bounded; the server works on its own).
async fn until(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..3_000 {
        let (_, v) = call(http, "GET", url, token, None, None).await;
        if done(&v) {
            return v;
        }
        tokio::task::yield_now().await;
    }
    panic!("{url} never reached the expected state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_waiting_for_approval_survives_kill_9_of_the_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/reroute.yaml"), FLOW).unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let http = reqwest::Client::new();

    let mut first = serve(dir.path());
    let (status, started) = call(
        &http,
        "POST",
        &format!("{}/v1/instances", first.base),
        "t-operator",
        Some(json!({"flow": "reroute"})),
        Some("ord-1-reroute"),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let inbox = until(
        &http,
        &format!("{}/v1/approvals?mine=true", first.base),
        "t-dispatcher",
        |p| p["items"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let task = inbox["items"][0]["id"].as_str().unwrap().to_string();

    first.child.kill().unwrap(); // SIGKILL
    assert!(!first.child.wait().unwrap().success());

    let mut second = serve(dir.path());
    let (status, again) = call(
        &http,
        "POST",
        &format!("{}/v1/instances", second.base),
        "t-operator",
        Some(json!({"flow": "reroute"})),
        Some("ord-1-reroute"),
    )
    .await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(id.as_str())),
        "the key survived the kill"
    );
    let (status, answered) = call(
        &http,
        "POST",
        &format!("{}/v1/approvals/{task}/approve", second.base),
        "t-dispatcher",
        Some(json!({"reason": "ok after restart"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answered}");
    let detail = until(
        &http,
        &format!("{}/v1/instances/{id}", second.base),
        "t-operator",
        |d| d["instance"]["status"] == "completed",
    )
    .await;
    assert_eq!(
        detail["instance"]["output"],
        json!({"approved": true, "by": "dana"})
    );

    // SIGTERM: the server finishes and exits cleanly.
    let pid = second.child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let exit = second.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}
