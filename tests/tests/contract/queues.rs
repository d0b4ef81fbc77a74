//! Queue control: pausing and resuming a route, queue latency, and
//! listing jobs by state.

use std::time::Duration;

use bananas::{
    broker::{AnyBroker, JobFilter, ListState},
    error::BrokerError as Error,
    job::{now_millis, JobId, Outcome, Priority},
};
use bananas_tests::{broker_suite, Kind, TestBroker};

use crate::support::*;

/// A paused route keeps accepting jobs and leases none, on every fetch;
/// the state shows in the queue stats; resuming lets the jobs run, and
/// wakes a fetch that was waiting. Pausing twice, or resuming a running
/// route, changes nothing and says so. Other routes are not affected.
async fn a_paused_route_accepts_jobs_and_leases_none(kind: Kind) {
    let tb = TestBroker::new(kind, "pause").await;
    let b = &tb.broker;
    let pause = b.pause().unwrap();
    let inspect = b.inspect().unwrap();
    let (held, other) = (route("held"), route("free"));
    b.enqueue(vec![job_on("held", Priority::High, 1)])
        .await
        .unwrap();
    assert!(pause.pause(&held).await.unwrap(), "it was running");
    assert!(!pause.pause(&held).await.unwrap(), "already paused");
    // Still accepts jobs, at every priority, and a scheduled one that
    // falls due while paused.
    let mut due = job_on("held", Priority::Normal, 2);
    due.eta = Some(now_millis() + 100);
    b.enqueue(vec![
        job_on("held", Priority::Low, 3),
        due,
        job_on("free", Priority::Normal, 4),
    ])
    .await
    .unwrap();
    wait_past(now_millis() + 150).await;
    let got = b.fetch(&req(&["held", "free"], 10)).await.unwrap();
    assert_eq!(got.len(), 1, "only the other route's job: {got:?}");
    assert_eq!(got[0].route, other);
    assert!(b.fetch(&req(&["held"], 10)).await.unwrap().is_empty());

    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "held").unwrap();
    assert!(s.paused, "{s:?}");
    assert_eq!(s.high + s.normal + s.low + s.scheduled, 3, "{s:?}");
    assert!(!stats.iter().find(|s| s.route == "free").unwrap().paused);

    // A fetch waiting on the paused route gets its jobs once it resumes.
    let mut waiting = req(&["held"], 10);
    waiting.block = Duration::from_secs(20);
    let (fetched, resumed) = tokio::join!(b.fetch(&waiting), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pause.resume(&held).await.unwrap()
    });
    assert!(resumed);
    let mut got = fetched.unwrap();
    if got.len() < 3 {
        got.extend(fetch_n(b, &["held"], 3 - got.len()).await);
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(!pause.resume(&held).await.unwrap(), "not paused any more");
    let s = inspect.stats().await.unwrap();
    assert!(!s.iter().find(|s| s.route == "held").unwrap().paused);
    tb.cleanup().await;
}

/// Queue latency: when the oldest queued job became due, over every
/// priority; nothing queued, no latency.
async fn latency_is_the_age_of_the_oldest_queued_job(kind: Kind) {
    let tb = TestBroker::new(kind, "latency").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    let mut old = job_on("lat", Priority::Low, 1);
    old.created_at = now_millis() - 60_000;
    let young = job_on("lat", Priority::High, 2);
    b.enqueue(vec![young.clone(), old.clone()]).await.unwrap();
    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "lat").unwrap();
    assert_eq!(s.oldest_due, Some(old.created_at), "{s:?}");
    assert!(s.latency(now_millis()) >= Duration::from_secs(60));
    let _ = fetch_n(b, &["lat"], 2).await;
    let stats = inspect.stats().await.unwrap();
    let s = stats.iter().find(|s| s.route == "lat").unwrap();
    assert_eq!(s.oldest_due, None, "{s:?}");
    assert_eq!(s.latency(now_millis()), Duration::ZERO);
    tb.cleanup().await;
}

