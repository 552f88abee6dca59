//! A report file written past the page cache (`O_DIRECT`) where the system allows it: what
//! [`super::file_sink::FileSink`]'s writer thread writes `flows.csv` and `messages.csv` with.
//!
//! Why: a buffered `write` copies every byte into page-cache pages the kernel allocates for
//! it. Where memory is cheap that is a fast copy, but on a VM whose host takes freed memory
//! back (virtio-balloon free page reporting), each fresh page is also a fault in the host:
//! the 3.3 GB of reports of the `large` capture's hour cost 2–10 s of system time written
//! through the page cache, beside ~10 s of analysis. Written directly, the device reads the
//! bytes from the same few buffers every time, and the reports do not push other files out
//! of the cache either.
//!
//! Direct writes go from aligned memory to aligned file offsets in whole blocks, so bytes
//! are gathered in an aligned staging buffer and written [`STAGE`] at a time; the last,
//! partial block is written padded with zeros and the file then cut to its length. A
//! buffer with room ahead of its bytes ([`room_for`]) is written in place instead
//! ([`DirectFile::write_in_place`]): only its first and last partial blocks are copied.
//! (Copying every byte into the stage took ~3 % of a run's samples on the `large` capture.)
//!
//! Falls back to ordinary writes, with the same bytes in the file, wherever direct I/O is
//! refused: at the open (not Linux, a filesystem or device without it) or at a write
//! (`EINVAL`: the device wants a larger alignment than [`ALIGN`]). `P2PTRACE_DIRECT_IO=off`
//! turns it off (e.g. to read the reports straight back from the page cache).

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;

use crate::direct_io;
pub use crate::direct_io::ALIGN;

/// Bytes gathered before a direct write: large for the device, small enough for the copy
/// in and the device's read out to stay in the core's cache (4 MiB staged took more user
/// time on the hour than 1 MiB, within noise).
pub const STAGE: usize = 1 << 20;

/// A file being written, directly when it can be (see the module docs).
pub struct DirectFile {
    file: File,
    /// `Some` while writes go directly: the staging buffer (bytes gathered, not written yet).
    stage: Option<Stage>,
}

/// An aligned staging buffer: `STAGE` bytes at `start` of `mem`, filled up to `fill`.
struct Stage {
    mem: Vec<u8>,
    start: usize,
    fill: usize,
}

impl Stage {
    /// A stage whose bytes start at an [`ALIGN`]ed address (`None` if none can).
    fn new() -> Option<Stage> {
        let mem = vec![0u8; STAGE + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        (start < ALIGN).then_some(Stage {
            mem,
            start,
            fill: 0,
        })
    }

    /// The bytes staged.
    fn staged(&self) -> &[u8] {
        self.mem
            .get(self.start..self.start + self.fill)
            .unwrap_or_default()
    }
}

impl DirectFile {
    /// Creates (truncates) `path`, opened for direct writes if the system allows and
    /// `P2PTRACE_DIRECT_IO` does not say `off`.
    pub fn create(path: &Path) -> io::Result<DirectFile> {
        DirectFile::create_as(path, direct_io::wanted())
    }

    /// [`DirectFile::create`], direct only if `direct`.
    fn create_as(path: &Path, direct: bool) -> io::Result<DirectFile> {
        let direct = direct.then(|| open_direct(path)).flatten();
        let (file, stage) = match direct.zip(Stage::new()) {
            Some((file, stage)) => (file, Some(stage)),
            None => (File::create(path)?, None),
        };
        Ok(DirectFile { file, stage })
    }

    /// Whether writes still go past the page cache.
    pub fn is_direct(&self) -> bool {
        self.stage.is_some()
    }

