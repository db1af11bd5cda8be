//! The Serverless Workflow CTK and our own conformance features, run as a test.
//!
//! The CTK lives outside this repository, in `$BATON_STANDARDS_DIR/sw-spec/ctk/features`
//! (`BATON_STANDARDS_DIR` defaults to `../shared/standards` from the repository root). Our own
//! features are in `conformance/features` at the repository root.

use std::path::PathBuf;

use baton_conformance::{ScenarioResult, run_features};

/// CTK scenarios that must pass: all 21 of them.
const CTK_PASSED_MIN: usize = 21;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ctk_dir() -> PathBuf {
    let standards = std::env::var_os("BATON_STANDARDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/standards"));
    standards.join("sw-spec/ctk/features")
}

fn report(title: &str, results: &[ScenarioResult]) -> usize {
    let passed = results.iter().filter(|r| r.passed).count();
    println!(
        "== {title}: {passed} passed, {} failed",
        results.len() - passed
    );
    for r in results {
        match &r.message {
            Some(m) => println!("FAIL {}: {} — {m}", r.feature, r.name),
            None => println!("PASS {}: {}", r.feature, r.name),
        }
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_workflow_conformance() {
    let ctk = ctk_dir();
    assert!(
        ctk.is_dir(),
        "the CTK features are not at {} (set BATON_STANDARDS_DIR)",
        ctk.display()
    );
    let ours = repo_root().join("conformance/features");

    let ctk_results = run_features(&[ctk]).await;
    let our_results = run_features(&[ours]).await;
    let ctk_passed = report("CTK", &ctk_results);
    let ours_passed = report("ours", &our_results);

    assert!(
        ctk_results.len() >= 21,
        "expected the 21 CTK scenarios, found {}",
        ctk_results.len()
    );
    assert!(
        !our_results.is_empty(),
        "no scenarios of our own were found"
    );
    let our_failures: Vec<&ScenarioResult> = our_results.iter().filter(|r| !r.passed).collect();
    assert!(
        our_failures.is_empty(),
        "{} of our scenarios failed: {our_failures:#?}",
        our_failures.len()
    );
    assert_eq!(ours_passed, our_results.len());
    assert!(
        ctk_passed >= CTK_PASSED_MIN,
        "only {ctk_passed} CTK scenarios passed; the floor is {CTK_PASSED_MIN}"
    );
}
