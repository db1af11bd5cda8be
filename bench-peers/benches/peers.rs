//! Baton, dsntk 0.3 and zen-engine 2.x evaluating the same decision table in
//! one run: FIRST hit policy, 10 rules over `age` (ranges), `country` (lists)
//! and `tier` (lists), two outputs.
//!
//! The DMN model is the one Baton's own benchmark uses
//! (`crates/baton-decision/tests/data/first-hit-10.dmn`); zen-engine reads
//! the equivalent JDM graph in `data/first-hit-10.json`. Before timing
//! anything the bench checks that the three engines return the same outputs
//! for every input; it stops if they disagree.
//!
//! Each engine gets its input in its own native value type, built once
//! outside the timed loop (Baton: a FEEL context; dsntk: a `FeelContext`;
//! zen: a `Variable`), and the model is compiled once outside the loop
//! (zen: a pre-created, pre-compiled `Decision`). Baton and zen are also
//! timed through JSON (`serde_json` value in, `serde_json` value out), which
//! is what Baton's CLI and flows use; dsntk 0.3 has no in-process JSON API.
//!
//! Run: `cd bench-peers && nice -n 15 cargo bench --bench peers`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use baton_decision::feel::Value as BValue;
use baton_decision::feel::value::Context as BContext;
use baton_decision::{DecisionModel, EvalOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use dsntk_feel::context::FeelContext;
use dsntk_feel::values::Value as DValue;
use dsntk_feel::{FeelNumber, Name};
use dsntk_model_evaluator::ModelEvaluator;
use zen_engine::model::DecisionContent;
use zen_engine::{DecisionEngine, EvaluationOptions};
use zen_expression::Variable;

const DMN: &str = include_str!("../../crates/baton-decision/tests/data/first-hit-10.dmn");
const JDM: &str = include_str!("../data/first-hit-10.json");
const NAMESPACE: &str = "https://baton.example/dmn/eligibility";
const MODEL_NAME: &str = "Eligibility";
const DECISION: &str = "Offer";

/// Inputs that fire early, middle and late rules and the catch-all, with the
/// expected (decision, discount) for each.
const CASES: [(i64, &str, &str, &str, i64); 8] = [
    (40, "DE", "gold", "approve", 12),
    (20, "CA", "silver", "review", 0),
    (70, "JP", "platinum", "approve", 20),
    (30, "JP", "none", "reject", 0),
    (15, "US", "gold", "reject", 0),
    (22, "US", "gold", "approve", 10),
    (64, "MX", "platinum", "approve", 15),
    (30, "FR", "silver", "approve", 5),
];

/// Runs a future that is expected to complete without waiting on anything
/// (zen-engine's evaluation of a graph without function or HTTP nodes). A
/// future that does wait is driven by a current-thread tokio runtime.
fn run_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
            .block_on(fut),
    }
}

struct Baton {
    model: DecisionModel,
    feel: Vec<BContext>,
    json: Vec<serde_json::Value>,
}

impl Baton {
    fn new() -> Baton {
        let model = DecisionModel::parse_strict(DMN).expect("Baton compiles the model");
        let feel = CASES
            .iter()
            .map(|(age, country, tier, _, _)| BContext {
                entries: vec![
                    (Arc::from("age"), BValue::num(*age)),
                    (Arc::from("country"), BValue::str(country)),
                    (Arc::from("tier"), BValue::str(tier)),
                ],
            })
            .collect();
        let json = CASES
            .iter()
            .map(|(a, c, t, _, _)| serde_json::json!({"age": a, "country": c, "tier": t}))
            .collect();
        Baton { model, feel, json }
    }

    fn eval_feel(&self, i: usize, trace: bool) -> (BValue, Option<baton_decision::Trace>) {
        let opts = EvalOptions {
            trace,
            ..EvalOptions::default()
        };
        self.model
            .evaluate_feel(DECISION, &self.feel[i], &opts)
            .expect("Baton evaluates")
    }

    fn eval_json(&self, i: usize, trace: bool) -> baton_decision::Evaluation {
        self.model
            .evaluate(DECISION, &self.json[i], trace)
            .expect("Baton evaluates")
    }
}

struct Dsntk {
    evaluator: Arc<ModelEvaluator>,
    inputs: Vec<FeelContext>,
}

impl Dsntk {
    fn new() -> Dsntk {
        let defs = dsntk_model::parse(DMN).expect("dsntk parses the model");
        let evaluator = ModelEvaluator::new(&[defs]).expect("dsntk builds the model");
        let inputs = CASES
            .iter()
            .map(|(age, country, tier, _, _)| {
                let mut ctx = FeelContext::default();
                ctx.set_entry(&Name::from("age"), DValue::Number(FeelNumber::from(*age)));
                ctx.set_entry(&Name::from("country"), DValue::String(country.to_string()));
                ctx.set_entry(&Name::from("tier"), DValue::String(tier.to_string()));
                ctx
            })
            .collect();
        Dsntk { evaluator, inputs }
    }

    fn eval(&self, i: usize) -> DValue {
        self.evaluator
            .evaluate_invocable(NAMESPACE, MODEL_NAME, DECISION, &self.inputs[i])
    }
}

