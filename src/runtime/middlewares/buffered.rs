//! A body read whole for the `buffering` middleware, within two shared budgets: its start in
//! memory, the rest in an unnamed temporary file.
//!
//! Every byte of memory a body keeps is granted from the memory budget *before* it is
//! allocated, and blocks are allocated at exactly the size granted: nothing grows by doubling,
//! and a body that finds the budget full keeps nothing in memory (its spill buffer is granted
//! the same way, or each frame goes to the file as it comes). Spill bytes are granted from the
//! spill budget before they are written. Both grants are held by guards: a read that fails or
//! is abandoned gives its share back, and a spill file is closed on the blocking pool (closing
//! a large unlinked file frees its blocks) before its share of the spill budget is returned.
//! A replay reads the spilled part back in chunks granted from the memory budget the same way,
//! each grant going with its chunk until the chunk is dropped (4 KiB pieces when the budget is
//! full, so that a replay always moves on).

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};

/// The error type of a replayed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Bytes written to (or read from) a spill file at once.
const CHUNK: usize = 64 * 1024;
/// The smallest memory block of a body whose length is not known: small frames are gathered.
const BLOCK: usize = 16 * 1024;
/// What a replay reads back from its spill file when the memory budget has no room.
const UNGRANTED: usize = 4 * 1024;

/// The shared budgets' counters.
pub struct Counters {
    /// Bytes all buffered bodies hold in memory now.
    pub memory: AtomicU64,
    /// Bytes all buffered bodies hold in spill files now.
    pub spilled: AtomicU64,
}

impl Counters {
    pub const fn new() -> Self {
        Counters {
            memory: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
        }
    }
}

/// The counters every buffering middleware shares.
pub static SHARED: Counters = Counters::new();

/// Limits on one body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// What one body may keep in memory (`mem*BodyBytes`).
    pub mem: u64,
    /// The body's longest length (`max*BodyBytes`, else `[limits] max_buffered_body`).
    pub max: u64,
    /// All spill files together (`[limits] max_buffered_body`).
    pub spill_budget: u64,
    /// All bodies' memory together (`[limits] max_buffered_memory`).
    pub memory_budget: u64,
}

/// Why a body could not be buffered.
#[derive(Debug)]
pub enum Overflow {
    /// Longer than the limit.
    TooLarge,
    /// The body failed while being read.
    Body(String),
    /// The spill file failed.
    Io(std::io::Error),
    /// The spill files of all buffered bodies together are at `[limits] max_buffered_body`.
    Full,
}

/// A body read whole. Cheap to clone; each [`Buffered::body`] replays it from the start.
#[derive(Clone)]
pub struct Buffered {
    inner: Arc<Inner>,
}

struct Inner {
    /// The body's start, in blocks granted from the memory budget.
    mem: Vec<Bytes>,
    /// The rest.
    file: Option<SpillFile>,
    len: u64,
    /// The memory this body holds of the shared budget.
    _mem_held: Held,
    /// The memory budget its replays' file reads are granted from.
    counters: &'static Counters,
    memory_budget: u64,
}

impl std::fmt::Debug for Buffered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffered")
            .field("len", &self.inner.len)
            .field("in_memory", &self.in_memory())
            .finish()
    }
}

