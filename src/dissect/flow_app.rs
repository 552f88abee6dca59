//! Per-flow dissection state and the driver that feeds it (see the module docs in `mod.rs`).

use crate::decode::{L4, Packet, tcp_flags};
use crate::flow::Dir;
use crate::flow::reassembly::{ReassemblyBudget, StreamConsumer, StreamEnd, TcpReassembler};
use crate::time::Ts;
use dissectors::registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Transport,
};
use std::collections::BTreeMap;

/// Limits of the dissection stage.
#[derive(Clone, Debug)]
pub struct DissectConfig {
    /// UDP datagrams with payload probed before a flow is given up on.
    pub max_probe_datagrams: u16,
    /// Stream bytes per TCP direction kept for probing before a flow is given up on.
    pub max_probe_bytes: usize,
    /// Unconsumed stream bytes kept per direction while a message is incomplete.
    pub max_pending_bytes: usize,
    /// Consecutive parse errors after which a claimed flow is no longer parsed.
    pub max_errors: u16,
    /// Bytes all TCP reassembly buffers may hold together.
    pub reassembly_budget: usize,
}

impl Default for DissectConfig {
    fn default() -> Self {
        DissectConfig {
            max_probe_datagrams: 8,
            max_probe_bytes: 2048,
            max_pending_bytes: 256 << 10,
            max_errors: 8,
            reassembly_budget: ReassemblyBudget::DEFAULT_MAX_BYTES,
        }
    }
}

/// Counters of the dissection stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DissectStats {
    /// Flows claimed, by dissector.
    pub flows_by_service: BTreeMap<&'static str, u64>,
    /// Messages decoded, by dissector.
    pub messages_by_service: BTreeMap<&'static str, u64>,
    /// Parse errors (input that broke a claimed protocol's rules).
    pub parse_errors: u64,
    /// Claimed flows no longer parsed after too many errors or a pending-bytes overflow.
    pub flows_abandoned: u64,
    /// TCP bytes lost to reassembly gaps in claimed or probing flows.
    pub gap_bytes: u64,
}

/// Dissection state of one flow; the flow table's per-flow slot.
#[derive(Default)]
pub enum FlowApp {
    /// No payload seen yet (or dissection disabled).
    #[default]
    Unseen,
    /// TCP handshake seen, no payload yet: where each direction's stream starts (ISN + 1),
    /// so that a first data segment arriving out of order cannot anchor the stream past
    /// bytes still to come.
    Handshake([Option<u32>; 2]),
    /// Inline, not boxed: the flow table's slot is read for every packet anyway, while a box
    /// cost an allocation per flow and a dependent cache miss per packet (~7 % of a run on
    /// the simulator's `large` capture).
    Active(Active),
    /// Nothing more to parse; keeps only the service name, if one was claimed.
    Done(Option<&'static str>),
}

impl FlowApp {
    /// Whether `pkt` can matter to this flow's dissection (cheap; lets the caller skip the
    /// per-packet work for flows already settled or not yet carrying payload).
    pub fn wants(&self, pkt: &Packet<'_>) -> bool {
        match self {
            FlowApp::Done(_) => false,
            FlowApp::Active(_) => true,
            FlowApp::Unseen | FlowApp::Handshake(_) => match &pkt.l4 {
                L4::Tcp(t) => !t.payload.is_empty() || t.flags & tcp_flags::SYN != 0,
                L4::Udp(u) => !u.payload.is_empty(),
                _ => false,
            },
        }
    }

    /// Starts loading what an active flow keeps behind pointers and every packet reads (see
    /// [`crate::prefetch`]): the claiming dissector's state and a TCP flow's reassembler.
    pub fn prefetch(&self) {
        let FlowApp::Active(a) = self else { return };
        if let Some(c) = &a.claim {
            crate::prefetch::prefetch_ptr(std::ptr::from_ref(&*c.parser).cast::<u8>());
        }
        if let Some(r) = &a.reassembler {
            crate::prefetch::prefetch(std::slice::from_ref(&**r), 0);
        }
    }

    /// Name of the dissector that claimed the flow.
    pub fn service(&self) -> Option<&'static str> {
        match self {
            FlowApp::Unseen | FlowApp::Handshake(_) => None,
            FlowApp::Active(a) => a.claim.as_ref().map(|c| c.desc.name),
            FlowApp::Done(s) => *s,
        }
    }
}

