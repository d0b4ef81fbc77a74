//! Configuration from the environment (`bananas::settings`) and broker URLs
//! (`bananas::connect`). One test for the environment, because it is shared by
//! every thread of the process.

use std::time::Duration;

use bananas::settings::Settings;

#[test]
fn settings_from_env() {
    let clear = || {
        for v in [
            "BANANAS_URL",
            "WORKER_CONCURRENCY",
            "WORKER_ROUTING_KEYS",
            "WORKER_SHUTDOWN_TIMEOUT",
            "BANANAS_SCHEDULER",
            "WORKER_PREFETCH",
            "WORKER_LEASE",
            "BANANAS_API_TOKEN",
            "BANANAS_HTTP_ALLOW_NEW_ROUTES",
        ] {
            std::env::remove_var(v);
        }
    };
    clear();
    let s = Settings::from_env().unwrap();
    assert_eq!(s.url, "memory://");
    assert_eq!(s.worker.concurrency, 10);
    assert_eq!(s.worker.routes.len(), 1);
    assert_eq!(s.worker.routes[0].as_str(), "default");
    assert!(s.scheduler);
    assert!(!s.http_allow_new_routes);

    std::env::set_var("BANANAS_URL", "redis://127.0.0.1:6379");
    std::env::set_var("WORKER_CONCURRENCY", "20");
    std::env::set_var("WORKER_ROUTING_KEYS", "gpu, default");
    std::env::set_var("WORKER_SHUTDOWN_TIMEOUT", "2.5");
    std::env::set_var("BANANAS_SCHEDULER", "off");
    std::env::set_var("WORKER_PREFETCH", "0");
    std::env::set_var("BANANAS_HTTP_ALLOW_NEW_ROUTES", "Yes");
    let s = Settings::from_env().unwrap();
    assert_eq!(s.url, "redis://127.0.0.1:6379");
    assert_eq!(s.worker.concurrency, 20);
    let routes: Vec<&str> = s.worker.routes.iter().map(|r| r.as_str()).collect();
    assert_eq!(routes, ["gpu", "default"]);
    assert_eq!(s.worker.shutdown_timeout, Duration::from_millis(2500));
    assert!(!s.scheduler);
    assert_eq!(s.worker.prefetch, Some(0));
    assert!(s.http_allow_new_routes);

    // Each bad value is an error that names the variable and the value.
    for (var, value, says) in [
        ("WORKER_CONCURRENCY", "lots", "positive integer"),
        ("WORKER_CONCURRENCY", "0", "positive integer"),
        (
            "WORKER_ROUTING_KEYS",
            "gpu,bad route",
            "invalid route `bad route`",
        ),
        ("WORKER_SHUTDOWN_TIMEOUT", "soon", "expected seconds"),
        ("WORKER_PREFETCH", "-1", "expected how many jobs"),
        // Out-of-range durations are refused with the limit, not a panic.
        ("WORKER_LEASE", "1e20", "86400"),
        ("WORKER_LEASE", "0", "out of range"),
        ("WORKER_SHUTDOWN_TIMEOUT", "1e30", "86400"),
        ("WORKER_SHUTDOWN_TIMEOUT", "inf", "86400"),
        (
            "BANANAS_HTTP_ALLOW_NEW_ROUTES",
            "maybe",
            "expected `true` or `false`",
        ),
    ] {
        clear();
        std::env::set_var(var, value);
        let err = Settings::from_env().unwrap_err().to_string();
        assert!(
            err.contains(var) && err.contains(value) && err.contains(says),
            "{var}={value}: {err}"
        );
    }

    // Debug output hides the broker password and the API token.
    clear();
    std::env::set_var("BANANAS_URL", "redis://:s3cretpw@127.0.0.1:6379/0");
    std::env::set_var("BANANAS_API_TOKEN", "tok-0123456789");
    let s = Settings::from_env().unwrap();
    let shown = format!("{s:?}");
    assert!(
        !shown.contains("s3cretpw") && !shown.contains("tok-0123456789"),
        "{shown}"
    );
    assert!(shown.contains("127.0.0.1:6379"), "{shown}");
    clear();
}

