//! The API's error responses: a status and a JSON body `{"error": "…"}`.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use crate::{error::BrokerError, Error};

/// An error answer: its status and the message that names the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message, sent as `{"error": message}`.
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request itself is invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such job (or route).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422: well-formed, but it does not match the app's tasks.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 401: a missing or wrong token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

/// The status that answers `e`: one per variant.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::UnknownTask(_) | Error::InvalidArgs { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Invalid(_) | Error::Serde(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::NotLeased { .. } => StatusCode::CONFLICT,
        Error::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Broker(b) => match b {
            BrokerError::Unavailable { .. } | BrokerError::Backend { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Setting { .. }
        | Error::Listen { .. }
        | Error::Serve { .. }
        | Error::Crashed { .. }
        | Error::NoApp
        | Error::DuplicateTask { .. }
        | Error::JobFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        Error::from(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        if status.is_server_error() {
            // `?` on the message: it can hold what a client sent (an id, a
            // name) or what the broker stored; Debug escapes line breaks.
            tracing::warn!(error = ?e.to_string(), "HTTP API request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
