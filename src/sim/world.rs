//! The simulated world: hosts running the sans-IO roles unchanged, their access links, NAT
//! boxes with UDP-blocking firewalls, a core that routes by destination address, and
//! capture points — driven by one virtual clock that always advances to the earliest
//! pending deadline (a packet arriving somewhere, a node or TCP timer, a timeline step).
//!
//! Paths: host → access link → [firewall, NAT → NAT uplink] → core → [NAT uplink → NAT,
//! firewall] → access link → host. A NATed host's access link is its LAN (sub-millisecond);
//! its configured link is the NAT's uplink. Capture points: `core` (every packet between
//! sites, once), a host (its interface: what it sends and receives) or `nat:HOST` (the
//! NAT's public side: translated addresses).
//!
//! Ground truth: every message a node sends carries its [`Label`] through the network — a
//! datagram's label rides with its packet; a TCP message's label rides with every segment
//! holding its last byte (see `tcp.rs`). A capture point writes a label row the first time
//! it sees that label, with its own timestamp and the packet's addresses there.
//!
//! Guarantees: deterministic — ties in time are broken by scheduling order, every random
//! choice comes from seeded RNGs, and nothing iterates a randomly seeded hash table — so
//! the same scenario and seed give byte-identical outputs. Events are processed in time
//! order, so each capture point's frames are in time order.
//!
//! Must not: read the wall clock (except for the run's statistics) or touch real sockets.

use super::link::{Fate, Pipe};
use super::nat::{Nat, Verdict};
use super::packet::{self, PROTO_TCP, PROTO_UDP};
use super::scenario::LinkDef;
use super::tcp::{Segment, TcpHost, TcpNote};
use crate::capture::LinkType;
use crate::capture::write::PcapNgWriter;
use crate::peer::driver::Hosted;
use crate::peer::driver::sink::{Sink, Tally};
use crate::peer::error::PeerError;
use crate::peer::truth::{EventWriter, LabelWriter};
use crate::peer::{ConnId, Event, Input, Label, Output, TcpEvent, TcpOut};
use crate::time::Ts;
use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::collections::{BTreeSet, BinaryHeap};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// A label on its way through the network, with the capture points that wrote it so far.
pub struct LabelCell {
    label: Label,
    seen: Cell<u64>,
    /// Message length on a TCP stream (0 for datagrams).
    tcp_len: usize,
}

pub type Tag = Rc<LabelCell>;

/// A packet in flight: IP bytes and the labels of the messages it completes.
struct Packet {
    bytes: Vec<u8>,
    labels: Vec<Tag>,
}

/// Builds (or rebuilds, after a restart) a host's node; the argument is the incarnation.
pub type Builder = Box<dyn Fn(u32) -> Result<Box<dyn Hosted>, PeerError>>;

/// A host as the scenario describes it.
pub struct HostConf {
    pub name: String,
    pub ip: IpAddr,
    pub link: LinkDef,
    /// Behind a NAT box (index from [`World::add_nat`]).
    pub nat: Option<usize>,
    pub udp_blocked: bool,
    pub seed: u64,
}

/// The LAN between a NATed host and its NAT box.
const LAN: LinkDef = LinkDef {
    latency_ms: 0.3,
    jitter_ms: 0.05,
    loss: 0.0,
    kbps: 0,
    queue_ms: 100.0,
    mtu: 1500,
};

/// Node-chosen connection ids are tagged with the incarnation above this bit, so a
/// restarted node's ids never collide with its predecessor's closing connections.
const INCARNATION_SHIFT: u32 = 40;
const NODE_CONN_MASK: u64 = (1 << INCARNATION_SHIFT) - 1;
/// Rounds of TCP-notes-to-node-outputs per wake-up (each round is bounded work; this
/// bounds a pathological ping-pong).
const MAX_SERVICE_ROUNDS: usize = 64;

