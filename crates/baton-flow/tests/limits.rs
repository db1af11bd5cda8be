//! Flow limits (task count, task-list nesting, fork width), on generated flows.

use baton_flow::validate::{FORK_BRANCHES_MAX, TASK_LIST_DEPTH_MAX, TASKS_MAX};
use baton_flow::{ValidateOptions, load_flow};

const HEADER: &str =
    "document:\n  dsl: '1.0.3'\n  namespace: test\n  name: limits\n  version: '1.0.0'\ndo:\n";

/// A flow whose `do` holds `depth` task lists nested in one another (the workflow's `do` is 1).
fn nested(depth: usize) -> String {
    let mut text = HEADER.to_string();
    let mut pad = String::from("  ");
    for i in 1..depth {
        text.push_str(&format!("{pad}- level{i}:\n{pad}    do:\n"));
        pad.push_str("      ");
    }
    text.push_str(&format!("{pad}- leaf:\n{pad}    set: {{a: 1}}\n"));
    text
}

fn codes_and_pointers(text: &str) -> Vec<(String, String)> {
    match load_flow(text, &ValidateOptions::default()) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.into_iter().map(|d| (d.code, d.pointer)).collect(),
    }
}

#[test]
fn nesting_up_to_the_limit_loads_on_a_small_stack() {
    // Test threads have 2 MiB of stack, like tokio's workers: loading must not depend on more.
    let flow = load_flow(&nested(TASK_LIST_DEPTH_MAX), &ValidateOptions::default()).expect("loads");
    let mut depth = 1;
    let mut list = &flow.workflow.do_;
    while let baton_flow::TaskKind::Do(inner) = &list.0[0].1.kind {
        depth += 1;
        list = inner;
    }
    assert_eq!(depth, TASK_LIST_DEPTH_MAX);
}

#[test]
fn nesting_past_the_limit_is_reported_once() {
    let diags = codes_and_pointers(&nested(TASK_LIST_DEPTH_MAX + 1));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].0, "BATON-FLOW-031");
    assert_eq!(
        diags[0].1.matches("/do").count(),
        TASK_LIST_DEPTH_MAX + 1,
        "{diags:?}"
    );
}

#[test]
fn an_invalid_task_deep_down_is_reported_quickly() {
    // A failing `oneOf` on the recursive schema used to take time exponential in the depth.
    let text = nested(TASK_LIST_DEPTH_MAX).replace("set: {a: 1}", "set: {}");
    let diags = codes_and_pointers(&text);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].0, "BATON-FLOW-010");
    assert!(diags[0].1.ends_with("/leaf/set"), "{diags:?}");
}

#[test]
fn too_many_fork_branches() {
    let mut text = HEADER.to_string();
    text.push_str("  - fan:\n      fork:\n        branches:\n");
    for i in 0..=FORK_BRANCHES_MAX {
        text.push_str(&format!("          - b{i}:\n              call: noop\n"));
    }
    let opts = ValidateOptions {
        known_functions: vec!["noop".into()],
    };
    let diags: Vec<(String, String)> = match load_flow(&text, &opts) {
        Ok(_) => Vec::new(),
        Err(d) => d.into_iter().map(|d| (d.code, d.pointer)).collect(),
    };
    assert_eq!(
        diags,
        vec![(
            "BATON-FLOW-031".to_string(),
            "/do/0/fan/fork/branches".to_string()
        )]
    );
}

#[test]
fn too_many_tasks() {
    let mut text = HEADER.to_string();
    for i in 0..=TASKS_MAX {
        text.push_str(&format!("  - t{i}:\n      set: {{i: {i}}}\n"));
    }
    assert_eq!(
        codes_and_pointers(&text),
        vec![("BATON-FLOW-031".to_string(), "/do".to_string())]
    );
}
