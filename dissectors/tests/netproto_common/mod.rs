//! Helpers shared by the `netproto_*` tests: hex vectors and feeding a flow dissector a TCP
//! stream the way the analyzer does (unconsumed bytes kept and offered again).
#![allow(dead_code)]

pub mod samples;

use dissectors::registry::{FlowDissector, Message, Progress, Side};

/// Bytes from hex digits, ignoring everything else (spaces, newlines).
#[track_caller]
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| char::from(c).to_digit(16).unwrap() as u8)
        .collect();
    assert!(digits.len() % 2 == 0, "odd hex");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Feeds chunks per side, keeping unconsumed bytes per side; panics on a stream error.
#[track_caller]
pub fn feed(flow: &mut dyn FlowDissector, chunks: &[(Side, &[u8])]) -> Vec<Message> {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut out = Vec::new();
    for (side, c) in chunks {
        let buf = &mut pending[*side as usize];
        buf.extend_from_slice(c);
        match flow.parse(*side, 0, buf, &mut out) {
            Progress::Parsed { consumed, .. } => {
                buf.drain(..consumed);
            }
            Progress::Error { error, .. } => panic!("stream error {error}"),
        }
    }
    out
}

/// Feeds the originator's side only and requires every byte to be consumed.
#[track_caller]
pub fn feed_tcp(flow: &mut dyn FlowDissector, chunks: &[&[u8]]) -> Vec<Message> {
    let mut pending: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        pending.extend_from_slice(c);
        match flow.parse(Side::Orig, 0, &pending, &mut out) {
            Progress::Parsed { consumed, .. } => {
                pending.drain(..consumed);
            }
            Progress::Error { error, .. } => panic!("stream error {error}"),
        }
    }
    assert!(
        pending.is_empty(),
        "{} bytes left unconsumed",
        pending.len()
    );
    out
}
