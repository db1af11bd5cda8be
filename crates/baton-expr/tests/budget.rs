//! Hostile expressions end with an error in bounded time: no hang, no stack overflow, no
//! unbounded allocation. Each test would hang or abort the test process if a guard failed.

use baton_expr::{Budget, Expr, ExprError};
use serde_json::{Value, json};

const SMALL: Budget = Budget {
    steps_max: 100_000,
    output_bytes_max: 64 * 1024,
    depth_max: 32,
    outputs_max: 100,
};

fn run(src: &str, input: Value, budget: &Budget) -> Result<Value, ExprError> {
    Expr::compile(src, &[])
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(&input, &[], budget)
}

/// The budget limit `src` exceeds (any of them), failing the test on anything else.
fn exceeded(src: &str, budget: &Budget) -> String {
    match run(src, Value::Null, budget) {
        Err(ExprError::Budget { what, .. }) => what,
        other => panic!("{src}: expected a budget error, got {other:?}"),
    }
}

fn exceeds(src: &str, what: &str) {
    assert_eq!(exceeded(src, &SMALL), what, "{src}");
}

/// For expressions that grow in several ways at once, where which limit trips first is an
/// accident of the budget.
fn exceeds_any(src: &str) {
    exceeded(src, &SMALL);
}

#[test]
fn infinite_loops_run_out_of_steps() {
    exceeds("def f: f; f", "steps");
    exceeds("last(repeat(1))", "steps");
    exceeds("last(range(1e12))", "steps");
    exceeds("0 | until(false; . + 1)", "steps");
    exceeds_any("[0 | recurse(. + 1)] | length");
    exceeds("[limit(1e9; repeat(\"x\"))] | length", "steps");
    exceeds("def f: def g: f; g; f", "steps");
    // The default budget is enforced the same way.
    assert_eq!(exceeded("def f: f; f", &Budget::default()), "steps");
}

#[test]
fn budget_errors_cannot_be_caught() {
    exceeds("try (def f: f; f) catch \"caught\"", "steps");
    exceeds("(def f: f; f)? // 1", "steps");
    exceeds("[range(3) | try [range(1e12)] catch 0]", "output size");
}

#[test]
fn generators_are_bounded() {
    // The first output of an infinite generator is fine ...
    assert_eq!(run("repeat(1)", Value::Null, &SMALL).unwrap(), json!(1));
    // ... but not all of them, nor collecting them.
    let all = Expr::compile("repeat(1)", &[])
        .unwrap()
        .eval_all(&Value::Null, &[], &SMALL);
    assert_eq!(
        all.unwrap_err(),
        ExprError::Budget {
            what: "outputs".into(),
            limit: 100
        }
    );
    exceeds("[repeat(1)]", "output size");
    exceeds("[range(1e12)]", "output size");
    exceeds("[range(1e12)] | length", "output size");
}

#[test]
fn deep_recursion_is_stopped_before_the_stack_overflows() {
    for budget in [SMALL, Budget::default()] {
        assert_eq!(exceeded("def f(x): f(x + 1); f(0)", &budget), "depth");
        assert_eq!(exceeded("def f: 1 + f; f", &budget), "depth");
        assert_eq!(exceeded("def f: [f]; f", &budget), "depth");
        assert_eq!(exceeded("def f: {a: f}; f", &budget), "depth");
        assert_eq!(exceeded("def f(g): [g] | f(g + 1); f(0)", &budget), "depth");
        assert_eq!(exceeded("last(path(recurse(.a)))", &budget), "depth");
        assert_eq!(exceeded("path(last(recurse(.a)))", &budget), "depth");
        assert_eq!(exceeded("def f: .a | f; last(path(f))", &budget), "depth");
    }
}

#[test]
fn huge_strings_are_refused() {
    exceeds("\"x\" * 1000000000", "output size");
    exceeds("\"x\" * 100000000000000000000", "output size");
    exceeds("\"x\" | until(length > 1e9; . + .)", "output size");
    exceeds("\"x\" | until(false; \"\\(.)\\(.)\")", "output size");
    exceeds("\"x\" | until(false; @base64)", "output size");
    exceeds("\"\\\"\" | until(false; tojson)", "output size");
    exceeds_any("\"ab\" | until(false; explode | map(tostring) | join(\",\"))");
    exceeds(
        "[\"x\" * 1000 | range(1000) as $i | .] | join(\"\")",
        "output size",
    );
    // jaq refuses to repeat a string a non-integral number of times.
    assert!(matches!(
        run("\"x\" * 1e9", Value::Null, &SMALL),
        Err(ExprError::Runtime { .. })
    ));
}

#[test]
fn values_that_share_structure_are_measured_by_their_full_size() {
    exceeds("[1] | until(false; . + .)", "output size");
    exceeds("[1] | until(false; [., .])", "output size");
    exceeds("{} | until(false; {a: ., b: .})", "output size");
    exceeds("{} | until(false; .a = . | .b = .a)", "output size");
    exceeds("{} | until(false; . * {x: ., y: .})", "output size");
    exceeds(
        "[1, 1] | until(false; .[0] = . | .[1] = .[0])",
        "output size",
    );
    exceeds("{a: [1]} | until(false; .a += .a)", "output size");
    exceeds("[[1]] | until(false; .[0] |= [., .])", "output size");
}

