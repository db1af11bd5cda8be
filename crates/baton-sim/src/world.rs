//! The seeded Maplewood world: the day's orders, drivers and trucks, stores and their stock. It is
//! made once when the simulator starts and never changes; what changes during the day (bookings,
//! cancellations, reservations) lives with each provider.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::clock::SimClock;

/// Orders in a day.
pub const ORDER_COUNT: usize = 140;
/// Drivers (and trucks, one each).
pub const DRIVER_COUNT: usize = 47;
/// Drivers from this number on are rural (at most 6 stops a route).
pub const FIRST_RURAL_DRIVER: usize = 41;
/// Stores whose stock the inventory provider serves.
pub const STORE_COUNT: usize = 12;
/// The customer that only accepts deliveries from 10:00 to 11:30.
pub const LUMBER_YARD: &str = "lumber-yard-7";

/// The hub, in Columbus, Ohio.
pub(crate) const HUB: (f64, f64) = (39.9612, -82.9988);

/// A generator seeded by the simulation seed and a label, so every part of the world draws from its
/// own stream and adding draws in one part does not move another.
pub(crate) fn seeded(seed: u64, label: &str) -> StdRng {
    // FNV-1a over the label, mixed into the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in label.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    StdRng::seed_from_u64(seed ^ h.rotate_left(17))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    North,
    East,
    South,
    West,
    Rural,
}

impl Zone {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Zone::North => "north",
            Zone::East => "east",
            Zone::South => "south",
            Zone::West => "west",
            Zone::Rural => "rural",
        }
    }

    fn towns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Zone::North => &[("Westerville", "43081"), ("Worthington", "43085")],
            Zone::East => &[("Reynoldsburg", "43068"), ("Gahanna", "43230")],
            Zone::South => &[("Grove City", "43123"), ("Obetz", "43207")],
            Zone::West => &[("Hilliard", "43026"), ("Dublin", "43017")],
            Zone::Rural => &[
                ("Mount Vernon", "43050"),
                ("Circleville", "43113"),
                ("Marysville", "43040"),
            ],
        }
    }

    /// Centre of the zone's deliveries (lat, lon).
    pub(crate) fn centre(self) -> (f64, f64) {
        match self {
            Zone::North => (40.1262, -82.9291),
            Zone::East => (39.9550, -82.8121),
            Zone::South => (39.8815, -83.0930),
            Zone::West => (40.0334, -83.1582),
            Zone::Rural => (40.3934, -82.4857),
        }
    }
}

const URBAN: [Zone; 4] = [Zone::North, Zone::East, Zone::South, Zone::West];

const STREETS: [&str; 16] = [
    "Maple",
    "Elm",
    "Oak",
    "Cedar",
    "Walnut",
    "Hickory",
    "Sycamore",
    "Birch",
    "Chestnut",
    "Willow",
    "Buckeye",
    "High",
    "Main",
    "Broad",
    "Cleveland",
    "Livingston",
];
const SUFFIXES: [&str; 5] = ["St", "Ave", "Rd", "Dr", "Pike"];
const SURNAMES: [&str; 20] = [
    "okafor",
    "miller",
    "nguyen",
    "schmidt",
    "garcia",
    "kowalski",
    "johnson",
    "patel",
    "brennan",
    "yoder",
    "hughes",
    "fischer",
    "ramirez",
    "lindqvist",
    "adeyemi",
    "moreau",
    "tanaka",
    "walsh",
    "costa",
    "novak",
];
const SKUS: [&str; 6] = [
    "sku-lumber-2x4",
    "sku-drywall",
    "sku-cement",
    "sku-shingles",
    "sku-paint",
    "sku-nails",
];

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub id: String,
    pub customer: String,
    pub kind: &'static str,
    pub zone: Zone,
    pub address: String,
    pub window_from_ms: i64,
    pub window_to_ms: i64,
    /// 1-based driver number; the truck has the same number.
    pub driver: usize,
    pub pallets: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub id: String,
    /// Stock comes from the nightly export (old `as_of`) rather than live.
    pub nightly: bool,
    pub stock: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Truck {
    pub zone: Zone,
    /// Where on its loop the truck starts, in radians.
    pub phase: f64,
}

