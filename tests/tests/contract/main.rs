//! The broker contract (`bananas::broker`: the hot path `Broker` and the
//! capability traits, reached through `AnyBroker`), one suite run against
//! every broker: each scenario is a test on the memory broker
//! (`…::memory::…`), on the shared Redis under a prefix of its own
//! (`…::redis::…`) and on this binary's private Redis Cluster
//! (`…::cluster::…`, started once by the first test that needs it).
//!
//! Redis mechanics (the stored layout, lease tokens, function library
//! reloads, restarts, TLS) are tested in `bananas-redis/tests` and in the
//! fault tests.

mod cancel;
mod jobs;
mod leases;
mod progress;
mod queues;
mod results;
mod schedules;
mod support;
mod workers;
