//! Super-node promotion (PROTOCOL.md §8.10): a client that has been up long enough, is
//! ONLINE with nat-type public and declares enough uplink becomes a super node on its own
//! UDP/TCP address while staying a client. The client composes a [`SuperNode`] (same
//! process, same address, same node name and node id) and routes every input to exactly
//! one of the two roles:
//!
//! - UDP: requests an SN serves from anyone (`hc-probe`, `fallback-probe`, `nat-ping`,
//!   local-lookup `search`, STUN Binding requests), answers to the SN's own ring searches
//!   (`search-result`, `search` errors) and media of calls the SN relays go to the SN;
//!   everything else (answers to the client's own requests, its media) to the client.
//! - TCP: connections the SN opened (ids tagged with [`SN_CONN_BIT`] on the way out);
//!   accepted connections from the IP address of an SN in the embedded SN's host cache
//!   (SN links); accepted connections whose first frame is a request an SN serves
//!   (`hc-probe`, `sn-register`, `search`, `relay-request`, presence, host-cache, keepalive).
//!   Other accepted connections (direct invites, conference joins) stay with the client.
//!   Until its first header has arrived an accepted connection is *undecided* (bounded by
//!   [`MAX_UNDECIDED`], closed after [`super::MAX_IDLE_ACCEPTED_S`] without a header).
//!
//! Guarantees: no input reaches both roles; outputs of the SN keep their labels (role
//! supernode, the client's node name); nothing here allocates per media frame. Must not:
//! promote without the login server's key (the SN could not check credentials) or
//! behind a NAT.

use super::{Client, FAR, secs};
use crate::peer::io::{ConnId, Input, Node, Output, TcpEvent, TcpOut};
use crate::peer::supernode::{SuperNode, SuperNodeConfig};
use crate::peer::truth::EventKind;
use crate::time::Ts;
use dissectors::skylark::codec::MessageView;
use dissectors::skylark::{Flags, MAGIC, MsgType, Packet};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Set on the ids of TCP connections the embedded SN opens, so that their events find it
/// (the client's own ids never reach it; accepted ids have the top bit set instead).
pub const SN_CONN_BIT: u64 = 1 << 62;
/// Accepted connections waiting for their first header at once; more are closed.
pub const MAX_UNDECIDED: usize = 64;
/// Accepted connections handed to the embedded SN that the client remembers (the SN
/// itself keeps at most `supernode::MAX_CONNS`).
pub const MAX_SN_ACCEPTED: usize = crate::peer::supernode::MAX_CONNS;

/// An accepted connection whose first header has not arrived yet.
#[derive(Debug)]
pub(super) struct Undecided {
    local: SocketAddr,
    remote: SocketAddr,
    opened: Ts,
    /// Bytes received so far (fewer than a header, plus the chunk that completed it).
    buf: Vec<u8>,
}

/// The promotion state of a client.
#[derive(Default)]
pub(super) struct Promotion {
    pub(super) sn: Option<Box<SuperNode>>,
    /// The embedded SN's next deadline, as its last `poll_output` said.
    sn_deadline: Option<Ts>,
    sn_accepted: HashSet<ConnId>,
    pub(super) undecided: HashMap<ConnId, Undecided>,
    /// Building the SN failed: not retried.
    failed: bool,
}

/// Requests a promoted node's SN role serves on a connection it accepted.
fn sn_tcp_request(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::HcProbe
            | MsgType::SnRegister
            | MsgType::Search
            | MsgType::RelayRequest
            | MsgType::PresenceQuery
            | MsgType::PresenceUpdate
            | MsgType::HcExchangeRequest
            | MsgType::SnRefresh
    )
}

impl Client {
    /// Adds an SN learned from an sn-list to the host cache, never the node itself (once
    /// promoted it appears in the sn-lists of its own SN, §8.10).
    pub(super) fn learn_sn(&mut self, a: SocketAddr) {
        if a != self.cfg.addr {
            self.state.host_cache.add(a);
        }
    }

    /// Whether this client has been promoted to super node.
    pub fn is_promoted(&self) -> bool {
        self.promo.sn.is_some()
    }

    /// The embedded super node, once promoted.
    pub fn super_node_role(&self) -> Option<&SuperNode> {
        self.promo.sn.as_deref()
    }

    /// When the uptime condition of promotion is met (`None`: never, or done).
    fn promotion_due(&self) -> Option<Ts> {
        if !self.cfg.promotion || self.promo.sn.is_some() || self.promo.failed {
            return None;
        }
        let started = self.started?;
        Some(started.add_nanos(secs(self.cfg.promotion_uptime_s)))
    }

