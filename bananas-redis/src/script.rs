//! Typed scripts: each operation declares its script ([`Script`]) and a
//! [`Call`] type with the keys, the arguments and the decoded reply of
//! one call; [`Scripts::call`] is the one way a script runs.
//!
//! On Redis 7 and later every script is a function of one library,
//! `bananas_<hash>`, loaded with `FUNCTION LOAD REPLACE` and called with
//! `FCALL`: the helpers a script includes (see [`crate::lua`]) are compiled
//! and run once per load, not once per call. The library is loaded when the
//! broker connects, and again when a call fails because a server lost it (a
//! restart without persistence, a new cluster node): a call that fails with
//! a plain `ERR` is followed by a probe, `FCALL bananas_<hash>_loaded` on
//! the same key (so on the same cluster node), and only if the probe fails
//! too is the library loaded and the call repeated, once. On a cluster the
//! load goes to every master. `<hash>` is taken from the library's code, so
//! workers of different versions sharing one Redis never call each other's
//! functions. Servers without functions (Redis 6.2), or users whose ACL
//! forbids `FUNCTION LOAD`, get the same scripts with `EVALSHA` (falling
//! back to `EVAL`, which caches them).

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use bananas_core::{Error, Result};
use redis::{Cmd, RedisError, RedisResult, Value};

use crate::{
    conn::{is_noscript, is_plain_error, script_err, Conn},
    lua,
};

/// What a script may do on a server at `maxmemory`: its function flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Memory {
    /// Reads only (`no-writes`): allowed on a full server.
    Reads,
    /// Settles or moves jobs already in Redis, or removes data
    /// (`allow-oom`), so a server at `maxmemory` can still be drained (as
    /// `EVAL` allowed: an unflagged script may keep writing once it has
    /// written).
    Drains,
    /// Adds data (no flag): at `maxmemory` it is refused as a whole, before
    /// it changes anything.
    Adds,
}

impl Memory {
    fn flags(self) -> &'static str {
        match self {
            Memory::Reads => "'no-writes'",
            Memory::Drains => "'allow-oom'",
            Memory::Adds => "",
        }
    }

    /// The same flags as an `EVAL` script's first line (Redis 7).
    fn shebang(self) -> &'static str {
        match self {
            Memory::Reads => "#!lua flags=no-writes\n",
            Memory::Drains => "#!lua flags=allow-oom\n",
            Memory::Adds => "#!lua\n",
        }
    }
}

/// A Lua script, as its operation module declares it.
#[derive(Debug)]
pub(crate) struct Script {
    /// Its name: the function's name in the library, and how calls find it.
    pub(crate) name: &'static str,
    /// Its function flags.
    pub(crate) memory: Memory,
    /// `lua/ops/<name>.lua`, include lines and all.
    pub(crate) source: &'static str,
}

/// One call of a script: its keys and arguments, and how its reply reads.
///
/// The order of [`Call::keys`] and [`Call::args`] is the script's KEYS and
/// ARGV as its header lists them; nothing else builds them.
pub(crate) trait Call {
    /// The script this calls.
    const SCRIPT: &'static Script;
    /// The reply, decoded.
    type Reply;
    /// Every key the script touches, in KEYS order.
    fn keys(&self) -> Vec<&str>;
    /// Appends ARGV, in order.
    fn args(&self, cmd: &mut Cmd);
    /// Reads the script's reply.
    fn decode(&self, reply: Value) -> Result<Self::Reply>;
}

/// One script, ready to run.
#[derive(Debug)]
struct Lua {
    /// The whole script as one chunk, for `EVAL`.
    eval: String,
    /// Its SHA1, for `EVALSHA`.
    sha: String,
    /// The same chunk behind a `#!lua flags=…` line with its function
    /// flags, for `EVAL` on Redis 7 (a user who may not load functions):
    /// without it, a draining script's first write is refused at
    /// `maxmemory`.
    flagged: String,
    /// Its SHA1.
    flagged_sha: String,
    /// Its name in the function library.
    function: String,
}

