//! The response body of boma's HTTP/1 client: read from the server's socket as hyper writes it
//! to the client (Content-Length, chunked or to the close), the connection handed back to the
//! pool at a clean end; and the server's side of an upgraded connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{BODY_READ, Conn, MAX_CHUNK_LINE, MAX_TRAILERS, Passed, Pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// Bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields up to the empty line (counted bytes so far).
    Trailers(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Length(u64),
    Chunk(Chunk),
    Close,
    /// A 101: the connection is the upgraded stream, taken with [`Body::take_upgraded`].
    Switched,
    Done,
}

/// A response body read from the server's connection as the client takes it.
pub struct Body {
    pub(super) conn: Option<Box<Conn>>,
    pub(super) state: State,
    /// Where the connection goes back when the body has ended cleanly.
    pub(super) home: Option<(Arc<Pool>, http::uri::Authority)>,
    /// The answer's fields, when they are passed on as lines (see [`super::Target`]).
    pub(super) passed: Option<Passed>,
}

impl Body {
    /// The end: the connection back to its pool (when it may be kept), else closed.
    pub(super) fn finish(&mut self) {
        self.state = State::Done;
        if let (Some(conn), Some((pool, key))) = (self.conn.take(), self.home.take()) {
            pool.put(key.as_str(), conn);
        }
    }

    /// The answer's fields as the lines to send, when they were passed on (once).
    pub fn take_passed(&mut self) -> Option<Passed> {
        self.passed.take()
    }

    /// After a 101: the server's side of the upgraded connection (once).
    pub fn take_upgraded(&mut self) -> Option<Upgraded> {
        if self.state != State::Switched {
            return None;
        }
        self.state = State::Done;
        let conn = *self.conn.take()?;
        Some(Upgraded {
            io: conn.io,
            early: conn.buf.freeze(),
        })
    }

    /// The body cannot go on: its connection is closed.
    fn fail(&mut self, what: &'static str) -> Step {
        self.fail_with(io::Error::new(io::ErrorKind::InvalidData, what))
    }

    fn fail_with(&mut self, error: io::Error) -> Step {
        self.state = State::Done;
        self.conn = None;
        self.home = None;
        Step::Out(Poll::Ready(Some(Err(error))))
    }

    /// Poll for more bytes; `Ok(false)` at end of stream.
    fn poll_more(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<bool>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        let n = ready!(conn.poll_fill(cx, want))?;
        Poll::Ready(Ok(n > 0))
    }

    /// Up to `limit` buffered bytes as a frame.
    fn data(&mut self, limit: u64) -> Bytes {
        let conn = self
            .conn
            .as_mut()
            .expect("a body with data has its connection");
        let n = conn
            .buf
            .len()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        conn.buf.split_to(n).freeze()
    }

    fn buffered(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.buf.len())
    }

    /// One line (through its LF) from the buffer, without the line end; `None` if incomplete.
    fn line(&mut self) -> Option<Bytes> {
        let conn = self.conn.as_mut()?;
        let end = conn.buf.iter().position(|b| *b == b'\n')?;
        let mut line = conn.buf.split_to(end + 1);
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.truncate(end - 1);
        }
        Some(line.freeze())
    }

    /// One step of the chunked decoder.
    fn step_chunked(&mut self, cx: &mut Context<'_>, chunk: Chunk) -> Step {
        match chunk {
            Chunk::Size => match self.line() {
                Some(line) if line.len() > MAX_CHUNK_LINE => self.fail("chunk line too long"),
                Some(line) => {
                    let Some(size) = chunk_size(&line) else {
                        return self.fail("bad chunk size");
                    };
                    self.state = State::Chunk(if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    });
                    Step::Again
                }
                None if self.buffered() > MAX_CHUNK_LINE => self.fail("chunk line too long"),
                None => self.more(cx, MAX_CHUNK_LINE),
            },
            Chunk::Data(left) => {
                if self.buffered() == 0 {
                    return self.more(cx, BODY_READ);
                }
                let data = self.data(left);
                let left = left - data.len() as u64;
                self.state = State::Chunk(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                Step::Out(Poll::Ready(Some(Ok(Frame::data(data)))))
            }
            Chunk::DataEnd => match self.line() {
                Some(line) if line.is_empty() => {
                    self.state = State::Chunk(Chunk::Size);
                    Step::Again
                }
                Some(_) => self.fail("no line end after a chunk"),
                None if self.buffered() > 2 => self.fail("no line end after a chunk"),
                None => self.more(cx, 2),
            },
            Chunk::Trailers(seen) => match self.line() {
                Some(line) if line.is_empty() => {
                    self.finish();
                    Step::Out(Poll::Ready(None))
                }
                Some(line) if seen + line.len() > MAX_TRAILERS => self.fail("trailers too large"),
                Some(line) => {
                    self.state = State::Chunk(Chunk::Trailers(seen + line.len() + 2));
                    Step::Again
                }
                None if self.buffered() > MAX_TRAILERS => self.fail("trailers too large"),
                None => self.more(cx, MAX_CHUNK_LINE),
            },
        }
    }

    /// Wait for more bytes; a close here is a truncated body.
    fn more(&mut self, cx: &mut Context<'_>, want: usize) -> Step {
        match self.poll_more(cx, want) {
            Poll::Pending => Step::Out(Poll::Pending),
            Poll::Ready(Ok(true)) => Step::Again,
            Poll::Ready(Ok(false)) => self.fail("connection closed in the body"),
            Poll::Ready(Err(e)) => self.fail_with(e),
        }
    }

    /// One step of a body that runs to the close.
    fn step_close(&mut self, cx: &mut Context<'_>) -> Step {
        if self.buffered() > 0 {
            return Step::Out(Poll::Ready(Some(Ok(Frame::data(self.data(u64::MAX))))));
        }
        match self.poll_more(cx, BODY_READ) {
            Poll::Pending => Step::Out(Poll::Pending),
            Poll::Ready(Ok(true)) => Step::Again,
            Poll::Ready(Ok(false)) => {
                self.finish();
                Step::Out(Poll::Ready(None))
            }
            Poll::Ready(Err(e)) => self.fail_with(e),
        }
    }

    /// One step of a body of known length.
    fn step_length(&mut self, cx: &mut Context<'_>, left: u64) -> Step {
        if self.buffered() == 0 {
            return self.more(cx, BODY_READ);
        }
        let data = self.data(left);
        let left = left - data.len() as u64;
        self.state = State::Length(left);
        if left == 0 {
            self.finish();
        }
        Step::Out(Poll::Ready(Some(Ok(Frame::data(data)))))
    }
}

/// What a step of the body's state machine came to.
enum Step {
    /// The state moved on without the socket: take the next step.
    Again,
    Out(Poll<Option<Result<Frame<Bytes>, io::Error>>>),
}

/// The size of a chunk-size line (extensions ignored).
pub(super) fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|b| *b == b';').next()?.trim_ascii_end();
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let step = match this.state {
                State::Done | State::Switched => return Poll::Ready(None),
                State::Length(left) => this.step_length(cx, left),
                State::Chunk(chunk) => this.step_chunked(cx, chunk),
                State::Close => this.step_close(cx),
            };
            if let Step::Out(poll) = step {
                return poll;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Switched)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done | State::Switched => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// The server's side of an upgraded (101) connection: the bytes it sent after its head, then
/// the socket.
pub struct Upgraded {
    io: TcpStream,
    early: Bytes,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(out.remaining());
            out.put_slice(&this.early.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, out)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
