//! NAT mappings of a `lab --netns` run, read from the kernel, and the translation of labels
//! to what a capture point sees.
//!
//! Nodes label with their own (inside) addresses; the core capture sees a NATed client's
//! traffic with its router's public address and port. A [`ConntrackPoller`] thread enters the
//! NAT router's namespace and reads `/proc/thread-self/net/nf_conntrack` every
//! [`POLL_EVERY`] (conntrack keeps an unreplied UDP entry 30 s, so nothing is missed), keeping
//! every mapping (inside source, remote) → public source it saw, with when it began: once an
//! entry expires, the next packet of the same pair gets a new one — with `masquerade
//! fully-random` a new public port — so a label is translated with the mapping of its own time.
//! No extra tool is needed.
//!
//! Guarantees: bounded ([`MAX_MAPPINGS`] per router); a line it cannot parse is skipped.
//! Must not: change the kernel's state (read only).

use crate::time::Ts;
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
/// A mapping first seen by one read began after the read before it started, less this
/// margin: a label is stamped just before its packet reaches the router (microseconds), and
/// two mappings of one pair are at least a conntrack timeout (a second or more) apart.
const MARGIN_NS: i64 = 50_000_000;

/// (protocol 6/17, source, destination) of a packet's original direction.
pub type Key = (u8, SocketAddr, SocketAddr);

/// Per key, every address it was mapped to, in the order they began.
#[derive(Clone, Debug, Default)]
pub struct Mappings {
    by_key: HashMap<Key, Vec<Began>>,
    /// Mappings kept over all keys, for the bound.
    len: usize,
}

/// A mapping and a time before which it did not exist.
#[derive(Clone, Copy, Debug)]
struct Began {
    after: Ts,
    to: SocketAddr,
}

impl Mappings {
    /// Records that `key` maps to `to`, a mapping that did not exist before `after`; a no-op
    /// when that is already `key`'s latest mapping, or once [`MAX_MAPPINGS`] are kept.
    pub fn observe(&mut self, key: Key, to: SocketAddr, after: Ts) {
        let seen = self.by_key.get(&key).and_then(|v| v.last());
        if seen.is_some_and(|b| b.to == to) || self.len >= MAX_MAPPINGS {
            return;
        }
        self.by_key
            .entry(key)
            .or_default()
            .push(Began { after, to });
        self.len += 1;
    }

    /// What `key` mapped to at time `t`: the latest mapping begun before `t` (the first one
    /// for an earlier `t`).
    pub fn at(&self, key: &Key, t: Ts) -> Option<SocketAddr> {
        let all = self.by_key.get(key)?;
        let begun = all.partition_point(|b| b.after < t);
        all.get(begun.saturating_sub(1)).map(|b| b.to)
    }

    /// The reverse direction: (protocol, public source, remote) → inside source, with the
    /// same times.
    pub fn reversed(&self) -> Mappings {
        let mut rev = Mappings::default();
        let mut all: Vec<(Key, Began)> = self
            .by_key
            .iter()
            .flat_map(|(&(p, inside, remote), v)| {
                v.iter().map(move |b| {
                    let began = Began {
                        after: b.after,
                        to: inside,
                    };
                    ((p, b.to, remote), began)
                })
            })
            .collect();
        all.sort_by_key(|(_, b)| b.after);
        for (k, b) in all {
            rev.observe(k, b.to, b.after);
        }
        rev
    }
}

/// Parses one `nf_conntrack` line into ((proto, orig src, orig dst), reply dst): the reply
/// direction's destination is the translated source.
pub fn parse_line(line: &str) -> Option<(Key, SocketAddr)> {
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
            let mut map = Mappings::default();
            // The labels' clock. The first read may see entries of any age.
            let clock = crate::peer::driver::Clock::new();
            let mut after = Ts(i64::MIN);
            loop {
                let last = flag.load(Ordering::SeqCst);
                let read_at = clock.now();
                let text = std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")
                    .map_err(|e| format!("{ns}: nf_conntrack: {e}"))?;
                for (k, v) in text.lines().filter_map(parse_line) {
                    map.observe(k, v, after);
                }
                after = read_at.add_nanos(-MARGIN_NS);
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

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_pair_mapped_again_translates_by_time() {
        // A symmetric NAT's entry expired between 10 s and 40 s; the next packet got a new port.
        let k = (17, a("192.168.1.2:40000"), a("203.0.113.1:33033"));
        let mut m = Mappings::default();
        m.observe(k, a("100.64.0.1:1024"), Ts(i64::MIN));
        m.observe(k, a("100.64.0.1:1024"), Ts(5));
        m.observe(k, a("100.64.0.1:2048"), Ts(40));
        m.observe(k, a("100.64.0.1:2048"), Ts(41));
        assert_eq!(m.len, 2, "a mapping seen again is kept once");
        assert_eq!(m.at(&k, Ts(0)), Some(a("100.64.0.1:1024")));
        assert_eq!(m.at(&k, Ts(40)), Some(a("100.64.0.1:1024")));
        assert_eq!(m.at(&k, Ts(41)), Some(a("100.64.0.1:2048")));
        assert_eq!(m.at(&k, Ts(i64::MIN)), Some(a("100.64.0.1:1024")));
        let other = (6, k.1, k.2);
        assert_eq!(m.at(&other, Ts(41)), None);
        // Replies to either public port go back to the same inside source, each in its time.
        let r = m.reversed();
        assert_eq!(r.at(&(17, a("100.64.0.1:1024"), k.2), Ts(0)), Some(k.1));
        assert_eq!(r.at(&(17, a("100.64.0.1:2048"), k.2), Ts(50)), Some(k.1));
        assert_eq!(r.len, 2);
    }

    #[test]
    fn mappings_are_bounded() {
        let mut m = Mappings::default();
        let remote = a("203.0.113.1:33033");
        for i in 0..MAX_MAPPINGS + 10 {
            let inside = SocketAddr::new(a("192.168.1.2:1").ip(), (i % 60000) as u16 + 1);
            let public = SocketAddr::new(a("100.64.0.1:1").ip(), (i / 60000) as u16 + 1);
            m.observe((17, inside, remote), public, Ts(i as i64));
        }
        assert_eq!(m.len, MAX_MAPPINGS);
    }
}
