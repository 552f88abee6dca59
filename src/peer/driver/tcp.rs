//! The TCP half of the driver: connects (bind before connect, timeout), accepts (bounded
//! per node), buffered sends whose labels are stamped when their first byte is written,
//! graceful close (flush, FIN, drain the peer), and reads turned into `TcpEvent`s.
//!
//! Must not: deliver anything to a node about a connection it closed, or write a label for
//! a message that never reached the kernel.

use super::sink::Sink;
use super::{Chunk, Conn, ConnState, Driver, MAX_READ_PER_EVENT, Sock, Synthetic, nanos};
use crate::peer::io::{ConnId, Input, TcpEvent, TcpOut};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

impl<S: Sink> Driver<S> {
    pub(super) fn tcp_out(&mut self, node: usize, t: TcpOut) {
        match t {
            TcpOut::Connect { conn, from, to } => self.connect(node, conn, from, to),
            TcpOut::Send { conn, data, label } => {
                let Some(token) = self.conn_tokens.get(&(node, conn)).copied() else {
                    self.stats.tcp_unknown_conn += 1;
                    return;
                };
                let max = self.config.max_buffered_bytes;
                let Some(Sock::Conn(c)) = self.socks.get_mut(&token) else {
                    self.stats.tcp_unknown_conn += 1;
                    return;
                };
                if matches!(c.state, ConnState::Closing { .. }) {
                    self.stats.tcp_unknown_conn += 1;
                    return;
                }
                if c.out_bytes.saturating_add(data.len()) > max {
                    self.stats.tcp_overflow_closed += 1;
                    if let Some(c) = self.remove_conn(token) {
                        self.synthetic.push_back((node, Synthetic::Closed(c.id)));
                    }
                    return;
                }
                c.out_bytes += data.len();
                c.out.push_back(Chunk {
                    data,
                    sent: 0,
                    label: Some(label),
                });
                if c.state == ConnState::Open {
                    self.flush_token(token);
                }
            }
            TcpOut::Close { conn } => {
                let Some(token) = self.conn_tokens.remove(&(node, conn)) else {
                    self.stats.tcp_unknown_conn += 1;
                    return;
                };
                if let Some(slot) = self.nodes.get_mut(node) {
                    slot.conns = slot.conns.saturating_sub(1);
                }
                let linger = self.now().add_nanos(nanos(self.config.close_linger));
                let Some(Sock::Conn(c)) = self.socks.get_mut(&token) else {
                    return;
                };
                if let ConnState::Connecting { .. } = c.state {
                    // Nothing was said yet: just drop it.
                    self.drop_sock(token);
                    return;
                }
                c.state = ConnState::Closing { deadline: linger };
                self.flush_token(token);
            }
        }
    }

    pub(super) fn connect(
        &mut self,
        node: usize,
        conn: ConnId,
        from: Option<SocketAddr>,
        to: SocketAddr,
    ) {
        if self.conn_tokens.contains_key(&(node, conn)) {
            self.stats.tcp_unknown_conn += 1;
            return;
        }
        let Some(slot) = self.nodes.get(node) else {
            return;
        };
        if slot.conns >= self.config.max_conns_per_node {
            self.stats.tcp_connect_failed += 1;
            self.synthetic
                .push_back((node, Synthetic::ConnectFailed(conn)));
            return;
        }
        let from = from.or_else(|| slot.ip.map(|ip| SocketAddr::new(ip, 0)));
        let stream = match start_connect(from, to) {
            Ok(s) => s,
            Err(_) => {
                self.stats.tcp_connect_failed += 1;
                self.synthetic
                    .push_back((node, Synthetic::ConnectFailed(conn)));
                return;
            }
        };
        let deadline = self.now().add_nanos(nanos(self.config.connect_timeout));
        self.insert_conn(node, conn, stream, ConnState::Connecting { deadline });
    }