/// Every script, loaded once per broker.
#[derive(Debug)]
pub(crate) struct Scripts {
    by_name: HashMap<&'static str, Lua>,
    /// The function library's code.
    library: String,
    /// The library's probe function: answers 1 wherever the library is
    /// loaded.
    probe: String,
    /// False once loading the library failed (no `FUNCTION` command, or not
    /// allowed): scripts then run with EVALSHA.
    functions: AtomicBool,
    /// Whether `EVAL` takes a `#!lua flags=…` line (Redis 7): then the
    /// scripts run with their flags, as functions would.
    shebang: AtomicBool,
}

impl Scripts {
    /// Builds the function library (and the `EVAL` forms) of `all`.
    ///
    /// # Panics
    /// If a script includes an unknown helper or two scripts share a name:
    /// both are mistakes in this crate's sources, caught by its tests.
    pub(crate) fn new(all: &[&'static Script]) -> Self {
        let mut all = all.to_vec();
        all.sort_by_key(|s| s.name);
        let expanded: Vec<(&Script, lua::Expanded)> = all
            .iter()
            .map(|s| {
                let x = lua::expand(s.source)
                    .unwrap_or_else(|e| panic!("bananas-redis: script `{}`: {e}", s.name));
                (*s, x)
            })
            .collect();
        // The library's name, and its functions' prefix, come from its code.
        let mut source = String::new();
        for (s, x) in &expanded {
            source.push_str(&format!(
                "\n{} {}\n{}\n{}",
                s.name,
                s.memory.flags(),
                x.helpers,
                x.body
            ));
        }
        let prefix = format!("bananas_{}", &redis::Script::new(&source).get_hash()[..16]);
        let probe = format!("{prefix}_loaded");
        let mut library = format!(
            "#!lua name={prefix}\n\
             redis.register_function{{function_name = '{probe}', \
             flags = {{'no-writes'}}, callback = function() return 1 end}}\n"
        );
        let mut by_name = HashMap::new();
        for (s, x) in &expanded {
            let function = format!("{prefix}_{}", s.name);
            // The helpers run once, when the library loads; the callback
            // keeps them as upvalues.
            library.push_str(&format!(
                "do\n{}redis.register_function{{function_name = '{function}', \
                 flags = {{{}}}, callback = function(KEYS, ARGV)\n{}end}}\nend\n",
                x.helpers,
                s.memory.flags(),
                x.body
            ));
            let eval = x.eval_source();
            let flagged = format!("{}{eval}", s.memory.shebang());
            let lua = Lua {
                sha: redis::Script::new(&eval).get_hash().to_owned(),
                eval,
                flagged_sha: redis::Script::new(&flagged).get_hash().to_owned(),
                flagged,
                function,
            };
            let dup = by_name.insert(s.name, lua);
            assert!(
                dup.is_none(),
                "bananas-redis: two scripts named `{}`",
                s.name
            );
        }
        Scripts {
            by_name,
            library,
            probe,
            functions: AtomicBool::new(true),
            shebang: AtomicBool::new(false),
        }
    }

    /// Loads the function library, or switches to EVALSHA when the server
    /// has no functions (before Redis 7) or the user may not load them.
    pub(crate) async fn init(&self, conn: &Conn) {
        let mut conn = conn.clone();
        if let Err(e) = self.load(&mut conn).await {
            tracing::info!(error = %e, "Redis functions unavailable; running the Lua scripts with EVALSHA");
            self.functions.store(false, Ordering::Relaxed);
            // Redis 7 with a user who may not load functions: EVAL still
            // takes the scripts' flags. (Redis 6.2 reads the line as Lua,
            // and fails.)
            let flags: RedisResult<Value> = redis::cmd("EVAL")
                .arg("#!lua flags=no-writes\nreturn 1")
                .arg(0)
                .query_async(&mut conn)
                .await;
            self.shebang.store(flags.is_ok(), Ordering::Relaxed);
        }
    }

    async fn load(&self, conn: &mut Conn) -> RedisResult<()> {
        // On a cluster, redis-rs sends FUNCTION LOAD to every master.
        let _: Value = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&self.library)
            .query_async(conn)
            .await?;
        Ok(())
    }

