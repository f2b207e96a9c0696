//! boma's own HTTP/1.1 server, for the request most connections carry: HTTP/1.1 without a
//! body, an upgrade or an expectation. It reads heads into one small buffer, answers through
//! [`Proxy::handle_parts`] and writes each answer with as few writes as the body allows (the
//! head and a body that is ready go out together).
//!
//! Everything else (a request body, `Upgrade`, `Expect`, HTTP/1.0, the h2 preface, a head hyper
//! would refuse) hands the connection to hyper with the bytes read so far put back in front
//! ([`Rewind`]), and hyper serves it from there to its end. The rules hyper applies are kept
//! here: the header-read timeout runs from when a head is awaited, a client that goes away
//! while its request is being answered cancels it, a draining or idle connection ends between
//! requests, and an answer the connection ends after says `connection: close`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Response, request};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::activity::IdleWatch;
use crate::proxy::body::Body;
use crate::proxy::h1::server::{self, BodyLen, Encoded, Framing, Parsed};
use crate::proxy::h1::spare;
use crate::proxy::{Conn, EntryPoint, Proxy};

/// Room made in the read buffer before a read when it has less than [`MIN_ROOM`] (most
/// request heads fit).
const READ: usize = 4096;
const MIN_ROOM: usize = 1024;
/// Answer bytes gathered before they are written; larger body frames are written directly.
const GATHER: usize = 8192;
/// A far deadline for timers not running.
const FAR: Duration = Duration::from_secs(86400 * 365);

/// One connection's part of what serving it takes.
pub(super) struct Session<'a> {
    pub proxy: &'a Proxy,
    pub ep: &'a Arc<EntryPoint>,
    pub conn: &'a Conn,
    /// From when a head is awaited to when it is whole (hyper's `header_read_timeout`).
    pub head_timeout: Duration,
    /// A head not whole in this many bytes goes to hyper (which answers 431).
    pub max_head: usize,
    pub idle: IdleWatch,
    pub stop: &'a mut watch::Receiver<bool>,
}

/// How waiting for a head ended.
// Made once per request and moved straight out: boxing the head would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// The head; whether the client asked to close; whether it accepts trailers.
    Request(request::Parts, bool, bool),
    Handover,
    Closed,
}

/// Serve requests until the connection ends (`None`) or one is for hyper: then the connection,
/// with what was read of it and not yet served put back in front.
pub(super) async fn serve<I>(mut io: I, mut s: Session<'_>) -> Option<Rewind<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let timers = Timers {
        head: tokio::time::sleep(FAR),
        idle: tokio::time::sleep(s.idle.period().unwrap_or(FAR)),
    };
    tokio::pin!(timers);
    let mut closing = *s.stop.borrow();
    loop {
        let (parts, asked_close, trailers) =
            match next_head(&mut io, &mut buf, &mut s, timers.as_mut(), &mut closing).await {
                Next::Request(parts, close, trailers) => (parts, close, trailers),
                Next::Handover => return Some(Rewind::new(io, buf.freeze())),
                Next::Closed => {
                    spare::give_buf(std::mem::take(&mut buf));
                    return None;
                }
            };
        let head = parts.method == Method::HEAD;
        // Boxed: the request's future is kilobytes that an idle connection's task would
        // otherwise carry between requests (copied at most once, into the box).
        let mut answering = Box::pin(s.proxy.handle_parts(s.ep, s.conn, parts, None, true));
        let resp = answer(&mut io, &mut buf, answering.as_mut()).await?;
        drop(answering);
        let close = asked_close || closing || *s.stop.borrow();
        let how = Answering {
            head,
            close,
            trailers,
        };
        match write(&mut io, &mut buf, &mut out, resp, how).await {
            Ok(false) => {}
            Ok(true) => {
                let _ = io.shutdown().await;
                return None;
            }
            Err(e) => {
                tracing::debug!(peer = %s.conn.peer, error = %e, "answer not written");
                return None;
            }
        }
        if out.capacity() > 4 * GATHER {
            out = Vec::new();
        }
    }
}

pin_project_lite::pin_project! {
    /// The connection's two timers, made once and moved as needed (no timer per request).
    struct Timers {
        #[pin]
        head: Sleep,
        #[pin]
        idle: Sleep,
    }
}

