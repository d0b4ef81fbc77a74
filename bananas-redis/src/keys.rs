//! The key layout. `docs/REDIS.md` describes every key.
//!
//! Every key of a route shares the hash tag `{<prefix>:<route>}`, so each
//! route script touches one Redis Cluster slot. Global keys share the hash
//! tag `{<prefix>}`.

/// The keys of one route, in the order `lua/route.lua` expects as KEYS.
#[derive(Debug)]
pub(crate) struct RouteKeys {
    pub(crate) keys: [String; 12],
}

impl RouteKeys {
    pub(crate) fn new(prefix: &str, route: &str) -> Self {
        let base = format!("{{{prefix}:{route}}}");
        let k = |suffix: &str| format!("{base}:{suffix}");
        RouteKeys {
            keys: [
                base.clone(),
                k("jobs"),
                k("meta"),
                k("q:h"),
                k("q:n"),
                k("q:l"),
                k("sched"),
                k("lease"),
                k("dead"),
                k("wake"),
                k("waiters"),
                k("ticks"),
            ],
        }
    }

    /// The base name, `{P:R}`.
    pub(crate) fn base(&self) -> &str {
        &self.keys[0]
    }

    /// The wake-up list idle fetchers block on.
    pub(crate) fn wake(&self) -> &str {
        &self.keys[9]
    }

    /// The list a waiter for `id` blocks on.
    pub(crate) fn notify(&self, id: &str) -> String {
        format!("{}:w:{id}", self.base())
    }
}

/// The global keys (hash tag `{P}`).
#[derive(Debug)]
pub(crate) struct GlobalKeys {
    /// `{P}`: the base for worker records.
    pub(crate) base: String,
    /// `{P}:routes`: set of every route seen.
    pub(crate) routes: String,
    /// `{P}:workers`: zset of live workers by expiry.
    pub(crate) workers: String,
    /// `{P}:schedules`: hash of schedule id → announced schedule (JSON).
    pub(crate) schedules: String,
}

impl GlobalKeys {
    pub(crate) fn new(prefix: &str) -> Self {
        let base = format!("{{{prefix}}}");
        GlobalKeys {
            routes: format!("{base}:routes"),
            workers: format!("{base}:workers"),
            schedules: format!("{base}:schedules"),
            base,
        }
    }

    pub(crate) fn worker(&self, id: &str) -> String {
        format!("{}:worker:{id}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_share_one_hash_tag_in_script_order() {
        let k = RouteKeys::new("bananas", "gpu");
        assert_eq!(k.keys[0], "{bananas:gpu}");
        assert_eq!(k.keys[1], "{bananas:gpu}:jobs");
        assert_eq!(k.keys[3], "{bananas:gpu}:q:h");
        assert_eq!(k.keys[5], "{bananas:gpu}:q:l");
        assert_eq!(k.wake(), "{bananas:gpu}:wake");
        assert_eq!(k.keys[11], "{bananas:gpu}:ticks");
        assert_eq!(k.notify("a"), "{bananas:gpu}:w:a");
        assert!(k.keys.iter().all(|s| s.starts_with("{bananas:gpu}")));
    }
}
