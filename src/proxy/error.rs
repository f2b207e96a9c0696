//! Why a request could not be proxied, and the one place where each reason becomes a status code
//! and a body (the same texts Traefik sends, so clients and scripts see no difference).

use bytes::Bytes;
use http::{Response, StatusCode};

/// A failure on the request path, classified by where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No router matched (downstream).
    #[error("no route")]
    NoRoute,
    /// The router's service has no available server (internal).
    #[error("no available server")]
    NoServer,
    /// The upstream could not be reached or broke before answering (upstream).
    #[error("upstream: {0}")]
    Upstream(String),
    /// The upstream did not connect or answer in time (upstream).
    #[error("upstream timeout: {0}")]
    Timeout(String),
    /// The client went away before the answer (downstream).
    #[error("client closed the request")]
    ClientGone,
    /// A TLS request for a host whose TLS options differ from its connection's (downstream).
    #[error("misdirected request")]
    Misdirected,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoServer => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            // nginx's and Traefik's "client closed request"
            ProxyError::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// The response sent to the client for this error.
    pub fn response(&self) -> Response<Bytes> {
        let status = self.status();
        let body: &'static str = match self {
            ProxyError::NoRoute => "404 page not found\n",
            _ => status.canonical_reason().unwrap_or("error"),
        };
        plain(status, body)
    }
}

/// A small text/plain response.
pub fn plain(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from_static(body.as_bytes()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    resp
}
