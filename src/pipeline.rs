//! The analysis pipeline for capture files: capture → decode → flow table → consumers.
//!
//! One pass, streaming: memory is bounded by the flow table's cap and the decoder's
//! fragment limits, never by the input's length. The pipeline runs on the caller's thread;
//! the offline commands hand its consumer's calls to a second one ([`crate::handoff`]).
//! Several inputs are read in order as one trace (like a capture rotated by `tcpdump -C`).
//! An input that cannot be read at all is reported and skipped; one damaged part-way is
//! analysed up to the damage.

use crate::capture::{CaptureError, CaptureReader, Format, Frame};
use crate::decode::{DecodeStats, Decoder, DefragLimits};
use crate::dissect::{DissectConfig, DissectStats, Dissection, FlowApp};
use crate::flow::reassembly::StreamEnd;
use crate::flow::{
    Dir, EndReason, FlowConfig, FlowRecord, FlowSink, FlowTable, FlowTableStats, Uid,
};
use crate::lookahead::Lookahead;
use crate::time::Ts;
use dissectors::registry::Message;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    pub flow: FlowConfig,
    pub defrag: DefragLimits,
    /// Application-layer dissection (`None`: flow statistics only).
    pub dissect: Option<DissectConfig>,
}

/// Receives flow records as flows end, and the report watermark (see
/// [`FlowTable::watermark`]) after each packet that ended flows.
pub trait FlowConsumer {
    /// `digits` is the capture's timestamp precision (fractional digits of a second).
    fn flow(&mut self, record: &FlowRecord, digits: u8);
    fn watermark(&mut self, _watermark: (i64, u64)) {}
    /// A message decoded in a flow (see [`MsgCtx`] for where and when).
    fn message(&mut self, _ctx: &MsgCtx, _msg: &Message) {}
    /// [`Self::message`] with the message given away: what the pipeline calls. A consumer
    /// that keeps messages (the hand-off to another thread) overrides it to take one
    /// without a copy.
    #[inline]
    fn message_owned(&mut self, ctx: &MsgCtx, msg: Message) {
        self.message(ctx, &msg);
    }
    /// A packet carrying `payload` bytes (> 0; after the TCP or UDP header, the IP payload
    /// for other protocols), after the messages it completed: for measuring traffic no
    /// dissector decodes (phone-home contacts to a home endpoint). `ctx` is the packet's,
    /// as for a message. Only when dissection runs.
    fn packet(&mut self, _ctx: &MsgCtx, _payload: u32) {}
    /// [`Self::packet`] for the packet that completed the message of the consumer's previous
    /// call, given with the same `ctx`: what the pipeline calls then, so that a consumer
    /// merging the two (the hand-off) need not compare contexts to know.
    #[inline]
    fn packet_of_message(&mut self, ctx: &MsgCtx, payload: u32) {
        self.packet(ctx, payload);
    }
    /// A packet of the flow at `live_index` (see [`MsgCtx::live_index`]) is about to be
    /// dissected: a consumer keeping per-flow state by that index may start loading it
    /// (see [`crate::prefetch`]).
    fn prefetch(&self, _live_index: u32) {}
    /// What [`Self::prefetch`] started loading for `live_index` has likely arrived: a
    /// consumer whose per-flow state refers to more state (a host's row) may start loading
    /// that.
    fn prefetch_referenced(&self, _live_index: u32) {}
    /// Called once before any flow: live indexes (see [`MsgCtx::live_index`]) will stay
    /// below `max_live`, the flow table's cap.
    fn live_capacity(&mut self, _max_live: usize) {}
    /// Wall time passed: a consumer that holds calls back to deliver them in batches
    /// ([`crate::handoff`]) delivers what it holds now. Live capture calls it every
    /// [`crate::live::BATCH_MAX_AGE`], so a quiet link still shows up promptly; offline
    /// runs never need it.
    fn flush(&mut self) {}
}

impl MsgCtx {
    /// `ends` is (sender, receiver, direction) of some packet of the flow; the message's own
    /// sender and receiver follow from its direction.
    pub fn new(
        uid: Uid,
        live_index: u32,
        dir: Dir,
        ts: Ts,
        ends: (SocketAddr, SocketAddr, Dir),
        proto: u8,
        digits: u8,
    ) -> MsgCtx {
        let (src, dst, ends_dir) = ends;
        let ends = MsgCtx {
            uid,
            live_index,
            dir: ends_dir,
            ts,
            src,
            dst,
            proto,
            digits,
        };
        ends.toward(dir, ts)
    }

