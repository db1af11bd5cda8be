//! The public API: evaluation, the trace's JSON form, hit policies, and
//! errors for bad models and bad input.

use baton_decision::{DecisionModel, DmnError};
use serde_json::json;

const FIRST_HIT: &str = include_str!("data/first-hit-10.dmn");

fn model() -> DecisionModel {
    DecisionModel::parse_strict(FIRST_HIT).expect("the benchmark model compiles")
}

#[test]
fn first_hit_table_picks_the_first_matching_rule() {
    let m = model();
    let cases = [
        (
            json!({"age": 40, "country": "DE", "tier": "gold"}),
            json!({"decision": "approve", "discount": 12}),
        ),
        (
            json!({"age": 17, "country": "US", "tier": "gold"}),
            json!({"decision": "reject", "discount": 0}),
        ),
        (
            json!({"age": 20, "country": "CA", "tier": "silver"}),
            json!({"decision": "review", "discount": 0}),
        ),
        (
            json!({"age": 70, "country": "JP", "tier": "platinum"}),
            json!({"decision": "approve", "discount": 20}),
        ),
        (
            json!({"age": 30, "country": "JP", "tier": "none"}),
            json!({"decision": "reject", "discount": 0}),
        ),
    ];
    for (input, expected) in cases {
        let r = m.evaluate("Offer", &input, false).expect("evaluates");
        assert_eq!(r.output, expected, "input {input}");
        assert!(r.trace.is_none());
    }
}

#[test]
fn trace_names_inputs_matched_and_fired_rules() {
    let r = model()
        .evaluate(
            "Offer",
            &json!({"age": 40, "country": "DE", "tier": "gold"}),
            true,
        )
        .expect("evaluates");
    let trace = serde_json::to_value(r.trace.expect("trace requested")).expect("serialises");
    assert_eq!(
        trace,
        json!({
            "decision": "Offer",
            "decisions": [{
                "id": "d_offer",
                "name": "Offer",
                "output": {"decision": "approve", "discount": 12},
                "tables": [{
                    "id": "t_offer",
                    "hit_policy": "FIRST",
                    "inputs": [
                        {"input": "age", "value": 40},
                        {"input": "country", "value": "DE"},
                        {"input": "tier", "value": "gold"}
                    ],
                    "matched": [{"index": 5, "id": "rule5"}],
                    "fired": [{"index": 5, "id": "rule5"}],
                    "output": {"decision": "approve", "discount": 12}
                }]
            }]
        })
    );
}

const POLICY_MODEL: &str = r#"<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" name="p" namespace="p">
  <decision id="d" name="Result">
    <decisionTable id="t" hitPolicy="HIT_POLICY" AGG>
      <input id="i"><inputExpression><text>x</text></inputExpression></input>
      <output id="o" name="o"><outputValues><text>"low", "mid", "high"</text></outputValues></output>
      <rule id="r1"><inputEntry><text>&gt; 0</text></inputEntry><outputEntry><text>"high"</text></outputEntry></rule>
      <rule id="r2"><inputEntry><text>&gt; 5</text></inputEntry><outputEntry><text>"low"</text></outputEntry></rule>
      <rule id="r3"><inputEntry><text>&gt; 8</text></inputEntry><outputEntry><text>"mid"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>"#;

fn policy(hit: &str, agg: Option<&str>, x: i64) -> serde_json::Value {
    let xml = POLICY_MODEL.replace("HIT_POLICY", hit).replace(
        "AGG",
        &agg.map(|a| format!("aggregation=\"{a}\""))
            .unwrap_or_default(),
    );
    let m = DecisionModel::parse_strict(&xml).expect("compiles");
    m.evaluate("Result", &json!({ "x": x }), false)
        .expect("evaluates")
        .output
}

#[test]
fn hit_policies_follow_dmn() {
    assert_eq!(policy("UNIQUE", None, 1), json!("high"));
    assert_eq!(
        policy("UNIQUE", None, 9),
        json!(null),
        "several matches violate UNIQUE"
    );
    assert_eq!(policy("FIRST", None, 9), json!("high"));
    assert_eq!(
        policy("ANY", None, 9),
        json!(null),
        "ANY needs equal outputs"
    );
    assert_eq!(
        policy("PRIORITY", None, 9),
        json!("low"),
        "output values list the priority"
    );
    assert_eq!(
        policy("OUTPUT ORDER", None, 9),
        json!(["low", "mid", "high"])
    );
    assert_eq!(policy("RULE ORDER", None, 9), json!(["high", "low", "mid"]));
    assert_eq!(policy("COLLECT", None, 6), json!(["high", "low"]));
    assert_eq!(policy("COLLECT", Some("COUNT"), 9), json!(3));
    assert_eq!(policy("COLLECT", Some("MIN"), 9), json!("high"));
    assert_eq!(policy("COLLECT", Some("MAX"), 9), json!("mid"));
    assert_eq!(
        policy("UNIQUE", None, -1),
        json!(null),
        "no match and no default"
    );
}

