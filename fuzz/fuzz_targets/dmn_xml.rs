//! DMN XML: parsed and compiled, then every decision evaluated (with a
//! trace, serialised) on an empty input and on a small one. Any panic,
//! stack overflow or runaway evaluation is a bug.
#![no_main]

use baton_decision::{DecisionModel, EvalOptions};
use libfuzzer_sys::fuzz_target;

const STEPS: u64 = 200_000;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(model) = DecisionModel::parse(xml) else {
        return;
    };
    let inputs = [
        serde_json::json!({}),
        serde_json::json!({"age": 40, "country": "DE", "tier": "gold", "x": [1, "a", null]}),
    ];
    let names: Vec<String> = model.decision_names().iter().map(|s| s.to_string()).collect();
    for name in &names {
        for input in &inputs {
            let opts = EvalOptions {
                trace: true,
                step_budget: Some(STEPS),
                ..EvalOptions::default()
            };
            let ctx = baton_decision::json::from_json(input);
            let baton_decision::feel::Value::Context(ctx) = ctx else {
                continue;
            };
            if let Ok((v, trace)) = model.evaluate_feel(name, &ctx, &opts) {
                let _ = baton_decision::json::to_json(&v);
                if let Some(t) = trace {
                    let _ = serde_json::to_string(&t);
                }
            }
        }
    }
});
