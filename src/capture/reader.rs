//! [`CaptureReader`]: classic pcap (µs/ns, either byte order) and pcapng (any number of
//! sections and interfaces), from a file, a gzip file, stdin or any `Read`.
//!
//! Guarantees: the format is detected by magic number (gzip `1f 8b` first, then the inner
//! format), never by extension; frames borrow from one reused buffer;
//! every length read from the input is checked against [`MAX_CAPLEN`] / [`MAX_BLOCK_LEN`]
//! before it is used, so memory is bounded and no input can make the reader panic; frames
//! before any damage are delivered, then one [`CaptureError`] naming the byte offset of the
//! damaged record, then `Ok(None)` forever. Timestamps are exact integer nanoseconds.
//! Offsets in errors count bytes of the capture itself (after gzip decompression).
//! Must not: look above the link layer, or allocate per frame.

mod peek;
pub use peek::PeekCursor;

use super::pcapng::{self, Interface, epb, rd16, rd32};
use super::source::{Counting, Source};
use super::{CaptureError, Frame, LinkType};
use crate::time::Ts;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Largest captured length accepted for a pcap record when the file's snap length is
/// smaller: libpcap's MAXIMUM_SNAPLEN (262144), so every file libpcap writes is read.
pub const MAX_CAPLEN: u32 = 256 * 1024;
/// Largest pcap record or pcapng block accepted at all; bounds the stream buffer.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// Files this large or larger are read past the page cache, in chunks read ahead.
const MIN_READ_AHEAD: u64 = 64 << 20;
/// Most interfaces one pcapng section may describe (an IDB is ≥ 20 bytes, so without a cap
/// a hostile file could make the interface table as large as the file).
pub const MAX_INTERFACES: usize = 65_536;

/// pcap file header, record header and pcapng block header sizes.
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_LEN: usize = 16;
const NG_BLOCK_HEADER_LEN: usize = 8;
const NG_MIN_BLOCK_LEN: u32 = 12;
/// An Enhanced Packet Block up to its frame: block header and fixed fields.
const EPB_HEAD_LEN: usize = NG_BLOCK_HEADER_LEN + epb::DATA;
/// Bytes shown in a `NotACapture` error.
const MAGIC_SHOWN: usize = 8;

const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// The container format of the input (after gzip is peeled off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { nanos: bool, big_endian: bool },
    PcapNg,
}

/// Counts of pcapng blocks skipped because they carry no frames, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedBlocks {
    pub name_resolution: u64,
    pub interface_statistics: u64,
    pub decryption_secrets: u64,
    pub custom: u64,
    /// Any other (unknown or irrelevant) block type.
    pub other: u64,
}

/// What the reader has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames delivered.
    pub frames: u64,
    /// Packet blocks that could not be delivered but did not stop reading: an unknown
    /// interface id, or a captured length beyond the block.
    pub frames_damaged: u64,
    /// pcapng blocks skipped (total of `skipped`).
    pub blocks_skipped: u64,
    pub skipped: SkippedBlocks,
    /// pcapng interfaces described, over all sections (1 for classic pcap).
    pub interfaces: u64,
    /// pcapng sections (1 for classic pcap).
    pub sections: u64,
}

/// Parser state: which format, and what it needs per frame.
enum State {
    Pcap {
        big_endian: bool,
        /// Nanoseconds per unit of the fractional timestamp field (1000 or 1).
        frac_mul: i64,
        linktype: LinkType,
        /// Largest caplen accepted (see [`MAX_CAPLEN`]).
        caplen_limit: u32,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
    /// End of input, or after an error.
    Done,
}

/// Frame fields of a pcapng packet block, with the data as a range of the source buffer
/// (so the block loop need not hold a borrow).
struct FrameMeta {
    ts: Ts,
    linktype: LinkType,
    orig_len: u32,
    interface: u32,
    start: usize,
    len: usize,
}

enum Step {
    Frame(FrameMeta),
    Skipped,
    End,
}

/// Reads frames from one capture; see the module doc.
pub struct CaptureReader {
    src: Source,
    state: State,
    format: Format,
    gzip: bool,
    path: PathBuf,
    total_len: Option<u64>,
    ts_precision: u8,
    stats: CaptureStats,
}

impl CaptureReader {
    /// Opens a capture file; `-` reads stdin.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::open_reading_ahead(path, MIN_READ_AHEAD, super::read_ahead::CHUNK)
    }