    /// Whether the library is missing on the server that holds `key`
    /// (after a call there failed with a plain `ERR`): its probe function
    /// fails there too. `false` when the probe answers, or fails otherwise
    /// (then the call's own error stands).
    async fn library_missing(&self, conn: &mut Conn, key: Option<&str>) -> bool {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&self.probe);
        match key {
            Some(k) => cmd.arg(1).arg(k),
            None => cmd.arg(0),
        };
        match cmd.query_async::<Value>(conn).await {
            Ok(_) => false,
            Err(e) => is_plain_error(&e),
        }
    }

    /// After a call that was sent on its own (see [`Scripts::fcall_cmd`])
    /// failed with `e`: if the server lost the library, loads it again and
    /// returns true (the caller may send the call again).
    pub(crate) async fn reload_if_lost(
        &self,
        conn: &Conn,
        key: Option<&str>,
        e: &RedisError,
    ) -> bool {
        let mut conn = conn.clone();
        if !is_plain_error(e) || !self.library_missing(&mut conn, key).await {
            return false;
        }
        tracing::debug!("reloading the Lua function library");
        self.load(&mut conn).await.is_ok()
    }

    fn get(&self, script: &Script) -> Result<&Lua> {
        self.by_name.get(script.name).ok_or_else(|| {
            Error::backend_msg(format!(
                "bananas-redis bug: script `{}` is not in the library",
                script.name
            ))
        })
    }

    /// Whether scripts run as functions of the library (else with EVALSHA).
    pub(crate) fn run_as_functions(&self) -> bool {
        self.functions.load(Ordering::Relaxed)
    }

    /// The `FCALL` of `call`, for a caller that sends it itself (after a
    /// blocking pop, in the same write) and reads the reply with
    /// [`Call::decode`]. Only where [`Scripts::run_as_functions`].
    pub(crate) fn fcall_cmd<C: Call>(&self, call: &C) -> Result<Cmd> {
        let lua = self.get(C::SCRIPT)?;
        Ok(command("FCALL", &lua.function, &call.keys(), |c| {
            call.args(c)
        }))
    }

    /// Runs `call` and decodes its reply.
    pub(crate) async fn call<C: Call>(&self, conn: &Conn, call: &C) -> Result<C::Reply> {
        self.call_beside(conn, call, &[]).await.0
    }

    /// Runs `call` and the commands `beside`, whose failure the caller
    /// tolerates: their errors come back beside the reply instead of
    /// failing the call. On one server they go in the same request (one
    /// write, one round trip); on a cluster, where they may live in other
    /// slots, in a second request sent at the same time.
    pub(crate) async fn call_beside<C: Call>(
        &self,
        conn: &Conn,
        call: &C,
        beside: &[Cmd],
    ) -> (Result<C::Reply>, Vec<RedisError>) {
        let name = C::SCRIPT.name;
        let lua = match self.get(C::SCRIPT) {
            Ok(lua) => lua,
            Err(e) => return (Err(e), Vec::new()),
        };
        let keys = call.keys();
        let args = |c: &mut Cmd| call.args(c);
        let mut conn = conn.clone();
        let (first, beside_errors) = if beside.is_empty() {
            (self.send(&mut conn, lua, &keys, args).await, Vec::new())
        } else if conn.is_cluster() {
            // A cluster pipeline may not span slots: two requests, side by
            // side.
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for c in beside {
                pipe.add_command(c.clone());
            }
            let mut other = conn.clone();
            let (first, rest) = futures::join!(
                self.send(&mut conn, lua, &keys, args),
                pipe.query_async::<Vec<RedisResult<Value>>>(&mut other)
            );
            let errors = match rest {
                Ok(replies) => replies.into_iter().filter_map(|r| r.err()).collect(),
                Err(e) => vec![e],
            };
            (first, errors)
        } else {
            let mut pipe = redis::pipe();
            pipe.ignore_errors()
                .add_command(self.command(lua, &keys, args));
            for c in beside {
                pipe.add_command(c.clone());
            }
            match pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn).await {
                Err(e) => return (Err(script_err(name, e)), Vec::new()),
                Ok(replies) => {
                    let mut replies = replies.into_iter();
                    let first = replies.next().unwrap_or(Ok(Value::Nil));
                    (first, replies.filter_map(|r| r.err()).collect())
                }
            }
        };
        let reply = match first {
            Ok(v) => Ok(v),
            Err(e) => self.after_error(&mut conn, lua, &keys, args, e).await,
        };
        (
            reply
                .map_err(|e| script_err(name, e))
                .and_then(|v| call.decode(v)),
            beside_errors,
        )
    }

    /// The script's command: `FCALL`, or `EVALSHA` without functions.
    fn command(&self, lua: &Lua, keys: &[&str], args: impl Fn(&mut Cmd)) -> Cmd {
        if self.run_as_functions() {
            command("FCALL", &lua.function, keys, args)
        } else if self.shebang.load(Ordering::Relaxed) {
            command("EVALSHA", &lua.flagged_sha, keys, args)
        } else {
            command("EVALSHA", &lua.sha, keys, args)
        }
    }

    async fn send(
        &self,
        conn: &mut Conn,
        lua: &Lua,
        keys: &[&str],
        args: impl Fn(&mut Cmd),
    ) -> RedisResult<Value> {
        self.command(lua, keys, args).query_async(conn).await
    }

    /// After the script's command failed with `e`: loads the library again
    /// and repeats the call if the server lost the library, or sends the
    /// script itself (`EVAL`) if the server does not have it cached;
    /// otherwise `e` stands.
    async fn after_error(
        &self,
        conn: &mut Conn,
        lua: &Lua,
        keys: &[&str],
        args: impl Fn(&mut Cmd),
        e: RedisError,
    ) -> RedisResult<Value> {
        if self.run_as_functions() {
            if is_plain_error(&e) && self.library_missing(conn, keys.first().copied()).await {
                tracing::debug!(function = %lua.function, "reloading the Lua function library");
                self.load(conn).await?;
                return self.send(conn, lua, keys, args).await;
            }
        } else if is_noscript(&e) {
            let script = if self.shebang.load(Ordering::Relaxed) {
                &lua.flagged
            } else {
                &lua.eval
            };
            return command("EVAL", script, keys, args).query_async(conn).await;
        }
        Err(e)
    }
}