#[test]
fn bad_models_and_inputs_are_errors_not_panics() {
    assert!(matches!(
        DecisionModel::parse("<definitions"),
        Err(DmnError::Xml { .. })
    ));
    assert!(matches!(
        DecisionModel::parse("<other/>"),
        Err(DmnError::Xml { .. })
    ));
    let bad = POLICY_MODEL
        .replace("HIT_POLICY", "FIRST")
        .replace("AGG", "")
        .replace("&gt; 5", "&gt; (5");
    let err = DecisionModel::parse_strict(&bad)
        .err()
        .expect("bad FEEL is reported");
    let msg = err.to_string();
    assert!(
        msg.contains("BATON-DMN-002") && msg.contains("> (5"),
        "{msg}"
    );
    // The lenient parse keeps the rest of the model usable.
    let lenient = DecisionModel::parse(&bad).expect("parses");
    assert_eq!(lenient.diagnostics().len(), 1);
    assert_eq!(
        lenient
            .evaluate("Result", &json!({"x": 1}), false)
            .expect("evaluates")
            .output,
        json!("high")
    );
    let m = model();
    assert!(matches!(
        m.evaluate("Nope", &json!({}), false),
        Err(DmnError::UnknownDecision { .. })
    ));
    assert!(matches!(
        m.evaluate("Offer", &json!([1]), false),
        Err(DmnError::Input { .. })
    ));
    // Wrong input types give null-driven results, never a panic.
    let r = m
        .evaluate(
            "Offer",
            &json!({"age": "N/A", "country": 3, "tier": null}),
            false,
        )
        .expect("evaluates");
    assert_eq!(r.output, json!({"decision": "reject", "discount": 0}));
}

#[test]
fn hostile_expressions_are_bounded() {
    use baton_decision::feel::eval_str;
    let v =
        eval_str("(function(g, n) g(g, n + 1))(function(g, n) g(g, n + 1), 1)").expect("parses");
    assert!(v.is_null(), "runaway recursion ends in null");
    let v = eval_str("for a in 1..2000, b in 1..2000 return a").expect("parses");
    assert!(v.is_null(), "oversized products end in null");
    assert!(eval_str(&"[".repeat(10_000)).is_err());
}

#[test]
fn random_token_soup_never_panics() {
    use baton_decision::feel::eval_str;
    let atoms = [
        "1",
        "-",
        "+",
        "*",
        "/",
        "**",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        "..",
        ".",
        ":",
        "?",
        "@",
        "\"",
        "\"é\"",
        "a b",
        "x",
        "if",
        "then",
        "else",
        "for",
        "in",
        "return",
        "some",
        "every",
        "satisfies",
        "function",
        "not(",
        "date(\"2020-01-01\")",
        "time(\"é0:00:00\")",
        "@\"P1D\"",
        "< 5",
        "between",
        "and",
        "or",
        "instance of",
        "null",
        "true",
        "[1..",
        "]",
        "substring(\"abc\", -9)",
        "//",
        "/*",
    ];
    // A deterministic walk over token sequences: a cheap stand-in for a
    // fuzzer that runs in every test run.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        let mut src = String::new();
        let n = (seed % 7) as usize + 1;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            src.push_str(atoms[(seed % atoms.len() as u64) as usize]);
            src.push(' ');
        }
        let _ = eval_str(&src);
        let _ = baton_decision::feel::parser::parse_unary_tests(&src, &[]);
    }
}

/// The trace of a requirement graph: required decisions first, a COLLECT
/// table with several matches, a FIRST table that fell back to its default,
/// and a business knowledge model's table listed under the decision that
/// invoked it. The expected JSON is the stable trace format (DESIGN.md).
#[test]
fn trace_of_a_requirement_graph_is_stable() {
    let m = DecisionModel::parse_strict(include_str!("data/trace-graph.dmn")).expect("compiles");
    let r = m
        .evaluate("Summary", &json!({"score": 120, "region": "US"}), true)
        .expect("evaluates");
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("data/trace-graph.json")).expect("golden JSON");
    assert_eq!(serde_json::to_value(&r).expect("serialises"), expected);
}

