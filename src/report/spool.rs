//! Ordered spool: re-orders already-encoded rows (e.g. CSV lines) by a `(start ns, seq)` key
//! with bounded memory.
//!
//! The flow table finishes flows in END order, but `flows.csv` is sorted by START. The table
//! knows the earliest start among still-live flows (the watermark), so every finished row
//! below it can be written at once: [`OrderedSpool::release_below`]. Only a long-lived flow
//! holding the watermark back makes rows pile up; past `max_mem_bytes` they are sorted and
//! spilled as one run to a temp file, and [`OrderedSpool::finish`] k-way merges the runs with
//! what is still in memory.
//!
//! Guarantees:
//! - Output is sorted by key; rows with equal keys keep push order (stable), also across runs.
//! - Every pushed row is written exactly once (by `release_below` or `finish`).
//! - Resident row memory stays within about 2 × `max_mem_bytes` + [`MAX_ROW_LEN`] (released
//!   rows leave holes that are compacted once they outweigh live rows), plus the buffers
//!   of one run's writer while it spills (a [`FileSink`]: about 8 MiB).
//! - At most [`MAX_RUNS`] spill files exist; more are merged into one first, so a merge opens
//!   at most `MAX_RUNS + 1` files and none are held open between calls.
//! - Spill files are deleted when merged away, when the spool finishes, and when it is dropped
//!   (also after an error).
//!
//! Must not: interpret row bytes, write anything but the row bytes to the output, or let a row
//! through out of order — a push below an already released watermark is an error, not a
//! silently unsorted file. After an I/O error the output is unspecified.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

use tempfile::TempPath;

use super::file_sink::FileSink;

/// Sort key of a row: (start time in ns, sequence number breaking ties).
pub type SpoolKey = (i64, u64);

/// Largest row accepted by [`OrderedSpool::push`]; a flow CSV line is a few hundred bytes, so
/// anything near this is a bug upstream. Also caps the length read back from a spill file.
pub const MAX_ROW_LEN: usize = 1 << 20;

/// Most spill runs kept on disk; one more spill merges them all into a single run first.
pub const MAX_RUNS: usize = 64;

/// Spill file names start with this, so a leftover is recognisable.
const SPILL_PREFIX: &str = "p2ptrace-spool-";

/// Buffer of each run's reader during a merge (at most `MAX_RUNS + 1` open at once: 4 MiB).
const SPILL_READ_BUF: usize = 64 << 10;

/// Memory charged per buffered row on top of its bytes (its index entry).
const ENTRY_OVERHEAD: usize = size_of::<Entry>();

/// A buffered row: its key and where its bytes sit in `OrderedSpool::data`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: SpoolKey,
    off: usize,
    len: usize,
}

/// Bounded-memory re-orderer of encoded rows; see the module docs.
#[derive(Debug)]
pub struct OrderedSpool {
    max_mem_bytes: usize,
    spill_dir: PathBuf,
    /// Row bytes of all buffered entries, back to back; one arena so a push does not allocate.
    data: Vec<u8>,
    entries: Vec<Entry>,
    /// Whether `entries` is known to be sorted (nothing pushed since the last sort).
    sorted: bool,
    /// Smallest key in `entries`: a watermark at or below it releases nothing, so the
    /// buffer is not even sorted (a long-lived flow holding the watermark back would
    /// otherwise make every call re-sort everything buffered).
    min_key: Option<SpoolKey>,
    /// Bytes of `data` still referenced by `entries` (the rest are released holes).
    live_bytes: usize,
    /// The newest run's writer, until the next spill or merge waits for it. Declared
    /// before `runs` so that a dropped spool finishes writing before deleting the files.
    writing: Option<FileSink>,
    /// Spilled runs, oldest first; order matters for stability of equal keys.
    runs: Vec<TempPath>,
    /// Highest watermark passed to `release_below`; pushes below it would break the order.
    floor: Option<SpoolKey>,
}

