//! Refusing cross-site requests: a web page on another origin must not be
//! able to make a visitor's browser change anything through the API.
//!
//! A browser sends a cross-origin `POST` without asking first (no CORS
//! preflight) only when it is a "simple" request: its `Content-Type` is
//! `text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`
//! or absent. Every other state-changing request (`DELETE`, `PUT`, `PATCH`,
//! or a `POST` of `application/json`) is preflighted, and the API answers
//! no preflight, so the browser never sends it. Two rules close the rest:
//!
//! - a state-changing request (any method but `GET`, `HEAD`, `OPTIONS` and
//!   `TRACE`) that carries an `Origin` header must come from the origin the
//!   request is addressed to (`Origin`'s host and port equal `Host`); an
//!   `Origin: null` (sandboxed frames, `file:` pages, some redirects) is
//!   refused. 403 otherwise. Clients that are not browsers (curl, the CLI,
//!   other services) send no `Origin` and are not affected.
//! - a `POST` must say `Content-Type: application/json` (an `+json` type
//!   works too), even with no body: 415 otherwise. No simple request can.
//!
//! This holds with or without a token: without one it is what stops
//! cross-site requests, with one it costs nothing.

use axum::{
    extract::Request,
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::error::ApiError;

/// Whether `method` may change state (RFC 9110 §9.2.1: all but the safe
/// methods).
fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether the request's `Content-Type` is JSON: `application/json` or
/// `application/<something>+json`, parameters (`; charset=utf-8`) allowed.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let ct = ct.as_bytes();
    let mime = ct
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    const PREFIX: &[u8] = b"application/";
    const SUFFIX: &[u8] = b"+json";
    mime.eq_ignore_ascii_case(b"application/json")
        || (mime.len() > PREFIX.len() + SUFFIX.len()
            && mime[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
            && mime[mime.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX))
}

/// The 415 for a request whose body (or, for a `POST`, whose declared
/// type) is not JSON.
pub(crate) fn not_json(headers: &HeaderMap) -> ApiError {
    let got = match headers.get(header::CONTENT_TYPE) {
        None => "none".to_owned(),
        Some(v) => format!("`{}`", String::from_utf8_lossy(v.as_bytes())),
    };
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("expected `Content-Type: application/json`, got {got}"),
    )
}

/// Splits `scheme://host[:port]` into the scheme and the authority without
/// the scheme's default port. `None` for anything else (including `null`).
fn parse_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.split_once("://")?;
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    Some((scheme, strip_default_port(scheme, authority)))
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        return authority;
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Whether `origin` names the same host and port as `host` (the `Host`
/// header), ignoring case and default ports.
pub(crate) fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = parse_origin(origin) else {
        return false;
    };
    authority.eq_ignore_ascii_case(strip_default_port(scheme, host))
}

/// Checks a request against the rules in the [module docs](self).
pub(crate) fn check(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if !changes_state(method) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !host.is_some_and(|h| same_origin(&origin, h)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin request refused: `Origin: {origin}` is not this API's origin \
                     (`Host: {}`); state-changing requests must come from the API's own origin \
                     or from a client that is not a browser",
                    host.unwrap_or("none")
                ),
            ));
        }
    }
    if *method == Method::POST && !is_json(headers) {
        return Err(not_json(headers));
    }
    Ok(())
}

/// The middleware: refuses what [`check`] refuses, before any handler runs.
pub(crate) async fn refuse_cross_site(req: Request, next: Next) -> Response {
    match check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins_match_the_host_ignoring_case_and_default_ports() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("http://API.example", "api.example"));
        assert!(same_origin("http://api.example:80", "api.example"));
        assert!(same_origin("http://api.example", "api.example:80"));
        assert!(same_origin("https://api.example", "api.example:443"));
        assert!(same_origin("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("https://api.example", "api.example:80"));
        assert!(!same_origin("null", "127.0.0.1:8080"));
        assert!(!same_origin("http://a@127.0.0.1:8080", "127.0.0.1:8080"));
    }

    #[test]
    fn json_content_types() {
        let json = |ct: &str| is_json(&headers(&[("content-type", ct)]));
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=utf-8"));
        assert!(json("application/merge-patch+json"));
        assert!(!json("text/plain"));
        assert!(!json("application/x-www-form-urlencoded"));
        assert!(!json("multipart/form-data; boundary=x"));
        assert!(!json("application/+json"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn only_state_changing_requests_are_checked() {
        let evil = headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1")]);
        assert!(check(&Method::GET, &evil).is_ok());
        let e = check(&Method::DELETE, &evil).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("evil.example"), "{}", e.message);
        // A POST without a JSON type, from anywhere, is a simple request.
        let plain = headers(&[("content-type", "text/plain")]);
        let e = check(&Method::POST, &plain).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(check(&Method::POST, &HeaderMap::new()).is_err());
        assert!(check(&Method::DELETE, &HeaderMap::new()).is_ok());
        let same = headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json"),
        ]);
        assert!(check(&Method::POST, &same).is_ok());
    }
}
