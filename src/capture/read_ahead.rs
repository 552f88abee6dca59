//! A capture file read past the page cache (`O_DIRECT`), a few chunks ahead of the parser,
//! on a thread of its own.
//!
//! Why: a buffered `read` copies every byte out of the page cache on the reading thread's
//! core. On the simulator's hour (3.9 GB) that copy was 5–13 % of a run's samples on one
//! core, the most in the host's slowest phases, where the whole run is slowest; read
//! directly, the device (here the VM's host) puts the bytes in the chunks itself and the
//! core only asks. A chunk carries room ahead of its bytes ([`SLACK`]) where the unread tail
//! of the chunk before (a record crossing the boundary) is copied, so the parser still sees
//! one contiguous window without copying the rest (see `super::source`).
//!
//! Falls back to reads through the page cache, with the same bytes, where direct reads are
//! refused (`EINVAL`: an unaligned offset after a short read, or a device wanting a larger
//! alignment than [`ALIGN`]) and when the parser has had to wait for the device
//! ([`ReadAhead::next`]): a file already in the page cache is then read from it rather than
//! again from a slow disk.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};

use crate::direct_io::{self, ALIGN};

/// Bytes per chunk read: large enough that the device's per-request cost is small (1 MiB
/// reads of the hour took 0.22 s of system time, 256 KiB ones 0.68 s), small enough that a
/// few chunks ahead are little memory.
pub(crate) const CHUNK: usize = 1 << 20;

/// Room ahead of a chunk's bytes for the unread tail of the chunk before; a longer tail (a
/// record of more than this crossing a boundary) is gathered into a buffer of its own.
pub(crate) const SLACK: usize = 64 * 1024;

/// Chunks read ahead of the one being parsed.
const AHEAD: usize = 4;

/// Waits for the device (beyond the first chunk) after which reads go through the page
/// cache: a device slower than the parser.
const MAX_WAITS: u32 = 4;

/// Bytes read into `mem[start..start + len]`; `mem[..start]` is at least [`SLACK`] long.
pub(crate) struct Chunk {
    pub(crate) mem: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// The parser's end of the read-ahead thread, which stops when this is dropped: its next
/// send or wait for a buffer then fails (after the read under way, if any).
pub(crate) struct ReadAhead {
    filled: Receiver<io::Result<Chunk>>,
    empty: Sender<Vec<u8>>,
    /// Set once reads should go through the page cache.
    buffered: Arc<AtomicBool>,
    waits: u32,
    /// A chunk was taken already (waiting for the first is no sign of a slow device).
    started: bool,
    /// Size of the buffers the thread allocates (a buffer of another size is not one).
    mem_len: usize,
}

impl ReadAhead {
    /// Starts reading `file` (opened with `O_DIRECT`) from `offset`, `chunk` bytes at a time
    /// (a multiple of [`ALIGN`]). `None` if the offset is not aligned or no thread starts.
    pub(crate) fn start(mut file: File, offset: u64, chunk: usize) -> Option<ReadAhead> {
        if offset % ALIGN as u64 != 0 || chunk == 0 || chunk % ALIGN != 0 {
            return None;
        }
        if offset != 0 {
            file.seek(SeekFrom::Start(offset)).ok()?;
        }
        let (filled_tx, filled) = mpsc::sync_channel(AHEAD);
        let (empty, empty_rx) = mpsc::channel();
        let buffered = Arc::new(AtomicBool::new(false));
        let mem_len = SLACK + ALIGN + chunk;
        let reader = Reader {
            file,
            direct: true,
            buffered: Arc::clone(&buffered),
            chunk,
            mem_len,
        };
        // Not joined: it ends by itself once this end is dropped.
        std::thread::Builder::new()
            .name("read ahead".into())
            .spawn(move || reader.run(&filled_tx, &empty_rx))
            .ok()?;
        Some(ReadAhead {
            filled,
            empty,
            buffered,
            waits: 0,
            started: false,
            mem_len,
        })
    }

