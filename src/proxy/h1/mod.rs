//! boma's own HTTP/1.1 client for plain `http://` servers, the proxy's common case; the
//! server half of the codec (request heads in, response heads out) is in [`server`].
//!
//! The request's task drives the upstream connection itself: the head is written, the response
//! head read and parsed (`head.rs`: into a map, or as the lines passed on to the client), and the
//! response body is a [`Body`] that reads straight from the server's socket as the client side
//! (boma's own server, or hyper) writes it to the client. No connection task, no dispatch
//! channel, no second task woken per request. When a body ends cleanly on a connection that may
//! be kept, the connection goes back to the worker's [`Pool`]; a body dropped early closes it.
//!
//! Framing follows RFC 9112 §6: HEAD, 1xx, 204 and 304 answers have no body; chunked (decoded
//! here, trailers dropped), then Content-Length (invalid or differing values: a 502), else the
//! body runs to the close. Interim 1xx answers other than 101 are skipped.
//!
//! Only requests without a body come here (`forward::Upstream::send`): a request body goes
//! through hyper-util's client, which keeps sending it while the answer streams back (full
//! duplex) and counts its length. A kept connection that the server closed while idle is
//! replaced for a request that never reached the server, or for a safe method (GET, HEAD,
//! OPTIONS, TRACE), as Go's client does; never more than twice.
//!
//! `https://` and `h2c://` servers keep hyper-util's client (`forward::Upstream`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header;
use http::{Method, Response, StatusCode, request};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

mod body;
mod head;
pub mod server;
pub mod spare;
#[cfg(test)]
mod tests;

pub use body::{Body, Upgraded};
use body::{Chunk, State};
pub use head::Passed;
use head::{
    Framing, Places, ResponseHead, field_places, framing, keeps_alive, parse_head, shared_field,
};

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 128;
/// Read size while the head is awaited (most heads and small bodies fit).
const HEAD_READ: usize = 4096;
/// Request-head buffer kept by a connection between its requests (a larger one is freed).
const KEEP_OUT: usize = 4096;
/// Read size for bodies.
const BODY_READ: usize = 16 * 1024;
/// Longest chunk-size line and trailer section of a chunked body.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Error {
    /// The server could not be reached.
    Connect(String),
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The exchange failed after connecting.
    Io(io::Error),
    /// The server's answer is not HTTP/1 as this client reads it.
    Protocol(&'static str),
    /// The answer's head did not come within the response timeout.
    ResponseTimeout,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "connect: {e}"),
            Error::ConnectTimeout => f.write_str("connect: timed out"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Protocol(what) => write!(f, "bad answer from the server: {what}"),
            Error::ResponseTimeout => f.write_str("no answer within the response timeout"),
        }
    }
}

impl std::error::Error for Error {}

/// One connection to a server, with what was read from it and not yet used. Boxed once when
/// made: it moves between the pool, the request and the response body by a pointer.
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// The request head being written (kept: each request on the connection reuses it).
    out: Vec<u8>,
    /// Served an earlier exchange (a failure before any answer byte may be a close the server
    /// made while it was idle).
    reused: bool,
    idle_since: Instant,
    /// The response timeout, made at the connection's first exchange and reset for each: a
    /// later deadline is one atomic store, where a timer made per request is registered with
    /// the runtime's timer wheel and taken out of it again.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    /// Connect as hyper-util does (its connector: the connect timeout split over the addresses
    /// of a name, IPv6 falling back to IPv4, TCP_NODELAY).
    async fn connect(connector: &HttpConnector, authority: &str) -> Result<Box<Conn>, Error> {
        let uri: http::Uri = format!("http://{authority}/")
            .parse()
            .map_err(|e| Error::Connect(format!("bad server address {authority}: {e}")))?;
        let io = match tower_service::Service::call(&mut connector.clone(), uri).await {
            Ok(io) => io.into_inner(),
            Err(e) if super::forward::io_kind(&e) == Some(io::ErrorKind::TimedOut) => {
                return Err(Error::ConnectTimeout);
            }
            Err(e) => return Err(Error::Connect(super::forward::error_chain(&e))),
        };
        Ok(Box::new(Conn {
            io,
            buf: BytesMut::new(),
            // Most request heads fit: one allocation, not a doubling from a few bytes.
            out: Vec::with_capacity(512),
            reused: false,
            idle_since: Instant::now(),
            timer: None,
        }))
    }

    /// Read what the socket has into `buf` (at least `want` bytes of room); 0 at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        poll_fill(&mut self.io, &mut self.buf, cx, want)
    }

    /// Idle and not closed by the server (no syscall when the reactor saw nothing).
    fn alive(&mut self) -> bool {
        // The room the head read takes anyway (a buffer the worker kept, when it has one).
        if self.buf.capacity() == 0 {
            self.buf = spare::take_buf(HEAD_READ);
        } else {
            self.buf.reserve(HEAD_READ);
        }
        match self.io.try_read_buf(&mut self.buf) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            // End of stream, or bytes nobody asked for: either way not reusable.
            Ok(_) => false,
        }
    }
}

