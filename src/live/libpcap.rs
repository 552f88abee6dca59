//! The libpcap backend (`--features libpcap`): BPF capture filters, immediate mode,
//! libpcap's memory-mapped ring buffer, and other operating systems.
//!
//! Must not: parse frames. Statistics are libpcap's (`pcap_stats`), cumulative.

use super::afpacket::{OpenError, iface_state};
use super::source::{CaptureSource, KernelStats, RawFrame, SourceError};
use crate::capture::LinkType;
use crate::time::Ts;
use std::os::unix::io::AsRawFd;

/// Kernel ring buffer asked of libpcap (bytes).
pub const BUFFER_BYTES: i32 = 64 << 20;

/// Read timeout in milliseconds (the session polls its stop flag between reads).
const TIMEOUT_MS: i32 = 100;

/// An open libpcap capture.
pub struct Pcap {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    linktype: LinkType,
    snaplen: u32,
    /// poll(2) said frames are waiting; read until libpcap has none.
    ready: bool,
}

impl Pcap {
    /// Opens `iface`, optionally with a BPF `filter` (tcpdump syntax).
    pub fn open(
        iface: &str,
        snaplen: u32,
        promisc: bool,
        filter: Option<&str>,
    ) -> Result<Pcap, OpenError> {
        let other = |detail: String| OpenError::Other {
            iface: iface.to_string(),
            detail,
        };
        match iface_state(iface) {
            None if cfg!(target_os = "linux") => {
                return Err(OpenError::NoSuchInterface(iface.to_string()));
            }
            Some(false) => return Err(OpenError::Down(iface.to_string())),
            _ => {}
        }
        let inactive = pcap::Capture::from_device(iface).map_err(|e| other(e.to_string()))?;
        let snap = i32::try_from(snaplen).unwrap_or(i32::MAX);
        let cap = inactive
            .snaplen(snap)
            .promisc(promisc)
            .immediate_mode(true)
            .timeout(TIMEOUT_MS)
            .buffer_size(BUFFER_BYTES)
            .precision(pcap::Precision::Nano)
            .open();
        let cap = match cap {
            Ok(c) => c,
            Err(e) => {
                let text = e.to_string();
                let lower = text.to_ascii_lowercase();
                return Err(
                    if lower.contains("permission") || lower.contains("not permitted") {
                        OpenError::Permission {
                            iface: iface.to_string(),
                            detail: text,
                        }
                    } else if lower.contains("no such device") {
                        OpenError::NoSuchInterface(iface.to_string())
                    } else {
                        other(text)
                    },
                );
            }
        };
        // Non-blocking reads plus our own poll(2): libpcap's read timeout does not bound a
        // blocking read in immediate mode, and the session must see its stop flag.
        let mut cap = cap.setnonblock().map_err(|e| other(e.to_string()))?;
        if let Some(f) = filter {
            cap.filter(f, true)
                .map_err(|e| other(format!("filter '{f}': {e}")))?;
        }
        let linktype = LinkType(u32::try_from(cap.get_datalink().0).unwrap_or(0));
        Ok(Pcap {
            iface: iface.to_string(),
            cap,
            linktype,
            snaplen,
            ready: false,
        })
    }
}

impl CaptureSource for Pcap {
    fn backend(&self) -> &'static str {
        "libpcap"
    }

    fn linktype(&self) -> LinkType {
        self.linktype
    }

    fn snaplen(&self) -> u32 {
        self.snaplen
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, SourceError> {
        if !self.ready {
            let mut fds = libc::pollfd {
                fd: self.cap.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll(2) on one valid pollfd.
            let n = unsafe { libc::poll(&mut fds, 1, TIMEOUT_MS) };
            if n <= 0 {
                return Ok(None);
            }
            self.ready = true;
        }
        match self.cap.next_packet() {
            Ok(p) => {
                let h = p.header;
                // Nanosecond precision was asked for: tv_usec holds nanoseconds.
                let ts = Ts::from_secs_nanos(h.ts.tv_sec, h.ts.tv_usec as u32);
                Ok(Some(RawFrame {
                    ts,
                    orig_len: h.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Drained what poll announced: poll again next time.
                self.ready = false;
                Ok(None)
            }
            Err(e) => {
                let iface = self.iface.clone();
                Err(match iface_state(&iface) {
                    None => SourceError::Gone { iface },
                    Some(false) => SourceError::Down { iface },
                    Some(true) => SourceError::Read {
                        iface,
                        detail: e.to_string(),
                    },
                })
            }
        }
    }

    fn stats(&mut self) -> KernelStats {
        match self.cap.stats() {
            Ok(s) => KernelStats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped) + u64::from(s.if_dropped),
            },
            Err(_) => KernelStats::default(),
        }
    }
}
