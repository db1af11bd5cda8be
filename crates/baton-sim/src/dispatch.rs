//! The dispatcher's week (story 9, "a week in shadow"): the reroute situations of the seven days
//! before the simulation's first day, each with what the dispatcher decided. It is the legacy
//! decision a new reroute flow runs in shadow beside.
//!
//! The dispatcher is a person: mostly sensible (reroute a stop that is late by 15 minutes or
//! more, unless the new ETA breaks a hard rule), but a few times a week, under pressure, they
//! reroute into the lumber yard's closed window (`lumber-yard-7` accepts deliveries 10:00–11:30
//! only) or past the driver's 10-hour limit. Those deviations are seeded, and the simulator says
//! which they were (`GET /dispatch/deviations`), so a test can check that a shadow report finds
//! exactly them.
//!
//! `GET /dispatch/decisions`: `{"week_from", "week_to", "decisions": [{case, decided_at,
//! decided_at_ms, decided_by, inputs: {order, customer, window_from, window_to, proposed_eta,
//! delay_minutes, driver, driver_hours_after, rural}, decision: {action}}]}`. Times are local
//! `HH:MM`; `action` is `reroute` or `keep`.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use crate::Shared;
use crate::world::{LUMBER_YARD, driver_id, is_rural_driver, seeded};

/// Reroute situations the dispatcher handles per day.
pub const SITUATIONS_PER_DAY: usize = 12;
/// Days in the week.
pub const DAYS: usize = 7;
/// The lumber yard's window, minutes after midnight.
const YARD_OPENS: u32 = 10 * 60;
const YARD_CLOSES: u32 = 11 * 60 + 30;
/// The most hours a driver may work.
const HOURS_MAX: f64 = 10.0;
/// How late a stop must be before a reroute is worth it, in minutes.
const LATE_ENOUGH: u32 = 15;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One situation with the rule that the right answer rests on.
struct Situation {
    case: String,
    decided_at_ms: i64,
    inputs: Value,
    action: &'static str,
    /// Set when the dispatcher broke a hard rule: the rule's id in reroute-rules.dmn.
    deviation: Option<&'static str>,
}

fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Which hard rule a reroute with these figures would break, lumber yard first (as the table
/// checks it).
fn broken_rule(customer: &str, eta: u32, hours_after: f64) -> Option<&'static str> {
    if customer == LUMBER_YARD && !(YARD_OPENS..=YARD_CLOSES).contains(&eta) {
        Some("lumber-yard-window")
    } else if hours_after > HOURS_MAX {
        Some("driver-hours-limit")
    } else {
        None
    }
}

fn week(s: &Shared) -> Vec<Situation> {
    let mut rng = seeded(s.seed, "dispatch/week");
    let first_day = s.clock.at_local(0, 0) - DAYS as i64 * DAY_MS;
    let lumber = s.world.orders.iter().find(|o| o.customer == LUMBER_YARD);
    let mut out = Vec::with_capacity(DAYS * SITUATIONS_PER_DAY);
    for day in 0..DAYS {
        let mut minutes: Vec<u32> = (0..SITUATIONS_PER_DAY)
            .map(|_| rng.random_range(6 * 60..14 * 60))
            .collect();
        minutes.sort_unstable();
        for (n, at) in minutes.into_iter().enumerate() {
            // About one situation in five is at the lumber yard, whose deliveries slip often.
            let order = match lumber {
                Some(l) if rng.random_bool(0.2) => l,
                _ => s
                    .world
                    .orders
                    .choose(&mut rng)
                    .unwrap_or(&s.world.orders[0]),
            };
            let yard = order.customer == LUMBER_YARD;
            let delay: u32 = rng.random_range(5..=90);
            let eta: u32 = if yard {
                if rng.random_bool(0.5) {
                    rng.random_range(YARD_OPENS..=YARD_CLOSES)
                } else if rng.random_bool(0.5) {
                    rng.random_range(8 * 60..YARD_OPENS)
                } else {
                    rng.random_range(YARD_CLOSES + 1..16 * 60)
                }
            } else {
                rng.random_range(8 * 60..17 * 60)
            };
            // Quarter hours, like a tablet's shift clock; about one in six goes past ten.
            let hours_after = if rng.random_bool(1.0 / 6.0) {
                f64::from(rng.random_range(41..=46_u32)) / 4.0
            } else {
                f64::from(rng.random_range(24..=40_u32)) / 4.0
            };
            let broken = broken_rule(&order.customer, eta, hours_after);
            let sensible = if broken.is_none() && delay >= LATE_ENOUGH {
                "reroute"
            } else {
                "keep"
            };
            // A late stop tempts the dispatcher to reroute anyway.
            let deviates = broken.is_some() && delay >= LATE_ENOUGH && rng.random_bool(0.35);
            let (action, deviation) = if deviates {
                ("reroute", broken)
            } else {
                (sensible, None)
            };
            let window = |ms: i64| {
                let local = s.clock.format(ms);
                local.get(11..16).unwrap_or("00:00").to_string()
            };
            out.push(Situation {
                case: format!("rr-{}-{:02}", day + 1, n + 1),
                decided_at_ms: first_day + day as i64 * DAY_MS + i64::from(at) * 60_000,
                inputs: json!({
                    "order": order.id,
                    "customer": order.customer,
                    "window_from": window(order.window_from_ms),
                    "window_to": window(order.window_to_ms),
                    "proposed_eta": hhmm(eta),
                    "delay_minutes": delay,
                    "driver": driver_id(order.driver),
                    "driver_hours_after": hours_after,
                    "rural": is_rural_driver(order.driver),
                }),
                action,
                deviation,
            });
        }
    }
    out
}