struct Host {
    conf: HostConf,
    build: Builder,
    node: Option<Box<dyn Hosted>>,
    incarnation: u32,
    /// Powered off: every packet to it vanishes.
    down: bool,
    tcp: TcpHost<Tag>,
    /// Open connections of the current incarnation (host-level ids).
    conns: BTreeSet<ConnId>,
    udp_ports: Vec<u16>,
    up_pipe: Pipe,
    down_pipe: Pipe,
    capture: Option<usize>,
    node_deadline: Option<Ts>,
    wake_at: Option<Ts>,
    ip_id: u16,
}

struct NatBox {
    nat: Nat,
    inside: usize,
    up_pipe: Pipe,
    down_pipe: Pipe,
    capture: Option<usize>,
}

#[derive(Clone, Copy)]
enum Dest {
    Host(usize),
    Nat(usize),
}

/// What a timeline step does to a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A user command for the node.
    Command(Vec<String>),
    /// Start the node (first start, or again after `leave`/`crash`).
    Join,
    /// The program quits: its connections are closed (FIN), the machine stays up.
    Leave,
    /// The machine fails: no goodbye, nothing answers any more.
    Crash,
    /// Quit and start again at once.
    Restart,
}

impl Action {
    pub fn parse(command: &str) -> Action {
        match command.trim() {
            "join" => Action::Join,
            "leave" => Action::Leave,
            "crash" => Action::Crash,
            "restart" => Action::Restart,
            c => Action::Command(c.split_whitespace().map(str::to_string).collect()),
        }
    }
}

enum Ev {
    AtCore(Packet),
    NatFromInside(usize, Packet),
    NatFromOutside(usize, Packet),
    AtHost(usize, Packet),
    Wake(usize),
    Step(usize, Action),
}

/// A pending event: ordered by time, then by scheduling order (`Reverse`: the heap is a
/// max-heap). The event itself waits in `World::slots`, so heap entries stay 24 bytes and
/// sifting moves no packets.
type Key = std::cmp::Reverse<(Ts, u64, u32)>;

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Packets hosts sent (each counted once, however many hops).
    pub packets_sent: u64,
    pub packets_delivered: u64,
    pub bytes_sent: u64,
    pub lost: u64,
    pub queue_drops: u64,
    pub nat_drops: u64,
    pub firewall_drops: u64,
    pub unroutable: u64,
    /// Arrived at a host that was down, or at a UDP port nobody listens on.
    pub undeliverable: u64,
    pub frames_captured: u64,
    pub labels_written: u64,
    pub events_written: u64,
    /// Node outputs the network could not carry (unbound socket, TCP refusals).
    pub send_errors: u64,
    pub commands_to_down_nodes: u64,
    pub events_processed: u64,
    /// TCP segments that completed two or more messages (first capture point seeing them).
    pub tcp_shared_segments: u64,
    /// TCP messages longer than the segment that completed them (they span segments).
    pub tcp_spanning_messages: u64,
}

/// Where a run's outputs go.
pub struct Outputs<W: Write> {
    pub pcap: PcapNgWriter<W>,
    pub labels: LabelWriter<W>,
    pub events: EventWriter<W>,
}

pub struct World<W: Write> {
    now: Ts,
    seq: u64,
    queue: BinaryHeap<Key>,
    slots: Vec<Option<Ev>>,
    free: Vec<u32>,
    hosts: Vec<Host>,
    nats: Vec<NatBox>,
    routes: FxHashMap<IpAddr, Dest>,
    /// Capture point names, index = pcapng interface id = bit in `LabelCell::seen`.
    points: Vec<String>,
    core_point: Option<usize>,
    out: Outputs<W>,
    error: Option<io::Error>,
    pub stats: SimStats,
    pub tally: Tally,
    segs: Vec<Segment<Tag>>,
    notes: Vec<TcpNote>,
}

