//! `baton-sim`: serves the Maplewood world until Ctrl-C.

use std::net::SocketAddr;

use baton_sim::SimOptions;
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
    /// Simulated start time, RFC 3339, or `now` (the default: the providers' `as_of` stamps then
    /// agree with Baton's clock, which freshness checks need).
    #[arg(long, default_value = "now")]
    start: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = SimOptions {
        seed: args.seed,
        speed: args.speed,
        start: Some(args.start),
    };
    match baton_sim::serve_until_interrupted(SocketAddr::from(([127, 0, 0, 1], args.port)), opts)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton-sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
