//! Evaluation semantics: outputs, variables, numbers, key order, errors, and a sample of the
//! jq standard library going through the budget rewrite.

use baton_expr::{Budget, Expr, ExprError};
use serde_json::{Value, json};

fn eval(src: &str, input: Value) -> Result<Value, ExprError> {
    Expr::compile(src, &[])
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(&input, &[], &Budget::default())
}

fn all(src: &str, input: Value) -> Vec<Value> {
    Expr::compile(src, &[])
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval_all(&input, &[], &Budget::default())
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn ok(src: &str, input: Value) -> Value {
    eval(src, input).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn eval_returns_the_first_output() {
    assert_eq!(ok(".[]", json!([1, 2, 3])), json!(1));
    assert_eq!(ok("1, error(\"never reached\")", json!(null)), json!(1));
    assert_eq!(
        all(".[]", json!([1, 2, 3])),
        vec![json!(1), json!(2), json!(3)]
    );
}

#[test]
fn no_output_is_null() {
    assert_eq!(ok("empty", json!(1)), Value::Null);
    assert_eq!(ok(".[] | select(. > 5)", json!([1, 2])), Value::Null);
    assert!(all("empty", json!(1)).is_empty());
}

#[test]
fn variables_are_bound_in_order() {
    let e = Expr::compile("[$a, $b, .]", &["a", "b"]).unwrap();
    let out = e.eval(&json!(3), &[json!(1), json!({"x": 2})], &Budget::default());
    assert_eq!(out.unwrap(), json!([1, {"x": 2}, 3]));
    let e = Expr::compile("$context.user + \" \" + $input.name", &["input", "context"]).unwrap();
    let out = e.eval(
        &Value::Null,
        &[json!({"name": "Ann"}), json!({"user": "hi"})],
        &Budget::default(),
    );
    assert_eq!(out.unwrap(), json!("hi Ann"));
}

#[test]
fn wrong_number_of_values_is_an_error() {
    let e = Expr::compile("$a", &["a"]).unwrap();
    let err = e.eval(&Value::Null, &[], &Budget::default()).unwrap_err();
    assert_eq!(
        err,
        ExprError::Arity {
            expected: 1,
            got: 0
        }
    );
}

#[test]
fn numbers_keep_their_kind() {
    assert_eq!(ok(".a + 1", json!({"a": 1})), json!(2));
    assert_eq!(serde_json::to_string(&ok(". + 1", json!(1))).unwrap(), "2");
    assert_eq!(serde_json::to_string(&ok(".", json!(1.0))).unwrap(), "1.0");
    assert_eq!(ok(". * 2", json!(1.25)), json!(2.5));
    assert_eq!(ok(".", json!(u64::MAX)), json!(u64::MAX));
    assert_eq!(ok(".", json!(i64::MIN)), json!(i64::MIN));
    assert_eq!(
        ok("9007199254740993", json!(null)),
        json!(9007199254740993_u64)
    );
    // jq prints NaN as null and infinities as the largest doubles.
    assert_eq!(ok("nan", json!(null)), Value::Null);
    assert_eq!(ok("infinite", json!(null)), json!(f64::MAX));
    assert_eq!(ok("-infinite", json!(null)), json!(f64::MIN));
}

#[test]
fn object_key_order_is_preserved() {
    let out = ok(". + {a: 0}", json!({"z": 1, "b": 2}));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["z", "b", "a"]);
    let out = ok("{z: 1, a: 2, m: 3}", json!(null));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["z", "a", "m"]);
}

#[test]
fn string_interpolation_and_formats() {
    assert_eq!(
        ok("\"Hello \\(.name)!\"", json!({"name": "Ann"})),
        json!("Hello Ann!")
    );
    assert_eq!(
        ok("\"\\(1 + 2) = \\([1, 2])\"", json!(null)),
        json!("3 = [1,2]")
    );
    assert_eq!(ok("@base64", json!("hi")), json!("aGk="));
    assert_eq!(ok("@base64d", json!("aGk=")), json!("hi"));
    assert_eq!(ok("@uri", json!("a b")), json!("a%20b"));
    assert_eq!(ok("@json", json!({"a": [1]})), json!("{\"a\":[1]}"));
    assert_eq!(ok("@html \"<\\(.)>\"", json!("&")), json!("<&amp;>"));
}

