//! Reader tests: every format variant read back exactly, streaming with 1-byte reads, gzip,
//! each kind of bad input with its variant and offset, and truncation/bit-flip sweeps.

use super::testutil::{NgWriter, OneByte, PcapWriter, gzip};
use super::*;
use crate::time::Ts;
use std::io::Cursor;
use std::path::Path;

/// An owned copy of a frame, for comparing whole captures.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    ts: Ts,
    linktype: LinkType,
    orig_len: u32,
    interface: u32,
    data: Vec<u8>,
}

fn own(f: &Frame<'_>) -> Owned {
    Owned {
        ts: f.ts,
        linktype: f.linktype,
        orig_len: f.orig_len,
        interface: f.interface,
        data: f.data.to_vec(),
    }
}

/// Reads everything; returns the frames and the error that ended reading, if any.
#[track_caller]
fn drain(r: &mut CaptureReader) -> (Vec<Owned>, Option<CaptureError>) {
    let mut out = Vec::new();
    loop {
        match r.next_frame() {
            Ok(Some(f)) => out.push(own(&f)),
            Ok(None) => return (out, None),
            Err(e) => {
                // After an error the reader stays finished.
                assert!(matches!(r.next_frame(), Ok(None)));
                return (out, Some(e));
            }
        }
    }
}

fn mem(bytes: &[u8]) -> Result<CaptureReader, CaptureError> {
    CaptureReader::from_read("mem", Box::new(Cursor::new(bytes.to_vec())))
}

fn one_byte(bytes: &[u8]) -> Result<CaptureReader, CaptureError> {
    CaptureReader::from_read("slow", Box::new(OneByte(Cursor::new(bytes.to_vec()))))
}

/// Writes `bytes` to a temporary file and opens it (the path a capture file takes).
fn file(bytes: &[u8]) -> (tempfile::NamedTempFile, Result<CaptureReader, CaptureError>) {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f.flush().expect("flush temp file");
    let r = CaptureReader::open(f.path());
    (f, r)
}

#[track_caller]
fn read_all_ways(bytes: &[u8]) -> Vec<Owned> {
    let (frames, err) = drain(&mut mem(bytes).expect("open mem"));
    assert!(err.is_none(), "{err:?}");
    let (slow, err) = drain(&mut one_byte(bytes).expect("open slow"));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(slow, frames, "1-byte streaming differs");
    let (_tmp, r) = file(bytes);
    let (from_file, err) = drain(&mut r.expect("open file"));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(from_file, frames, "file differs");
    let (gz, err) = drain(&mut mem(&gzip(bytes)).expect("open gzip"));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(gz, frames, "gzip differs");
    frames
}

fn sample_pcap(nanos: bool, be: bool) -> Vec<u8> {
    let mut w = PcapWriter::new(nanos, be, 65535, 1);
    w.record(1_700_000_000, 123_456, 60, &[0xAA; 60])
        .record(1_700_000_001, 999_999, 1514, &[0xBB; 100])
        .record(u32::MAX, 0, 0, &[]);
    w.buf
}

#[test]
fn pcap_all_four_variants_read_back_exactly() {
    for nanos in [false, true] {
        for be in [false, true] {
            let bytes = sample_pcap(nanos, be);
            let frames = read_all_ways(&bytes);
            let mul = if nanos { 1 } else { 1000 };
            let r = mem(&bytes).expect("open");
            assert_eq!(
                r.format(),
                Format::Pcap {
                    nanos,
                    big_endian: be
                }
            );
            assert_eq!(r.ts_precision(), if nanos { 9 } else { 6 });
            assert!(!r.is_gzip());
            assert_eq!(frames.len(), 3);
            assert_eq!(
                frames[0],
                Owned {
                    ts: Ts(1_700_000_000 * 1_000_000_000 + 123_456 * mul),
                    linktype: LinkType::ETHERNET,
                    orig_len: 60,
                    interface: 0,
                    data: vec![0xAA; 60],
                }
            );
            assert_eq!(
                frames[1].ts,
                Ts(1_700_000_001 * 1_000_000_000 + 999_999 * mul)
            );
            assert_eq!(frames[1].orig_len, 1514);
            assert_eq!(frames[1].data, vec![0xBB; 100]);
            assert_eq!(frames[2].ts, Ts(i64::from(u32::MAX) * 1_000_000_000));
            assert!(frames[2].data.is_empty());
        }
    }
}