/// Every page of a listing with `limit`, following `next` to the end.
async fn list_all(b: &AnyBroker, filter: &JobFilter, limit: usize) -> (Vec<JobId>, usize) {
    let browse = b.browse().unwrap();
    let (mut ids, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = browse
            .list_jobs(filter, cursor.as_deref(), limit)
            .await
            .unwrap();
        assert!(page.jobs.len() <= limit);
        for j in &page.jobs {
            assert!(filter.matches(j), "{j:?} does not match {filter:?}");
        }
        ids.extend(page.jobs.into_iter().map(|j| j.id));
        pages += 1;
        assert!(pages < 100, "no end to the listing");
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (ids, pages),
        }
    }
}

/// Jobs in every state on three routes, each listed page by page in its
/// order (queued: route by route, high to low, newest first; the others
/// newest first over all routes), cancelled jobs apart from dead ones,
/// retrying ones apart from scheduled ones; filters by route, task and
/// text (arguments or error).
async fn jobs_are_listed_by_state_page_by_page(kind: Kind) {
    let tb = TestBroker::new(kind, "browse").await;
    let b = &tb.broker;
    let now = now_millis();
    let (q1, q2, q3) = (
        job_on("ba", Priority::High, 1),
        job_on("ba", Priority::Normal, 2),
        job_on("ba", Priority::Low, 3),
    );
    let (q4, q5) = (
        job_on("bb", Priority::Normal, 4),
        job_on("bb", Priority::Normal, 5),
    );
    let (mut s1, mut s2, mut c1) = (
        job_on("ba", Priority::Normal, 6),
        job_on("bb", Priority::Normal, 7),
        job_on("ba", Priority::Normal, 8),
    );
    s1.eta = Some(now + 3_600_000);
    s2.eta = Some(now + 7_200_000);
    c1.eta = Some(now + 3_600_000);
    b.enqueue(vec![
        q1.clone(),
        q2.clone(),
        q3.clone(),
        q4.clone(),
        s1.clone(),
        s2.clone(),
        c1.clone(),
    ])
    .await
    .unwrap();
    b.enqueue(vec![q5.clone()]).await.unwrap();
    b.cancel().unwrap().cancel(&c1.id, None).await.unwrap();
    // Through a worker's hands, on a third route.
    let mut mailer = job_on("bw", Priority::Normal, 9);
    mailer.task = "mailer".into();
    let work: Vec<_> = (10..14)
        .map(|n| job_on("bw", Priority::Normal, n))
        .collect();
    let mut all = vec![mailer];
    all.extend(work);
    b.enqueue(all).await.unwrap();
    let got = fetch_n(b, &["bw"], 5).await;
    let by_n = |n: usize| {
        got.iter()
            .find(|j| j.args.get().contains(&format!("\"n\":{n}")))
            .unwrap()
    };
    let (d1, r1, ok1, ok2, a1) = (by_n(9), by_n(10), by_n(11), by_n(12), by_n(13));
    b.ack(&[
        ack(
            d1,
            Outcome::Dead {
                reason: "boom 42".into(),
            },
        ),
        ack(
            r1,
            Outcome::Retry {
                at: now + 3_600_000,
                error: "try later".into(),
            },
        ),
        ok(ok1, "1"),
    ])
    .await
    .unwrap();
    wait_past(now_millis() + 5).await;
    b.ack(&[ok(ok2, "2")]).await.unwrap();

    let ids = |jobs: &[&bananas::job::Job]| jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    for (state, want) in [
        (ListState::Queued, ids(&[&q1, &q2, &q3, &q4, &q5])),
        (ListState::Scheduled, ids(&[&s2, &s1])),
        (ListState::Retrying, ids(&[r1])),
        (ListState::Active, ids(&[a1])),
        (ListState::Succeeded, ids(&[ok2, ok1])),
        (ListState::Dead, ids(&[d1])),
        (ListState::Cancelled, ids(&[&c1])),
    ] {
        for limit in [1, 2, 100] {
            let (got, _) = list_all(b, &JobFilter::state(state), limit).await;
            if state == ListState::Queued {
                // q5 came after q4, so it is the newer on its route.
                let mut want = want.clone();
                want.swap(3, 4);
                assert_eq!(got, want, "{state}, pages of {limit}");
            } else {
                assert_eq!(got, want, "{state}, pages of {limit}");
            }
        }
    }

    let mut f = JobFilter::state(ListState::Queued);
    f.route = Some(route("bb"));
    assert_eq!(list_all(b, &f, 10).await.0, ids(&[&q5, &q4]));
    let mut f = JobFilter::state(ListState::Queued);
    f.text = Some("\"n\":3".into());
    assert_eq!(list_all(b, &f, 10).await.0, ids(&[&q3]));
    let mut f = JobFilter::state(ListState::Dead);
    f.text = Some("boom 42".into());
    assert_eq!(list_all(b, &f, 10).await.0, ids(&[d1]));
    f.task = Some("noop".into());
    assert!(list_all(b, &f, 10).await.0.is_empty());
    f.task = Some("mailer".into());
    assert_eq!(list_all(b, &f, 10).await.0, ids(&[d1]));
    tb.cleanup().await;
}

