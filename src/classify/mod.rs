//! Message classification: turns each decoded message into a canonical kind (the names the
//! ground-truth labels use), one of the five traffic classes, and a `home` flag.
//!
//! Skylark messages carry their class by specification. STUN, HTTP, DNS and TLS are
//! classified by their role in the overlay: a STUN binding with a Skylark endpoint is NAT
//! discovery during login; the phone-home HTTP requests of PROTOCOL.md §10 (version check,
//! telemetry, contacts) and their responses are login; TLS and DNS are login only when they
//! concern a home endpoint. `home` is true when the message's destination is a home endpoint:
//! learned from the traffic (the login server from `auth-hello`/`auth-proof`, the home server
//! from the phone-home requests, names matching a user pattern in DNS answers, TLS SNI or
//! HTTP Host) or named by the user (`--home ADDR|CIDR|NAME-PATTERN`).
//!
//! Guarantees: deterministic (decisions depend only on the message sequence), every table
//! bounded by a `MAX_*` constant (when full, new entries are not learned; the HTTP
//! request-pairing table is cleared), never panics. It must not look at raw packets or
//! reorder anything: one message in, one verdict out.

mod known;

pub use known::Known;

use crate::flow::Uid;
use crate::pipeline::MsgCtx;
use dissectors::registry::{Message, TrafficClass};
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// Home endpoints learned from the traffic (address and port).
pub const MAX_HOME_ENDPOINTS: usize = 4096;
/// Home addresses learned from DNS answers for names matching a user pattern.
pub const MAX_HOME_ADDRS: usize = 4096;
/// Endpoints seen speaking Skylark (for classifying STUN with them).
pub const MAX_OVERLAY_ENDPOINTS: usize = 1 << 18;
/// HTTP flows with requests awaiting their response (to name the response).
pub const MAX_HTTP_FLOWS: usize = 1 << 14;
/// Pipelined requests remembered per HTTP flow.
pub const MAX_HTTP_PENDING: usize = 16;
/// User `--home` entries.
pub const MAX_HOME_SPECS: usize = 256;

/// The classifier's verdict on one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// Canonical message name, as in labels.csv: Skylark names, `stun-binding-request`,
    /// `http-version-check`, `http-telemetry-response`, `dns-query`, `tls-client-hello`, …
    pub kind: Cow<'static, str>,
    /// The kind as a value, for the measurements to switch on ([`Known`]).
    pub known: Known,
    /// Traffic class; `None` for traffic with no role in the overlay.
    pub class: Option<TrafficClass>,
    /// The destination is a home endpoint (login or home server).
    pub home: bool,
}

/// One `--home` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HomeSpec {
    /// An address, with or without port (`198.51.100.80`, `198.51.100.80:80`).
    Addr(IpAddr, Option<u16>),
    /// A network: address and prefix length.
    Cidr(IpAddr, u8),
    /// A host name pattern (lower case; `*` matches any run of characters), matched against
    /// DNS questions, TLS SNI and HTTP Host.
    Name(String),
}

