//! `baton-sim`: serves the Maplewood world until Ctrl-C.

use std::net::SocketAddr;

use baton_sim::{PROVIDERS, Sim, SimOptions};
use clap::Parser;

/// The Maplewood Logistics simulator: Baton's demo world as fake HTTP providers.
#[derive(Parser)]
#[command(name = "baton-sim", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the world and of every random draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Simulated start time, RFC 3339.
    #[arg(long, default_value = baton_sim::DEFAULT_START)]
    start: String,
}

fn blurb(provider: &str) -> &'static str {
    match provider {
        "orders" => "legacy orders, nightly export (as_of = midnight)",
        "portal" => "customer portal: fresh status, cancellations",
        "gps" => "truck positions, 5-120 s old",
        "optimizer" => "route plans: 202, then done 2-14 s later",
        "carrier" => "partner carrier: 30 req/s, Idempotency-Key",
        "warehouse" => "picks: sometimes 200 without doing it",
        "inventory" => "stock (some from the nightly export), reservations",
        "verify" => "address verification: 30 req/s, null verdicts under load",
        "notify" => "driver tablets and customer texts",
        "payments" => "refunds, by API and by hand",
        _ => "",
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = SimOptions {
        seed: args.seed,
        speed: args.speed,
        start: Some(args.start),
    };
    let sim = match Sim::bind(SocketAddr::from(([127, 0, 0, 1], args.port)), opts).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("baton-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let base = sim.base_url();
    println!("{base}");
    for p in PROVIDERS {
        println!("{p:<10} {base}/{p:<10} {}", blurb(p));
    }
    println!("control    {base}/control  ledger {base}/ledger  clock {base}/clock");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("baton-sim: cannot wait for Ctrl-C: {e}");
    }
    sim.shutdown().await;
    std::process::ExitCode::SUCCESS
}