    /// Whether the rest of the file is read in chunks read ahead.
    #[cfg(test)]
    pub(super) fn reads_ahead(&self) -> bool {
        self.src.reads_ahead()
    }

    /// [`Self::open`], a file of `min_len` bytes or more read ahead `chunk` bytes at a time.
    pub(super) fn open_reading_ahead(
        path: &Path,
        min_len: u64,
        chunk: usize,
    ) -> Result<CaptureReader, CaptureError> {
        if path.as_os_str() == "-" {
            return Self::from_stream(path.to_path_buf(), Box::new(io::stdin()), None, None);
        }
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory, not a capture file",
            )));
        }
        if !meta.is_file() {
            // A FIFO or device (`<(tcpdump -w -)`, /dev/stdin): no size known.
            return Self::from_stream(path.to_path_buf(), Box::new(file), None, None);
        }
        let len = meta.len();
        if len == 0 {
            return Err(CaptureError::Empty {
                path: path.to_path_buf(),
            });
        }
        // A second descriptor for reading the rest past the page cache, once the start has
        // shown the file is not compressed; for large files only (a small one is read in a
        // few calls and may well be in the cache).
        let direct = (len >= min_len && crate::direct_io::wanted())
            .then(|| crate::direct_io::open(std::fs::OpenOptions::new().read(true), path))
            .flatten()
            .map(|file| (file, chunk));
        Self::from_stream(path.to_path_buf(), Box::new(file), Some(len), direct)
    }

    /// Reads a capture from any stream (stdin, a socket, a test buffer); `name` appears in
    /// errors. gzip is detected and decompressed.
    pub fn from_read(name: &str, r: Box<dyn Read + Send>) -> Result<CaptureReader, CaptureError> {
        Self::from_stream(PathBuf::from(name), r, None, None)
    }

    /// A capture read from `r`, or after its first bytes from `direct` (the same file opened
    /// with `O_DIRECT`, and a chunk size) in chunks read ahead (see `read_ahead`) unless it
    /// is compressed.
    fn from_stream(
        path: PathBuf,
        r: Box<dyn Read + Send>,
        total_len: Option<u64>,
        direct: Option<(File, usize)>,
    ) -> Result<CaptureReader, CaptureError> {
        let mut src = Source::stream(r, None);
        let got = src
            .fill(GZIP_MAGIC.len())
            .map_err(|source| CaptureError::Read {
                path: path.clone(),
                offset: 0,
                source,
            })?;
        let is_gzip = got && src.bytes().get(src.pos..src.pos + 2) == Some(&GZIP_MAGIC[..]);
        if is_gzip {
            let count = Arc::new(AtomicU64::new(0));
            let raw = Counting {
                inner: src.into_reader(),
                count: Arc::clone(&count),
            };
            let gz = flate2::read::MultiGzDecoder::new(raw);
            src = Source::stream(Box::new(gz), Some(count));
        } else if let Some((file, chunk)) = direct {
            src.read_ahead(file, chunk);
        }
        let mut reader = Self::new(path, src, is_gzip, total_len);
        reader.detect()?;
        Ok(reader)
    }

    fn new(path: PathBuf, src: Source, gzip: bool, total_len: Option<u64>) -> CaptureReader {
        CaptureReader {
            src,
            state: State::Done,
            format: Format::PcapNg,
            gzip,
            path,
            total_len,
            ts_precision: 0,
            stats: CaptureStats::default(),
        }
    }

    /// Recognises the magic number and reads the file header (pcap) or the first section
    /// header (pcapng).
    fn detect(&mut self) -> Result<(), CaptureError> {
        let got = self.fill(PCAP_HEADER_LEN)?;
        if self.src.avail() == 0 {
            return Err(CaptureError::Empty {
                path: self.path.clone(),
            });
        }
        let head = self.unread();
        let magic: Option<[u8; 4]> = head.get(..4).and_then(|m| m.try_into().ok());
        let pcap = match magic {
            Some([0xD4, 0xC3, 0xB2, 0xA1]) => Some((false, false)),
            Some([0xA1, 0xB2, 0xC3, 0xD4]) => Some((false, true)),
            Some([0x4D, 0x3C, 0xB2, 0xA1]) => Some((true, false)),
            Some([0xA1, 0xB2, 0x3C, 0x4D]) => Some((true, true)),
            _ => None,
        };
        if let Some((nanos, big_endian)) = pcap {
            if !got {
                let remain = self.src.avail();
                return Err(self.damaged(
                    0,
                    format!(
                        "pcap file header cut short: {PCAP_HEADER_LEN} bytes needed, {remain} remain"
                    ),
                ));
            }
            let snaplen = rd32(head, 16, big_endian).unwrap_or(0);
            // The upper bits carry the FCS length and flags; the link type is the low 16.
            let linktype = LinkType(rd32(head, 20, big_endian).unwrap_or(0) & 0xFFFF);
            self.state = State::Pcap {
                big_endian,
                frac_mul: if nanos { 1 } else { 1000 },
                linktype,
                caplen_limit: snaplen.clamp(MAX_CAPLEN, MAX_BLOCK_LEN),
            };
            self.format = Format::Pcap { nanos, big_endian };
            self.ts_precision = if nanos { 9 } else { 6 };
            self.stats.interfaces = 1;
            self.stats.sections = 1;
            self.src.pos += PCAP_HEADER_LEN;
            return Ok(());
        }
        if magic == Some(pcapng::BT_SHB.to_le_bytes()) {
            self.state = State::PcapNg {
                big_endian: false,
                interfaces: Vec::new(),
            };
            self.format = Format::PcapNg;
            // Read the first section header now so a broken one is reported by `open`.
            return match self.next_block() {
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
        }
        let shown = head.get(..MAGIC_SHOWN).unwrap_or(head);
        let magic = shown
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        Err(CaptureError::NotACapture {
            path: self.path.clone(),
            magic,
        })
    }

    /// The next frame, `Ok(None)` at the end. After an error every call returns `Ok(None)`.
    /// Always inlined: as a call it returned the frame through memory and cost ~40
    /// instructions a frame more (-0.6 % on the hour's 1 M-frame slice).
    #[inline(always)]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.state {
            State::Pcap {
                big_endian,
                frac_mul,
                linktype,
                caplen_limit,
            } => self.next_pcap(big_endian, frac_mul, linktype, caplen_limit),
            State::PcapNg { .. } => {
                let meta = match self.next_epb_le() {
                    Some(m) => m,
                    None => loop {
                        match self.next_block()? {
                            Step::Frame(m) => break m,
                            Step::Skipped => {}
                            Step::End => return Ok(None),
                        }
                    },
                };
                self.stats.frames += 1;
                let data = self
                    .src
                    .bytes()
                    .get(meta.start..meta.start + meta.len)
                    .unwrap_or_default();
                Ok(Some(Frame {
                    ts: meta.ts,
                    linktype: meta.linktype,
                    orig_len: meta.orig_len,
                    interface: meta.interface,
                    data,
                }))
            }
            State::Done => Ok(None),
        }
    }

    /// The block nearly every frame comes in, read in one go: an Enhanced Packet Block of a
    /// little-endian section, whole in the buffer, with a known interface and a captured
    /// length that fits. Anything else, `None`: [`Self::next_block`] then reads the block,
    /// or names its damage, as always. For these blocks both reach the same frame; this
    /// only spares the general path's byte-order test and bounds check per field (a fifth
    /// of the reader's instructions a frame).
    #[inline(always)]
    fn next_epb_le(&mut self) -> Option<FrameMeta> {
        let State::PcapNg {
            big_endian: false,
            interfaces,
        } = &self.state
        else {
            return None;
        };
        let (p, avail) = (self.src.pos, self.src.avail());
        let block = self.src.bytes().get(p..p + avail)?;
        let head: &[u8; EPB_HEAD_LEN] = block.first_chunk()?;
        // Not `rd32`: its checked slicing is not folded away here (+0.9 % instructions on
        // the hour's slice); the indexes below are constants inside the 28-byte array.
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let len = word(4) as usize;
        if word(0) != pcapng::BT_EPB
            || len % 4 != 0
            || len < EPB_HEAD_LEN + 4
            || len > MAX_BLOCK_LEN as usize
        {
            return None;
        }
        let trailer = block.get(len - 4..len)?;
        if trailer != word(4).to_le_bytes() {
            return None;
        }
        let interface = word(NG_BLOCK_HEADER_LEN + epb::INTERFACE);
        let iface = interfaces.get(interface as usize)?;
        let caplen = word(NG_BLOCK_HEADER_LEN + epb::CAPLEN) as usize;
        if caplen > len - EPB_HEAD_LEN - 4 {
            return None;
        }
        let meta = FrameMeta {
            ts: iface.ts(
                word(NG_BLOCK_HEADER_LEN + epb::TS_HIGH),
                word(NG_BLOCK_HEADER_LEN + epb::TS_LOW),
            ),
            linktype: iface.linktype,
            orig_len: word(NG_BLOCK_HEADER_LEN + epb::ORIG_LEN),
            interface,
            start: p + EPB_HEAD_LEN,
            len: caplen,
        };
        self.src.pos += len;
        Some(meta)
    }

    /// Classic pcap: a 16-byte record header, then `caplen` bytes.
    #[inline(always)]
    fn next_pcap(
        &mut self,
        be: bool,
        frac_mul: i64,
        linktype: LinkType,
        caplen_limit: u32,
    ) -> Result<Option<Frame<'_>>, CaptureError> {
        if !self.fill(PCAP_RECORD_LEN)? {
            return self.end_or_cut(PCAP_RECORD_LEN, "record header", "needs");
        }
        let p = self.src.pos;
        let Some(hdr) = self.src.bytes().get(p..p + PCAP_RECORD_LEN) else {
            return Ok(None); // fill() guaranteed the bytes; unreachable
        };
        let w = |i: usize| {
            let b = [hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]];
            if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (secs, frac, caplen, orig_len) = (w(0), w(4), w(8), w(12));
        if caplen > caplen_limit {
            let at = self.src.offset();
            return Err(self.damaged(
                at,
                format!("record captured length {caplen} is absurd (limit {caplen_limit})"),
            ));
        }
        let total = PCAP_RECORD_LEN + caplen as usize;
        if !self.fill(total)? {
            return self.end_or_cut(total, "record", "header says");
        }
        let start = self.src.pos + PCAP_RECORD_LEN;
        self.src.pos += total;
        self.stats.frames += 1;
        // u32 seconds * 10^9 + u32 * 1000 < 2^63: no overflow possible.
        let ts = Ts(i64::from(secs) * Ts::NANOS_PER_SEC + i64::from(frac) * frac_mul);
        let data = self
            .src
            .bytes()
            .get(start..self.src.pos)
            .unwrap_or_default();
        Ok(Some(Frame {
            ts,
            linktype,
            orig_len,
            interface: 0,
            data,
        }))
    }

    /// Reads one pcapng block: a frame, something skipped, or the end.
    fn next_block(&mut self) -> Result<Step, CaptureError> {
        let State::PcapNg { big_endian, .. } = self.state else {
            return Ok(Step::End);
        };
        let at = self.src.offset();
        if !self.fill(NG_MIN_BLOCK_LEN as usize)? {
            let remain = self.src.avail();
            if remain == 0 {
                self.state = State::Done;
                return Ok(Step::End);
            }
            return Err(self.damaged(
                at,
                format!("block header cut short: {NG_MIN_BLOCK_LEN} bytes needed, {remain} remain"),
            ));
        }
        let p = self.src.pos;
        let head = self.src.bytes().get(p..p + 12).unwrap_or_default();
        let mut be = big_endian;
        if rd32(head, 0, false) == Some(pcapng::BT_SHB) {
            // A new section: its byte-order magic decides how everything after it is read.
            be = match head.get(8..12) {
                Some(m) if m == pcapng::BYTE_ORDER_MAGIC_BE => true,
                Some(m) if m == pcapng::BYTE_ORDER_MAGIC_LE => false,
                _ => {
                    let m = head.get(8..12).unwrap_or_default().to_vec();
                    return Err(self.damaged(
                        at,
                        format!("section header has a bad byte-order magic {m:02x?}"),
                    ));
                }
            };
            // Interfaces belong to their section.
            self.state = State::PcapNg {
                big_endian: be,
                interfaces: Vec::new(),
            };
        }
        let btype = rd32(head, 0, be).unwrap_or(0);
        let len = rd32(head, 4, be).unwrap_or(0);
        if len < NG_MIN_BLOCK_LEN || len % 4 != 0 || len > MAX_BLOCK_LEN {
            return Err(self.damaged(
                at,
                format!(
                    "block type {btype:#x} has a bad length {len} (must be a multiple of 4, \
                     12..={MAX_BLOCK_LEN})"
                ),
            ));
        }
        let len = len as usize;
        if !self.fill(len)? {
            let remain = self.src.avail();
            return Err(self.damaged(
                at,
                format!("block cut short: header says {len} bytes, {remain} remain"),
            ));
        }
        let p = self.src.pos;
        let trailing = rd32(self.src.bytes(), p + len - 4, be).unwrap_or(0);
        if trailing as usize != len {
            return Err(self.damaged(
                at,
                format!("block trailing length {trailing} does not match leading length {len}"),
            ));
        }
        // Consumed whatever it holds; the body stays in the buffer until the next fill.
        self.src.pos += len;
        let body_start = p + NG_BLOCK_HEADER_LEN;
        let body = self
            .src
            .bytes()
            .get(body_start..p + len - 4)
            .unwrap_or_default();

        // Re-borrow the state: `self.damaged` above needed all of `self`.
        let State::PcapNg { interfaces, .. } = &mut self.state else {
            return Ok(Step::End);
        };
        let (iface_id, ts_hi, ts_lo, caplen, orig_len, data_off) = match btype {
            pcapng::BT_SHB => {
                // BOM, version and section length: 16 bytes.
                if body.len() < 16 {
                    return Err(self.damaged(at, "section header block too short".into()));
                }
                self.stats.sections += 1;
                return Ok(Step::Skipped);
            }
            pcapng::BT_IDB => {
                let Some(iface) = Interface::parse(body, be) else {
                    return Err(self.damaged(at, "interface description block too short".into()));
                };
                if interfaces.len() >= MAX_INTERFACES {
                    return Err(self.damaged(
                        at,
                        format!("more than {MAX_INTERFACES} interfaces in one section"),
                    ));
                }
                interfaces.push(iface);
                self.stats.interfaces += 1;
                self.ts_precision = self.ts_precision.max(iface.digits);
                return Ok(Step::Skipped);
            }
            pcapng::BT_EPB => match (
                rd32(body, epb::INTERFACE, be),
                rd32(body, epb::TS_HIGH, be),
                rd32(body, epb::TS_LOW, be),
                rd32(body, epb::CAPLEN, be),
                rd32(body, epb::ORIG_LEN, be),
            ) {
                (Some(i), Some(hi), Some(lo), Some(cap), Some(orig)) => {
                    (i, hi, lo, cap, orig, epb::DATA)
                }
                _ => return self.damaged_frame(),
            },
            pcapng::BT_PB => match (
                rd16(body, 0, be),
                rd32(body, 4, be),
                rd32(body, 8, be),
                rd32(body, 12, be),
                rd32(body, 16, be),
            ) {
                (Some(i), Some(hi), Some(lo), Some(cap), Some(orig)) => {
                    (u32::from(i), hi, lo, cap, orig, 20)
                }
                _ => return self.damaged_frame(),
            },
            pcapng::BT_SPB => {
                let (Some(orig), Some(iface)) = (rd32(body, 0, be), interfaces.first()) else {
                    return self.damaged_frame();
                };
                // §4.4: no caplen field; the frame is what fits, cut at the snap length.
                let room = (body.len() - 4) as u32;
                let snap = if iface.snaplen == 0 {
                    u32::MAX
                } else {
                    iface.snaplen
                };
                let cap = orig.min(snap).min(room);
                return Ok(Step::Frame(FrameMeta {
                    // §4.4: an SPB has no timestamp; 0 (the epoch) is what Wireshark shows.
                    ts: Ts(0),
                    linktype: iface.linktype,
                    orig_len: orig,
                    interface: 0,
                    start: body_start + 4,
                    len: cap as usize,
                }));
            }
            other => {
                let s = &mut self.stats.skipped;
                match other {
                    pcapng::BT_NRB => s.name_resolution += 1,
                    pcapng::BT_ISB => s.interface_statistics += 1,
                    pcapng::BT_DSB => s.decryption_secrets += 1,
                    pcapng::BT_CB_COPY | pcapng::BT_CB_NOCOPY => s.custom += 1,
                    _ => s.other += 1,
                }
                self.stats.blocks_skipped += 1;
                return Ok(Step::Skipped);
            }
        };
        let Some(iface) = interfaces.get(iface_id as usize) else {
            return self.damaged_frame();
        };
        if caplen as usize > body.len() - data_off {
            return self.damaged_frame();
        }
        Ok(Step::Frame(FrameMeta {
            ts: iface.ts(ts_hi, ts_lo),
            linktype: iface.linktype,
            orig_len,
            interface: iface_id,
            start: body_start + data_off,
            len: caplen as usize,
        }))
    }

    /// A packet block whose framing is intact but whose frame cannot be delivered: count it
    /// and go on, as Wireshark does.
    #[cold]
    fn damaged_frame(&mut self) -> Result<Step, CaptureError> {
        self.stats.frames_damaged += 1;
        Ok(Step::Skipped)
    }

    /// At a record boundary: the clean end of the input, or a record cut short.
    #[cold]
    fn end_or_cut<T>(
        &mut self,
        need: usize,
        what: &str,
        says: &str,
    ) -> Result<Option<T>, CaptureError> {
        let remain = self.src.avail();
        if remain == 0 {
            self.state = State::Done;
            return Ok(None);
        }
        let at = self.src.offset();
        Err(self.damaged(
            at,
            format!("{what} cut short: {says} {need} bytes, {remain} remain"),
        ))
    }

    #[inline(always)]
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        match self.src.fill(need) {
            Ok(g) => Ok(g),
            Err(source) => {
                let offset = self.src.read_offset();
                Err(self.fail(|path| CaptureError::Read {
                    path,
                    offset,
                    source,
                }))
            }
        }
    }

    fn unread(&self) -> &[u8] {
        let p = self.src.pos;
        self.src
            .bytes()
            .get(p..p + self.src.avail())
            .unwrap_or_default()
    }

    #[cold]
    fn damaged(&mut self, offset: u64, reason: String) -> CaptureError {
        self.fail(|path| CaptureError::Damaged {
            path,
            offset,
            reason,
        })
    }

    /// Stops the reader (later calls return `Ok(None)`) and builds the error.
    #[cold]
    fn fail(&mut self, make: impl FnOnce(PathBuf) -> CaptureError) -> CaptureError {
        self.state = State::Done;
        make(self.path.clone())
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True when the input was gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Fractional digits of the finest timestamp resolution seen so far: 6 for µs pcap, 9
    /// for ns pcap, from `if_tsresol` for pcapng (0 before the first interface), at most 9.
    pub fn ts_precision(&self) -> u8 {
        self.ts_precision
    }

    /// Bytes of the underlying file or stream consumed so far (compressed bytes for gzip).
    pub fn bytes_consumed(&self) -> u64 {
        self.src.consumed()
    }

    /// Bytes the read buffer holds (tests: memory stays bounded).
    #[cfg(test)]
    pub(super) fn buffer_len(&self) -> usize {
        self.src.bytes().len()
    }

    /// Size of the underlying file, when known (not for stdin or pipes).
    pub fn total_len(&self) -> Option<u64> {
        self.total_len
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// The path given to [`open`](Self::open), or the name given to
    /// [`from_read`](Self::from_read).
    pub fn path(&self) -> &Path {
        &self.path
    }
}