    /// Writes what is staged (padded to a whole block) and cuts the file to the bytes given.
    pub fn finish(&mut self) -> io::Result<()> {
        let Some(stage) = self.stage.as_mut().filter(|s| s.fill > 0) else {
            return Ok(());
        };
        let fill = stage.fill;
        // Direct writes leave the file's offset where the staged bytes begin.
        let len = self.file.stream_position()? + fill as u64;
        let padded = fill.next_multiple_of(ALIGN);
        if let Some(pad) = stage.mem.get_mut(stage.start + fill..stage.start + padded) {
            pad.fill(0);
        }
        stage.fill = padded;
        self.write_stage(false)?;
        if padded > fill {
            self.file.set_len(len)?;
        }
        Ok(())
    }

    /// Writes what is staged through the page cache, and everything after: for a device
    /// slower than the analysis, whose writes would hold it back.
    pub fn leave_direct(&mut self) -> io::Result<()> {
        self.write_stage(true)
    }

    /// Writes the staged bytes and empties the stage. Leaves direct I/O first if `leave`, or
    /// on `EINVAL`; the stage then goes, and later writes use the page cache.
    fn write_stage(&mut self, leave: bool) -> io::Result<()> {
        let Some(stage) = &mut self.stage else {
            return Ok(());
        };
        if leave {
            direct_io::stop(&self.file)?;
        }
        let mut fell_back = leave;
        write_blocks(&mut self.file, stage.staged(), &mut fell_back)?;
        stage.fill = 0;
        if fell_back {
            self.stage = None;
        }
        Ok(())
    }

    /// Writes `mem[room..]`, in place where it can: when the file is written directly and
    /// the room ahead of the bytes is as [`room_for`] makes it, the few bytes staged go into
    /// the room's end, every whole block from there is written straight from `mem`, and
    /// only the last partial block is staged. Otherwise the bytes are copied through the
    /// stage as by [`Write`]. Returns whether it wrote in place. (The room's bytes may be
    /// overwritten.)
    pub fn write_in_place(&mut self, mem: &mut [u8], room: usize) -> io::Result<bool> {
        self.write_whole_staged_blocks()?;
        // Where the staged bytes go, ahead of `mem`'s: the file's next whole block.
        let in_place = self.stage.as_mut().and_then(|stage| {
            let start = room.checked_sub(stage.fill)?;
            let aligned = (mem.as_ptr() as usize + start) % ALIGN == 0;
            (aligned && room <= mem.len()).then_some((stage, start))
        });
        let Some((stage, start)) = in_place else {
            self.write_all(mem.get(room..).unwrap_or_default())?;
            return Ok(false);
        };
        if let Some(head) = mem.get_mut(start..room) {
            head.copy_from_slice(stage.staged());
        }
        stage.fill = 0;
        let blocks = mem.get(start..).unwrap_or_default();
        let (whole, tail) = blocks.split_at(blocks.len() / ALIGN * ALIGN);
        let mut fell_back = false;
        write_blocks(&mut self.file, whole, &mut fell_back)?;
        if fell_back {
            self.stage = None;
        }
        self.write_all(tail)?;
        Ok(true)
    }

