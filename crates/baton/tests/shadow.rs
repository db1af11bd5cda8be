//! Shadow runs and replay end to end, with the real CLI, a real `baton serve` and the Maplewood
//! simulator:
//! - story 9, a week in shadow: reroute-v2 runs beside the dispatcher's posted decisions; the
//!   report's differences are exactly the simulator's seeded deviations, each explained by the
//!   lumber yard's window or the driver's hours, and no shadow told a driver anything;
//! - a live version with a shadow version: every live start gets a shadow, the two are
//!   compared; a shadow killed (kill -9 of the server) while it waits still performs no effect
//!   after the restart;
//! - `baton replay`: v2 over what v1 decided, without effects.

use std::collections::BTreeSet;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;

use baton_sim::{Sim, SimOptions};
use serde_json::{Value, json};

const ADMIN: &str = "t-shadow-admin";
/// How many times a test asks the server whether it has finished what it was asked (each ask
/// is a real request, or a CLI run, so this bounds the wait without a clock).
const POLLS_MAX: usize = 3_000;

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

/// `baton serve` over `db` with the Maplewood catalogue pointed at `sim`, from the repository
/// root (where the flows' DMN paths are relative to). Returns once it says where it listens.
fn serve(sim_url: &str, db: &Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.current_dir(root())
        .env("MAPLEWOOD_URL", sim_url)
        .env("BATON_ADMIN_TOKEN", ADMIN)
        .env_remove("BATON_CONFIG")
        .args([
            "serve",
            "--store",
            db.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--providers",
            "examples/maplewood/providers.yaml",
            "--secrets",
            "examples/maplewood/secrets.yaml",
        ]);
    common::serve(cmd)
}

