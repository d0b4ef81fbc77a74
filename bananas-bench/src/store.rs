//! Talking to Redis directly: connecting brokers under the benchmark's own
//! prefix, reading `INFO memory`, and deleting the benchmark's keys.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use bananas::broker::AnyBroker;
use bananas_redis::RedisBroker;
use redis::aio::MultiplexedConnection;

/// A broker on `url` whose keys all sit under `prefix`. Results expire after
/// an hour, in case the benchmark dies before it cleans up.
pub(crate) async fn broker(url: &str, prefix: &str) -> anyhow::Result<AnyBroker> {
    let broker = RedisBroker::builder(url)
        .prefix(prefix)
        .result_ttl(Duration::from_secs(3600))
        .failure_ttl(Duration::from_secs(3600))
        .connect()
        .await
        .with_context(|| format!("connecting the broker to {url}"))?;
    Ok(AnyBroker::full(Arc::new(broker)))
}

/// A plain connection for `INFO`, `MEMORY USAGE`, `SCAN` and `DEL`.
pub(crate) async fn raw(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).with_context(|| format!("bad Redis URL {url}"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// A field of `INFO <section>`.
async fn info_field(
    conn: &mut MultiplexedConnection,
    section: &str,
    field: &str,
) -> anyhow::Result<String> {
    let info: String = redis::cmd("INFO").arg(section).query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("INFO {section} has no `{field}`"))
}

/// `INFO memory` `used_memory`, in bytes.
pub(crate) async fn used_memory(conn: &mut MultiplexedConnection) -> anyhow::Result<i64> {
    Ok(info_field(conn, "memory", "used_memory").await?.parse()?)
}

/// The server's CPU time so far (`INFO cpu`: `used_cpu_user` +
/// `used_cpu_sys`), in microseconds.
pub(crate) async fn server_cpu_us(conn: &mut MultiplexedConnection) -> anyhow::Result<f64> {
    let user: f64 = info_field(conn, "cpu", "used_cpu_user").await?.parse()?;
    let sys: f64 = info_field(conn, "cpu", "used_cpu_sys").await?.parse()?;
    Ok((user + sys) * 1e6)
}

/// Each command's calls and server time so far, from `INFO commandstats`:
/// `name -> (calls, usec)`, names as Redis gives them (`lrange`,
/// `client|setname`).
pub(crate) async fn command_stats(
    conn: &mut MultiplexedConnection,
) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(parse_command_stats(&info))
}

/// Reads the `cmdstat_<name>:calls=…,usec=…,…` lines of `INFO
/// commandstats`; other lines are skipped.
pub(crate) fn parse_command_stats(info: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some((name, fields)) = line
            .trim()
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let (mut calls, mut usec) = (None, None);
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", v)) => calls = v.parse().ok(),
                Some(("usec", v)) => usec = v.parse().ok(),
                _ => {}
            }
        }
        if let (Some(c), Some(u)) = (calls, usec) {
            out.insert(name.to_owned(), (c, u));
        }
    }
    out
}

/// This process's CPU time so far (user + system, every thread), in
/// microseconds; `None` where `/proc/self/stat` is missing (not Linux).
pub(crate) fn own_cpu_us() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) end with `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux ABI.
    Some((utime + stime) * 10_000.0)
}

/// The server's version.
pub(crate) async fn server_version(conn: &mut MultiplexedConnection) -> anyhow::Result<String> {
    info_field(conn, "server", "redis_version").await
}

/// `MEMORY USAGE key SAMPLES 0` (every element counted), 0 if absent.
pub(crate) async fn memory_usage(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> anyhow::Result<i64> {
    let n: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await?;
    Ok(n.unwrap_or(0))
}

/// The key of `route` (`default`) under `prefix` with `suffix`, as the
/// broker names it (`{P:R}:suffix`; see docs/REDIS.md).
pub(crate) fn route_key(prefix: &str, suffix: &str) -> String {
    format!("{{{prefix}:default}}:{suffix}")
}

/// Deletes every key under `prefix` (`{P}…` and `{P:…`). Returns how many
/// keys went.
pub(crate) async fn cleanup(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for pattern in [format!("{{{prefix}}}*"), format!("{{{prefix}:*")] {
        deleted += delete_matching(conn, &pattern).await?;
    }
    Ok(deleted)
}

/// Deletes the keys matching `pattern` with `SCAN MATCH` and `DEL`: never
/// `FLUSHDB`. `DEL`, not `UNLINK`, so the memory is back before the next
/// measurement starts.
pub(crate) async fn delete_matching(
    conn: &mut MultiplexedConnection,
    pattern: &str,
) -> anyhow::Result<usize> {
    remove_matching(conn, pattern, "DEL").await
}

/// Like [`delete_matching`], with `UNLINK`: Redis frees big keys (a hash of
/// a million jobs) in the background instead of within the command, which
/// would outlast the connection's response timeout.
pub(crate) async fn unlink_matching(
    conn: &mut MultiplexedConnection,
    pattern: &str,
) -> anyhow::Result<usize> {
    remove_matching(conn, pattern, "UNLINK").await
}

async fn remove_matching(
    conn: &mut MultiplexedConnection,
    pattern: &str,
    command: &str,
) -> anyhow::Result<usize> {
    let mut deleted = 0;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .with_context(|| format!("SCAN MATCH {pattern}"))?;
        if !keys.is_empty() {
            let n: usize = redis::cmd(command).arg(&keys).query_async(conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Jobs the broker still holds for the benchmark: queued, scheduled or
/// leased (`stats`, one script call per route), and those dead.
pub(crate) async fn pending(broker: &AnyBroker) -> anyhow::Result<(u64, u64)> {
    let stats = broker.inspect()?.stats().await?;
    let live = stats
        .iter()
        .map(|s| s.high + s.normal + s.low + s.scheduled + s.active)
        .sum();
    let dead = stats.iter().map(|s| s.dead).sum();
    Ok((live, dead))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_command_stats() {
        let info = "# Commandstats\r\ncmdstat_lrange:calls=3,usec=41,usec_per_call=13.67,rejected_calls=0,failed_calls=0\r\ncmdstat_client|setname:calls=1,usec=2,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\ncmdstat_bad:calls=x\r\n";
        let got = parse_command_stats(info);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got["lrange"], (3, 41));
        assert_eq!(got["client|setname"], (1, 2));
    }
}