impl HomeSpec {
    /// Parses `ADDR`, `ADDR:PORT`, `[V6]:PORT`, `ADDR/LEN` or a host name pattern.
    pub fn parse(s: &str) -> Result<HomeSpec, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty --home value".into());
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(HomeSpec::Addr(ip, None));
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(HomeSpec::Addr(sa.ip(), Some(sa.port())));
        }
        if let Some((a, len)) = s.split_once('/') {
            let ip: IpAddr = a
                .parse()
                .map_err(|_| format!("'{s}': not an address/prefix"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len
                .parse()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?;
            return Ok(HomeSpec::Cidr(ip, len));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'));
        if !ok || s.len() > 253 {
            return Err(format!("'{s}': not an address, CIDR or host name pattern"));
        }
        Ok(HomeSpec::Name(s.to_ascii_lowercase()))
    }
}

/// Whether `ip` lies in `net/len`.
fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Glob match, `*` matching any run (case-insensitive on the name; the pattern is lower
/// case). Iterative with one backtrack point: linear-ish, no recursion.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let c = name.get(n).map(u8::to_ascii_lowercase);
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&pc) if Some(pc) == c => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

/// The value of `key=` in a space-separated detail string.
fn detail_field<'a>(detail: Option<&'a str>, key: &str) -> Option<&'a str> {
    detail?
        .split(' ')
        .find_map(|f| f.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// The phone-home request a path names (PROTOCOL.md §10), by its last segment.
fn phone_home_kind(path: &str) -> Option<Known> {
    let path = path.split('?').next().unwrap_or_default();
    if !path.starts_with("/ui/") {
        return None;
    }
    match path.rsplit('/').next() {
        Some("getlatestversion") => Some(Known::HttpVersionCheck),
        Some("telemetry") => Some(Known::HttpTelemetry),
        Some("contacts") => Some(Known::HttpContacts),
        _ => None,
    }
}

/// A request awaiting its response on an HTTP flow.
#[derive(Clone, Copy, Debug)]
struct PendingRequest {
    kind: Option<Known>,
    /// The request concerned a home endpoint (its response is login traffic).
    home: bool,
}

/// The classifier: feed it every message in decode order.
#[derive(Debug, Default)]
pub struct Classifier {
    specs: Vec<HomeSpec>,
    home_endpoints: FxHashSet<SocketAddr>,
    home_addrs: FxHashSet<IpAddr>,
    /// The host name that made an address home (DNS question, TLS SNI, HTTP Host), first
    /// one learned; at most one per learned home endpoint or address.
    home_names: FxHashMap<IpAddr, String>,
    /// Bumped whenever what [`Classifier::is_home`] answers may change (a home learned):
    /// at most [`MAX_HOME_ENDPOINTS`] + [`MAX_HOME_ADDRS`] times.
    homes_version: u32,
    overlay: FxHashSet<SocketAddr>,
    http: FxHashMap<Uid, VecDeque<PendingRequest>>,
}

/// A flow's cached [`Classifier::homes`]: whether its originator and responder are home
/// endpoints, as of a version of the home set (`default()`: not known yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHomes {
    /// The home set's version + 1 when cached, 0 before (4 bytes: one per live flow).
    version: u32,
    /// Originator and responder (by [`crate::flow::Dir::index`]) are home endpoints.
    home: [bool; 2],
}

impl Classifier {
    /// A classifier with the user's `--home` entries (at most [`MAX_HOME_SPECS`] are kept).
    pub fn new(mut specs: Vec<HomeSpec>) -> Classifier {
        specs.truncate(MAX_HOME_SPECS);
        Classifier {
            specs,
            ..Classifier::default()
        }
    }

    /// Home endpoints learned so far, sorted.
    pub fn learned_home(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self.home_endpoints.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Whether `addr` is a home endpoint (learned or named by the user).
    pub fn is_home(&self, addr: SocketAddr) -> bool {
        self.home_endpoints.contains(&addr)
            || self.home_addrs.contains(&addr.ip())
            || self.specs.iter().any(|s| match *s {
                HomeSpec::Addr(ip, port) => {
                    ip == addr.ip() && port.is_none_or(|p| p == addr.port())
                }
                HomeSpec::Cidr(net, len) => in_cidr(addr.ip(), net, len),
                HomeSpec::Name(_) => false,
            })
    }

    fn name_matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.specs.iter().any(|s| match s {
            HomeSpec::Name(p) => glob(p.as_bytes(), name.as_bytes()),
            _ => false,
        })
    }

    /// [`Classifier::is_home`] of the message's sender and receiver, through its flow's
    /// cache: a flow's endpoints never change and the home set rarely does, so most
    /// messages skip the lookups.
    #[inline]
    pub fn homes(&self, ctx: &MsgCtx, flow: &mut FlowHomes) -> (bool, bool) {
        let (sender, receiver) = (ctx.dir.index(), ctx.dir.flip().index());
        if flow.version != self.homes_version + 1 {
            self.refresh_homes(ctx, flow);
        }
        (flow.home[sender], flow.home[receiver])
    }

