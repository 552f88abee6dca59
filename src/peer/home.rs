//! The home server (PROTOCOL.md §10): plain HTTP/1.1 over TCP answering the client's
//! version check (`GET …/getlatestversion` → 200 with the latest version), telemetry and
//! contact-list updates (`POST …/telemetry`, `POST …/contacts` → 204), 404 for anything
//! else and 400 for bytes that are not an HTTP request.
//!
//! Guarantees: requests are read with `dissectors::http::parse_head`, bounded by
//! [`MAX_REQUEST_BYTES`]; pipelined requests on a keep-alive connection are answered in
//! order; the connection closes after a response when the request asked for it
//! (`Connection: close`, or HTTP/1.0 without keep-alive), after a 400, and after
//! [`HomeConfig::idle_close_s`] of silence. Every response is labelled class login with
//! home = false (it goes to a client; phone-home counts what clients send).
//! Must not: keep request bodies, touch sockets or clocks.

use super::conns::Conns;
pub use super::conns::MAX_CONNS;
use super::io::{ConnId, Input, Listen, Node, Output, TcpEvent};
use super::login_server::{NO_DEADLINE, secs};
use super::outbox::{Dest, Outbox};
use super::truth::{EventKind, Role, Transport};
use crate::time::Ts;
use dissectors::DissectError;
use dissectors::http::{StartLine, parse_head};
use dissectors::registry::TrafficClass;
use std::net::SocketAddr;

/// Largest request (head and body) buffered.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Largest `latest_version` string served.
pub const MAX_VERSION_LEN: usize = 64;

#[derive(Clone, Debug)]
pub struct HomeConfig {
    pub name: String,
    /// TCP listening address (port 80 by default).
    pub addr: SocketAddr,
    /// Body of the version-check response.
    pub latest_version: String,
    pub idle_close_s: u64,
}

