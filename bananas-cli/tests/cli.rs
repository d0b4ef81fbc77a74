//! The `bananas` command as a process, against the real Redis at
//! 127.0.0.1:6379 (or `REDIS_URL`), each test under its own key prefix.

use std::{
    process::{Command, Output, Stdio},
    sync::atomic::Ordering,
    time::Duration,
};

use bananas::{
    broker::{publish_schedules, Broker, FetchRequest, QueueStats, Schedules},
    job::{now_millis, Ack, Job, Outcome, Route},
};
use bananas_redis::RedisBroker;
use bananas_test_support::{redis_url, KeySpace};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A key prefix of this test's own on the shared Redis; its keys are
/// deleted (SCAN + DEL) when it is dropped.
struct Space {
    keys: KeySpace,
}

impl Space {
    fn new(test: &str) -> Self {
        Space {
            keys: KeySpace::new(&redis_url(), &format!("cli-{test}")),
        }
    }

    fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Runs `bananas ARGS` against this prefix.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bananas"))
            .args(args)
            .env("BANANAS_URL", redis_url())
            .env("BANANAS_PREFIX", self.prefix())
            .env_remove("BANANAS_API_TOKEN")
            .env_remove("BANANAS_API_URL")
            .output()
            .expect("run bananas")
    }

    /// Runs it, expects success, and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bananas {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs it with `--json`, expects success, and parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let s = self.ok(&a);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    /// Runs it, expects failure with status 1 and one line on stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "bananas {args:?} should fail: {out:?}"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
        assert!(err.starts_with("bananas: error: "), "{err:?}");
        err
    }

    async fn broker(&self) -> RedisBroker {
        RedisBroker::builder(&redis_url())
            .prefix(self.prefix())
            .connect()
            .await
            .expect("connect to Redis")
    }

    /// Fetches every ready job of `route` and dead-letters it.
    async fn kill_all(&self, route: &str) -> usize {
        let broker = self.broker().await;
        let jobs = broker
            .fetch(&FetchRequest {
                routes: vec![Route::new(route).unwrap()],
                max: 100,
                lease: Duration::from_secs(60),
                cursor: 0,
                block: Duration::ZERO,
            })
            .await
            .unwrap();
        let n = jobs.len();
        let acks = jobs
            .into_iter()
            .map(|job: Job| Ack {
                outcome: Outcome::Dead {
                    reason: format!("boom {}", job.task),
                },
                job: job.into_parts().0,
                started_at: now_millis(),
                finished_at: now_millis(),
            })
            .collect::<Vec<_>>();
        broker.ack(&acks).await.unwrap();
        n
    }
}

fn route_stats(v: &Value, route: &str) -> QueueStats {
    let q = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["route"] == route)
        .unwrap_or_else(|| panic!("no route {route} in {v}"));
    serde_json::from_value(q.clone()).unwrap()
}

#[test]
fn enqueue_stats_and_show() {
    let s = Space::new("enqueue");
    let id = s
        .ok(&[
            "enqueue",
            "add",
            "--payload",
            r#"{"a": 1, "b": 2}"#,
            "--priority",
            "high",
            "--route",
            "r1",
        ])
        .trim()
        .to_owned();
    assert!(!id.is_empty() && !id.contains(' '), "{id}");
    let v = s.json(&[
        "enqueue",
        "later",
        "--route",
        "r1",
        "--countdown",
        "600",
        "--retries",
        "5",
    ]);
    assert_eq!(v["state"], "scheduled");
    let later = v["id"].as_str().unwrap().to_owned();

    let v = s.json(&["stats"]);
    let r1 = route_stats(&v, "r1");
    assert_eq!(
        (r1.high, r1.normal, r1.low, r1.scheduled),
        (1, 0, 0, 1),
        "{v}"
    );
    assert_eq!(v["totals"]["high"], 1);
    assert!(v["workers"].is_array());
    let human = s.ok(&["stats"]);
    assert!(human.starts_with("ROUTE"), "{human}");
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("r1 ") && l.contains(" 1 ")),
        "{human}"
    );
    assert!(human.contains("TOTAL"), "{human}");

    let v = s.json(&["jobs", "show", &id]);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "add");
    assert_eq!(v["state"], "queued");
    assert_eq!(v["priority"], "high");
    assert_eq!(v["payload"], json!({"a": 1, "b": 2}));
    let v = s.json(&["jobs", "show", &later]);
    assert_eq!(
        (v["state"].as_str(), v["max_retries"].as_u64()),
        (Some("scheduled"), Some(5))
    );
    let human = s.ok(&["jobs", "show", &id]);
    assert!(
        human.contains("state:") && human.contains("queued"),
        "{human}"
    );

    let e = s.fails(&["jobs", "show", "no-such-job"]);
    assert!(e.contains("`no-such-job` not found"), "{e}");

    // Cancelling the delayed job: it is dead as `cancelled`; a second
    // cancel, or one of an unknown id, says why it changed nothing.
    assert!(s.ok(&["jobs", "cancel", &later]).contains("cancelled"));
    let v = s.json(&["jobs", "show", &later]);
    assert_eq!(
        (v["state"].as_str(), v["error"].as_str()),
        (Some("dead"), Some("cancelled"))
    );
    let e = s.fails(&["jobs", "cancel", &later]);
    assert!(e.contains("already finished"), "{e}");
    let e = s.fails(&["jobs", "cancel", "no-such-job"]);
    assert!(e.contains("`no-such-job` not found"), "{e}");
}

