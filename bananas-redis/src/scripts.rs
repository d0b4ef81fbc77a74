//! The Lua scripts, one per state transition, and how they are invoked.
//!
//! On Redis 7 and later every script is a function of one library,
//! `bananas_<hash>`, loaded with `FUNCTION LOAD REPLACE` and called with
//! `FCALL`: the shared `route.lua` prelude is compiled and run once per
//! load, not once per call. The library is (re)loaded when the broker
//! connects and whenever a call answers "Function not found" (a restarted
//! server without persistence, a new cluster node); on a cluster the load
//! goes to every master. `<hash>` is taken from the library's code, so
//! workers of different versions sharing one Redis never call each other's
//! functions. Servers without functions (Redis 6.2), or users whose ACL
//! forbids `FUNCTION LOAD`, get the same scripts with `EVALSHA` (falling
//! back to `EVAL`, which caches them).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use redis::{Cmd, RedisError, RedisResult, Value};

use crate::conn::{is_noscript, Conn};

const ROUTE_PRELUDE: &str = include_str!("../lua/route.lua");

/// The function library shared by every script, and whether the server
/// takes it.
#[derive(Debug)]
struct Library {
    code: String,
    /// False once loading failed (no `FUNCTION` command, or not allowed):
    /// scripts then run with EVALSHA.
    functions: AtomicBool,
}

impl Library {
    async fn load(&self, conn: &mut Conn) -> RedisResult<()> {
        // On a cluster, redis-rs sends FUNCTION LOAD to every master.
        let _: Value = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&self.code)
            .query_async(conn)
            .await?;
        Ok(())
    }
}

/// Whether the error says the function is not loaded on that server.
fn is_no_function(e: &RedisError) -> bool {
    e.detail()
        .is_some_and(|d| d.starts_with("Function not found"))
        || e.to_string().contains("Function not found")
}

/// A script: its EVAL form and SHA1 (for servers without functions), and
/// its name in the function library.
#[derive(Debug)]
pub(crate) struct Lua {
    code: String,
    sha: String,
    function: String,
    lib: Arc<Library>,
}

impl Lua {
    /// The `FCALL` that runs the script with `keys`, for a caller that
    /// sends it itself (after a blocking pop, in the same write); `None`
    /// where scripts run with EVALSHA.
    pub(crate) fn fcall(
        &self,
        keys: &[impl redis::ToRedisArgs + Sync],
        args: impl Fn(&mut Cmd),
    ) -> Option<Cmd> {
        self.runs_as_function().then(|| self.fcall_cmd(keys, args))
    }

    /// Whether the script runs as a function of the library (else with
    /// EVALSHA).
    pub(crate) fn runs_as_function(&self) -> bool {
        self.lib.functions.load(Ordering::Relaxed)
    }