    /// [`Self::homes`] for a flow whose cache is older than the home set.
    #[cold]
    #[inline(never)]
    fn refresh_homes(&self, ctx: &MsgCtx, flow: &mut FlowHomes) {
        let (sender, receiver) = (ctx.dir.index(), ctx.dir.flip().index());
        flow.version = self.homes_version + 1;
        flow.home[sender] = self.is_home(ctx.src);
        flow.home[receiver] = self.is_home(ctx.dst);
    }

    /// The host name through which `ip` became a home endpoint, if a name did it.
    pub fn home_name(&self, ip: IpAddr) -> Option<&str> {
        self.home_names.get(&ip).map(String::as_str)
    }

    fn learn_home(&mut self, addr: SocketAddr, name: Option<&str>) {
        if self.home_endpoints.len() < MAX_HOME_ENDPOINTS && self.home_endpoints.insert(addr) {
            self.homes_version += 1;
            if let Some(name) = name {
                self.name_home(addr.ip(), name);
            }
        }
    }

    fn name_home(&mut self, ip: IpAddr, name: &str) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.home_names.entry(ip).or_insert(name);
    }

    /// Classifies one message (and learns from it).
    pub fn classify(&mut self, ctx: &MsgCtx, msg: &Message) -> Classified {
        self.classify_in_flow(ctx, msg, false, &mut FlowHomes::default())
    }

    /// [`Classifier::classify`] for a caller that tracks its flows: `endpoints_noted` says an
    /// earlier Skylark message of this flow already taught the classifier the flow's
    /// endpoints (a flow's endpoints never change, and the set lookup per message is
    /// measurable with millions of messages); `homes` is the flow's [`Classifier::homes`]
    /// cache.
    #[inline]
    pub fn classify_in_flow(
        &mut self,
        ctx: &MsgCtx,
        msg: &Message,
        endpoints_noted: bool,
        homes: &mut FlowHomes,
    ) -> Classified {
        let c = match msg.protocol {
            "skylark" => self.skylark(ctx, msg, endpoints_noted, homes),
            _ => self.not_skylark(ctx, msg),
        };
        debug_assert_eq!(c.known, Known::from_name(&c.kind), "{}", c.kind);
        c
    }

    /// [`Self::classify_in_flow`] of the other protocols' messages (a few in a busy hour).
    #[inline(never)]
    fn not_skylark(&mut self, ctx: &MsgCtx, msg: &Message) -> Classified {
        match msg.protocol {
            "stun" => self.stun(ctx, msg),
            "http" => self.http(ctx, msg),
            "dns" => self.dns(ctx, msg),
            "tls" => self.tls(ctx, msg),
            other => Classified {
                kind: Cow::Owned(format!("{other}-{}", msg.msg_type)),
                known: Known::Other,
                class: None,
                home: self.is_home(ctx.dst),
            },
        }
    }

    #[inline]
    fn skylark(
        &mut self,
        ctx: &MsgCtx,
        msg: &Message,
        endpoints_noted: bool,
        homes: &mut FlowHomes,
    ) -> Classified {
        if !endpoints_noted {
            self.note_overlay(ctx);
        }
        let known = Known::skylark(msg);
        // Only the login server is sent these (PROTOCOL.md §6).
        if let Known::AuthHello | Known::AuthProof = known {
            self.learn_home(ctx.dst, None);
        }
        Classified {
            kind: msg.msg_type.clone(),
            known,
            class: msg.class,
            home: self.homes(ctx, homes).1,
        }
    }

    /// Notes a Skylark flow's endpoints as overlay members (once per flow).
    #[cold]
    fn note_overlay(&mut self, ctx: &MsgCtx) {
        for a in [ctx.src, ctx.dst] {
            if self.overlay.len() < MAX_OVERLAY_ENDPOINTS {
                self.overlay.insert(a);
            }
        }
    }

    fn stun(&mut self, ctx: &MsgCtx, msg: &Message) -> Classified {
        let binding = msg.msg_type.starts_with("binding-");
        let skylark_sw = detail_field(msg.detail.as_deref(), "software")
            .is_some_and(|s| s.to_ascii_lowercase().starts_with("skylark"));
        let overlay =
            self.overlay.contains(&ctx.src) || self.overlay.contains(&ctx.dst) || skylark_sw;
        Classified {
            kind: Cow::Owned(format!("stun-{}", msg.msg_type)),
            known: Known::stun(msg),
            class: (binding && overlay).then_some(TrafficClass::Login),
            home: self.is_home(ctx.dst),
        }
    }

    fn http(&mut self, ctx: &MsgCtx, msg: &Message) -> Classified {
        let detail = msg.detail.as_deref();
        if msg.msg_type == "response" {
            let pending = self.http.get_mut(&ctx.uid).and_then(VecDeque::pop_front);
            if self.http.get(&ctx.uid).is_some_and(VecDeque::is_empty) {
                self.http.remove(&ctx.uid);
            }
            let from_home = self.is_home(ctx.src);
            let related = from_home || pending.is_some_and(|p| p.home);
            let status = detail_field(detail, "status");
            let known = pending
                .and_then(|p| p.kind)
                .and_then(Known::response)
                .unwrap_or(Known::Other);
            let (kind, known) = match (status, known.name()) {
                (Some("400"), _) if related => ("http-bad-request", Known::Other),
                (Some("404"), _) if related => ("http-not-found", Known::Other),
                (_, Some(name)) => (name, known),
                (_, None) => ("http-response", Known::Other),
            };
            return Classified {
                kind: Cow::Borrowed(kind),
                known,
                class: related.then_some(TrafficClass::Login),
                home: self.is_home(ctx.dst),
            };
        }
        let phone = detail_field(detail, "path").and_then(phone_home_kind);
        let host =
            detail_field(detail, "host").map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name));
        let host_match = host.is_some_and(|h| self.name_matches(h));
        if phone.is_some() || host_match {
            self.learn_home(ctx.dst, host);
        }
        let home = self.is_home(ctx.dst);
        if self.http.len() >= MAX_HTTP_FLOWS && !self.http.contains_key(&ctx.uid) {
            self.http.clear();
        }
        let q = self.http.entry(ctx.uid).or_default();
        if q.len() >= MAX_HTTP_PENDING {
            q.pop_front();
        }
        q.push_back(PendingRequest { kind: phone, home });
        let kind = match phone.and_then(Known::name) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("http-{}", msg.msg_type.to_ascii_lowercase())),
        };
        Classified {
            kind,
            known: phone.unwrap_or(Known::Other),
            class: home.then_some(TrafficClass::Login),
            home,
        }
    }

    fn dns(&mut self, ctx: &MsgCtx, msg: &Message) -> Classified {
        // Detail: `NAME TYPE[ -> ANSWER,ANSWER…]`.
        let detail = msg.detail.as_deref().unwrap_or_default();
        let name = detail.split(' ').next().unwrap_or_default();
        let matches = !name.is_empty() && self.name_matches(name);
        if matches {
            if let Some((_, answers)) = detail.split_once(" -> ") {
                for a in answers.split(',') {
                    if let Ok(ip) = a.trim().parse::<IpAddr>() {
                        if self.home_addrs.len() < MAX_HOME_ADDRS && self.home_addrs.insert(ip) {
                            self.homes_version += 1;
                            self.name_home(ip, name);
                        }
                    }
                }
            }
        }
        Classified {
            kind: Cow::Owned(format!("dns-{}", msg.msg_type)),
            known: Known::Other,
            class: matches.then_some(TrafficClass::Login),
            home: self.is_home(ctx.dst),
        }
    }

    fn tls(&mut self, ctx: &MsgCtx, msg: &Message) -> Classified {
        if let Some(sni) = detail_field(msg.detail.as_deref(), "sni") {
            if self.name_matches(sni) {
                self.learn_home(ctx.dst, Some(sni));
            }
        }
        let home = self.is_home(ctx.dst);
        let related = home || self.is_home(ctx.src);
        Classified {
            kind: Cow::Owned(format!("tls-{}", msg.msg_type)),
            known: Known::Other,
            class: related.then_some(TrafficClass::Login),
            home,
        }
    }
}

#[cfg(test)]
mod tests;
