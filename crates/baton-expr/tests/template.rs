//! Templates: JSON values with embedded `${ }` expressions.

use baton_expr::{Budget, CompileError, ExprError, Template};
use serde_json::json;

#[test]
fn nested_expressions_and_literals() {
    let t = Template::compile(
        &json!({
            "greeting": "Hello ${ .name }",
            "name": "${ .name }",
            "count": "${ .items | length }",
            "items": ["${ .items[0] }", 2, {"deep": "  ${ $ctx.x }  "}],
            "literal": {"n": 1, "s": "plain", "b": true, "z": null},
            "dollar": "$ { .name }"
        }),
        &["ctx"],
    )
    .unwrap();
    assert!(!t.is_constant());
    let out = t
        .eval(
            &json!({"name": "Ann", "items": ["a", "b"]}),
            &[json!({"x": 7})],
            &Budget::default(),
        )
        .unwrap();
    assert_eq!(
        out,
        json!({
            "greeting": "Hello ${ .name }",
            "name": "Ann",
            "count": 2,
            "items": ["a", 2, {"deep": 7}],
            "literal": {"n": 1, "s": "plain", "b": true, "z": null},
            "dollar": "$ { .name }"
        })
    );
    // Key order follows the template.
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["greeting", "name", "count", "items", "literal", "dollar"]
    );
}

#[test]
fn a_root_expression_and_constants() {
    let t = Template::compile(&json!("${ . + 1 }"), &[]).unwrap();
    assert!(!t.is_constant());
    assert_eq!(
        t.eval(&json!(1), &[], &Budget::default()).unwrap(),
        json!(2)
    );

    let value = json!({"a": [1, "x", {"b": null}]});
    let t = Template::compile(&value, &[]).unwrap();
    assert!(t.is_constant());
    assert_eq!(
        t.eval(&json!(null), &[], &Budget::default()).unwrap(),
        value
    );
    assert!(Template::compile(&json!(3), &[]).unwrap().is_constant());
}

#[test]
fn expressions_without_output_give_null() {
    let t = Template::compile(&json!({"a": "${ empty }"}), &[]).unwrap();
    assert_eq!(
        t.eval(&json!(null), &[], &Budget::default()).unwrap(),
        json!({"a": null})
    );
}

#[test]
fn compile_errors_point_at_the_bad_strings() {
    let errors = Template::compile(
        &json!({
            "ok": "${ .a }",
            "bad": "${ .a | }",
            "list": [1, {"x/y": "${ nosuch }", "t~": "${ ( }"}]
        }),
        &[],
    )
    .err()
    .unwrap();
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pointers, ["/bad", "/list/1/x~1y", "/list/1/t~0"]);
    assert!(matches!(errors[0].1, CompileError::Syntax { .. }));
    assert!(matches!(errors[1].1, CompileError::Undefined { .. }));

    let root = Template::compile(&json!("${ ] }"), &[]).err().unwrap();
    assert_eq!(root[0].0, "");
}

#[test]
fn runtime_errors_and_budgets() {
    let t = Template::compile(&json!({"a": "${ error(\"no\") }"}), &[]).unwrap();
    let err = t.eval(&json!(null), &[], &Budget::default()).unwrap_err();
    assert_eq!(
        err,
        ExprError::Runtime {
            message: "no".into()
        }
    );

    // The expressions of one template share the step allowance.
    let t = Template::compile(
        &json!(["${ [range(3000)] | length }", "${ [range(3000)] | length }"]),
        &[],
    )
    .unwrap();
    let budget = Budget {
        steps_max: 5_000,
        ..Budget::default()
    };
    assert_eq!(
        t.eval(&json!(null), &[], &budget).unwrap_err(),
        ExprError::Budget {
            what: "steps".into(),
            limit: 5_000
        }
    );
    let budget = Budget {
        steps_max: 10_000,
        ..Budget::default()
    };
    assert_eq!(
        t.eval(&json!(null), &[], &budget).unwrap(),
        json!([3000, 3000])
    );
}

#[test]
fn wrong_number_of_values() {
    let t = Template::compile(&json!("${ $a }"), &["a"]).unwrap();
    let err = t.eval(&json!(null), &[], &Budget::default()).unwrap_err();
    assert_eq!(
        err,
        ExprError::Arity {
            expected: 1,
            got: 0
        }
    );
}
