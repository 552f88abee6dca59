//! The default backend: a Linux AF_PACKET socket read through pnet_datalink.
//!
//! We create the socket ourselves and hand its descriptor to pnet (`Config::socket_fd`), so
//! we keep it for what pnet does not expose: `PACKET_STATISTICS` (kernel received/dropped
//! counters), `SIOCGSTAMPNS` (the kernel's receive timestamp of the frame just read), a
//! bigger receive buffer, and a tiny classic-BPF program that cuts frames to the snap length
//! and, on loopback, drops the outgoing copy of each packet (the kernel shows a loopback
//! packet twice, once leaving and once arriving; libpcap drops the same copy).
//!
//! Must not: parse frames. Linux only; pnet closes the socket when the receiver is dropped.

use super::source::{CaptureSource, KernelStats, RawFrame, SourceError};
use crate::capture::LinkType;
use crate::time::Ts;
use std::io;
use std::time::Duration;

/// `SIOCGSTAMPNS` (linux/sockios.h; absent from the libc crate): the receive time of the
/// last frame read, as a timespec.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

/// Kernel receive buffer asked for (bytes); bursts beyond it are kernel drops.
pub const RCVBUF_BYTES: i32 = 32 << 20;

/// How long one read waits before the session checks its stop flag.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// An open AF_PACKET capture.
pub struct AfPacket {
    iface: String,
    fd: libc::c_int,
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
    linktype: LinkType,
    snaplen: u32,
    stats: KernelStats,
}

/// Why a capture could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("no interface named {0} (see `p2ptrace interfaces`)")]
    NoSuchInterface(String),
    #[error("interface {0} is down")]
    Down(String),
    #[error("capturing on {iface} needs root or CAP_NET_RAW ({detail})")]
    Permission { iface: String, detail: String },
    #[error("cannot capture on {iface}: {detail}")]
    Other { iface: String, detail: String },
}

impl OpenError {
    /// Exit status: permission and missing interfaces are 1, like everything else at start.
    pub fn is_permission(&self) -> bool {
        matches!(self, OpenError::Permission { .. })
    }
}

/// `ioctl(req)` on `iface` through a throwaway socket of the calling thread's network
/// namespace (sysfs would show the namespace that mounted it, not ours).
fn ifreq_ioctl(iface: &str, req: libc::c_ulong) -> Option<libc::ifreq> {
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: SIOCGIF* requests read the name and write into the ifreq we own.
    let rc = unsafe { libc::ioctl(fd, req as _, &mut ifr as *mut libc::ifreq) };
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    (rc == 0).then_some(ifr)
}

/// The link type frames of `iface` carry, from its ARPHRD type (SIOCGIFHWADDR).
pub fn linktype_of(iface: &str) -> Option<LinkType> {
    let ifr = ifreq_ioctl(iface, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let family = unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family };
    match family {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK (Linux gives lo a zeroed Ethernet header).
        1 | 772 => Some(LinkType::ETHERNET),
        // ARPHRD_NONE (tun), ARPHRD_IPGRE-less raw IP devices such as wireguard.
        65534 => Some(LinkType::RAW),
        _ => None,
    }
}