#[tokio::test]
async fn enqueue_keeps_every_digit_of_the_payload() {
    let s = Space::new("digits");
    let payload =
        r#"{"n": 123456789012345678901234567890, "f": 0.1000000000000000055511151231257827}"#;
    let id = s
        .ok(&["enqueue", "big", "--payload", payload])
        .trim()
        .to_owned();
    let rec = bananas::broker::Inspect::job(&s.broker().await, &id.as_str().into(), None)
        .await
        .unwrap()
        .expect("the job is stored");
    assert_eq!(rec.args.get(), payload);
}

/// The write end of a pipe whose read end is already closed, as `head`
/// leaves it once it has read its lines: writing to it fails with EPIPE.
/// (The read end belonged to a `true` process that has exited; every other
/// copy is close-on-exec, so nothing can read it any more.)
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("run true");
    let write_end = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    Stdio::from(write_end)
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let s = Space::new("epipe");
    let id = s
        .ok(&["enqueue", "add", "--payload", r#"{"a": 1, "b": 2}"#])
        .trim()
        .to_owned();
    // `bananas --json jobs show ID | head -3`, and friends.
    for args in [
        vec!["--json", "jobs", "show", id.as_str()],
        vec!["jobs", "show", id.as_str()],
        vec!["stats"],
        vec!["--json", "dead", "list"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bananas"))
            .args(&args)
            .env("BANANAS_URL", redis_url())
            .env("BANANAS_PREFIX", s.prefix())
            .env("RUST_BACKTRACE", "1")
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.is_empty(),
            "bananas {args:?}: {:?}, stderr: {err}",
            out.status
        );
    }
}

#[test]
fn enqueue_errors_are_one_line() {
    let s = Space::new("enqueue-errors");
    assert!(s
        .fails(&["enqueue", "x", "--priority", "urgent"])
        .contains("unknown priority `urgent`"));
    assert!(s
        .fails(&["enqueue", "x", "--route", "no spaces"])
        .contains("invalid route"));
    assert!(s
        .fails(&["enqueue", "x", "--payload", "{nope"])
        .contains("--payload is not valid JSON"));
    assert!(s
        .fails(&["enqueue", "x", "--payload", "[1]"])
        .contains("payload"));
    assert!(s
        .fails(&["enqueue", "x", "--countdown=-5"])
        .contains("countdown"));
    assert!(s
        .fails(&["enqueue", "x", "--eta", "someday"])
        .contains("eta"));
    // Nothing was enqueued.
    let v = s.json(&["stats"]);
    assert_eq!(v["totals"]["normal"], 0, "{v}");
}

#[tokio::test]
async fn dead_list_requeue_and_purge() {
    let s = Space::new("dead");
    for i in 0..3 {
        s.ok(&["enqueue", &format!("t{i}"), "--route", "dl"]);
    }
    assert_eq!(s.kill_all("dl").await, 3);

    let v = s.json(&["dead", "list"]);
    let jobs = v["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 3, "{v}");
    assert!(jobs
        .iter()
        .all(|j| j["state"] == "dead" && j["error"].as_str().unwrap().starts_with("boom t")));
    assert_eq!(
        s.json(&["dead", "list", "--limit", "1"])["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let human = s.ok(&["dead", "list"]);
    assert!(
        human.starts_with("ID") && human.contains("boom t1"),
        "{human}"
    );

    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.ok(&["dead", "requeue", &id]).trim(),
        format!("requeued {id}")
    );
    assert_eq!(s.json(&["jobs", "show", &id])["state"], "queued");
    assert!(s.fails(&["dead", "requeue", &id]).contains("no dead job"));

    let v = s.json(&["dead", "requeue", "--all"]);
    assert_eq!(v["requeued"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(route_stats(&s.json(&["stats"]), "dl").normal, 3);

    assert_eq!(s.kill_all("dl").await, 3);
    assert_eq!(s.ok(&["dead", "purge"]).trim(), "purged 3 dead jobs");
    assert_eq!(s.json(&["dead", "list"])["jobs"], json!([]));
    assert_eq!(s.ok(&["dead", "list"]).trim(), "no dead jobs");
    assert_eq!(s.json(&["dead", "purge"])["purged"], 0);

    // `requeue` needs an id or --all.
    let out = s.run(&["dead", "requeue"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn schedules_announced_in_the_broker() {
    let s = Space::new("schedules");
    assert_eq!(
        s.ok(&["schedules"]).trim(),
        "no schedules (none announced by a running scheduler)"
    );

    // What a running scheduler announces, and a tick it claimed.
    let broker = s.broker().await;
    let info = |id: &str, next: u64| bananas::broker::ScheduleInfo {
        id: id.to_owned(),
        route: "default".to_owned(),
        cron: "0 0 2 * * *".to_owned(),
        tz: "Europe/Berlin".to_owned(),
        next_run: Some(next),
        seen_at: 500,
    };
    publish_schedules(
        &broker,
        &[info("nightly", 90_000_000), info("never-ran", 90_000_000)],
    )
    .await
    .unwrap();
    let mut job = Job::new(
        "nightly",
        serde_json::value::RawValue::from_string("{}".into()).unwrap(),
    );
    job.id = "sched-nightly-1000".into();
    assert_eq!(
        broker.claim_tick("nightly", 1000, job).await.unwrap(),
        bananas::broker::TickClaim::Enqueued
    );

    let v = s.json(&["schedules"]);
    let list = v["schedules"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "never-ran");
    assert_eq!(list[0]["last_run"], Value::Null);
    assert_eq!(list[1]["id"], "nightly");
    assert_eq!(list[1]["cron"], "0 0 2 * * *");
    assert_eq!(list[1]["tz"], "Europe/Berlin");
    assert_eq!(list[1]["next_run"]["ms"], 90_000_000);
    assert_eq!(list[1]["last_run"]["ms"], 1000);
    assert_eq!(list[1]["last_job_id"], "sched-nightly-1000");
    assert_eq!(list[1]["last_outcome"], "queued");
    let human = s.ok(&["schedules"]);
    assert!(human.contains("1970-01-01T00:00:01.000Z"), "{human}");
    assert!(human.contains("Europe/Berlin"), "{human}");
}

#[tokio::test]
async fn a_bad_schedule_announcement_does_not_hide_the_others() {
    let s = Space::new("bad-schedule");
    let broker = s.broker().await;
    let info = |id: &str, route: &str| bananas::broker::ScheduleInfo {
        id: id.to_owned(),
        route: route.to_owned(),
        cron: "0 0 2 * * *".to_owned(),
        tz: "UTC".to_owned(),
        next_run: Some(90_000_000),
        seen_at: 500,
    };
    publish_schedules(
        &broker,
        &[info("nightly", "default"), info("broken", "not a route!")],
    )
    .await
    .unwrap();

    let v = s.json(&["schedules"]);
    assert_eq!(v["schedules"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["schedules"][0]["id"], "nightly");
    assert_eq!(v["skipped"][0]["id"], "broken", "{v}");
    let out = s.run(&["schedules"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("nightly") && !table.contains("broken"),
        "{table}"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning") && err.contains("\"broken\"") && err.contains("invalid route"),
        "{err}"
    );
}

#[test]
fn bad_broker_urls_fail_with_one_line() {
    let s = Space::new("urls");
    let out = Command::new(env!("CARGO_BIN_EXE_bananas"))
        .args(["stats"])
        .env("BANANAS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("bananas: error: cannot connect to the broker"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    let out = Command::new(env!("CARGO_BIN_EXE_bananas"))
        .args(["--url", "ftp://x", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported broker URL"));
    drop(s);
}

/// A free port on 127.0.0.1, closed again (nothing listens on it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private `redis-server` on a free loopback port, with `args`; killed
/// when dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start(args: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        PrivateRedis { child, port }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bananas --url URL stats` and returns (success, stderr, seconds).
fn stats_at(url: &str) -> (bool, String, f64) {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_bananas"))
        .args(["--url", url, "stats"])
        .env_remove("BANANAS_PREFIX")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stderr).unwrap(),
        started.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_redis_that_needs_a_password_says_so() {
    let redis = PrivateRedis::start(&["--requirepass", "s3cret"]);
    let at = format!("127.0.0.1:{}", redis.port);
    // No password: not "broken pipe", but what to do.
    let (ok, err, _) = stats_at(&format!("redis://{at}"));
    assert!(!ok);
    assert!(
        err.contains("requires authentication") && err.contains(&at),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A wrong password, or user.
    for url in [
        format!("redis://:wrong@{at}"),
        format!("redis://bob:s3cret@{at}"),
    ] {
        let (ok, err, _) = stats_at(&url);
        assert!(!ok);
        assert!(err.contains("authentication failed"), "{url}: {err}");
        assert!(err.contains(&at) && !err.contains("s3cret"), "{err}");
    }
    // The right one.
    let (ok, err, _) = stats_at(&format!("redis://:s3cret@{at}"));
    assert!(ok, "{err}");
}

#[test]
fn an_unreachable_redis_fails_soon_naming_the_address() {
    // Nothing listens: refused. Not a timing test: the bound only shows
    // that it does not hang for the broker's whole retry schedule.
    let at = format!("127.0.0.1:{}", free_port());
    let (ok, err, took) = stats_at(&format!("redis://{at}"));
    assert!(!ok);
    assert!(err.contains(&at) && err.contains("refused"), "{err}");
    assert!(took < 10.0, "took {took} s: {err}");

    // A listener that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                held.extend(conn.ok());
            }
        })
    };
    let (ok, err, took) = stats_at(&format!("redis://{at}"));
    assert!(!ok);
    assert!(err.contains(&at) && err.contains("did not answer"), "{err}");
    assert!(took < 10.0, "took {took} s: {err}");
    // Wake the holder so it stops.
    stop.store(true, Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(&at);
    holder.join().unwrap();
}

/// A `bananas serve` process; killed when dropped.
struct Served {
    child: tokio::process::Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn serve(s: &Space, token: Option<&str>) -> Served {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_bananas"));
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .env("BANANAS_URL", redis_url())
        .env("BANANAS_PREFIX", s.prefix())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    match token {
        Some(t) => cmd.env("BANANAS_API_TOKEN", t),
        None => cmd.env_remove("BANANAS_API_TOKEN"),
    };
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("serve did not print its address in time")
        .unwrap()
        .expect("serve exited");
    let base = line
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Served { child, base }
}

/// A raw HTTP/1.1 request with `Connection: close`; returns status and body.
async fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

#[tokio::test]
async fn serve_is_the_http_api_without_task_code() {
    let s = Space::new("serve");
    let served = serve(&s, Some("tok")).await;
    let (status, v) = http(&served.base, "GET", "/health", None, None).await;
    assert_eq!((status, v), (200, json!({"status": "ok"})));
    let (status, v) = http(&served.base, "GET", "/queues", None, None).await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = http(
        &served.base,
        "POST",
        "/jobs",
        Some("tok"),
        Some(r#"{"name": "send_email", "payload": {"to": "user@example.com", "subject": "Hello!"}, "priority": "high"}"#),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // The CLI sees the job the API enqueued: same Redis, same prefix.
    assert_eq!(s.json(&["jobs", "show", &id])["name"], "send_email");
    let (status, v) = http(
        &served.base,
        "GET",
        &format!("/jobs/{id}"),
        Some("tok"),
        None,
    )
    .await;
    assert_eq!((status, v["state"].as_str()), (200, Some("queued")));

    // `schedules --api` reads the API (nothing announced in this space).
    let out = Command::new(env!("CARGO_BIN_EXE_bananas"))
        .args([
            "--json",
            "schedules",
            "--api",
            &served.base,
            "--token",
            "tok",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"schedules": []}));
    let out = Command::new(env!("CARGO_BIN_EXE_bananas"))
        .args(["schedules", "--api", &served.base])
        .env_remove("BANANAS_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
}

#[tokio::test]
async fn serve_warns_loudly_on_a_public_address_without_a_token() {
    let s = Space::new("serve-public");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bananas"))
        .args(["serve", "--addr", "0.0.0.0:0"])
        .env("BANANAS_URL", redis_url())
        .env("BANANAS_PREFIX", s.prefix())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("BANANAS_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let warning = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("serving the HTTP API") {
                break;
            }
            seen.push(line);
        }
        seen.iter().find(|l| l.contains("NO TOKEN")).cloned()
    })
    .await
    .expect("serve did not start in time");
    let warning = warning.unwrap_or_else(|| panic!("no warning before serving: {seen:?}"));
    assert!(
        warning.contains("WARN") && warning.contains("0.0.0.0:") && warning.contains("--token"),
        "{warning}"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// `queues pause` and `queues resume`: the route's jobs stay queued while
/// it is paused (a fetch gets none), `stats` shows it, repeating says so,
/// and a bad route is a one-line error.
#[tokio::test]
async fn queues_pause_and_resume() {
    let s = Space::new("pause");
    s.ok(&["enqueue", "t", "--route", "held"]);
    let v = s.json(&["queues", "pause", "held"]);
    assert_eq!(v, json!({"route": "held", "paused": true, "changed": true}));
    assert!(s
        .ok(&["queues", "pause", "held"])
        .contains("already paused"));
    let broker = s.broker().await;
    let req = FetchRequest {
        routes: vec![Route::new("held").unwrap()],
        max: 10,
        lease: Duration::from_secs(60),
        cursor: 0,
        block: Duration::ZERO,
    };
    assert!(broker.fetch(&req).await.unwrap().is_empty());
    let v = s.json(&["stats"]);
    let q = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["route"] == "held")
        .unwrap();
    assert_eq!(
        (q["paused"].as_bool(), q["normal"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    assert!(q["latency_ms"].as_u64().is_some(), "{v}");
    let table = s.ok(&["stats"]);
    let row = table.lines().find(|l| l.starts_with("held")).unwrap();
    assert!(row.contains("paused"), "{table}");

    assert_eq!(
        s.ok(&["queues", "resume", "held"]),
        "route `held` running\n"
    );
    assert_eq!(broker.fetch(&req).await.unwrap().len(), 1);
    assert!(s
        .ok(&["queues", "resume", "held"])
        .contains("already running"));
    let err = s.fails(&["queues", "pause", "no such route"]);
    assert!(err.contains("invalid route"), "{err}");
}

/// `jobs list`: a page, the cursor to the next one, filters, and one-line
/// errors for an unknown state and a bad cursor.
#[test]
fn jobs_list_pages_and_filters() {
    let s = Space::new("list");
    let mut ids = Vec::new();
    for n in 0..3 {
        let v = s.json(&[
            "enqueue",
            "t",
            "--route",
            "r",
            "--payload",
            &format!(r#"{{"n":{n}}}"#),
        ]);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let page = s.json(&["jobs", "list", "--state", "queued", "--limit", "2"]);
    let got: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let next = page["next"].as_str().unwrap();
    let rest = s.json(&[
        "jobs", "list", "--state", "queued", "--limit", "2", "--cursor", next,
    ]);
    assert_eq!(rest["jobs"][0]["id"], ids[0].as_str());
    assert_eq!(rest["next"], Value::Null);
    let table = s.ok(&["jobs", "list", "--state", "queued", "--limit", "1"]);
    assert!(
        table.contains(&ids[2]) && table.contains("next page: --cursor "),
        "{table}"
    );
    let one = s.json(&["jobs", "list", "--state", "queued", "--text", r#""n":1"#]);
    assert_eq!(one["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(one["jobs"][0]["id"], ids[1].as_str());
    let e = s.fails(&["jobs", "list", "--state", "finished"]);
    assert!(e.contains("unknown job state `finished`"), "{e}");
    let e = s.fails(&["jobs", "list", "--state", "dead", "--cursor", "bogus"]);
    assert!(e.contains("invalid cursor"), "{e}");
}

/// `jobs run-now|retry|delete|cancel` on ids and filters: how many changed,
/// the maximum without `--all` (nothing done), and one-line errors.
#[tokio::test]
async fn bulk_commands_act_on_ids_and_filters() {
    let s = Space::new("bulk");
    let mut ids = Vec::new();
    for n in 0..3 {
        let v = s.json(&[
            "enqueue",
            "t",
            "--route",
            "r",
            "--countdown",
            "600",
            "--payload",
            &format!(r#"{{"n":{n}}}"#),
        ]);
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let e = s.fails(&["jobs", "run-now", "--state", "scheduled", "--max", "2"]);
    assert!(e.contains("more than the 2 allowed"), "{e}");
    let v = s.json(&[
        "jobs",
        "run-now",
        "--state",
        "scheduled",
        "--route",
        "r",
        "--max",
        "2",
        "--all",
    ]);
    assert_eq!(v, json!({"action": "run_now", "touched": 3}));
    let out = s.ok(&["jobs", "cancel", &ids[0], &ids[1]]);
    assert_eq!(out, "cancel: 2 job(s) changed\n");
    let v = s.json(&[
        "jobs",
        "retry",
        "--state",
        "cancelled",
        "--text",
        r#""n":1"#,
    ]);
    assert_eq!(v["touched"], 1);
    let v = s.json(&["jobs", "delete", &ids[0], &ids[2]]);
    assert_eq!(v["touched"], 2);
    let left = s.json(&["jobs", "list", "--state", "queued"]);
    let left: Vec<&str> = left["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [ids[1].as_str()]);
    let e = s.fails(&["jobs", "retry", "--state", "queued"]);
    assert!(e.contains("`retry` moves dead, cancelled jobs"), "{e}");
    let e = s.fails(&["jobs", "delete", "--state", "nope"]);
    assert!(e.contains("unknown job state `nope`"), "{e}");
}

/// `queues history`: the attempts settled on a route, per minute.
#[tokio::test]
async fn queues_history_counts_what_was_settled() {
    let s = Space::new("history");
    for _ in 0..2 {
        s.ok(&["enqueue", "t", "--route", "h"]);
    }
    assert_eq!(s.kill_all("h").await, 2);
    let v = s.json(&["queues", "history", "h"]);
    let minutes = v["minutes"].as_array().unwrap();
    let sum = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("processed"), sum("failed")), (2, 2), "{v}");
    let table = s.ok(&["queues", "history", "h"]);
    assert!(
        table.starts_with("MINUTE") && table.contains('2'),
        "{table}"
    );
    assert!(s
        .ok(&["queues", "history", "idle"])
        .contains("nothing processed"));
}

/// `enqueue --tag --meta`, shown by `jobs show` and found by `jobs list
/// --tag`.
#[test]
fn tags_from_the_cli_are_shown_and_searchable() {
    let s = Space::new("tags");
    let v = s.json(&[
        "enqueue",
        "t",
        "--tag",
        "tenant:42",
        "--tag",
        "vip",
        "--meta",
        r#"{"by":"cli"}"#,
    ]);
    let id = v["id"].as_str().unwrap().to_owned();
    s.ok(&["enqueue", "t"]);
    let shown = s.json(&["jobs", "show", &id]);
    assert_eq!(shown["tags"], json!(["tenant:42", "vip"]));
    assert_eq!(shown["meta"], json!({"by": "cli"}));
    assert!(s.ok(&["jobs", "show", &id]).contains("tenant:42, vip"));
    let page = s.json(&["jobs", "list", "--state", "queued", "--tag", "vip"]);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    let e = s.fails(&["enqueue", "t", "--meta", "nope"]);
    assert!(e.contains("--meta is not valid JSON"), "{e}");
}
