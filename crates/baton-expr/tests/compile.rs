//! Compilation errors: what and where.

use baton_expr::{Budget, CompileError, Expr};
use serde_json::json;

fn err(src: &str) -> CompileError {
    match Expr::compile(src, &["known"]) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e,
    }
}

#[test]
fn syntax_errors_have_a_column() {
    match err(".a | | .b") {
        CompileError::Syntax { column, found, .. } => {
            assert_eq!(column, 6);
            assert_eq!(found, "`|`");
        }
        other => panic!("{other:?}"),
    }
    match err("[1, 2") {
        CompileError::Syntax {
            column, expected, ..
        } => {
            assert_eq!(column, 6);
            assert_eq!(expected, "closing delimiter for `[`");
        }
        other => panic!("{other:?}"),
    }
    match err("if . then 1") {
        CompileError::Syntax { found, .. } => assert_eq!(found, "end of input"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(err(""), CompileError::Syntax { .. }));
    // Columns count characters, not bytes.
    match err("\"é\" | )") {
        CompileError::Syntax { column, .. } => assert_eq!(column, 7),
        other => panic!("{other:?}"),
    }
}

#[test]
fn undefined_names_have_a_column() {
    assert_eq!(
        err(".a | nosuch(1)"),
        CompileError::Undefined {
            column: 6,
            kind: "filter with 1 argument(s)".into(),
            name: "nosuch".into(),
        }
    );
    assert_eq!(
        err("$known + $unknown"),
        CompileError::Undefined {
            column: 10,
            kind: "variable".into(),
            name: "$unknown".into(),
        }
    );
    let message = err("map").to_string();
    assert!(
        message.contains("column 1") && message.contains("map"),
        "{message}"
    );
}

#[test]
fn engine_names_are_reserved() {
    for src in [
        "__baton_add(1; 2)",
        "def __baton_x: 1; 2",
        "1 as $__baton_v | 2",
        "def f($__baton_a): 1; f(2)",
    ] {
        assert!(matches!(err(src), CompileError::Reserved { .. }), "{src}");
    }
    match err(". | __baton_check(.)") {
        CompileError::Reserved { column, name } => {
            assert_eq!((column, name.as_str()), (5, "__baton_check"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_on_the_source() {
    let long = format!(". + {}", "1".repeat(101));
    assert!(matches!(
        err(&long),
        CompileError::NumberTooLong {
            column: 5,
            max: 100
        }
    ));
    let huge = ".".repeat(64 * 1024 + 1);
    assert!(matches!(err(&huge), CompileError::TooLong { .. }));
}

#[test]
fn variable_names_are_checked() {
    for bad in ["", "1a", "a-b", "$a", "__baton_x"] {
        assert!(
            matches!(
                Expr::compile(".", &[bad]),
                Err(CompileError::Variable { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(Expr::compile("$a_1", &["a_1"]).is_ok());
}

#[test]
fn long_sources_compile_on_a_big_stack() {
    // Deeply nested and long sources recurse in jaq's parser and compiler.
    let nested = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
    assert!(Expr::compile(&nested, &[]).is_ok());
    let chain = vec!["1"; 3000].join("+");
    let e = Expr::compile(&chain, &[]).unwrap();
    // Evaluating it nests as deeply; the stack check stops it instead of overflowing.
    let out = e.eval(&json!(null), &[], &Budget::default());
    assert!(out.is_err() || out == Ok(json!(3000)), "{out:?}");
    let long_but_flat = format!("[{}] | add", vec!["1"; 5000].join(","));
    let e = Expr::compile(&long_but_flat, &[]).unwrap();
    assert_eq!(
        e.eval(&json!(null), &[], &Budget::default()).unwrap(),
        json!(5000)
    );
}