/// State of a flow still being probed or parsed. Everything but the counters and the claim
/// is boxed and allocated on demand: a million short flows each hold ~100 bytes here.
pub struct Active {
    /// Stream starts learned from the handshake (see [`FlowApp::Handshake`]).
    stream_starts: [Option<u32>; 2],
    reassembler: Option<Box<TcpReassembler>>,
    /// Inline: nearly every active flow gets claimed, and each packet reads it (a box
    /// would add an allocation per flow and a dependent cache miss per packet).
    claim: Option<Claim>,
    /// A second protocol multiplexed on the same UDP flow (RFC 7983 style: STUN on
    /// Skylark's port, PROTOCOL.md §2.4), for datagrams the claiming dissector refuses.
    alt: Option<Box<Claim>>,
    /// Stream heads per direction while probing TCP.
    heads: Option<Box<[Vec<u8>; 2]>>,
    /// UDP datagrams probed so far.
    probed: u16,
    given_up: bool,
}

struct Claim {
    desc: &'static DissectorDesc,
    /// `desc`'s place in the registry (indexes [`Ctx::messages`]; a byte keeps `FlowApp`
    /// within its size bound).
    service: u8,
    parser: Box<dyn FlowDissector>,
    /// Stream bytes per direction the parser left unconsumed (a message split across
    /// segments). Boxed on first need: only TCP flows ever have any, and inline it made
    /// every flow table slot 40 bytes larger.
    pending: Option<Box<[Vec<u8>; 2]>>,
    errors: u16,
    abandoned: bool,
}

/// A stream consumer that drops everything: used to return a settled flow's reassembly
/// buffers to the budget.
struct Discard;

impl StreamConsumer for Discard {
    fn on_data(&mut self, _dir: Dir, _ts: Ts, _data: &[u8]) {}
    fn on_gap(&mut self, _dir: Dir, _ts: Ts, _missing: u64) {}
    fn on_end(&mut self, _dir: Dir, _ts: Ts, _how: StreamEnd) {}
}

/// Receives each decoded message with its direction and the capture time of its bytes.
/// By value: the dissector's buffer is drained into the sink, so a consumer that keeps the
/// message (the hand-off to the analysis thread) takes it without a copy.
pub trait MessageSink {
    fn message(&mut self, dir: Dir, ts: Ts, msg: Message);
}

impl<F: FnMut(Dir, Ts, Message)> MessageSink for F {
    fn message(&mut self, dir: Dir, ts: Ts, msg: Message) {
        self(dir, ts, msg)
    }
}

/// The dissection driver: registry, shared reassembly budget and counters.
pub struct Dissection {
    budget: ReassemblyBudget,
    ctx: Ctx,
}

/// Everything but the reassembly budget, so a stream feed can borrow it while the
/// reassembler holds the budget.
struct Ctx {
    registry: &'static [DissectorDesc],
    config: DissectConfig,
    /// All but `flows_by_service` and `messages_by_service`, counted in `flows` and
    /// `messages` instead.
    stats: DissectStats,
    /// Flows claimed per registry entry (a map lookup by name per flow was visible).
    flows: Vec<u64>,
    /// Messages decoded per registry entry (a map lookup by name per message was visible).
    messages: Vec<u64>,
    out: Vec<Message>,
}

fn side(dir: Dir) -> Side {
    match dir {
        Dir::Orig => Side::Orig,
        Dir::Resp => Side::Resp,
    }
}

impl Dissection {
    pub fn new(registry: &'static [DissectorDesc], config: DissectConfig) -> Dissection {
        Dissection {
            budget: ReassemblyBudget::new(config.reassembly_budget),
            ctx: Ctx {
                registry,
                config,
                stats: DissectStats::default(),
                flows: vec![0; registry.len()],
                messages: vec![0; registry.len()],
                out: Vec::new(),
            },
        }
    }

    pub fn stats(&self) -> DissectStats {
        let ctx = &self.ctx;
        let mut stats = ctx.stats.clone();
        for ((desc, &flows), &msgs) in ctx.registry.iter().zip(&ctx.flows).zip(&ctx.messages) {
            if flows > 0 {
                *stats.flows_by_service.entry(desc.name).or_default() += flows;
            }
            if flows > 0 || msgs > 0 {
                *stats.messages_by_service.entry(desc.name).or_default() += msgs;
            }
        }
        stats
    }

    /// Feeds one packet of a flow.
    pub fn on_packet(
        &mut self,
        app: &mut FlowApp,
        pkt: &Packet<'_>,
        dir: Dir,
        sink: &mut impl MessageSink,
    ) {
        let FlowApp::Active(active) = activate(app, pkt, dir) else {
            return;
        };
        let ports = pkt.ports().unwrap_or((0, 0));
        match &pkt.l4 {
            L4::Udp(u) => self
                .ctx
                .on_datagram(active, dir, pkt.ts, ports, u.payload, sink),
            L4::Tcp(seg) => {
                let starts = active.stream_starts;
                let (reassembler, mut feed) = active.split(&mut self.ctx, ports, sink);
                reassembler
                    .get_or_insert_with(|| Box::new(TcpReassembler::starting_at(starts)))
                    .segment(dir, pkt.ts, seg, &mut self.budget, &mut feed);
            }
            _ => {}
        }
        self.settle(app, pkt.ts);
    }

