//! The sans-IO boundary of every Skylark role: what a driver feeds a node and what it gets
//! back (str0m's `handle_input` / `poll_output` shape).
//!
//! TCP is modelled as connections with ids: a node asks for `Connect { conn }` with an id
//! it picked (top bit clear), a driver reports `Accepted` connections with ids it picked
//! (top bit set, see [`ConnId::ACCEPTED_BIT`]), and both sides then speak of the same id.
//! Bytes arrive as a stream (`TcpEvent::Data`): framing is the node's job
//! (see [`super::stream::FrameReader`]).

use super::truth::{Event, Label};
use crate::time::Ts;
use std::net::SocketAddr;

/// A TCP connection as the node and its driver both name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// Set on ids the driver assigns to accepted connections.
    pub const ACCEPTED_BIT: u64 = 1 << 63;

    pub fn is_accepted(self) -> bool {
        self.0 & Self::ACCEPTED_BIT != 0
    }
}

/// Something that happened on a TCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpEvent<'a> {
    /// A peer connected to one of our listening addresses.
    Accepted {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Our `Connect` succeeded.
    Connected { local: SocketAddr },
    /// Our `Connect` failed or timed out (refused, unreachable, filtered).
    ConnectFailed,
    /// Stream bytes, in order.
    Data(&'a [u8]),
    /// The peer closed or reset the connection (or it broke).
    Closed,
}

/// Input to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// The deadline the node asked for passed (or the driver just woke it up).
    Timeout(Ts),
    /// A UDP datagram arrived on the node's socket bound to `local`.
    Udp {
        now: Ts,
        local: SocketAddr,
        from: SocketAddr,
        data: &'a [u8],
    },
    Tcp {
        now: Ts,
        conn: ConnId,
        event: TcpEvent<'a>,
    },
    /// A user command (clients: `lookup bob`, `call bob`, `hangup`, …), already split into
    /// words by the driver.
    Command { now: Ts, words: Vec<String> },
}

impl Input<'_> {
    pub fn now(&self) -> Ts {
        match self {
            Input::Timeout(t) => *t,
            Input::Udp { now, .. } | Input::Tcp { now, .. } | Input::Command { now, .. } => *now,
        }
    }
}

/// A datagram to send, with the ground truth of the message it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The node's socket to send from (one of its UDP listen addresses).
    pub local: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
    pub label: Label,
}

/// A TCP action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOut {
    /// Open a connection from the node's address (`from`: the local IP, and a port when
    /// the node needs a fixed one — `None` lets the driver pick) to `to`.
    Connect {
        conn: ConnId,
        from: Option<SocketAddr>,
        to: SocketAddr,
    },
    /// Send bytes (one message, whose label is given).
    Send {
        conn: ConnId,
        data: Vec<u8>,
        label: Label,
    },
    /// Close gracefully (FIN after pending data).
    Close { conn: ConnId },
}

/// Output of a node; drain with `poll_output` until `Timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Udp(Datagram),
    Tcp(TcpOut),
    Event(Event),
    /// Nothing more now; call again with `Input::Timeout` at this time (or earlier input).
    Timeout(Ts),
}

/// Listening sockets a node wants its driver to open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listen {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
}

/// A Skylark role as a sans-IO state machine.
pub trait Node {
    /// Sockets to open before the first input.
    fn listen(&self) -> Listen;
    /// Processes one input. Malformed or unexpected input is dropped and counted, never a
    /// panic.
    fn handle_input(&mut self, input: Input<'_>);
    /// The next output; `Output::Timeout` when there is nothing more to do now.
    fn poll_output(&mut self) -> Output;
}
