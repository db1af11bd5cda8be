//! The runner must be able to fail: scenarios that are wrong on purpose fail, each for the
//! expected reason, and a feature file that cannot be parsed fails as a whole.

use std::path::Path;

use baton_conformance::{ScenarioResult, run_features};

const FLOW: &str = r#"
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: colors
      version: '1.0.0'
    do:
      - setRed:
          set:
            colors: ${ .colors + ["red"] }
      - setBlue:
          set:
            colors: ${ .colors + ["blue"] }
    """"#;

/// (scenario name, steps after the definition, text the failure message must contain)
const WRONG: &[(&str, &str, &str)] = &[
    (
        "wrong output",
        "When the workflow is executed\n    Then the workflow should complete with output:\n    \"\"\"yaml\n    colors: [ blue, red ]\n    \"\"\"",
        "the workflow output is",
    ),
    (
        "wrong order",
        "When the workflow is executed\n    Then setBlue should run first",
        "started before setBlue",
    ),
    (
        "wrong before",
        "When the workflow is executed\n    Then setBlue should run before setRed",
        "did not run before",
    ),
    (
        "missing task",
        "When the workflow is executed\n    Then paint should run last",
        "never started",
    ),
    (
        "fault expected",
        "When the workflow is executed\n    Then the workflow should fault",
        "expected the workflow to fault",
    ),
    (
        "missing property",
        "When the workflow is executed\n    Then the workflow output should have properties 'colors', 'size'",
        "lacks size",
    ),
    (
        "wrong count",
        "When the workflow is executed\n    Then the workflow output should have a 'colors' property containing 3 items",
        "has 2 items",
    ),
    (
        "unknown step",
        "When the workflow is executed\n    Then the workflow should be green",
        "unknown step",
    ),
    (
        "no assertion",
        "When the workflow is executed",
        "asserts nothing",
    ),
    (
        "never executed",
        "Then the workflow should complete",
        "before the workflow was executed",
    ),
    (
        "task output cannot be checked",
        "When the workflow is executed\n    Then setRed should complete with output:\n    \"\"\"yaml\n    colors: [ red ]\n    \"\"\"",
        "cannot check the output",
    ),
    (
        "crash after the end",
        "When the workflow is executed, the process crashes after 0 ledger requests and is resumed\n    Then the workflow should complete",
        "was not resumed",
    ),
];

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write feature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scenarios_fail_for_the_right_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut feature = String::from("Feature: Wrong on purpose\n");
    for (name, steps, _) in WRONG {
        feature.push_str(&format!(
            "\n  Scenario: {name}\n    Given a workflow with definition:{FLOW}\n    {steps}\n"
        ));
    }
    write(dir.path(), "wrong.feature", &feature);
    write(
        dir.path(),
        "broken.feature",
        "Feature: Broken\n  Scenario: S\n    Given a workflow with definition:\n    \"\"\"yaml\n    a: 1\n",
    );

    let results = run_features(&[dir.path().to_path_buf()]).await;
    let broken: Vec<&ScenarioResult> = results.iter().filter(|r| r.feature == "broken").collect();
    assert_eq!(broken.len(), 1, "{results:#?}");
    assert!(!broken[0].passed);
    assert!(
        broken[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("not closed"),
        "{broken:#?}"
    );

    let wrong: Vec<&ScenarioResult> = results.iter().filter(|r| r.feature == "wrong").collect();
    assert_eq!(wrong.len(), WRONG.len(), "{results:#?}");
    for ((name, _, reason), result) in WRONG.iter().zip(wrong) {
        assert_eq!(&result.name, name);
        assert!(!result.passed, "{name} passed but must fail");
        let message = result.message.as_deref().unwrap_or("");
        assert!(
            message.contains(reason),
            "{name} failed for another reason: {message}"
        );
    }
}

#[tokio::test]
async fn a_missing_directory_is_a_failure() {
    let results = run_features(&["/nonexistent/baton/features".into()]).await;
    assert_eq!(results.len(), 1);
    assert!(!results[0].passed);
}