#[test]
fn pcap_link_type_ignores_fcs_bits() {
    // FCS length 4 (bits 28-31) and the F flag (bit 26) on a Linux cooked capture.
    let mut w = PcapWriter::new(false, false, 65535, 0x4000_0000 | 0x0400_0000 | 113);
    w.record(1, 2, 3, b"abc");
    let frames = read_all_ways(&w.buf);
    assert_eq!(frames[0].linktype, LinkType::LINUX_SLL);
}

#[test]
fn pcap_stats_and_progress_reach_the_end() {
    let bytes = sample_pcap(false, false);
    let (_tmp, r) = file(&bytes);
    let mut r = r.expect("open");
    assert_eq!(r.total_len(), Some(bytes.len() as u64));
    let (frames, _) = drain(&mut r);
    assert_eq!(r.stats().frames, frames.len() as u64);
    assert_eq!(r.stats().interfaces, 1);
    assert_eq!(r.bytes_consumed(), bytes.len() as u64);
    assert!(r.path().ends_with(_tmp.path().file_name().expect("name")));
}

/// Two sections (LE then BE), interfaces with µs, ns, power-of-2 resolutions and an offset,
/// every packet block kind, and every skippable block kind.
fn sample_pcapng() -> Vec<u8> {
    let mut w = NgWriter::new();
    w.shb(false)
        .idb(1, 0, None, None) // 0: Ethernet, µs by default
        .idb(101, 65535, Some(9), Some(10)) // 1: raw IP, ns, +10 s
        .nrb()
        .epb(0, 1_700_000_000_123_456, 60, &[1; 60])
        .epb(1, 1_700_000_000_123_456_789, 1500, &[2; 33])
        .spb(1000, &[3; 1000]) // interface 0 has no snap length: whole frame
        .isb(0)
        .dsb()
        .custom()
        .block(0x1234_5678, b"unknown block type")
        .pb(1, 5, 7, &[4; 7])
        .shb(true)
        .idb(113, 16, Some(0x80 | 20), Some(-1)) // 0: SLL, 2^-20 s, -1 s
        .epb(0, 3 << 20 | 1, 40, &[5; 16])
        .spb(40, &[6; 40]); // snap length 16 cuts it
    w.buf
}

#[test]
fn pcapng_sections_interfaces_and_blocks_read_back_exactly() {
    let bytes = sample_pcapng();
    let frames = read_all_ways(&bytes);
    let expect = [
        (Ts(1_700_000_000_123_456_000), 1, 60, 0, vec![1u8; 60]),
        (Ts(1_700_000_010_123_456_789), 101, 1500, 1, vec![2; 33]),
        (Ts(0), 1, 1000, 0, vec![3; 1000]),
        (Ts(10_000_000_005), 101, 7, 1, vec![4; 7]),
        (
            Ts(3_000_000_000 + 953 - 1_000_000_000),
            113,
            40,
            0,
            vec![5; 16],
        ),
        (Ts(0), 113, 40, 0, vec![6; 16]),
    ];
    assert_eq!(frames.len(), expect.len());
    for (f, (ts, lt, orig, iface, data)) in frames.iter().zip(expect) {
        assert_eq!(
            *f,
            Owned {
                ts,
                linktype: LinkType(lt),
                orig_len: orig,
                interface: iface,
                data
            }
        );
    }
    let mut r = mem(&bytes).expect("open");
    assert_eq!(r.format(), Format::PcapNg);
    drain(&mut r);
    assert_eq!(r.ts_precision(), 9);
    let s = r.stats();
    assert_eq!((s.frames, s.frames_damaged), (6, 0));
    assert_eq!((s.interfaces, s.sections), (3, 2));
    assert_eq!(s.blocks_skipped, 5);
    assert_eq!(
        s.skipped,
        SkippedBlocks {
            name_resolution: 1,
            interface_statistics: 1,
            decryption_secrets: 1,
            custom: 1,
            other: 1
        }
    );
}