    /// The `FCALL` of this script, whether or not the server has the
    /// library (a caller that checked [`Lua::runs_as_function`]).
    pub(crate) fn fcall_cmd(
        &self,
        keys: &[impl redis::ToRedisArgs + Sync],
        args: impl Fn(&mut Cmd),
    ) -> Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&self.function).arg(keys.len()).arg(keys);
        args(&mut cmd);
        cmd
    }

    /// Runs the script with `keys`; `args` appends ARGV to the command.
    pub(crate) async fn run(
        &self,
        conn: &Conn,
        keys: &[impl redis::ToRedisArgs + Sync],
        args: impl Fn(&mut Cmd),
    ) -> RedisResult<Value> {
        let mut conn = conn.clone();
        if let Some(cmd) = self.fcall(keys, &args) {
            return match cmd.query_async(&mut conn).await {
                Err(e) if is_no_function(&e) => {
                    tracing::debug!(function = %self.function, "reloading the Lua function library");
                    self.lib.load(&mut conn).await?;
                    cmd.query_async(&mut conn).await
                }
                r => r,
            };
        }
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

/// How a script is registered in the library.
#[derive(Clone, Copy)]
enum Kind {
    /// A per-route script: `route.lua`'s helpers, KEYS as listed there.
    Route,
    /// A global script (worker registry) with its own KEYS.
    Global,
}

/// Function flags. Reads are `no-writes` (allowed on a full server). The
/// transitions that settle or move jobs already in Redis are `allow-oom`,
/// so a server at `maxmemory` can still be drained (as EVAL allowed: an
/// unflagged script may keep writing once it has written). Scripts that add
/// data (enqueue, waiters, heartbeats) have no flag: at `maxmemory` they
/// are refused as a whole, before they change anything.
const READ: &str = "no-writes";
const DRAIN: &str = "allow-oom";
const ADD: &str = "";

/// Every script, loaded once per broker.
#[derive(Debug)]
pub(crate) struct Scripts {
    lib: Arc<Library>,
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
    pub(crate) progress: Lua,
    pub(crate) cancel: Lua,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        use Kind::{Global, Route};
        let all: [(&str, Kind, &str, &str); 18] = [
            ("enqueue", Route, ADD, include_str!("../lua/enqueue.lua")),
            ("fetch", Route, DRAIN, include_str!("../lua/fetch.lua")),
            ("ack", Route, DRAIN, include_str!("../lua/ack.lua")),
            ("release", Route, DRAIN, include_str!("../lua/release.lua")),
            ("extend", Route, DRAIN, include_str!("../lua/extend.lua")),
            ("recover", Route, DRAIN, include_str!("../lua/recover.lua")),
            (
                "requeue_dead",
                Route,
                ADD,
                include_str!("../lua/requeue_dead.lua"),
            ),
            (
                "purge_dead",
                Route,
                DRAIN,
                include_str!("../lua/purge_dead.lua"),
            ),
            (
                "dead_list",
                Route,
                READ,
                include_str!("../lua/dead_list.lua"),
            ),
            ("job_info", Route, READ, include_str!("../lua/job_info.lua")),
            (
                "wait_check",
                Route,
                ADD,
                include_str!("../lua/wait_check.lua"),
            ),
            (
                "claim_tick",
                Route,
                ADD,
                include_str!("../lua/claim_tick.lua"),
            ),
            ("stats", Route, READ, include_str!("../lua/stats.lua")),
            ("promote", Route, DRAIN, include_str!("../lua/promote.lua")),
            (
                "heartbeat",
                Global,
                ADD,
                include_str!("../lua/heartbeat.lua"),
            ),
            ("workers", Global, DRAIN, include_str!("../lua/workers.lua")),
            // Bounded by the running jobs and deleted with them: allowed
            // at `maxmemory`, like the transitions that drain.
            (
                "progress",
                Route,
                DRAIN,
                include_str!("../lua/progress.lua"),
            ),
            ("cancel", Route, DRAIN, include_str!("../lua/cancel.lua")),
        ];
        // The library's name, and its functions' prefix, come from its code.
        let mut source = String::from(ROUTE_PRELUDE);
        for (name, _, flags, code) in &all {
            source.push_str(&format!("\n{name} {flags}\n{code}"));
        }
        let prefix = format!("bananas_{}", &redis::Script::new(&source).get_hash()[..16]);
        let mut code = format!("#!lua name={prefix}\n{ROUTE_PRELUDE}\n");
        for (name, kind, flags, body) in &all {
            let flags = if flags.is_empty() {
                String::new()
            } else {
                format!("'{flags}'")
            };
            let enter = match kind {
                Kind::Route => "use_keys(KEYS)\n",
                Kind::Global => "",
            };
            code.push_str(&format!(
                "redis.register_function{{function_name = '{prefix}_{name}', \
                 flags = {{{flags}}}, callback = function(KEYS, ARGV)\n{enter}{body}\nend}}\n"
            ));
        }
        let lib = Arc::new(Library {
            code,
            functions: AtomicBool::new(true),
        });
        let mut scripts = all.iter().map(|(name, kind, _, code)| {
            let eval = match kind {
                Kind::Route => format!("{ROUTE_PRELUDE}\nuse_keys(KEYS)\n{code}"),
                Kind::Global => (*code).to_owned(),
            };
            Lua {
                sha: redis::Script::new(&eval).get_hash().to_owned(),
                code: eval,
                function: format!("{prefix}_{name}"),
                lib: lib.clone(),
            }
        });
        let mut next = || scripts.next().expect("one script per field");
        Scripts {
            enqueue: next(),
            fetch: next(),
            ack: next(),
            release: next(),
            extend: next(),
            recover: next(),
            requeue_dead: next(),
            purge_dead: next(),
            dead_list: next(),
            job_info: next(),
            wait_check: next(),
            claim_tick: next(),
            stats: next(),
            promote: next(),
            heartbeat: next(),
            workers: next(),
            progress: next(),
            cancel: next(),
            lib,
        }
    }

    /// Loads the function library, or switches to EVALSHA when the server
    /// has no functions (before Redis 7) or the user may not load them.
    pub(crate) async fn init(&self, conn: &Conn) {
        let mut conn = conn.clone();
        if let Err(e) = self.lib.load(&mut conn).await {
            tracing::info!(error = %e, "Redis functions unavailable; running the Lua scripts with EVALSHA");
            self.lib.functions.store(false, Ordering::Relaxed);
        }
    }
}
