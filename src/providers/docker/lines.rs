//! The event stream's line splitter: [`LineBuf`] cuts bytes into lines without any I/O (so it
//! is tested on its own), and [`Lines`] feeds it from a response body.
//!
//! A line ends at `\n`, a `\r` before it is dropped, and lines of only whitespace are skipped
//! (the engine sends none, a proxy in front of it might). A line longer than the limit is an
//! error that ends the stream, so a peer sending no newline cannot grow the buffer for ever.

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::error::ApiError;

/// Longest line of the event stream; a longer one ends the stream with an error.
pub const MAX_LINE: usize = 1 << 20;

/// A line longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong(pub usize);

/// Bytes in, lines out.
#[derive(Debug)]
pub struct LineBuf {
    buf: Vec<u8>,
    /// Bytes of `buf` already known to hold no `\n`.
    scanned: usize,
    limit: usize,
}

impl LineBuf {
    /// An empty buffer for lines of at most `limit` bytes (without the line end).
    pub fn new(limit: usize) -> LineBuf {
        LineBuf {
            buf: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Add bytes as they came.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next non-blank complete line, without its line end; `None` until more bytes come;
    /// an error once a line is longer than the limit.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, TooLong>> {
        loop {
            let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                return (self.buf.len() > self.limit).then_some(Err(TooLong(self.limit)));
            };
            let end = self.scanned + at;
            let mut line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
            self.scanned = 0;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > self.limit {
                return Some(Err(TooLong(self.limit)));
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(Ok(line));
            }
        }
    }
}

/// A response body read line by line. [`Lines::next`] is cancel-safe: what was read before a
/// cancelled call is kept for the next one.
pub struct Lines<B = Incoming> {
    body: B,
    buf: LineBuf,
    path: String,
}

impl<B> Lines<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    /// The lines of `body`, the answer to `GET path`.
    pub fn new(body: B, path: &str) -> Lines<B> {
        Lines {
            body,
            buf: LineBuf::new(MAX_LINE),
            path: path.to_string(),
        }
    }

    /// The next non-empty line, an error, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, ApiError>> {
        loop {
            match self.buf.next_line() {
                Some(Ok(line)) => return Some(Ok(line)),
                Some(Err(TooLong(limit))) => {
                    return Some(Err(ApiError::Body {
                        path: self.path.clone(),
                        why: format!("a line longer than {limit} bytes"),
                    }));
                }
                None => {}
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push(&data);
                    }
                }
                Err(e) => return Some(Err(ApiError::Http(e))),
            }
        }
    }
}