impl Default for HomeConfig {
    fn default() -> Self {
        HomeConfig {
            name: "home".into(),
            addr: SocketAddr::from(([0, 0, 0, 0], 80)),
            latest_version: "1.0.0".into(),
            idle_close_s: 30,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HomeStats {
    pub accepted: u64,
    pub refused_conns: u64,
    pub version_checks: u64,
    pub telemetry: u64,
    pub contacts: u64,
    pub not_found: u64,
    /// Requests that did not parse (answered 400, connection closed).
    pub bad_requests: u64,
    pub idle_closed: u64,
    pub unknown_conn: u64,
    /// Datagrams or commands (the home server has neither).
    pub unexpected: u64,
}

/// A connection's request bytes not yet answered.
struct Conn {
    buf: Vec<u8>,
}

/// What a parsed request asks for.
enum Route {
    Version,
    Telemetry,
    Contacts,
    NotFound,
}

pub struct HomeServer {
    cfg: HomeConfig,
    out: Outbox,
    conns: Conns<Conn>,
    stats: HomeStats,
}

impl HomeServer {
    pub fn new(mut cfg: HomeConfig) -> HomeServer {
        if cfg.latest_version.len() > MAX_VERSION_LEN
            || cfg.latest_version.chars().any(char::is_control)
        {
            cfg.latest_version = HomeConfig::default().latest_version;
        }
        HomeServer {
            out: Outbox::new(cfg.name.clone(), Role::Home),
            cfg,
            conns: Conns::default(),
            stats: HomeStats::default(),
        }
    }

    pub fn stats(&self) -> HomeStats {
        self.stats
    }

    fn next_deadline(&self) -> Ts {
        let idle = secs(self.cfg.idle_close_s);
        self.conns.next_idle(idle).unwrap_or(NO_DEADLINE)
    }

    fn close(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.out.close(conn);
    }

    fn on_tcp(&mut self, now: Ts, conn: ConnId, event: TcpEvent<'_>) {
        match event {
            TcpEvent::Accepted { local, remote } => {
                let fresh = Conn { buf: Vec::new() };
                if !self
                    .conns
                    .accept(&mut self.out, now, conn, (local, remote), fresh)
                {
                    self.stats.refused_conns += 1;
                    return;
                }
                self.stats.accepted += 1;
            }
            TcpEvent::Data(data) => {
                let Some(c) = self.conns.touch(&conn, now) else {
                    self.stats.unknown_conn += 1;
                    return;
                };
                if c.buf.len() + data.len() > MAX_REQUEST_BYTES {
                    self.stats.bad_requests += 1;
                    self.respond(now, conn, 400, "http-bad-request", "");
                    self.close(conn);
                    return;
                }
                c.buf.extend_from_slice(data);
                self.serve(now, conn);
            }
            TcpEvent::Closed => {
                self.conns.remove(&conn);
                self.out.conn_down(conn);
            }
            TcpEvent::Connected { .. } | TcpEvent::ConnectFailed => self.stats.unknown_conn += 1,
        }
    }

    /// Answers every complete request in the connection's buffer.
    fn serve(&mut self, now: Ts, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.buf.is_empty() {
                return;
            }
            let parsed = parse_request(&c.buf);
            let (route, keep_alive, used) = match parsed {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(()) => {
                    self.stats.bad_requests += 1;
                    self.respond(now, conn, 400, "http-bad-request", "");
                    self.close(conn);
                    return;
                }
            };
            c.buf.drain(..used);
            match route {
                Route::Version => {
                    self.stats.version_checks += 1;
                    let v = self.cfg.latest_version.clone();
                    self.respond(now, conn, 200, "http-version-response", &v);
                }
                Route::Telemetry => {
                    self.stats.telemetry += 1;
                    self.respond(now, conn, 204, "http-telemetry-response", "");
                }
                Route::Contacts => {
                    self.stats.contacts += 1;
                    self.respond(now, conn, 204, "http-contacts-response", "");
                }
                Route::NotFound => {
                    self.stats.not_found += 1;
                    self.respond(now, conn, 404, "http-not-found", "");
                }
            }
            if !keep_alive {
                self.close(conn);
                return;
            }
        }
    }

    fn respond(&mut self, now: Ts, conn: ConnId, code: u16, msg_type: &'static str, body: &str) {
        let Some((local, remote)) = self.out.conn_addrs(conn) else {
            return;
        };
        let reason = match code {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            _ => "Not Found",
        };
        let mut text = format!("HTTP/1.1 {code} {reason}\r\nServer: skylark-home/1.0.0\r\n");
        if code != 204 {
            text.push_str("Content-Type: text/plain\r\n");
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if code == 400 {
            text.push_str("Connection: close\r\n");
        }
        text.push_str("\r\n");
        text.push_str(body);
        let label = self.out.raw_label(
            now,
            Transport::Tcp,
            local,
            Dest {
                to: remote,
                home: false,
            },
            msg_type,
            TrafficClass::Login,
            None,
        );
        self.out.raw_tcp(conn, text.into_bytes(), label);
        if code == 200 {
            self.out.event(
                now,
                EventKind::Note {
                    what: format!("version check from {remote}"),
                },
            );
        }
    }
}

/// A complete request at the start of `buf`: its route, whether the connection stays open,
/// and its length. `Ok(None)`: wait for more bytes.
fn parse_request(buf: &[u8]) -> Result<Option<(Route, bool, usize)>, ()> {
    let head = match parse_head(buf) {
        Ok(h) => h,
        Err(DissectError::Truncated { .. }) => return Ok(None),
        Err(_) => return Err(()),
    };
    let StartLine::Request {
        method,
        target,
        version,
    } = head.start
    else {
        return Err(());
    };
    if head.chunked() {
        // Clients send Content-Length bodies (§10); chunked bodies are not accepted.
        return Err(());
    }
    let body = head.content_length().map_err(|_| ())?.unwrap_or(0);
    let body = usize::try_from(body).map_err(|_| ())?;
    let total = head.head_len.checked_add(body).ok_or(())?;
    if total > MAX_REQUEST_BYTES {
        return Err(());
    }
    if buf.len() < total {
        return Ok(None);
    }
    let conn_hdr = head.header("connection").unwrap_or_default();
    let keep_alive = if version == b"HTTP/1.0" {
        conn_hdr.eq_ignore_ascii_case(b"keep-alive")
    } else {
        !conn_hdr.eq_ignore_ascii_case(b"close")
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let route = match (method, path) {
        (b"GET", p) if p.starts_with(b"/ui/") && p.ends_with(b"/getlatestversion") => {
            Route::Version
        }
        (b"POST", p) if p.starts_with(b"/ui/") && p.ends_with(b"/telemetry") => Route::Telemetry,
        (b"POST", p) if p.starts_with(b"/ui/") && p.ends_with(b"/contacts") => Route::Contacts,
        _ => Route::NotFound,
    };
    Ok(Some((route, keep_alive, total)))
}

impl Node for HomeServer {
    fn listen(&self) -> Listen {
        Listen {
            udp: Vec::new(),
            tcp: vec![self.cfg.addr],
        }
    }

    fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Timeout(now) => {
                let idle = secs(self.cfg.idle_close_s);
                for id in self.conns.idle_at(now, idle) {
                    self.stats.idle_closed += 1;
                    self.close(id);
                }
            }
            Input::Tcp { now, conn, event } => self.on_tcp(now, conn, event),
            Input::Udp { .. } | Input::Command { .. } => self.stats.unexpected += 1,
        }
    }

    fn poll_output(&mut self) -> Output {
        if self.out.is_empty() {
            return Output::Timeout(self.next_deadline());
        }
        self.out.poll(NO_DEADLINE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::io::TcpOut;
    use crate::peer::login_server::tests::kit::*;

    const HOME: &str = "10.0.0.2:80";
    const CLIENT: &str = "10.0.1.1:40001";

    fn home() -> HomeServer {
        HomeServer::new(HomeConfig {
            name: "home".into(),
            addr: a(HOME),
            latest_version: "1.2.3".into(),
            ..Default::default()
        })
    }

    fn sends(outs: &[Output]) -> Vec<(String, crate::peer::truth::Label)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Tcp(TcpOut::Send { data, label, .. }) => {
                    Some((String::from_utf8_lossy(data).into_owned(), label.clone()))
                }
                _ => None,
            })
            .collect()
    }

    const VERSION_CHECK: &str = "GET /ui/0/1.0.0/en/getlatestversion?ver=1.0.0 HTTP/1.1\r\n\
        Host: home\r\nUser-Agent: Skylark/1.0.0\r\nAccept: */*\r\nConnection: close\r\n\r\n";

    #[test]
    fn connections_past_the_cap_are_refused() {
        let mut h = home();
        refuses_past_cap(&mut h, MAX_CONNS, HOME);
        assert_eq!(
            (h.stats().accepted, h.stats().refused_conns),
            (MAX_CONNS as u64, 1)
        );
    }

    #[test]
    fn version_check_gets_200_with_the_latest_version_then_close() {
        let mut h = home();
        let conn = accept(&mut h, t(0.0), 1, HOME, CLIENT);
        // Split across two segments: the head is reassembled.
        let (x, y) = VERSION_CHECK.split_at(20);
        send_raw(&mut h, t(0.0), conn, x.as_bytes());
        assert!(sends(&drain(&mut h).0).is_empty());
        send_raw(&mut h, t(0.0), conn, y.as_bytes());
        let (outs, _) = drain(&mut h);
        let s = sends(&outs);
        assert_eq!(s.len(), 1);
        assert!(s[0].0.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s[0].0.contains("Content-Type: text/plain\r\n"));
        assert!(s[0].0.ends_with("\r\n\r\n1.2.3"));
        let l = &s[0].1;
        assert_eq!(l.msg_type, "http-version-response");
        assert_eq!(l.class, TrafficClass::Login);
        assert!(!l.home);
        assert_eq!((l.src, l.dst), (a(HOME), a(CLIENT)));
        assert_eq!(l.role, Role::Home);
        assert!(closed(&outs, conn));
        assert_eq!(h.stats().version_checks, 1);
    }

    #[test]
    fn keep_alive_pipelined_telemetry_and_contacts_get_204_and_404_otherwise() {
        let mut h = home();
        let conn = accept(&mut h, t(0.0), 1, HOME, CLIENT);
        let body = "node=0123456789abcdef&uptime=60&sn=0&calls=0&nat=2";
        let req = format!(
            "POST /ui/0/1.0.0/en/telemetry HTTP/1.1\r\nHost: home\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}\
             POST /ui/0/1.0.0/en/contacts HTTP/1.1\r\nContent-Length: 3\r\n\r\nu=a\
             GET /favicon.ico HTTP/1.1\r\n\r\n",
            body.len()
        );
        send_raw(&mut h, t(0.0), conn, req.as_bytes());
        let (outs, _) = drain(&mut h);
        let s = sends(&outs);
        assert_eq!(s.len(), 3);
        assert!(s[0].0.starts_with("HTTP/1.1 204 "));
        assert_eq!(s[0].1.msg_type, "http-telemetry-response");
        assert!(s[1].0.starts_with("HTTP/1.1 204 "));
        assert!(s[2].0.starts_with("HTTP/1.1 404 "));
        assert!(!closed(&outs, conn), "keep-alive by default in HTTP/1.1");
        assert_eq!(h.stats().telemetry, 1);
        assert_eq!(h.stats().contacts, 1);
        assert_eq!(h.stats().not_found, 1);
    }

    #[test]
    fn garbage_gets_400_and_close_and_the_server_keeps_serving() {
        let mut h = home();
        for (i, junk) in [
            &b"\x53\x10\x01\x01garbage"[..],
            b"NOT HTTP AT ALL\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            &[0u8; 300][..],
        ]
        .iter()
        .enumerate()
        {
            let conn = accept(&mut h, t(0.0), i as u64 + 1, HOME, CLIENT);
            send_raw(&mut h, t(0.0), conn, junk);
            let (outs, _) = drain(&mut h);
            let s = sends(&outs);
            assert!(s[0].0.starts_with("HTTP/1.1 400 "), "{junk:?}");
            assert!(closed(&outs, conn));
        }
        let conn = accept(&mut h, t(0.0), 9, HOME, CLIENT);
        send_raw(&mut h, t(0.0), conn, &vec![b'a'; MAX_REQUEST_BYTES + 1]);
        assert!(closed(&drain(&mut h).0, conn));
        send_udp(&mut h, t(0.0), HOME, CLIENT, b"junk");
        assert_eq!(h.stats().bad_requests, 5);
        let conn = accept(&mut h, t(1.0), 10, HOME, CLIENT);
        send_raw(&mut h, t(1.0), conn, VERSION_CHECK.as_bytes());
        assert!(sends(&drain(&mut h).0)[0].0.starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn idle_keep_alive_connections_close() {
        let mut h = home();
        let conn = accept(&mut h, t(0.0), 1, HOME, CLIENT);
        let (_, deadline) = drain(&mut h);
        assert_eq!(deadline, t(30.0));
        h.handle_input(Input::Timeout(t(30.0)));
        assert!(closed(&drain(&mut h).0, conn));
    }

    mod garbage {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn mutated_and_random_requests_never_panic(
                cuts in vec((any::<usize>(), any::<u8>(), 0usize..200), 1..20),
            ) {
                let mut h = home();
                for (n, (at, xor, keep)) in cuts.into_iter().enumerate() {
                    let conn = accept(&mut h, t(0.0), n as u64 + 1, HOME, CLIENT);
                    let mut m = VERSION_CHECK.as_bytes().to_vec();
                    let i = at % m.len();
                    m[i] ^= xor;
                    m.truncate(keep.max(1));
                    send_raw(&mut h, t(0.0), conn, &m);
                    drain(&mut h);
                }
                let conn = accept(&mut h, t(1.0), 999, HOME, CLIENT);
                send_raw(&mut h, t(1.0), conn, VERSION_CHECK.as_bytes());
                prop_assert!(sends(&drain(&mut h).0)[0].0.starts_with("HTTP/1.1 200"));
            }
        }
    }
}