#[test]
fn deeply_nested_values_are_refused() {
    exceeds("reduce range(100000) as $i (null; [.])", "depth");
    exceeds("reduce range(100000) as $i (null; {a: .})", "depth");
    exceeds("null | until(false; [.])", "depth");
    exceeds(
        "[range(40)] | reduce .[] as $i (null; {($i | tostring): .})",
        "depth",
    );
    // Deep inputs and variables are refused before evaluation.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let e = Expr::compile("$v", &["v"]).unwrap();
    let err = e.eval(&deep, &[json!(1)], &SMALL).unwrap_err();
    assert_eq!(
        err,
        ExprError::Budget {
            what: "depth".into(),
            limit: 32
        }
    );
    let err = e.eval(&json!(1), &[deep], &SMALL).unwrap_err();
    assert_eq!(
        err,
        ExprError::Budget {
            what: "depth".into(),
            limit: 32
        }
    );
}

#[test]
fn parsing_json_text_is_bounded() {
    let deep = run("(\"[\" * 10000) | fromjson", Value::Null, &SMALL);
    assert!(matches!(deep, Err(ExprError::Runtime { .. })), "{deep:?}");
    let long = run("(\"9\" * 10000) | tonumber", Value::Null, &SMALL);
    assert!(matches!(long, Err(ExprError::Runtime { .. })), "{long:?}");
    // Long digit runs inside strings are fine.
    let ok = run(
        "(\"\\\"\" + \"9\" * 10000 + \"\\\"\") | fromjson | length",
        Value::Null,
        &SMALL,
    );
    assert_eq!(ok.unwrap(), json!(10000));
}

#[test]
fn huge_integers_are_refused() {
    let out = run("2 | until(false; . * .)", Value::Null, &SMALL);
    assert!(matches!(out, Err(ExprError::Runtime { .. })), "{out:?}");
    let out = run("reduce range(20000) as $i (1; . * 10)", Value::Null, &SMALL);
    assert!(matches!(out, Err(ExprError::Runtime { .. })), "{out:?}");
}

#[test]
fn output_limits_apply_to_all_outputs_together() {
    let e = Expr::compile("range(1000) | \"x\" * 1000", &[]).unwrap();
    let err = e.eval_all(&Value::Null, &[], &SMALL).unwrap_err();
    assert_eq!(
        err,
        ExprError::Budget {
            what: "output size".into(),
            limit: 64 * 1024
        }
    );
    let e = Expr::compile("range(1000)", &[]).unwrap();
    let budget = Budget {
        outputs_max: 1000,
        ..SMALL
    };
    assert_eq!(e.eval_all(&Value::Null, &[], &budget).unwrap().len(), 1000);
    // An input larger than the limit can be inspected but not output whole.
    let big = json!({"blob": "x".repeat(100 * 1024), "n": 1});
    assert_eq!(run(".n", big.clone(), &SMALL).unwrap(), json!(1));
    assert!(matches!(
        run(".", big.clone(), &SMALL),
        Err(ExprError::Budget { .. })
    ));
    assert!(matches!(
        run("{a: .}", big, &SMALL),
        Err(ExprError::Budget { .. })
    ));
}

#[test]
fn expensive_natives_charge_for_their_work() {
    let tiny = Budget {
        steps_max: 500,
        ..SMALL
    };
    assert_eq!(exceeded("(\"a\" * 60000) | test(\"a*b\")", &tiny), "steps");
    assert_eq!(
        exceeded("(\"a\" * 60000) | indices(\"a\" * 100)", &tiny),
        "steps"
    );
    assert_eq!(exceeded("[range(100000)] | length", &tiny), "steps");
}

#[test]
fn a_trip_does_not_affect_later_evaluations() {
    let e = Expr::compile("if . then (def f: f; f) else 42 end", &[]).unwrap();
    assert!(matches!(
        e.eval(&json!(true), &[], &SMALL),
        Err(ExprError::Budget { .. })
    ));
    assert_eq!(e.eval(&json!(false), &[], &SMALL).unwrap(), json!(42));
}

#[test]
fn accumulating_in_reduce_stays_linear() {
    // Measuring each intermediate accumulator from scratch would be quadratic and exceed the
    // step budget long before the value does.
    let budget = Budget {
        output_bytes_max: 4 << 20,
        ..Budget::default()
    };
    let out = run(
        "reduce range(20000) as $i ([]; . + [$i]) | length",
        Value::Null,
        &budget,
    );
    assert_eq!(out.unwrap(), json!(20000));
    let out = run(
        "reduce range(20000) as $i ({}; . + {(\"k\\($i)\"): $i}) | length",
        Value::Null,
        &budget,
    );
    assert_eq!(out.unwrap(), json!(20000));
    let out = run(
        "reduce range(20000) as $i (\"\"; . + \"ab\") | length",
        Value::Null,
        &budget,
    );
    assert_eq!(out.unwrap(), json!(40000));
}
