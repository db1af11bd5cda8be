//! Evaluates the benchmark table (`tests/data/first-hit-10.dmn`) in a loop,
//! for profilers that count instructions (callgrind) rather than time:
//!
//! ```sh
//! cargo build --release -p baton-decision --example first_hit_loop
//! valgrind --tool=callgrind ./target/release/examples/first_hit_loop feel-trace 100000
//! ```
//!
//! Modes: `feel`, `feel-trace`, `json`, `json-trace`. Subtract a run with 0
//! iterations to remove the cost of compiling the model.

use std::hint::black_box;
use std::sync::Arc;

use baton_decision::feel::Value;
use baton_decision::feel::value::Context;
use baton_decision::{DecisionModel, EvalOptions};

const MODEL: &str = include_str!("../tests/data/first-hit-10.dmn");
const CASES: [(i64, &str, &str); 4] = [
    (40, "DE", "gold"),
    (20, "CA", "silver"),
    (70, "JP", "platinum"),
    (30, "JP", "none"),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "feel".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let model = DecisionModel::parse_strict(MODEL).expect("model compiles");
    let feel: Vec<Context> = CASES
        .iter()
        .map(|(a, c, t)| Context {
            entries: vec![
                (Arc::from("age"), Value::num(*a)),
                (Arc::from("country"), Value::str(c)),
                (Arc::from("tier"), Value::str(t)),
            ],
        })
        .collect();
    let json: Vec<serde_json::Value> = CASES
        .iter()
        .map(|(a, c, t)| serde_json::json!({"age": a, "country": c, "tier": t}))
        .collect();
    let trace = mode.ends_with("-trace");
    let opts = EvalOptions {
        trace,
        ..EvalOptions::default()
    };
    for i in 0..n {
        let k = i % CASES.len();
        if mode.starts_with("json") {
            black_box(model.evaluate("Offer", &json[k], trace).expect("evaluates"));
        } else {
            black_box(
                model
                    .evaluate_feel("Offer", &feel[k], &opts)
                    .expect("evaluates"),
            );
        }
    }
}
