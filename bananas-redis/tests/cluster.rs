//! Redis mechanics against a private 3-master Redis Cluster
//! (`redis+cluster://…`), started on loopback ports by each test: the
//! scenarios of `common::scenarios`, a restart of every node, and a slot
//! migration under a route.

mod common;

use std::time::{Duration, Instant};

use bananas_core::{broker::Inspect, Broker, JobState, Outcome, Priority};
use bananas_test_support::{unique_prefix, RedisCluster};
use common::{scenarios, *};
use serde_json::value::RawValue;

/// The Redis mechanics of `common::scenarios` (lease tokens, corrupt
/// records, no leftovers, schedule ticks) on a cluster; the broker contract runs on a
/// cluster in `tests/tests/contract/`.
#[tokio::test]
async fn redis_mechanics_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let connect = |name: &str| {
        let url = url.clone();
        let prefix = unique_prefix(name);
        async move {
            let b = bananas_redis::RedisBroker::builder(&url)
                .prefix(&prefix)
                .connect()
                .await
                .expect("connect to the cluster");
            (b, prefix)
        }
    };
    let (b, p) = connect("tokens").await;
    scenarios::lease_tokens(&b, &url, &p).await;
    let (b, p) = connect("corrupt").await;
    scenarios::corrupt(&b, &url, &p).await;
    let (b, p) = connect("leftovers").await;
    scenarios::no_leftovers(&b, &url, &p).await;
    let (b, p) = connect("ticks").await;
    scenarios::ticks(&b, &url, &p).await;
}

/// One job through the broker: enqueue, fetch, ack, read the record.
async fn one_job(b: &bananas_redis::RedisBroker) -> bananas_core::Result<()> {
    let j = job("after_restart", "{}");
    b.enqueue(vec![j.clone()]).await?;
    // Also whatever an earlier, failed try left queued.
    let jobs = b.fetch(&req(&["default"], 10)).await?;
    let acks: Vec<_> = jobs
        .iter()
        .map(|f| {
            ack(
                f,
                Outcome::Succeeded(Some(RawValue::from_string("1".into()).unwrap())),
            )
        })
        .collect();
    b.ack(&acks).await?;
    assert!(
        jobs.iter().any(|f| f.id == j.id),
        "the job just enqueued is fetched"
    );
    let rec = b.job(&j.id, None).await?.expect("the result is kept");
    assert_eq!(rec.state, JobState::Succeeded);
    Ok(())
}

/// Every node of the cluster is killed and started again (without its data
/// or the function library). The same broker, without reconnecting by
/// hand, runs jobs again once the cluster is back: its connections and the
/// library are restored by themselves.
#[tokio::test]
async fn a_restarted_cluster_is_reconnected() {
    let mut cluster = RedisCluster::start();
    let prefix = unique_prefix("restart");
    let b = bananas_redis::RedisBroker::builder(&cluster.url())
        .prefix(&prefix)
        .response_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the cluster");
    one_job(&b).await.expect("a job before the restart");

    cluster.restart_all();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = one_job(&b).await {
        assert!(
            Instant::now() < deadline,
            "no job ran within 30 s of the restart; last error: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it keeps working, also for a fetch blocked on an idle route (the
    // pipelined BLPOP and fetch, on the blocking connections): the job is
    // enqueued after a pause that most likely finds the fetch blocked, and
    // must be fetched either way.
    one_job(&b).await.expect("a second job after the restart");
    let j = job("while_blocked", "{}");
    let blocking = bananas_core::broker::FetchRequest {
        block: Duration::from_secs(10),
        ..req(&["default"], 10)
    };
    let (got, _) = tokio::join!(b.fetch(&blocking), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.enqueue(vec![j.clone()]).await.unwrap();
    });
    let got = got.unwrap();
    assert!(got.iter().any(|f| f.id == j.id), "{got:?}");
}

/// A node's port, cluster id and the slot ranges it owns.
type NodeEntry = (u16, String, Vec<(u16, u16)>);

/// Every node of the cluster, read from `CLUSTER NODES` (migration markers
/// `[…]` skipped).
fn node_table(cluster: &RedisCluster) -> Vec<NodeEntry> {
    let nodes = cluster.nodes()[0].cli(&["cluster", "nodes"]);
    nodes
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port: u16 = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("a CLUSTER NODES line: {line}"));
            let ranges = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .map(|s| match s.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (s.parse().unwrap(), s.parse().unwrap()),
                })
                .collect();
            (port, f[0].to_owned(), ranges)
        })
        .collect()
}

