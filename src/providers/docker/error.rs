//! What an Engine API call can fail with, shared by the client and the event-line reader.

use std::time::Duration;

use http::StatusCode;

/// The oldest API boma reads (Docker 1.12); every field used exists since.
pub const MIN_API: (u32, u32) = (1, 24);
/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("GET {path}: the engine answered {status}: {message}")]
    Status {
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("GET {path}: {why}")]
    Body { path: String, why: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the engine speaks API {0}; boma needs at least {maj}.{min}", maj = MIN_API.0, min = MIN_API.1)]
    TooOld(String),
    #[error("the engine reports API version `{0}`, which is not a version")]
    BadVersion(String),
}

impl ApiError {
    /// The engine answered 404 (the object is gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}
