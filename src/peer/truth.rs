//! Ground truth: a [`Label`] for every message a node sends and an [`Event`] for every
//! session milestone, and their CSV files (`labels.csv`, `events.csv`; columns documented in
//! `docs/csv.md`). Produced from what the node meant to send, never by parsing traffic.

use crate::report::csv_row::CsvRow;
use crate::time::Ts;
use dissectors::registry::TrafficClass;
use std::io::{self, Write};
use std::net::SocketAddr;

/// The role a node plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    LoginServer,
    Home,
    SuperNode,
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::LoginServer => "login-server",
            Role::Home => "home",
            Role::SuperNode => "supernode",
            Role::Client => "client",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// What one sent message was, by intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Send time (the driver may restamp it with its capture clock).
    pub ts: Ts,
    pub transport: Transport,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Skylark message name (PROTOCOL.md §5), or `stun-binding-request`,
    /// `stun-binding-success`, `http-version-check`, `http-telemetry`, … for the others.
    pub msg_type: &'static str,
    pub class: TrafficClass,
    /// The destination is the login server or the home server.
    pub home: bool,
    /// The id score joins on besides the call id: see [`skylark_txn_id`].
    pub txn_id: Option<u64>,
    pub call_id: Option<u64>,
    /// The sending node's name.
    pub node: std::sync::Arc<str>,
    pub role: Role,
}

/// A Skylark label's `txn_id`: the header's transaction id, or for a media frame (whose
/// header field holds the call id, PROTOCOL.md §7.1) its sequence number — so score pairs
/// every frame with its own label however late it was captured (docs/score.md).
pub fn skylark_txn_id(header_id: u32, media_seq: Option<u16>) -> u64 {
    media_seq.map_or(u64::from(header_id), u64::from)
}

/// How a call's media travels (PROTOCOL.md §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaPath {
    DirectUdp,
    /// Not a path the spec defines (a node never chooses it); what the analyzer reports
    /// when the two parties exchange media over TCP.
    DirectTcp,
    RelayUdp,
    RelayTcp,
}

impl MediaPath {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaPath::DirectUdp => "direct-udp",
            MediaPath::DirectTcp => "direct-tcp",
            MediaPath::RelayUdp => "relay-udp",
            MediaPath::RelayTcp => "relay-tcp",
        }
    }
}

/// A session milestone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Login finished (`ok` false: LOGIN_FAILED), with the SN it registered with.
    Login {
        ok: bool,
        sn: Option<SocketAddr>,
        detail: String,
    },
    /// A user lookup finished.
    Lookup {
        target: String,
        found: Option<SocketAddr>,
        rings: u32,
        nodes: u32,
    },
    /// A call was set up with this media path (and relay).
    CallSetup {
        call_id: u64,
        peer: String,
        path: MediaPath,
        relay: Option<SocketAddr>,
    },
    /// A call attempt failed (busy, offline, rejected, relay refused, …).
    CallFailed {
        peer: String,
        reason: String,
    },
    CallEnd {
        call_id: u64,
        reason: String,
    },
    /// A conference elected its mixer.
    ConferenceMixer {
        call_id: u64,
        mixer: String,
    },
    /// Anything else worth a line (promotion to SN, phone-home contact, …).
    Note {
        what: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub ts: Ts,
    pub node: std::sync::Arc<str>,
    pub role: Role,
    pub kind: EventKind,
}

pub const LABEL_COLUMNS: &[&str] = &[
    "ts",
    "transport",
    "src_addr",
    "src_port",
    "dst_addr",
    "dst_port",
    "msg_type",
    "class",
    "home",
    "txn_id",
    "call_id",
    "node",
    "role",
    "capture",
];

pub const EVENT_COLUMNS: &[&str] = &[
    "ts", "node", "role", "event", "ok", "call_id", "peer", "path", "relay", "detail",
];

/// Writes labels as CSV rows (nanosecond timestamps).
pub struct LabelWriter<W: Write> {
    out: W,
    row: CsvRow,
}