/// `GET /dispatch/decisions`.
pub(crate) fn decisions(s: &Shared) -> Value {
    let week = week(s);
    json!({
        "week_from": week.first().map(|w| s.clock.format(w.decided_at_ms)),
        "week_to": week.last().map(|w| s.clock.format(w.decided_at_ms)),
        "decisions": week.iter().map(|w| json!({
            "case": w.case,
            "decided_at": s.clock.format(w.decided_at_ms),
            "decided_at_ms": w.decided_at_ms,
            "decided_by": "dispatcher",
            "inputs": w.inputs,
            "decision": {"action": w.action},
        })).collect::<Vec<_>>(),
    })
}

/// `GET /dispatch/deviations`: the simulator's truth about which decisions broke a hard rule.
pub(crate) fn deviations(s: &Shared) -> Value {
    json!({
        "deviations": week(s).iter().filter_map(|w| w.deviation.map(|rule| json!({
            "case": w.case,
            "rule": rule,
            "dispatcher": w.action,
            "rules_say": "keep",
        }))).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimOptions;

    #[test]
    fn the_week_is_seeded_and_has_both_kinds_of_deviation() {
        for seed in 1..=20 {
            let opts = SimOptions {
                seed,
                ..SimOptions::default()
            };
            let s = Shared::new(&opts).unwrap();
            let a = decisions(&s);
            assert_eq!(a, decisions(&s), "seed {seed}");
            assert_eq!(
                a["decisions"].as_array().unwrap().len(),
                DAYS * SITUATIONS_PER_DAY
            );
            let devs = deviations(&s);
            let rules: Vec<&str> = devs["deviations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["rule"].as_str().unwrap())
                .collect();
            if seed == 1 {
                // The examples' seed tells both stories.
                assert!(rules.contains(&"lumber-yard-window"), "{rules:?}");
                assert!(rules.contains(&"driver-hours-limit"), "{rules:?}");
            }
            // Every deviation is a reroute that breaks the rule it names; every other decision
            // is what the rules say.
            for d in a["decisions"].as_array().unwrap() {
                let i = &d["inputs"];
                let eta: Vec<u32> = i["proposed_eta"]
                    .as_str()
                    .unwrap()
                    .split(':')
                    .map(|p| p.parse().unwrap())
                    .collect();
                let broken = broken_rule(
                    i["customer"].as_str().unwrap(),
                    eta[0] * 60 + eta[1],
                    i["driver_hours_after"].as_f64().unwrap(),
                );
                let dev = devs["deviations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["case"] == d["case"]);
                match dev {
                    Some(x) => {
                        assert_eq!(d["decision"]["action"], "reroute");
                        assert_eq!(x["rule"].as_str(), broken);
                    }
                    None if broken.is_some() => assert_eq!(d["decision"]["action"], "keep"),
                    None => {
                        let late = i["delay_minutes"].as_u64().unwrap() >= u64::from(LATE_ENOUGH);
                        assert_eq!(
                            d["decision"]["action"],
                            if late { "reroute" } else { "keep" }
                        );
                    }
                }
            }
        }
    }
}