#[test]
fn standard_library_sample() {
    let input = json!({"a": 1, "b": {"c": "k"}, "x": [3, 1, 2]});
    let cases = [
        ("keys", json!(["a", "b", "x"])),
        ("to_entries | map(.key)", json!(["a", "b", "x"])),
        ("with_entries(.value |= tostring) | .a", json!("1")),
        ("[.x[] | select(. > 1)]", json!([3, 2])),
        (".x | map(. * 10) | add", json!(60)),
        (".x | sort", json!([1, 2, 3])),
        (".x | length", json!(3)),
        (".b.c | ascii_upcase", json!("K")),
        ("\"1.5\" | tonumber", json!(1.5)),
        ("[.x[] | tostring] | join(\"-\")", json!("3-1-2")),
        ("\"a-b-c\" | split(\"-\")", json!(["a", "b", "c"])),
        ("\"abc\" | test(\"B\"; \"i\")", json!(true)),
        ("\"abcb\" | gsub(\"b\"; \"X\")", json!("aXcX")),
        ("\"v12\" | capture(\"(?<n>[0-9]+)\").n", json!("12")),
        (
            "[paths]",
            json!([
                ["a"],
                ["b"],
                ["b", "c"],
                ["x"],
                ["x", 0],
                ["x", 1],
                ["x", 2]
            ]),
        ),
        ("getpath([\"b\", \"c\"])", json!("k")),
        ("setpath([\"b\", \"d\"]; 5) | .b", json!({"c": "k", "d": 5})),
        ("del(.a, .x) | keys", json!(["b"])),
        (".x[] += 1 | .x", json!([4, 2, 3])),
        (".x |= map(. * 2) | .x", json!([6, 2, 4])),
        ("del(.x[] | select(. == 1)) | .x", json!([3, 2])),
        (
            "walk(if type == \"number\" then . + 1 else . end) | .x",
            json!([4, 2, 3]),
        ),
        ("pick(.b.c)", json!({"b": {"c": "k"}})),
        ("[limit(2; .x[])]", json!([3, 1])),
        ("first(.x[]), last(.x[]) | . * 1", json!(3)),
        ("reduce .x[] as $v (0; . + $v)", json!(6)),
        ("[foreach .x[] as $v (0; . + $v)]", json!([3, 4, 6])),
        (". as {a: $a, b: {c: $c}} | [$a, $c]", json!([1, "k"])),
        ("[range(0; 10; 3)]", json!([0, 3, 6, 9])),
        (
            "label $out | .x[] | if . == 1 then break $out else . end",
            json!(3),
        ),
        ("try error({code: 7}) catch .code", json!(7)),
        (".missing // \"default\"", json!("default")),
        (
            "if .a == 1 then \"one\" elif .a == 2 then \"two\" else \"many\" end",
            json!("one"),
        ),
        ("{(.b.c): .a}", json!({"k": 1})),
        ("{a: 1} * {a: {b: 2}}", json!({"a": {"b": 2}})),
        ("[1, 2, 2] - [2]", json!([1])),
        ("\"ab\" * 3", json!("ababab")),
        ("\"a,b\" / \",\"", json!(["a", "b"])),
        ("10 % 3", json!(1)),
        ("1425599507 | todate", json!("2015-03-05T23:51:47Z")),
        ("\"2015-03-05T23:51:47Z\" | fromdate", json!(1425599507)),
        (".x | tojson | fromjson", json!([3, 1, 2])),
        ("\"AB\" | explode | implode", json!("AB")),
        ("[.x[] | {v: .}] | group_by(.v % 2) | length", json!(2)),
        ("def inc(f): f + 1; inc(.a)", json!(2)),
        (
            "def fact: if . <= 1 then 1 else . * (. - 1 | fact) end; 10 | fact",
            json!(3628800),
        ),
        (
            "[0 | recurse(if . < 3 then . + 1 else empty end)]",
            json!([0, 1, 2, 3]),
        ),
        ("0 | until(. >= 1000; . + 1)", json!(1000)),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src, input.clone()), want, "{src}");
    }
}

