//! The benchmark table: FIRST hit policy, 10 rules over `age` (ranges),
//! `country` (lists) and `tier` (lists), 2 outputs; with and without trace.
//! Run: `cargo bench -p baton-decision --bench first_hit`.

use std::hint::black_box;
use std::sync::Arc;

use baton_decision::feel::Value;
use baton_decision::feel::value::Context;
use baton_decision::{DecisionModel, EvalOptions};
use criterion::{Criterion, criterion_group, criterion_main};

const MODEL: &str = include_str!("../tests/data/first-hit-10.dmn");

fn inputs() -> Vec<Context> {
    // A mix that fires early, middle and late rules.
    [
        (40, "DE", "gold"),
        (20, "CA", "silver"),
        (70, "JP", "platinum"),
        (30, "JP", "none"),
    ]
    .iter()
    .map(|(age, country, tier)| Context {
        entries: vec![
            (Arc::from("age"), Value::num(*age)),
            (Arc::from("country"), Value::str(country)),
            (Arc::from("tier"), Value::str(tier)),
        ],
    })
    .collect()
}

fn bench(c: &mut Criterion) {
    let model = DecisionModel::parse_strict(MODEL).expect("model compiles");
    let ins = inputs();
    for (label, trace) in [
        ("baton/feel-values", false),
        ("baton/feel-values+trace", true),
    ] {
        let opts = EvalOptions {
            trace,
            ..EvalOptions::default()
        };
        c.bench_function(label, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % ins.len();
                black_box(
                    model
                        .evaluate_feel("Offer", black_box(&ins[i]), &opts)
                        .expect("evaluates"),
                )
            })
        });
    }
    let json_ins: Vec<serde_json::Value> = [
        (40, "DE", "gold"),
        (20, "CA", "silver"),
        (70, "JP", "platinum"),
        (30, "JP", "none"),
    ]
    .iter()
    .map(|(a, c, t)| serde_json::json!({"age": a, "country": c, "tier": t}))
    .collect();
    for (label, trace) in [("baton/json", false), ("baton/json+trace", true)] {
        c.bench_function(label, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % json_ins.len();
                black_box(
                    model
                        .evaluate("Offer", black_box(&json_ins[i]), trace)
                        .expect("evaluates"),
                )
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
