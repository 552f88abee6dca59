//! NAT mappings of a `lab --netns` run, read from the kernel, and the translation of labels
//! to what a capture point sees.
//!
//! Nodes label with their own (inside) addresses; the core capture sees a NATed client's
//! traffic with its router's public address and port. A [`ConntrackPoller`] thread enters the
//! NAT router's namespace and reads `/proc/thread-self/net/nf_conntrack` every
//! [`POLL_EVERY`] (conntrack keeps an unreplied UDP entry 30 s, so nothing is missed), keeping
//! every mapping (inside source, remote) → public source it saw. No extra tool is needed.
//!
//! Guarantees: bounded ([`MAX_MAPPINGS`] per router); a line it cannot parse is skipped.
//! Must not: change the kernel's state (read only).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Mappings kept per NAT router.
pub const MAX_MAPPINGS: usize = 1 << 16;
/// How often the conntrack table is read.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// (protocol 6/17, inside source, remote) → public source.
pub type Mappings = HashMap<(u8, SocketAddr, SocketAddr), SocketAddr>;

/// Parses one `nf_conntrack` line into ((proto, orig src, orig dst), reply dst): the reply
/// direction's destination is the translated source.
pub fn parse_line(line: &str) -> Option<((u8, SocketAddr, SocketAddr), SocketAddr)> {
    let mut words = line.split_whitespace();
    let proto = match words.nth(2)? {
        "tcp" => 6,
        "udp" => 17,
        _ => return None,
    };
    let mut ips: Vec<IpAddr> = Vec::with_capacity(4);
    let mut ports: Vec<u16> = Vec::with_capacity(4);
    for w in words {
        if let Some(v) = w.strip_prefix("src=").or_else(|| w.strip_prefix("dst=")) {
            ips.push(v.parse().ok()?);
        } else if let Some(v) = w
            .strip_prefix("sport=")
            .or_else(|| w.strip_prefix("dport="))
        {
            ports.push(v.parse().ok()?);
        }
    }
    // Order: orig src, orig dst, reply src, reply dst (ports likewise).
    let (Some(&[s, d, _, rd]), Some(&[sp, dp, _, rdp])) = (ips.get(..4), ports.get(..4)) else {
        return None;
    };
    Some((
        (proto, SocketAddr::new(s, sp), SocketAddr::new(d, dp)),
        SocketAddr::new(rd, rdp),
    ))
}

/// Reads the conntrack table of one namespace in a background thread.
pub struct ConntrackPoller {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Mappings, String>>>,
}

impl ConntrackPoller {
    pub fn start(ns: &str) -> ConntrackPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ns = ns.to_string();
        let handle = std::thread::spawn(move || {
            super::enter_netns(&ns).map_err(|e| format!("enter {ns}: {e}"))?;
            let mut map = Mappings::new();
            loop {
                let last = flag.load(Ordering::SeqCst);
                let text = std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")
                    .map_err(|e| format!("{ns}: nf_conntrack: {e}"))?;
                for (k, v) in text.lines().filter_map(parse_line) {
                    if map.len() < MAX_MAPPINGS || map.contains_key(&k) {
                        map.insert(k, v);
                    }
                }
                if last {
                    return Ok(map);
                }
                std::thread::sleep(POLL_EVERY);
            }
        });
        ConntrackPoller {
            stop,
            handle: Some(handle),
        }
    }

    /// Reads the table a last time and returns everything seen.
    pub fn finish(mut self) -> Result<Mappings, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            _ => Err("conntrack reader failed".into()),
        }
    }
}

impl Drop for ConntrackPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_lines_give_the_public_source() {
        let l = "ipv4     2 udp      17 28 src=192.168.1.2 dst=203.0.113.1 sport=40000 dport=33033 \
                 src=203.0.113.1 dst=100.64.0.1 sport=33033 dport=1024 mark=0 use=1";
        let ((p, s, d), public) = parse_line(l).unwrap();
        assert_eq!(p, 17);
        assert_eq!(s, "192.168.1.2:40000".parse().unwrap());
        assert_eq!(d, "203.0.113.1:33033".parse().unwrap());
        assert_eq!(public, "100.64.0.1:1024".parse().unwrap());
        let t = "ipv4     2 tcp      6 431999 ESTABLISHED src=192.168.1.2 dst=198.51.100.10 \
                 sport=41000 dport=33034 src=198.51.100.10 dst=100.64.0.1 sport=33034 dport=41000 \
                 [ASSURED] mark=0 use=1";
        assert_eq!(parse_line(t).unwrap().0.0, 6);
        assert!(parse_line("ipv4 2 icmp 1 29 src=1.2.3.4").is_none());
        assert!(parse_line("").is_none());
        assert!(parse_line("ipv4 2 udp 17 src=x dst=y").is_none());
    }
}
