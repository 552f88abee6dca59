//! Fuzz the packet decoder: link layers, IPv4/IPv6 (extension headers), TCP/UDP/ICMP, and
//! fragment reassembly across frames. Input: `[sel] frame (SEP frame)*`; `sel % 10` picks
//! the link type, `sel / 10` how much longer than captured each frame was on the wire.
//! Every frame is also decoded alone by a fresh decoder both ways, fast path first and
//! general path only: packets and statistics must be the same (the fast path may only
//! take frames the general path decodes identically).
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2ptrace::capture::{Frame, LinkType};
use p2ptrace::decode::{Decoder, DefragLimits, L4};
use p2ptrace::time::Ts;

const LINK_TYPES: [u32; 10] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276];
/// Frames are separated by these four bytes (compared as one `u32`, so libFuzzer's
/// comparison tracing learns it).
const SEP: u32 = u32::from_be_bytes(*b"FRAG");
/// Frames decoded per input at most.
const MAX_FRAMES: usize = 64;

fn frames(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest
            .windows(4)
            .position(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]) == SEP);
        let (frame, tail) = match cut {
            Some(at) => (&rest[..at], &rest[at + 4..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        Some(frame)
    })
    .take(MAX_FRAMES)
}

/// The fast path's packet (when it takes the frame) equals the general path's.
fn paths_agree(frame: &Frame<'_>) {
    let mut both = Decoder::new(DefragLimits::default());
    let mut general = Decoder::new(DefragLimits::default());
    let a = format!("{:?}", both.decode(frame));
    let b = format!("{:?}", general.decode_general(frame));
    assert_eq!(a, b, "fast and general paths differ");
    assert_eq!(both.stats(), general.stats(), "statistics differ");
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, rest)) = input.split_first() else {
        return;
    };
    let linktype = LinkType(LINK_TYPES[usize::from(sel % 10)]);
    let slack = u32::from(sel / 10);
    // Small limits so eviction and the byte cap are reachable.
    let mut decoder = Decoder::new(DefragLimits {
        max_datagrams: 4,
        max_bytes: 16 << 10,
        timeout_ns: 5 * Ts::NANOS_PER_SEC,
    });
    for (i, data) in frames(rest).enumerate() {
        let frame = Frame {
            ts: Ts(i as i64 * Ts::NANOS_PER_SEC),
            linktype,
            orig_len: (data.len() as u32).saturating_add(slack),
            interface: 0,
            data,
        };
        paths_agree(&frame);
        if let Some(pkt) = decoder.decode(&frame) {
            assert!(pkt.frames >= 1);
            match &pkt.l4 {
                L4::Tcp(t) => assert!(t.payload.len() as u64 <= u64::from(t.payload_len)),
                L4::Udp(u) => assert!(u.payload.len() as u64 <= u64::from(u.payload_len)),
                _ => {}
            }
            let _ = (pkt.ports(), pkt.payload_len());
        }
        if i % 8 == 7 {
            decoder.expire(Ts(i as i64 * Ts::NANOS_PER_SEC));
        }
    }
    let _ = decoder.stats();
});
