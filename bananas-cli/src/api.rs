//! Reading a running app's HTTP API (for `bananas schedules --api`).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::Value;

/// `GET {base}{path}` as JSON, with the bearer `token` if any. Plain
/// `http://` only.
pub(crate) async fn get_json(base: &str, path: &str, token: Option<&str>) -> Result<Value, String> {
    let base = base.trim_end_matches('/');
    if !base.starts_with("http://") {
        return Err(format!(
            "--api `{base}`: expected an http:// URL, like http://127.0.0.1:8080"
        ));
    }
    let url = format!("{base}{path}");
    let mut req = hyper::Request::get(&url);
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid URL `{url}`: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("GET {url}: no answer within 10 s"))?
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {url} answered {status} with a body that is not JSON: {e}"))?;
    if !status.is_success() {
        let msg = value["error"].as_str().unwrap_or("no error message");
        return Err(format!("GET {url} answered {status}: {msg}"));
    }
    Ok(value)
}