impl Buffered {
    /// Read `body` whole within `limits`, granting from `counters`.
    pub async fn collect<B>(
        mut body: B,
        limits: Limits,
        counters: &'static Counters,
    ) -> Result<Buffered, Overflow>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut c = Collector {
            hint: body.size_hint().exact(),
            limits,
            mem: Vec::new(),
            block: Vec::new(),
            mem_held: Held::new(&counters.memory),
            counters,
            spill: None,
            len: 0,
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Overflow::Body(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not kept
            };
            c.push(data).await?;
        }
        c.finish().await
    }

    /// The body's length (for `Content-Length`).
    pub fn len(&self) -> u64 {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// How many of its bytes are in memory.
    pub fn in_memory(&self) -> u64 {
        self.inner.mem.iter().map(|b| b.len() as u64).sum()
    }

    /// Whether part of it is in a spill file.
    pub fn spilled(&self) -> bool {
        self.inner.file.is_some()
    }

    /// The body, from its first byte.
    pub fn body(&self) -> http_body_util::combinators::BoxBody<Bytes, BoxError> {
        // The next memory block, then the offset in the file.
        let state = (Arc::clone(&self.inner), 0usize, 0u64);
        let stream = futures_util::stream::unfold(state, |(inner, block, at)| async move {
            if let Some(b) = inner.mem.get(block) {
                return Some((Ok(Frame::data(b.clone())), (inner, block + 1, at)));
            }
            let file = inner.file.as_ref()?;
            let left = file.len.saturating_sub(at);
            if left == 0 {
                return None;
            }
            // What is read back is granted from the memory budget too, and the grant goes with
            // the bytes until they are written out and dropped. With no room left, a small
            // piece is read anyway, so that a replay always moves on.
            let mut held = Held::new(&inner.counters.memory);
            let granted = held.take(left.min(CHUNK as u64), inner.memory_budget);
            let want = granted.max(left.min(UNGRANTED as u64)) as usize;
            let reader = Arc::clone(&inner);
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want];
                let file = reader.file.as_ref().and_then(SpillFile::file);
                file.ok_or(std::io::ErrorKind::NotFound)?
                    .read_exact_at(&mut buf, at)?;
                Ok::<_, std::io::Error>(buf)
            })
            .await;
            match read {
                Ok(Ok(buf)) => {
                    let n = buf.len() as u64;
                    let chunk = Bytes::from_owner(Granted { buf, _held: held });
                    Some((Ok(Frame::data(chunk)), (inner, block, at + n)))
                }
                Ok(Err(e)) => Some((Err(e.into()), (inner, block, u64::MAX))),
                Err(e) => Some((Err(e.into()), (inner, block, u64::MAX))),
            }
        });
        StreamBody::new(stream).boxed()
    }
}

/// The state of one read.
struct Collector {
    limits: Limits,
    /// The body's exact length, when it was declared.
    hint: Option<u64>,
    counters: &'static Counters,
    /// Full memory blocks.
    mem: Vec<Bytes>,
    /// The block being filled: its capacity is granted.
    block: Vec<u8>,
    mem_held: Held,
    spill: Option<Spill>,
    len: u64,
}

/// The spilling part of a read: the file, and a write buffer whose memory was granted (none
/// when the budget had none: frames are then written as they come).
struct Spill {
    file: SpillFile,
    buf: Option<Granted>,
}

impl Spill {
    /// Write what the buffer holds, and keep the buffer for more.
    async fn flush(&mut self) -> Result<(), Overflow> {
        let Some(g) = self.buf.take_if(|g| !g.buf.is_empty()) else {
            return Ok(());
        };
        let mut g = self.file.write(g).await?;
        g.buf.clear();
        self.buf = Some(g);
        Ok(())
    }
}

