//! The queue every role drains through `poll_output`: encodes messages, attaches their
//! ground-truth labels, and keeps TCP connection addresses so TCP labels name both ends.

use super::io::{ConnId, Datagram, Output, TcpOut};
use super::truth::{Event, EventKind, Label, Role, Transport, skylark_txn_id};
use crate::time::Ts;
use dissectors::DissectError;
use dissectors::registry::TrafficClass;
use dissectors::skylark::codec::Message;
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// What a label needs beyond the message itself.
#[derive(Clone, Copy, Debug)]
pub struct Dest {
    pub to: SocketAddr,
    /// The destination is the login server or the home server.
    pub home: bool,
}

/// Outputs waiting to be polled, and the addresses of live TCP connections.
#[derive(Debug)]
pub struct Outbox {
    node: std::sync::Arc<str>,
    role: Role,
    queue: VecDeque<Output>,
    /// conn → (local, remote), once known (accepted or connected).
    conns: HashMap<ConnId, (SocketAddr, SocketAddr)>,
    /// Messages that could not be encoded (a bug in the role; counted, never sent).
    pub encode_errors: u64,
}

impl Outbox {
    pub fn new(node: impl Into<String>, role: Role) -> Outbox {
        Outbox {
            node: std::sync::Arc::from(node.into()),
            role,
            queue: VecDeque::new(),
            conns: HashMap::default(),
            encode_errors: 0,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Records the two ends of a TCP connection (from `Accepted` or `Connected`).
    pub fn conn_up(&mut self, conn: ConnId, local: SocketAddr, remote: SocketAddr) {
        self.conns.insert(conn, (local, remote));
    }

    /// An accepted connection, admitted when `room` (the node has fewer connections than
    /// its cap): recorded like [`conn_up`](Self::conn_up), or refused by closing it at
    /// once. Returns whether it was admitted.
    pub fn accept(
        &mut self,
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        room: bool,
    ) -> bool {
        self.conn_up(conn, local, remote);
        if !room {
            self.close(conn);
        }
        room
    }

    pub fn conn_down(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    pub fn conn_addrs(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        self.conns.get(&conn).copied()
    }

    fn label(
        &self,
        now: Ts,
        transport: Transport,
        src: SocketAddr,
        dst: Dest,
        msg: &Message,
    ) -> Label {
        let t = msg.msg_type;
        Label {
            ts: now,
            transport,
            src,
            dst: dst.to,
            msg_type: t.name(),
            // Every Skylark message type has a class by spec (PROTOCOL.md §5); an unknown
            // type is never sent by a role.
            class: t.class().unwrap_or(TrafficClass::Signalling),
            home: dst.home,
            txn_id: Some(skylark_txn_id(msg.txn_id, msg.frame().map(|m| m.seq))),
            call_id: msg.call_id().map(u64::from),
            node: self.node.clone(),
            role: self.role,
        }
    }

    /// Queues a Skylark datagram from the node's socket `local`.
    pub fn udp(&mut self, now: Ts, local: SocketAddr, dst: Dest, msg: &Message) {
        match msg.to_bytes() {
            Ok(data) => {
                let label = self.label(now, Transport::Udp, local, dst, msg);
                self.queue.push_back(Output::Udp(Datagram {
                    local,
                    to: dst.to,
                    data,
                    label,
                }));
            }
            Err(_) => self.encode_errors += 1,
        }
    }

    /// Queues a Skylark frame on a TCP connection whose ends are known.
    pub fn tcp(&mut self, now: Ts, conn: ConnId, home: bool, msg: &Message) {
        let Some((local, remote)) = self.conn_addrs(conn) else {
            self.encode_errors += 1;
            return;
        };
        match msg.to_bytes() {
            Ok(data) => {
                let dst = Dest { to: remote, home };
                let label = self.label(now, Transport::Tcp, local, dst, msg);
                self.queue
                    .push_back(Output::Tcp(TcpOut::Send { conn, data, label }));
            }
            Err(_) => self.encode_errors += 1,
        }
    }

    /// Queues non-Skylark bytes (STUN over UDP) with an explicit label.
    pub fn raw_udp(&mut self, local: SocketAddr, to: SocketAddr, data: Vec<u8>, label: Label) {
        self.queue.push_back(Output::Udp(Datagram {
            local,
            to,
            data,
            label,
        }));
    }

    /// Queues non-Skylark bytes (HTTP) on a TCP connection with an explicit label.
    pub fn raw_tcp(&mut self, conn: ConnId, data: Vec<u8>, label: Label) {
        self.queue
            .push_back(Output::Tcp(TcpOut::Send { conn, data, label }));
    }

    /// A label for a non-Skylark message this node sends.
    #[allow(clippy::too_many_arguments)]
    pub fn raw_label(
        &self,
        now: Ts,
        transport: Transport,
        src: SocketAddr,
        dst: Dest,
        msg_type: &'static str,
        class: TrafficClass,
        txn_id: Option<u64>,
    ) -> Label {
        Label {
            ts: now,
            transport,
            src,
            dst: dst.to,
            msg_type,
            class,
            home: dst.home,
            txn_id,
            call_id: None,
            node: self.node.clone(),
            role: self.role,
        }
    }

    pub fn connect(&mut self, conn: ConnId, from: Option<SocketAddr>, to: SocketAddr) {
        self.queue
            .push_back(Output::Tcp(TcpOut::Connect { conn, from, to }));
    }

    pub fn close(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.queue.push_back(Output::Tcp(TcpOut::Close { conn }));
    }

    pub fn event(&mut self, now: Ts, kind: EventKind) {
        self.queue.push_back(Output::Event(Event {
            ts: now,
            node: self.node.clone(),
            role: self.role,
            kind,
        }));
    }

    /// The next queued output, or `Timeout(next_deadline)` when the queue is empty.
    pub fn poll(&mut self, next_deadline: Ts) -> Output {
        self.queue
            .pop_front()
            .unwrap_or(Output::Timeout(next_deadline))
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Encoding errors are role bugs; this keeps the error type in one place for callers that
/// want to assert on it in tests.
pub type EncodeResult = Result<(), DissectError>;
