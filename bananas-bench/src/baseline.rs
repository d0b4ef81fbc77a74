//! The `redis-benchmark` baseline: unpipelined `LPUSH` on the same server.

use std::process::Command;

use anyhow::Context as _;

/// Host and port of a `redis://[user:pass@]host[:port][/db]` URL.
pub(crate) fn host_port(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .with_context(|| format!("`{url}` is not a redis:// URL"))?;
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h.to_owned(), p.parse().context("bad port")?)),
        _ if !authority.is_empty() => Ok((authority.to_owned(), 6379)),
        _ => anyhow::bail!("no host in `{url}`"),
    }
}

/// What one `redis-benchmark` run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lpush {
    /// Requests per second.
    pub(crate) rate: f64,
    /// Latency percentiles (µs), from its summary.
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// Runs `redis-benchmark -h H -p P -n N -c C LPUSH <key> x`: the same
/// command as `-t lpush` (unpipelined, C clients), but on a key the
/// benchmark owns and deletes, not the shared `mylist`. With one client
/// its latency is the floor under the single-enqueue latency: one round
/// trip with the smallest write Redis has.
pub(crate) fn lpush(url: &str, key: &str, n: usize, clients: usize) -> anyhow::Result<Lpush> {
    let (host, port) = host_port(url)?;
    let out = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-n", &n.to_string(), "-c", &clients.to_string()])
        .args(["LPUSH", key, "x"])
        .output()
        .context("running redis-benchmark (is it installed? it comes with redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).with_context(|| format!("no summary in redis-benchmark's output: {text:?}"))
}

/// Reads the `Summary:` section: `throughput summary: <rate> requests per
/// second`, then `latency summary (msec):`, a header line (`avg min p50
/// p95 p99 max`) and the values.
fn parse(text: &str) -> Option<Lpush> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("throughput summary"));
    let rate = lines
        .next()?
        .split_once("requests per second")?
        .0
        .split_whitespace()
        .next_back()?
        .parse()
        .ok()?;
    let mut lines = lines.skip_while(|l| !l.contains("latency summary"));
    lines.next()?;
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<f64> = lines
        .next()?
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let at = |name: &str| {
        let i = header.iter().position(|h| *h == name)?;
        values.get(i).map(|ms| ms * 1000.0)
    };
    Some(Lpush {
        rate,
        p50_us: at("p50")?,
        p99_us: at("p99")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmark_output() {
        let out = "====== LPUSH k x ======\n  100000 requests completed in 1.00 seconds\n\nSummary:\n  throughput summary: 11834.32 requests per second\n  latency summary (msec):\n          avg       min       p50       p95       p99       max\n        0.072     0.024     0.071     0.103     0.143     0.463\n";
        let got = parse(out).unwrap();
        assert_eq!(got.rate, 11834.32);
        assert!((got.p50_us - 71.0).abs() < 1e-9, "{got:?}");
        assert!((got.p99_us - 143.0).abs() < 1e-9, "{got:?}");
        assert_eq!(parse("nothing"), None);
        assert_eq!(
            parse("Summary:\n  throughput summary: x requests per second\n"),
            None
        );
    }

    #[test]
    fn finds_host_and_port() {
        assert_eq!(
            host_port("redis://127.0.0.1:6379").unwrap(),
            ("127.0.0.1".to_owned(), 6379)
        );
        assert_eq!(
            host_port("redis://u:p@h:7000/2").unwrap(),
            ("h".to_owned(), 7000)
        );
        assert_eq!(host_port("redis://h").unwrap(), ("h".to_owned(), 6379));
    }
}