    /// Shrinks a flow that has nothing more to parse to its service name, returning its
    /// reassembly buffers to the budget first.
    fn settle(&mut self, app: &mut FlowApp, now: Ts) {
        let FlowApp::Active(a) = app else {
            return;
        };
        let done = a.given_up || a.claim.as_ref().is_some_and(|c| c.abandoned);
        if !done {
            return;
        }
        if let Some(r) = &mut a.reassembler {
            r.finish(now, StreamEnd::Timeout, &mut self.budget, &mut Discard);
        }
        *app = FlowApp::Done(app.service());
    }

    /// The flow ended: flushes its streams, hands out the last messages, frees its state.
    pub fn on_flow_end(
        &mut self,
        app: &mut FlowApp,
        ts: Ts,
        how: StreamEnd,
        sink: &mut impl MessageSink,
    ) {
        if let FlowApp::Active(active) = app {
            let (reassembler, mut feed) = active.split(&mut self.ctx, (0, 0), sink);
            if let Some(r) = reassembler {
                r.finish(ts, how, &mut self.budget, &mut feed);
            }
        }
        *app = FlowApp::Done(app.service());
    }
}

/// Turns an unseen flow active once it carries payload, noting a TCP handshake seen before
/// that (see [`FlowApp::Handshake`]); returns the (possibly new) state.
fn activate<'f>(app: &'f mut FlowApp, pkt: &Packet<'_>, dir: Dir) -> &'f mut FlowApp {
    let mut stream_starts = match app {
        FlowApp::Unseen => [None; 2],
        FlowApp::Handshake(starts) => *starts,
        _ => return app,
    };
    match &pkt.l4 {
        L4::Tcp(t) if t.payload.is_empty() => {
            if t.flags & tcp_flags::SYN != 0 {
                if let Some(s) = stream_starts.get_mut(dir.index()) {
                    *s = Some(t.seq.wrapping_add(1));
                }
                *app = FlowApp::Handshake(stream_starts);
            }
            return app;
        }
        L4::Tcp(_) => {}
        L4::Udp(u) if !u.payload.is_empty() => {}
        _ => return app,
    }
    *app = FlowApp::Active(Active {
        stream_starts,
        reassembler: None,
        claim: None,
        alt: None,
        heads: None,
        probed: 0,
        given_up: false,
    });
    app
}

impl Active {
    fn split<'a, S: MessageSink>(
        &'a mut self,
        ctx: &'a mut Ctx,
        ports: (u16, u16),
        sink: &'a mut S,
    ) -> (&'a mut Option<Box<TcpReassembler>>, Feed<'a, S>) {
        let Active {
            reassembler,
            claim,
            heads,
            given_up,
            ..
        } = self;
        (
            reassembler,
            Feed {
                ctx,
                claim,
                heads,
                given_up,
                ports,
                sink,
            },
        )
    }
}

impl Ctx {
    fn on_datagram(
        &mut self,
        active: &mut Active,
        dir: Dir,
        ts: Ts,
        ports: (u16, u16),
        payload: &[u8],
        sink: &mut impl MessageSink,
    ) {
        if active.given_up || payload.is_empty() {
            return;
        }
        // Claimed by this very datagram: its dissector has just said `Yes` to it.
        let fresh = active.claim.is_none();
        if fresh {
            match self.probe(Transport::Udp, dir, ports, payload) {
                Some(desc) => active.claim = Some(self.claim(desc, Transport::Udp)),
                None => {
                    active.probed += 1;
                    if active.probed >= self.config.max_probe_datagrams {
                        active.given_up = true;
                    }
                    return;
                }
            }
        }
        let Some(claim) = &mut active.claim else {
            return;
        };
        if !fresh {
            // A datagram the claiming protocol is not sure of may be another protocol
            // sharing the port (PROTOCOL.md §2.4: STUN and Skylark on one UDP socket);
            // another dissector that recognises it takes it.
            if self.own_if_sure(claim, dir, ts, payload, sink) {
                return;
            }
            let own = claim.desc;
            if let Some(desc) = self
                .probe(Transport::Udp, dir, ports, payload)
                .filter(|d| !std::ptr::eq(*d, own))
            {
                let alt = match &mut active.alt {
                    Some(alt) if std::ptr::eq(alt.desc, desc) => alt,
                    slot => slot.insert(Box::new(self.multiplexed(desc))),
                };
                self.parse(alt, dir, ts, payload, sink);
                return;
            }
        }
        self.parse(claim, dir, ts, payload, sink);
    }

