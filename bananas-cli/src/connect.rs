//! Connecting to the broker: bounded in time, and when it fails, one plain
//! look at the server to say why and where: the address refused the
//! connection, or took it and never answered, or wants a password, or
//! refused the one given.
//!
//! The broker's own connect retries for several seconds (a worker wants
//! that), and a connection the server closes reads as "broken pipe". For a
//! command line, both are the wrong answer: it stops after the timeout
//! (`--connect-timeout`, 2 s by default) and asks the server directly.

use std::{error::Error as StdError, time::Duration};

use bananas::{error::BrokerError, Client};

/// The shortest time the probe after a failure gets.
const MIN_PROBE: Duration = Duration::from_millis(500);

/// Connects to `url` (with a Redis URL and `prefix`, under that key
/// prefix) and pings it, within `limit`. The error names the URL (without
/// its password) and, when the server can be asked, what went wrong there.
pub(crate) async fn connect(
    url: &str,
    prefix: Option<&str>,
    limit: Duration,
) -> Result<Client, String> {
    let redacted = bananas::connect::redact(url);
    if prefix.is_some() && !url.starts_with("redis") {
        return Err(format!(
            "--prefix (BANANAS_PREFIX) only applies to Redis URLs, not `{redacted}`"
        ));
    }
    let fail = |why: String| format!("cannot connect to the broker at `{redacted}`: {why}");
    let error = match tokio::time::timeout(limit, connect_and_ping(url, prefix)).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => {
            if let Some(why) = auth_problem(&e) {
                return Err(fail(why));
            }
            if !is_connection_error(&e) {
                return Err(fail(e.to_string()));
            }
            Some(e)
        }
        Err(_) => None,
    };
    let why = match probe(url, limit).await {
        Some(why) => why,
        None => match error {
            Some(e) => e.to_string(),
            None => format!("no answer within {}", secs(limit)),
        },
    };
    Err(fail(why))
}

async fn connect_and_ping(url: &str, prefix: Option<&str>) -> bananas::Result<Client> {
    #[cfg(feature = "redis")]
    if let Some(prefix) = prefix {
        let broker = bananas_redis::RedisBroker::builder(url)
            .prefix(prefix)
            .connect()
            .await?;
        let client = Client::new(bananas::broker::AnyBroker::full(std::sync::Arc::new(
            broker,
        )));
        client.broker().ping().await?;
        return Ok(client);
    }
    let _ = prefix;
    let client = Client::connect(url).await?;
    client.broker().ping().await?;
    Ok(client)
}

/// `d` as seconds for messages: `2 s`, `0.5 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Whether `e` says the broker could not be reached or answered with an
/// error, so asking the server may tell more (rather than a bad URL or
/// option, which the message already names).
fn is_connection_error(e: &bananas::Error) -> bool {
    matches!(
        e,
        bananas::Error::Broker(BrokerError::Unavailable { .. } | BrokerError::Backend { .. })
    )
}

/// What to say when `e` (or an error it was caused by) is Redis refusing
/// to serve without a password, or refusing the password given.
fn auth_problem(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(why) = redis_auth_problem(e) {
            return Some(why);
        }
        next = e.source();
    }
    None
}

#[cfg(feature = "redis")]
fn redis_auth_problem(e: &(dyn StdError + 'static)) -> Option<String> {
    let e = e.downcast_ref::<redis::RedisError>()?;
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return Some(
            "authentication failed: the user name or password in the URL is wrong \
             (redis://:PASSWORD@host:port, or redis://USER:PASSWORD@host:port with ACL users)"
                .to_owned(),
        );
    }
    // redis-rs has no `ErrorKind` for NOAUTH; `code()` is the error code of
    // the server's reply (its first word, a fixed token of the protocol).
    if e.code() == Some("NOAUTH") {
        return Some(
            "the Redis server requires authentication and the URL gives no password: \
             use redis://:PASSWORD@host:port (or redis://USER:PASSWORD@host:port with ACL users)"
                .to_owned(),
        );
    }
    None
}

#[cfg(not(feature = "redis"))]
fn redis_auth_problem(_: &(dyn StdError + 'static)) -> Option<String> {
    None
}

/// After a connect that failed or took longer than `limit`, asks the
/// server at `url` (a Redis Cluster URL: its first node) directly, with one
/// plain connection and a `PING`, each step within a quarter of `limit`
/// (at least 0.5 s), and says what went wrong, naming the address. `None`
/// if it cannot tell (not a Redis URL, or the server answers now).
#[cfg(feature = "redis")]
async fn probe(url: &str, limit: Duration) -> Option<String> {
    use redis::IntoConnectionInfo;

    let step = (limit / 4).max(MIN_PROBE);
    let url = first_node(&bananas::connect::UrlOptions::parse(url).ok()?.url)?;
    let info = url.as_str().into_connection_info().ok()?;
    let (host, port, tls) = match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
        redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
        _ => return None,
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(step, tokio::net::TcpStream::connect((host.as_str(), port))).await {
        Err(_) => {
            return Some(format!(
                "{addr} did not accept a connection within {} (is the address right, and the port reachable?)",
                secs(limit)
            ))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Some(format!(
                "{addr} refused the connection (is Redis running there, on that port?)"
            ))
        }
        Ok(Err(e)) => return Some(format!("cannot reach {addr}: {e}")),
        Ok(Ok(_)) => {}
    }
    let no_answer = || {
        format!(
            "{addr} accepted the connection but did not answer within {} \
             (is it a Redis server, and is it responsive?)",
            secs(limit)
        )
    };
    if tls {
        // A TLS probe would need the broker's trust settings (`tls_ca`);
        // what is known is that the port takes connections.
        return Some(no_answer());
    }
    let client = redis::Client::open(url).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(step))
        .set_response_timeout(Some(step));
    let ping = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING")
            .query_async::<redis::Value>(&mut conn)
            .await
    };
    match tokio::time::timeout(step, ping).await {
        Err(_) => Some(no_answer()),
        Ok(Err(e)) if e.is_timeout() => Some(no_answer()),
        Ok(Err(e)) => Some(auth_problem(&e).unwrap_or_else(|| format!("{addr}: {e}"))),
        Ok(Ok(_)) => None,
    }
}

#[cfg(not(feature = "redis"))]
async fn probe(_: &str, _: Duration) -> Option<String> {
    None
}

/// A single-server URL for the first node of `url`: `url` itself, or for
/// `redis+cluster://[auth@]h1:p1,h2:p2` `redis://[auth@]h1:p1`. `None`
/// for other schemes.
fn first_node(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let plain = match scheme {
        "redis" | "rediss" => return Some(url.to_owned()),
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let first = hosts.split(',').next()?.trim().trim_end_matches('/');
    Some(format!("{plain}://{auth}{first}"))
}

/// Parses `--connect-timeout`: seconds, more than 0 and at most an hour.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x > 0.0 && *x <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}`: expected seconds, more than 0 and at most 3600"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_are_probed_at_their_first_node() {
        assert_eq!(first_node("redis://h:1/2").unwrap(), "redis://h:1/2");
        assert_eq!(
            first_node("redis+cluster://u:p@a:1,b:2/").unwrap(),
            "redis://u:p@a:1"
        );
        assert_eq!(first_node("rediss+cluster://a:1").unwrap(), "rediss://a:1");
        assert_eq!(first_node("memory://"), None);
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "1e30", "NaN", "inf", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