struct Zen {
    decision: zen_engine::Decision,
    inputs: Vec<Variable>,
    json: Vec<serde_json::Value>,
}

impl Zen {
    fn new() -> Zen {
        let content: DecisionContent = serde_json::from_str(JDM).expect("zen reads the graph");
        let engine = DecisionEngine::default();
        let mut decision = engine
            .create_decision(Arc::new(content))
            .expect("zen creates the decision");
        decision.compile();
        let json: Vec<serde_json::Value> = CASES
            .iter()
            .map(|(a, c, t, _, _)| serde_json::json!({"age": a, "country": c, "tier": t}))
            .collect();
        let inputs = json.iter().map(Variable::from).collect();
        Zen {
            decision,
            inputs,
            json,
        }
    }

    /// Through JSON, like Baton's JSON API: `serde_json` input converted to a
    /// `Variable`, the result converted back.
    fn eval_json(&self, i: usize, trace: bool) -> serde_json::Value {
        let opts = EvaluationOptions {
            trace,
            ..EvaluationOptions::default()
        };
        let input = Variable::from(&self.json[i]);
        run_ready(self.decision.evaluate_with_opts(input, opts))
            .expect("zen evaluates")
            .result
            .to_value()
    }

    fn eval(&self, i: usize, trace: bool) -> Variable {
        let opts = EvaluationOptions {
            trace,
            ..EvaluationOptions::default()
        };
        run_ready(
            self.decision
                .evaluate_with_opts(self.inputs[i].clone(), opts),
        )
        .expect("zen evaluates")
        .result
    }
}

/// (decision, discount) from each engine's native result.
fn baton_pair(v: &BValue) -> (String, String) {
    let BValue::Context(c) = v else {
        panic!("Baton: expected a context, got {v}")
    };
    let d = c.get("decision").map(|x| x.to_string()).unwrap_or_default();
    let n = c.get("discount").map(|x| x.to_string()).unwrap_or_default();
    (d, n)
}

fn json_pair(v: &serde_json::Value) -> (String, String) {
    (
        v["decision"].as_str().unwrap_or("<missing>").to_string(),
        v["discount"].to_string(),
    )
}

fn dsntk_pair(v: &DValue) -> (String, String) {
    let DValue::Context(c) = v else {
        panic!("dsntk: expected a context, got {v}")
    };
    let d = match c.get_entry(&Name::from("decision")) {
        Some(DValue::String(s)) => s.clone(),
        other => format!("{other:?}"),
    };
    let n = match c.get_entry(&Name::from("discount")) {
        Some(DValue::Number(n)) => n.to_string(),
        other => format!("{other:?}"),
    };
    (d, n)
}

/// Every engine must give the expected answer for every case, with and
/// without trace, before anything is timed.
fn check_agreement(baton: &Baton, dsntk: &Dsntk, zen: &Zen) {
    for (i, (_, _, _, decision, discount)) in CASES.iter().enumerate() {
        let want = (decision.to_string(), discount.to_string());
        for trace in [false, true] {
            let (v, t) = baton.eval_feel(i, trace);
            assert_eq!(baton_pair(&v), want, "Baton (FEEL) case {i}");
            assert_eq!(t.is_some(), trace);
            let e = baton.eval_json(i, trace);
            assert_eq!(json_pair(&e.output), want, "Baton (JSON) case {i}");
            assert_eq!(json_pair(&zen.eval(i, trace).to_value()), want, "zen case {i}");
            assert_eq!(json_pair(&zen.eval_json(i, trace)), want, "zen (JSON) case {i}");
        }
        assert_eq!(dsntk_pair(&dsntk.eval(i)), want, "dsntk case {i}");
    }
    eprintln!("all three engines agree on {} inputs", CASES.len());
}

fn bench(c: &mut Criterion) {
    let baton = Baton::new();
    let dsntk = Dsntk::new();
    let zen = Zen::new();
    check_agreement(&baton, &dsntk, &zen);
    let n = CASES.len();

    let mut g = c.benchmark_group("first-hit-10");
    for trace in [false, true] {
        let sfx = if trace { "+trace" } else { "" };
        g.bench_function(format!("baton/feel{sfx}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(baton.eval_feel(black_box(i), trace))
            })
        });
        g.bench_function(format!("baton/json{sfx}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(baton.eval_json(black_box(i), trace))
            })
        });
        g.bench_function(format!("zen/native{sfx}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(zen.eval(black_box(i), trace))
            })
        });
        g.bench_function(format!("zen/json{sfx}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % n;
                black_box(zen.eval_json(black_box(i), trace))
            })
        });
    }
    // dsntk 0.3's model evaluator has no trace option.
    g.bench_function("dsntk/native", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % n;
            black_box(dsntk.eval(black_box(i)))
        })
    });
    g.finish();
    // The answers must still be right after millions of evaluations (no state
    // leaks between calls in any engine).
    check_agreement(&baton, &dsntk, &zen);
}

criterion_group!(benches, bench);
criterion_main!(benches);
