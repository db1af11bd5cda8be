//! The bundled examples run and print the expected JSON; `baton validate` accepts them and
//! reports a broken flow with locations.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn baton(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn run_example(flow: &str, input: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baton.db");
    let out = baton(&[
        "run",
        flow,
        "--input",
        input,
        "--store",
        db.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{flow} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn maplewood_stops_flags_the_lumber_yard() {
    let out = run_example(
        "examples/maplewood-stops.yaml",
        "@examples/maplewood-stops.input.json",
    );
    assert_eq!(
        out,
        json!({"driver": "d-17", "ok": false, "violations": [{"stop": 1, "rule": "lumber-yard-window", "eta": "14:15"}]})
    );
}

#[test]
fn decide_reroute_evaluates_the_policy_table() {
    assert_eq!(
        run_example(
            "examples/decide-reroute.yaml",
            r#"{"delay": 42, "tier": "gold"}"#
        ),
        json!({"action": "reroute", "needsApproval": false})
    );
    assert_eq!(
        run_example(
            "examples/decide-reroute.yaml",
            r#"{"delay": 90, "tier": "silver"}"#
        ),
        json!({"action": "reroute", "needsApproval": true})
    );
}

#[test]
fn a_faulting_flow_exits_1_with_problem_details() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("raise.yaml");
    std::fs::write(
        &flow,
        "document: {dsl: '1.0.3', namespace: t, name: r, version: '1.0.0'}\ndo:\n  - boom:\n      raise:\n        error: {type: https://example.com/errors/nope, status: 409, title: Nope}\n",
    )
    .unwrap();
    let db = dir.path().join("baton.db");
    let out = baton(&[
        "run",
        flow.to_str().unwrap(),
        "--store",
        db.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"status\": 409") && stderr.contains("\"instance\": \"/do/0/boom\""),
        "{stderr}"
    );
}

#[test]
fn examples_validate_and_a_broken_flow_is_located() {
    for f in [
        "examples/maplewood-stops.yaml",
        "examples/decide-reroute.yaml",
        "examples/reserve-with-ledger.yaml",
        "examples/await-cancellation.yaml",
    ] {
        let out = baton(&["validate", f]);
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("broken.yaml");
    std::fs::write(
        &flow,
        "document: {dsl: '1.0.3', namespace: t, name: b, version: '1.0.0'}\ndo:\n  - a:\n      set: {x: 1}\n      then: nowhere\n  - b:\n      wait: PT1X\n",
    )
    .unwrap();
    let out = baton(&["validate", flow.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = flow.display().to_string();
    assert!(
        stderr.contains(&format!("{path}:5:13: error[")),
        "then target not located: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{path}:7:13: error[")),
        "bad duration not located: {stderr}"
    );
}

/// Issue 14: `baton run` with a flow that fails a check prints the diagnostics with the file's
/// location, whichever check it fails (a misdeclared `metadata.baton` was refused with exit 1
/// and nothing on stderr).
#[test]
fn run_prints_why_a_flow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("bad-extension.yaml");
    std::fs::write(
        &flow,
        "document: { dsl: '1.0.3', namespace: t, name: b, version: '1.0.0' }\ndo:\n  - step:\n      set: { a: 1 }\n      metadata: { baton: { complete: { typo: 1 } } }\n",
    )
    .unwrap();
    let db = dir.path().join("baton.db");
    let out = baton(&[
        "run",
        flow.to_str().unwrap(),
        "--store",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = flow.display().to_string();
    assert!(
        stderr.contains(&format!("{path}:5:")) && stderr.contains("BATON-FLOW-032"),
        "the refusal is located: {stderr:?}"
    );
}

/// Issue 14: `baton run` with an input that breaks the flow's input schema starts nothing and
/// says where and why.
#[test]
fn run_refuses_an_input_that_breaks_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("delay.yaml");
    std::fs::write(
        &flow,
        "document: { dsl: '1.0.3', namespace: t, name: delay, version: '1.0.0' }\ninput:\n  schema:\n    format: json\n    document: { type: object, properties: { minutes: { type: number } } }\ndo:\n  - a: { set: { late: '${ .minutes >= 10 }' } }\n",
    )
    .unwrap();
    let db = dir.path().join("baton.db");
    let out = baton(&[
        "run",
        flow.to_str().unwrap(),
        "--input",
        r#"{"minutes": "N/A"}"#,
        "--store",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("input/minutes: error:"), "{stderr:?}");
    assert!(!stderr.contains("started"), "nothing starts: {stderr:?}");
}
