//! The upstream connector: TCP for `http://` and `h2c://` servers, TCP + TLS (rustls) for
//! `https://` servers, as the static `[serversTransport]` says (`insecureSkipVerify`, `rootCAs`;
//! without `rootCAs`, the host's CA bundle when it has one). The name checked in the server's
//! certificate is the host of the server URL, as in Traefik. HTTP/1.1 is offered over TLS (no
//! ALPN `h2` yet). The TLS configuration is built on the first `https://` connection, so a
//! gateway without https servers never reads a CA bundle or keeps its certificates in memory.

use std::future::Future;
use std::io;
use std::path::PathBuf;
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

/// Where the host keeps its CA bundle (Debian's ca-certificates), used without `rootCAs`.
const HOST_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS towards `https://` servers, from the static `[serversTransport]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServersTransport {
    /// Accept any server certificate (self-signed containers). Signatures are still checked.
    #[serde(rename = "insecureSkipVerify", default)]
    pub insecure_skip_verify: bool,
    /// PEM files of the CAs that sign the servers' certificates (instead of the host's bundle).
    #[serde(rename = "rootCAs", default)]
    pub root_cas: Vec<PathBuf>,
}

impl ServersTransport {
    /// The rustls client configuration, or why it cannot be made (a CA file that does not
    /// read).
    pub fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let roots = if self.insecure_skip_verify {
            None
        } else if self.root_cas.is_empty() {
            // No bundle (the image has none): every certificate fails to verify, with a clear
            // error per request, until rootCAs or insecureSkipVerify is set.
            std::path::Path::new(HOST_BUNDLE)
                .exists()
                .then(|| vec![PathBuf::from(HOST_BUNDLE)])
                .or(Some(Vec::new()))
        } else {
            Some(self.root_cas.clone())
        };
        crate::tlsclient::config(roots.as_deref(), None).map(Arc::new)
    }
}

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
            let tls = tls.connect(name, tcp.into_inner()).await?;
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
