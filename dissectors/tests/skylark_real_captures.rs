//! Content recognition against real traffic (PROTOCOL.md §2.5): no UDP or TCP payload of the
//! public captures in ../shared/captures-external (next to the repository) (STUN, RTP, SIP, Discord, BitTorrent, …)
//! may probe as Skylark `Yes`, and the flow dissector must not panic on any of them.
//! Skipped with a message when the folder is absent.

use dissectors::registry::{Probe, Side, Transport};
use dissectors::skylark::DESCRIPTOR;
use etherparse::{SlicedPacket, TransportSlice};
use pcap_parser::{Block, PcapBlockOwned, PcapError, create_reader};
use std::path::{Path, PathBuf};

const CAPTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/captures-external"
);

fn capture_files() -> Option<Vec<PathBuf>> {
    let root = Path::new(CAPTURES);
    if !root.is_dir() {
        return None;
    }
    let mut files = Vec::new();
    for dir in ["ndpi", "zeek", "peafowl"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.to_string_lossy().to_string();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    Some(files)
}

/// (transport, payload) of every TCP/UDP packet with a payload in the file.
fn payloads(path: &Path) -> Vec<(Transport, Vec<u8>)> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(mut reader) = create_reader(1 << 20, file) else {
        return Vec::new();
    };
    let mut linktypes: Vec<i32> = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let frame: Option<(i32, &[u8])> = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        linktypes = vec![h.network.0];
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        Some((linktypes.first().copied().unwrap_or(1), b.data))
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        linktypes.push(idb.linktype.0);
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let lt = linktypes.get(epb.if_id as usize).copied().unwrap_or(1);
                        let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                        Some((lt, data))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        Some((linktypes.first().copied().unwrap_or(1), spb.data))
                    }
                    _ => None,
                };
                if let Some((lt, data)) = frame {
                    let sliced = match lt {
                        1 => SlicedPacket::from_ethernet(data).ok(),
                        113 => SlicedPacket::from_linux_sll(data).ok(),
                        101 | 228 | 229 | 12 | 14 => SlicedPacket::from_ip(data).ok(),
                        _ => None,
                    };
                    match sliced.and_then(|s| s.transport) {
                        Some(TransportSlice::Udp(u)) if !u.payload().is_empty() => {
                            out.push((Transport::Udp, u.payload().to_vec()))
                        }
                        Some(TransportSlice::Tcp(t)) if !t.payload().is_empty() => {
                            out.push((Transport::Tcp, t.payload().to_vec()))
                        }
                        _ => {}
                    }
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

#[test]
fn no_real_payload_probes_as_skylark() {
    let Some(files) = capture_files() else {
        println!("skipped: {CAPTURES} is absent");
        return;
    };
    let (mut total, mut maybe) = (0usize, 0usize);
    for path in &files {
        for (transport, payload) in payloads(path) {
            total += 1;
            let probe = (DESCRIPTOR.probe)(transport, Side::Orig, &payload);
            assert_ne!(
                probe,
                Probe::Yes,
                "{} looks like Skylark: {:02x?}",
                path.display(),
                &payload[..payload.len().min(16)]
            );
            if probe == Probe::Maybe {
                maybe += 1;
            }
            let mut flow = (DESCRIPTOR.new_flow)(transport);
            let mut rows = Vec::new();
            let _ = flow.parse(Side::Orig, 0, &payload, &mut rows);
        }
    }
    println!(
        "{} files, {total} payloads, {maybe} Maybe, 0 Yes",
        files.len()
    );
    assert!(total > 1000, "expected real payloads, read {total}");
}