impl<W: Write> World<W> {
    pub fn new(start: Ts, out: Outputs<W>) -> World<W> {
        World {
            now: start,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hosts: Vec::new(),
            nats: Vec::new(),
            routes: FxHashMap::default(),
            points: Vec::new(),
            core_point: None,
            out,
            error: None,
            stats: SimStats::default(),
            tally: Tally::default(),
            segs: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn now(&self) -> Ts {
        self.now
    }

    /// Adds a NAT box; its inside host is added next with `nat: Some(index)`.
    pub fn add_nat(&mut self, nat: Nat, uplink: &LinkDef, seed: u64, inside: usize) -> usize {
        let i = self.nats.len();
        self.routes
            .insert(IpAddr::V4(nat.public_ip()), Dest::Nat(i));
        self.nats.push(NatBox {
            nat,
            inside,
            up_pipe: Pipe::new(uplink, seed ^ 0xa11c_e000),
            down_pipe: Pipe::new(uplink, seed ^ 0xb0b0_0000),
            capture: None,
        });
        i
    }

    /// Adds a host (not started: schedule [`Action::Join`]). Returns its index.
    pub fn add_host(&mut self, conf: HostConf, build: Builder) -> usize {
        let i = self.hosts.len();
        let access = if conf.nat.is_some() { LAN } else { conf.link };
        if conf.nat.is_none() {
            self.routes.insert(conf.ip, Dest::Host(i));
        }
        self.hosts.push(Host {
            tcp: TcpHost::new(conf.ip, usize::from(conf.link.mtu), conf.seed ^ 0x7c9),
            up_pipe: Pipe::new(&access, conf.seed ^ 0x0001),
            down_pipe: Pipe::new(&access, conf.seed ^ 0x0002),
            conf,
            build,
            node: None,
            incarnation: 0,
            down: true,
            conns: BTreeSet::new(),
            udp_ports: Vec::new(),
            capture: None,
            node_deadline: None,
            wake_at: None,
            ip_id: 0,
        });
        i
    }

    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.conf.name == name)
    }

    pub fn nat_of(&self, host: usize) -> Option<usize> {
        self.hosts.get(host).and_then(|h| h.conf.nat)
    }

    /// Adds a capture point (a pcapng interface named `name`).
    pub fn capture_core(&mut self) -> io::Result<()> {
        let p = self.add_point("core")?;
        self.core_point = Some(p);
        Ok(())
    }

    pub fn capture_host(&mut self, host: usize) -> io::Result<()> {
        let name = self.hosts.get(host).map(|h| h.conf.name.clone());
        if let Some(name) = name {
            let p = self.add_point(&name)?;
            if let Some(h) = self.hosts.get_mut(host) {
                h.capture = Some(p);
            }
        }
        Ok(())
    }

    pub fn capture_nat(&mut self, nat: usize) -> io::Result<()> {
        let inside = self.nats.get(nat).map(|n| n.inside);
        let name = inside
            .and_then(|h| self.hosts.get(h))
            .map(|h| h.conf.name.clone());
        if let Some(name) = name {
            let p = self.add_point(&format!("nat:{name}"))?;
            if let Some(n) = self.nats.get_mut(nat) {
                n.capture = Some(p);
            }
        }
        Ok(())
    }

