//! Story 10, the director's favourite, end to end: a real `baton serve` (with the override
//! policy in its configuration) runs examples/maplewood/director-override.yaml against the
//! Maplewood simulator. The director overrides the proposed route to put a favourite customer
//! first; the policy refuses a reasonless override, a dispatcher's override and a viewer's; a
//! second approver is required and must be another person with the fleet managers' group; a
//! refusal leaves the task open; once confirmed, the instance goes on with the overridden route
//! and works out the delay for the other stops. The decision records show the original and the
//! replacement with who and why, the override report lists it with its cost, the JSON Lines
//! export parses line by line, and the CLI prints the same from the server and from the store.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Server;

use baton_sim::{Sim, SimOptions};
use serde_json::{Value, json};

const CONFIG: &str = "
tokens:
  - { name: olu, token: t-operator, roles: [operator] }
  - { name: dana, token: t-dispatcher, roles: [approver], groups: [dispatchers] }
  - { name: rhea, token: t-director, roles: [approver], groups: [directors] }
  - { name: ray, token: t-director-2, roles: [approver], groups: [directors] }
  - { name: finn, token: t-fleet, roles: [approver], groups: [fleet-managers] }
  - { name: vic, token: t-viewer, roles: [viewer] }
overrides:
  - flow: maplewood/director-override
    decision: route
    allow: [ 'group:directors' ]
    second_approver: [ 'group:fleet-managers' ]
";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts `baton serve` from the repository root (the flow names its DMN model by a path from
/// there) and returns once it says where it listens.
fn serve(dir: &Path, sim_url: &str) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.current_dir(root())
        .env("MAPLEWOOD_URL", sim_url)
        .env_remove("BATON_PROVIDERS")
        .env_remove("BATON_ADMIN_TOKEN")
        .args([
            "serve",
            "--store",
            dir.join("baton.db").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--flows",
            dir.join("flows").to_str().unwrap(),
            "--config",
            dir.join("server.yaml").to_str().unwrap(),
            "--providers",
            "examples/maplewood/providers.yaml",
            "--secrets",
            "examples/maplewood/secrets.yaml",
        ]);
    common::serve(cmd)
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls a GET until `done` holds, for at most a minute (the optimizer takes up to 14 s).
async fn until(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let poll = async {
        loop {
            let (_, v) = call(http, "GET", url, token, None).await;
            if done(&v) {
                return v;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), poll)
        .await
        .unwrap_or_else(|_| panic!("{url} never reached the expected state"))
}

/// Asserts a problem answer: status and stable code.
fn problem(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], json!(code), "{}", answer.1);
}