/// A slot migration (MIGRATING on its owner, IMPORTING on another master)
/// of the slot that holds a route. Every route script declares several
/// keys of the route, most of them usually absent, so while the slot is
/// open the server answers them `TRYAGAIN` before running them (the source
/// holds some of the keys but not all; the target, after `ASK`, holds none
/// or not all): checked here on the server itself. redis-rs retries
/// `TRYAGAIN` by itself (after 1.28 s, then again), but only within the
/// broker's response timeout, which bounds a whole cluster request: an
/// enqueue, a fetch and an ack on that route fail as `Unavailable` ("timed
/// out") after it, having changed nothing, and succeed when repeated once
/// the migration is completed (the keys moved with `MIGRATE`, the slot given
/// to the target). The route stalls for the migration; nothing is lost or
/// fetched twice, and a route in another slot is served meanwhile.
#[tokio::test]
async fn a_slot_migration_stalls_its_route_and_loses_nothing() {
    let cluster = RedisCluster::start();
    let prefix = unique_prefix("tryagain");
    let timeout = Duration::from_secs(2);
    let b = bananas_redis::RedisBroker::builder(&cluster.url())
        .prefix(&prefix)
        .response_timeout(timeout)
        .connect()
        .await
        .expect("connect to the cluster");
    let route = "migrating";
    let first = job_on(route, Priority::Normal, 1);
    let second = job_on(route, Priority::Normal, 2);
    // A job running when the migration starts, and one queued.
    let running = job_on(route, Priority::Normal, 0);
    b.enqueue(vec![running.clone()]).await.unwrap();
    let leased = fetch_n(&b, &[route], 1).await.remove(0);
    assert_eq!(leased.id, running.id);
    b.enqueue(vec![first.clone()]).await.unwrap();

    // The route's slot, its owner (source) and another master (target).
    let keyslot = |key: &str| -> u16 {
        cluster.nodes()[0]
            .cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT")
    };
    let jobs_key = format!("{{{prefix}:{route}}}:jobs");
    let slot = keyslot(&jobs_key);
    let table = node_table(&cluster);
    let src = table
        .iter()
        .find(|(_, _, r)| r.iter().any(|&(a, z)| a <= slot && slot <= z))
        .expect("the slot's owner")
        .clone();
    let dst = table.iter().find(|n| n.0 != src.0).unwrap().clone();
    let node = |port: u16| {
        cluster
            .nodes()
            .iter()
            .find(|n| n.port() == port)
            .expect("a node of the cluster")
    };
    let (src_node, dst_node) = (node(src.0), node(dst.0));
    let slot_s = slot.to_string();
    let importing = dst_node.cli(&["cluster", "setslot", &slot_s, "importing", &src.1]);
    assert_eq!(importing.trim(), "OK");
    let migrating = src_node.cli(&["cluster", "setslot", &slot_s, "migrating", &dst.1]);
    assert_eq!(migrating.trim(), "OK");

    // The server's answer, without redis-rs's retries: a script declaring
    // a present key and an absent one gets TRYAGAIN; one declaring only the
    // present key runs.
    let sched_key = format!("{{{prefix}:{route}}}:sched");
    let two = src_node.cli(&["eval", "return 1", "2", &jobs_key, &sched_key]);
    assert!(two.contains("TRYAGAIN"), "{two}");
    let one = src_node.cli(&["eval", "return 1", "1", &jobs_key]);
    assert_eq!(one.trim(), "1");

    // An enqueue, a fetch and an ack on the route during the migration,
    // side by side: all come back Unavailable (bounded here only against a
    // hang).
    let started = Instant::now();
    let timed = |r| (r, started.elapsed());
    let (enqueued, fetched, acked) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(
            async { timed(b.enqueue(vec![second.clone()]).await.map(|_| ())) },
            async { timed(b.fetch(&req(&[route], 10)).await.map(|_| ())) },
            async { timed(b.ack(&[ok(&leased, "1")]).await.map(|_| ())) },
        )
    })
    .await
    .expect("route calls during a migration come back");
    eprintln!("during the migration: enqueue {enqueued:?}; fetch {fetched:?}; ack {acked:?}");
    for (what, (r, _)) in [("enqueue", enqueued), ("fetch", fetched), ("ack", acked)] {
        let e = r.expect_err(what);
        assert!(e.is_unavailable(), "{what}: {e:?}");
    }
    // The failed calls changed nothing: the source still holds the two
    // jobs, one of them leased.
    assert_eq!(src_node.cli(&["hlen", &jobs_key]).trim(), "2");
    let lease_key = format!("{{{prefix}:{route}}}:lease");
    assert_eq!(src_node.cli(&["zcard", &lease_key]).trim(), "1");

    // A route in another slot is served meanwhile.
    if keyslot(&format!("{{{prefix}:elsewhere}}:jobs")) != slot {
        let other = job_on("elsewhere", Priority::Normal, 3);
        tokio::time::timeout(Duration::from_secs(10), async {
            b.enqueue(vec![other.clone()]).await.unwrap();
            let got = fetch_n(&b, &["elsewhere"], 1).await;
            assert_eq!(got[0].id, other.id);
        })
        .await
        .expect("a route in another slot is served during the migration");
    }

    // A producer that retries its enqueue until it goes through, as callers
    // of an Unavailable broker do; every failure meanwhile is Unavailable.
    let producer = tokio::spawn({
        let (b, j) = (b.clone(), second.clone());
        async move {
            let mut failures = 0;
            loop {
                match b.enqueue(vec![j.clone()]).await {
                    Ok(n) => return (n, failures),
                    Err(e) => {
                        assert!(e.is_unavailable(), "{e:?}");
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Complete the migration: move the route's keys, then give the slot to
    // the target on every master (the target first, as redis-cli does).
    let keys = src_node.cli(&["cluster", "getkeysinslot", &slot_s, "1000"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(keys.contains(&jobs_key.as_str()), "{keys:?}");
    let port = dst.0.to_string();
    let mut migrate = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
    migrate.extend(&keys);
    assert_eq!(src_node.cli(&migrate).trim(), "OK");
    let left = src_node.cli(&["cluster", "countkeysinslot", &slot_s]);
    assert_eq!(left.trim(), "0");
    // Every key moved, the slot not yet assigned: the source redirects
    // (ASK), and the target, asked, still answers TRYAGAIN.
    let two = src_node.cli(&["eval", "return 1", "2", &jobs_key, &sched_key]);
    assert!(two.starts_with("ASK"), "{two}");
    let mut asked = redis::Client::open(dst_node.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("ASKING").query(&mut asked).unwrap();
    let two = redis::cmd("EVAL")
        .arg("return 1")
        .arg(2)
        .arg(&jobs_key)
        .arg(&sched_key)
        .query::<i64>(&mut asked)
        .expect_err("TRYAGAIN on the target");
    let try_again = redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain);
    assert_eq!(two.kind(), try_again, "{two}");
    let others = table
        .iter()
        .map(|n| n.0)
        .filter(|p| ![src.0, dst.0].contains(p));
    for port in [dst.0, src.0].into_iter().chain(others) {
        let set = node(port).cli(&["cluster", "setslot", &slot_s, "node", &dst.1]);
        assert_eq!(set.trim(), "OK");
    }
    let (added, failures) = tokio::time::timeout(Duration::from_secs(20), producer)
        .await
        .expect("the enqueue goes through once the migration is over")
        .unwrap();
    eprintln!("the producer's enqueue went through after {failures} Unavailable");
    assert_eq!(added, 1, "the second job is new: no failed call wrote it");

    // The running job's ack, repeated, is taken (its lease held).
    b.ack(&[ok(&leased, "1")]).await.unwrap();

    // Nothing was lost: both jobs come out, each once, and run to the end.
    let got = fetch_n(&b, &[route], 2).await;
    let mut ids: Vec<_> = got.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    let mut want = vec![first.id.clone(), second.id.clone()];
    want.sort();
    assert_eq!(ids, want, "each job fetched exactly once");
    b.ack(&got.iter().map(|j| ok(j, "1")).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(b.fetch(&req(&[route], 10)).await.unwrap().is_empty());
    for j in [&running, &first, &second] {
        let rec = b.job(&j.id, None).await.unwrap().expect("the record");
        assert_eq!(rec.state, JobState::Succeeded);
    }
    // The route now lives on the target.
    let on_dst: u64 = dst_node
        .cli(&["cluster", "countkeysinslot", &slot_s])
        .trim()
        .parse()
        .unwrap();
    assert!(on_dst > 0, "the route's keys are on the target");
}
