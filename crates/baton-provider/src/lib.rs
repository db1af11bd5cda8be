//! Providers: the external systems Baton coordinates, declared once in a catalogue and shared
//! by every flow, and the policies of calling them.
//!
//! This crate does no IO. It holds the catalogue ([`catalog`], loaded with `file:line:column`
//! diagnostics), and the per-provider policies as state machines on injected time: the token
//! bucket ([`limiter`]), the circuit breaker ([`breaker`]), backoff ([`retry`]) and the
//! classification of an answer into data, a transient refusal, a definite failure, an accepted
//! job or stale data ([`classify`](mod@classify)). The runtime's provider layer performs the HTTP
//! calls and consults these.

pub mod breaker;
pub mod catalog;
pub mod classify;
pub mod duration;
pub mod limiter;
pub mod retry;

pub use breaker::{Admit, Breaker, BreakerState, Transition};
pub use catalog::{Catalog, Operation, Provider, load_catalog};
pub use classify::{Answer, Verdict, classify};
pub use limiter::{RateLimiter, TokenBucket};