/// Read until a whole head is in `buf`, the connection is for hyper, or it ends: closed,
/// silent for the header-read timeout, or idle or draining with no request begun.
async fn next_head<I>(
    io: &mut I,
    buf: &mut BytesMut,
    s: &mut Session<'_>,
    timers: Pin<&mut Timers>,
    closing: &mut bool,
) -> Next
where
    I: AsyncRead + Unpin,
{
    let mut timers = timers.project();
    let mut waiting = false;
    // Bytes of `buf` known to hold no end of head: each byte is looked at once.
    let mut checked = 0;
    loop {
        if !buf.is_empty() {
            match server::head_end(buf, checked) {
                // Too large (whole or not): hyper answers 431.
                None if buf.len() >= s.max_head => return Next::Handover,
                Some(end) if end > s.max_head => return Next::Handover,
                None => checked = buf.len(),
                Some(_) => match server::parse_request(buf) {
                    Parsed::Request {
                        parts,
                        close,
                        trailers,
                    } => return Next::Request(parts, close, trailers),
                    Parsed::Handover => return Next::Handover,
                    // Only blank lines before a request not whole yet.
                    Parsed::Partial => checked = buf.len(),
                },
            }
        }
        if !waiting {
            timers.head.as_mut().reset(Instant::now() + s.head_timeout);
            waiting = true;
        }
        tokio::select! {
            biased;
            read = read_lent(io, buf) => match read {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            },
            () = timers.head.as_mut() => {
                tracing::debug!(peer = %s.conn.peer, "request head not read in time");
                return Next::Closed;
            }
            changed = s.stop.changed(), if !*closing => {
                if changed.is_err() || *s.stop.borrow() {
                    *closing = true;
                }
            }
            () = timers.idle.as_mut(), if !*closing && s.idle.period().is_some() => {
                *closing = s.idle.quiet();
                let period = s.idle.period().unwrap_or(FAR);
                timers.idle.as_mut().reset(Instant::now() + period);
            }
        }
        // Draining or idle: ended here unless a request has begun (it is answered first).
        if *closing && buf.is_empty() {
            return Next::Closed;
        }
    }
}

/// The answer to the request being handled; `None` when the client closed the connection
/// before it was ready (the request is dropped, as hyper does). Bytes the client sends meanwhile
/// (a pipelined request) wait in `buf`.
async fn answer<I, F>(
    io: &mut I,
    buf: &mut BytesMut,
    mut answering: Pin<&mut F>,
) -> Option<Response<Body>>
where
    I: AsyncRead + Unpin,
    F: Future<Output = Response<Body>>,
{
    loop {
        if !buf.is_empty() {
            return Some(answering.await);
        }
        room(buf);
        tokio::select! {
            biased;
            resp = &mut answering => return Some(resp),
            read = io.read_buf(buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
        }
    }
}

/// Read into `buf` as `read_buf` does, but while nothing has arrived an empty buffer waits in
/// the thread's spare list instead of with the connection: an idle keep-alive connection holds
/// no buffer, and a busy one takes a kept buffer back instead of allocating one.
async fn read_lent<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        if buf.capacity() == 0 {
            *buf = spare::take_buf(READ);
        }
        room(buf);
        let read = std::pin::pin!(io.read_buf(&mut *buf)).poll(cx);
        if read.is_pending() && buf.is_empty() {
            spare::give_buf(std::mem::take(buf));
        }
        read
    })
    .await
}

/// Room for a read. Made only when little is left: the head just parsed shares the buffer's
/// memory until its request is done, so reserving then would allocate a new buffer each time.
fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_ROOM {
        buf.reserve(READ);
    }
}

/// What the answer is to: a HEAD request, one after which the connection ends, one whose client
/// accepts trailers.
struct Answering {
    head: bool,
    close: bool,
    trailers: bool,
}

/// The connection while an answer is written: written to, and watched for the client going
/// away (what it sends meanwhile waits in `buf`).
struct Out<'a, I> {
    io: &'a mut I,
    buf: &'a mut BytesMut,
    out: &'a mut Vec<u8>,
}