#[test]
fn pcapng_precision_follows_the_interfaces_seen() {
    let mut w = NgWriter::new();
    w.shb(false).idb(1, 0, Some(3), None).epb(0, 1, 1, b"x");
    let mut r = mem(&w.buf).expect("open");
    assert_eq!(r.ts_precision(), 0);
    let f = r.next_frame().expect("read").map(|f| f.ts);
    assert_eq!(f, Some(Ts(1_000_000)));
    assert_eq!(r.ts_precision(), 3);
}

#[test]
fn gzip_input_is_detected_by_magic_and_counts_compressed_bytes() {
    let bytes = sample_pcapng();
    let gz = gzip(&bytes);
    let (_tmp, r) = file(&gz);
    let mut r = r.expect("open");
    assert!(r.is_gzip());
    assert_eq!(r.format(), Format::PcapNg);
    assert_eq!(r.total_len(), Some(gz.len() as u64));
    let (frames, err) = drain(&mut r);
    assert!(err.is_none());
    assert_eq!(frames.len(), 6);
    assert_eq!(r.bytes_consumed(), gz.len() as u64);
}

#[test]
fn gzip_with_several_members_reads_them_all() {
    let mut w = PcapWriter::new(false, false, 65535, 1);
    w.record(1, 0, 1, b"a");
    let head = w.buf.len();
    w.record(2, 0, 1, b"b");
    let mut gz = gzip(&w.buf[..head]);
    gz.extend(gzip(&w.buf[head..]));
    let (frames, err) = drain(&mut one_byte(&gz).expect("open"));
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 2);
}

#[test]
fn large_records_grow_the_stream_buffer_once() {
    let mut w = PcapWriter::new(false, false, MAX_CAPLEN, 1);
    for i in 0..3u32 {
        w.record(i, 0, MAX_CAPLEN, &vec![i as u8; MAX_CAPLEN as usize]);
    }
    let frames = read_all_ways(&w.buf);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().enumerate().all(|(i, f)| f.data[0] == i as u8));
}

// ---- bad input -----------------------------------------------------------------------------

