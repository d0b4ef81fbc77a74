//! A small HTTP/1.1 client and a test server for the HTTP API tests.

#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bananas::http::ApiState;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Log output captured by [`capture_logs`].
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the log contains `needle`, or fails after 10 s.
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{needle:?} never logged; log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures what this thread logs at INFO and above, formatted as
/// `bananas serve` prints it (without colours), until the guard drops.
/// With `#[tokio::test]`'s single-threaded runtime that includes the
/// spawned server.
pub fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// A running API server on loopback. Stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    token: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` of a JSON error body, checking it is JSON.
    pub fn error(&self) -> String {
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "content type {ct:?}: {}",
            self.text()
        );
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` in {}", self.text()))
            .to_owned()
    }
}

/// Starts the API for `state` on 127.0.0.1 with a free port.
pub async fn start(state: ApiState) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(bananas::http::serve_listener(state, listener, stop.clone()));
    Server {
        addr,
        stop,
        client: Client::builder(TokioExecutor::new()).build_http(),
        token: None,
    }
}

impl Server {
    /// Sends the bearer token on every following request.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Sends a request; `headers` come on top of the token's.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, &[], None).await
    }

    /// POSTs with no body, as `application/json` (what the API asks of
    /// every POST, so a browser cannot send it cross-site unasked).
    pub async fn post(&self, path: &str) -> Resp {
        self.send("POST", path, &[("content-type", "application/json")], None)
            .await
    }

    /// POSTs `body` as `application/json`.
    pub async fn post_json(&self, path: &str, body: &str) -> Resp {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(body.as_bytes().to_vec()),
        )
        .await
    }

    /// Polls `GET path` until `pred` holds on its JSON, or fails after 10 s.
    pub async fn wait_for(&self, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(path).await;
            if r.status == 200 {
                let v = r.json();
                if pred(&v) {
                    return v;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition on {path} not met in time; last: {} {}",
                r.status,
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