    /// Whether the claiming dissector is sure `payload` is its own; if so it has parsed it,
    /// in the same look (most dissectors: their probe, then their parse). An abandoned
    /// claim only answers.
    fn own_if_sure(
        &mut self,
        claim: &mut Claim,
        dir: Dir,
        ts: Ts,
        payload: &[u8],
        sink: &mut impl MessageSink,
    ) -> bool {
        let probe = claim.desc.probe;
        if claim.abandoned {
            return probe(Transport::Udp, side(dir), payload) == Probe::Yes;
        }
        self.out.clear();
        let parsed =
            claim
                .parser
                .parse_datagram_if_sure(probe, side(dir), ts.0, payload, &mut self.out);
        match parsed {
            Some(progress) => {
                self.account(claim, dir, ts, sink, progress);
                true
            }
            None => false,
        }
    }

    /// `desc`'s place in the registry every claim comes from (a registry has far fewer than
    /// 255 entries; `u8::MAX` would just go uncounted).
    fn service(&self, desc: &'static DissectorDesc) -> u8 {
        self.registry
            .iter()
            .position(|d| std::ptr::eq(d, desc))
            .and_then(|i| u8::try_from(i).ok())
            .unwrap_or(u8::MAX)
    }

    /// Per-flow state for a protocol multiplexed on an already claimed flow (counted as a
    /// service of its own only through its messages).
    fn multiplexed(&mut self, desc: &'static DissectorDesc) -> Claim {
        Claim {
            desc,
            service: self.service(desc),
            parser: (desc.new_flow)(Transport::Udp),
            pending: None,
            errors: 0,
            abandoned: false,
        }
    }

    /// The first dissector that says `Yes`, port-hinted ones first. `None` also when every
    /// dissector says `No` — callers count that as a failed probe.
    fn probe(
        &self,
        transport: Transport,
        dir: Dir,
        (sport, dport): (u16, u16),
        head: &[u8],
    ) -> Option<&'static DissectorDesc> {
        let fits = |d: &&DissectorDesc| d.transports.contains(&transport);
        let hinted =
            |d: &&DissectorDesc| d.port_hints.contains(&sport) || d.port_hints.contains(&dport);
        let registry = self.registry;
        registry
            .iter()
            .filter(fits)
            .filter(hinted)
            .chain(registry.iter().filter(fits).filter(|d| !hinted(d)))
            .find(|d| (d.probe)(transport, side(dir), head) == Probe::Yes)
    }

    /// True when no dissector could still match `head` (all say `No`).
    fn all_refuse(&self, transport: Transport, dir: Dir, head: &[u8]) -> bool {
        self.registry
            .iter()
            .filter(|d| d.transports.contains(&transport))
            .all(|d| (d.probe)(transport, side(dir), head) == Probe::No)
    }

    fn claim(&mut self, desc: &'static DissectorDesc, transport: Transport) -> Claim {
        let service = self.service(desc);
        if let Some(n) = self.flows.get_mut(usize::from(service)) {
            *n += 1;
        }
        Claim {
            desc,
            service,
            parser: (desc.new_flow)(transport),
            pending: None,
            errors: 0,
            abandoned: false,
        }
    }

    /// Parses `data` (one datagram, or in-order stream bytes) and hands out the messages;
    /// returns the bytes consumed.
    fn parse(
        &mut self,
        claim: &mut Claim,
        dir: Dir,
        ts: Ts,
        data: &[u8],
        sink: &mut impl MessageSink,
    ) -> usize {
        if claim.abandoned {
            return data.len();
        }
        self.out.clear();
        let progress = claim.parser.parse(side(dir), ts.0, data, &mut self.out);
        self.account(claim, dir, ts, sink, progress).min(data.len())
    }

    /// Accounts for a parse whose messages are in the message buffer: errors (too many
    /// abandon the claim), messages counted and handed to `sink`. Returns the bytes consumed.
    fn account(
        &mut self,
        claim: &mut Claim,
        dir: Dir,
        ts: Ts,
        sink: &mut impl MessageSink,
        progress: Progress,
    ) -> usize {
        let consumed = match progress {
            Progress::Parsed { consumed, .. } => {
                claim.errors = 0;
                consumed
            }
            Progress::Error { consumed, .. } => {
                self.stats.parse_errors += 1;
                claim.errors += 1;
                if claim.errors >= self.config.max_errors {
                    self.abandon(claim);
                }
                consumed
            }
        };
        if let Some(n) = self.messages.get_mut(usize::from(claim.service)) {
            *n += self.out.len() as u64;
        }
        for msg in self.out.drain(..) {
            sink.message(dir, ts, msg);
        }
        consumed
    }

    fn abandon(&mut self, claim: &mut Claim) {
        if !claim.abandoned {
            claim.abandoned = true;
            claim.pending = None;
            self.stats.flows_abandoned += 1;
        }
    }
}