#[test]
fn missing_file_and_directory_are_open_errors() {
    let e = CaptureReader::open(Path::new("/nonexistent/x.pcap")).err();
    assert!(matches!(e, Some(CaptureError::Open { .. })), "{e:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let e = CaptureReader::open(dir.path()).err();
    assert!(matches!(e, Some(CaptureError::Open { .. })), "{e:?}");
    assert!(e.is_some_and(|e| e.is_fatal_at_start()));
}

#[test]
fn empty_input_is_empty_whatever_the_source() {
    let (_tmp, r) = file(&[]);
    assert!(matches!(r.err(), Some(CaptureError::Empty { .. })));
    assert!(matches!(mem(&[]).err(), Some(CaptureError::Empty { .. })));
    assert!(matches!(
        mem(&gzip(&[])).err(),
        Some(CaptureError::Empty { .. })
    ));
}

#[test]
fn unknown_magic_is_not_a_capture_and_shows_the_bytes() {
    let (_tmp, r) = file(b"<html><body>");
    match r.err() {
        Some(e @ CaptureError::NotACapture { .. }) => {
            assert!(e.to_string().contains("3c 68 74 6d 6c 3e 3c 62"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match mem(b"ab").err() {
        Some(CaptureError::NotACapture { magic, .. }) => assert_eq!(magic, "61 62"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn record_cut_short_is_damaged_at_its_start_after_earlier_frames() {
    let bytes = sample_pcap(false, false);
    let second = 24 + 16 + 60;
    let cut = &bytes[..second + 16 + 50];
    for mut r in [mem(cut).expect("open"), file(cut).1.expect("open")] {
        let (frames, err) = drain(&mut r);
        assert_eq!(frames.len(), 1);
        match err {
            Some(CaptureError::Damaged { offset, reason, .. }) => {
                assert_eq!(offset, second as u64);
                assert_eq!(reason, "record cut short: header says 116 bytes, 66 remain");
            }
            other => panic!("{other:?}"),
        }
    }
    // Cut inside the record header.
    let (_, err) = drain(&mut mem(&bytes[..second + 5]).expect("open"));
    assert!(matches!(err, Some(CaptureError::Damaged { offset, .. }) if offset == second as u64));
    // Cut inside the file header.
    let e = mem(&bytes[..10]).err();
    assert!(
        matches!(e, Some(CaptureError::Damaged { offset: 0, .. })),
        "{e:?}"
    );
}

#[test]
fn absurd_caplen_is_damaged() {
    let mut w = PcapWriter::new(false, true, 65535, 1);
    w.record(1, 0, 1, b"x")
        .record_raw(2, 0, MAX_CAPLEN + 1, 10, &[0; 64]);
    let (frames, err) = drain(&mut mem(&w.buf).expect("open"));
    assert_eq!(frames.len(), 1);
    let e = err.expect("an error");
    assert!(
        matches!(e, CaptureError::Damaged { offset: 41, .. }),
        "{e:?}"
    );
    assert!(!e.is_fatal_at_start());
    assert!(
        e.to_string()
            .starts_with("mem: damaged at byte offset 41: "),
        "{e}"
    );
}

fn ng_with_bad_second_block(patch: impl FnOnce(&mut Vec<u8>, usize)) -> CaptureError {
    let mut w = NgWriter::new();
    w.shb(false).idb(1, 0, None, None).epb(0, 1, 1, b"x");
    let at = w.buf.len();
    w.epb(0, 2, 1, b"y");
    let mut bytes = w.buf;
    patch(&mut bytes, at);
    let (frames, err) = drain(&mut mem(&bytes).expect("open"));
    assert_eq!(frames.len(), 1, "the frame before the damage is delivered");
    let e = err.expect("an error");
    match &e {
        CaptureError::Damaged { offset, .. } => assert_eq!(*offset, at as u64),
        other => panic!("{other:?}"),
    }
    e
}

fn set_len(b: &mut [u8], at: usize, len: u32) {
    b[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
}

#[test]
fn pcapng_bad_block_lengths_are_damaged_at_the_block() {
    let e = ng_with_bad_second_block(|b, at| set_len(b, at, 42));
    assert!(e.to_string().contains("bad length 42"), "{e}");
    let e = ng_with_bad_second_block(|b, at| set_len(b, at, 8));
    assert!(e.to_string().contains("bad length 8"), "{e}");
    let e = ng_with_bad_second_block(|b, at| set_len(b, at, MAX_BLOCK_LEN + 4));
    assert!(e.to_string().contains("bad length"), "{e}");
    let e = ng_with_bad_second_block(|b, at| set_len(b, at, 1024));
    assert!(
        e.to_string()
            .contains("block cut short: header says 1024 bytes"),
        "{e}"
    );
    let e = ng_with_bad_second_block(|b, at| set_len(b, at, 40));
    assert!(e.to_string().contains("trailing length"), "{e}");
    let e = ng_with_bad_second_block(|b, _| {
        let n = b.len();
        b.truncate(n - 3);
    });
    assert!(e.to_string().contains("block cut short"), "{e}");
}

#[test]
fn pcapng_unknown_interface_is_counted_and_reading_goes_on() {
    let mut w = NgWriter::new();
    w.shb(false)
        .idb(1, 0, None, None)
        .epb(7, 1, 1, b"x")
        .epb_raw(0, 1, 999, 1, b"y") // caplen beyond the block
        .epb(0, 2, 1, b"z");
    let mut r = mem(&w.buf).expect("open");
    let (frames, err) = drain(&mut r);
    assert!(err.is_none());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data, b"z");
    assert_eq!(r.stats().frames_damaged, 2);
}

#[test]
fn pcapng_interfaces_do_not_leak_into_the_next_section() {
    let mut w = NgWriter::new();
    w.shb(false)
        .idb(1, 0, None, None)
        .shb(true)
        .epb(0, 1, 1, b"x");
    let mut r = mem(&w.buf).expect("open");
    let (frames, err) = drain(&mut r);
    assert!(err.is_none() && frames.is_empty());
    assert_eq!(r.stats().frames_damaged, 1);
}

#[test]
fn pcapng_bad_byte_order_magic_is_damaged() {
    let mut w = NgWriter::new();
    w.shb(false);
    w.buf[8] = 0;
    let e = mem(&w.buf).err();
    assert!(
        matches!(e, Some(CaptureError::Damaged { offset: 0, .. })),
        "{e:?}"
    );
}

#[test]
fn corrupt_gzip_is_a_read_error_after_earlier_frames() {
    let mut big = PcapWriter::new(false, false, 65535, 1);
    for i in 0..2000u32 {
        big.record(i, 0, 64, &i.to_le_bytes().repeat(16));
    }
    let mut gz = gzip(&big.buf);
    let n = gz.len();
    for b in &mut gz[n / 2..n - 8] {
        *b ^= 0x5A;
    }
    let (frames, err) = drain(&mut mem(&gz).expect("open"));
    assert!(frames.len() < 2000);
    assert!(matches!(err, Some(CaptureError::Read { .. })), "{err:?}");
    // A gzip stream cut short is an error too, never a silent end.
    let (_, err) = drain(&mut mem(&gzip(&big.buf)[..n / 2]).expect("open"));
    assert!(matches!(err, Some(CaptureError::Read { .. })), "{err:?}");
}

// ---- sweeps --------------------------------------------------------------------------------

/// Reads `bytes` to the end; asserts any error offset lies within the input.
fn survive(bytes: &[u8]) -> usize {
    match mem(bytes) {
        Ok(mut r) => {
            let (frames, err) = drain(&mut r);
            if let Some(CaptureError::Damaged { offset, .. }) = err {
                assert!(
                    offset <= bytes.len() as u64,
                    "offset {offset} beyond {}",
                    bytes.len()
                );
            }
            frames.len()
        }
        Err(CaptureError::Damaged { offset, .. }) => {
            assert!(offset <= bytes.len() as u64);
            0
        }
        Err(_) => 0,
    }
}

#[test]
fn truncation_at_every_length_never_panics_and_keeps_whole_frames() {
    for bytes in [
        sample_pcap(false, false),
        sample_pcap(true, true),
        sample_pcapng(),
    ] {
        let full = survive(&bytes);
        let mut last = 0;
        for len in 0..bytes.len() {
            let n = survive(&bytes[..len]);
            assert!(
                n >= last && n <= full,
                "frames must only grow with the prefix"
            );
            last = n;
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    for bytes in [sample_pcap(false, true), sample_pcapng()] {
        for i in 0..bytes.len() {
            for mask in [0x01, 0x80, 0xFF] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                survive(&b);
            }
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bodies_after_a_valid_magic_never_panic(
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        kind in 0usize..3,
    ) {
        let mut bytes = match kind {
            0 => PcapWriter::new(false, false, 65535, 1).buf,
            1 => PcapWriter::new(true, true, 0, 1).buf,
            _ => NgWriter::new().shb(false).buf.clone(),
        };
        bytes.extend(tail);
        survive(&bytes);
    }
}

// ---- real captures -------------------------------------------------------------------------

#[test]
fn external_captures_have_the_indexed_frame_counts() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/captures-external"
    ));
    let Ok(index) = std::fs::read_to_string(dir.join("INDEX.tsv")) else {
        eprintln!("skipping: {} not present", dir.display());
        return;
    };
    let mut checked = 0;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(packets)) = (cols.first(), cols.get(4)) else {
            continue;
        };
        let want: u64 = packets.parse().expect("packets column is a number");
        let path = dir.join(name);
        let mut r = CaptureReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let (_, err) = drain(&mut r);
        assert!(err.is_none(), "{}: {err:?}", path.display());
        assert_eq!(r.stats().frames, want, "{}", path.display());
        assert!(r.ts_precision() >= 6, "{}", path.display());
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn a_large_file_is_read_whole_through_one_chunk_sized_buffer() {
    // 40 MiB of distinct frames: the buffer is refilled and compacted many times.
    let mut w = PcapWriter::new(false, false, 65535, 1);
    let mut expected = Vec::new();
    for i in 0..40_000u32 {
        let data: Vec<u8> = (0..1000u32)
            .map(|j| (i.wrapping_mul(31) ^ j) as u8)
            .collect();
        w.record(i, 0, 1000, &data);
        expected.push(data);
    }
    let (_file, reader) = file(&w.buf);
    let mut reader = reader.expect("open");
    assert_eq!(reader.total_len(), Some(w.buf.len() as u64));
    let mut n = 0;
    while let Ok(Some(f)) = reader.next_frame() {
        assert_eq!(f.data, &expected[n][..], "frame {n}");
        n += 1;
    }
    assert_eq!(n, expected.len());
    assert_eq!(reader.bytes_consumed(), w.buf.len() as u64);
    // Memory stays one chunk, however large the file.
    assert_eq!(reader.buffer_len(), super::source::STREAM_CHUNK);
}

/// A pcapng capture of frames of every size up to a full Ethernet frame and a few much
/// longer (over a read-ahead chunk's room for the unread tail of the chunk before), ~2.7 MB:
/// past the buffered first read, across many chunk boundaries, both ways of crossing them.
fn long_capture() -> Vec<u8> {
    let mut w = NgWriter::new();
    w.shb(false).idb(1, 0, Some(9), None);
    for i in 0..3000u32 {
        let len = if i % 1000 == 999 {
            100_000 + i as usize
        } else {
            (i as usize * 37) % 1515
        };
        let data: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
        w.epb(0, u64::from(i) * 1_000, len as u32, &data);
    }
    w.buf
}

#[test]
fn a_file_read_ahead_past_the_page_cache_reads_back_as_streamed() {
    let bytes = long_capture();
    let (want, err) = drain(&mut mem(&bytes).expect("open mem"));
    assert!(err.is_none(), "{err:?}");
    let (dir, direct) = crate::report::direct_file::disk_dir();
    if !direct {
        return; // disk_dir said why
    }
    let path = dir.path().join("long.pcapng");
    std::fs::write(&path, &bytes).expect("write capture");
    let align = crate::direct_io::ALIGN;
    for chunk in [align, 3 * align, read_ahead::CHUNK] {
        let mut r = CaptureReader::open_reading_ahead(&path, 0, chunk).expect("open");
        assert!(r.reads_ahead(), "chunks of {chunk} bytes");
        // A frame a look ahead finds at the read position is the frame then read (it
        // finds none where the bytes are not buffered yet, or before the first frame).
        let (mut got, mut peeked_alike) = (Vec::new(), 0);
        loop {
            let peeked = r
                .peek(&mut PeekCursor::default())
                .map(|(_, data)| data.to_vec());
            let Some(f) = r.next_frame().expect("read") else {
                break;
            };
            if let Some(p) = peeked {
                assert_eq!(p, f.data, "frame {}", got.len());
                peeked_alike += 1;
            }
            got.push(own(&f));
        }
        assert!(got == want, "chunks of {chunk} bytes: the frames differ");
        assert!(peeked_alike > got.len() / 2, "{peeked_alike} peeked");
    }
    // Cut mid-record: the same frames, then the same error at the same offset.
    let cut = &bytes[..bytes.len() - 700];
    let (want, want_err) = drain(&mut mem(cut).expect("open mem"));
    std::fs::write(&path, cut).expect("write capture");
    let mut r = CaptureReader::open_reading_ahead(&path, 0, 3 * align).expect("open");
    assert!(r.reads_ahead());
    let (got, err) = drain(&mut r);
    assert!(got == want, "the frames of the cut capture differ");
    let text =
        |e: Option<CaptureError>| e.map(|e| e.to_string().replace(path.to_str().unwrap(), "mem"));
    assert_eq!(text(err), text(want_err));
}

#[test]
fn a_file_too_small_or_compressed_is_not_read_ahead() {
    let (dir, direct) = crate::report::direct_file::disk_dir();
    if !direct {
        return;
    }
    let bytes = long_capture();
    let (plain, gz) = (
        dir.path().join("plain.pcapng"),
        dir.path().join("c.pcapng.gz"),
    );
    std::fs::write(&plain, &bytes).expect("write capture");
    std::fs::write(&gz, gzip(&bytes)).expect("write capture");
    let small = CaptureReader::open_reading_ahead(&plain, bytes.len() as u64 + 1, 4096);
    assert!(!small.expect("open").reads_ahead());
    let mut compressed = CaptureReader::open_reading_ahead(&gz, 0, 4096).expect("open");
    assert!(!compressed.reads_ahead());
    let (frames, err) = drain(&mut compressed);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(frames.len(), 3000);
}