/// Work that grows without bound (nested loops, quadratic `partial`, big
/// products) ends within the step budget.
#[test]
fn runaway_work_is_bounded_by_the_step_budget() {
    use baton_decision::feel::parser::parse_expression;
    use baton_decision::feel::{Evaluator, NoHost};
    let host = NoHost;
    for src in [
        "for a in 1..999999 return for b in 1..999999 return a",
        "for i in 1..999999 return count(partial)",
        "count(for i in 1..999999 return string join(for j in 1..999 return \"x\"))",
        "some a in (for i in 1..999999 return i), b in (for j in 1..999999 return j) satisfies a = -1",
    ] {
        let e = parse_expression(src, &[]).expect(src);
        let mut ev = Evaluator::new(&host);
        ev.set_step_budget(2_000_000);
        let v = ev.eval(&e);
        assert!(ev.out_of_steps(), "{src}: stopped by the budget");
        assert!(
            v.to_string().len() < 64 * 1024 * 1024,
            "{src}: result too large"
        );
    }
    let e = parse_expression("for a in 1..999999 return a", &[]).expect("parses");
    let mut ev = Evaluator::new(&host);
    ev.set_step_budget(1_000);
    assert!(ev.eval(&e).is_null(), "a small budget stops a long loop");
    let mut ev = Evaluator::new(&host);
    ev.set_step_budget(10_000_000);
    assert!(!ev.eval(&e).is_null(), "a large one does not");
    assert!(!ev.out_of_steps());
}

/// Strings stop growing at the size limit (16 MiB): doubling a string past
/// it gives null instead of exhausting memory.
#[test]
fn strings_are_bounded() {
    use baton_decision::feel::eval_str;
    let v = eval_str(
        "for i in 1..40 return if i = 1 then \"abcdefgh\" else string length(partial[-1] + partial[-1])",
    )
    .expect("parses");
    assert!(!v.is_null());
    let v = eval_str(
        "for i in 1..30 return if i = 1 then \"abcdefgh\" else if partial[-1] = null then null else partial[-1] + partial[-1]",
    )
    .expect("parses");
    let baton_decision::feel::Value::List(items) = v else {
        panic!("a list");
    };
    // 8 bytes doubled 21 times is 16 MiB: the next doubling is refused.
    assert!(!items[21].is_null());
    assert!(items[22].is_null());
}

/// Fuzzing regression (feel target, out of memory): `==…==5 **6` nested
/// unary `=` comparisons, each a range whose two ends share the inner
/// range, so the written-out value doubled with every `=`. Ranges now need
/// ordered end points, and rendering stops after a bounded number of values.
#[test]
fn nested_unary_equals_do_not_build_exponential_values() {
    use baton_decision::feel::eval_str;
    let src = format!("{}5 **6", "=".repeat(54));
    let v = eval_str(&src).expect("parses");
    assert!(v.to_string().len() < 1000, "{v}");
    assert!(eval_str("= [1..2]").expect("parses").is_null());
    assert!(eval_str("< {a: 1}").expect("parses").is_null());
    assert!(!eval_str("= 5").expect("parses").is_null());
}

/// A list holding the previous list twice, sixty times: small in memory
/// (shared parts), 2^60 values written out. Rendering it as a string, as
/// JSON, or through `string()` stays bounded; equality with itself is
/// immediate.
#[test]
fn rendering_shared_structures_is_bounded() {
    use baton_decision::feel::eval_str;
    let v =
        eval_str("(for i in 1..60 return if i = 1 then [1] else [partial[-1], partial[-1]])[-1]")
            .expect("parses");
    assert!(matches!(v, baton_decision::feel::Value::List(_)));
    let text = v.to_string();
    assert!(text.ends_with(']') && text.contains('…'));
    assert!(text.len() < 64 * 1024 * 1024);
    let json = baton_decision::json::to_json(&v);
    assert!(json.to_string().len() < 64 * 1024 * 1024);
    assert!(v.to_string_bounded().is_none());
    let s = eval_str(
        "string((for i in 1..60 return if i = 1 then [1] else [partial[-1], partial[-1]])[-1])",
    )
    .expect("parses");
    assert!(s.is_null(), "string() of an oversized value is null");
    let same = eval_str(
        "(for i in 1..60 return if i = 1 then [1] else [partial[-1], partial[-1]])[-1] = (for i in 1..60 return if i = 1 then [1] else [partial[-1], partial[-1]])[-1]",
    );
    // Two separately built copies: equality gives up (null) after a bounded
    // number of comparisons instead of walking 2^60 pairs.
    assert!(same.expect("parses").is_null());
    let v = eval_str(
        "{a: (for i in 1..60 return if i = 1 then [1] else [partial[-1], partial[-1]])[-1], b: a = a}.b",
    )
    .expect("parses");
    assert_eq!(v.to_string(), "true", "a value equals itself");
}