    /// PROTOCOL.md §8.10: all conditions at once.
    fn promotion_ready(&self) -> bool {
        self.promotion_due().is_some_and(|t| t <= self.now)
            && self.cfg.ls_key.is_some()
            && self.login.is_online()
            && self.login.nat == super::NatType::Public
            && self.cfg.uplink_kbps >= self.cfg.promotion_min_uplink_kbps
    }

    /// Runs at every input: promotes when ready, fires the SN's timers, sweeps silent
    /// undecided connections.
    pub(super) fn promotion_timers(&mut self) {
        if self.promotion_ready() {
            self.promote();
        }
        let now = self.now;
        if let Some(sn) = self.promo.sn.as_mut() {
            if self.promo.sn_deadline.is_none_or(|d| d <= now) {
                // Cleared so the next poll_output learns the new deadline.
                self.promo.sn_deadline = None;
                sn.handle_input(Input::Timeout(now));
            }
        }
        let idle = secs(super::MAX_IDLE_ACCEPTED_S);
        let silent: Vec<ConnId> = self
            .promo
            .undecided
            .iter()
            .filter(|(_, u)| now.since(u.opened) >= idle)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            self.promo.undecided.remove(&id);
            self.stats.ignored += 1;
            self.out.close(id);
        }
    }

    /// The earliest of the promotion timers (the uptime condition only while it is in
    /// the future: once passed it is re-checked at every input, and keepalives bring
    /// inputs).
    pub(super) fn promotion_deadline(&self) -> Ts {
        let due = self
            .promotion_due()
            .filter(|t| *t > self.now)
            .unwrap_or(FAR);
        let sn = match &self.promo.sn {
            Some(_) => self.promo.sn_deadline.unwrap_or(self.now),
            None => FAR,
        };
        let idle = secs(super::MAX_IDLE_ACCEPTED_S);
        let undecided = self
            .promo
            .undecided
            .values()
            .map(|u| u.opened.add_nanos(idle))
            .min()
            .unwrap_or(FAR);
        due.min(sn).min(undecided)
    }

    fn promote(&mut self) {
        let Some(ls_key) = self.cfg.ls_key else {
            return;
        };
        let peers: Vec<SocketAddr> = self
            .state
            .host_cache
            .entries()
            .iter()
            .copied()
            .filter(|a| *a != self.cfg.addr)
            .collect();
        let cfg = SuperNodeConfig {
            name: self.cfg.name.clone(),
            addr: self.cfg.addr,
            ls_key,
            peers,
            // A different stream from the client's, still reproducible.
            seed: self.cfg.seed ^ 0x5355_5045_524e_4f44,
            node_id: Some(self.node_id),
            capacity: self.cfg.promoted_capacity,
            ..SuperNodeConfig::default()
        };
        match SuperNode::new(cfg) {
            Ok(sn) => {
                self.promo.sn = Some(Box::new(sn));
                self.promo.sn_deadline = None;
                self.out.event(
                    self.now,
                    EventKind::Note {
                        what: "promoted to super node".into(),
                    },
                );
                // Announce at once (every later sn-refresh carries sn-addr too).
                if !self.login.awaiting_ack() {
                    self.send_refresh(false);
                }
            }
            Err(e) => {
                self.promo.failed = true;
                self.note(format!("promotion failed: {e}"));
            }
        }
    }

    /// Gives a datagram to the embedded SN when it is SN business; false: the client's.
    pub(super) fn route_udp(
        &mut self,
        now: Ts,
        local: SocketAddr,
        from: SocketAddr,
        d: &[u8],
    ) -> bool {
        let Some(sn) = self.promo.sn.as_mut() else {
            return false;
        };
        let for_sn = match d.first() {
            // STUN: Binding requests (type 0x0001) are the SN's, answers the client's.
            Some(0x00..=0x03) => d.get(..2) == Some(&[0x00, 0x01]),
            Some(&MAGIC) => match MessageView::parse(d) {
                Ok(v) => {
                    let (t, f) = (v.msg_type(), v.flags());
                    match t {
                        MsgType::HcProbe
                        | MsgType::FallbackProbe
                        | MsgType::NatPing
                        | MsgType::Search => {
                            f == Flags::REQUEST || (t == MsgType::Search && f == Flags::ERR)
                        }
                        MsgType::SearchResult => true,
                        MsgType::Voice | MsgType::Mix | MsgType::HoldKeepalive => {
                            v.call_id().is_some_and(|c| sn.relays_call(c))
                        }
                        _ => false,
                    }
                }
                Err(_) => false,
            },
            _ => false,
        };
        if for_sn {
            sn.handle_input(Input::Udp {
                now,
                local,
                from,
                data: d,
            });
        }
        for_sn
    }

    /// Gives a TCP event to the embedded SN when the connection is (or becomes) its;
    /// false: the client's. Undecided connections are held here.
    pub(super) fn route_tcp(&mut self, now: Ts, conn: ConnId, event: &TcpEvent<'_>) -> bool {
        if self.promo.sn.is_none() {
            return false;
        }
        if !conn.is_accepted() {
            if conn.0 & SN_CONN_BIT == 0 {
                return false;
            }
            let inner = ConnId(conn.0 & !SN_CONN_BIT);
            self.feed_sn(now, inner, event.clone());
            return true;
        }
        if self.promo.sn_accepted.contains(&conn) {
            if matches!(event, TcpEvent::Closed) {
                self.promo.sn_accepted.remove(&conn);
            }
            self.feed_sn(now, conn, event.clone());
            return true;
        }
        match event {
            TcpEvent::Accepted { local, remote } => {
                let from_sn = self
                    .promo
                    .sn
                    .as_ref()
                    .is_some_and(|s| s.host_cache().iter().any(|a| a.ip() == remote.ip()));
                if from_sn {
                    self.hand_to_sn(now, conn, *local, *remote, &[]);
                } else if self.promo.undecided.len() >= MAX_UNDECIDED {
                    self.stats.ignored += 1;
                    self.out.close(conn);
                } else {
                    self.promo.undecided.insert(
                        conn,
                        Undecided {
                            local: *local,
                            remote: *remote,
                            opened: now,
                            buf: Vec::new(),
                        },
                    );
                }
                true
            }
            TcpEvent::Data(bytes) => {
                let Some(u) = self.promo.undecided.get_mut(&conn) else {
                    return false;
                };
                u.buf.extend_from_slice(bytes);
                let Ok(p) = Packet::new_checked(u.buf.as_slice()) else {
                    // Not even a header yet (or a garbage byte the client will refuse).
                    if u.buf.first().is_some_and(|b| *b != MAGIC) {
                        self.decide(now, conn, false);
                    }
                    return true;
                };
                let to_sn = p.magic() == MAGIC
                    && p.flags() == Flags::REQUEST
                    && sn_tcp_request(p.msg_type());
                self.decide(now, conn, to_sn);
                true
            }
            TcpEvent::Closed | TcpEvent::ConnectFailed | TcpEvent::Connected { .. } => {
                // The client never saw an undecided connection: nothing to tell it.
                self.promo.undecided.remove(&conn).is_some()
            }
        }
    }

    fn decide(&mut self, now: Ts, conn: ConnId, to_sn: bool) {
        let Some(u) = self.promo.undecided.remove(&conn) else {
            return;
        };
        if to_sn {
            self.hand_to_sn(now, conn, u.local, u.remote, &u.buf);
        } else {
            self.on_tcp(
                conn,
                TcpEvent::Accepted {
                    local: u.local,
                    remote: u.remote,
                },
            );
            self.on_tcp(conn, TcpEvent::Data(&u.buf));
        }
    }

    fn hand_to_sn(
        &mut self,
        now: Ts,
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        if self.promo.sn_accepted.len() >= MAX_SN_ACCEPTED {
            self.stats.ignored += 1;
            self.out.close(conn);
            return;
        }
        self.promo.sn_accepted.insert(conn);
        self.feed_sn(now, conn, TcpEvent::Accepted { local, remote });
        if !bytes.is_empty() {
            self.feed_sn(now, conn, TcpEvent::Data(bytes));
        }
    }

    fn feed_sn(&mut self, now: Ts, conn: ConnId, event: TcpEvent<'_>) {
        if let Some(sn) = self.promo.sn.as_mut() {
            sn.handle_input(Input::Tcp { now, conn, event });
        }
    }

    /// The next output of the embedded SN (connection ids it picked tagged with
    /// [`SN_CONN_BIT`]), or `None` when it has nothing to send now.
    pub(super) fn poll_sn(&mut self) -> Option<Output> {
        let sn = self.promo.sn.as_mut()?;
        let tag = |c: ConnId| {
            if c.is_accepted() {
                c
            } else {
                ConnId(c.0 | SN_CONN_BIT)
            }
        };
        match sn.poll_output() {
            Output::Timeout(t) => {
                self.promo.sn_deadline = Some(t);
                None
            }
            Output::Tcp(TcpOut::Connect { conn, from, to }) => Some(Output::Tcp(TcpOut::Connect {
                conn: tag(conn),
                from,
                to,
            })),
            Output::Tcp(TcpOut::Send { conn, data, label }) => Some(Output::Tcp(TcpOut::Send {
                conn: tag(conn),
                data,
                label,
            })),
            Output::Tcp(TcpOut::Close { conn }) => {
                self.promo.sn_accepted.remove(&conn);
                Some(Output::Tcp(TcpOut::Close { conn: tag(conn) }))
            }
            other => Some(other),
        }
    }
}