fn baton_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.current_dir(root())
        .env_remove("BATON_SERVER")
        .env_remove("BATON_STORE")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("baton runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directors_favourite_is_overridden_confirmed_costed_and_reported() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimOptions {
        start: Some("now".to_string()),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::copy(
        root().join("examples/maplewood/director-override.yaml"),
        dir.path().join("flows/director-override.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("server.yaml"), CONFIG).unwrap();
    let server = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let sim_url = sim.base_url();
        // Waiting for the server's first line blocks: off the runtime the simulator runs on.
        move || serve(&dir, &sim_url)
    })
    .await
    .unwrap();
    let base = server.base.clone();
    let http = reqwest::Client::new();

    // A route is proposed and waits for the dispatcher.
    let (status, started) = call(
        &http,
        "POST",
        &format!("{base}/v1/instances"),
        "t-operator",
        Some(json!({"flow": "director-override", "input": {}})),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let tasks = until(
        &http,
        &format!("{base}/v1/approvals?instance={id}&status=open"),
        "t-viewer",
        |v| v["items"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let task = tasks["items"][0].clone();
    let task_id = task["id"].as_str().unwrap().to_string();
    assert_eq!(task["decision"], json!("route"));
    let proposed = task["data"].clone();
    let stops = proposed["route"]["stops"].as_array().unwrap().clone();
    assert!(stops.len() >= 2, "a route with several stops: {proposed}");
    // The favourite customer's stop is the last one; the director puts it first.
    let favourite = stops.last().unwrap().clone();
    let mut reordered = vec![favourite.clone()];
    reordered.extend(stops[..stops.len() - 1].iter().cloned());
    let mut replacement = proposed.clone();
    replacement["route"]["stops"] = json!(reordered);
    let override_url = format!("{base}/v1/approvals/{task_id}/override");
    let reason = format!(
        "{} is our oldest customer: first delivery of the day",
        favourite["customer"].as_str().unwrap()
    );

    // An override needs a reason.
    let no_reason = call(
        &http,
        "POST",
        &override_url,
        "t-director",
        Some(json!({"output": replacement, "reason": "  "})),
    )
    .await;
    problem(&no_reason, 422, "BATON-API-018");
    let missing_reason = call(
        &http,
        "POST",
        &override_url,
        "t-director",
        Some(json!({"output": replacement})),
    )
    .await;
    problem(&missing_reason, 422, "BATON-API-018");
    // The dispatcher is assigned but the policy lets only directors override routes.
    let dispatcher = call(
        &http,
        "POST",
        &override_url,
        "t-dispatcher",
        Some(json!({"output": replacement, "reason": "I would like to"})),
    )
    .await;
    problem(&dispatcher, 403, "BATON-API-014");
    assert!(
        dispatcher.1["detail"]
            .as_str()
            .unwrap()
            .contains("group:directors")
    );
    // A viewer may not answer at all.
    let viewer = call(
        &http,
        "POST",
        &override_url,
        "t-viewer",
        Some(json!({"output": replacement, "reason": "curious"})),
    )
    .await;
    problem(&viewer, 403, "BATON-API-002");

    // First attempt: the director asks, the fleet manager refuses; the task stays open.
    let asked = call(
        &http,
        "POST",
        &override_url,
        "t-director",
        Some(json!({"output": replacement, "reason": "because I say so"})),
    )
    .await;
    assert_eq!(asked.0, 202, "{}", asked.1);
    assert_eq!(asked.1["status"], json!("open"));
    assert_eq!(asked.1["pending_override"]["by"], json!("rhea"));
    let refuse_url = format!("{base}/v1/approvals/{task_id}/override/refuse");
    problem(
        &call(&http, "POST", &refuse_url, "t-fleet", Some(json!({}))).await,
        422,
        "BATON-API-018",
    );
    let refused = call(
        &http,
        "POST",
        &refuse_url,
        "t-fleet",
        Some(json!({"reason": "not a reason"})),
    )
    .await;
    assert_eq!(refused.0, 200, "{}", refused.1);
    assert_eq!(refused.1["status"], json!("open"));
    assert!(refused.1.get("pending_override").is_none());
    assert_eq!(
        refused.1["refused_overrides"][0]["refused_by"],
        json!("finn")
    );

    // Second attempt, with a real reason.
    let asked = call(
        &http,
        "POST",
        &override_url,
        "t-director",
        Some(json!({"output": replacement, "reason": reason})),
    )
    .await;
    assert_eq!(asked.0, 202, "{}", asked.1);
    // Until confirmed the instance waits and nobody else answers the task.
    let (_, inst) = call(
        &http,
        "GET",
        &format!("{base}/v1/instances/{id}"),
        "t-viewer",
        None,
    )
    .await;
    assert_eq!(inst["instance"]["status"], json!("waiting"), "{inst}");
    problem(
        &call(
            &http,
            "POST",
            &format!("{base}/v1/approvals/{task_id}/approve"),
            "t-dispatcher",
            None,
        )
        .await,
        409,
        "BATON-API-016",
    );
    // The second approver must be another person, and one the policy names.
    let confirm_url = format!("{base}/v1/approvals/{task_id}/override/confirm");
    problem(
        &call(&http, "POST", &confirm_url, "t-director", None).await,
        403,
        "BATON-API-015",
    );
    problem(
        &call(&http, "POST", &confirm_url, "t-director-2", None).await,
        403,
        "BATON-API-014",
    );
    let confirmed = call(
        &http,
        "POST",
        &confirm_url,
        "t-fleet",
        Some(json!({"reason": "customer agreement on file"})),
    )
    .await;
    assert_eq!(confirmed.0, 200, "{}", confirmed.1);
    assert_eq!(confirmed.1["verdict"], json!("overridden"));
    assert_eq!(confirmed.1["decided_by"], json!("rhea"));
    assert_eq!(confirmed.1["confirmed_by"], json!("finn"));
    problem(
        &call(&http, "POST", &confirm_url, "t-fleet", None).await,
        409,
        "BATON-API-017",
    );

    // The instance goes on with the overridden route and works out the delay for the others.
    let done = until(
        &http,
        &format!("{base}/v1/instances/{id}"),
        "t-viewer",
        |v| {
            v["instance"]["status"]
                .as_str()
                .is_some_and(|s| s != "waiting" && s != "running" && s != "pending")
        },
    )
    .await;
    assert_eq!(done["instance"]["status"], json!("completed"), "{done}");
    let output = &done["instance"]["output"];
    assert_eq!(output["verdict"], json!("overridden"));
    assert_eq!(output["route"], replacement["route"]);
    assert!(
        output["message"].is_string(),
        "the driver was told: {output}"
    );
    let cost = &output["override_cost"];
    let others = (stops.len() - 1) as u64;
    assert_eq!(cost["stops_delayed"], json!(others), "{cost}");
    assert_eq!(cost["delay_minutes"], json!(others * 40), "{cost}");
    // The driver was told once: the simulator's ledger has one notification, applied once.
    let ledger = sim.ledger();
    let notes = ledger["notify"].as_object().expect("notify in the ledger");
    assert_eq!(notes.len(), 1, "{ledger}");
    assert!(
        notes
            .values()
            .all(|e| e["applied"] == json!(1) && e["requests"] == json!(1)),
        "{ledger}"
    );

    // The decision records: the DMN review and the approval with its override.
    let (status, records) = call(
        &http,
        "GET",
        &format!("{base}/v1/instances/{id}/decisions"),
        "t-viewer",
        None,
    )
    .await;
    assert_eq!(status, 200, "{records}");
    let items = records["items"].as_array().unwrap();
    let rules = items
        .iter()
        .find(|r| r["kind"] == "rules")
        .expect("DMN record");
    assert_eq!(
        rules["decision"]["file"],
        json!("examples/maplewood/route-review.dmn")
    );
    assert_eq!(rules["decision"]["decision"], json!("Route review"));
    assert!(
        rules["decision"]["hash"]
            .as_str()
            .is_some_and(|h| h.len() == 32)
    );
    assert!(
        rules["rules"][0]["annotation"].as_str().is_some(),
        "{rules}"
    );
    let hours = rules["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "hours")
        .expect("the hours input");
    assert!(
        hours["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"] == "optimizer/plan" && s["kind"] == "provider"),
        "hours come from the optimizer's plan: {hours}"
    );
    assert!(
        rules["reads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["source"] == "orders/list" && r["age_ms"].as_u64().is_some()),
        "{rules}"
    );
    let approval = items
        .iter()
        .find(|r| r["kind"] == "approval")
        .expect("approval record");
    assert_eq!(approval["reviews"], rules["key"]);
    // The DMN record reads on its own: how its review went.
    assert_eq!(rules["review"]["verdict"], json!("overridden"));
    assert_eq!(rules["review"]["override"]["by"], json!("rhea"));
    assert_eq!(rules["review"]["override"]["confirmed_by"], json!("finn"));
    assert_eq!(approval["approval"]["verdict"], json!("overridden"));
    let ov = &approval["override"];
    assert_eq!(ov["original"], proposed);
    assert_eq!(ov["replacement"], replacement);
    assert_eq!(ov["by"], json!("rhea"));
    assert_eq!(ov["reason"], json!(reason));
    assert_eq!(ov["confirmed_by"], json!("finn"));
    assert_eq!(
        approval["refused_overrides"][0]["refused_by"],
        json!("finn")
    );
    assert_eq!(approval["cost"], *cost);

    // The override report lists it with its reason and cost.
    let (status, report) = call(
        &http,
        "GET",
        &format!("{base}/v1/overrides/report"),
        "t-viewer",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["effective"], json!(1));
    assert_eq!(report["refused"], json!(1));
    let entry = report["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["status"] == "effective")
        .expect("the override in effect");
    assert_eq!(entry["by"], json!("rhea"));
    assert_eq!(entry["reason"], json!(reason));
    assert_eq!(entry["confirmed_by"], json!("finn"));
    assert_eq!(entry["decision"], json!("route"));
    assert_eq!(entry["cost"], *cost);
    assert!(
        report["by_person"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["key"] == "rhea" && g["total"] == json!(2))
    );
    assert!(
        report["by_flow"][0]["key"]
            .as_str()
            .unwrap()
            .starts_with("maplewood/director-override:")
    );
    // A period that ends before the override holds none; a bad time is a problem.
    let (_, empty) = call(
        &http,
        "GET",
        &format!(
            "{base}/v1/overrides/report?until=2000-01-01T00:00:00Z&since=1999-01-01T00:00:00Z"
        ),
        "t-viewer",
        None,
    )
    .await;
    assert_eq!(empty["total"], json!(0), "{empty}");
    problem(
        &call(
            &http,
            "GET",
            &format!("{base}/v1/overrides/report?since=yesterday"),
            "t-viewer",
            None,
        )
        .await,
        400,
        "BATON-API-004",
    );

    // The JSON Lines export parses line by line.
    let resp = http
        .get(format!("{base}/v1/decisions?flow=director-override"))
        .bearer_auth("t-viewer")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON record"))
        .collect();
    assert_eq!(lines.len(), items.len());
    assert!(lines.iter().any(|l| l["override"]["by"] == "rhea"));

    // The CLI against the server.
    let env = [("BATON_TOKEN", "t-viewer")];
    let out = baton_cli(&["overrides", "--server", &base], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&reason) && text.contains("confirmed by finn"),
        "{text}"
    );
    let out = baton_cli(&["decisions", &id, "--server", &base], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("override  by rhea") && text.contains("Route review"),
        "{text}"
    );
    let refused_by_cli = baton_cli(
        &[
            "override", &task_id, "--output", "{}", "--reason", "late", "--server", &base,
        ],
        &[("BATON_TOKEN", "t-dispatcher")],
    );
    assert_eq!(refused_by_cli.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused_by_cli.stderr).contains("BATON-API-014"));

    // And from the store once the server is gone.
    drop(server);
    let db = dir.path().join("baton.db");
    let db = db.to_str().unwrap();
    let out = baton_cli(&["decisions", &id, "--store", db, "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_store: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_store["items"], records["items"]);
    let out = baton_cli(&["export-decisions", "--store", db], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(exported, lines);
    sim.shutdown().await;
}

/// `baton serve --demo` carries story 10: the director's and the fleet manager's tokens, the
/// override policy for routes, and a director-override instance waiting for the dispatcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_the_director_the_fleet_manager_and_the_route_policy() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let server = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.current_dir(root())
            .env_remove("BATON_PROVIDERS")
            .env_remove("BATON_CONFIG")
            .env_remove("BATON_ADMIN_TOKEN")
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--store"])
            .arg(&db);
        common::serve(cmd)
    })
    .await
    .unwrap();
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let tasks = until(
        &http,
        &format!("{base}/v1/approvals?status=open"),
        "demo-viewer",
        |v| {
            v["items"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t["decision"] == "route"))
        },
    )
    .await;
    let task = tasks["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["decision"] == "route")
        .unwrap()
        .clone();
    let url = format!(
        "{base}/v1/approvals/{}/override",
        task["id"].as_str().unwrap()
    );
    let body = json!({"output": task["data"], "reason": "favourite customer"});
    problem(
        &call(&http, "POST", &url, "demo-dispatcher", Some(body.clone())).await,
        403,
        "BATON-API-014",
    );
    let asked = call(&http, "POST", &url, "demo-director", Some(body)).await;
    assert_eq!(asked.0, 202, "{}", asked.1);
    let confirmed = call(
        &http,
        "POST",
        &format!(
            "{base}/v1/approvals/{}/override/confirm",
            task["id"].as_str().unwrap()
        ),
        "demo-fleet-manager",
        None,
    )
    .await;
    assert_eq!(confirmed.0, 200, "{}", confirmed.1);
    assert_eq!(confirmed.1["confirmed_by"], json!("finn"));
}