    /// Writes the stage's whole blocks and moves the rest (under a block) to its start.
    fn write_whole_staged_blocks(&mut self) -> io::Result<()> {
        let Some(stage) = &mut self.stage else {
            return Ok(());
        };
        let whole = stage.fill / ALIGN * ALIGN;
        if whole == 0 {
            return Ok(());
        }
        let mut fell_back = false;
        write_blocks(
            &mut self.file,
            stage.staged().get(..whole).unwrap_or_default(),
            &mut fell_back,
        )?;
        let (start, fill) = (stage.start, stage.fill);
        stage.mem.copy_within(start + whole..start + fill, start);
        stage.fill -= whole;
        if fell_back {
            // The rest goes through the page cache now, after what was just written.
            let rest = std::mem::take(&mut stage.mem);
            let rest = rest.get(start..start + fill - whole).unwrap_or_default();
            self.stage = None;
            self.file.write_all(rest)?;
        }
        Ok(())
    }
}

/// The room [`DirectFile::write_in_place`] wants ahead of bytes that go at file offset
/// `pos`, in a buffer starting at `mem`: enough that the file's next whole block starts at
/// an aligned address (under `2 * ALIGN` bytes).
pub fn room_for(mem: *const u8, pos: u64) -> usize {
    mem.align_offset(ALIGN) + (pos % ALIGN as u64) as usize
}

/// Writes `bytes` at the file's offset, directly unless `fell_back`; on `EINVAL` (the
/// device wants a larger alignment) leaves direct I/O, sets `fell_back` and goes on.
fn write_blocks(file: &mut File, bytes: &[u8], fell_back: &mut bool) -> io::Result<()> {
    let mut done = 0;
    while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
        match file.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !*fell_back => {
                direct_io::stop(file)?;
                *fell_back = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(stage) = &mut self.stage else {
            return self.file.write(data);
        };
        let n = (STAGE - stage.fill).min(data.len());
        let at = stage.start + stage.fill;
        if let (Some(to), Some(from)) = (stage.mem.get_mut(at..at + n), data.get(..n)) {
            to.copy_from_slice(from);
        }
        stage.fill += n;
        if stage.fill == STAGE {
            self.write_stage(false)?;
        }
        Ok(n)
    }

    /// Nothing: staged bytes wait for a whole stage or [`DirectFile::finish`] (a direct write
    /// of part of a block would have to be padded and written again).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `path` created (truncated) for direct writes, or `None` where they are refused.
fn open_direct(path: &Path) -> Option<File> {
    direct_io::open(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        path,
    )
}

/// A directory on the crate's own filesystem (where `target/` is: a disk in CI), not `/tmp`,
/// which may be a tmpfs; and whether files there take direct writes (tests that need them
/// skip, saying so, where they do not).
#[cfg(test)]
pub(crate) fn disk_dir() -> (tempfile::TempDir, bool) {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    let dir = tempfile::tempdir_in(target).unwrap();
    let direct = open_direct(&dir.path().join("probe")).is_some();
    if !direct {
        eprintln!("skipped: {} refuses O_DIRECT", dir.path().display());
    }
    (dir, direct)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path named `name` in a [`disk_dir`] that takes direct writes (`None`: skipped).
    fn direct_path(name: &str) -> Option<(tempfile::TempDir, std::path::PathBuf)> {
        let (dir, direct) = disk_dir();
        direct.then(|| {
            let path = dir.path().join(name);
            (dir, path)
        })
    }

    /// `len` bytes of a pattern no run of zeros or block boundary can hide in.
    fn bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// Writes `data` through `f` in pieces of the sizes in `pieces`, in turn.
    fn write_in_pieces(f: &mut DirectFile, data: &[u8], pieces: &[usize]) {
        let mut rest = data;
        for &n in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, after) = rest.split_at(n.min(rest.len()));
            f.write_all(piece).unwrap();
            rest = after;
        }
        f.finish().unwrap();
    }

