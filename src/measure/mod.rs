//! Sessions and measurements reconstructed from decoded, classified messages (issue 6):
//! phone-home contacts, keepalives per client–super-node pair, the role of every host, client
//! logins and user lookups.
//! [`Measurements`] feeds every message to each of them and writes their CSV files.

pub mod calls;
pub mod hosts;
pub mod intervals;
pub mod keepalives;
pub mod logins;
pub mod lookups;
pub mod phonehome;

use crate::classify::{Classified, Classifier, FlowHomes, Known};
use crate::pipeline::MsgCtx;
use dissectors::registry::Message;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

/// A message as the measurements need it: where it went and what the classifier made of it.
pub struct Seen<'a> {
    pub ctx: &'a MsgCtx,
    /// The classifier's kind, as a value.
    pub known: Known,
    pub len: u32,
    pub call_id: Option<u64>,
    /// The sender / the receiver is a home endpoint.
    pub from_home: bool,
    pub to_home: bool,
    pub txn_id: Option<u64>,
    /// The dissector's detail text (`""` if none); an error response's starts `error=`.
    pub detail: &'a str,
}

impl<'a> Seen<'a> {
    /// A decoded message and the classifier's verdict on it; `from_home`: its sender is a
    /// home endpoint.
    pub fn new(ctx: &'a MsgCtx, msg: &'a Message, c: &'a Classified, from_home: bool) -> Seen<'a> {
        Seen {
            ctx,
            known: c.known,
            len: msg.len,
            call_id: msg.call_id,
            from_home,
            to_home: c.home,
            txn_id: msg.txn_id,
            detail: msg.detail.as_deref().unwrap_or(""),
        }
    }
}

/// (client, home endpoint) of a message or packet sent to home (`to_home`) or from it.
fn client_home(ctx: &MsgCtx, to_home: bool) -> (IpAddr, IpAddr) {
    let (src, dst) = (ctx.src.ip(), ctx.dst.ip());
    if to_home { (src, dst) } else { (dst, src) }
}

/// The phone-home kind of a message to or from home.
fn home_kind(known: Known) -> phonehome::Kind {
    match known {
        Known::HttpVersionCheck | Known::HttpVersionResponse => phonehome::Kind::VersionCheck,
        Known::HttpTelemetry
        | Known::HttpTelemetryResponse
        | Known::HttpContacts
        | Known::HttpContactsResponse => phonehome::Kind::Telemetry,
        Known::AuthHello
        | Known::AuthChallenge
        | Known::AuthProof
        | Known::Credential
        | Known::BuddyList => phonehome::Kind::Login,
        _ => phonehome::Kind::Other,
    }
}

#[derive(Default)]
pub struct Measurements {
    pub phonehome: phonehome::PhoneHome,
    pub keepalives: keepalives::Keepalives,
    pub hosts: hosts::Hosts,
    pub logins: logins::Logins,
    pub lookups: lookups::Lookups,
}

impl Measurements {
    /// One message; `flow` caches its flow's host-table slots (a fresh one looks them up).
    // Inlined up to the message kind: most messages of a busy hour stop there.
    #[inline]
    pub fn observe(&mut self, m: &Seen<'_>, flow: &mut hosts::FlowHosts) {
        if m.to_home || m.from_home {
            // Contacts and bytes come from the packets ([`Self::packet`]); a message says
            // what they carried (and, for hosts, who plays which role).
            let (client, home) = client_home(m.ctx, m.to_home);
            let kind = home_kind(m.known);
            self.phonehome.note_kind(client, home, kind);
        }
        if m.known != Known::Other {
            self.observe_known(m, flow); // no stage below acts on `Other`
        }
    }

    /// [`Self::observe`] for a message of a known kind.
    fn observe_known(&mut self, m: &Seen<'_>, flow: &mut hosts::FlowHosts) {
        let (src, dst) = (m.ctx.src, m.ctx.dst);
        // §8.5: the client's periodic keepalive to its super node.
        if m.known == Known::SnRefresh {
            self.keepalives.observe(m.ctx.ts, src.ip(), dst.ip());
        }
        let host_msg = hosts::HostMsg {
            src: src.ip(),
            dst: dst.ip(),
            dir: m.ctx.dir,
            known: m.known,
            bytes: u64::from(m.len),
            call_id: m.call_id,
        };
        self.hosts.observe(&host_msg, flow);
        self.logins
            .observe(m.ctx.ts, src, dst, m.ctx.proto, m.known, m.detail, m.len);
        self.lookups
            .observe(m.ctx.ts, src, dst, m.known, m.txn_id, m.detail);
    }

    /// Classifies `msg` and measures it, for a caller that keeps no per-flow caches (the
    /// analysis keeps them: [`Classifier::classify_in_flow`], [`hosts::FlowHosts`]).
    pub fn classify_and_observe(
        &mut self,
        classifier: &mut Classifier,
        ctx: &MsgCtx,
        msg: &Message,
    ) -> Classified {
        let c = classifier.classify(ctx, msg);
        let from_home = classifier.is_home(ctx.src);
        self.observe(
            &Seen::new(ctx, msg, &c, from_home),
            &mut hosts::FlowHosts::default(),
        );
        c
    }