/// A bad cursor, a cursor of another listing and an out-of-range page size
/// are `Error::Invalid`, naming the problem.
async fn bad_listing_requests_are_invalid(kind: Kind) {
    let tb = TestBroker::new(kind, "browsebad").await;
    let browse = tb.broker.browse().unwrap();
    let queued = JobFilter::state(ListState::Queued);
    let dead = JobFilter::state(ListState::Dead);
    for (filter, cursor, limit, says) in [
        (&queued, Some("nope"), 10, "invalid cursor `nope`"),
        (
            &queued,
            Some("t.12.x"),
            10,
            "not a cursor of a `queued` listing",
        ),
        (
            &dead,
            Some("q.0.0.default"),
            10,
            "not a cursor of a `dead` listing",
        ),
        (&dead, None, 0, "page size 0"),
        (&dead, None, 1001, "page size 1001"),
    ] {
        let e = browse.list_jobs(filter, cursor, limit).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains(says), "{e}");
    }
    tb.cleanup().await;
}

/// A filter reads at most `SCAN_BUDGET` entries per call: a search through
/// a long queue comes back with a short page and a cursor, and following
/// it finds the job.
async fn a_search_reads_a_bounded_stretch_per_page(kind: Kind) {
    let tb = TestBroker::new(kind, "browsescan").await;
    let b = &tb.broker;
    let mut target = job_on("many", Priority::Normal, 0);
    target.task = "target".into();
    b.enqueue(vec![target.clone()]).await.unwrap();
    let others: Vec<_> = (1..=bananas::broker::SCAN_BUDGET + 500)
        .map(|n| job_on("many", Priority::Normal, n))
        .collect();
    for chunk in others.chunks(1000) {
        b.enqueue(chunk.to_vec()).await.unwrap();
    }
    let mut f = JobFilter::state(ListState::Queued);
    f.task = Some("target".into());
    let first = b.browse().unwrap().list_jobs(&f, None, 10).await.unwrap();
    assert!(
        first.jobs.is_empty(),
        "the budget ran out before the oldest job"
    );
    assert!(first.next.is_some());
    let (found, pages) = list_all(b, &f, 10).await;
    assert_eq!(found, vec![target.id.clone()]);
    assert!(pages >= 2, "{pages}");
    tb.cleanup().await;
}

