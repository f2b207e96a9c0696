//! Activity on a connection, counted rather than timed: a socket wrapper that bumps a counter
//! on every read or write that moves bytes, and the idle watch that calls a connection idle when
//! the counter stood still for a whole period.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The idle timeout as a tick: a connection is idle when no read or write moved a byte during
/// one whole period (so a busy connection costs one atomic add per I/O, no clock read).
pub(super) struct IdleWatch {
    period: Option<Duration>,
    moved: Arc<AtomicU64>,
    seen: u64,
}

impl IdleWatch {
    /// `period` zero: never idle.
    pub(super) fn new(period: Duration, moved: &Arc<AtomicU64>) -> Self {
        IdleWatch {
            period: (!period.is_zero()).then_some(period),
            moved: Arc::clone(moved),
            seen: moved.load(Ordering::Relaxed),
        }
    }

    pub(super) fn period(&self) -> Option<Duration> {
        self.period
    }

    pub(super) async fn tick(&self) {
        match self.period {
            Some(p) => tokio::time::sleep(p).await,
            None => std::future::pending().await,
        }
    }

    /// Nothing moved since the previous call (or since creation).
    pub(super) fn quiet(&mut self) -> bool {
        let now = self.moved.load(Ordering::Relaxed);
        let quiet = now == self.seen;
        self.seen = now;
        quiet
    }
}

pin_project_lite::pin_project! {
    /// A socket that counts the reads and writes that moved bytes (for the idle timeout).
    pub(super) struct Activity {
        #[pin]
        pub(super) inner: TcpStream,
        pub(super) moved: Arc<AtomicU64>,
    }
}

impl Activity {
    fn touch(moved: &AtomicU64) {
        moved.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            Activity::touch(this.moved);
        }
        res
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res
            && *n > 0
        {
            Activity::touch(this.moved);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &res
            && *n > 0
        {
            Activity::touch(this.moved);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
