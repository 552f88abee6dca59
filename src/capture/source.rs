//! Where capture bytes come from: any `Read` (a file, stdin, a pipe, a gzip decoder) pulled
//! through one reused buffer, or a large file's chunks read ahead past the page cache
//! (`super::read_ahead`), each chunk in turn the buffer.
//!
//! Guarantees: the parser sees one contiguous window `bytes()[pos..end]`; `fill(n)` makes at
//! least `n` bytes available or reports end of input; the buffer grows only to the largest
//! `n` ever asked for (the caller bounds `n` by `MAX_BLOCK_LEN`), so memory is bounded
//! whatever the input (read ahead: a few chunks, and a buffer of `n` plus a chunk for a
//! record crossing chunks that is longer than a chunk's room for it). Must not: interpret
//! the bytes, or allocate on the per-frame path (only when a record is larger than any
//! before, or read ahead crosses chunks longer than that room).
//!
//! Files are read, not memory-mapped. With the analysis on two threads, the page-table work
//! of a large mapping (pages mapped ahead of the reader, dropped behind it) competes with
//! it, while a read copies into a buffer that stays in cache. On the simulator's `large`
//! capture (six alternating pairs of runs of the hour) reading took 13.3 s on average
//! against 14.0 s, within this host's noise; pinned to one core, 5.3–5.4 s against
//! 5.9–8.1 s for the 10-minute run; always about 66 MB less resident memory. And a file
//! truncated while it is read is an early end, not a SIGBUS.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::read_ahead::{Chunk, ReadAhead};

/// Size of each read; large enough that syscalls are rare, small enough that the buffer
/// stays in cache and the first frames of a slow pipe are not held back for long.
pub(crate) const STREAM_CHUNK: usize = 256 * 1024;

/// A window over the input; `pos..end` are the unread bytes of `bytes()`.
pub(crate) struct Source {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    eof: bool,
    /// Index in `bytes()` of the first unread byte.
    pub(crate) pos: usize,
    /// Index in `bytes()` one past the last valid byte.
    end: usize,
    /// Stream offset of `bytes()[0]` (grows when the stream buffer is compacted).
    base: u64,
    /// Raw (compressed) bytes pulled from the underlying file, when it is decompressed.
    raw_count: Option<Arc<AtomicU64>>,
    /// Chunks read ahead past the page cache, once [`Source::read_ahead`] started them;
    /// `reader` is then done with.
    ahead: Option<ReadAhead>,
}

impl Source {
    pub(crate) fn stream(
        reader: Box<dyn Read + Send>,
        raw_count: Option<Arc<AtomicU64>>,
    ) -> Source {
        Source {
            reader,
            buf: Vec::new(),
            eof: false,
            pos: 0,
            end: 0,
            base: 0,
            raw_count,
            ahead: None,
        }
    }

    /// Reads the rest of the file from `file` (the same file, opened with `O_DIRECT`) in
    /// chunks read ahead on a thread (see [`super::read_ahead`]), `chunk` bytes at a time.
    /// Nothing changes (the stream is read as before) where the bytes read so far do not end
    /// at an aligned offset or no thread starts.
    pub(crate) fn read_ahead(&mut self, file: std::fs::File, chunk: usize) {
        if self.ahead.is_none() && !self.eof {
            self.ahead = ReadAhead::start(file, self.read_offset(), chunk);
            if self.ahead.is_some() {
                self.reader = Box::new(io::empty());
            }
        }
    }

    /// The whole buffer; only `pos..end` is meaningful.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Unread bytes currently available without reading more.
    #[inline(always)]
    pub(crate) fn avail(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Offset in the (decompressed) capture stream of the first unread byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.offset_at(self.pos)
    }

    /// The bytes available so far, read or not (see [`Self::offset_at`] for where in the
    /// stream they lie).
    #[inline]
    pub(crate) fn buffered(&self) -> &[u8] {
        let bytes = self.bytes();
        bytes.get(..self.end).unwrap_or(bytes)
    }

    /// Offset in the capture stream of `bytes()[i]`. By wrapping arithmetic, as is
    /// [`Self::index_of`]: `base`, the offset of `bytes()[0]`, falls below zero when a chunk
    /// read ahead has room before its first byte.
    #[inline]
    pub(crate) fn offset_at(&self, i: usize) -> u64 {
        self.base.wrapping_add(i as u64)
    }

    /// Where in `bytes()` the stream offset `offset` lies (`None`: not in the address
    /// space, so not buffered).
    #[inline]
    pub(crate) fn index_of(&self, offset: u64) -> Option<usize> {
        usize::try_from(offset.wrapping_sub(self.base)).ok()
    }