/// Write one answer; true when the connection ends after it.
async fn write<I>(
    io: &mut I,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    resp: Response<Body>,
    how: Answering,
) -> io::Result<bool>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = resp.into_parts();
    let passed = body.take_passed();
    let len = if body.is_end_stream() {
        BodyLen::Empty
    } else {
        body.size_hint()
            .exact()
            .map_or(BodyLen::Unknown, BodyLen::Known)
    };
    out.clear();
    let answer = server::Answer { parts, passed };
    let Encoded { framing, close } = server::encode_response(out, answer, how.head, len, how.close)
        .map_err(|e| io::Error::other(e.0))?;
    let mut c = Out { io, buf, out };
    match framing {
        Framing::Length(0) => {}
        Framing::Length(n) => write_length(&mut c, &mut body, n).await?,
        Framing::Chunked(allowed) => {
            // Trailer fields go only to a client that said it takes them (`TE: trailers`).
            let allowed = if how.trailers { allowed } else { Vec::new() };
            write_chunked(&mut c, &mut body, &allowed).await?;
        }
    }
    let Out { io, out, .. } = c;
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.flush().await?;
    Ok(close)
}

/// A body of `n` bytes: fewer is an error (the connection ends, as with hyper); more are cut
/// at `n`, as hyper does.
async fn write_length<I>(c: &mut Out<'_, I>, body: &mut Body, n: u64) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let short = || io::Error::other("body shorter than its content-length");
    let mut left = n;
    while left > 0 {
        // Trailers end the body; they have no place in a body of known length.
        let frame = next_frame(c, body).await?.ok_or_else(short)?;
        let Ok(mut data) = frame.into_data() else {
            return Err(short());
        };
        if data.len() as u64 > left {
            data.truncate(left as usize);
        }
        left -= data.len() as u64;
        put(c, data).await?;
        if left > 0 && body.is_end_stream() {
            return Err(short());
        }
    }
    Ok(())
}

/// A chunked body, ended by the last chunk and the trailer fields allowed.
async fn write_chunked<I>(
    c: &mut Out<'_, I>,
    body: &mut Body,
    allowed: &[http::HeaderName],
) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let Some(frame) = next_frame(c, body).await? else {
            server::chunked_end(c.out, None, allowed);
            return Ok(());
        };
        match frame.into_data() {
            Ok(data) => {
                if !data.is_empty() {
                    server::chunk_line(c.out, data.len());
                    put(c, data).await?;
                    c.out.extend_from_slice(b"\r\n");
                }
                if body.is_end_stream() {
                    server::chunked_end(c.out, None, allowed);
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    server::chunked_end(c.out, Some(&trailers), allowed);
                    return Ok(());
                }
            }
        }
    }
}

/// The body's next frame. When it is not ready, what `out` holds is written first (the head
/// goes out at once for an answer whose body is slow to come, as with hyper), and while it is
/// awaited a client that closes the connection ends the answer (hyper notices that too).
async fn next_frame<I>(c: &mut Out<'_, I>, body: &mut Body) -> io::Result<Option<Frame<Bytes>>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let now = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
    let frame = match now {
        Poll::Ready(frame) => frame,
        Poll::Pending => {
            if !c.out.is_empty() {
                c.io.write_all(c.out).await?;
                c.out.clear();
            }
            c.io.flush().await?;
            loop {
                if !c.buf.is_empty() {
                    break body.frame().await;
                }
                room(c.buf);
                tokio::select! {
                    biased;
                    frame = body.frame() => break frame,
                    read = c.io.read_buf(c.buf) => match read {
                        Ok(0) => return Err(io::ErrorKind::ConnectionAborted.into()),
                        Err(e) => return Err(e),
                        Ok(_) => {}
                    },
                }
            }
        }
    };
    frame.transpose().map_err(io::Error::other)
}

/// Body bytes: gathered with what precedes them when small, written directly when large.
async fn put<I>(c: &mut Out<'_, I>, data: Bytes) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    if data.len() < GATHER {
        c.out.extend_from_slice(&data);
        if c.out.len() >= GATHER {
            c.io.write_all(c.out).await?;
            c.out.clear();
        }
        return Ok(());
    }
    if !c.out.is_empty() {
        c.io.write_all(c.out).await?;
        c.out.clear();
    }
    c.io.write_all(&data).await
}

/// A connection with bytes already read from it put back in front, for hyper.
pub(super) struct Rewind<I> {
    pre: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    pub(super) fn new(inner: I, pre: Bytes) -> Self {
        Rewind { pre, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pre.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.pre.len().min(buf.remaining());
        buf.put_slice(&this.pre[..n]);
        this.pre.advance(n);
        if this.pre.is_empty() {
            // The read buffer it came from is freed, not kept for the connection's life.
            this.pre = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