    /// [`Self::packet`] for a caller that keeps no per-flow caches (as
    /// [`Self::classify_and_observe`] for messages).
    pub fn packet_uncached(
        &mut self,
        classifier: &Classifier,
        ctx: &MsgCtx,
        payload: u32,
    ) -> Option<(IpAddr, IpAddr)> {
        let flow = (&mut FlowHomes::default(), &mut hosts::FlowHosts::default());
        self.packet(classifier, ctx, payload, flow)
    }

    /// A packet carrying `payload` bytes (see [`crate::pipeline::FlowConsumer::packet`]):
    /// the hosts' bytes and peers, and traffic between a client and a home endpoint makes
    /// the phone-home contacts. `flow` holds the caches of the packet's flow
    /// ([`Classifier::homes`], host-table slots). Returns `(client, home)` when the packet
    /// starts a new contact.
    // Inlined: once per packet, and most packets are neither to nor from home.
    #[inline]
    pub fn packet(
        &mut self,
        classifier: &Classifier,
        ctx: &MsgCtx,
        payload: u32,
        (homes, hosts): (&mut FlowHomes, &mut hosts::FlowHosts),
    ) -> Option<(IpAddr, IpAddr)> {
        let p = hosts::HostPacket {
            src: ctx.src.ip(),
            dst: ctx.dst.ip(),
            dir: ctx.dir,
            payload: u64::from(payload),
        };
        self.hosts.packet(&p, hosts);
        let (from_home, to_home) = classifier.homes(ctx, homes);
        if !(from_home || to_home) {
            return None;
        }
        self.home_packet(ctx, payload, to_home)
    }

    /// [`Self::packet`] between a client and a home endpoint: the phone-home contacts.
    fn home_packet(
        &mut self,
        ctx: &MsgCtx,
        payload: u32,
        to_home: bool,
    ) -> Option<(IpAddr, IpAddr)> {
        let (client, home) = client_home(ctx, to_home);
        let o = phonehome::Observation {
            ts: ctx.ts,
            client,
            home,
            to_home,
            bytes: u64::from(payload),
        };
        self.phonehome.observe(&o).then_some((client, home))
    }

    /// A home endpoint's name: the role its traffic shows (`login-server`, `home`), else
    /// the host name through which it became home (`--home '*.vendor.example'`).
    fn home_name(&self, classifier: &Classifier, ip: IpAddr) -> Option<String> {
        match self.hosts.role_of(ip) {
            Some(role @ ("login-server" | "home")) => Some(role.to_string()),
            _ => classifier.home_name(ip).map(str::to_string),
        }
    }

    /// Writes phonehome.csv, keepalives.csv, hosts.csv, logins.csv and lookups.csv into `dir`; `span_ns` is the
    /// capture's time span (for contacts per hour); `logins` and `lookups` are
    /// [`logins::Logins::rows`] and [`lookups::Lookups::rows`] (made once: the summary reads
    /// them too). Returns (rows, what, file) per file.
    pub fn write_csvs(
        &mut self,
        dir: &Path,
        span_ns: i64,
        logins: &[logins::Login],
        lookups: &[lookups::Lookup],
        classifier: &Classifier,
    ) -> io::Result<Vec<(u64, &'static str, &'static str)>> {
        let open = |name: &str| File::create(dir.join(name)).map(BufWriter::new);
        let rows = self.phonehome_rows(span_ns, classifier);
        let mut w = open("phonehome.csv")?;
        phonehome::write_csv(&rows, &mut w)?;
        w.flush()?;
        let mut w = open("keepalives.csv")?;
        self.keepalives.write_csv(&mut w)?;
        w.flush()?;
        let mut w = open("hosts.csv")?;
        self.hosts.write_csv(&mut w)?;
        w.flush()?;
        let mut w = open("logins.csv")?;
        logins::write_csv(logins, &mut w)?;
        w.flush()?;
        let mut w = open("lookups.csv")?;
        lookups::write_csv(lookups, &mut w)?;
        w.flush()?;
        Ok(vec![
            (rows.len() as u64, "phone-home pairs", "phonehome.csv"),
            (
                self.keepalives.len() as u64,
                "keepalive pairs",
                "keepalives.csv",
            ),
            (self.hosts.len() as u64, "hosts", "hosts.csv"),
            (logins.len() as u64, "logins", "logins.csv"),
            (lookups.len() as u64, "lookups", "lookups.csv"),
        ])
    }

    /// The phone-home rows, each home endpoint named by its role (`login-server`, `home`),
    /// else by the host name that made it home.
    pub fn phonehome_rows(&self, span_ns: i64, classifier: &Classifier) -> Vec<phonehome::Row> {
        self.phonehome
            .rows(span_ns, &|ip| self.home_name(classifier, ip))
    }

    /// The summary's phone-home headlines (the `limit` most frequent pairs).
    pub fn headlines(&self, span_ns: i64, limit: usize, classifier: &Classifier) -> Vec<String> {
        phonehome::headlines(&self.phonehome_rows(span_ns, classifier), span_ns, limit)
    }
}
