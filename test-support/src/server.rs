//! A private `redis-server` process.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{free_port, temp_dir};

/// How long a server may take to answer PING (or a replica to sync).
const TIMEOUT: Duration = Duration::from_secs(20);

/// A private `redis-server` on a free port, bound to 127.0.0.1 only, with a
/// data directory of its own (its log is `redis.log` there). Killed, and
/// its directory removed, when dropped.
///
/// It runs with `--save ""` (a snapshot only when [`save`](Self::save) asks
/// for one) and, unless [`RedisServerBuilder::appendonly`] says otherwise,
/// without an append-only file.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    config: Config,
    child: Option<Child>,
    /// With [`RedisServerBuilder::reaped`]: a `sh` that kills the server
    /// and removes its directory when its standard input closes, that is
    /// when this process exits, however it exits.
    reaper: Option<Child>,
}

#[derive(Debug, Clone, Default)]
struct Config {
    appendonly: bool,
    tls: bool,
    password: Option<String>,
    reaped: bool,
    /// Extra `--name value` pairs.
    extra: Vec<(String, String)>,
}

/// How to start a [`RedisServer`]: `RedisServer::builder()…start()`.
#[derive(Debug, Default)]
#[must_use]
pub struct RedisServerBuilder {
    config: Config,
}

impl RedisServerBuilder {
    /// Turns on the append-only file, fsynced on every write: whatever the
    /// server acknowledged survives a SIGKILL.
    pub fn appendonly(mut self) -> Self {
        self.config.appendonly = true;
        self
    }

    /// Speaks only TLS, with a certificate for `127.0.0.1` and `localhost`
    /// signed by a fresh private CA, both made with the `openssl` command in
    /// the server's directory; clients must trust
    /// [`ca_file`](RedisServer::ca_file). The URL is `rediss://`.
    pub fn tls(mut self) -> Self {
        self.config.tls = true;
        self
    }

    /// Requires `password` (`requirepass`); [`RedisServer::url`] and
    /// [`RedisServer::cli`] send it. It goes into the URL as is, so keep it
    /// URL-safe.
    pub fn password(mut self, password: &str) -> Self {
        self.config.password = Some(password.to_owned());
        self
    }

    /// Kills the server (and removes its directory) when this process
    /// exits, even if the [`RedisServer`] is never dropped: for a server
    /// kept in a `static` and shared by the tests of one binary (Rust runs
    /// no destructors of statics). A small `sh` watches a pipe from this
    /// process and acts when the pipe closes, which the kernel does at any
    /// exit, a crash or SIGKILL included.
    pub fn reaped(mut self) -> Self {
        self.config.reaped = true;
        self
    }

    /// One more config directive, passed as `--name value` after the
    /// defaults (so it can override them): `.config("cluster-enabled",
    /// "yes")`.
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.config.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts it and waits until it answers PING. If it exits at once (most
    /// likely another process took the free port first), it tries again on
    /// another port, up to three times.
    pub fn start(self) -> RedisServer {
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = RedisServer {
                port: free_port(),
                dir: temp_dir("redis"),
                config: self.config.clone(),
                child: None,
                reaper: None,
            };
            if server.config.tls {
                make_certificates(&server.dir);
            }
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }
}

impl RedisServer {
    /// Starts one with the defaults: no persistence, no TLS, no password.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Settings for one: append-only file, TLS, password, any config.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its URL: `redis://127.0.0.1:PORT`, or `rediss://` for TLS, with the
    /// password if it has one.
    pub fn url(&self) -> String {
        let scheme = if self.config.tls { "rediss" } else { "redis" };
        let auth = match &self.config.password {
            Some(p) => format!(":{p}@"),
            None => String::new(),
        };
        format!("{scheme}://{auth}127.0.0.1:{}", self.port)
    }

    /// The private CA's certificate (PEM) a client must trust, for a TLS
    /// server.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.config.tls.then(|| self.dir.join("ca.pem"))
    }