    /// The context of another message of the same flow: its direction and time.
    pub fn toward(&self, dir: Dir, ts: Ts) -> MsgCtx {
        let (src, dst) = if dir == self.dir {
            (self.src, self.dst)
        } else {
            (self.dst, self.src)
        };
        MsgCtx {
            dir,
            ts,
            src,
            dst,
            ..*self
        }
    }
}

/// Where and when a decoded message was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgCtx {
    pub uid: Uid,
    /// The flow's place among live flows: dense (below the flow table's cap) and reused only
    /// after the flow's record has been handed over, so a consumer can keep per-flow state
    /// in a plain vector instead of a map keyed by `uid` (one cache miss, not a hash probe).
    pub live_index: u32,
    pub dir: Dir,
    /// Capture time of the packet that completed the message.
    pub ts: Ts,
    /// The message's sender and receiver (the flow's endpoints in direction `dir`).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// IP protocol number of the flow (6 TCP, 17 UDP).
    pub proto: u8,
    /// The capture's timestamp precision (fractional digits of a second).
    pub digits: u8,
}

/// What happened to one input.
#[derive(Debug)]
pub struct InputReport {
    pub path: PathBuf,
    pub format: Option<Format>,
    pub gzip: bool,
    pub frames: u64,
    pub error: Option<CaptureError>,
}

/// Everything the summary needs about a run.
#[derive(Debug, Default)]
pub struct RunStats {
    pub inputs: Vec<InputReport>,
    pub frames: u64,
    /// Sum of the frames' original lengths.
    pub wire_bytes: u64,
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    /// Fractional digits of the finest timestamp resolution among the inputs.
    pub ts_precision: u8,
    pub decode: DecodeStats,
    pub table: FlowTableStats,
    /// Present when dissection ran.
    pub dissect: Option<DissectStats>,
}

impl RunStats {
    /// Exit status by the README's contract: 0 all read, 1 an input unreadable, 3 damaged.
    pub fn exit_code(&self) -> u8 {
        let mut code = 0;
        for input in &self.inputs {
            match &input.error {
                Some(e) if e.is_fatal_at_start() => return 1,
                Some(_) => code = 3,
                None => {}
            }
        }
        code
    }
}

/// Progress of the input being read: `(path, bytes consumed, total bytes if known)`.
pub type ProgressFn<'p> = dyn FnMut(&Path, u64, Option<u64>) + 'p;

/// How often (in frames) progress is reported and fragment buffers are expired.
const CHECKPOINT_FRAMES: u64 = 1 << 16;

struct Adapter<'c, C: ?Sized> {
    consumer: &'c mut C,
    dissection: Option<Dissection>,
    digits: u8,
    ended: bool,
}

impl<C: FlowConsumer + ?Sized> FlowSink<FlowApp> for Adapter<'_, C> {
    fn flow_ended(&mut self, mut record: FlowRecord, mut app: FlowApp) {
        self.ended = true;
        if let Some(d) = &mut self.dissection {
            let how = match record.end {
                EndReason::Evicted => StreamEnd::Evicted,
                // Idle, or still open at the end of the input: the stream just stops. (A
                // FIN or RST seen earlier is reported as such by the reassembler.)
                EndReason::Idle | EndReason::Eof | EndReason::Reused => StreamEnd::Timeout,
            };
            let (consumer, digits) = (&mut *self.consumer, self.digits);
            let (uid, live_index) = (record.uid, record.live_index);
            let orig = SocketAddr::new(record.orig.addr.to_ip(), record.orig.port);
            let resp = SocketAddr::new(record.resp.addr.to_ip(), record.resp.port);
            let proto = record.proto;
            d.on_flow_end(
                &mut app,
                record.ts_end,
                how,
                &mut |dir, ts, msg: Message| {
                    let ends = (orig, resp, Dir::Orig);
                    let ctx = MsgCtx::new(uid, live_index, dir, ts, ends, proto, digits);
                    consumer.message_owned(&ctx, msg)
                },
            );
        }
        record.service = app.service();
        self.consumer.flow(&record, self.digits);
    }
}

