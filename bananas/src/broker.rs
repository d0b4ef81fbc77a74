//! Brokers: the contract every broker implements, and the brokers.
//!
//! The contract lives in `bananas-core` so broker crates need not depend on
//! the runtime; it is re-exported here. [`memory`] is the embedded broker
//! (`memory://`, the default); the Redis broker is the `bananas-redis` crate,
//! enabled by the `redis` feature.

pub use bananas_core::broker::*;

pub mod memory;

pub use memory::MemoryBroker;