#[test]
fn tail_recursion_is_not_limited_by_depth() {
    let loop_ = "def count: if . < 20000 then . + 1 | count else . end; count";
    assert_eq!(ok(loop_, json!(0)), json!(20000));
    assert_eq!(
        ok("[limit(5000; repeat(1))] | length", json!(null)),
        json!(5000)
    );
}

#[test]
fn runtime_errors_carry_the_message() {
    assert_eq!(
        eval("error(\"boom\")", Value::Null).unwrap_err(),
        ExprError::Runtime {
            message: "boom".into()
        }
    );
    assert_eq!(
        eval("error({a: 1})", Value::Null).unwrap_err(),
        ExprError::Runtime {
            message: "{\"a\":1}".into()
        }
    );
    let err = eval(".a + 1", json!({"a": "x"})).unwrap_err();
    assert!(matches!(err, ExprError::Runtime { .. }), "{err:?}");
    let long = eval("error(\"x\" * 100000)", Value::Null).unwrap_err();
    match long {
        ExprError::Runtime { message } => assert!(message.chars().count() <= 1025),
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_access_is_denied() {
    for src in [
        "env",
        "now",
        "halt",
        "halt_error",
        "localtime",
        "strflocaltime(\"%Y\")",
    ] {
        let err = eval(src, json!(0)).unwrap_err();
        assert!(matches!(err, ExprError::Runtime { .. }), "{src}: {err:?}");
    }
    assert!(Expr::compile("input", &[]).is_err());
    assert!(Expr::compile("$ENV", &[]).is_err());
}

#[test]
fn non_string_object_keys_are_an_error() {
    let err = eval("{(1): 2}", Value::Null).unwrap_err();
    assert!(matches!(err, ExprError::Runtime { .. }), "{err:?}");
}

#[test]
fn assignment_through_null_fails_as_in_jaq() {
    // jaq (unlike jq) does not create objects when assigning below `null`.
    assert!(eval(".a.b = 1", json!({})).is_err());
    assert_eq!(ok(".a = 1", json!({})), json!({"a": 1}));
}

#[test]
fn expressions_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expr>();
    assert_send_sync::<baton_expr::Template>();

    let e = Expr::compile("[.[] * 2] | add", &[]).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || e.eval(&json!([i, 1]), &[], &Budget::default()))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap().unwrap(), json!(2 * i + 2));
    }
    assert_eq!(e.source(), "[.[] * 2] | add");
}

#[test]
fn user_definitions_work_as_paths_and_in_updates() {
    let input = json!({"a": 1, "b": [1, 2, 3]});
    assert_eq!(
        ok("def at(k): .[k]; at(\"a\") |= . + 5 | .a", input.clone()),
        json!(6)
    );
    assert_eq!(
        ok("def at(k): .[k]; [path(at(\"b\")[1])]", input.clone()),
        json!([["b", 1]])
    );
    assert_eq!(
        ok(
            "def sel(f): .[] | select(f); .b | del(sel(. == 2))",
            input.clone()
        ),
        json!([1, 3])
    );
    assert_eq!(
        ok("def first_b: .b[0]; first_b = 9 | .b", input),
        json!([9, 2, 3])
    );
}

#[test]
fn recursion_over_nested_data_fits_the_default_depth() {
    let mut nested = json!("leaf");
    for _ in 0..40 {
        nested = json!({"children": [nested]});
    }
    let count =
        "def leaves: if type == \"object\" then .children | map(leaves) | add else 1 end; leaves";
    assert_eq!(ok(count, nested.clone()), json!(1));
    assert_eq!(ok("[.. | strings] | length", nested.clone()), json!(1));
    assert_eq!(ok("[paths] | length", nested), json!(80));
}
