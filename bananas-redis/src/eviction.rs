//! The server's `maxmemory-policy`, checked when a broker connects. Under
//! any policy but `noeviction`, a Redis at `maxmemory` deletes keys to make
//! room, and Bananas' keys are not a cache: a lost result, dead-letter
//! record, waiter list, lease set or queue leaves jobs stuck or gone. With
//! `noeviction` a full Redis refuses writes instead (the broker reports
//! them, and settling jobs still works: see `script::Memory`).

use std::collections::HashMap;

use bananas_core::{Error, Result};
use redis::{
    cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo},
    Cmd, RedisResult, Value,
};

use crate::conn::Conn;

/// The one safe policy.
const SAFE: &str = "noeviction";

/// What a non-`noeviction` policy can delete.
fn at_risk(policy: &str) -> &'static str {
    if policy.starts_with("volatile-") {
        "every key with a TTL: results, dead-letter records, the lists a `wait` \
         blocks on, worker records and the id index"
    } else {
        "any key: queues, job specs, lease sets, results, dead-letter records and \
         the lists a `wait` blocks on"
    }
}

/// Reads the policy of every server (every master of a cluster) and, when
/// one can evict, logs a loud warning, or fails with [`Error::Config`] if
/// `require` ([`RedisConfig::require_noeviction`](crate::RedisConfig::require_noeviction)).
/// A policy that cannot be read (`CONFIG` and `INFO` both refused) is
/// logged, and the broker starts.
pub(crate) async fn check(conn: &Conn, url: &str, require: bool) -> Result<()> {
    let policies = match read_policies(conn).await {
        Ok(p) => p,
        Err(reason) => {
            if require {
                tracing::warn!(
                    url = %url,
                    %reason,
                    "cannot read Redis's maxmemory-policy (CONFIG GET and INFO memory both \
                     failed), so `require_noeviction` could not be checked; starting anyway"
                );
            } else {
                tracing::debug!(url = %url, %reason, "cannot read Redis's maxmemory-policy");
            }
            return Ok(());
        }
    };
    let Some((node, policy)) = policies.iter().find(|(_, p)| p != SAFE) else {
        return Ok(());
    };
    let on = if node.is_empty() {
        url.to_owned()
    } else {
        format!("{url} (node {node})")
    };
    let fix = "set `maxmemory-policy noeviction` (redis.conf, or CONFIG SET maxmemory-policy \
               noeviction), so that a full Redis refuses new jobs instead";
    if require {
        return Err(Error::Config(format!(
            "Redis at {on} has `maxmemory-policy {policy}`: at `maxmemory` it evicts {}, \
             and jobs get stuck or lost. {fix}; or drop `require_noeviction` to start with \
             a warning",
            at_risk(policy)
        )));
    }
    tracing::warn!(
        url = %on,
        policy = %policy,
        "REDIS MAY EVICT BANANAS' KEYS: `maxmemory-policy {policy}` makes a Redis at \
         `maxmemory` delete {}, and jobs get stuck or lost. {fix}. \
         `require_noeviction=true` refuses to start on such a server",
        at_risk(policy)
    );
    Ok(())
}

/// `(node, policy)` of the server, or of every master of a cluster (the
/// node is empty for a single server). `CONFIG GET` first; where it is not
/// allowed (managed Redis, an ACL without `@admin`), `INFO memory`.
async fn read_policies(conn: &Conn) -> std::result::Result<Vec<(String, String)>, String> {
    let mut config = redis::cmd("CONFIG");
    config.arg("GET").arg("maxmemory-policy");
    let config_err = match each_server(conn, config).await {
        Ok(replies) => match collect(replies, from_config) {
            Some(p) => return Ok(p),
            None => "CONFIG GET maxmemory-policy: no policy in the reply".to_owned(),
        },
        Err(e) => format!("CONFIG GET maxmemory-policy: {e}"),
    };
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    match each_server(conn, info).await {
        Ok(replies) => collect(replies, from_info)
            .ok_or_else(|| format!("{config_err}; INFO memory: no maxmemory_policy")),
        Err(e) => Err(format!("{config_err}; INFO memory: {e}")),
    }
}

/// Every reply's policy, or `None` if one has none.
fn collect(
    replies: Vec<(String, Value)>,
    parse: fn(Value) -> Option<String>,
) -> Option<Vec<(String, String)>> {
    replies
        .into_iter()
        .map(|(node, v)| parse(v).map(|p| (node, p)))
        .collect()
}

/// Runs `cmd` on the server, or on every master of a cluster: `(node,
/// reply)` pairs.
async fn each_server(conn: &Conn, cmd: Cmd) -> RedisResult<Vec<(String, Value)>> {
    match conn.clone() {
        Conn::Single(mut c) => Ok(vec![(String::new(), cmd.query_async(&mut c).await?)]),
        Conn::Cluster(mut c) => {
            let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
            match c.route_command(cmd, all).await? {
                Value::Map(pairs) => Ok(pairs
                    .into_iter()
                    .map(|(node, v)| (text(node).unwrap_or_default(), v))
                    .collect()),
                v => Ok(vec![(String::new(), v)]),
            }
        }
    }
}

fn text(v: Value) -> Option<String> {
    redis::from_redis_value(v).ok()
}

/// The policy in a `CONFIG GET maxmemory-policy` reply: `[name, value]`
/// (RESP2) or `{name: value}` (RESP3).
fn from_config(v: Value) -> Option<String> {
    let pairs: HashMap<String, String> = redis::from_redis_value(v).ok()?;
    pairs.get("maxmemory-policy").cloned()
}

/// The policy in an `INFO memory` reply: its `maxmemory_policy:` line.
fn from_info(v: Value) -> Option<String> {
    let text = text(v)?;
    text.lines()
        .find_map(|l| l.strip_prefix("maxmemory_policy:"))
        .map(|p| p.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn policies_are_read_from_config_get_and_info() {
        let resp2 = Value::Array(vec![bulk("maxmemory-policy"), bulk("allkeys-lru")]);
        assert_eq!(from_config(resp2).as_deref(), Some("allkeys-lru"));
        let resp3 = Value::Map(vec![(bulk("maxmemory-policy"), bulk("noeviction"))]);
        assert_eq!(from_config(resp3).as_deref(), Some("noeviction"));
        assert_eq!(from_config(Value::Array(vec![])), None);
        let info = bulk("# Memory\r\nused_memory:1\r\nmaxmemory_policy:volatile-ttl\r\nx:1\r\n");
        assert_eq!(from_info(info).as_deref(), Some("volatile-ttl"));
        assert_eq!(from_info(bulk("# Memory\r\n")), None);
    }

    #[test]
    fn what_is_at_risk_depends_on_the_policy_family() {
        assert!(at_risk("volatile-lru").contains("TTL"));
        assert!(at_risk("allkeys-lfu").contains("queues"));
    }
}