/// `Manage`: run now moves a scheduled or retrying job (attempts and error
/// kept) to the front of its queue; delete removes a queued, scheduled,
/// dead or succeeded job from everywhere, and refuses a leased one. Both
/// say `false` for a job they do not apply to.
async fn jobs_run_now_and_are_deleted(kind: Kind) {
    let tb = TestBroker::new(kind, "manage").await;
    let b = &tb.broker;
    let (manage, inspect) = (b.manage().unwrap(), b.inspect().unwrap());
    let now = now_millis();
    let q = job_on("m", Priority::Normal, 1);
    let mut s = job_on("m", Priority::Normal, 2);
    s.eta = Some(now + 3_600_000);
    let work: Vec<_> = (3..7).map(|n| job_on("mw", Priority::Normal, n)).collect();
    b.enqueue(vec![q.clone(), s.clone()]).await.unwrap();
    b.enqueue(work).await.unwrap();
    let got = fetch_n(b, &["mw"], 4).await;
    let (r, d, okj, a) = (&got[0], &got[1], &got[2], &got[3]);
    b.ack(&[
        ack(
            r,
            Outcome::Retry {
                at: now + 3_600_000,
                error: "later".into(),
            },
        ),
        ack(
            d,
            Outcome::Dead {
                reason: "boom".into(),
            },
        ),
        ok(okj, "7"),
    ])
    .await
    .unwrap();
    let unknown = JobId::from("no-such-job");

    assert!(manage.run_now(&s.id, None).await.unwrap());
    assert!(!manage.run_now(&s.id, None).await.unwrap(), "queued now");
    assert!(!manage.run_now(&q.id, Some(&route("m"))).await.unwrap());
    assert!(!manage.run_now(&a.id, None).await.unwrap());
    assert!(!manage.run_now(&unknown, None).await.unwrap());
    let first = b.fetch(&req(&["m"], 1)).await.unwrap();
    assert_eq!(first[0].id, s.id, "run now goes to the front of the queue");
    assert!(manage.run_now(&r.id, None).await.unwrap());
    let rec = inspect.job(&r.id, None).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.attempts),
        (bananas::JobState::Queued, 1),
        "{rec:?}"
    );
    assert_eq!(rec.error.as_deref(), Some("later"));

    for id in [&q.id, &d.id, &okj.id, &r.id] {
        assert!(manage.delete(id, None).await.unwrap(), "{id}");
        assert!(
            inspect.job(id, None).await.unwrap().is_none(),
            "{id} is gone"
        );
        assert!(!manage.delete(id, None).await.unwrap(), "{id} twice");
    }
    assert!(
        !manage.delete(&a.id, None).await.unwrap(),
        "a leased job stays"
    );
    assert!(
        !manage.delete(&s.id, None).await.unwrap(),
        "a leased job stays"
    );
    assert!(!manage.delete(&unknown, None).await.unwrap());
    for state in [ListState::Queued, ListState::Dead, ListState::Succeeded] {
        assert!(
            list_all(b, &JobFilter::state(state), 10).await.0.is_empty(),
            "{state}"
        );
    }
    let stats = inspect.stats().await.unwrap();
    let m = stats.iter().find(|x| x.route == "m").unwrap();
    assert_eq!(
        (m.normal, m.scheduled, m.active, m.dead),
        (0, 0, 1, 0),
        "{m:?}"
    );
    tb.cleanup().await;
}

