//! FEEL text, parsed as an expression and as decision table unary tests,
//! then evaluated with a small step budget. Any panic, stack overflow or
//! runaway evaluation is a bug.
#![no_main]

use std::sync::Arc;

use baton_decision::feel::parser::{parse_expression, parse_unary_tests};
use baton_decision::feel::{Evaluator, NoHost, Value};
use libfuzzer_sys::fuzz_target;

/// Enough for any reasonable expression; small enough that a runaway one
/// ends quickly.
const STEPS: u64 = 200_000;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // Multi-word names the parser must be able to match.
    let names: [Arc<str>; 2] = [Arc::from("Monthly Salary"), Arc::from("a b")];
    let host = NoHost;
    if let Ok(e) = parse_expression(src, &names) {
        let mut ev = Evaluator::new(&host);
        ev.set_step_budget(STEPS);
        ev.bind(Arc::from("Monthly Salary"), Value::num(1000));
        ev.bind(Arc::from("x"), Value::list(vec![Value::num(1), Value::str("a")]));
        let v = ev.eval(&e);
        // Rendering the result must not fail either.
        let _ = v.to_string();
        let _ = baton_decision::json::to_json(&v);
    }
    if let Ok(t) = parse_unary_tests(src, &names) {
        for input in [Value::Null, Value::num(5), Value::str("a")] {
            let mut ev = Evaluator::new(&host);
            ev.set_step_budget(STEPS);
            let _ = ev.unary_tests(&input, &t);
        }
    }
});
