//! The providers of the Maplewood world, one module each. Each has a router (mounted under
//! `/{provider}` behind the gate of `lib.rs`) and, when its state changes during the day, a
//! `State` kept in [`Live`].

pub(crate) mod carrier;
pub(crate) mod gps;
pub(crate) mod inventory;
pub(crate) mod notify;
pub(crate) mod optimizer;
pub(crate) mod orders;
pub(crate) mod payments;
pub(crate) mod portal;
pub(crate) mod verify;
pub(crate) mod warehouse;

use std::sync::Arc;

use axum::Router;

use crate::Shared;

/// What the providers change during the day.
#[derive(Default)]
pub(crate) struct Live {
    pub portal: portal::State,
    pub gps: gps::State,
    pub optimizer: optimizer::State,
    pub carrier: carrier::State,
    pub warehouse: warehouse::State,
    pub inventory: inventory::State,
    pub notify: notify::State,
    pub payments: payments::State,
}

/// Every provider's routes, by name (the names of [`crate::PROVIDERS`]).
pub(crate) fn routes() -> Vec<(&'static str, Router<Arc<Shared>>)> {
    vec![
        ("orders", orders::routes()),
        ("portal", portal::routes()),
        ("gps", gps::routes()),
        ("optimizer", optimizer::routes()),
        ("carrier", carrier::routes()),
        ("warehouse", warehouse::routes()),
        ("inventory", inventory::routes()),
        ("verify", verify::routes()),
        ("notify", notify::routes()),
        ("payments", payments::routes()),
    ]
}

/// Locks a provider's state; a panic elsewhere does not make the simulator unusable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