pub(crate) struct World {
    pub orders: Vec<Order>,
    pub stores: Vec<Store>,
    pub trucks: Vec<Truck>,
    /// A truck (1-based) that goes silent by nature, and when (ms since the epoch).
    pub silent_truck: (usize, i64),
}

pub(crate) fn driver_id(n: usize) -> String {
    format!("d-{n:02}")
}

pub(crate) fn truck_id(n: usize) -> String {
    format!("t-{n:02}")
}

/// `t-07` or `d-07` → 7, when within the fleet.
pub(crate) fn fleet_number(id: &str, prefix: &str) -> Option<usize> {
    let n: usize = id.strip_prefix(prefix)?.parse().ok()?;
    (1..=DRIVER_COUNT).contains(&n).then_some(n)
}

pub(crate) fn is_rural_driver(n: usize) -> bool {
    n >= FIRST_RURAL_DRIVER
}

impl World {
    pub(crate) fn generate(seed: u64, clock: &SimClock) -> World {
        let mut rng = seeded(seed, "world/orders");
        let rural_count = rng.random_range(9..=12_usize);
        // Positions of the special orders among the 140.
        let lumber_at = rng.random_range(0..ORDER_COUNT);
        let mut orders = Vec::with_capacity(ORDER_COUNT);
        let mut rural_left = rural_count;
        for i in 0..ORDER_COUNT {
            let id = format!("o-{}", 1001 + i);
            let left = ORDER_COUNT - i;
            let order = if i == lumber_at {
                Order {
                    id,
                    customer: LUMBER_YARD.to_string(),
                    kind: "yard",
                    zone: Zone::West,
                    address: "7 Sawmill Rd, Hilliard, OH 43026".to_string(),
                    window_from_ms: clock.at_local(10, 0),
                    window_to_ms: clock.at_local(11, 30),
                    driver: rng.random_range(1..FIRST_RURAL_DRIVER),
                    pallets: rng.random_range(4..=10),
                }
            } else {
                // Spread the rural orders over the day: each remaining slot takes one with the
                // chance that leaves exactly `rural_count` of them.
                let slots = left - usize::from(i < lumber_at);
                let rural = rural_left > 0 && rng.random_range(0..slots) < rural_left;
                if rural {
                    rural_left -= 1;
                }
                ordinary(&mut rng, clock, id, rural)
            };
            orders.push(order);
        }

        let mut rng = seeded(seed, "world/stores");
        let stores = (1..=STORE_COUNT)
            .map(|n| {
                let nightly = match n {
                    1 => true,
                    2 => false,
                    _ => rng.random_bool(0.5),
                };
                let stock = SKUS
                    .iter()
                    .map(|sku| {
                        let qty = if rng.random_bool(0.1) {
                            0
                        } else {
                            rng.random_range(5..=240)
                        };
                        (*sku, qty)
                    })
                    .collect();
                Store {
                    id: format!("store-{n:02}"),
                    nightly,
                    stock,
                }
            })
            .collect();

        let mut rng = seeded(seed, "world/trucks");
        let trucks = (1..=DRIVER_COUNT)
            .map(|n| {
                let zone = orders
                    .iter()
                    .find(|o| o.driver == n)
                    .map(|o| o.zone)
                    .unwrap_or(if is_rural_driver(n) {
                        Zone::Rural
                    } else {
                        Zone::North
                    });
                Truck {
                    zone,
                    phase: rng.random_range(0.0..std::f64::consts::TAU),
                }
            })
            .collect();
        let silent_truck = (
            rng.random_range(1..=DRIVER_COUNT),
            clock.at_local(rng.random_range(9..15), rng.random_range(0..60)),
        );
        World {
            orders,
            stores,
            trucks,
            silent_truck,
        }
    }