/// XPath regular expressions where Rust's syntax differs: the `x` flag
/// removes whitespace outside character classes, `.` does not match a
/// carriage return, null flags are no flags, classes subtract with `-[`.
#[test]
fn matches_follows_xpath_flags() {
    use baton_decision::feel::eval_str;
    let t = |src: &str| eval_str(src).expect(src).to_string();
    assert_eq!(t(r#"matches("hello world", "hello\ sworld", "x")"#), "true");
    assert_eq!(
        t(r#"matches("hello world", "hello[ ]world ", "x")"#),
        "true"
    );
    assert_eq!(t(r#"matches("hello world", "hello world", "x")"#), "false");
    assert_eq!(t("matches(\"a\u{000D}b\", \"a.b\")"), "false");
    assert_eq!(t("matches(\"a\u{000D}b\", \"a.b\", \"s\")"), "true");
    assert_eq!(t(r#"matches("a.b", "a[.]b")"#), "true");
    assert_eq!(t(r#"matches("abracadabra", "bra", null)"#), "true");
    assert_eq!(t(r#"matches("O", "[A-Z-[OI]]", "i")"#), "false");
    assert_eq!(t(r#"matches("P", "[A-Z-[OI]]")"#), "true");
}

/// Deeply nested documents are refused before compiling (compiling,
/// evaluating and dropping nested expressions recurse); documents at the
/// limit still compile and evaluate on a 2 MiB thread stack.
#[test]
fn nesting_is_bounded() {
    fn nested_lists(levels: usize) -> String {
        format!(
            r#"<definitions xmlns="https://www.omg.org/spec/DMN/20230324/MODEL/" name="m" namespace="n"><decision id="d" name="D">{}<literalExpression><text>1</text></literalExpression>{}</decision></definitions>"#,
            "<list>".repeat(levels),
            "</list>".repeat(levels)
        )
    }
    let err = DecisionModel::parse(&nested_lists(20_000))
        .err()
        .expect("refused");
    assert!(matches!(err, DmnError::Xml { .. }), "{err}");
    let ok = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let m = DecisionModel::parse(&nested_lists(120)).expect("compiles");
            m.evaluate("D", &json!({}), true).expect("evaluates").output
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(ok.is_array());
}

/// Recursion through FEEL functions whose bodies are themselves deeply
/// nested stays within the stack: the call depth and the expression depth
/// are both bounded.
#[test]
fn deep_recursion_with_deep_bodies_is_bounded() {
    // `g` calls itself through its argument; in each call the recursive
    // call sits under a left-nested chain of 100 additions.
    let g = format!("function(g, n) g(g, n + 1){}", " + 0".repeat(100));
    let src = format!("({g})({g}, 1)");
    let v = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || baton_decision::feel::eval_str(&src).expect("parses"))
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert!(v.is_null(), "runaway recursion ends in null");
}

/// A business knowledge model that invokes itself through a boxed
/// invocation (no FEEL expression in between) ends at the call depth limit
/// without exhausting a 2 MiB stack.
#[test]
fn boxed_self_invocation_is_bounded() {
    let xml = r##"<definitions xmlns="https://www.omg.org/spec/DMN/20230324/MODEL/" name="m" namespace="n">
  <businessKnowledgeModel id="b" name="Loop">
    <encapsulatedLogic>
      <formalParameter name="x"/>
      <context>
        <contextEntry><variable name="y"/>
          <invocation><literalExpression><text>Loop</text></literalExpression>
            <binding><parameter name="x"/><literalExpression><text>x + 1</text></literalExpression></binding>
          </invocation>
        </contextEntry>
        <contextEntry><literalExpression><text>y</text></literalExpression></contextEntry>
      </context>
    </encapsulatedLogic>
  </businessKnowledgeModel>
  <decision id="d" name="D">
    <knowledgeRequirement><requiredKnowledge href="#b"/></knowledgeRequirement>
    <invocation><literalExpression><text>Loop</text></literalExpression>
      <binding><parameter name="x"/><literalExpression><text>1</text></literalExpression></binding>
    </invocation>
  </decision>
</definitions>"##;
    let out = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let m = DecisionModel::parse_strict(xml).expect("compiles");
            m.evaluate("D", &json!({}), true).expect("evaluates").output
        })
        .expect("thread")
        .join()
        .expect("no stack overflow");
    assert_eq!(out, json!(null));
}
