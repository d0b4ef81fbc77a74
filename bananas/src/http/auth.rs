//! Bearer-token authentication (`BANANAS_API_TOKEN`).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use super::{error::ApiError, ApiState};

/// Paths that answer without a token.
pub(crate) const PUBLIC_PATHS: &[&str] = &["/health"];

/// Whether `header` is `Bearer <token>`, compared in constant time (only
/// the length of the token can leak through timing). The scheme is
/// case-insensitive (RFC 7235 §2.1: `bearer`, `BEARER` and `Bearer` are
/// the same scheme), and any run of spaces may separate it from the token.
pub(crate) fn bearer_matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else { return false };
    const SCHEME: &[u8] = b"bearer";
    let Some((scheme, rest)) = value.split_at_checked(SCHEME.len()) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) || rest.first() != Some(&b' ') {
        return false;
    }
    let given = rest.trim_ascii_start();
    bool::from(given.ct_eq(token.as_bytes()))
}

/// Rejects requests without the right token with 401, except to
/// [`PUBLIC_PATHS`]. Does nothing when no token is configured.
pub(crate) async fn require_token(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token.as_deref() else {
        return next.run(req).await;
    };
    if PUBLIC_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if bearer_matches(header, token) {
        return next.run(req).await;
    }
    let msg = if header.is_none() {
        "missing `Authorization: Bearer <token>` header: this API requires the BANANAS_API_TOKEN"
    } else {
        "invalid API token in the `Authorization` header"
    };
    ApiError::unauthorized(msg).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_compare() {
        assert!(bearer_matches(Some(b"Bearer s3cret"), "s3cret"));
        // RFC 7235: the scheme is case-insensitive.
        assert!(bearer_matches(Some(b"BEARER s3cret"), "s3cret"));
        assert!(bearer_matches(Some(b"bEaReR s3cret"), "s3cret"));
        assert!(bearer_matches(Some(b"bearer  s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearers3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some(b"Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }
}