    pub(crate) fn order(&self, id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.id == id)
    }

    pub(crate) fn store(&self, id: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.id == id)
    }

    pub(crate) fn order_json(&self, order: &Order, clock: &SimClock) -> Value {
        json!({
            "id": order.id,
            "customer": order.customer,
            "kind": order.kind,
            "zone": order.zone.name(),
            "address": order.address,
            "window": {
                "from": clock.format(order.window_from_ms),
                "to": clock.format(order.window_to_ms),
            },
            "driver": driver_id(order.driver),
            "truck": truck_id(order.driver),
            "pallets": order.pallets,
            "status": "open",
        })
    }
}

fn ordinary(rng: &mut StdRng, clock: &SimClock, id: String, rural: bool) -> Order {
    let zone = if rural {
        Zone::Rural
    } else {
        *URBAN.choose(rng).unwrap_or(&Zone::North)
    };
    let (kind, customer) = if rural {
        (
            "home",
            format!("home-{}", SURNAMES.choose(rng).unwrap_or(&"doe")),
        )
    } else {
        match rng.random_range(0..20) {
            0..=7 => (
                "store",
                format!("store-{:02}", rng.random_range(1..=STORE_COUNT)),
            ),
            8..=12 => (
                "site",
                format!(
                    "site-{}",
                    STREETS.choose(rng).unwrap_or(&"main").to_lowercase()
                ),
            ),
            _ => (
                "home",
                format!("home-{}", SURNAMES.choose(rng).unwrap_or(&"doe")),
            ),
        }
    };
    let (town, zip) = *zone.towns().choose(rng).unwrap_or(&("Columbus", "43215"));
    let address = format!(
        "{} {} {}, {town}, OH {zip}",
        rng.random_range(10..=9800),
        STREETS.choose(rng).unwrap_or(&"Main"),
        SUFFIXES.choose(rng).unwrap_or(&"St"),
    );
    let from_hour: i8 = rng.random_range(7..=15);
    let from_minute: i8 = if rng.random_bool(0.5) { 0 } else { 30 };
    let from = clock.at_local(from_hour, from_minute);
    let length_h: i64 = rng.random_range(1..=3);
    let to = (from + length_h * 3_600_000).min(clock.at_local(18, 0));
    let driver = if rural {
        rng.random_range(FIRST_RURAL_DRIVER..=DRIVER_COUNT)
    } else {
        rng.random_range(1..FIRST_RURAL_DRIVER)
    };
    Order {
        id,
        customer,
        kind,
        zone,
        address,
        window_from_ms: from,
        window_to_ms: to,
        driver,
        pallets: rng.random_range(1..=12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DEFAULT_START;

    #[test]
    fn the_day_has_its_fixed_shape() {
        let clock = SimClock::new(DEFAULT_START, 0.0).expect("clock");
        for seed in 0..20 {
            let world = World::generate(seed, &clock);
            assert_eq!(world.orders.len(), ORDER_COUNT);
            let lumber: Vec<_> = world
                .orders
                .iter()
                .filter(|o| o.customer == LUMBER_YARD)
                .collect();
            assert_eq!(lumber.len(), 1, "seed {seed}");
            let rural = world
                .orders
                .iter()
                .filter(|o| o.zone == Zone::Rural)
                .count();
            assert!((9..=12).contains(&rural), "seed {seed}: {rural} rural");
            for o in &world.orders {
                assert_eq!(o.zone == Zone::Rural, is_rural_driver(o.driver), "{}", o.id);
                assert!(o.window_from_ms < o.window_to_ms);
            }
            assert!(world.stores[0].nightly && !world.stores[1].nightly);
        }
    }

    #[test]
    fn fleet_numbers_parse_within_the_fleet() {
        assert_eq!(fleet_number("t-07", "t-"), Some(7));
        assert_eq!(fleet_number("d-47", "d-"), Some(47));
        assert_eq!(fleet_number("t-48", "t-"), None);
        assert_eq!(fleet_number("t-00", "t-"), None);
        assert_eq!(fleet_number("x-01", "t-"), None);
    }
}