/// The per-frame machinery shared by offline files and live capture: decoder, flow table,
/// dissection, handing flows and messages to one consumer. Feed frames in capture order with
/// [`Engine::frame`], call [`Engine::checkpoint`] now and then, and [`Engine::finish`] once.
///
/// Generic over the consumer (`dyn FlowConsumer` unless said): given the hand-off's type,
/// its calls — a few per frame — are direct and inlined, and a message moves into the
/// hand-off's batch without passing through a call of its own.
pub struct Engine<'c, C: ?Sized = dyn FlowConsumer> {
    decoder: Decoder,
    table: FlowTable<FlowApp>,
    sink: Adapter<'c, C>,
    frames: u64,
    wire_bytes: u64,
    first_ts: Option<Ts>,
    last_ts: Option<Ts>,
}

impl<'c, C: FlowConsumer + ?Sized> Engine<'c, C> {
    pub fn new(config: &PipelineConfig, consumer: &'c mut C) -> Engine<'c, C> {
        consumer.live_capacity(config.flow.max_live());
        Engine {
            decoder: Decoder::new(config.defrag.clone()),
            table: FlowTable::<FlowApp>::new(config.flow.clone()),
            sink: Adapter {
                consumer,
                dissection: config
                    .dissect
                    .clone()
                    .map(|c| Dissection::new(dissectors::registry::ALL, c)),
                digits: 6,
                ended: false,
            },
            frames: 0,
            wire_bytes: 0,
            first_ts: None,
            last_ts: None,
        }
    }

    /// Raises the timestamp precision reported to consumers (fractional digits of a second).
    pub fn raise_precision(&mut self, digits: u8) {
        self.sink.digits = self.sink.digits.max(digits);
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The consumer, e.g. to render a live snapshot between frames.
    pub fn consumer(&mut self) -> &mut C {
        &mut *self.sink.consumer
    }

    /// Analyses one frame.
    pub fn frame(&mut self, frame: &Frame<'_>) {
        self.frame_hinted(frame, None);
    }

    /// [`Self::frame`], given the flow slot a look ahead foresaw for it
    /// ([`FlowTable::ingest_hinted`]).
    pub fn frame_hinted(&mut self, frame: &Frame<'_>, hint: Option<u32>) {
        self.frames += 1;
        self.wire_bytes += u64::from(frame.orig_len);
        if self.first_ts.is_none_or(|t| frame.ts < t) {
            self.first_ts = Some(frame.ts);
        }
        if self.last_ts.is_none_or(|t| frame.ts > t) {
            self.last_ts = Some(frame.ts);
        }
        let (table, sink) = (&mut self.table, &mut self.sink);
        // Borrowed where the decoder wrote it, not moved out of the `Option`: a move copies
        // its narrow fields with wide reads, which the store buffer cannot serve.
        let decoded = self.decoder.decode(frame);
        let Some(pkt) = &decoded else {
            return;
        };
        let at = table.ingest_hinted(pkt, sink, hint);
        if let Some(d) = &mut sink.dissection {
            // Overlaps loading the consumer's per-flow state with the dissection's.
            sink.consumer.prefetch(at.slot);
            let uid = table.uid(at.slot);
            let wanted = table.app_mut(at.slot).filter(|a| {
                a.prefetch();
                a.wants(pkt)
            });
            let consumer = &mut *sink.consumer;
            let (src, dst) = pkt.ends();
            // Where and when, for the packet itself and the messages it completes: built once
            // and shared with the usual message (same direction and time); a message of any
            // other direction or time gets its own. Built in place: assembled elsewhere
            // first, its copy here read back narrow stores with wide loads, which the store
            // buffer cannot serve.
            let here = MsgCtx {
                uid,
                live_index: at.slot,
                dir: at.dir,
                ts: pkt.ts,
                src,
                dst,
                proto: pkt.ip_proto,
                digits: sink.digits,
            };
            // Whether the last message was the packet's own (same context).
            let mut last_here = false;
            if let Some(app) = wanted {
                d.on_packet(app, pkt, at.dir, &mut |dir, ts, msg: Message| {
                    last_here = (dir, ts) == (here.dir, here.ts);
                    if last_here {
                        consumer.message_owned(&here, msg)
                    } else {
                        consumer.message_owned(&here.toward(dir, ts), msg)
                    }
                });
            }
            let payload = pkt.payload_len();
            if payload > 0 {
                if last_here {
                    consumer.packet_of_message(&here, payload);
                } else {
                    consumer.packet(&here, payload);
                }
            }
        }
        if sink.ended {
            sink.ended = false;
            sink.consumer.watermark(table.watermark());
        }
    }

    /// Periodic housekeeping: expires fragment buffers as of the latest frame.
    pub fn checkpoint(&mut self) {
        self.decoder.expire(self.table.now());
    }

    /// Has the consumer deliver what it holds back ([`FlowConsumer::flush`]).
    pub fn flush(&mut self) {
        self.sink.consumer.flush();
    }

    /// Ends flows idle as of `now` (live capture: time passes without packets).
    pub fn expire_idle(&mut self, now: Ts) {
        self.decoder.expire(now);
        self.table.expire(now, &mut self.sink);
        if self.sink.ended {
            self.sink.ended = false;
            self.sink.consumer.watermark(self.table.watermark());
        }
    }

    /// Ends every open flow and returns the statistics (with `inputs` left empty).
    pub fn finish(mut self) -> RunStats {
        self.table.finish(&mut self.sink);
        RunStats {
            inputs: Vec::new(),
            frames: self.frames,
            wire_bytes: self.wire_bytes,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            ts_precision: self.sink.digits,
            decode: self.decoder.stats().clone(),
            table: self.table.stats().clone(),
            dissect: self.sink.dissection.map(|d| d.stats()),
        }
    }
}

/// What [`read_frames`] does with the frame it shows its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Analyse,
    /// Read but not analysed (e.g. another flow's frame).
    Skip,
    /// Stop before this frame.
    Stop,
}

/// Reads `reader` to its end (or damage), handing each frame to `engine` as `step` decides;
/// `checkpoint` runs every `CHECKPOINT_FRAMES` (2^16) frames (progress). Returns the frames read
/// and the error that ended the input early. The one read loop of files: `run`, the TUI's
/// background analysis and its payload extraction all use it.
pub fn read_frames<C: FlowConsumer + ?Sized>(
    reader: &mut CaptureReader,
    engine: &mut Engine<'_, C>,
    step: &mut dyn FnMut(&Frame<'_>) -> Step,
    checkpoint: &mut dyn FnMut(&CaptureReader),
) -> (u64, Option<CaptureError>) {
    let mut frames = 0u64;
    let mut ahead = Lookahead::new();
    let error = loop {
        let hint = ahead.advance(reader, &engine.table, &*engine.sink.consumer);
        // Borrowed where the reader wrote it, not moved out of the `Result`: a move copies
        // its narrow fields with wide reads, which the store buffer cannot serve.
        let next = reader.next_frame();
        let frame = match &next {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(_) => break next.err(),
        };
        let what = step(frame);
        if what == Step::Stop {
            break None;
        }
        frames += 1;
        if frames == 1 {
            // The first frame of a pcapng follows its interface block, which sets the
            // precision: raise it before the frame's messages are reported. (One copy: the
            // frame borrows the reader.)
            let (ts, linktype, orig_len, interface) =
                (frame.ts, frame.linktype, frame.orig_len, frame.interface);
            let data = frame.data.to_vec();
            engine.raise_precision(reader.ts_precision());
            if what == Step::Analyse {
                engine.frame(&Frame {
                    ts,
                    linktype,
                    orig_len,
                    interface,
                    data: &data,
                });
            }
        } else if what == Step::Analyse {
            engine.frame_hinted(frame, hint);
        }
        if frames % CHECKPOINT_FRAMES == 0 {
            engine.checkpoint();
            checkpoint(reader);
        }
    };
    engine.raise_precision(reader.ts_precision());
    (frames, error)
}

/// Runs the pipeline over `inputs` in order, handing flows to `consumer`.
pub fn run<C: FlowConsumer + ?Sized>(
    inputs: &[PathBuf],
    config: &PipelineConfig,
    consumer: &mut C,
    progress: &mut ProgressFn<'_>,
) -> RunStats {
    let mut engine = Engine::new(config, consumer);
    let mut reports = Vec::new();
    for path in inputs {
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(error) => {
                reports.push(InputReport {
                    path: path.clone(),
                    format: None,
                    gzip: false,
                    frames: 0,
                    error: Some(error),
                });
                continue;
            }
        };
        let (frames, error) =
            read_frames(&mut reader, &mut engine, &mut |_| Step::Analyse, &mut |r| {
                progress(path, r.bytes_consumed(), r.total_len())
            });
        progress(path, reader.bytes_consumed(), reader.total_len());
        reports.push(InputReport {
            path: path.clone(),
            format: Some(reader.format()),
            gzip: reader.is_gzip(),
            frames,
            error,
        });
    }
    let mut stats = engine.finish();
    stats.inputs = reports;
    stats
}

/// The consumer that ignores everything (a pipeline run for its side effects or statistics).
impl FlowConsumer for () {
    fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}
}

