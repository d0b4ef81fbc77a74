//! Extractors whose rejections are JSON [`ApiError`]s, so axum's plain-text
//! rejections never reach a client.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, FromRequest, FromRequestParts, Path, Request},
    http::{request::Parts, StatusCode},
};

use super::{
    cross_site::{is_json, not_json},
    error::ApiError,
};

/// A JSON request body, unparsed: the caller parses it, so it can keep
/// parts of it as the client wrote them (a job's payload) and check the
/// rest field by field, each error naming the field.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(not_json(req.headers()));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is empty: expected a JSON object",
            ));
        }
        Ok(JsonBody(bytes))
    }
}

fn bytes_rejection(r: BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than the server's limit (BANANAS_HTTP_BODY_LIMIT)",
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {}", r.body_text()),
        )
    }
}

/// The `{id}` segment of a path.
#[derive(Debug)]
pub(crate) struct IdPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!("invalid job id in the path: {}", e.body_text()))
            })?;
        if id.is_empty() || id.len() > 256 {
            return Err(ApiError::bad_request(
                "invalid job id in the path: expected 1 to 256 characters",
            ));
        }
        Ok(IdPath(id))
    }
}

/// The `{route}` segment of a path: a valid route name.
#[derive(Debug)]
pub(crate) struct RoutePath(pub(crate) crate::job::Route);

impl<S: Send + Sync> FromRequestParts<S> for RoutePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!("invalid route in the path: {}", e.body_text()))
            })?;
        crate::job::Route::new(name.as_str())
            .map(RoutePath)
            .map_err(|e| ApiError::bad_request(format!("invalid route in the path: {e}")))
    }
}

/// A query string's parameters, percent-decoded: each at most once, and
/// only those in `allowed` (anything else is a 400 naming it).
pub(crate) fn query_params(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{}`: expected one of {}",
                k.escape_debug(),
                allowed.join(", ")
            )));
        }
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(ApiError::bad_request(format!(
                "query parameter `{k}` given twice"
            )));
        }
    }
    Ok(out)
}

/// Reads `limit` from a query string like `limit=50`.
pub(crate) fn query_limit(
    query: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let mut limit = default;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "query parameter `limit`=`{v}`: expected an integer from 1 to {max}"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`: expected `limit`"
                )))
            }
        }
    }
    Ok(limit)
}
