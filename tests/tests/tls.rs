//! TLS (`rediss://`) against a private `redis-server` that speaks only TLS,
//! with a fresh self-signed certificate.

use std::time::Duration;

use bananas::App;
use bananas_test_support::RedisServer;

#[bananas::task]
async fn tls_add(a: i64, b: i64) -> i64 {
    a + b
}

/// Trusting the server's certificate through the URL's `tls_ca`, a worker
/// runs jobs end to end over TLS: the function library load, enqueue, the
/// blocking idle fetch on its own connection, the ack and the stored result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_over_tls_with_a_private_ca() {
    let server = RedisServer::builder().tls().start();
    let ca = server.ca_file().expect("a TLS server has a CA");
    let url = format!("{}?prefix=tls&tls_ca={}", server.url(), ca.display());
    let broker = bananas::connect::connect_broker(&url)
        .await
        .expect("connect over TLS trusting the certificate");
    let app = App::builder()
        .broker(broker)
        .scheduler(false)
        .build()
        .await
        .unwrap();
    let running = tokio::spawn(app.clone().run());
    let h = tls_add::submit(40, 2)
        .on(app.client())
        .send()
        .await
        .unwrap();
    assert_eq!(h.wait(Duration::from_secs(20)).await.unwrap(), 42);
    // Give the worker time to go idle, so the next job most likely reaches
    // it through its blocked fetch on its own TLS connection (the job must
    // run either way).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let h = tls_add::submit(1, 2).on(app.client()).send().await.unwrap();
    assert_eq!(h.wait(Duration::from_secs(20)).await.unwrap(), 3);
    app.shutdown();
    running.await.unwrap().unwrap();
}

/// Without that CA the self-signed certificate is refused, with an error
/// that says so.
#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let server = RedisServer::builder().tls().start();
    let err = bananas::connect::connect_broker(&server.url())
        .await
        .expect_err("a self-signed certificate must not be trusted by default");
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
}

/// The builder takes the CA as PEM bytes.
#[tokio::test]
async fn the_builder_takes_a_ca_certificate() {
    let server = RedisServer::builder().tls().start();
    let cert = std::fs::read(server.ca_file().expect("a TLS server has a CA")).unwrap();
    let broker = bananas_redis::RedisBroker::builder(&server.url())
        .prefix("tls-builder")
        .tls_ca_cert(cert)
        .connect()
        .await
        .expect("connect over TLS");
    bananas::broker::Broker::ping(&broker).await.unwrap();
}
