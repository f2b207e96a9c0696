//! A small, read-only Docker Engine API client: HTTP/1.1 `GET`s over the engine's unix socket,
//! plain TCP, or TCP with TLS (rustls, client certificates), on top of the hyper client code the
//! proxy already links. It replaces a general-purpose Docker SDK: boma reads a handful of
//! endpoints and a few fields of each, so this file plus the serde structs of `engine` and
//! `swarm` are all it takes, and the binary stays small enough for a 512 MiB board's budget.
//!
//! Connections: the short calls (version, list, inspect, ping) of one [`Client`] share one
//! kept-alive connection, taken for a call and put back once its answer is read whole; a call
//! made while it is taken (the inspections of a list run side by side) opens another, kept in
//! turn if no connection is kept when it is done and closed otherwise, so at most one idle
//! connection per engine stays open. A kept connection found closed is replaced, and a call that fails on it for a
//! transport reason is tried once more on a fresh one (every call is a `GET`). The event
//! stream ([`Client::lines`]) always has a connection of its own. Every `tcp://` connection
//! has TCP keepalive ([`keepalive`]), so the kernel notices a peer that vanished under the
//! long-lived event stream; a peer that still acknowledges but no longer answers is the
//! watchdog's business (`watch`, with [`Client::ping`]).
//!
//! Every call has a timeout and a body size limit and turns any failure into an [`ApiError`]:
//! an engine that answers garbage is an error, never a panic. There is no method other than
//! `GET` in this file, so boma cannot change an engine.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

pub(super) use super::error::{ApiError, MIN_API};
use super::lines::Lines;
pub use crate::config::docker::{Endpoint, TlsFiles};

/// Time allowed for one API call (for the event stream, only for its response head).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the engine to answer `/_ping`.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read (a list of every container of a busy engine fits easily).
const MAX_BODY: usize = 32 << 20;
/// The newest API boma asks for; a newer engine is spoken to in this version.
pub(super) const MAX_API: (u32, u32) = (1, 45);
/// TCP keepalive of engine connections: first probe after this long without traffic...
pub(super) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// ...then one probe this often...
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and the connection is dead after this many unanswered probes.
pub(super) const KEEPALIVE_PROBES: u32 = 3;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The sending half of one HTTP/1.1 connection to the engine.
type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// How to reach one engine; clones share the kept connection.
#[derive(Clone)]
pub struct Client {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `/v1.41`, or empty before the version is agreed.
    prefix: String,
    /// Negotiated API version, e.g. `1.41`.
    version: String,
    /// The idle connection kept for the next short call.
    idle: Arc<Mutex<Option<Sender>>>,
}

#[derive(Deserialize)]
struct VersionInfo {
    #[serde(rename = "ApiVersion")]
    api_version: String,
}

/// `major.minor`, both plain decimal numbers.
pub(super) fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(major)?, num(minor)?))
}

/// The API version to speak with an engine whose newest is `theirs`: its own, capped at the
/// newest boma knows; an engine older than boma needs is refused.
pub(super) fn negotiate(theirs: &str) -> Result<(u32, u32), ApiError> {
    let version = parse_version(theirs).ok_or_else(|| ApiError::BadVersion(theirs.to_string()))?;
    if version < MIN_API {
        return Err(ApiError::TooOld(theirs.to_string()));
    }
    Ok(version.min(MAX_API))
}

/// Turn on TCP keepalive ([`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_PROBES`]):
/// a connection whose peer vanished without a word then fails about a minute after it fell
/// silent instead of never. A socket that refuses is only logged.
pub(super) fn keepalive(tcp: &TcpStream) {
    let params = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&params) {
        tracing::debug!(error = %e, "docker: cannot set TCP keepalive");
    }
}

impl Client {
    /// Connect to the engine and agree on an API version ([`negotiate`]).
    pub async fn connect(
        endpoint: &Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Client, ApiError> {
        let mut client = Client {
            endpoint: endpoint.clone(),
            tls,
            prefix: String::new(),
            version: String::new(),
            idle: Arc::new(Mutex::new(None)),
        };
        let info: VersionInfo = client.get("/version").await?;
        let (major, minor) = negotiate(&info.api_version)?;
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
                keepalive(&tcp);
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

    /// A new connection; its task ends when the connection closes, or once the sender is
    /// dropped and no response body is being read.
    async fn open(&self) -> Result<Sender, ApiError> {
        let io = self.stream().await?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(tx)
    }

    /// The kept connection if it is still usable (`true`), else a new one (`false`).
    async fn acquire(&self) -> Result<(Sender, bool), ApiError> {
        let kept = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut tx) = kept
            && tx.ready().await.is_ok()
        {
            return Ok((tx, true));
        }
        Ok((self.open().await?, false))
    }

    /// Keep `tx` for the next call, unless another connection is kept already.
    fn release(&self, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let mut slot = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(tx);
        }
    }

    /// The response head of `GET {prefix}{path}` on `tx` (2xx only; anything else is an error
    /// carrying the engine's message, its body read).
    async fn head(
        &self,
        tx: &mut Sender,
        path: &str,
    ) -> Result<hyper::Response<Incoming>, ApiError> {
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
        tx.ready().await?;
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

    /// The whole body of `GET path` on `tx`.
    async fn body(&self, tx: &mut Sender, path: &str) -> Result<Bytes, ApiError> {
        let resp = self.head(tx, path).await?;
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ApiError::Body {
                path: path.to_string(),
                why: e.to_string(),
            })?;
        Ok(body.to_bytes())
    }

    /// The whole body of `GET path`, on the kept connection when there is one, within `limit`.
    pub(super) async fn call(&self, path: &str, limit: Duration) -> Result<Bytes, ApiError> {
        let call = async {
            let (mut tx, kept) = self.acquire().await?;
            let mut result = self.body(&mut tx, path).await;
            if kept && matches!(result, Err(ApiError::Http(_))) {
                // The engine may have closed the kept connection just as it was used.
                tx = self.open().await?;
                result = self.body(&mut tx, path).await;
            }
            // Read whole, the exchange leaves the connection ready for the next call.
            if matches!(result, Ok(_) | Err(ApiError::Status { .. })) {
                self.release(tx);
            }
            result
        };
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| ApiError::Timeout(limit))?
    }

    /// `GET path` and decode its JSON body.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.call(path, CALL_TIMEOUT).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Body {
            path: path.to_string(),
            why: format!("not the JSON expected: {e}"),
        })
    }

    /// `GET /_ping`: the engine answers within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.call("/_ping", PING_TIMEOUT).await.map(drop)
    }

    /// `GET path` as a stream of JSON lines (the event stream), on a connection of its own.
    pub async fn lines(&self, path: &str) -> Result<Lines, ApiError> {
        let head = async {
            let mut tx = self.open().await?;
            self.head(&mut tx, path).await
        };
        let resp = tokio::time::timeout(CALL_TIMEOUT, head)
            .await
            .map_err(|_| ApiError::Timeout(CALL_TIMEOUT))??;
        Ok(Lines::new(resp.into_body(), path))
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