    #[test]
    fn the_file_holds_exactly_the_bytes_written_at_every_length() {
        let (dir, _) = disk_dir();
        let lens = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            STAGE - 1,
            STAGE,
            STAGE + 1,
            2 * STAGE + ALIGN + 7,
        ];
        for direct in [true, false] {
            for len in lens {
                let path = dir.path().join(format!("{direct}-{len}.csv"));
                let want = bytes(len);
                let mut f = DirectFile::create_as(&path, direct).unwrap();
                write_in_pieces(&mut f, &want, &[1000, 3, STAGE + 5, 70_000]);
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    want,
                    "direct {direct}, {len}"
                );
            }
        }
    }

    #[test]
    fn writes_go_past_the_page_cache_where_the_filesystem_allows() {
        let Some((dir, path)) = direct_path("direct.csv") else {
            return;
        };
        let want = bytes(3 * STAGE + 11);
        let mut f = DirectFile::create_as(&path, true).unwrap();
        write_in_pieces(&mut f, &want, &[STAGE / 3]);
        assert!(f.is_direct(), "a whole stage written directly");
        assert_eq!(std::fs::read(&path).unwrap(), want);
        let off = DirectFile::create_as(&dir.path().join("off.csv"), false).unwrap();
        assert!(!off.is_direct());
    }

    #[test]
    fn a_refused_direct_write_falls_back_to_the_page_cache_with_the_same_bytes() {
        let Some((_dir, path)) = direct_path("refused.csv") else {
            return;
        };
        let file = open_direct(&path).unwrap();
        // A stage one byte off its alignment: the kernel refuses the direct write (EINVAL).
        let mut stage = Stage::new().unwrap();
        stage.start += 1;
        let mut f = DirectFile {
            file,
            stage: Some(stage),
        };
        let want = bytes(2 * STAGE + 99);
        write_in_pieces(&mut f, &want, &[4096, 1]);
        assert!(!f.is_direct(), "fell back after the refusal");
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn bytes_with_room_as_made_for_them_are_written_in_place_and_others_copied() {
        let (dir, direct) = disk_dir();
        for direct in [direct, false] {
            let path = dir.path().join(format!("in-place-{direct}.csv"));
            let mut f = DirectFile::create_as(&path, direct).unwrap();
            let (mut want, mut pos) = (Vec::new(), 0u64);
            let lens = [
                10,
                5000,
                STAGE + 3,
                ALIGN,
                1,
                70_000,
                0,
                2 * ALIGN + 1,
                3 * ALIGN,
            ];
            for (i, len) in lens.into_iter().enumerate() {
                let data: Vec<u8> = bytes(len + i).split_off(i);
                let mut mem = Vec::with_capacity(len + 2 * ALIGN + 1);
                // Every third buffer one byte off the room it needs.
                let good = i % 3 != 2;
                let room = room_for(mem.as_ptr(), pos) + usize::from(!good);
                mem.resize(room, 0xAA);
                mem.extend_from_slice(&data);
                let in_place = f.write_in_place(&mut mem, room).unwrap();
                assert_eq!(in_place, good && direct, "buffer {i}");
                want.extend_from_slice(&data);
                pos += len as u64;
                if i % 2 == 0 {
                    // Bytes between, through the stage: the next room moves with them.
                    let between = format!("between {i}\n");
                    f.write_all(between.as_bytes()).unwrap();
                    want.extend_from_slice(between.as_bytes());
                    pos += between.len() as u64;
                }
            }
            f.finish().unwrap();
            assert_eq!(f.is_direct(), direct);
            assert_eq!(std::fs::read(&path).unwrap(), want, "direct {direct}");
        }
    }

    #[test]
    fn a_refused_direct_write_of_staged_blocks_before_writing_in_place_keeps_the_bytes() {
        let Some((_dir, path)) = direct_path("refused-in-place.csv") else {
            return;
        };
        // A stage one byte off its alignment: writing its whole blocks is refused.
        let mut stage = Stage::new().unwrap();
        stage.start += 1;
        let mut f = DirectFile {
            file: open_direct(&path).unwrap(),
            stage: Some(stage),
        };
        let want = bytes(5 * ALIGN + 77);
        let (staged, rest) = want.split_at(3 * ALIGN + 5);
        f.write_all(staged).unwrap();
        let mut mem = Vec::with_capacity(rest.len() + 2 * ALIGN);
        let room = room_for(mem.as_ptr(), staged.len() as u64);
        mem.resize(room, 0);
        mem.extend_from_slice(rest);
        assert!(
            !f.write_in_place(&mut mem, room).unwrap(),
            "copied, not in place"
        );
        assert!(!f.is_direct(), "fell back after the refusal");
        f.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn leaving_direct_io_midway_keeps_the_bytes() {
        let Some((_dir, path)) = direct_path("left.csv") else {
            return;
        };
        let want = bytes(2 * STAGE + 12_345);
        let mut f = DirectFile::create_as(&path, true).unwrap();
        let (before, after) = want.split_at(STAGE + 7_001);
        f.write_all(before).unwrap();
        assert!(f.is_direct());
        f.leave_direct().unwrap();
        assert!(!f.is_direct());
        write_in_pieces(&mut f, after, &[3_000]);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
