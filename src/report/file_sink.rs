//! A file written by a background thread, for the two reports that grow with the capture
//! (`flows.csv`, `messages.csv`: hundreds of MB on a large trace).
//!
//! The analysis fills a buffer and hands it over whole; the writer thread makes the `write`
//! calls and sends the emptied buffer back to be filled again. The writes then run beside the
//! analysis instead of inside it, and the same few buffers are reused, so no fresh memory is
//! touched per write. The file is a [`DirectFile`]: written past the page cache where the
//! system allows, which spares the kernel's copy of every byte into fresh pages — until the
//! analysis has waited [`MAX_WAIT_DIRECT`] in all for the writer: a device slower than the
//! analysis would then hold the run back, where the page cache takes the rows at once and
//! writes them back later, so the rest goes through it. Written directly, each buffer
//! comes with room ahead of its bytes, so the writer writes it in place rather than copying
//! it into its stage ([`DirectFile::write_in_place`]).
//!
//! Bounded: at most `IN_FLIGHT` (4) full buffers wait for the writer; a producer faster
//! than the disk blocks on the next hand-over. Errors: the writer stops at its first failed
//! write, and the next hand-over (or [`FileSink::finish`]) returns that error — rows handed
//! over before it are on disk, as with a `BufWriter`. Dropping a sink without `finish` still
//! writes everything handed over or buffered (errors then have no one to go to).

use super::direct_file::{ALIGN, DirectFile, room_for};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes gathered before a hand-over.
pub const CHUNK: usize = 1 << 20;

/// Full buffers queued for the writer at most (so about `IN_FLIGHT + 3` chunks exist per sink).
const IN_FLIGHT: usize = 4;

/// Capacity of a buffer: a chunk, the room ahead of it ([`room_for`]) and a last row.
const CAPACITY: usize = CHUNK + 4 * ALIGN;

/// A buffer on its way to the file: its bytes are `mem[room..]`. The room ahead of them
/// lets the writer write it in place, not copied ([`DirectFile::write_in_place`]).
struct Chunk {
    mem: Vec<u8>,
    room: usize,
}

impl From<Chunk> for Vec<u8> {
    fn from(chunk: Chunk) -> Vec<u8> {
        chunk.mem
    }
}

impl crate::recycle::Buffer<u8> for Chunk {
    fn empty(&mut self) {
        self.mem.clear();
        self.room = 0;
    }
}

/// Time the analysis may spend waiting for the writer, in all, before the file leaves
/// direct I/O. This VM's disk takes the hour's 3.3 GB far faster than the analysis makes
/// them (the analysis never waited there); a disk of ~100 MB/s would not.
pub const MAX_WAIT_DIRECT: Duration = Duration::from_millis(500);

pub struct FileSink {
    /// Bytes written through [`Write`] and not handed over yet, after `room`.
    buf: Vec<u8>,
    room: usize,
    /// File offset of the next byte handed over.
    handed: u64,
    /// Whether buffers get room to be written in place (the file is written directly).
    in_place: bool,
    /// `None` once finished.
    writer: Option<Writer>,
    /// Emptied buffers back from the writer.
    empty: Receiver<Chunk>,
    /// Waiting for the writer still allowed before it leaves direct I/O.
    wait_left: Duration,
    /// Set once `wait_left` ran out: the writer leaves direct I/O.
    slow: Arc<AtomicBool>,
    /// How the writer ended (`None` before).
    ended: Option<Ended>,
}

/// The writer thread and its queue of full buffers.
struct Writer {
    full: SyncSender<Chunk>,
    thread: JoinHandle<io::Result<Ended>>,
}

/// What the writer thread says when it has written everything.
#[derive(Clone, Copy, Debug)]
struct Ended {
    /// The file was still written directly at the end.
    direct: bool,
    /// Bytes written straight from the buffers handed over, not copied.
    in_place: u64,
}

impl FileSink {
    /// Creates (truncates) `path` and starts its writer thread.
    pub fn create(path: &Path) -> io::Result<FileSink> {
        FileSink::create_waiting(path, MAX_WAIT_DIRECT)
    }

