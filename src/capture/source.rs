//! Where capture bytes come from: a memory-mapped regular file, or a stream (stdin, a pipe,
//! a gzip decoder, any `Read`) pulled through one reused buffer.
//!
//! Guarantees: the parser sees one contiguous window `bytes()[pos..end]`; `fill(n)` makes at
//! least `n` bytes available or reports end of input; the stream buffer grows only to the
//! largest `n` ever asked for (the caller bounds `n` by `MAX_BLOCK_LEN`), so memory is bounded
//! whatever the input. Must not: interpret the bytes, or allocate on the per-frame path (the
//! mapped case never allocates; the stream case only when a record is larger than any before).

use memmap2::Mmap;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of each read from a stream; large enough that syscalls are rare, small enough that
/// the first frames of a slow pipe are not held back for long.
const STREAM_CHUNK: usize = 256 * 1024;

enum Backing {
    Mapped {
        map: Arc<Mmap>,
        /// Whether this map's page-table work goes to the page worker
        /// ([`crate::prefetch::in_background`]); not for a file within one populate window.
        background: bool,
    },
    Stream {
        reader: Box<dyn Read + Send>,
        buf: Vec<u8>,
        eof: bool,
    },
}

/// A window over the input; `pos..end` are the unread bytes of `bytes()`.
pub(crate) struct Source {
    backing: Backing,
    /// Index in `bytes()` of the first unread byte.
    pub(crate) pos: usize,
    /// Index in `bytes()` one past the last valid byte.
    end: usize,
    /// Stream offset of `bytes()[0]` (grows when the stream buffer is compacted).
    base: u64,
    /// Raw (compressed) bytes pulled from the underlying file, when it is decompressed.
    raw_count: Option<Arc<AtomicU64>>,
    /// Mapped bytes already released from memory by `release_consumed`.
    released: usize,
    /// Mapped bytes whose pages were populated ahead of the reader.
    populated: usize,
}

/// Resident mapped bytes behind the read position before they are released.
const RELEASE_STEP: usize = 16 << 20;

impl Source {
    pub(crate) fn mapped(map: Mmap) -> Source {
        let end = map.len();
        let map = Arc::new(map);
        Source {
            backing: Backing::Mapped {
                background: end > 2 * RELEASE_STEP,
                map,
            },
            pos: 0,
            end,
            base: 0,
            raw_count: None,
            released: 0,
            populated: 0,
        }
    }

    pub(crate) fn stream(
        reader: Box<dyn Read + Send>,
        raw_count: Option<Arc<AtomicU64>>,
    ) -> Source {
        Source {
            backing: Backing::Stream {
                reader,
                buf: Vec::new(),
                eof: false,
            },
            pos: 0,
            end: 0,
            base: 0,
            raw_count,
            released: 0,
            populated: 0,
        }
    }