    /// Runs `redis-cli ARGS` against it (over TLS and with the password
    /// when it has them) and returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = self.ca_file() {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        if let Some(p) = &self.config.password {
            cmd.env("REDISCLI_AUTH", p);
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli (is it installed?)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops it with SIGTERM (so the append-only file is flushed) and waits
    /// for it to exit.
    pub fn stop(&mut self) {
        self.stop_reaper();
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Kills it with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        self.stop_reaper();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again after [`stop`](Self::stop) or [`kill`](Self::kill),
    /// on the same port with the same directory and settings (so it loads
    /// its append-only file or snapshot), and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "redis-server on port {} is still running; stop or kill it first",
            self.port
        );
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
    }

    /// Kills it (SIGKILL) and starts it again: [`kill`](Self::kill), then
    /// [`start_again`](Self::start_again).
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Writes a snapshot now (`SAVE`); a restart loads it (unless the
    /// append-only file is on, which then wins).
    pub fn save(&self) {
        self.ok(&["save"]);
    }

    /// Makes it a replica of `primary` (`REPLICAOF`) and waits until the
    /// link is up and the first sync is done. Plain (non-TLS) servers.
    pub fn replicate(&self, primary: &RedisServer) {
        assert!(
            !self.config.tls && !primary.config.tls,
            "replicate is for servers without TLS"
        );
        if let Some(p) = &primary.config.password {
            self.ok(&["config", "set", "masterauth", p]);
        }
        self.ok(&["replicaof", "127.0.0.1", &primary.port.to_string()]);
        let deadline = Instant::now() + TIMEOUT;
        while !self
            .cli(&["info", "replication"])
            .contains("master_link_status:up")
        {
            assert!(
                Instant::now() < deadline,
                "the replica on port {} did not sync with {} within {TIMEOUT:?}",
                self.port,
                primary.port
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes it a primary again (`REPLICAOF NO ONE`), keeping its data.
    pub fn promote(&self) {
        self.ok(&["replicaof", "no", "one"]);
    }

    /// Runs a command with `redis-cli` and checks that it answered `OK`.
    fn ok(&self, args: &[&str]) {
        let out = self.cli(args);
        assert_eq!(
            out.trim(),
            "OK",
            "{args:?} on redis-server port {}",
            self.port
        );
    }

    /// Starts the process and waits until it answers PING; on failure, says
    /// why with the end of its log.
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        if self.config.tls {
            cmd.args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(self.dir.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.join("key.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args([
                "--appendonly",
                if self.config.appendonly { "yes" } else { "no" },
            ])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if let Some(p) = &self.config.password {
            cmd.args(["--requirepass", p]);
        }
        for (name, value) in &self.config.extra {
            cmd.arg(format!("--{name}")).arg(value);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start redis-server (is it installed?): {e}"))?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {port} exited with {status}; its log ends:\n{}",
                    self.log_tail()
                ));
            }
            // A server still loading its data answers LOADING, not PONG.
            if self.cli(&["ping"]).trim() == "PONG" {
                if self.config.reaped {
                    self.reaper = Some(self.spawn_reaper(child.id()));
                }
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server on port {port} did not answer PING within {TIMEOUT:?}; \
                     its log ends:\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the `sh` that kills `pid` and removes the directory once its
    /// standard input, a pipe whose other end only this process holds
    /// (Rust opens it close-on-exec), reaches end of file.
    fn spawn_reaper(&self, pid: u32) -> Child {
        Command::new("sh")
            .arg("-c")
            .arg(
                // Waits (5 s at most) for the process to be gone before
                // removing its directory.
                r#"read _; kill -KILL "$1" 2>/dev/null; i=0
                   while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
                       sleep 0.05; i=$((i + 1))
                   done
                   rm -rf "$2""#,
            )
            .arg("reaper")
            .arg(pid.to_string())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh to reap redis-server")
    }

    /// Ends the reaper without letting it act (the server is being stopped,
    /// or restarted with the same directory).
    fn stop_reaper(&mut self) {
        if let Some(mut r) = self.reaper.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes `ca.pem` (a fresh private CA) and `cert.pem`/`key.pem` (for
/// `127.0.0.1` and `localhost`, signed by it) in `dir` with `openssl`.
fn make_certificates(dir: &Path) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write the extensions file");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bananas test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl (is it installed?)");
        assert!(status.success(), "openssl {args:?} failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(server: &RedisServer, key: &str) -> String {
        server.cli(&["get", key]).trim().to_owned()
    }

    #[test]
    fn the_password_is_in_the_url_and_used_by_the_cli() {
        let server = RedisServer::builder().password("pw").start();
        assert_eq!(server.cli(&["ping"]).trim(), "PONG");
        let url = server.url();
        assert_eq!(url, format!("redis://:pw@127.0.0.1:{}", server.port()));
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
        let bare = format!("redis://127.0.0.1:{}", server.port());
        let mut con = redis::Client::open(bare).unwrap().get_connection().unwrap();
        assert!(redis::cmd("GET").arg("k").query::<()>(&mut con).is_err());
    }

    #[test]
    fn an_appendonly_server_keeps_its_writes_through_sigkill() {
        let mut server = RedisServer::builder().appendonly().start();
        let port = server.port();
        server.cli(&["set", "k", "v"]);
        server.kill();
        assert_ne!(server.cli(&["ping"]).trim(), "PONG");
        server.start_again();
        assert_eq!(server.port(), port);
        assert_eq!(get(&server, "k"), "v");
        server.stop();
        server.start_again();
        assert_eq!(get(&server, "k"), "v");
    }

    #[test]
    fn a_reaped_server_goes_when_this_process_would_exit() {
        use std::os::unix::process::ExitStatusExt;

        let mut server = RedisServer::builder().reaped().start();
        let dir = server.dir().to_owned();
        // The pipe closes as it does when this process exits.
        drop(server.reaper.as_mut().unwrap().stdin.take());
        let status = server.child.take().unwrap().wait().unwrap();
        assert_eq!(status.signal(), Some(9), "killed by the reaper");
        let deadline = Instant::now() + TIMEOUT;
        while dir.exists() {
            assert!(Instant::now() < deadline, "{dir:?} was not removed");
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_restart_loads_the_last_snapshot() {
        let mut server = RedisServer::start();
        server.cli(&["set", "k", "saved"]);
        server.save();
        server.cli(&["set", "k", "lost"]);
        server.restart();
        assert_eq!(get(&server, "k"), "saved");
    }

    #[test]
    fn a_replica_syncs_and_is_promoted() {
        let primary = RedisServer::start();
        let replica = RedisServer::start();
        primary.cli(&["set", "k", "v"]);
        replica.replicate(&primary);
        assert_eq!(get(&replica, "k"), "v");
        replica.promote();
        assert_eq!(replica.cli(&["set", "k", "w"]).trim(), "OK");
    }
}
