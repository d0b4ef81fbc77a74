//! An app started with `http_addr` and `metrics_addr` serves the HTTP API
//! and the metrics endpoint, with the token required where it should be.

use std::{net::SocketAddr, time::Duration};

use bananas::{settings::Settings, App};
use bananas_test_support::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[bananas::task]
async fn greet(name: String) -> String {
    format!("hello {name}")
}

/// One HTTP/1.1 request over a fresh connection; returns (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn app_serves_api_and_metrics() {
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let settings = Settings {
        http_addr: Some(api),
        metrics_addr: Some(metrics),
        api_token: Some("s3cret".into()),
        scheduler: false,
        ..Settings::default()
    };
    let app = App::builder().settings(settings).build().await.unwrap();
    let running = tokio::spawn(app.clone().run());

    // The listener is bound before run() gets going; wait for it with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(api).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "API never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, _) = http(api, "GET", "/health", None, "").await;
    assert_eq!(status, 200);
    let (status, body) = http(
        api,
        "POST",
        "/jobs",
        None,
        r#"{"name":"greet","payload":{"name":"ada"}}"#,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(
        api,
        "POST",
        "/jobs",
        Some("s3cret"),
        r#"{"name":"greet","payload":{"name":"ada"}}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rec = app
        .client()
        .wait(&id.clone().into(), Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.result.unwrap().get(), "\"hello ada\"");
    let (status, body) = http(api, "GET", &format!("/jobs/{id}"), Some("s3cret"), "").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"state\":\"succeeded\""), "{body}");

    let (status, body) = http(metrics, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"bananas_jobs_total{task="greet",outcome="succeeded"}"#),
        "{body}"
    );
    app.shutdown();
    running.await.unwrap().unwrap();
}
