//! Performs the exports [`App`](super::app::App) asks for: a table as CSV (RFC 4180, header
//! row), or the frames of chosen flows in a time window as pcapng, re-read from the capture
//! file and written with [`PcapNgWriter`].
//!
//! Guarantees: never overwrites (the app picks a fresh name); a failure is one line of text.
//! Must not: touch the terminal or the UI state.

use super::app::Export;
use crate::capture::CaptureReader;
use crate::capture::write::PcapNgWriter;
use crate::decode::{Decoder, DefragLimits};
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::BufWriter;
use std::net::SocketAddr;

/// Writes an export; returns the line to show (what was written, or why not).
pub fn perform(e: &Export) -> String {
    match e {
        Export::Csv { path, table } => {
            let res = (|| -> Result<(), Box<dyn std::error::Error>> {
                let mut w = csv::Writer::from_path(path)?;
                w.write_record(&table.columns)?;
                for r in &table.rows {
                    w.write_record(r)?;
                }
                w.flush()?;
                Ok(())
            })();
            match res {
                Ok(()) => format!("exported {} rows to {}", table.rows.len(), path.display()),
                Err(err) => format!("export failed: {}: {err}", path.display()),
            }
        }
        Export::Pcapng {
            path,
            capture,
            flows,
            t0,
            t1,
        } => match pcapng(path, capture, flows, *t0, *t1) {
            Ok(n) => format!("exported {n} frames to {}", path.display()),
            Err(err) => format!("export failed: {}: {err}", path.display()),
        },
    }
}

fn pcapng(
    path: &std::path::Path,
    capture: &std::path::Path,
    flows: &[(u8, SocketAddr, SocketAddr)],
    t0: crate::time::Ts,
    t1: crate::time::Ts,
) -> Result<u64, Box<dyn std::error::Error>> {
    let wanted: FxHashSet<(u8, SocketAddr, SocketAddr)> = flows
        .iter()
        .flat_map(|&(p, a, b)| [(p, a, b), (p, b, a)])
        .collect();
    let mut reader = CaptureReader::open(capture)?;
    let file = std::fs::File::create(path)?;
    let mut out = PcapNgWriter::new(BufWriter::new(file), "p2ptrace tui")?;
    let mut ifaces: FxHashMap<(u32, u32), u32> = FxHashMap::default();
    let mut decoder = Decoder::new(DefragLimits::default());
    let mut n = 0u64;
    while let Some(frame) = reader.next_frame()? {
        if frame.ts < t0 || frame.ts > t1 {
            continue;
        }
        let Some(pkt) = decoder.decode(&frame) else {
            continue;
        };
        let (src, dst) = pkt.ends();
        let key = (pkt.ip_proto, src, dst);
        if !wanted.contains(&key) {
            continue;
        }
        let id = match ifaces.get(&(frame.interface, frame.linktype.0)) {
            Some(id) => *id,
            None => {
                let name = format!("if{}", frame.interface);
                let id = out.add_interface(&name, frame.linktype, 0)?;
                ifaces.insert((frame.interface, frame.linktype.0), id);
                id
            }
        };
        out.write_packet(id, frame.ts, frame.data, frame.orig_len)?;
        n += 1;
    }
    out.finish()?;
    Ok(n)
}
