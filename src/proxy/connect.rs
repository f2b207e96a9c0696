//! The upstream connector: TCP for `http://` and `h2c://` servers, TCP + TLS (rustls) for
//! `https://` servers, as the static `[serversTransport]` says (`insecureSkipVerify`, `rootCAs`;
//! without `rootCAs`, the host's CA bundle when it has one). The name checked in the server's
//! certificate is the host of the server URL, as in Traefik. HTTP/1.1 is offered over TLS (no
//! ALPN `h2` yet). The TLS configuration is built on the first `https://` connection, so a
//! gateway without https servers never reads a CA bundle or keeps its certificates in memory.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use crate::config::ServersTransport;

/// The TLS side of [`Connector`], made from the settings when first needed and then shared by
/// every worker's connectors.
pub struct UpstreamTls {
    settings: ServersTransport,
    made: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("settings", &self.settings)
            .field("made", &self.made.get().map(|r| r.is_ok()))
            .finish()
    }
}

impl UpstreamTls {
    pub fn new(settings: ServersTransport) -> Arc<UpstreamTls> {
        Arc::new(UpstreamTls {
            settings,
            made: OnceLock::new(),
        })
    }

    fn get(&self) -> Result<tokio_rustls::TlsConnector, String> {
        self.made
            .get_or_init(|| self.settings.tls().map(tokio_rustls::TlsConnector::from))
            .clone()
    }
}

/// Longest TLS handshake with a server (10 s, as Go's default HTTP transport): the TCP connect
/// timeout does not cover it, and a server that accepts and then stays silent must not hold a
/// request.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// TCP, and TLS for `https` URIs.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    tls: Arc<UpstreamTls>,
}

impl Connector {
    pub fn new(mut http: HttpConnector, tls: Arc<UpstreamTls>) -> Connector {
        http.enforce_http(false);
        Connector { http, tls }
    }
}

/// A connection to a server, plain or TLS.
pub enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        let connecting = self.http.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            let tls = tls.get().map_err(io::Error::other)?;
            let name = ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let handshake = tls.connect(name, tcp.into_inner());
            let tls = tokio::time::timeout(HANDSHAKE, handshake)
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(Stream::Tls(Box::new(TokioIo::new(tls))))
        })
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(s) => s.connected(),
            Stream::Tls(s) => s.inner().get_ref().0.connected(),
        }
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}