impl<W: Write> LabelWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&CsvRow::header(LABEL_COLUMNS))?;
        Ok(LabelWriter {
            out,
            row: CsvRow::default(),
        })
    }

    pub fn write(&mut self, l: &Label) -> io::Result<()> {
        self.write_seen(l, l.ts, l.src, l.dst, "")
    }

    /// Writes `l` as a capture point saw it: at `ts`, between `src` and `dst` (NAT-translated
    /// there), in the capture point named `capture` (the simulator's pcapng interface).
    pub fn write_seen(
        &mut self,
        l: &Label,
        ts: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        capture: &str,
    ) -> io::Result<()> {
        let row = &mut self.row;
        row.clear();
        row.ts9(ts)
            .str(l.transport.as_str())
            .ip(src.ip())
            .uint(u64::from(src.port()))
            .ip(dst.ip())
            .uint(u64::from(dst.port()))
            .str(l.msg_type)
            .str(l.class.as_str())
            .str(if l.home { "true" } else { "false" });
        for v in [l.txn_id, l.call_id] {
            match v {
                Some(v) => row.uint(v),
                None => row.str(""),
            };
        }
        row.str(&l.node).str(l.role.as_str()).str(capture);
        self.out.write_all(row.finish())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes events as CSV rows.
pub struct EventWriter<W: Write> {
    out: W,
    row: CsvRow,
}

impl<W: Write> EventWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&CsvRow::header(EVENT_COLUMNS))?;
        Ok(EventWriter {
            out,
            row: CsvRow::default(),
        })
    }

    pub fn write(&mut self, e: &Event) -> io::Result<()> {
        let addr = |a: &Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let (name, ok, call, peer, path, relay, detail) = match &e.kind {
            EventKind::Login { ok, sn, detail } => (
                "login",
                Some(*ok),
                None,
                String::new(),
                "",
                addr(sn),
                detail.clone(),
            ),
            EventKind::Lookup {
                target,
                found,
                rings,
                nodes,
            } => (
                "lookup",
                Some(found.is_some()),
                None,
                target.clone(),
                "",
                addr(found),
                format!("rings={rings} nodes={nodes}"),
            ),
            EventKind::CallSetup {
                call_id,
                peer,
                path,
                relay,
            } => (
                "call-setup",
                Some(true),
                Some(*call_id),
                peer.clone(),
                path.as_str(),
                addr(relay),
                String::new(),
            ),
            EventKind::CallFailed { peer, reason } => (
                "call-failed",
                Some(false),
                None,
                peer.clone(),
                "",
                String::new(),
                reason.clone(),
            ),
            EventKind::CallEnd { call_id, reason } => (
                "call-end",
                None,
                Some(*call_id),
                String::new(),
                "",
                String::new(),
                reason.clone(),
            ),
            EventKind::ConferenceMixer { call_id, mixer } => (
                "conference-mixer",
                None,
                Some(*call_id),
                mixer.clone(),
                "",
                String::new(),
                String::new(),
            ),
            EventKind::Note { what } => (
                "note",
                None,
                None,
                String::new(),
                "",
                String::new(),
                what.clone(),
            ),
        };
        let row = &mut self.row;
        row.clear();
        row.field(e.ts.display(9))
            .field(&e.node)
            .field(e.role.as_str())
            .field(name)
            .field(ok.map(|b| b.to_string()).unwrap_or_default())
            .field(call.map(|c| c.to_string()).unwrap_or_default())
            .field(peer)
            .field(path)
            .field(relay)
            .field(detail);
        self.out.write_all(row.finish())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rows_have_the_documented_columns() {
        let mut w = LabelWriter::new(Vec::new()).unwrap();
        w.write(&Label {
            ts: Ts(1_700_000_000_123_456_789),
            transport: Transport::Udp,
            src: "127.0.0.2:40000".parse().unwrap(),
            dst: "127.0.0.3:33033".parse().unwrap(),
            msg_type: "hc-probe",
            class: TrafficClass::Login,
            home: false,
            txn_id: Some(7),
            call_id: None,
            node: "alice".into(),
            role: Role::Client,
        })
        .unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(
            text,
            "ts,transport,src_addr,src_port,dst_addr,dst_port,msg_type,class,home,txn_id,call_id,node,role,capture\n\
             1700000000.123456789,udp,127.0.0.2,40000,127.0.0.3,33033,hc-probe,login,false,7,,alice,client,\n"
        );
    }

    #[test]
    fn event_rows_name_the_media_path() {
        let mut w = EventWriter::new(Vec::new()).unwrap();
        w.write(&Event {
            ts: Ts(2_000_000_000),
            node: "alice".into(),
            role: Role::Client,
            kind: EventKind::CallSetup {
                call_id: 9,
                peer: "bob".into(),
                path: MediaPath::RelayUdp,
                relay: Some("127.0.0.9:33033".parse().unwrap()),
            },
        })
        .unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert!(text.ends_with(
            "2.000000000,alice,client,call-setup,true,9,bob,relay-udp,127.0.0.9:33033,\n"
        ));
    }
}
