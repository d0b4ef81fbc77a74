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

/// Runs `redis-benchmark -h H -p P -n N -c C -q LPUSH <key> x`: the same
/// command as `-t lpush` (unpipelined, C clients), but on a key the
/// benchmark owns and deletes, not the shared `mylist`. Returns requests/s.
pub(crate) fn lpush_rate(url: &str, key: &str, n: usize, clients: usize) -> anyhow::Result<f64> {
    let (host, port) = host_port(url)?;
    let out = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-n", &n.to_string(), "-c", &clients.to_string(), "-q"])
        .args(["LPUSH", key, "x"])
        .output()
        .context("running redis-benchmark (is it installed? it comes with redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_rate(&text).with_context(|| format!("no rate in redis-benchmark's output: {text:?}"))
}

/// The last `… <rate> requests per second` figure in the output.
fn parse_rate(text: &str) -> Option<f64> {
    text.rsplit(['\r', '\n'])
        .filter_map(|l| l.split_once("requests per second"))
        .find_map(|(before, _)| before.split_whitespace().next_back()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_benchmark_output() {
        let out = "LPUSH k x: rps=0.0 (overall: nan) avg_msec=nan\r\"LPUSH k x\": 95238.09 requests per second, p50=0.271 msec\n";
        assert_eq!(parse_rate(out), Some(95238.09));
        assert_eq!(parse_rate("nothing"), None);
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
