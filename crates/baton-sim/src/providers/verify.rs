//! `verify`: address verification, 30 requests a second (the gate answers 429 above). The verdict
//! is a pure function of the seed and the address: `undeliverable` for an address without a house
//! number or with a PO box, and for a seeded one in twelve of the rest. Under load (20 or more
//! requests admitted in the second before) a seeded quarter of the answers are `200` with
//! `verdict: null`; control's `null_rate` makes more of them so at any load.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::faults::Plan;
use crate::http::{body, reply};

/// Load (admitted requests in the last second) from which some verdicts are `null`.
pub(crate) const LOAD_NULL_FROM: usize = 20;
/// Fraction of verdicts that are `null` under load.
pub(crate) const LOAD_NULL_RATE: f64 = 0.25;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/addresses", post(check))
}

#[derive(Deserialize)]
struct VerifyRequest {
    address: String,
}

pub(crate) fn verdict(seed: u64, address: &str) -> &'static str {
    let lower = address.to_lowercase();
    let numbered = lower
        .trim_start()
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit());
    if !numbered || lower.contains("po box") || lower.contains("p.o. box") {
        return "undeliverable";
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in lower.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if h.is_multiple_of(12) {
        "undeliverable"
    } else {
        "deliverable"
    }
}

async fn check(
    AxState(s): AxState<Arc<Shared>>,
    Extension(plan): Extension<Plan>,
    bytes: Bytes,
) -> Response {
    let req: VerifyRequest = match body(&bytes) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let busy =
        plan.load >= LOAD_NULL_FROM && s.draw("verify", |r| r.random::<f64>() < LOAD_NULL_RATE);
    let answer = if plan.null_verdict || busy {
        Value::Null
    } else {
        json!(verdict(s.seed, &req.address))
    };
    reply(
        StatusCode::OK,
        json!({
            "address": req.address,
            "verdict": answer,
            "as_of": s.as_of(&plan, s.clock.now_ms()),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_address() {
        assert_eq!(verdict(1, "PO Box 12, Hilliard, OH"), "undeliverable");
        assert_eq!(verdict(1, "Sawmill Rd, Hilliard, OH"), "undeliverable");
        let numbered: Vec<_> = (0..240)
            .map(|n| verdict(1, &format!("{n} Maple St, Dublin, OH 43017")))
            .collect();
        let bad = numbered.iter().filter(|v| **v == "undeliverable").count();
        assert!((5..=40).contains(&bad), "{bad} of 240 undeliverable");
        assert_eq!(verdict(1, "7 Oak Ave"), verdict(1, "7 Oak Ave"));
    }
}