/// `control::apply`: by ids and by filter, in batches, with the count
/// refused past the maximum (nothing done), an empty selection and a
/// filter on a state the action does not move refused, and the count of
/// jobs changed.
async fn actions_apply_to_ids_and_filters(kind: Kind) {
    use bananas::control::{apply, Action, Selection};
    let tb = TestBroker::new(kind, "bulk").await;
    let b = &tb.broker;
    let jobs: Vec<_> = (0..30)
        .map(|n| job_on("bulk", Priority::Normal, n))
        .collect();
    b.enqueue(jobs).await.unwrap();
    let got = fetch_n(b, &["bulk"], 30).await;
    let acks: Vec<_> = got
        .iter()
        .map(|j| {
            let n: usize = j
                .args
                .get()
                .trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap();
            let reason = if n % 2 == 0 { "boom" } else { "bang" };
            ack(
                j,
                Outcome::Dead {
                    reason: reason.into(),
                },
            )
        })
        .collect();
    b.ack(&acks).await.unwrap();
    let dead = |text: &str| {
        let mut f = JobFilter::state(ListState::Dead);
        f.text = Some(text.into());
        f
    };
    let e = apply(b, Action::Retry, Selection::Filter(dead("boom")), Some(10))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than 10"), "{e}");
    assert_eq!(
        list_all(b, &dead("boom"), 100).await.0.len(),
        15,
        "nothing was done"
    );
    let n = apply(b, Action::Retry, Selection::Filter(dead("boom")), Some(15))
        .await
        .unwrap();
    assert_eq!(n, 15);
    assert_eq!(
        list_all(b, &JobFilter::state(ListState::Queued), 100)
            .await
            .0
            .len(),
        15
    );
    let (bang, _) = list_all(b, &dead("bang"), 100).await;
    let three: Vec<_> = bang[..3].iter().map(|id| (id.clone(), None)).collect();
    assert_eq!(
        apply(b, Action::Delete, Selection::Ids(three), None)
            .await
            .unwrap(),
        3
    );
    assert_eq!(list_all(b, &dead("bang"), 100).await.0.len(), 12);
    let mut queued = JobFilter::state(ListState::Queued);
    queued.route = Some(route("bulk"));
    assert_eq!(
        apply(b, Action::Cancel, Selection::Filter(queued), None)
            .await
            .unwrap(),
        15
    );
    assert_eq!(
        list_all(b, &JobFilter::state(ListState::Cancelled), 100)
            .await
            .0
            .len(),
        15
    );

    let e = apply(
        b,
        Action::RunNow,
        Selection::Filter(JobFilter::state(ListState::Dead)),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("`run_now` moves scheduled, retrying jobs"),
        "{e}"
    );
    let e = apply(b, Action::Delete, Selection::Ids(Vec::new()), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("empty selection"), "{e}");

    // More than one batch of queued jobs, through a filter that skips some.
    let many: Vec<_> = (0..700)
        .map(|n| job_on("bulk2", Priority::Normal, n))
        .collect();
    b.enqueue(many).await.unwrap();
    let mut f = JobFilter::state(ListState::Queued);
    f.text = Some("5".into());
    let with_5 = (0..700)
        .filter(|n: &usize| n.to_string().contains('5'))
        .count();
    assert_eq!(
        apply(b, Action::Delete, Selection::Filter(f), None)
            .await
            .unwrap(),
        with_5
    );
    let left = b.inspect().unwrap().stats().await.unwrap();
    let bulk2 = left.iter().find(|s| s.route == "bulk2").unwrap();
    assert_eq!(bulk2.normal as usize, 700 - with_5);
    tb.cleanup().await;
}

/// `History`: each settled attempt counts once in its route's minute,
/// failures (retried or dead) apart; a stale repeat does not count.
async fn history_counts_processed_and_failed_per_minute(kind: Kind) {
    let tb = TestBroker::new(kind, "history").await;
    let b = &tb.broker;
    let jobs: Vec<_> = (0..3)
        .map(|n| job_on("hist", Priority::Normal, n))
        .collect();
    b.enqueue(jobs).await.unwrap();
    b.enqueue(vec![job_on("hist2", Priority::Normal, 9)])
        .await
        .unwrap();
    let got = fetch_n(b, &["hist"], 3).await;
    let other = fetch_n(b, &["hist2"], 1).await;
    let before = now_millis();
    b.ack(&[
        ok(&got[0], "1"),
        ack(
            &got[1],
            Outcome::Retry {
                at: before + 3_600_000,
                error: "e".into(),
            },
        ),
        ack(&got[2], Outcome::Dead { reason: "d".into() }),
    ])
    .await
    .unwrap();
    b.ack(&[ok(&got[0], "1")]).await.unwrap(); // stale: counts nothing
    b.ack(&[none(&other[0])]).await.unwrap();
    let after = now_millis();
    let history = b.history().unwrap();
    let sum = |m: &[bananas::broker::MinuteCounts]| {
        (
            m.iter().map(|x| x.processed).sum::<u64>(),
            m.iter().map(|x| x.failed).sum::<u64>(),
        )
    };
    let h = history.history(&route("hist")).await.unwrap();
    assert_eq!(sum(&h), (3, 2), "{h:?}");
    for m in &h {
        assert_eq!(m.minute % 60_000, 0);
        assert!(
            m.minute >= before / 60_000 * 60_000 && m.minute <= after,
            "{m:?}"
        );
    }
    assert_eq!(
        sum(&history.history(&route("hist2")).await.unwrap()),
        (1, 0)
    );
    assert!(history
        .history(&route("nothing-here"))
        .await
        .unwrap()
        .is_empty());
    tb.cleanup().await;
}