#[tokio::test]
async fn unknown_broker_urls_are_rejected() {
    let err = bananas::connect::connect_broker("kafka://x")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unsupported broker URL `kafka://x`"),
        "{err}"
    );
    let err = bananas::connect::connect_broker("redis://127.0.0.1:6379?prefix=")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
    let err = bananas::connect::connect_broker("memory://?result_ttl=soon")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`result_ttl=soon`"), "{err}");
    // Out-of-range TTLs name the parameter and the limit (they panicked, or
    // passed and failed every ack later).
    for bad in ["1e30", "1e16", "0", "-5"] {
        let url = format!("memory://?result_ttl={bad}");
        let err = bananas::connect::connect_broker(&url).await.unwrap_err();
        assert!(
            err.to_string().contains(&format!("`result_ttl={bad}`"))
                && err.to_string().contains("315360000"),
            "{err}"
        );
    }

    let opts = bananas::connect::UrlOptions::parse(
        "redis://u:p@h:1/0?prefix=app&result_ttl=60&failure_ttl=2.5&protocol=resp3",
    )
    .unwrap();
    assert_eq!(opts.url, "redis://u:p@h:1/0?protocol=resp3");
    assert_eq!(opts.prefix.as_deref(), Some("app"));
    assert_eq!(opts.result_ttl, Some(Duration::from_secs(60)));
    assert_eq!(opts.failure_ttl, Some(Duration::from_millis(2500)));
    assert_eq!(opts.require_noeviction, None);
    let opts =
        bananas::connect::UrlOptions::parse("redis://h:1/0?require_noeviction=true&db=2").unwrap();
    assert_eq!(opts.url, "redis://h:1/0?db=2");
    assert_eq!(opts.require_noeviction, Some(true));
    let err = bananas::connect::UrlOptions::parse("redis://h:1?require_noeviction=sure")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`require_noeviction=sure`"), "{err}");

    // A fragment stays on the URL, out of the last parameter's value.
    let opts =
        bananas::connect::UrlOptions::parse("rediss://h:1/?prefix=app&tls_ca=/etc/ca.pem#insecure")
            .unwrap();
    assert_eq!(opts.url, "rediss://h:1/#insecure");
    assert_eq!(opts.prefix.as_deref(), Some("app"));
    assert_eq!(
        opts.tls_ca.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );

    // A CA file that cannot be read, or a CA for a URL without TLS, is named.
    let err = bananas::connect::connect_broker("rediss://127.0.0.1:1?tls_ca=/nonexistent/ca.pem")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read `tls_ca` file /nonexistent/ca.pem"),
        "{err}"
    );
    let pem = std::env::temp_dir().join(format!("bananas-ca-{}.pem", std::process::id()));
    std::fs::write(&pem, "not a certificate").unwrap();
    let err =
        bananas::connect::connect_broker(&format!("rediss://127.0.0.1:1?tls_ca={}", pem.display()))
            .await
            .unwrap_err();
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nnot checked before the scheme\n",
    )
    .unwrap();
    let err = bananas::connect::connect_broker(&format!(
        "redis://127.0.0.1:6379?tls_ca={}",
        pem.display()
    ))
    .await
    .unwrap_err();
    let _ = std::fs::remove_file(&pem);
    assert!(err.to_string().contains("is not a rediss:// URL"), "{err}");
    let err = bananas_redis::RedisBroker::builder("rediss://127.0.0.1:1?tls_ca=/etc/ca.pem")
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains(".tls_ca_cert("), "{err}");
    let err = bananas::connect::connect_broker("memory://?tls_ca=/x.pem")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`tls_ca`"), "{err}");
}
