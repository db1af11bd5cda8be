//! `baton bench`: throughput and latency of durable instances on the embedded store.
//!
//! W1: five sequential `call: noop` steps (results journaled in order, made durable before the
//! instance's end is reported). W2: five sequential `call: http` GETs to a local fast endpoint
//! started by the bench (each step's result durable before the next request is sent).
//! N instances are started with at most C in flight; latency is start-to-completion of each.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use baton_core::Status;
use baton_engine::RuntimeOptions;
use baton_store::{SqliteOptions, SqliteStore};
use serde_json::json;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Workloads to run: w1, w2.
    #[arg(long, value_delimiter = ',', default_value = "w1,w2")]
    workloads: Vec<String>,
    /// Instances per run.
    #[arg(long, default_value_t = 10_000)]
    instances: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    concurrency: Vec<usize>,
    /// Make every step durable before the next, even local ones (strict mode).
    #[arg(long)]
    barrier_every_step: bool,
    /// Instances for C=1 runs (they are slow by nature); defaults to --instances.
    #[arg(long)]
    instances_c1: Option<usize>,
}

fn w1_flow() -> String {
    let mut s = String::from(
        "document: {dsl: '1.0.3', namespace: bench, name: w1, version: '1.0.0'}\ndo:\n",
    );
    for i in 1..=5 {
        s.push_str(&format!(
            "  - step{i}:\n      call: noop\n      with: {{step: {i}}}\n"
        ));
    }
    s
}

fn w2_flow(base: &str) -> String {
    let mut s = String::from(
        "document: {dsl: '1.0.3', namespace: bench, name: w2, version: '1.0.0'}\ndo:\n",
    );
    for i in 1..=5 {
        s.push_str(&format!("  - get{i}:\n      call: http\n      with:\n        method: get\n        endpoint: {base}/ledger/ok\n"));
    }
    s
}

struct Figures {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: usize,
}

async fn measure(flow: &str, n: usize, c: usize, barrier: bool) -> Result<Figures> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(
        dir.path().join("bench.db"),
        SqliteOptions {
            fsync_every_commit: true,
        },
    )?);
    let rt = baton_engine::runtime(
        store,
        RuntimeOptions {
            barrier_every_step: barrier,
            ..RuntimeOptions::default()
        },
    );
    let program = rt.register_flow(flow).await?;
    let sem = Arc::new(tokio::sync::Semaphore::new(c));
    let started = clock_us();
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let rt = rt.clone();
        let program = program.clone();
        handles.push(tokio::spawn(async move {
            let t0 = clock_us();
            let r = rt.run(program, json!({})).await;
            drop(permit);
            let ok = matches!(r, Ok(ref r) if r.status == Status::Completed);
            (clock_us() - t0, ok)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut failed = 0;
    for h in handles {
        let (us, ok) = h.await?;
        lat.push(us);
        if !ok {
            failed += 1;
        }
    }
    let total_s = (clock_us() - started) as f64 / 1e6;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    Ok(Figures {
        per_sec: n as f64 / total_s,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        failed,
    })
}

/// Microseconds on a monotonic clock (benchmarks measure real time by design).
#[allow(clippy::disallowed_methods)]
fn clock_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; benchmark with `cargo run --release -p baton -- bench`"
        );
    }
    let server = baton_testkit::FakeServer::start().await;
    out!("workload concurrency instances  inst/s    p50_ms  p99_ms  failed  mode");
    let mut any_failed = false;
    for w in &args.workloads {
        let flow = match w.as_str() {
            "w1" => w1_flow(),
            "w2" => w2_flow(&server.base_url()),
            other => anyhow::bail!("unknown workload `{other}` (w1, w2)"),
        };
        for &c in &args.concurrency {
            let n = if c == 1 {
                args.instances_c1.unwrap_or(args.instances)
            } else {
                args.instances
            };
            let f = measure(&flow, n, c, args.barrier_every_step).await?;
            any_failed |= f.failed > 0;
            out!(
                "{w:<8} {c:>11} {n:>9} {:>8.0} {:>8.3} {:>7.3} {:>7}  {}",
                f.per_sec,
                f.p50_ms,
                f.p99_ms,
                f.failed,
                if args.barrier_every_step {
                    "strict"
                } else {
                    "group"
                }
            );
        }
    }
    Ok(if any_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