impl Collector {
    async fn push(&mut self, mut data: Bytes) -> Result<(), Overflow> {
        if data.is_empty() {
            return Ok(());
        }
        self.len += data.len() as u64;
        if self.len > self.limits.max {
            return Err(Overflow::TooLarge);
        }
        if self.spill.is_none() {
            self.keep(&mut data);
            if data.is_empty() {
                return Ok(());
            }
            self.start_spill().await?;
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let n = data.len() as u64;
        if !spill.file.grant(n, self.limits.spill_budget) {
            return Err(Overflow::Full);
        }
        spill.file.len += n;
        let room = (spill.buf.as_ref()).map_or(0, |g| g.buf.capacity() - g.buf.len());
        if room >= data.len()
            && let Some(g) = spill.buf.as_mut()
        {
            g.buf.extend_from_slice(&data);
            if g.buf.len() == g.buf.capacity() {
                spill.flush().await?;
            }
            return Ok(());
        }
        spill.flush().await?;
        // Larger than the buffer's room: written from the frame itself.
        spill.file.write(data).await?;
        Ok(())
    }

    /// Move what the memory budget grants of `data` into memory blocks.
    fn keep(&mut self, data: &mut Bytes) {
        while !data.is_empty() {
            if self.block.len() == self.block.capacity() && !self.next_block(data.len()) {
                return;
            }
            let n = (self.block.capacity() - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data.advance(n);
        }
    }

    /// Move the block being filled, if it holds anything, to the full ones.
    fn seal(&mut self) {
        if !self.block.is_empty() {
            self.mem.push(Bytes::from(std::mem::take(&mut self.block)));
        }
    }

    /// Seal the current block and start one of the size the budget grants; false when it
    /// grants nothing.
    fn next_block(&mut self, want: usize) -> bool {
        self.seal();
        let room = self.limits.mem.saturating_sub(self.mem_held.n);
        let size = match self.hint {
            // Known length: the whole of what stays in memory, at once.
            Some(total) => total.saturating_sub(self.mem_held.n).max(want as u64),
            None => want.max(BLOCK) as u64,
        };
        let granted = self
            .mem_held
            .take(size.min(room), self.limits.memory_budget);
        if granted == 0 {
            return false;
        }
        self.block = Vec::with_capacity(granted as usize);
        true
    }

    async fn start_spill(&mut self) -> Result<(), Overflow> {
        self.seal();
        let made = tokio::task::spawn_blocking(tempfile::tempfile).await;
        let made = made.map_err(|e| Overflow::Io(std::io::Error::other(e)))?;
        let file = SpillFile {
            open: Some((
                made.map_err(Overflow::Io)?,
                Held::new(&self.counters.spilled),
            )),
            len: 0,
        };
        // The write buffer counts against the memory budget, and against what one body may
        // keep in memory (with the blocks it already holds).
        let size = (CHUNK as u64).min(self.limits.mem.saturating_sub(self.mem_held.n));
        let mut held = Held::new(&self.counters.memory);
        let buf =
            (size > 0 && held.take(size, self.limits.memory_budget) == size).then(|| Granted {
                buf: Vec::with_capacity(size as usize),
                _held: held,
            });
        self.spill = Some(Spill { file, buf });
        Ok(())
    }

    async fn finish(mut self) -> Result<Buffered, Overflow> {
        self.seal();
        let file = match self.spill.take() {
            Some(mut spill) => {
                spill.flush().await?;
                Some(spill.file)
            }
            None => None,
        };
        Ok(Buffered {
            inner: Arc::new(Inner {
                mem: self.mem,
                file,
                len: self.len,
                _mem_held: self.mem_held,
                counters: self.counters,
                memory_budget: self.limits.memory_budget,
            }),
        })
    }
}

/// An unnamed spill file with its share of the spill budget, and the bytes in it. While a
/// write runs, the file and its share are on the blocking pool with it (`open` is `None`):
/// whichever side ends last closes the file there, and only then gives the share back.
struct SpillFile {
    open: Option<(std::fs::File, Held)>,
    len: u64,
}

impl SpillFile {
    fn file(&self) -> Option<&std::fs::File> {
        self.open.as_ref().map(|(f, _)| f)
    }

    /// Grant `n` more bytes of `budget` to this file; false when it is full.
    fn grant(&mut self, n: u64, budget: u64) -> bool {
        match self.open.as_mut() {
            Some((_, held)) => held.take(n, budget) == n,
            None => false,
        }
    }

    /// Append `data` (on the blocking pool); `data` comes back for reuse.
    async fn write<D>(&mut self, data: D) -> Result<D, Overflow>
    where
        D: AsRef<[u8]> + Send + 'static,
    {
        let Some(mut open) = self.open.take() else {
            return Err(Overflow::Io(std::io::Error::other("spill file closed")));
        };
        let done = tokio::task::spawn_blocking(move || {
            let wrote = open.0.write_all(data.as_ref());
            (open, data, wrote)
        });
        let (open, data, wrote) = done
            .await
            .map_err(|e| Overflow::Io(std::io::Error::other(e)))?;
        self.open = Some(open);
        wrote.map(|()| data).map_err(Overflow::Io)
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        // The file first, then its share (the tuple's order).
        let Some(open) = self.open.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || drop(open))),
            Err(_) => drop(open),
        }
    }
}

/// A buffer with the memory granted for it, which goes where the buffer goes (a spill write's,
/// or a replayed chunk's until its bytes are dropped).
struct Granted {
    buf: Vec<u8>,
    _held: Held,
}

impl AsRef<[u8]> for Granted {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

/// Bytes taken from a shared budget, given back when dropped.
pub struct Held {
    counter: &'static AtomicU64,
    n: u64,
}

impl Held {
    pub fn new(counter: &'static AtomicU64) -> Self {
        Held { counter, n: 0 }
    }

    /// Take up to `want` more bytes while the counter stays within `budget`; what was taken.
    pub fn take(&mut self, want: u64, budget: u64) -> u64 {
        let mut now = self.counter.load(Ordering::Relaxed);
        loop {
            let grant = want.min(budget.saturating_sub(now));
            if grant == 0 {
                return 0;
            }
            match (self.counter).compare_exchange_weak(
                now,
                now + grant,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.n += grant;
                    return grant;
                }
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.n, Ordering::Relaxed);
    }
}
