//! Data-driven tests of `load_flow`: broken flows with their exact diagnostics, good flows, and
//! the Serverless Workflow specification's own examples.
//!
//! A broken flow lists what it must produce in trailing comments, one per diagnostic, in source
//! order: `# expect: LINE:COLUMN CODE POINTER`. Trailing, so the expectations do not shift the
//! lines they describe; a JSON flow has them in a `NAME.json.expect` file beside it.

use std::path::{Path, PathBuf};

use baton_flow::{Diagnostic, ValidateOptions, load_flow};

fn opts() -> ValidateOptions {
    ValidateOptions {
        known_functions: vec!["noop".into(), "provider".into(), "decide".into()],
    }
}

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
}

fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    out.sort();
    out
}

fn summary(d: &Diagnostic) -> String {
    format!("{}:{} {} {}", d.line, d.column, d.code, d.pointer)
        .trim_end()
        .to_string()
}

#[test]
fn broken_flows_report_exactly_their_expected_diagnostics() {
    let paths = files(&data("broken"), &["yaml", "json"]);
    assert!(
        paths.len() >= 10,
        "expected the broken flow corpus, found {paths:?}"
    );
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("read test flow");
        // JSON has no comments: a JSON flow's expectations are in `NAME.json.expect`.
        let sidecar =
            std::fs::read_to_string(format!("{}.expect", path.display())).unwrap_or_default();
        let expected: Vec<String> = text
            .lines()
            .chain(sidecar.lines())
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| l.trim().to_string())
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` lines",
            path.display()
        );
        let actual: Vec<String> = match load_flow(&text, &opts()) {
            Ok(_) => Vec::new(),
            Err(diags) => diags.iter().map(summary).collect(),
        };
        if actual != expected {
            failures.push(format!(
                "{}:\n  expected:\n    {}\n  actual:\n    {}",
                path.display(),
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn broken_yaml_reports_every_error() {
    let text = std::fs::read_to_string(data("broken.yaml")).expect("read broken.yaml");
    let diags = load_flow(&text, &opts()).expect_err("broken.yaml must not load");
    let actual: Vec<(u32, u32, &str)> = diags
        .iter()
        .map(|d| (d.line, d.column, d.code.as_str()))
        .collect();
    assert_eq!(
        actual,
        vec![
            (3, 1, "BATON-FLOW-011"),   // `document` lacks `version`
            (14, 13, "BATON-FLOW-020"), // `then: shipIt` targets no task of the list
            (15, 5, "BATON-FLOW-021"),  // second task named `fetch`
            (16, 13, "BATON-FLOW-023"), // `PT5X`
            (19, 16, "BATON-FLOW-024"), // jq with an unclosed `map(`
            (21, 13, "BATON-FLOW-026"), // `call: sendSlack`
            (22, 7, "BATON-FLOW-012"),  // `retries` is not a task property
        ],
        "{diags:#?}"
    );
    let rendered = diags[0].render("broken.yaml");
    assert_eq!(
        rendered,
        "broken.yaml:3:1: error[BATON-FLOW-011]: missing required property `version`"
    );
    assert_eq!(diags[0].pointer, "/document/version");
}

#[test]
fn good_flows_load() {
    let paths = files(&data("good"), &["yaml", "json"]);
    assert!(
        paths.len() >= 2,
        "expected the good flow corpus, found {paths:?}"
    );
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read test flow");
        if let Err(diags) = load_flow(&text, &opts()) {
            let lines: Vec<String> = diags
                .iter()
                .map(|d| d.render(&path.display().to_string()))
                .collect();
            panic!("{} must load:\n{}", path.display(), lines.join("\n"));
        }
    }
}

#[test]
fn loaded_flow_keeps_model_raw_and_spans() {
    let text = std::fs::read_to_string(data("good/everything.yaml")).expect("read flow");
    let flow = load_flow(&text, &opts()).expect("loads");
    let names: Vec<&str> = flow
        .workflow
        .do_
        .0
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "load", "check", "price", "pay", "notify", "audit", "pause", "reject"
        ]
    );
    assert_eq!(flow.raw["document"]["name"], "everything");
    let at = flow
        .spans
        .value_location("/do/2/price/for/in")
        .expect("span of for.in");
    assert_eq!((at.line, at.column), (54, 13));
    let key = flow
        .spans
        .key_location("/do/2/price")
        .expect("span of the task name");
    assert_eq!((key.line, key.column), (50, 5));
}

/// The specification's examples that use what Baton refuses, with the one code each must
/// produce. Every other example must load without any diagnostic.
const UNSUPPORTED_EXAMPLES: [(&str, &str); 20] = [
    ("call-asyncapi-publish.yaml", "BATON-FLOW-027"),
    (
        "call-asyncapi-subscribe-consume-amount.yaml",
        "BATON-FLOW-027",
    ),
    (
        "call-asyncapi-subscribe-consume-forever-foreach.yaml",
        "BATON-FLOW-027",
    ),
    (
        "call-asyncapi-subscribe-consume-until.yaml",
        "BATON-FLOW-027",
    ),
    (
        "call-asyncapi-subscribe-consume-while.yaml",
        "BATON-FLOW-027",
    ),
    ("call-custom-function-cataloged.yaml", "BATON-FLOW-027"),
    ("call-grpc.yaml", "BATON-FLOW-027"),
    ("call-mcp.yaml", "BATON-FLOW-027"),
    ("run-container-cleanup-always.yaml", "BATON-FLOW-028"),
    ("run-container-cleanup-eventually.yaml", "BATON-FLOW-028"),
    ("run-container-stdin-and-arguments.yaml", "BATON-FLOW-028"),
    ("run-container-with-name.yaml", "BATON-FLOW-028"),
    ("run-container-with-pull-policy.yaml", "BATON-FLOW-028"),
    ("run-container.yaml", "BATON-FLOW-028"),
    ("run-return-all.yaml", "BATON-FLOW-028"),
    ("run-return-code.yaml", "BATON-FLOW-028"),
    ("run-return-none.yaml", "BATON-FLOW-028"),
    ("run-return-stderr.yaml", "BATON-FLOW-028"),
    ("run-script-with-stdin-and-arguments.yaml", "BATON-FLOW-028"),
    ("run-shell-stdin-and-arguments.yaml", "BATON-FLOW-028"),
];

/// `$BATON_STANDARDS_DIR`, by default the `shared/standards` folder beside the repository.
fn standards_dir() -> PathBuf {
    match std::env::var_os("BATON_STANDARDS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/standards"),
    }
}

#[test]
fn specification_examples_load_or_are_refused_as_unsupported() {
    let dir = standards_dir().join("sw-spec/examples");
    let paths = files(&dir, &["yaml"]);
    assert!(
        paths.len() >= 60,
        "expected the Serverless Workflow examples in {} (set BATON_STANDARDS_DIR)",
        dir.display()
    );
    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        let text = std::fs::read_to_string(path).expect("read example");
        let codes: Vec<String> = match load_flow(&text, &opts()) {
            Ok(_) => Vec::new(),
            Err(diags) => diags
                .iter()
                .map(|d| format!("{} {}", d.code, d.message))
                .collect(),
        };
        let expected: Vec<&str> = UNSUPPORTED_EXAMPLES
            .iter()
            .filter(|(f, _)| *f == name)
            .map(|(_, c)| *c)
            .collect();
        let actual: Vec<&str> = codes.iter().filter_map(|c| c.split(' ').next()).collect();
        if actual != expected {
            failures.push(format!("{name}: expected {expected:?}, got {codes:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