impl OrderedSpool {
    /// A spool that spills once buffered rows exceed `max_mem_bytes`, into `spill_dir`
    /// (`None` = [`std::env::temp_dir`]). Nothing touches the disk until the first spill.
    pub fn new(max_mem_bytes: usize, spill_dir: Option<PathBuf>) -> Self {
        Self {
            max_mem_bytes,
            spill_dir: spill_dir.unwrap_or_else(std::env::temp_dir),
            data: Vec::new(),
            entries: Vec::new(),
            sorted: true,
            min_key: None,
            live_bytes: 0,
            writing: None,
            runs: Vec::new(),
            floor: None,
        }
    }

    /// Buffers one row. Fails with `InvalidInput` if the row is longer than [`MAX_ROW_LEN`]
    /// or its key is below a watermark already released (the caller's watermark was wrong),
    /// and with the I/O error if a needed spill fails (the row stays buffered then).
    pub fn push(&mut self, key: SpoolKey, row: &[u8]) -> io::Result<()> {
        if row.len() > MAX_ROW_LEN {
            return Err(invalid_input(format!(
                "spool row of {} bytes exceeds MAX_ROW_LEN {MAX_ROW_LEN}",
                row.len()
            )));
        }
        if let Some(floor) = self.floor.filter(|floor| key < *floor) {
            return Err(invalid_input(format!(
                "spool key {key:?} is below the released watermark {floor:?}"
            )));
        }
        if self.sorted && self.entries.last().is_some_and(|last| key < last.key) {
            self.sorted = false;
        }
        self.min_key = Some(self.min_key.map_or(key, |m| m.min(key)));
        self.entries.push(Entry {
            key,
            off: self.data.len(),
            len: row.len(),
        });
        self.data.extend_from_slice(row);
        self.live_bytes += row.len();
        if self.buffered_bytes() > self.max_mem_bytes {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes, in key order, every buffered row with key < `watermark`, and promises the
    /// caller will push no key below it afterwards. Once any run has spilled this writes
    /// nothing: spilled rows may lie below the watermark too, so every row waits for the
    /// merge in [`finish`](Self::finish) (order over earliness; spills are the rare case).
    pub fn release_below(&mut self, watermark: SpoolKey, out: &mut impl Write) -> io::Result<()> {
        self.floor = self.floor.max(Some(watermark));
        if !self.runs.is_empty() || self.min_key.is_none_or(|m| m >= watermark) {
            return Ok(());
        }
        self.sort_entries();
        let mut n = 0;
        for e in self.entries.iter().take_while(|e| e.key < watermark) {
            out.write_all(row_of(&self.data, e))?;
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        for e in self.entries.drain(..n) {
            self.live_bytes -= e.len;
        }
        self.min_key = self.entries.first().map(|e| e.key); // sorted
        if self.entries.is_empty() {
            // The streaming common case: everything went out, the arena restarts for free.
            self.data.clear();
        } else if self.data.len() - self.live_bytes > self.live_bytes {
            self.compact();
        }
        Ok(())
    }

    /// Writes every remaining row in key order, merging memory with the spilled runs, then
    /// flushes `out`. Spill files are deleted when this returns, error or not.
    pub fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        self.sort_entries();
        let readers = self.open_runs()?;
        merge(readers, &self.entries, &self.data, |_, row| {
            out.write_all(row)
        })?;
        out.flush()
    }

    /// Memory charged against `max_mem_bytes`: live row bytes plus index overhead.
    pub fn buffered_bytes(&self) -> usize {
        self.live_bytes + self.entries.len() * ENTRY_OVERHEAD
    }

    /// Number of spilled runs currently on disk (at most [`MAX_RUNS`]).
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    fn sort_entries(&mut self) {
        if !self.sorted {
            // Stable in effect: rows of equal keys sit in `data` in push order (pushes
            // append, and `compact` keeps the sorted order), so their offsets break the tie.
            // The unstable sort moves entries in place instead of through a buffer.
            self.entries.sort_unstable_by_key(|e| (e.key, e.off));
            self.sorted = true;
        }
    }

    /// Copies live rows into a fresh arena so released holes stop costing memory.
    fn compact(&mut self) {
        let mut data = Vec::with_capacity(self.live_bytes);
        for e in &mut self.entries {
            let off = data.len();
            data.extend_from_slice(row_of(&self.data, e));
            e.off = off;
        }
        self.data = data;
    }

    /// Writes the sorted in-memory rows as one new run and empties memory. The run is
    /// written by a [`FileSink`] — beside the analysis, and past the page cache where the
    /// system allows: the runs of a long capture are hundreds of MB that the page cache
    /// would take in fresh pages (on the simulator's hour that copy cost ~0.5 s of
    /// system time on a VM) only to be read back once.
    fn spill(&mut self) -> io::Result<()> {
        self.sort_entries();
        self.finish_writing()?;
        let (mut w, path) = self.new_run()?;
        for e in &self.entries {
            write_record(&mut w, e.key, row_of(&self.data, e))?;
        }
        w.flush()?;
        self.writing = Some(w);
        self.runs.push(path);
        self.entries.clear();
        self.data.clear();
        self.live_bytes = 0;
        self.min_key = None;
        if self.runs.len() > MAX_RUNS {
            self.merge_runs()?;
        }
        Ok(())
    }

    /// Replaces all runs by one merged run, keeping the number of files bounded.
    fn merge_runs(&mut self) -> io::Result<()> {
        let (mut w, path) = self.new_run()?;
        let readers = self.open_runs()?;
        merge(readers, &[], &[], |key, row| write_record(&mut w, key, row))?;
        w.finish()?;
        // Dropping the old paths deletes their files.
        self.runs = vec![path];
        Ok(())
    }

    /// A new, empty run file and its writer.
    fn new_run(&self) -> io::Result<(FileSink, TempPath)> {
        let path = tempfile::Builder::new()
            .prefix(SPILL_PREFIX)
            .suffix(".run")
            .tempfile_in(&self.spill_dir)?
            .into_temp_path();
        Ok((FileSink::create(&path)?, path))
    }

    /// Waits until the newest run is on disk, and returns its writer's error, if any.
    fn finish_writing(&mut self) -> io::Result<()> {
        self.writing.take().map_or(Ok(()), |mut w| w.finish())
    }

    /// Readers of every run, oldest first, once they are all written.
    fn open_runs(&mut self) -> io::Result<Vec<RunReader<BufReader<File>>>> {
        self.finish_writing()?;
        self.runs
            .iter()
            .map(|p| {
                Ok(RunReader::new(BufReader::with_capacity(
                    SPILL_READ_BUF,
                    File::open(p)?,
                )))
            })
            .collect()
    }
}

/// Bytes of a buffered row. `off`/`len` are set by this module from `data` itself, never
/// from input, so they are always in range.
fn row_of<'a>(data: &'a [u8], e: &Entry) -> &'a [u8] {
    &data[e.off..e.off + e.len]
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A spill record's head: start i64 LE, seq u64 LE, row length u32 LE (the row bytes follow).
const RECORD_HEAD_LEN: usize = 20;

/// Spill record: the head, then the row bytes.
fn write_record(w: &mut impl Write, key: SpoolKey, row: &[u8]) -> io::Result<()> {
    let len = u32::try_from(row.len()).map_err(|_| invalid_input("spool row too long".into()))?;
    let mut head = [0u8; RECORD_HEAD_LEN];
    head[..8].copy_from_slice(&key.0.to_le_bytes());
    head[8..16].copy_from_slice(&key.1.to_le_bytes());
    head[16..].copy_from_slice(&len.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(row)
}

/// Sequential reader of one run; `row` holds the current record's bytes (reused buffer).
struct RunReader<R> {
    r: R,
    row: Vec<u8>,
}

impl<R: BufRead> RunReader<R> {
    fn new(r: R) -> Self {
        Self { r, row: Vec::new() }
    }

    /// Reads the next record into `self.row`; `None` at a clean end of the run.
    fn advance(&mut self) -> io::Result<Option<SpoolKey>> {
        if self.r.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let mut head = [0u8; RECORD_HEAD_LEN];
        self.r.read_exact(&mut head)?;
        let (start, rest) = head.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let (seq, rest) = rest.split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
        let len = rest.first_chunk::<4>().copied().unwrap_or_default();
        let len = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_ROW_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("spool run record of {len} bytes exceeds MAX_ROW_LEN {MAX_ROW_LEN}"),
            ));
        }
        self.row.resize(len, 0);
        self.r.read_exact(&mut self.row)?;
        Ok(Some((i64::from_le_bytes(*start), u64::from_le_bytes(*seq))))
    }
}