    /// [`FileSink::create`], leaving direct I/O after `max_wait` of waiting for the writer.
    fn create_waiting(path: &Path, max_wait: Duration) -> io::Result<FileSink> {
        let mut file = DirectFile::create(path)?;
        let in_place = file.is_direct();
        let (full, queued) = mpsc::sync_channel(IN_FLIGHT);
        let (emptied, empty) = mpsc::channel();
        let slow = Arc::new(AtomicBool::new(false));
        let told = Arc::clone(&slow);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let thread = std::thread::Builder::new()
            .name(format!("write {name}"))
            .spawn(move || {
                let mut in_place = 0;
                crate::recycle::serve(queued, emptied, |chunk: &mut Chunk| {
                    if file.is_direct() && told.load(Ordering::Relaxed) {
                        file.leave_direct()?;
                    }
                    let len = chunk.mem.len().saturating_sub(chunk.room);
                    if file.write_in_place(&mut chunk.mem, chunk.room)? {
                        in_place += len as u64;
                    }
                    Ok::<(), io::Error>(())
                })?;
                file.finish()?;
                Ok(Ended {
                    direct: file.is_direct(),
                    in_place,
                })
            })?;
        let mut buf = Vec::new();
        let room = make_room(&mut buf, 0, in_place);
        Ok(FileSink {
            buf,
            room,
            handed: 0,
            in_place,
            writer: Some(Writer { full, thread }),
            empty,
            wait_left: max_wait,
            slow,
            ended: None,
        })
    }

    /// Whether the file was written past the page cache to the end (`None` until
    /// [`FileSink::finish`] succeeded).
    pub fn wrote_directly(&self) -> Option<bool> {
        self.ended.map(|e| e.direct)
    }

    /// Bytes the writer wrote straight from the buffers handed over, not copied (known once
    /// [`FileSink::finish`] succeeded).
    pub fn written_in_place(&self) -> Option<u64> {
        self.ended.map(|e| e.in_place)
    }

    /// Hands the bytes of `buf` after its first `room` to the writer, after anything
    /// written through [`Write`] before. `buf` is left holding a buffer to fill next: a
    /// reused one when one has come back, holding only the room the returned count says —
    /// bytes ahead of the next ones appended, never written, that let the writer write the
    /// buffer in place. (Room 0 for a buffer of the caller's own.) Blocks while
    /// `IN_FLIGHT` buffers are queued.
    pub fn hand_over(&mut self, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        self.flush()?;
        self.send(buf, room)
    }

    /// Hands `buf[room..]` over; returns the room of the buffer left in `buf`.
    fn send(&mut self, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        let Some(len) = buf.len().checked_sub(room).filter(|&len| len > 0) else {
            return Ok(room);
        };
        let filled = crate::recycle::take_refill(buf, &self.empty, CAPACITY);
        self.handed += len as u64;
        let room_left = make_room(buf, self.handed, self.in_place);
        let Some(w) = &self.writer else {
            return Err(closed());
        };
        let chunk = Chunk { mem: filled, room };
        let sent = match w.full.try_send(chunk) {
            Ok(()) => true,
            Err(TrySendError::Full(chunk)) => {
                // Only a full queue is timed: the clock is read on waits, not per chunk.
                let start = Instant::now();
                let sent = w.full.send(chunk).is_ok();
                self.wait_left = self.wait_left.saturating_sub(start.elapsed());
                if self.wait_left.is_zero() {
                    self.slow.store(true, Ordering::Relaxed);
                }
                sent
            }
            Err(TrySendError::Disconnected(_)) => false,
        };
        if sent {
            Ok(room_left)
        } else {
            // The writer stopped: its error says why.
            Err(self.finish().err().unwrap_or_else(closed))
        }
    }