    /// The whole buffer; only `pos..end` is meaningful.
    #[inline(always)]
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Mapped { map, .. } => map,
            Backing::Stream { buf, .. } => buf,
        }
    }

    /// Unread bytes currently available without reading more.
    #[inline(always)]
    pub(crate) fn avail(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Offset in the (decompressed) capture stream of the first unread byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// The bytes available so far (read or not) and the stream offset of the first.
    #[inline]
    pub(crate) fn buffered(&self) -> (u64, &[u8]) {
        let bytes = self.bytes();
        (self.base, bytes.get(..self.end).unwrap_or(bytes))
    }

    /// Offset in the capture stream up to which bytes were read (where a read error struck).
    pub(crate) fn read_offset(&self) -> u64 {
        self.base.saturating_add(self.end as u64)
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
        let Backing::Stream { reader, buf, eof } = &mut self.backing else {
            return Ok(false); // a map holds the whole file already
        };
        if *eof {
            return Ok(false);
        }
        // Compact only when the record would not fit behind `pos`: one memmove per buffer,
        // not per record.
        if buf.len().saturating_sub(self.pos) < need {
            buf.copy_within(self.pos..self.end, 0);
            self.base = self.base.saturating_add(self.pos as u64);
            self.end -= self.pos;
            self.pos = 0;
        }
        while self.end - self.pos < need {
            if self.end == buf.len() {
                // Here pos == 0 (compacted above). Grow by doubling as data actually
                // arrives, so a bogus length near the end of a short stream costs nothing.
                let target = (buf.len() * 2)
                    .max(STREAM_CHUNK)
                    .min(need.max(STREAM_CHUNK));
                // A fresh zeroed allocation (calloc) rather than `resize`, which writes
                // every byte.
                let mut grown = vec![0u8; target];
                if let (Some(dst), Some(src)) = (grown.get_mut(..self.end), buf.get(..self.end)) {
                    dst.copy_from_slice(src);
                }
                *buf = grown;
            }
            let Some(space) = buf.get_mut(self.end..) else {
                return Ok(false);
            };
            let room = space.len();
            match reader.read(space) {
                Ok(0) => {
                    *eof = true;
                    return Ok(false);
                }
                // A misbehaving `Read` may claim more than the room it was given.
                Ok(n) => self.end += n.min(room),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // A stream that failed once is not read again: later calls see the end.
                    *eof = true;
                    return Err(e);
                }
            }
        }
        Ok(true)
    }

    /// Drops the pages of a mapped file that lie wholly before the read position from this
    /// process's memory, so resident memory stays flat however large the file (the page
    /// cache keeps them; a later access would simply map them again), and maps the next
    /// window's pages in one call rather than a fault per few pages. Both are page-table work
    /// for the page worker (the job holds the map, so `MADV_DONTNEED` only ever meets it),
    /// which the reader does not wait for. No-op for streams.
    pub(crate) fn release_consumed(&mut self) {
        const PAGE: usize = 4096;
        let Backing::Mapped { map, background } = &self.backing else {
            return;
        };
        let work = |w: PageWork| {
            if *background {
                let map = Arc::clone(map);
                crate::prefetch::in_background(move || w.run(&map));
            } else {
                w.run(map);
            }
        };
        if self.pos + RELEASE_STEP > self.populated && self.populated < map.len() {
            let len = (2 * RELEASE_STEP).min(map.len() - self.populated);
            work(PageWork::Populate(self.populated, len));
            self.populated += len;
        }
        let upto = self.pos / PAGE * PAGE;
        if upto <= self.released + RELEASE_STEP {
            return;
        }
        work(PageWork::Release(self.released, upto - self.released));
        self.released = upto;
    }

    /// Turns a stream source back into a reader that yields the unread bytes first, so a
    /// decoder (gzip) can be stacked on what was already peeked.
    pub(crate) fn into_reader(self) -> Box<dyn Read + Send> {
        match self.backing {
            Backing::Mapped { map, .. } => {
                let rest = map.get(self.pos..self.end).unwrap_or_default().to_vec();
                Box::new(io::Cursor::new(rest))
            }
            Backing::Stream { reader, buf, .. } => {
                let rest = buf.get(self.pos..self.end).unwrap_or_default().to_vec();
                Box::new(io::Cursor::new(rest).chain(reader))
            }
        }
    }
}

/// Page-table work on a mapped file: an offset and a length in the map.
enum PageWork {
    /// Map pages ahead of the reader (their contents are in the page cache or read now).
    Populate(usize, usize),
    /// Unmap pages behind it.
    Release(usize, usize),
}

impl PageWork {
    fn run(self, map: &Mmap) {
        match self {
            #[cfg(target_os = "linux")]
            PageWork::Populate(off, len) => {
                let _ = map.advise_range(memmap2::Advice::PopulateRead, off, len);
            }
            #[cfg(not(target_os = "linux"))]
            PageWork::Populate(..) => {}
            // SAFETY: MADV_DONTNEED on a read-only, file-backed mapping only discards
            // page-table entries: a later access faults the same file contents back in, so no
            // reference can observe a change — whichever thread makes the call, and whenever.
            // (The "unchecked" advices are unsafe because on private anonymous or
            // copy-on-write memory they would zero it; this map is neither.)
            PageWork::Release(off, len) => {
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len)
                };
            }
        }
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