/// K-way merge of `runs` (oldest first) and the sorted in-memory `mem` rows into `sink`.
/// Ties go to the lower source index — older runs, then memory — which keeps equal keys in
/// push order.
fn merge<R: BufRead>(
    mut runs: Vec<RunReader<R>>,
    mem: &[Entry],
    data: &[u8],
    mut sink: impl FnMut(SpoolKey, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mem_src = runs.len();
    let mut heap = BinaryHeap::with_capacity(runs.len() + 1);
    for (src, run) in runs.iter_mut().enumerate() {
        if let Some(key) = run.advance()? {
            heap.push(Reverse((key, src)));
        }
    }
    let mut mem_iter = mem.iter().peekable();
    if let Some(e) = mem_iter.peek() {
        heap.push(Reverse((e.key, mem_src)));
    }
    // The source's next key replaces its head in place: one sift per row, not a pop and a
    // push.
    while let Some(mut head) = heap.peek_mut() {
        let Reverse((key, src)) = *head;
        let next = if let Some(run) = runs.get_mut(src) {
            sink(key, &run.row)?;
            run.advance()?
        } else if let Some(e) = mem_iter.next() {
            sink(e.key, row_of(data, e))?;
            mem_iter.peek().map(|next| next.key)
        } else {
            None
        };
        match next {
            Some(next) => *head = Reverse((next, src)),
            None => drop(PeekMut::pop(head)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A writer that fails every write, to check errors come back to the caller.
    struct FailingWriter;

    impl Write for FailingWriter {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn row(key: SpoolKey, i: usize) -> Vec<u8> {
        format!("{},{},{i}\n", key.0, key.1).into_bytes()
    }

    /// Spill files currently in `dir`.
    #[track_caller]
    fn spill_files(dir: &tempfile::TempDir) -> usize {
        std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap()
    }

    /// Expected output: rows stably sorted by key.
    fn stably_sorted(rows: &[(SpoolKey, Vec<u8>)]) -> Vec<u8> {
        let mut sorted = rows.to_vec();
        sorted.sort_by_key(|(k, _)| *k);
        sorted.into_iter().flat_map(|(_, r)| r).collect()
    }

    #[test]
    fn release_below_writes_exactly_rows_under_watermark() {
        let mut spool = OrderedSpool::new(1 << 20, None);
        for key in [(5, 0), (1, 0), (3, 1), (3, 0), (7, 0)] {
            spool
                .push(key, format!("{}.{};", key.0, key.1).as_bytes())
                .unwrap();
        }
        let mut out = Vec::new();
        spool.release_below((3, 1), &mut out).unwrap();
        assert_eq!(out, b"1.0;3.0;");
        out.clear();
        spool.release_below((3, 1), &mut out).unwrap();
        assert_eq!(out, b"", "a repeated watermark releases nothing new");
        spool.push((6, 0), b"6.0;").unwrap();
        spool.release_below((7, 0), &mut out).unwrap();
        assert_eq!(out, b"3.1;5.0;6.0;");
        out.clear();
        spool.finish(&mut out).unwrap();
        assert_eq!(out, b"7.0;");
    }

    #[test]
    fn release_below_frees_memory_of_released_rows() {
        let mut spool = OrderedSpool::new(1 << 20, None);
        for i in 0..100 {
            spool.push((100 - i, 0), &[b'x'; 50]).unwrap();
        }
        let mut out = Vec::new();
        spool.release_below((90, 0), &mut out).unwrap();
        assert_eq!(out.len(), 89 * 50);
        assert_eq!(spool.buffered_bytes(), 11 * (50 + ENTRY_OVERHEAD));
        assert!(
            spool.data.len() <= 2 * spool.live_bytes,
            "holes were compacted"
        );
    }

    #[test]
    fn release_below_holds_rows_once_a_run_has_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = OrderedSpool::new(64, Some(dir.path().to_path_buf()));
        let rows: Vec<_> = (0..10).rev().map(|s| ((s, 0), row((s, 0), 0))).collect();
        for (k, r) in &rows {
            spool.push(*k, r).unwrap();
        }
        assert!(spool.run_count() > 0);
        let mut out = Vec::new();
        spool.release_below((100, 0), &mut out).unwrap();
        assert!(
            out.is_empty(),
            "rows wait for the final merge once runs exist"
        );
        spool.finish(&mut out).unwrap();
        assert_eq!(out, stably_sorted(&rows));
    }

    #[test]
    fn push_below_released_watermark_is_rejected() {
        let mut spool = OrderedSpool::new(1 << 20, None);
        spool.release_below((10, 5), &mut Vec::new()).unwrap();
        let err = spool.push((10, 4), b"late").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        spool.push((10, 5), b"on time").unwrap();
    }

    #[test]
    fn oversized_row_is_rejected() {
        let mut spool = OrderedSpool::new(1 << 20, None);
        let err = spool.push((0, 0), &vec![0; MAX_ROW_LEN + 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(spool.buffered_bytes(), 0);
    }

    #[test]
    fn many_spills_merge_runs_and_stay_sorted() {
        let dir = tempfile::tempdir().unwrap();
        // A zero cap spills on every push, so 3 × MAX_RUNS pushes force several run merges.
        let mut spool = OrderedSpool::new(0, Some(dir.path().to_path_buf()));
        let mut rows = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..3 * MAX_RUNS {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = ((x >> 40) as i64 % 50 - 25, (x >> 20) % 4);
            rows.push((key, row(key, i)));
            spool.push(key, &rows[i].1).unwrap();
            assert!(spool.run_count() <= MAX_RUNS);
            assert!(spill_files(&dir) <= MAX_RUNS);
        }
        let mut out = Vec::new();
        spool.finish(&mut out).unwrap();
        assert_eq!(out, stably_sorted(&rows));
    }

    /// Runs go past the page cache where the disk allows (a run of the simulator's hour is
    /// ~16 MB of fresh page-cache pages otherwise), read back as written.
    #[test]
    fn runs_are_written_directly_where_the_disk_allows() {
        let (dir, direct) = crate::report::direct_file::disk_dir();
        let mut spool = OrderedSpool::new(100_000, Some(dir.path().to_path_buf()));
        let rows: Vec<_> = (0..10_000)
            .rev()
            .map(|s| ((s, 0), row((s, 0), 7)))
            .collect();
        for (k, r) in &rows {
            spool.push(*k, r).unwrap();
        }
        assert!(spool.run_count() >= 2, "{} runs", spool.run_count());
        let mut newest = spool.writing.take().expect("the newest run's writer");
        newest.finish().unwrap();
        assert_eq!(newest.wrote_directly(), Some(direct));
        let mut out = Vec::new();
        spool.finish(&mut out).unwrap();
        assert_eq!(out, stably_sorted(&rows));
        let left = std::fs::read_dir(dir.path()).unwrap().filter(|f| {
            let name = f.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with(SPILL_PREFIX)
        });
        assert_eq!(left.count(), 0, "runs left behind");
    }

    #[test]
    fn spill_files_are_removed_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = OrderedSpool::new(100, Some(dir.path().to_path_buf()));
        for i in 0..50 {
            spool.push((50 - i, 0), &row((50 - i, 0), 0)).unwrap();
        }
        assert!(spill_files(&dir) > 0);
        assert_eq!(spill_files(&dir), spool.run_count());
        spool.finish(&mut Vec::new()).unwrap();
        assert_eq!(spill_files(&dir), 0);
    }

    #[test]
    fn spill_files_are_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = OrderedSpool::new(100, Some(dir.path().to_path_buf()));
        for i in 0..50 {
            spool.push((i, 0), &row((i, 0), 0)).unwrap();
        }
        assert!(spill_files(&dir) > 0);
        drop(spool);
        assert_eq!(spill_files(&dir), 0);
    }

    #[test]
    fn spill_files_are_removed_when_finish_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = OrderedSpool::new(100, Some(dir.path().to_path_buf()));
        for i in 0..50 {
            spool.push((i, 0), &row((i, 0), 0)).unwrap();
        }
        assert!(spool.finish(&mut FailingWriter).is_err());
        assert_eq!(spill_files(&dir), 0);
    }

    #[test]
    fn writer_error_is_propagated_from_release_below() {
        let mut spool = OrderedSpool::new(1 << 20, None);
        spool.push((1, 0), b"row").unwrap();
        let err = spool.release_below((2, 0), &mut FailingWriter).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn writer_error_is_propagated_from_finish() {
        let mut spool = OrderedSpool::new(1 << 20, None);
        spool.push((1, 0), b"row").unwrap();
        let err = spool.finish(&mut FailingWriter).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn unusable_spill_dir_is_reported_by_push() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut spool = OrderedSpool::new(0, Some(missing));
        assert!(spool.push((1, 0), b"row").is_err());
        let mut out = Vec::new();
        spool.finish(&mut out).unwrap();
        assert_eq!(out, b"row", "a row whose spill failed stays buffered");
    }

    #[test]
    fn run_reader_rejects_oversized_and_truncated_records() {
        let mut rec = Vec::new();
        write_record(&mut rec, (1, 2), b"abc").unwrap();
        let mut r = RunReader::new(&rec[..]);
        assert_eq!(r.advance().unwrap(), Some((1, 2)));
        assert_eq!(r.row, b"abc");
        assert_eq!(r.advance().unwrap(), None);

        let mut r = RunReader::new(&rec[..rec.len() - 1]);
        assert_eq!(
            r.advance().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );

        let mut huge = rec[..16].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = RunReader::new(&huge[..]);
        assert_eq!(r.advance().unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    /// Pushes `rows` in order as the flow table does, releasing after each push below the
    /// smallest key still to come, then finishes: everything the spool wrote.
    fn streamed(mut spool: OrderedSpool, rows: &[(SpoolKey, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (k, r)) in rows.iter().enumerate() {
            spool.push(*k, r).unwrap();
            let watermark = rows[i + 1..].iter().map(|(k, _)| *k).min();
            spool
                .release_below(watermark.unwrap_or((i64::MAX, u64::MAX)), &mut out)
                .unwrap();
        }
        spool.finish(&mut out).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random keys (with duplicates) in random order under a tiny cap: many spills and
        /// run merges, yet the output is the complete, stably sorted input.
        #[test]
        fn finish_emits_every_row_stably_sorted_under_tiny_cap(
            keys in prop::collection::vec((-40i64..40, 0u64..4), 0..300),
            cap in 0usize..256,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut spool = OrderedSpool::new(cap, Some(dir.path().to_path_buf()));
            let rows: Vec<_> = keys.iter().enumerate().map(|(i, k)| (*k, row(*k, i))).collect();
            for (k, r) in &rows {
                spool.push(*k, r).unwrap();
            }
            let mut out = Vec::new();
            spool.finish(&mut out).unwrap();
            prop_assert_eq!(out, stably_sorted(&rows));
            prop_assert_eq!(spill_files(&dir), 0);
        }

        /// The flow-table pattern: rows pushed in END order, released below the earliest
        /// start not yet pushed; the concatenated output is the sorted input.
        #[test]
        fn watermark_streaming_emits_every_row_sorted(
            keys in prop::collection::vec((-40i64..40, 0u64..1000), 0..300),
            cap in prop_oneof![0usize..512, Just(usize::MAX)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let spool = OrderedSpool::new(cap, Some(dir.path().to_path_buf()));
            let rows: Vec<_> = keys.iter().enumerate().map(|(i, k)| (*k, row(*k, i))).collect();
            prop_assert_eq!(streamed(spool, &rows), stably_sorted(&rows));
        }

        /// Many equal keys, released as they stream and compacted in memory (no spill):
        /// rows of one key still come out in push order.
        #[test]
        fn equal_keys_keep_push_order_across_releases_and_compaction(
            keys in prop::collection::vec((-3i64..3, 0u64..2), 0..300),
        ) {
            let spool = OrderedSpool::new(usize::MAX, None);
            let rows: Vec<_> = keys.iter().enumerate().map(|(i, k)| (*k, row(*k, i))).collect();
            prop_assert_eq!(streamed(spool, &rows), stably_sorted(&rows));
        }
    }
}