/// One read through `AsyncRead` (whose short reads clear the socket's readiness, so that the
/// next liveness check or read costs no `EAGAIN` syscall) into `buf`'s spare room.
fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
    want: usize,
) -> Poll<io::Result<usize>> {
    buf.reserve(want);
    let read = std::pin::pin!(io.read_buf(buf));
    read.poll(cx)
}

/// Idle connections by server authority. Each is boxed where it is made (see [`Conn`]), so the
/// list holds pointers.
#[allow(clippy::vec_box)]
type Idle = fnv::FnvHashMap<Box<str>, Vec<Box<Conn>>>;

/// A worker's idle connections, by server authority: most recently used first out, at most
/// `per_host` each, none older than `idle_timeout`.
pub struct Pool {
    idle: Mutex<Idle>,
    per_host: usize,
    idle_timeout: Duration,
    connector: HttpConnector,
}

impl Pool {
    /// A pool, and a task on the current runtime that closes expired connections.
    pub fn new(per_host: usize, idle_timeout: Duration, connector: HttpConnector) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            idle: Mutex::default(),
            per_host,
            idle_timeout,
            connector,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, key: &str) -> Option<Box<Conn>> {
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        while let Some(mut conn) = list.pop() {
            if now.duration_since(conn.idle_since) < self.idle_timeout && conn.alive() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, key: &str, mut conn: Box<Conn>) {
        if self.per_host == 0 || !conn.buf.is_empty() {
            return;
        }
        // An idle connection keeps no buffer: the worker keeps it for the next exchange.
        spare::give_buf(std::mem::take(&mut conn.buf));
        conn.reused = true;
        conn.idle_since = Instant::now();
        let mut idle = self.lock();
        let list = match idle.get_mut(key) {
            Some(list) => list,
            None => idle.entry(key.into()).or_default(),
        };
        if list.len() < self.per_host {
            list.push(conn);
        }
    }

    /// Idle connections, in all (for tests and the API).
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

async fn sweep(pool: Weak<Pool>) {
    let period = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(30)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        let mut idle = pool.lock();
        for list in idle.values_mut() {
            list.retain(|c| now.duration_since(c.idle_since) < pool.idle_timeout);
        }
        idle.retain(|_, list| !list.is_empty());
    }
}

/// Where the request goes: the server's authority (the pool key and the connect address) and
/// the path prefix of `preservePath` servers.
pub struct Target<'a> {
    pub authority: &'a http::uri::Authority,
    pub path_prefix: &'a str,
    /// Fields written after the request's own (its forwarded fields, when they were kept
    /// beside it rather than in its map).
    pub extra: &'a [(&'static str, &'a [u8])],
    /// Longest wait for the answer's head once the request is written (none: no limit).
    pub response_timeout: Option<Duration>,
    /// Nothing between the server and the client reads the answer's fields: they are kept as
    /// the lines the client is sent ([`Passed`], taken with [`Body::take_passed`]), not put in
    /// the response's map. (Not for HEAD, whose Content-Length the server side repeats.)
    pub pass_fields: bool,
}

/// Most connections one request goes through: a kept one found closed is replaced at most twice.
const MAX_TRIES: usize = 3;