    pub(super) fn insert_conn(
        &mut self,
        node: usize,
        id: ConnId,
        mut stream: TcpStream,
        state: ConnState,
    ) {
        let token = self.token();
        if self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            if state != ConnState::Open {
                self.stats.tcp_connect_failed += 1;
                self.synthetic
                    .push_back((node, Synthetic::ConnectFailed(id)));
            }
            return;
        }
        let _ = stream.set_nodelay(true);
        if let Some(slot) = self.nodes.get_mut(node) {
            slot.conns += 1;
        }
        self.conn_tokens.insert((node, id), token);
        self.socks.insert(
            token,
            Sock::Conn(Conn {
                node,
                id,
                stream,
                state,
                out: VecDeque::new(),
                out_bytes: 0,
                fin_sent: false,
            }),
        );
    }

    /// Removes a connection the node still knows (its id freed, its count released).
    pub(super) fn remove_conn(&mut self, token: Token) -> Option<Conn> {
        let Some(Sock::Conn(c)) = self.socks.remove(&token) else {
            return None;
        };
        let mut c = c;
        let _ = self.poll.registry().deregister(&mut c.stream);
        if !matches!(c.state, ConnState::Closing { .. }) {
            self.conn_tokens.remove(&(c.node, c.id));
            if let Some(slot) = self.nodes.get_mut(c.node) {
                slot.conns = slot.conns.saturating_sub(1);
            }
        }
        let unsent = c.out.iter().filter(|ch| ch.label.is_some()).count();
        self.stats.tcp_unsent_messages += unsent as u64;
        Some(c)
    }

    pub(super) fn accept(&mut self, token: Token) {
        loop {
            let Some(Sock::Listener { node, sock, local }) = self.socks.get(&token) else {
                return;
            };
            let (node, local) = (*node, *local);
            match sock.accept() {
                Ok((stream, remote)) => {
                    let full = self
                        .nodes
                        .get(node)
                        .is_none_or(|s| s.conns >= self.config.max_conns_per_node);
                    if full {
                        self.stats.tcp_accept_refused += 1;
                        drop(stream);
                        continue;
                    }
                    self.stats.tcp_accepted += 1;
                    self.next_accepted = self.next_accepted.wrapping_add(1);
                    let id = ConnId(ConnId::ACCEPTED_BIT | self.next_accepted);
                    let local = stream.local_addr().unwrap_or(local);
                    self.insert_conn(node, id, stream, ConnState::Open);
                    if self.conn_tokens.contains_key(&(node, id)) {
                        let now = self.now();
                        self.input(
                            node,
                            Input::Tcp {
                                now,
                                conn: id,
                                event: TcpEvent::Accepted { local, remote },
                            },
                        );
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    pub(super) fn finish_connect(&mut self, token: Token) {
        let Some(Sock::Conn(c)) = self.socks.get_mut(&token) else {
            return;
        };
        let failed = match c.stream.take_error() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => false,
                // Spurious wake-up: still connecting.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => true,
            },
        };
        if failed {
            if let Some(c) = self.remove_conn(token) {
                self.stats.tcp_connect_failed += 1;
                self.synthetic
                    .push_back((c.node, Synthetic::ConnectFailed(c.id)));
            }
            return;
        }
        c.state = ConnState::Open;
        let (node, id) = (c.node, c.id);
        let local = c.stream.local_addr();
        self.stats.tcp_connected += 1;
        let now = self.now();
        match local {
            Ok(local) => self.input(
                node,
                Input::Tcp {
                    now,
                    conn: id,
                    event: TcpEvent::Connected { local },
                },
            ),
            Err(_) => {
                if let Some(c) = self.remove_conn(token) {
                    self.synthetic.push_back((c.node, Synthetic::Closed(c.id)));
                }
                return;
            }
        }
        // Anything the node queued before the connection was up (or just now).
        self.flush_token(token);
        // Bytes may have arrived with the connection.
        self.read_tcp(token);
    }

    pub(super) fn flush_token(&mut self, token: Token) {
        let Some(Sock::Conn(mut c)) = self.socks.remove(&token) else {
            return;
        };
        let ok = self.flush(&mut c);
        let closing = matches!(c.state, ConnState::Closing { .. });
        if closing && ok && c.out.is_empty() && !c.fin_sent {
            c.fin_sent = true;
            let _ = c.stream.shutdown(Shutdown::Write);
        }
        self.socks.insert(token, Sock::Conn(c));
        if !ok {
            if let Some(c) = self.remove_conn(token) {
                if !closing {
                    self.synthetic.push_back((c.node, Synthetic::Closed(c.id)));
                }
            }
        }
    }

    /// Writes what the kernel takes. False when the connection broke.
    pub(super) fn flush(&mut self, c: &mut Conn) -> bool {
        while let Some(chunk) = c.out.front_mut() {
            let rest = chunk.data.get(chunk.sent..).unwrap_or_default();
            if rest.is_empty() {
                c.out.pop_front();
                continue;
            }
            // Stamped before the call, as for UDP (the segment can pass a capture during it).
            let sent_at = self.clock.now();
            match c.stream.write(rest) {
                Ok(0) => return false,
                Ok(n) => {
                    if let Some(mut label) = chunk.label.take() {
                        label.ts = sent_at;
                        self.stats.labels += 1;
                        self.sink.label(&label);
                    }
                    chunk.sent += n;
                    c.out_bytes = c.out_bytes.saturating_sub(n);
                    self.stats.tcp_tx_bytes += n as u64;
                    if chunk.sent >= chunk.data.len() {
                        c.out.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    pub(super) fn read_tcp(&mut self, token: Token) {
        let mut total = 0usize;
        loop {
            let Some(Sock::Conn(c)) = self.socks.get_mut(&token) else {
                return;
            };
            let (node, id, closing) = (c.node, c.id, matches!(c.state, ConnState::Closing { .. }));
            let chunk = self.buf.len().min(64 * 1024);
            let buf = self.buf.get_mut(..chunk).unwrap_or_default();
            match c.stream.read(buf) {
                Ok(0) => {
                    // EOF: the peer closed (for a closing connection: the drain is done).
                    if let Some(c) = self.remove_conn(token) {
                        if !closing {
                            self.synthetic.push_back((c.node, Synthetic::Closed(c.id)));
                        }
                    }
                    return;
                }
                Ok(n) => {
                    total += n;
                    self.stats.tcp_rx_bytes += n as u64;
                    if !closing {
                        let now = self.clock.now();
                        let data = self.buf.get(..n).unwrap_or_default();
                        if let Some(slot) = self.nodes.get_mut(node) {
                            slot.node.handle_input(Input::Tcp {
                                now,
                                conn: id,
                                event: TcpEvent::Data(data),
                            });
                        }
                        self.drain(node);
                        self.process_synthetic();
                    }
                    if total >= MAX_READ_PER_EVENT {
                        // Edge-triggered: re-arm so the rest is read on a later turn.
                        if let Some(Sock::Conn(c)) = self.socks.get_mut(&token) {
                            let _ = self.poll.registry().reregister(
                                &mut c.stream,
                                token,
                                Interest::READABLE | Interest::WRITABLE,
                            );
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    if let Some(c) = self.remove_conn(token) {
                        if !closing {
                            self.synthetic.push_back((c.node, Synthetic::Closed(c.id)));
                        }
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(unix)]
const EINPROGRESS: i32 = libc::EINPROGRESS;
#[cfg(not(unix))]
const EINPROGRESS: i32 = 10036; // WSAEINPROGRESS

/// A non-blocking connect from `from` (bound first) to `to`.
fn start_connect(from: Option<SocketAddr>, to: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(from) = from {
        if from.is_ipv4() == to.is_ipv4() {
            match socket.bind(&from.into()) {
                Ok(()) => {}
                // The node's own listening port is taken by its listener (Linux refuses a
                // second bind next to a LISTEN socket): keep the IP, let the kernel pick
                // the port — the IP is what identifies the node on loopback.
                Err(e) if e.kind() == ErrorKind::AddrInUse && from.port() != 0 => {
                    socket.bind(&SocketAddr::new(from.ip(), 0).into())?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    match socket.connect(&to.into()) {
        Ok(()) => {}
        // Non-blocking connect: EINPROGRESS (`ErrorKind::InProgress` is not stable yet).
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}
