//! CPU cost of the provider layer per call, without the network: breaker admission, a rate
//! token, classification of a realistic answer (JSON parse, contract check, freshness via a jq
//! path), the breaker's bookkeeping, and the journal entry of the outcome serialised as the
//! store writes it. Reqwest, the socket and the store's fsync are not included.
//!
//! Run: `cargo bench -p baton-provider --bench call_overhead`.

use std::hint::black_box;

use baton_core::{EffectKey, JournalEntry, Outcome};
use baton_provider::classify::Answer;
use baton_provider::{Admit, Breaker, RateLimiter, TokenBucket, Verdict, classify, load_catalog};
use criterion::{Criterion, criterion_group, criterion_main};

const CATALOG: &str = r#"
providers:
  inventory:
    base_url: http://127.0.0.1:7400/inventory
    rate_limit: { rate: 1000000000, burst: 1000 }
    breaker: { consecutive_failures: 5, failure_rate: { threshold: 0.5, window: 20 }, open_for: 10s }
    operations:
      stock:
        path: "/stock/{store}"
        contract:
          type: object
          required: [store, source, as_of, stock]
          properties:
            store: { type: string }
            source: { enum: [live, nightly-export] }
            stock: { type: object, additionalProperties: { type: integer, minimum: 0 } }
        freshness: { as_of: .as_of, max_age: 15m }
"#;

const BODY: &[u8] = br#"{"store":"store-02","source":"live","as_of":"2026-11-23T06:00:00-05:00","stock":{"sku-lumber-2x4":120,"sku-nails-5kg":40,"sku-drywall":18,"sku-paint-white":64}}"#;

// 2026-11-23T11:05:00Z: five minutes after `as_of`.
const NOW: u64 = 1_795_431_900_000;

fn bench(c: &mut Criterion) {
    let catalog = load_catalog(CATALOG).expect("catalog");
    let provider = catalog.get("inventory").expect("inventory").clone();
    let op = &provider.operations["stock"];
    let spec = provider.spec.clone();
    let rl = spec.rate_limit.clone().expect("rate limit");
    let limiter = TokenBucket::new(rl.rate, rl.per.ms(), rl.burst, NOW);
    let breaker = Breaker::new(spec.breaker.clone().expect("breaker"));
    let headers = vec![("content-type".to_string(), "application/json".to_string())];
    let key = EffectKey("do/0/readStock#call".to_string());

    // Time only moves forward across criterion's repeated runs, as a real clock does.
    let mut now = NOW;
    c.bench_function("provider/call-overhead", |b| {
        b.iter(|| {
            now += 1;
            let probe = match breaker.admit(now).0 {
                Admit::Allowed { probe } => probe,
                Admit::Rejected { .. } => unreachable!("the breaker stays closed"),
            };
            limiter.try_acquire(now).expect("tokens are plentiful");
            let answer = Answer {
                status: 200,
                headers: &headers,
                body: BODY,
            };
            // Classified against a fixed time: the limiter's clock runs a millisecond per call,
            // which would age the body past its 15 minutes within a second of benchmarking.
            let verdict = classify(Some(op), &answer, NOW);
            breaker.record(verdict.breaker_failure(), probe, now);
            let Verdict::Ok(value) = verdict else {
                unreachable!("a fresh, valid answer")
            };
            let entry = JournalEntry::EffectCompleted {
                at_ms: now,
                key: key.clone(),
                outcome: Outcome::ok(value),
                facts: Vec::new(),
            };
            black_box(serde_json::to_vec(&entry).expect("serialises"))
        })
    });

    c.bench_function("provider/classify-only", |b| {
        b.iter(|| {
            let answer = Answer {
                status: 200,
                headers: &headers,
                body: BODY,
            };
            black_box(classify(Some(op), &answer, NOW))
        })
    });

    c.bench_function("provider/limiter+breaker", |b| {
        b.iter(|| {
            now += 1;
            let probe = matches!(breaker.admit(now).0, Admit::Allowed { probe: true });
            black_box(limiter.try_acquire(now)).ok();
            black_box(breaker.record(false, probe, now))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
