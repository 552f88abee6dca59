//! The libpcap backend (`--features libpcap`): BPF capture filters, libpcap's
//! memory-mapped ring buffer, optional immediate mode, and other operating systems.
//!
//! Block mode is the default: on Linux it is TPACKET_V3, frames packed back to back into
//! the ring's blocks and handed over a block at a time (or after [`TIMEOUT_MS`]). Immediate
//! mode makes libpcap fall back to TPACKET_V2, one fixed-size slot per frame sized for the
//! snap length — with offloads on (veth, lo) a 64 MiB ring then holds only a few hundred
//! frames, and the kernel drops under bursts (`benches/live-replay.sh`: 600 k packets/s
//! lost 8.5 % in immediate mode; block mode took 1.23 M packets/s without a drop).
//!
//! Must not: parse frames. Statistics are libpcap's (`pcap_stats`), cumulative.

use super::afpacket::{OpenError, iface_state};
use super::source::{CaptureSource, KernelStats, RawFrame, SourceError};
use crate::capture::LinkType;
use crate::time::Ts;
use std::os::unix::io::AsRawFd;

/// Kernel ring buffer asked of libpcap (bytes).
pub const BUFFER_BYTES: i32 = 64 << 20;

/// Read timeout in milliseconds: the longest a frame waits in a block, and how often the
/// session sees its stop flag.
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
    /// Opens `iface`, optionally with a BPF `filter` (tcpdump syntax); `immediate` hands
    /// over each frame at once instead of a block at a time.
    pub fn open(
        iface: &str,
        snaplen: u32,
        promisc: bool,
        immediate: bool,
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
            .immediate_mode(immediate)
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
        // blocking read, and the session must see its stop flag.
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