    /// Offset in the capture stream up to which bytes were read (where a read error struck).
    pub(crate) fn read_offset(&self) -> u64 {
        self.offset_at(self.end)
    }

    /// Bytes of the underlying file or stream consumed so far, for a progress bar: the
    /// compressed bytes read for gzip input, else the parse position.
    pub(crate) fn consumed(&self) -> u64 {
        match &self.raw_count {
            Some(c) => c.load(Ordering::Relaxed),
            None => self.offset(),
        }
    }

    /// Makes at least `need` unread bytes available. `Ok(false)` when the input ends first
    /// (then `avail()` says how many remain). Positions may move: re-read `pos` afterwards.
    #[inline(always)]
    pub(crate) fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.avail() >= need {
            return Ok(true);
        }
        self.refill(need)
    }

    #[cold]
    #[inline(never)]
    fn refill(&mut self, need: usize) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.ahead.is_some() {
            return self.refill_ahead(need);
        }
        // Compact only when the record would not fit behind `pos`: one memmove per buffer,
        // not per record.
        if self.buf.len().saturating_sub(self.pos) < need {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base = self.offset_at(self.pos);
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < need {
            if self.end == self.buf.len() {
                // Here pos == 0 (compacted above). Grow by doubling as data actually
                // arrives, so a bogus length near the end of a short stream costs nothing.
                let target = (self.buf.len() * 2)
                    .max(STREAM_CHUNK)
                    .min(need.max(STREAM_CHUNK));
                // A fresh zeroed allocation (calloc) rather than `resize`, which writes
                // every byte.
                let mut grown = vec![0u8; target];
                if let (Some(dst), Some(src)) =
                    (grown.get_mut(..self.end), self.buf.get(..self.end))
                {
                    dst.copy_from_slice(src);
                }
                self.buf = grown;
            }
            let Some(space) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            let room = space.len();
            match self.reader.read(space) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                // A misbehaving `Read` may claim more than the room it was given.
                Ok(n) => self.end += n.min(room),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A stream that failed once is not read again: later calls see the end.
                    self.eof = true;
                    return Err(e);
                }
            }
        }
        Ok(true)
    }

    /// Whether the rest is read in chunks read ahead.
    #[cfg(test)]
    pub(crate) fn reads_ahead(&self) -> bool {
        self.ahead.is_some()
    }

    /// [`Self::refill`] from chunks read ahead: the unread bytes are copied into the room
    /// ahead of the next chunk's, which becomes the buffer, or, when they are more than that
    /// room holds, they and the chunk are gathered into a buffer of their own.
    fn refill_ahead(&mut self, need: usize) -> io::Result<bool> {
        while self.avail() < need {
            // Where the next chunk's bytes go in the stream.
            let offset = self.read_offset();
            let Some(ahead) = &mut self.ahead else {
                return Ok(false);
            };
            let chunk = match ahead.next() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.eof = true;
                    return Ok(false);
                }
                Err(e) => {
                    self.eof = true;
                    return Err(e);
                }
            };
            let unread = self.buf.get(self.pos..self.end).unwrap_or_default();
            let rest = unread.len();
            let Chunk {
                mut mem,
                start,
                len,
            } = chunk;
            let old =
                if let Some(room) = start.checked_sub(rest).and_then(|s| mem.get_mut(s..start)) {
                    room.copy_from_slice(unread);
                    self.pos = start - rest;
                    self.end = start + len;
                    self.base = offset.wrapping_sub(start as u64);
                    std::mem::replace(&mut self.buf, mem)
                } else {
                    let mut gathered = Vec::with_capacity(rest + len);
                    gathered.extend_from_slice(unread);
                    gathered.extend_from_slice(mem.get(start..start + len).unwrap_or_default());
                    ahead.recycle(mem);
                    self.pos = 0;
                    self.end = gathered.len();
                    self.base = offset.wrapping_sub(rest as u64);
                    std::mem::replace(&mut self.buf, gathered)
                };
            ahead.recycle(old);
        }
        Ok(true)
    }

    /// Turns a stream source back into a reader that yields the unread bytes first, so a
    /// decoder (gzip) can be stacked on what was already peeked.
    pub(crate) fn into_reader(self) -> Box<dyn Read + Send> {
        debug_assert!(self.ahead.is_none(), "chunks read ahead are not a stream");
        let rest = self
            .buf
            .get(self.pos..self.end)
            .unwrap_or_default()
            .to_vec();
        Box::new(io::Cursor::new(rest).chain(self.reader))
    }
}

/// Counts the bytes pulled through a reader (the compressed side of a gzip decoder), so the
/// progress bar can compare it with the file size.
pub(crate) struct Counting<R> {
    pub(crate) inner: R,
    pub(crate) count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