    fn add_point(&mut self, name: &str) -> io::Result<usize> {
        if self.points.len() >= 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at most 64 capture points",
            ));
        }
        let id = self.out.pcap.add_interface(name, LinkType::ETHERNET, 0)?;
        debug_assert_eq!(id as usize, self.points.len());
        self.points.push(name.to_string());
        Ok(self.points.len() - 1)
    }

    /// Schedules a timeline action.
    pub fn schedule(&mut self, at: Ts, host: usize, action: Action) {
        self.push(at, Ev::Step(host, action));
    }

    fn push(&mut self, at: Ts, ev: Ev) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = Some(ev);
                }
                i
            }
            None => {
                self.slots.push(Some(ev));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.queue
            .push(std::cmp::Reverse((at.max(self.now), self.seq, slot)));
    }

    /// Runs every event up to and including `until`; `tick` is called every 2^16 events with
    /// the current simulated time (progress display).
    pub fn run_until(&mut self, until: Ts, mut tick: impl FnMut(Ts)) {
        while let Some(std::cmp::Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(std::cmp::Reverse((at, _, slot))) = self.queue.pop() else {
                break;
            };
            let Some(ev) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
                continue;
            };
            self.free.push(slot);
            self.now = at;
            self.stats.events_processed += 1;
            if self.stats.events_processed & 0xffff == 0 {
                tick(self.now);
            }
            match ev {
                Ev::AtCore(p) => self.at_core(p),
                Ev::NatFromInside(n, p) => self.nat_from_inside(n, p),
                Ev::NatFromOutside(n, p) => self.nat_from_outside(n, p),
                Ev::AtHost(h, p) => self.at_host(h, p),
                Ev::Wake(h) => self.wake(h, at),
                Ev::Step(h, a) => self.step(h, a),
            }
        }
        self.now = self.now.max(until);
    }

    /// Saves every node and flushes the outputs.
    pub fn finish(mut self) -> (SimStats, Tally, io::Result<Outputs<W>>) {
        for h in &mut self.hosts {
            if let Some(n) = h.node.as_mut() {
                let _ = n.save();
            }
        }
        let result = match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.out),
        };
        (self.stats, self.tally, result)
    }

    // ---- capture ----

    fn capture(&mut self, point: Option<usize>, p: &Packet) {
        let Some(pt) = point else {
            return;
        };
        let head = packet::ethernet_header(&p.bytes);
        let len = (head.len() + p.bytes.len()) as u32;
        if let Err(e) = self
            .out
            .pcap
            .write_packet_parts(pt as u32, self.now, &head, &p.bytes, len)
        {
            self.error.get_or_insert(e);
        }
        self.stats.frames_captured += 1;
        if p.labels.is_empty() {
            return;
        }
        let Some(t) = packet::tuple(&p.bytes) else {
            return;
        };
        let bit = 1u64 << pt;
        let tcp_payload = packet::tcp_info(&p.bytes).map(|(_, _, len)| len);
        let mut first_sightings = 0;
        for cell in &p.labels {
            let seen = cell.seen.get();
            if seen & bit != 0 {
                continue;
            }
            if seen == 0 {
                first_sightings += 1;
                if tcp_payload.is_some_and(|len| cell.tcp_len > len) {
                    self.stats.tcp_spanning_messages += 1;
                }
            }
            cell.seen.set(seen | bit);
            let name = self.points.get(pt).map_or("", String::as_str);
            if let Err(e) = self
                .out
                .labels
                .write_seen(&cell.label, self.now, t.src, t.dst, name)
            {
                self.error.get_or_insert(e);
            }
            self.tally.label(&cell.label);
            self.stats.labels_written += 1;
        }
        if tcp_payload.is_some() && first_sightings >= 2 {
            self.stats.tcp_shared_segments += 1;
        }
    }

    // ---- packet path ----

    fn send_from_host(&mut self, h: usize, p: Packet) {
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += p.bytes.len() as u64;
        let Some(host) = self.hosts.get(h) else {
            return;
        };
        let point = host.capture;
        self.capture(point, &p);
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.conf.udp_blocked && packet::tuple(&p.bytes).is_some_and(|t| t.proto == PROTO_UDP) {
            self.stats.firewall_drops += 1;
            return;
        }
        let nat = host.conf.nat;
        match host.up_pipe.send(self.now, p.bytes.len()) {
            Fate::Arrives(at) => match nat {
                Some(n) => self.push(at, Ev::NatFromInside(n, p)),
                None => self.push(at, Ev::AtCore(p)),
            },
            Fate::Lost => self.stats.lost += 1,
            Fate::QueueDrop => self.stats.queue_drops += 1,
        }
    }

    fn nat_from_inside(&mut self, n: usize, mut p: Packet) {
        let Some(b) = self.nats.get_mut(n) else {
            return;
        };
        if let Verdict::Drop(_) = b.nat.outbound(self.now, &mut p.bytes) {
            self.stats.nat_drops += 1;
            return;
        }
        let point = b.capture;
        self.capture(point, &p);
        let Some(b) = self.nats.get_mut(n) else {
            return;
        };
        match b.up_pipe.send(self.now, p.bytes.len()) {
            Fate::Arrives(at) => self.push(at, Ev::AtCore(p)),
            Fate::Lost => self.stats.lost += 1,
            Fate::QueueDrop => self.stats.queue_drops += 1,
        }
    }

    fn at_core(&mut self, p: Packet) {
        self.capture(self.core_point, &p);
        let dest = packet::addrs(&p.bytes).and_then(|(_, d)| self.routes.get(&d).copied());
        let (fate, ev) = match dest {
            Some(Dest::Host(h)) => match self.hosts.get_mut(h) {
                Some(host) => (host.down_pipe.send(self.now, p.bytes.len()), Dest::Host(h)),
                None => return,
            },
            Some(Dest::Nat(n)) => match self.nats.get_mut(n) {
                Some(b) => (b.down_pipe.send(self.now, p.bytes.len()), Dest::Nat(n)),
                None => return,
            },
            None => {
                self.stats.unroutable += 1;
                return;
            }
        };
        match (fate, ev) {
            (Fate::Arrives(at), Dest::Host(h)) => self.push(at, Ev::AtHost(h, p)),
            (Fate::Arrives(at), Dest::Nat(n)) => self.push(at, Ev::NatFromOutside(n, p)),
            (Fate::Lost, _) => self.stats.lost += 1,
            (Fate::QueueDrop, _) => self.stats.queue_drops += 1,
        }
    }

    fn nat_from_outside(&mut self, n: usize, mut p: Packet) {
        let Some(b) = self.nats.get(n) else {
            return;
        };
        let point = b.capture;
        self.capture(point, &p);
        let Some(b) = self.nats.get_mut(n) else {
            return;
        };
        if let Verdict::Drop(_) = b.nat.inbound(self.now, &mut p.bytes) {
            self.stats.nat_drops += 1;
            return;
        }
        let h = b.inside;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.conf.udp_blocked && packet::tuple(&p.bytes).is_some_and(|t| t.proto == PROTO_UDP) {
            self.stats.firewall_drops += 1;
            return;
        }
        match host.down_pipe.send(self.now, p.bytes.len()) {
            Fate::Arrives(at) => self.push(at, Ev::AtHost(h, p)),
            Fate::Lost => self.stats.lost += 1,
            Fate::QueueDrop => self.stats.queue_drops += 1,
        }
    }

    fn at_host(&mut self, h: usize, p: Packet) {
        let Some(host) = self.hosts.get(h) else {
            return;
        };
        if host.down {
            self.stats.undeliverable += 1;
            return;
        }
        let point = host.capture;
        self.capture(point, &p);
        let Some(t) = packet::tuple(&p.bytes) else {
            self.stats.undeliverable += 1;
            return;
        };
        if t.proto == PROTO_TCP {
            self.stats.packets_delivered += 1;
            if let Some(host) = self.hosts.get_mut(h) {
                host.tcp.receive(self.now, &p.bytes);
            }
            self.service(h);
            return;
        }
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        let (Some(node), Some(data)) = (host.node.as_mut(), packet::udp_payload(&p.bytes)) else {
            self.stats.undeliverable += 1;
            return;
        };
        if !host.udp_ports.contains(&t.dst.port()) {
            self.stats.undeliverable += 1;
            return;
        }
        self.stats.packets_delivered += 1;
        node.handle_input(Input::Udp {
            now: self.now,
            local: SocketAddr::new(host.conf.ip, t.dst.port()),
            from: t.src,
            data,
        });
        self.drain(h);
        self.service(h);
    }

    // ---- hosts ----

    fn step(&mut self, h: usize, action: Action) {
        match action {
            Action::Command(words) => {
                let now = self.now;
                match self.hosts.get_mut(h).and_then(|x| x.node.as_mut()) {
                    Some(node) => {
                        node.handle_input(Input::Command { now, words });
                        self.drain(h);
                        self.service(h);
                    }
                    None => self.stats.commands_to_down_nodes += 1,
                }
            }
            Action::Join => self.start(h),
            Action::Leave => self.stop(h, false),
            Action::Crash => self.stop(h, true),
            Action::Restart => {
                self.stop(h, false);
                self.start(h);
            }
        }
    }

    fn start(&mut self, h: usize) {
        let now = self.now;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.node.is_some() {
            return;
        }
        host.incarnation += 1;
        let node = match (host.build)(host.incarnation) {
            Ok(n) => n,
            Err(e) => {
                let ev = Event {
                    ts: now,
                    node: host.conf.name.as_str().into(),
                    role: crate::peer::Role::Client,
                    kind: crate::peer::EventKind::Note {
                        what: format!("could not start: {e}"),
                    },
                };
                self.write_event(&ev);
                return;
            }
        };
        let listen = node.listen();
        host.udp_ports = listen.udp.iter().map(SocketAddr::port).collect();
        for a in &listen.tcp {
            host.tcp.listen(a.port());
        }
        host.down = false;
        host.node = Some(node);
        if let Some(n) = host.node.as_mut() {
            n.handle_input(Input::Timeout(now));
        }
        self.drain(h);
        self.service(h);
    }

    fn stop(&mut self, h: usize, crash: bool) {
        let now = self.now;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if let Some(mut n) = host.node.take() {
            let _ = n.save();
        }
        host.node_deadline = None;
        host.udp_ports.clear();
        let conns = std::mem::take(&mut host.conns);
        if crash {
            host.tcp.abort_all();
            host.down = true;
        } else {
            for c in conns {
                host.tcp.close(now, c);
            }
        }
        self.service(h);
    }

    fn wake(&mut self, h: usize, at: Ts) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        if host.wake_at != Some(at) {
            return; // superseded
        }
        host.wake_at = None;
        if host.node_deadline.is_some_and(|d| d <= self.now) {
            host.node_deadline = None;
            if let Some(n) = host.node.as_mut() {
                n.handle_input(Input::Timeout(self.now));
            }
            self.drain(h);
            // A node that asks to be woken in the past again would spin the clock.
            if let Some(host) = self.hosts.get_mut(h) {
                if host.node_deadline.is_some_and(|d| d <= self.now) {
                    host.node_deadline = Some(self.now.add_nanos(1_000));
                }
            }
        }
        self.service(h);
    }

    fn to_host_conn(inc: u32, c: ConnId) -> ConnId {
        if c.is_accepted() {
            c
        } else {
            ConnId((c.0 & NODE_CONN_MASK) | (u64::from(inc) << INCARNATION_SHIFT))
        }
    }

    fn to_node_conn(c: ConnId) -> ConnId {
        if c.is_accepted() {
            c
        } else {
            ConnId(c.0 & NODE_CONN_MASK)
        }
    }

    /// Drains the node's outputs into the network.
    fn drain(&mut self, h: usize) {
        loop {
            let now = self.now;
            let out = match self.hosts.get_mut(h).and_then(|x| x.node.as_mut()) {
                Some(node) => node.poll_output(),
                None => return,
            };
            let Some(host) = self.hosts.get_mut(h) else {
                return;
            };
            let inc = host.incarnation;
            match out {
                Output::Timeout(t) => {
                    host.node_deadline = Some(t);
                    return;
                }
                Output::Event(e) => self.write_event(&e),
                Output::Udp(d) => {
                    let bound = host.udp_ports.contains(&d.local.port());
                    host.ip_id = host.ip_id.wrapping_add(1);
                    let src = SocketAddr::new(host.conf.ip, d.local.port());
                    match packet::udp(src, d.to, &d.data, host.ip_id).filter(|_| bound) {
                        Some(bytes) => {
                            let tag = Rc::new(LabelCell {
                                label: d.label,
                                seen: Cell::new(0),
                                tcp_len: 0,
                            });
                            let p = Packet {
                                bytes,
                                labels: vec![tag],
                            };
                            self.send_from_host(h, p);
                        }
                        None => self.stats.send_errors += 1,
                    }
                }
                Output::Tcp(TcpOut::Connect { conn, from, to }) => {
                    let hc = Self::to_host_conn(inc, conn);
                    if host
                        .tcp
                        .connect(now, hc, from.map(|a| a.port()), to)
                        .is_ok()
                    {
                        host.conns.insert(hc);
                    } else {
                        self.stats.send_errors += 1;
                        if let Some(node) = host.node.as_mut() {
                            node.handle_input(Input::Tcp {
                                now,
                                conn,
                                event: TcpEvent::ConnectFailed,
                            });
                        }
                    }
                }
                Output::Tcp(TcpOut::Send { conn, data, label }) => {
                    let hc = Self::to_host_conn(inc, conn);
                    let tag = Rc::new(LabelCell {
                        label,
                        seen: Cell::new(0),
                        tcp_len: data.len(),
                    });
                    if host.tcp.send(now, hc, &data, Some(tag)).is_err() {
                        self.stats.send_errors += 1;
                    }
                }
                Output::Tcp(TcpOut::Close { conn }) => {
                    let hc = Self::to_host_conn(inc, conn);
                    host.conns.remove(&hc);
                    host.tcp.close(now, hc);
                }
            }
        }
    }

    /// Runs the host's TCP stack, feeds its notes to the node, sends what both produce, and
    /// reschedules the host's wake-up.
    fn service(&mut self, h: usize) {
        for _ in 0..MAX_SERVICE_ROUNDS {
            let now = self.now;
            let Some(host) = self.hosts.get_mut(h) else {
                return;
            };
            let mut segs = std::mem::take(&mut self.segs);
            let mut notes = std::mem::take(&mut self.notes);
            host.tcp.poll(now, &mut segs, &mut notes);
            let quiet = segs.is_empty() && notes.is_empty();
            for s in segs.drain(..) {
                self.send_from_host(
                    h,
                    Packet {
                        bytes: s.packet,
                        labels: s.tags,
                    },
                );
            }
            for note in notes.drain(..) {
                self.deliver_note(h, note);
            }
            self.segs = segs;
            self.notes = notes;
            if quiet {
                break;
            }
        }
        self.reschedule(h);
    }

    fn deliver_note(&mut self, h: usize, note: TcpNote) {
        let now = self.now;
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        let (hc, event) = match &note {
            TcpNote::Accepted {
                conn,
                local,
                remote,
            } => {
                if host.node.is_none() {
                    host.tcp.close(now, *conn);
                    return;
                }
                host.conns.insert(*conn);
                (
                    *conn,
                    TcpEvent::Accepted {
                        local: *local,
                        remote: *remote,
                    },
                )
            }
            TcpNote::Connected { conn, local } => (*conn, TcpEvent::Connected { local: *local }),
            TcpNote::ConnectFailed { conn } => {
                let live = host.conns.remove(conn);
                if !live {
                    return;
                }
                (*conn, TcpEvent::ConnectFailed)
            }
            TcpNote::Data { conn, data } => (*conn, TcpEvent::Data(data)),
            TcpNote::Closed { conn } => {
                let live = host.conns.remove(conn);
                if !live {
                    return;
                }
                (*conn, TcpEvent::Closed)
            }
        };
        if !host.conns.contains(&hc) && !matches!(event, TcpEvent::Closed | TcpEvent::ConnectFailed)
        {
            return; // a connection of an earlier incarnation
        }
        let Some(node) = host.node.as_mut() else {
            return;
        };
        node.handle_input(Input::Tcp {
            now,
            conn: Self::to_node_conn(hc),
            event,
        });
        self.drain(h);
    }

    fn reschedule(&mut self, h: usize) {
        let Some(host) = self.hosts.get_mut(h) else {
            return;
        };
        let want = match (host.node_deadline, host.tcp.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(at) = want else {
            return;
        };
        let at = at.max(self.now);
        if host.wake_at.is_some_and(|w| w <= at) {
            return; // an earlier wake-up is pending; it will reschedule
        }
        host.wake_at = Some(at);
        self.push(at, Ev::Wake(h));
    }

    fn write_event(&mut self, e: &Event) {
        self.tally.event(e);
        self.stats.events_written += 1;
        if let Err(err) = self.out.events.write(e) {
            self.error.get_or_insert(err);
        }
    }
}
