//! A small, read-only Docker Engine API client: HTTP/1.1 `GET`s over the engine's unix socket,
//! plain TCP, or TCP with TLS (rustls, client certificates), on top of the hyper client code the
//! proxy already links. It replaces a general-purpose Docker SDK: boma reads a handful of
//! endpoints and a few fields of each, so this file plus the serde structs of `engine` and
//! `swarm` are all it takes, and the binary stays small enough for a 512 MiB board's budget.
//!
//! Every call opens its own connection (cheap on the socket; a remote engine sees a few calls a
//! minute), has a timeout and a body size limit, and turns any failure into an [`ApiError`]:
//! an engine that answers garbage is an error, never a panic. There is no method other than
//! `GET` in this file, so boma cannot change an engine.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

pub use crate::config::docker::{Endpoint, TlsFiles};

/// Time allowed for one API call (for the event stream, only for its response head).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (a list of every container of a busy engine fits easily).
const MAX_BODY: usize = 32 << 20;
/// Longest line of the event stream; a longer one ends the stream with an error.
const MAX_LINE: usize = 1 << 20;
/// The oldest API boma reads (Docker 1.12); every field used exists since.
const MIN_API: (u32, u32) = (1, 24);
/// The newest API boma asks for; a newer engine is spoken to in this version.
const MAX_API: (u32, u32) = (1, 45);

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
}

impl ApiError {
    /// The engine answered 404 (the object is gone).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How to reach one engine; cheap to clone.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `/v1.41`, or empty before the version is agreed.
    prefix: String,
    /// Negotiated API version, e.g. `1.41`.
    version: String,
}

#[derive(Deserialize)]
struct VersionInfo {
    #[serde(rename = "ApiVersion")]
    api_version: String,
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Client {
    /// Connect to the engine and agree on an API version: the engine's own, capped at the
    /// newest boma knows.
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Client, ApiError> {
        let mut client = Client {
            endpoint: endpoint.clone(),
            tls,
            prefix: String::new(),
            version: String::new(),
        };
        let info: VersionInfo = client.get("/version").await?;
        let theirs = parse_version(&info.api_version)
            .ok_or_else(|| ApiError::TooOld(info.api_version.clone()))?;
        if theirs < MIN_API {
            return Err(ApiError::TooOld(info.api_version));
        }
        let (major, minor) = theirs.min(MAX_API);
        client.version = format!("{major}.{minor}");
        client.prefix = format!("/v{}", client.version);
        Ok(client)
    }

    /// The API version in use.
    pub fn version(&self) -> &str {
        &self.version
    }

    async fn stream(&self) -> Result<Box<dyn Io>, ApiError> {
        match &self.endpoint {
            Endpoint::Unix(path) => Ok(Box::new(
                UnixStream::connect(path).await.map_err(ApiError::Connect)?,
            )),
            Endpoint::Tcp { host, port } => {
                let tcp = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(ApiError::Connect)?;
                let _ = tcp.set_nodelay(true);
                let Some(config) = &self.tls else {
                    return Ok(Box::new(tcp));
                };
                let name = ServerName::try_from(host.clone()).map_err(|e| {
                    ApiError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(ApiError::Tls)?;
                Ok(Box::new(tls))
            }
        }
    }

    /// The response head of `GET {prefix}{path}` (2xx only; anything else is an error carrying
    /// the engine's message).
    async fn send(&self, path: &str) -> Result<hyper::Response<Incoming>, ApiError> {
        let io = self.stream().await?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        // The connection task ends with the exchange (or when the response body is dropped).
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "docker".to_string(),
            Endpoint::Tcp { .. } => self.endpoint.to_string()["tcp://".len()..].to_string(),
        };
        let uri = format!("{}{path}", self.prefix);
        let req = Request::get(uri.as_str())
            .header(header::HOST, host)
            .header(
                header::USER_AGENT,
                concat!("boma/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::Body {
                path: uri.clone(),
                why: e.to_string(),
            })?;
        let resp = tx.send_request(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = Limited::new(resp.into_body(), 64 << 10).collect().await;
        let text = body.map(|b| b.to_bytes()).unwrap_or_default();
        #[derive(Deserialize)]
        struct Message {
            message: String,
        }
        let message = serde_json::from_slice::<Message>(&text)
            .map(|m| m.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&text).trim().to_string());
        Err(ApiError::Status {
            path: uri,
            status,
            message,
        })
    }

    /// `GET path` and decode its JSON body.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let call = async {
            let resp = self.send(path).await?;
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| ApiError::Body {
                    path: path.to_string(),
                    why: e.to_string(),
                })?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| ApiError::Body {
                path: path.to_string(),
                why: format!("not the JSON expected: {e}"),
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| ApiError::Timeout(CALL_TIMEOUT))?
    }

    /// `GET path` as a stream of JSON lines (the event stream).
    pub async fn lines(&self, path: &str) -> Result<Lines, ApiError> {
        let resp = tokio::time::timeout(CALL_TIMEOUT, self.send(path))
            .await
            .map_err(|_| ApiError::Timeout(CALL_TIMEOUT))??;
        Ok(Lines {
            body: resp.into_body(),
            buf: Vec::new(),
            path: path.to_string(),
        })
    }
}

/// A response body read line by line. [`Lines::next`] is cancel-safe: what was read before a
/// cancelled call is kept for the next one.
pub struct Lines {
    body: Incoming,
    buf: Vec<u8>,
    path: String,
}

impl Lines {
    /// The next non-empty line, an error, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, ApiError>> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(line));
            }
            if self.buf.len() > MAX_LINE {
                return Some(Err(ApiError::Body {
                    path: self.path.clone(),
                    why: format!("a line longer than {MAX_LINE} bytes"),
                }));
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Err(e) => return Some(Err(ApiError::Http(e))),
            }
        }
    }
}

/// Percent-encode a query parameter value.
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