/// `<verb> <script> <numkeys> <keys…> <args…>`.
fn command(verb: &str, script: &str, keys: &[&str], args: impl Fn(&mut Cmd)) -> Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(script).arg(keys.len()).arg(keys);
    args(&mut cmd);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Script = Script {
        name: "a",
        memory: Memory::Reads,
        source: "--- @include \"include/sep.lua\"\nreturn SEP\n",
    };
    static B: Script = Script {
        name: "b",
        memory: Memory::Adds,
        source: "return 1\n",
    };

    #[test]
    fn scripts_are_found_by_name_whatever_their_order() {
        let ab = Scripts::new(&[&A, &B]);
        let ba = Scripts::new(&[&B, &A]);
        assert_eq!(
            ab.library, ba.library,
            "the order of the list does not matter"
        );
        let a = ab.get(&A).unwrap();
        assert!(a.function.ends_with("_a"));
        assert!(a.eval.contains("local SEP") && a.eval.ends_with("return SEP\n"));
        assert!(ab.get(&B).unwrap().function.ends_with("_b"));
        let unknown = Script {
            name: "c",
            memory: Memory::Reads,
            source: "",
        };
        assert!(ab.get(&unknown).is_err());
    }

    #[test]
    fn helpers_run_once_per_load_and_bodies_per_call() {
        let s = Scripts::new(&[&A]);
        let helpers_at = s.library.find("local SEP").unwrap();
        let callback_at = s.library.find("callback = function(KEYS, ARGV)").unwrap();
        assert!(helpers_at < callback_at, "{}", s.library);
        assert!(s.library.contains("flags = {'no-writes'}"));
        assert!(s.library.contains(&s.probe));
    }

    #[test]
    #[should_panic(expected = "two scripts named `a`")]
    fn two_scripts_may_not_share_a_name() {
        Scripts::new(&[&A, &A]);
    }
}