    /// The next chunk; `Ok(None)` at the end of the file. A chunk the parser had to wait for
    /// counts towards [`MAX_WAITS`].
    pub(crate) fn next(&mut self) -> io::Result<Option<Chunk>> {
        let got = match self.filled.try_recv() {
            Ok(got) => Some(got),
            Err(TryRecvError::Empty) => {
                if self.started {
                    self.waits += 1;
                    if self.waits == MAX_WAITS {
                        self.buffered.store(true, Ordering::Relaxed);
                    }
                }
                self.filled.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
        self.started = true;
        match got {
            Some(Ok(chunk)) if chunk.len == 0 => {
                self.recycle(chunk.mem);
                Ok(None)
            }
            Some(got) => got.map(Some),
            // The thread ends only after the end of the file or an error, both sent.
            None => Err(io::Error::other("the read-ahead thread stopped")),
        }
    }

    /// Gives a buffer back for another chunk (one not from [`Self::next`] is dropped).
    pub(crate) fn recycle(&self, mem: Vec<u8>) {
        if mem.len() == self.mem_len {
            let _ = self.empty.send(mem);
        }
    }

    /// Whether the parser has asked for reads through the page cache ([`MAX_WAITS`]).
    #[cfg(test)]
    pub(crate) fn went_buffered(&self) -> bool {
        self.buffered.load(Ordering::Relaxed)
    }
}

/// The thread's end: reads chunks into buffers, allocating up to [`AHEAD`] + 2 of them and
/// then reusing those the parser gives back.
struct Reader {
    file: File,
    direct: bool,
    buffered: Arc<AtomicBool>,
    chunk: usize,
    mem_len: usize,
}

impl Reader {
    fn run(mut self, filled: &SyncSender<io::Result<Chunk>>, empty: &Receiver<Vec<u8>>) {
        let mut allocated = 0;
        loop {
            let mem = match empty.try_recv() {
                Ok(mem) => mem,
                Err(TryRecvError::Empty) if allocated < AHEAD + 2 => {
                    allocated += 1;
                    vec![0u8; self.mem_len]
                }
                Err(TryRecvError::Empty) => match empty.recv() {
                    Ok(mem) => mem,
                    Err(_) => return,
                },
                Err(TryRecvError::Disconnected) => return,
            };
            let (chunk, error) = self.fill(mem);
            // An empty chunk is the end of the file; bytes read before an error come first.
            let end = chunk.len == 0 || error.is_some();
            if (chunk.len > 0 || error.is_none()) && filled.send(Ok(chunk)).is_err() {
                return;
            }
            if let Some(e) = error {
                let _ = filled.send(Err(e));
            }
            if end {
                return;
            }
        }
    }

    /// Reads up to a chunk into `mem` at its first aligned address past [`SLACK`]; short at
    /// the end of the file, or where a read failed (the error comes with what was read).
    fn fill(&mut self, mut mem: Vec<u8>) -> (Chunk, Option<io::Error>) {
        // Asked to read through the page cache: a file whose flag cannot be changed is
        // still read, directly.
        if self.direct && self.buffered.load(Ordering::Relaxed) {
            self.direct = direct_io::stop(&self.file).is_err();
        }
        let mut error = None;
        let start = SLACK
            + mem
                .get(SLACK..)
                .map_or(0, |m| m.as_ptr().align_offset(ALIGN));
        let mut len = 0;
        while len < self.chunk && error.is_none() {
            let Some(room) = mem.get_mut(start + len..start + self.chunk) else {
                break;
            };
            match self.file.read(room) {
                Ok(0) => break,
                Ok(n) => len += n.min(room.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && self.direct => {
                    error = direct_io::stop(&self.file).err();
                    self.direct = false;
                }
                Err(e) => error = Some(e),
            }
        }
        (Chunk { mem, start, len }, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::FromRawFd;
    use std::time::Duration;

    /// The read and write ends of a pipe: a "device" as slow as the test makes it.
    fn pipe() -> (File, File) {
        let mut fds = [0; 2];
        // SAFETY: `pipe` fills both descriptors, each then owned by one `File`.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: as above; each descriptor is open and owned once.
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_device_the_parser_waits_for_is_left_for_the_page_cache() {
        let (read, mut write) = pipe();
        let mut ahead = ReadAhead::start(read, 0, ALIGN).expect("starts");
        // Twice the waits needed, so that a test thread held up now and then (finding its
        // chunk already there) still waits often enough.
        let chunks = 2 * MAX_WAITS as u8 + 2;
        let writer = std::thread::spawn(move || {
            for i in 0..chunks {
                std::thread::sleep(Duration::from_millis(30));
                write.write_all(&[i; ALIGN]).expect("write");
            }
        });
        assert!(!ahead.went_buffered());
        for i in 0..chunks {
            let c = ahead.next().expect("read").expect("a chunk");
            assert!(c.start >= SLACK);
            assert_eq!(c.mem.get(c.start..c.start + c.len), Some(&[i; ALIGN][..]));
            ahead.recycle(c.mem);
        }
        assert!(ahead.went_buffered());
        writer.join().expect("writer");
        assert!(ahead.next().expect("the end").is_none());
    }

    #[test]
    fn a_file_ending_mid_chunk_comes_whole_then_ends() {
        let (read, mut write) = pipe();
        write.write_all(&[7; 3 * ALIGN + 5]).expect("write");
        drop(write);
        let mut ahead = ReadAhead::start(read, 0, 2 * ALIGN).expect("starts");
        let mut lens = Vec::new();
        while let Some(c) = ahead.next().expect("read") {
            assert!(c.mem[c.start..c.start + c.len].iter().all(|&b| b == 7));
            lens.push(c.len);
            ahead.recycle(c.mem);
        }
        assert_eq!(lens, [2 * ALIGN, ALIGN + 5]);
        assert!(
            ReadAhead::start(pipe().0, 1, ALIGN).is_none(),
            "unaligned offset"
        );
        assert!(
            ReadAhead::start(pipe().0, 0, ALIGN + 1).is_none(),
            "unaligned chunk"
        );
    }
}