/// Runs the CLI (on a blocking thread, so the in-process simulator keeps serving).
async fn baton(env: Vec<(&'static str, String)>, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.current_dir(root())
            .env_remove("BATON_PROVIDERS")
            .env_remove("BATON_STORE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args).output().expect("baton runs")
    })
    .await
    .expect("join")
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A client verb against `server` as the admin; its stdout, after checking it succeeded.
async fn client(server: &Server, a: &[&str]) -> String {
    let out = baton(
        vec![
            ("BATON_SERVER", server.base.clone()),
            ("BATON_TOKEN", ADMIN.to_string()),
        ],
        args(a),
    )
    .await;
    assert!(
        out.status.success(),
        "baton {a:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", server.base))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The report as `baton shadow report NAME --json` prints it, once `compared` reaches `n`.
async fn report_when_compared(server: &Server, name: &str, n: u64) -> Value {
    let mut report = Value::Null;
    for _ in 0..POLLS_MAX {
        let text = client(server, &["shadow", "report", name, "--json"]).await;
        report = serde_json::from_str(&text).expect("report JSON");
        if report["compared"].as_u64() == Some(n) {
            return report;
        }
    }
    panic!(
        "only {} of {n} cases compared: {report}",
        report["compared"]
    );
}

fn notify_effects(sim: &Sim) -> usize {
    sim.ledger()["notify"].as_object().map_or(0, |m| m.len())
}

/// Which hard rule a reroute of this situation breaks (the rules reroute-rules.dmn encodes).
fn broken_rule(inputs: &Value) -> Option<&'static str> {
    let eta: Vec<u32> = inputs["proposed_eta"]
        .as_str()
        .unwrap()
        .split(':')
        .map(|p| p.parse().unwrap())
        .collect();
    let eta = eta[0] * 60 + eta[1];
    if inputs["customer"] == "lumber-yard-7" && !(600..=690).contains(&eta) {
        Some("lumber-yard-window")
    } else if inputs["driver_hours_after"].as_f64().unwrap() > 10.0 {
        Some("driver-hours-limit")
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_in_shadow_beside_the_dispatcher() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&sim.base_url(), &dir.path().join("baton.db"));
    let registered = client(
        &server,
        &[
            "shadow",
            "register",
            "dispatcher-week",
            "--flow",
            "examples/maplewood/reroute-v2.yaml",
            "--legacy",
            "dispatcher",
            "--field",
            "action",
        ],
    )
    .await;
    assert!(
        registered.contains("maplewood/reroute:2.0.0 beside legacy dispatcher"),
        "{registered}"
    );
    let week = sim.dispatcher_week();
    let cases = week["decisions"].as_array().unwrap().len() as u64;
    let file = dir.path().join("week.json");
    std::fs::write(&file, week.to_string()).unwrap();
    let posted = client(
        &server,
        &[
            "shadow",
            "post",
            "dispatcher-week",
            &format!("@{}", file.display()),
        ],
    )
    .await;
    assert_eq!(posted.lines().count() as u64, cases);
    // Posting the week again changes nothing.
    let again = client(
        &server,
        &[
            "shadow",
            "post",
            "dispatcher-week",
            &format!("@{}", file.display()),
        ],
    )
    .await;
    assert!(
        again.lines().all(|l| l.ends_with("already posted")),
        "{again}"
    );

    let report = report_when_compared(&server, "dispatcher-week", cases).await;
    let rate = report["agreement_rate"].as_f64().unwrap();
    assert!(rate < 1.0, "{report}");
    let deviations = sim.dispatcher_deviations();
    let expected: BTreeSet<(String, String)> = deviations["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["case"].as_str().unwrap().to_string(),
                d["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!expected.is_empty());
    let rules: BTreeSet<&str> = expected.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        rules,
        BTreeSet::from(["driver-hours-limit", "lumber-yard-window"]),
        "seed 1's week has both kinds of deviation"
    );
    // The differences are exactly the dispatcher's deviations, and each says why.
    let mut found = BTreeSet::new();
    for d in report["differences"].as_array().unwrap() {
        let case = d["case"].as_str().unwrap().to_string();
        assert_eq!(
            d["differences"],
            json!([{"field": ".action", "live": "reroute", "shadow": "keep"}])
        );
        let why: Vec<&str> = d["why"]["shadow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        let (_, rule) = expected
            .iter()
            .find(|(c, _)| *c == case)
            .unwrap_or_else(|| panic!("{case} differs but the dispatcher did not deviate: {d}"));
        let words = match rule.as_str() {
            "lumber-yard-window" => "lumber-yard-7 accepts deliveries 10:00-11:30 only",
            _ => "no driver works more than 10 hours",
        };
        assert_eq!(
            why,
            [format!("Reroute decision: {rule} ({words})").as_str()],
            "{d}"
        );
        found.insert((case, rule.clone()));
    }
    assert_eq!(found, expected);
    assert_eq!(
        report["agreed"].as_u64().unwrap() + expected.len() as u64,
        cases
    );
    assert_eq!(report["fields"], json!({".action": expected.len()}));
    // The shadows read the GPS but told no driver: every notification was recorded instead.
    assert!(
        sim.request_count("gps") >= cases,
        "the shadows performed their reads"
    );
    assert_eq!(sim.request_count("notify"), 0);
    assert_eq!(notify_effects(&sim), 0);
    assert!(report["effects_not_performed"].as_u64().unwrap() > 0);

    // The human report names the rules too, and a period before the week has nothing.
    let text = client(&server, &["shadow", "report", "dispatcher-week"]).await;
    assert!(
        text.contains("why (shadow): Reroute decision: lumber-yard-window"),
        "{text}"
    );
    assert!(
        text.contains("why (shadow): Reroute decision: driver-hours-limit"),
        "{text}"
    );
    let first = week["decisions"][0]["decided_at_ms"].as_u64().unwrap();
    let none = client(
        &server,
        &[
            "shadow",
            "report",
            "dispatcher-week",
            "--until",
            &first.to_string(),
            "--json",
        ],
    )
    .await;
    assert_eq!(serde_json::from_str::<Value>(&none).unwrap()["cases"], 0);
    // And on the dashboard.
    let (_, list) = api(&server, "GET", "/v1/shadows", None).await;
    assert_eq!(list["items"][0]["name"], "dispatcher-week");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let page = reqwest::Client::new()
        .get(format!("{}/ui/shadows/dispatcher-week", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("lumber-yard-7 accepts deliveries 10:00-11:30 only"));
    // The trial is over: the shadow is stopped, its report stays.
    let stopped = client(&server, &["shadow", "stop", "dispatcher-week"]).await;
    assert_eq!(stopped.trim(), "dispatcher-week stopped by admin");
    let listed = client(&server, &["shadow", "list"]).await;
    assert_eq!(listed.trim(), "dispatcher-week reroute:2.0.0 (stopped)");
    let after = client(&server, &["shadow", "report", "dispatcher-week", "--json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&after).unwrap()["compared"],
        cases
    );
}

/// Reroute situations with a known answer from both versions: v1 reroutes whenever late; v2
/// keeps when a hard rule is broken.
fn situations(sim: &Sim, n: usize) -> Vec<Value> {
    sim.dispatcher_week()["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|d| d["inputs"].clone())
        .collect()
}

fn v2_keeps_where_v1_reroutes(inputs: &Value) -> bool {
    inputs["delay_minutes"].as_u64().unwrap() >= 15 && broken_rule(inputs).is_some()
}

/// A live flow and a candidate that waits for an event before telling the driver.
const HOLD_V1: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: hold, version: '1.0.0' }
do:
  - answer:
      set: { order: '${ .order }', told: false }
"#;
const HOLD_V2: &str = r#"
document: { dsl: '1.0.3', namespace: test, name: hold, version: '2.0.0' }
do:
  - hear:
      listen: { to: { one: { with: { type: maplewood.test.go } } } }
      output: { as: '${ $input }' }
  - tell:
      call: provider
      with:
        provider: notify
        operation: send
        args: { body: { to: d-01, text: 'go', shipment: '${ .order }' } }
      output: { as: '${ $input }' }
  - answer:
      set: { order: '${ .order }', told: true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_version_and_its_shadow_and_a_shadow_killed_while_waiting() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baton.db");
    let mut server = serve(&sim.base_url(), &db);
    let registered = client(
        &server,
        &[
            "shadow",
            "register",
            "reroute-v2",
            "--flow",
            "examples/maplewood/reroute-v2.yaml",
            "--live-flow",
            "examples/maplewood/reroute-v1.yaml",
            "--field",
            "action",
        ],
    )
    .await;
    assert!(
        registered.contains("maplewood/reroute:2.0.0 beside maplewood/reroute:1.0.0"),
        "{registered}"
    );
    let inputs = situations(&sim, 12);
    let mut ids = Vec::new();
    for i in &inputs {
        let out = client(
            &server,
            &[
                "start",
                "reroute",
                "--version",
                "1.0.0",
                "--input",
                &i.to_string(),
                "--json",
            ],
        )
        .await;
        let started: Value = serde_json::from_str(&out).unwrap();
        ids.push(started["id"].as_str().unwrap().to_string());
    }
    let report = report_when_compared(&server, "reroute-v2", inputs.len() as u64).await;
    let expected: BTreeSet<&str> = ids
        .iter()
        .zip(&inputs)
        .filter(|(_, i)| v2_keeps_where_v1_reroutes(i))
        .map(|(id, _)| id.as_str())
        .collect();
    let found: BTreeSet<&str> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["case"].as_str().unwrap())
        .collect();
    assert_eq!(found, expected, "{report}");
    for d in report["differences"].as_array().unwrap() {
        assert_eq!(d["live_instance"], d["case"]);
        assert!(inputs.contains(&d["input"]), "{d}");
        assert_eq!(d["differences"][0]["live"], "reroute");
        assert_eq!(d["differences"][0]["shadow"], "keep");
        assert!(
            d["why"]["shadow"][0]
                .as_str()
                .unwrap()
                .starts_with("Reroute decision: ")
        );
    }
    // Only the live instances told drivers.
    let live_reroutes = inputs
        .iter()
        .filter(|i| i["delay_minutes"].as_u64().unwrap() >= 15)
        .count();
    assert_eq!(notify_effects(&sim), live_reroutes);

    // A shadow that waits when the server is killed stays a shadow after the restart.
    for source in [HOLD_V1, HOLD_V2] {
        let (st, v) = api(
            &server,
            "POST",
            "/v1/flows",
            Some(json!({"source": source})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    client(
        &server,
        &[
            "shadow",
            "register",
            "hold-v2",
            "--candidate",
            "test/hold:2.0.0",
            "--live",
            "test/hold:1.0.0",
        ],
    )
    .await;
    let (st, live) = api(
        &server,
        "POST",
        "/v1/instances",
        Some(json!({"flow": "hold", "version": "1.0.0", "input": {"order": "o-1042"}})),
    )
    .await;
    assert_eq!(st, 201, "{live}");
    let live_id = live["id"].as_str().unwrap().to_string();
    let (st, case) = api(
        &server,
        "GET",
        &format!("/v1/shadows/hold-v2/cases/{live_id}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{case}");
    let shadow_id = case["shadow"]["instance"].as_str().unwrap().to_string();
    let mut waiting = false;
    for _ in 0..POLLS_MAX {
        let (_, d) = api(&server, "GET", &format!("/v1/instances/{shadow_id}"), None).await;
        if d["instance"]["status"] == "waiting" {
            waiting = true;
            break;
        }
    }
    assert!(waiting, "the shadow never waited for its event");
    let notified = notify_effects(&sim);
    server.child.kill().unwrap(); // SIGKILL
    assert!(!server.child.wait().unwrap().success());
    let server = serve(&sim.base_url(), &db);
    let (st, _) = api(
        &server,
        "POST",
        "/v1/events",
        Some(json!({"specversion": "1.0", "id": "go-1", "source": "test", "type": "maplewood.test.go"})),
    )
    .await;
    assert!(st < 300, "{st}");
    let report = report_when_compared(&server, "hold-v2", 1).await;
    assert_eq!(
        report["differences"][0]["differences"],
        json!([{"field": ".told", "live": false, "shadow": true}])
    );
    assert_eq!(
        notify_effects(&sim),
        notified,
        "the resumed shadow told a driver"
    );
    let (_, shown) = api(&server, "GET", &format!("/v1/instances/{shadow_id}"), None).await;
    assert_eq!(shown["instance"]["status"], "completed");
    assert_eq!(
        shown["shadow"],
        json!({"registration": "hold-v2", "case": live_id})
    );
    let (_, live_shown) = api(&server, "GET", &format!("/v1/instances/{live_id}"), None).await;
    assert!(live_shown.get("shadow").is_none(), "{live_shown}");
    let notes: Vec<&Value> = shown["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["note"]["shadow"] == "not_performed")
        .collect();
    assert_eq!(notes.len(), 1, "{shown}");
    assert_eq!(notes[0]["note"]["request"]["function"], "provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_runs_v2_over_what_v1_decided_without_effects() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baton.db").to_str().unwrap().to_string();
    let env = || {
        vec![
            ("MAPLEWOOD_URL", sim.base_url()),
            ("BATON_STORE", db.clone()),
        ]
    };
    let inputs = situations(&sim, 8);
    for i in &inputs {
        let out = baton(
            env(),
            args(&[
                "run",
                "examples/maplewood/reroute-v1.yaml",
                "--providers",
                "examples/maplewood/providers.yaml",
                "--secrets",
                "examples/maplewood/secrets.yaml",
                "--quiet",
                "--input",
                &i.to_string(),
            ]),
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (gps, notify) = (sim.request_count("gps"), sim.request_count("notify"));
    let expected = inputs
        .iter()
        .filter(|i| v2_keeps_where_v1_reroutes(i))
        .count() as u64;

    // Without providers: every read and effect is answered from the record.
    let out = baton(
        env(),
        args(&[
            "replay",
            "--flow",
            "examples/maplewood/reroute-v2.yaml",
            "--json",
        ]),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["instances"], inputs.len() as u64, "{report}");
    assert_eq!(report["differed"], expected, "{report}");
    assert_eq!(report["same"], inputs.len() as u64 - expected);
    assert_eq!(report["missing_reads"], 0);
    for r in report["results"].as_array().unwrap() {
        assert_eq!(r["recorded_version"], "1.0.0");
        assert!(r["from_record"].as_u64().unwrap() >= 1, "{r}");
        if !r["same"].as_bool().unwrap() {
            assert_eq!(
                r["differences"][0],
                json!({"field": ".action", "recorded": "reroute", "replayed": "keep"})
            );
            assert_eq!(r["differences"][1]["field"], ".reason");
            assert_eq!(r["not_performed"], 0, "{r}");
        }
    }
    assert_eq!(
        (sim.request_count("gps"), sim.request_count("notify")),
        (gps, notify),
        "the replay reached the simulator"
    );

    // The human report, with the rule that changed each decision.
    let out = baton(
        env(),
        args(&["replay", "--flow", "examples/maplewood/reroute-v2.yaml"]),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "replayed {} instances with maplewood/reroute:2.0.0: {} same, {expected} differ",
            inputs.len(),
            inputs.len() as u64 - expected
        )),
        "{text}"
    );
    if expected > 0 {
        assert!(text.contains("why: Reroute decision: "), "{text}");
    }
    // With --since after every recorded instance there is nothing to replay.
    let out = baton(
        env(),
        args(&[
            "replay",
            "--flow",
            "examples/maplewood/reroute-v2.yaml",
            "--since",
            "2999-01-01T00:00:00Z",
            "--json",
        ]),
    )
    .await;
    let none: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(none["instances"], 0);
    // Nothing was added to the recorded store.
    let list = baton(env(), args(&["instances", "--json"])).await;
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), inputs.len());
}