/// Whether `iface` exists and is administratively up (IFF_UP), from SIOCGIFFLAGS.
pub fn iface_state(iface: &str) -> Option<bool> {
    let ifr = ifreq_ioctl(iface, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    Some(flags & libc::IFF_UP as libc::c_short != 0)
}

fn setsockopt<T>(fd: libc::c_int, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the given size for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The classic BPF program: drop outgoing loopback copies, cut to `snaplen`.
fn program(loopback: bool, snaplen: u32) -> Vec<libc::sock_filter> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ret_snap = op(libc::BPF_RET | libc::BPF_K, 0, 0, snaplen);
    if !loopback {
        return vec![ret_snap];
    }
    vec![
        // A = skb->pkt_type (ancillary load)
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            0,
            0,
            (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32,
        ),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            u32::from(libc::PACKET_OUTGOING),
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
        ret_snap,
    ]
}

impl AfPacket {
    /// Opens `iface` (needs root or CAP_NET_RAW). `snaplen` bounds each frame's bytes.
    pub fn open(iface: &str, snaplen: u32, promisc: bool) -> Result<AfPacket, OpenError> {
        let other = |detail: String| OpenError::Other {
            iface: iface.to_string(),
            detail,
        };
        let Some(nic) = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
        else {
            return Err(OpenError::NoSuchInterface(iface.to_string()));
        };
        if !nic.is_up() {
            return Err(OpenError::Down(iface.to_string()));
        }
        let linktype = linktype_of(iface).ok_or_else(|| {
            other("unsupported link type (Ethernet, loopback and raw IP only)".into())
        })?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the descriptor is owned by pnet from `channel` on.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => OpenError::Permission {
                    iface: iface.to_string(),
                    detail: e.to_string(),
                },
                _ => other(format!("socket: {e}")),
            });
        }
        let close = |e: OpenError| {
            // SAFETY: fd is ours until pnet takes it.
            unsafe { libc::close(fd) };
            e
        };
        // Root may exceed net.core.rmem_max; others get what the sysctl allows.
        if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF_BYTES).is_err() {
            let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF_BYTES);
        }
        let loopback = nic.is_loopback();
        let mut filter = program(loopback, snaplen);
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        if let Err(e) = setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog) {
            return Err(close(other(format!("attaching the socket filter: {e}"))));
        }
        let config = pnet_datalink::Config {
            // Never smaller than a frame the filter lets through, so recv never cuts one.
            read_buffer_size: snaplen.max(64) as usize,
            read_timeout: Some(READ_TIMEOUT),
            promiscuous: promisc,
            socket_fd: Some(fd),
            ..pnet_datalink::Config::default()
        };
        // From here pnet owns the descriptor (it closes it on its own errors too).
        let rx = match pnet_datalink::channel(&nic, config) {
            Ok(pnet_datalink::Channel::Ethernet(_tx, rx)) => rx,
            Ok(_) => return Err(other("pnet returned an unknown channel type".into())),
            Err(e) => return Err(other(e.to_string())),
        };
        let s = AfPacket {
            iface: iface.to_string(),
            fd,
            rx,
            linktype,
            snaplen,
            stats: KernelStats::default(),
        };
        // The first SIOCGSTAMPNS turns receive timestamps on for this socket.
        let _ = kernel_ts(s.fd);
        Ok(s)
    }
}

/// The kernel's receive time of the frame just read on `fd`.
fn kernel_ts(fd: libc::c_int) -> Option<Ts> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: SIOCGSTAMPNS writes one timespec into `t`.
    let rc = unsafe { libc::ioctl(fd, SIOCGSTAMPNS as _, &mut t as *mut libc::timespec) };
    (rc == 0 && t.tv_sec > 0).then(|| Ts::from_secs_nanos(t.tv_sec, t.tv_nsec as u32))
}

/// A read error, named by what happened to the interface.
fn fault(iface: &str, detail: String) -> SourceError {
    let iface = iface.to_string();
    match iface_state(&iface) {
        None => SourceError::Gone { iface },
        Some(false) => SourceError::Down { iface },
        Some(true) => SourceError::Read { iface, detail },
    }
}

/// The wall clock as a capture timestamp (when the kernel gives none).
pub fn now() -> Ts {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ts::from_secs_nanos(d.as_secs() as i64, d.subsec_nanos())
}

impl CaptureSource for AfPacket {
    fn backend(&self) -> &'static str {
        "afpacket"
    }

    fn linktype(&self) -> LinkType {
        self.linktype
    }

    fn snaplen(&self) -> u32 {
        self.snaplen
    }

    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, SourceError> {
        let fd = self.fd;
        match self.rx.next() {
            Ok(data) => {
                let ts = kernel_ts(fd).unwrap_or_else(now);
                // pnet reads with recvfrom into a buffer of snaplen bytes, without MSG_TRUNC:
                // the original length of a frame the filter cut is not known (documented).
                let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                Ok(Some(RawFrame { ts, orig_len, data }))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(fault(&self.iface, e.to_string())),
        }
    }

    fn stats(&mut self) -> KernelStats {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: PACKET_STATISTICS fills a tpacket_stats (and resets the kernel's counters).
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            // tp_packets already includes tp_drops.
            self.stats.received += u64::from(st.tp_packets);
            self.stats.dropped += u64::from(st.tp_drops);
        }
        self.stats
    }
}
