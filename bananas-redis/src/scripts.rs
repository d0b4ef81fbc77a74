//! The Lua scripts, one per state transition, and how they are invoked.

use redis::{Cmd, RedisResult, Value};

use crate::conn::{is_noscript, Conn};

/// A script: its code and SHA1. Invoked with EVALSHA, falling back to EVAL
/// (which also caches it) when the server does not know it, e.g. after a
/// restart or on a cluster node that never saw it.
#[derive(Debug)]
pub(crate) struct Lua {
    code: String,
    sha: String,
}

impl Lua {
    fn new(code: String) -> Self {
        let sha = redis::Script::new(&code).get_hash().to_owned();
        Lua { code, sha }
    }

    fn route(body: &str) -> Self {
        Lua::new(format!("{}\n{}", include_str!("../lua/route.lua"), body))
    }

    /// Runs the script with `keys`; `args` appends ARGV to the command.
    pub(crate) async fn run(
        &self,
        conn: &Conn,
        keys: &[impl redis::ToRedisArgs + Sync],
        args: impl Fn(&mut Cmd),
    ) -> RedisResult<Value> {
        let mut conn = conn.clone();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(keys.len()).arg(keys);
        args(&mut cmd);
        match cmd.query_async(&mut conn).await {
            Err(e) if is_noscript(&e) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(&self.code).arg(keys.len()).arg(keys);
                args(&mut cmd);
                cmd.query_async(&mut conn).await
            }
            r => r,
        }
    }
}

/// Every script, loaded once per broker.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) enqueue: Lua,
    pub(crate) fetch: Lua,
    pub(crate) ack: Lua,
    pub(crate) release: Lua,
    pub(crate) extend: Lua,
    pub(crate) recover: Lua,
    pub(crate) requeue_dead: Lua,
    pub(crate) purge_dead: Lua,
    pub(crate) dead_list: Lua,
    pub(crate) job_info: Lua,
    pub(crate) wait_check: Lua,
    pub(crate) claim_tick: Lua,
    pub(crate) stats: Lua,
    pub(crate) promote: Lua,
    pub(crate) heartbeat: Lua,
    pub(crate) workers: Lua,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            enqueue: Lua::route(include_str!("../lua/enqueue.lua")),
            fetch: Lua::route(include_str!("../lua/fetch.lua")),
            ack: Lua::route(include_str!("../lua/ack.lua")),
            release: Lua::route(include_str!("../lua/release.lua")),
            extend: Lua::route(include_str!("../lua/extend.lua")),
            recover: Lua::route(include_str!("../lua/recover.lua")),
            requeue_dead: Lua::route(include_str!("../lua/requeue_dead.lua")),
            purge_dead: Lua::route(include_str!("../lua/purge_dead.lua")),
            dead_list: Lua::route(include_str!("../lua/dead_list.lua")),
            job_info: Lua::route(include_str!("../lua/job_info.lua")),
            wait_check: Lua::route(include_str!("../lua/wait_check.lua")),
            claim_tick: Lua::route(include_str!("../lua/claim_tick.lua")),
            stats: Lua::route(include_str!("../lua/stats.lua")),
            promote: Lua::route(include_str!("../lua/promote.lua")),
            heartbeat: Lua::new(include_str!("../lua/heartbeat.lua").to_owned()),
            workers: Lua::new(include_str!("../lua/workers.lua").to_owned()),
        }
    }
}
