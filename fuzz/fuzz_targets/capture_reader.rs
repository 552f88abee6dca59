//! Fuzz the capture reader on arbitrary bytes (pcap either endianness and precision, pcapng,
//! gzip of either): every frame is drained; a damage offset lies within the input; after an
//! error the reader only says "end". Before each frame the reader is also looked ahead of
//! (`peek`, a few frames), which must neither panic nor change what is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2ptrace::capture::{CaptureError, CaptureReader, PeekCursor};
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_read("fuzz", Box::new(Cursor::new(data.to_vec())))
    else {
        return;
    };
    // gzip offsets count decompressed bytes, which may exceed the input's length.
    let plain = !reader.is_gzip();
    let mut cursor = PeekCursor::default();
    loop {
        for _ in 0..3 {
            if let Some((_, ahead)) = reader.peek(&mut cursor) {
                assert!(!plain || ahead.len() <= data.len());
            }
        }
        match reader.next_frame() {
            Ok(Some(frame)) => {
                if plain {
                    assert!(frame.data.len() <= data.len());
                }
                let _ = frame.is_truncated();
            }
            Ok(None) => break,
            Err(e) => {
                if let CaptureError::Damaged { offset, .. } = &e
                    && plain
                {
                    assert!(
                        *offset <= data.len() as u64,
                        "damage offset {offset} beyond input length {}",
                        data.len()
                    );
                }
                assert!(
                    matches!(reader.next_frame(), Ok(None)),
                    "frames after an error"
                );
                break;
            }
        }
    }
    if plain {
        assert!(reader.bytes_consumed() <= data.len() as u64);
    }
    let _ = (reader.format(), reader.ts_precision(), reader.stats());
});