/// Feeds in-order TCP bytes of one flow to probing or to the claimed dissector.
struct Feed<'a, S> {
    ctx: &'a mut Ctx,
    claim: &'a mut Option<Claim>,
    heads: &'a mut Option<Box<[Vec<u8>; 2]>>,
    given_up: &'a mut bool,
    ports: (u16, u16),
    sink: &'a mut S,
}

impl<S: MessageSink> Feed<'_, S> {
    /// Probes with the head of `dir` grown by `data`; claims the flow on a `Yes` and feeds it
    /// everything seen so far (both directions' heads).
    fn probe(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let max = self.ctx.config.max_probe_bytes;
        let heads = self.heads.get_or_insert_with(Box::default);
        let head = &mut heads[dir.index()];
        let room = max.saturating_sub(head.len());
        let taken = room.min(data.len());
        head.extend_from_slice(data.get(..taken).unwrap_or_default());
        let head_full = head.len() >= max;
        match self.ctx.probe(Transport::Tcp, dir, self.ports, head) {
            Some(desc) => {
                *self.claim = Some(self.ctx.claim(desc, Transport::Tcp));
                // The bytes beyond the probe window were never buffered: the stream
                // continues from them, so they go in after the head.
                let beyond = data.get(taken..).unwrap_or_default();
                let heads = self.heads.take().unwrap_or_default();
                for d in [dir.flip(), dir] {
                    let bytes = &heads[d.index()];
                    if !bytes.is_empty() {
                        self.feed(d, ts, bytes);
                    }
                }
                if !beyond.is_empty() {
                    self.feed(dir, ts, beyond);
                }
            }
            None => {
                if head_full || self.ctx.all_refuse(Transport::Tcp, dir, head) {
                    *self.given_up = true;
                    *self.heads = None;
                }
            }
        }
    }

    /// Gives stream bytes to the claimed dissector, keeping what it leaves unconsumed.
    fn feed(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let Some(claim) = self.claim.as_mut() else {
            return;
        };
        if claim.abandoned {
            return;
        }
        let mut pending = claim
            .pending
            .as_mut()
            .map(|p| std::mem::take(&mut p[dir.index()]))
            .unwrap_or_default();
        let rest = if pending.is_empty() {
            let used = self.ctx.parse(claim, dir, ts, data, self.sink);
            data.get(used..).unwrap_or_default()
        } else {
            pending.extend_from_slice(data);
            let used = self.ctx.parse(claim, dir, ts, &pending, self.sink);
            pending.drain(..used);
            &[][..]
        };
        pending.extend_from_slice(rest);
        if pending.len() > self.ctx.config.max_pending_bytes {
            self.ctx.abandon(claim);
            return;
        }
        if !claim.abandoned && (claim.pending.is_some() || !pending.is_empty()) {
            claim.pending.get_or_insert_with(Box::default)[dir.index()] = pending;
        }
    }
}

impl<S: MessageSink> StreamConsumer for Feed<'_, S> {
    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        if *self.given_up {
            return;
        }
        if self.claim.is_some() {
            self.feed(dir, ts, data);
        } else {
            self.probe(dir, ts, data);
        }
    }

    fn on_gap(&mut self, dir: Dir, _ts: Ts, missing: u64) {
        self.ctx.stats.gap_bytes += missing;
        match self.claim.as_mut() {
            Some(claim) => {
                if let Some(p) = claim.pending.as_mut() {
                    p[dir.index()].clear();
                }
                claim.parser.on_gap(side(dir), missing);
            }
            // A stream whose start is lost cannot be probed from its first bytes.
            None => {
                if let Some(h) = self.heads.as_mut() {
                    h[dir.index()].clear();
                }
            }
        }
    }

    fn on_end(&mut self, _dir: Dir, _ts: Ts, _how: StreamEnd) {}
}

// Every live flow's slot holds a `FlowApp` (up to a million at once): growing it grows the
// flow table for every flow, active or not.
const _: () = assert!(size_of::<FlowApp>() <= 88, "FlowApp grew");