/// Two consumers fed the same stream, in order (e.g. the reports and a terminal UI); `Send`
/// so that the pair can be handed off to another thread like one consumer.
pub struct Tee<'a>(
    pub &'a mut (dyn FlowConsumer + Send),
    pub &'a mut (dyn FlowConsumer + Send),
);

impl FlowConsumer for Tee<'_> {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.0.flow(record, digits);
        self.1.flow(record, digits);
    }
    fn watermark(&mut self, watermark: (i64, u64)) {
        self.0.watermark(watermark);
        self.1.watermark(watermark);
    }
    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        self.0.message(ctx, msg);
        self.1.message(ctx, msg);
    }
    fn message_owned(&mut self, ctx: &MsgCtx, msg: Message) {
        self.0.message(ctx, &msg);
        self.1.message_owned(ctx, msg);
    }
    fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
        self.0.packet(ctx, payload);
        self.1.packet(ctx, payload);
    }
    fn packet_of_message(&mut self, ctx: &MsgCtx, payload: u32) {
        self.0.packet_of_message(ctx, payload);
        self.1.packet_of_message(ctx, payload);
    }
    fn prefetch(&self, live_index: u32) {
        self.0.prefetch(live_index);
        self.1.prefetch(live_index);
    }
    fn prefetch_referenced(&self, live_index: u32) {
        self.0.prefetch_referenced(live_index);
        self.1.prefetch_referenced(live_index);
    }
    fn live_capacity(&mut self, max_live: usize) {
        self.0.live_capacity(max_live);
        self.1.live_capacity(max_live);
    }
    fn flush(&mut self) {
        self.0.flush();
        self.1.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::capture::write::{FrameBuilder, PcapNgWriter};
    use std::net::SocketAddrV4;

    /// A pcapng of `n` UDP frames visiting 21 flows in turn, 1 ms apart, and where each
    /// frame's block ends.
    fn capture(n: u32) -> (Vec<u8>, Vec<usize>) {
        let mut w = PcapNgWriter::new(Vec::new(), "test").unwrap();
        let iface = w.add_interface("eth0", LinkType::ETHERNET, 0).unwrap();
        let mut fb = FrameBuilder::new();
        let mut frame = Vec::new();
        for i in 0..n {
            let a = SocketAddrV4::new([10, 0, 0, (i % 21) as u8].into(), 4000);
            let b = SocketAddrV4::new([192, 0, 2, 1].into(), 53);
            fb.udp_v4(a, b, &[i as u8; 20], &mut frame).unwrap();
            let ts = Ts(1_700_000_000_000_000_000 + i64::from(i) * 1_000_000);
            w.write_packet(iface, ts, &frame, frame.len() as u32)
                .unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut r = reader(&bytes);
        let mut ends = Vec::new();
        while let Ok(Some(_)) = r.next_frame() {
            ends.push(r.bytes_consumed() as usize);
        }
        assert_eq!(ends.len(), n as usize);
        (bytes, ends)
    }

    fn reader(bytes: &[u8]) -> CaptureReader {
        CaptureReader::from_read("test", Box::new(std::io::Cursor::new(bytes.to_vec()))).unwrap()
    }

    #[test]
    fn stop_counts_only_the_frames_shown_and_reads_no_further() {
        let (bytes, ends) = capture(40);
        let cut = &bytes[..ends[29] + 10]; // damaged after frame 30: never reached
        for stop_at in [0u64, 5, 16, 20] {
            let mut nothing = ();
            let mut engine = Engine::new(&PipelineConfig::default(), &mut nothing);
            let mut shown = 0u64;
            let (frames, error) = read_frames(
                &mut reader(cut),
                &mut engine,
                &mut |_| {
                    shown += 1;
                    if shown > stop_at {
                        Step::Stop
                    } else {
                        Step::Analyse
                    }
                },
                &mut |_| {},
            );
            assert_eq!(
                (frames, error.is_none()),
                (stop_at, true),
                "stop at {stop_at}"
            );
            assert_eq!(engine.frames(), stop_at);
        }
    }

    /// Remembers the cap it was told about.
    #[derive(Default)]
    struct Capacity(Option<usize>);

    impl FlowConsumer for Capacity {
        fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}
        fn live_capacity(&mut self, max_live: usize) {
            self.0 = Some(max_live);
        }
    }

    #[test]
    fn consumers_learn_the_flow_tables_cap_before_any_flow() {
        let mut config = PipelineConfig::default();
        config.flow.max_flows = 12_345;
        let (mut a, mut b) = (Capacity::default(), Capacity::default());
        let mut tee = Tee(&mut a, &mut b);
        drop(Engine::new(&config, &mut tee));
        assert_eq!((a.0, b.0), (Some(12_345), Some(12_345)));
    }

    /// Every call that carries a context, in order.
    #[derive(Default)]
    struct Calls(Vec<(&'static str, MsgCtx)>);

    impl FlowConsumer for Calls {
        fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}
        fn message(&mut self, ctx: &MsgCtx, _msg: &Message) {
            self.0.push(("message", *ctx));
        }
        fn packet(&mut self, ctx: &MsgCtx, _payload: u32) {
            self.0.push(("packet", *ctx));
        }
        fn packet_of_message(&mut self, ctx: &MsgCtx, _payload: u32) {
            self.0.push(("packet_of_message", *ctx));
        }
    }

    #[test]
    fn a_packet_completes_only_the_message_given_just_before_it_with_its_context() {
        let config = PipelineConfig {
            dissect: Some(Default::default()),
            ..Default::default()
        };
        let input = [Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap")];
        let mut calls = Calls::default();
        run(&input, &config, &mut calls, &mut |_, _, _| {});
        let completing = calls.0.windows(2).filter(|w| w[1].0 == "packet_of_message");
        for w in completing.clone() {
            assert_eq!(w[0], ("message", w[1].1), "after {:?}", w[0]);
        }
        let (merged, messages) = (
            completing.count(),
            calls.0.iter().filter(|c| c.0 == "message").count(),
        );
        // Most datagrams carry one message each, completed by their own packet.
        assert!(merged * 2 > messages, "{merged} of {messages} messages");
    }

    #[test]
    fn a_message_of_the_other_direction_swaps_the_ends() {
        let (a, b) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        let here = MsgCtx::new(Uid(7), 3, Dir::Orig, Ts(1), (a, b, Dir::Orig), 17, 6);
        let back = here.toward(Dir::Resp, Ts(2));
        assert_eq!(
            (back.src, back.dst, back.dir, back.ts),
            (b, a, Dir::Resp, Ts(2))
        );
        assert_eq!(back.toward(Dir::Orig, Ts(1)), here);
        assert_eq!(
            MsgCtx::new(Uid(7), 3, Dir::Resp, Ts(2), (a, b, Dir::Orig), 17, 6),
            back
        );
    }

    #[test]
    fn damage_ends_the_input_after_every_whole_frame_is_analysed() {
        let (bytes, ends) = capture(40);
        let cut = &bytes[..ends[20] + 10]; // frames 0..=20 whole, 21 cut short
        let mut nothing = ();
        let mut engine = Engine::new(&PipelineConfig::default(), &mut nothing);
        let (frames, error) = read_frames(
            &mut reader(cut),
            &mut engine,
            &mut |_| Step::Analyse,
            &mut |_| {},
        );
        assert_eq!(frames, 21);
        assert!(error.is_some());
        assert_eq!(engine.frames(), 21);
    }
}