/// Send `head` (a request without a body) to `target` and read the answer's head.
pub async fn send(
    pool: &Arc<Pool>,
    target: &Target<'_>,
    head: &request::Parts,
) -> Result<Response<Body>, Error> {
    let safe = matches!(
        head.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let mut tries = 0;
    loop {
        tries += 1;
        let mut conn = match pool.take(target.authority.as_str()) {
            Some(conn) => conn,
            None => Conn::connect(&pool.connector, target.authority.as_str()).await?,
        };
        conn.out.clear();
        encode_head(head, target, &mut conn.out);
        let pass = target.pass_fields && head.method != Method::HEAD;
        match timed_exchange(&mut conn, target.response_timeout, pass).await {
            Ok(answer) => return respond(pool, target, head, conn, answer),
            // A kept connection the server had closed while it was idle: replaced when the
            // request cannot have been acted on (not all of it was written) or is safe.
            Err(Failure {
                answered: false,
                written,
                ..
            }) if conn.reused && (safe || !written) && tries < MAX_TRIES => continue,
            Err(failure) => return Err(failure.error),
        }
    }
}

/// The request head as HTTP/1.1 bytes.
fn encode_head(head: &request::Parts, target: &Target<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.path_prefix.as_bytes());
    let pq = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !head.headers.contains_key(header::HOST) {
        // As hyper-util's client: the default port is left out.
        let authority = target.authority.as_str();
        let host = (authority.strip_suffix(":80")).unwrap_or(authority);
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let extra = target.extra.iter().map(|(name, value)| (*name, *value));
    let own = (head.headers.iter()).map(|(name, value)| (name.as_str(), value.as_bytes()));
    for (name, value) in own.chain(extra) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !head.headers.contains_key(header::CONTENT_LENGTH)
        && matches!(head.method, Method::POST | Method::PUT | Method::PATCH)
    {
        // As Go's client (Traefik) does: a server may want a length on these methods.
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

struct Failure {
    error: Error,
    /// The whole request head had been written (the server may have acted on it).
    written: bool,
    /// Some answer bytes had arrived.
    answered: bool,
}

impl Failure {
    fn io(error: io::Error, answered: bool) -> Failure {
        Failure {
            error: Error::Io(error),
            written: true,
            answered,
        }
    }
}

/// [`exchange`] within the response timeout.
async fn timed_exchange(
    conn: &mut Conn,
    limit: Option<Duration>,
    pass: bool,
) -> Result<ResponseHead, Failure> {
    let Some(limit) = limit else {
        return exchange(conn, pass).await;
    };
    let deadline = tokio::time::Instant::now() + limit;
    let mut timer = match conn.timer.take() {
        Some(mut timer) => {
            timer.as_mut().reset(deadline);
            timer
        }
        None => Box::pin(tokio::time::sleep_until(deadline)),
    };
    let answer = tokio::select! {
        biased;
        answer = exchange(conn, pass) => answer,
        () = timer.as_mut() => Err(Failure {
            error: Error::ResponseTimeout,
            written: true,
            answered: true,
        }),
    };
    // The timer keeps the waker it was last polled with, and a waker keeps its task's memory:
    // one that does nothing takes its place while the connection waits in the pool (should the
    // timer fire there, nothing is woken; the next reset registers it again).
    let _ = timer
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()));
    conn.timer = Some(timer);
    answer
}

/// Write the request head and read the answer's (its fields passed on with `pass`).
async fn exchange(conn: &mut Conn, pass: bool) -> Result<ResponseHead, Failure> {
    let Conn { io, buf, out, .. } = conn;
    let written = io.write_all(out).await;
    if out.capacity() > KEEP_OUT {
        // A rare large head: its buffer is not kept with the idle connection.
        *out = Vec::new();
    }
    if let Err(e) = written {
        return Err(Failure {
            written: false,
            ..Failure::io(e, false)
        });
    }
    read_head(io, buf, pass).await
}

/// Read and parse the next final response head, skipping interim (1xx but 101) answers.
async fn read_head(
    io: &mut TcpStream,
    buf: &mut BytesMut,
    pass: bool,
) -> Result<ResponseHead, Failure> {
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            answered = true;
            match parse_head(buf, pass) {
                Ok(Some(head)) if head.status.is_informational() && head.status.as_u16() != 101 => {
                    spare::give(head.headers);
                    continue;
                }
                Ok(Some(head)) => return Ok(head),
                Ok(None) if buf.len() >= MAX_HEAD => {
                    return Err(protocol("response head too large", true));
                }
                Ok(None) => {}
                Err(what) => return Err(protocol(what, true)),
            }
        }
        let n = std::future::poll_fn(|cx| poll_fill(io, buf, cx, HEAD_READ))
            .await
            .map_err(|e| Failure::io(e, answered))?;
        if n == 0 {
            let error = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before an answer",
            );
            return Err(Failure::io(error, answered));
        }
    }
}

fn protocol(what: &'static str, answered: bool) -> Failure {
    Failure {
        error: Error::Protocol(what),
        written: true,
        answered,
    }
}

/// Turn a parsed head into the response handed to the proxy; an answer whose length cannot be
/// known is an error (a 502), never passed on for hyper to refuse mid-response.
fn respond(
    pool: &Arc<Pool>,
    target: &Target<'_>,
    request: &request::Parts,
    conn: Box<Conn>,
    mut head: ResponseHead,
) -> Result<Response<Body>, Error> {
    let state = if head.status == StatusCode::SWITCHING_PROTOCOLS {
        State::Switched
    } else {
        match framing(&request.method, &head).map_err(Error::Protocol)? {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunk(Chunk::Size),
            Framing::Close => State::Close,
        }
    };
    if head.said.transfer_encoding {
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3): the client gets hyper's
        // own framing of the body, never the server's stale length.
        head.headers.remove(header::CONTENT_LENGTH);
    }
    let keep = keeps_alive(&head) && !matches!(state, State::Close | State::Switched);
    let mut body = Body {
        conn: Some(conn),
        state,
        home: keep.then(|| (Arc::clone(pool), target.authority.clone())),
        passed: head.passed,
    };
    if body.state == State::Done {
        body.finish();
    }
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.version_mut() = head.version;
    *response.headers_mut() = head.headers;
    Ok(response)
}