/// Tags and metadata: stored with the job, shown by `Inspect::job` and in
/// listings while it waits and once it finished, searchable by tag, gone
/// when it is deleted; out-of-bounds tags are refused at enqueue.
async fn tags_and_meta_are_kept_shown_and_searchable(kind: Kind) {
    let tb = TestBroker::new(kind, "tags").await;
    let b = &tb.broker;
    let inspect = b.inspect().unwrap();
    let extra = bananas::job::Extra {
        tags: vec!["tenant:42".into(), "vip".into()],
        meta: serde_json::from_str(r#"{"source":"test","n":1}"#).unwrap(),
    };
    let mut tagged = job_on("tg", Priority::Normal, 1);
    tagged.extra = Some(Box::new(extra.clone()));
    let plain = job_on("tg", Priority::Normal, 2);
    b.enqueue(vec![tagged.clone(), plain.clone()])
        .await
        .unwrap();
    let rec = inspect.job(&tagged.id, None).await.unwrap().unwrap();
    assert_eq!(rec.extra.as_deref(), Some(&extra));
    assert!(inspect
        .job(&plain.id, None)
        .await
        .unwrap()
        .unwrap()
        .extra
        .is_none());
    let mut f = JobFilter::state(ListState::Queued);
    f.tag = Some("vip".into());
    assert_eq!(list_all(b, &f, 10).await.0, vec![tagged.id.clone()]);
    let page = b.browse().unwrap().list_jobs(&f, None, 10).await.unwrap();
    assert_eq!(page.jobs[0].extra.as_deref(), Some(&extra));

    let got = fetch_n(b, &["tg"], 2).await;
    let mine = got.iter().find(|j| j.id == tagged.id).unwrap();
    b.ack(&[ok(mine, "1")]).await.unwrap();
    let rec = inspect.job(&tagged.id, None).await.unwrap().unwrap();
    assert_eq!(rec.state, bananas::JobState::Succeeded);
    assert_eq!(rec.extra.as_deref(), Some(&extra), "kept once finished");
    let mut f = JobFilter::state(ListState::Succeeded);
    f.tag = Some("tenant:42".into());
    assert_eq!(list_all(b, &f, 10).await.0, vec![tagged.id.clone()]);
    assert!(b.manage().unwrap().delete(&tagged.id, None).await.unwrap());
    assert!(list_all(b, &f, 10).await.0.is_empty());

    let mut bad = job_on("tg", Priority::Normal, 3);
    bad.extra = Some(Box::new(bananas::job::Extra {
        tags: vec!["".into()],
        ..Default::default()
    }));
    let e = b.enqueue(vec![bad.clone()]).await.unwrap_err();
    assert!(
        matches!(e, Error::Invalid(_)) && e.to_string().contains("invalid tag"),
        "{e}"
    );
    assert!(inspect.job(&bad.id, None).await.unwrap().is_none());
    tb.cleanup().await;
}

broker_suite!(
    tags_and_meta_are_kept_shown_and_searchable,
    history_counts_processed_and_failed_per_minute,
    jobs_run_now_and_are_deleted,
    actions_apply_to_ids_and_filters,
    a_paused_route_accepts_jobs_and_leases_none,
    latency_is_the_age_of_the_oldest_queued_job,
    jobs_are_listed_by_state_page_by_page,
    bad_listing_requests_are_invalid,
    a_search_reads_a_bounded_stretch_per_page,
);
