//! `-w FILE.pcapng`: records exactly the frames the analysis saw, optionally as a ring
//! buffer of files rotated by size or capture time (like `tcpdump -C/-G/-W`).
//!
//! Guarantees: every frame handed to [`Recorder::write`] lands in exactly one file, in order;
//! each file is a complete pcapng (section header, interface description, packets) and is
//! flushed when rotated away from or when [`Recorder::finish`] runs. Without rotation the
//! file is exactly FILE; with rotation files are FILE's stem plus `-NNNNN` (from 00000).
//! Must not: drop frames silently — a write error is returned and ends the recording.

use crate::capture::LinkType;
use crate::capture::write::PcapNgWriter;
use crate::time::Ts;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Files of one ring buffer at most (`--rotate-files`).
pub const MAX_ROTATE_FILES: usize = 100_000;

/// Enhanced Packet Block bytes besides the (padded) frame.
const EPB_OVERHEAD: u64 = 32;

/// Where and how to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordConfig {
    pub path: PathBuf,
    /// Start a new file once the current one holds this many bytes.
    pub rotate_size: Option<u64>,
    /// Start a new file once the current one spans this much capture time (nanoseconds).
    pub rotate_time: Option<i64>,
    /// Keep only the newest N files (ring buffer); needs a size or time rotation.
    pub rotate_files: Option<usize>,
}

impl RecordConfig {
    fn rotates(&self) -> bool {
        self.rotate_size.is_some() || self.rotate_time.is_some()
    }

    /// The path of file number `index`.
    pub fn file_path(&self, index: u64) -> PathBuf {
        if !self.rotates() {
            return self.path.clone();
        }
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "capture".into());
        let name = match self.path.extension() {
            Some(ext) => format!("{stem}-{index:05}.{}", ext.to_string_lossy()),
            None => format!("{stem}-{index:05}"),
        };
        self.path.with_file_name(name)
    }
}

/// A pcapng recorder with rotation.
pub struct Recorder {
    config: RecordConfig,
    iface: String,
    linktype: LinkType,
    snaplen: u32,
    writer: Option<PcapNgWriter<BufWriter<File>>>,
    index: u64,
    bytes: u64,
    opened_at: Option<Ts>,
    /// Files written so far, oldest first (only kept for `rotate_files`).
    kept: VecDeque<PathBuf>,
    frames: u64,
    files: u64,
}

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Recorder {
    /// Creates the first file (call before dropping privileges; see [`Recorder::first_path`]).
    pub fn create(
        config: RecordConfig,
        iface: &str,
        linktype: LinkType,
        snaplen: u32,
    ) -> io::Result<Recorder> {
        let mut r = Recorder {
            config,
            iface: iface.to_string(),
            linktype,
            snaplen,
            writer: None,
            index: 0,
            bytes: 0,
            opened_at: None,
            kept: VecDeque::new(),
            frames: 0,
            files: 0,
        };
        r.open(0)?;
        Ok(r)
    }

    /// The path of the first file.
    pub fn first_path(&self) -> PathBuf {
        self.config.file_path(0)
    }

    fn open(&mut self, index: u64) -> io::Result<()> {
        let path = self.config.file_path(index);
        let file = File::create(&path).map_err(|e| annotate(&path, e))?;
        let mut w = PcapNgWriter::new(BufWriter::with_capacity(1 << 20, file), "p2ptrace live")
            .map_err(|e| annotate(&path, e))?;
        w.add_interface(&self.iface, self.linktype, self.snaplen)
            .map_err(|e| annotate(&path, e))?;
        self.writer = Some(w);
        self.index = index;
        self.bytes = 0;
        self.opened_at = None;
        self.files += 1;
        if let Some(keep) = self.config.rotate_files {
            self.kept.push_back(path);
            while self.kept.len() > keep.clamp(1, MAX_ROTATE_FILES) {
                if let Some(old) = self.kept.pop_front() {
                    std::fs::remove_file(&old).map_err(|e| annotate(&old, e))?;
                }
            }
        }
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(w) => {
                let path = self.config.file_path(self.index);
                w.finish().map(drop).map_err(|e| annotate(&path, e))
            }
            None => Ok(()),
        }
    }

    /// Records one frame (rotating first when the current file is full).
    pub fn write(&mut self, ts: Ts, data: &[u8], orig_len: u32) -> io::Result<()> {
        let full = self.bytes > 0
            && (self.config.rotate_size.is_some_and(|max| self.bytes >= max)
                || match (self.config.rotate_time, self.opened_at) {
                    (Some(span), Some(t0)) => ts.since(t0) >= span,
                    _ => false,
                });
        if full {
            self.close_current()?;
            self.open(self.index + 1)?;
        }
        let Some(w) = &mut self.writer else {
            return Err(io::Error::other("the recording was closed after an error"));
        };
        let orig = orig_len.max(data.len() as u32);
        if let Err(e) = w.write_packet(0, ts, data, orig) {
            let path = self.config.file_path(self.index);
            self.writer = None;
            return Err(annotate(&path, e));
        }
        self.opened_at.get_or_insert(ts);
        self.bytes += EPB_OVERHEAD + (data.len() as u64).next_multiple_of(4);
        self.frames += 1;
        Ok(())
    }

    /// Frames recorded and files created.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames, self.files)
    }

    /// Flushes and closes the current file.
    pub fn finish(mut self) -> io::Result<()> {
        self.close_current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_names_files_by_index_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig {
            path: dir.path().join("cap.pcapng"),
            rotate_size: Some(200),
            rotate_time: None,
            rotate_files: Some(2),
        };
        let mut r = Recorder::create(config.clone(), "lo", LinkType::ETHERNET, 1500).unwrap();
        for i in 0..10 {
            r.write(Ts(1_000 + i), &[0u8; 100], 100).unwrap();
        }
        assert_eq!(r.counts(), (10, 5));
        r.finish().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["cap-00003.pcapng", "cap-00004.pcapng"]);
    }

    #[test]
    fn time_rotation_uses_capture_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig {
            path: dir.path().join("t.pcapng"),
            rotate_time: Some(Ts::NANOS_PER_SEC),
            ..RecordConfig::default()
        };
        let mut r = Recorder::create(config, "lo", LinkType::ETHERNET, 1500).unwrap();
        for s in 0..3 {
            r.write(Ts(s * Ts::NANOS_PER_SEC + 5), &[1u8; 60], 60)
                .unwrap();
            r.write(Ts(s * Ts::NANOS_PER_SEC + 6), &[1u8; 60], 60)
                .unwrap();
        }
        assert_eq!(r.counts(), (6, 3));
        r.finish().unwrap();
        let mut total = 0;
        for i in 0..3 {
            let path = dir.path().join(format!("t-{i:05}.pcapng"));
            let mut rd = crate::capture::CaptureReader::open(&path).unwrap();
            while rd.next_frame().unwrap().is_some() {
                total += 1;
            }
        }
        assert_eq!(total, 6);
    }
}