    /// Hands over what is buffered, waits until everything is written and returns the first
    /// error, if any. Later calls (and hand-overs) find the sink closed.
    pub fn finish(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let Some(Writer { full, thread }) = self.writer.take() else {
            return if buf.len() <= self.room {
                Ok(())
            } else {
                Err(closed())
            };
        };
        let handed = buf.len() <= self.room
            || full
                .send(Chunk {
                    mem: buf,
                    room: self.room,
                })
                .is_ok();
        drop(full);
        match thread.join() {
            Ok(Ok(_)) if !handed => Err(closed()),
            Ok(Ok(end)) => {
                self.ended = Some(end);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the file writer thread panicked")),
        }
    }
}

/// Makes `buf`, an empty buffer, room for bytes that go at file offset `pos`, if
/// `in_place`; returns the room.
fn make_room(buf: &mut Vec<u8>, pos: u64, in_place: bool) -> usize {
    debug_assert!(buf.is_empty());
    buf.reserve(CAPACITY);
    let room = if in_place {
        room_for(buf.as_ptr(), pos)
    } else {
        0
    };
    buf.resize(room, 0);
    room
}

/// Its state, not its bytes (a buffer holds up to a MiB).
impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("buffered", &self.buf.len().saturating_sub(self.room))
            .field("handed", &self.handed)
            .field("open", &self.writer.is_some())
            .field("wait_left", &self.wait_left)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

fn closed() -> io::Error {
    io::Error::other("the file writer thread stopped")
}

impl Write for FileSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Handed over before it would grow: buffers keep their capacity (and their room its
        // alignment), and none is copied into a larger one.
        if self.buf.len() + data.len() > self.buf.capacity().max(CAPACITY) {
            self.flush()?;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() - self.room >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    /// Hands the buffered bytes to the writer; [`FileSink::finish`] is what waits for them to
    /// reach the file.
    fn flush(&mut self) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let sent = self.send(&mut buf, self.room);
        // A failed hand-over still left a buffer holding only its room.
        self.room = *sent.as_ref().unwrap_or(&buf.len());
        self.buf = buf;
        sent.map(drop)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_through_write_and_hand_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = FileSink::create(&path).unwrap();
        let (want, _) = rows_and_lines(&mut sink, 1000, 600);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// Writes 300,000 rows to `sink`: in runs of `run` rows, the first `gathered` of each
    /// gathered by the caller and handed over a chunk at a time, the others written one by
    /// one through `Write`. Finishes it; returns the bytes written and the bytes written in place.
    fn rows_and_lines(sink: &mut FileSink, run: u32, gathered: u32) -> (Vec<u8>, u64) {
        let mut want = Vec::new();
        let (mut rows, mut room) = (Vec::new(), 0);
        for i in 0..300_000u32 {
            let line = format!("{i},{}\n", "r".repeat(i as usize % 50));
            // The file keeps the order of both ways.
            if i % run < gathered {
                rows.extend_from_slice(line.as_bytes());
                if rows.len() >= CHUNK {
                    room = sink.hand_over(&mut rows, room).unwrap();
                }
            } else {
                room = sink.hand_over(&mut rows, room).unwrap();
                assert_eq!(rows.len(), room, "only the room is left");
                sink.write_all(line.as_bytes()).unwrap();
            }
            want.extend_from_slice(line.as_bytes());
        }
        sink.hand_over(&mut rows, room).unwrap();
        sink.finish().unwrap();
        (want, sink.written_in_place().unwrap())
    }

    #[test]
    fn rows_handed_over_are_written_in_place_where_the_file_is_direct() {
        let (dir, direct) = crate::report::direct_file::disk_dir();
        let path = dir.path().join("out.csv");
        let mut sink = FileSink::create(&path).unwrap();
        // Gathered rows, and a few single lines at the end.
        let (want, in_place) = rows_and_lines(&mut sink, 300_000, 299_990);
        assert_eq!(std::fs::read(&path).unwrap(), want);
        if direct {
            // All but the first buffer, the caller's own, which has no room.
            let share = in_place as f64 / want.len() as f64;
            assert!(share > 0.7, "{in_place} of {} bytes in place", want.len());
        } else {
            assert_eq!(in_place, 0);
        }
    }

    #[test]
    fn dropping_without_finish_writes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = FileSink::create(&path).unwrap();
        let line = [b'x'; 100];
        for _ in 0..3 * CHUNK / 100 + 7 {
            sink.write_all(&line).unwrap();
        }
        drop(sink);
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            (3 * CHUNK / 100 + 7) * 100
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_returned_by_a_later_call_not_lost() {
        // /dev/full fails every write with ENOSPC.
        let mut sink = FileSink::create(Path::new("/dev/full")).unwrap();
        let mut failed = None;
        for _ in 0..(IN_FLIGHT + 4) * CHUNK / 4096 {
            if let Err(e) = sink.write_all(&[b'x'; 4096]) {
                failed = Some(e);
                break;
            }
        }
        let e = failed
            .or_else(|| sink.finish().err())
            .expect("the error surfaces");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finish_reports_an_error_of_the_last_buffer() {
        let mut sink = FileSink::create(Path::new("/dev/full")).unwrap();
        sink.write_all(b"one row\n").unwrap();
        let e = sink.finish().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    }

    /// Hands 64 MiB to a sink leaving direct I/O after `max_wait` of waiting, faster than
    /// a disk takes it; returns whether it wrote directly to the end (`None`: the disk
    /// refuses direct I/O, skipped).
    fn hurried(max_wait: Duration) -> Option<bool> {
        let (dir, direct) = crate::report::direct_file::disk_dir();
        if !direct {
            return None;
        }
        let path = dir.path().join("out.csv");
        let mut sink = FileSink::create_waiting(&path, max_wait).unwrap();
        let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
        let (mut buf, mut room) = (Vec::new(), 0);
        for _ in 0..64 {
            buf.extend_from_slice(&chunk);
            room = sink.hand_over(&mut buf, room).unwrap();
        }
        sink.finish().unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written.len(), 64 * CHUNK);
        assert!(written.chunks(CHUNK).all(|c| c == chunk.as_slice()));
        sink.wrote_directly()
    }

    #[test]
    fn a_writer_that_keeps_the_analysis_waiting_leaves_direct_io() {
        assert_ne!(hurried(Duration::ZERO), Some(true));
    }

    #[test]
    fn a_writer_that_keeps_up_stays_direct() {
        assert_ne!(hurried(Duration::from_secs(3600)), Some(false));
    }
}
