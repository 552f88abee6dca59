//! Live capture: a capture thread reading a [`CaptureSource`] hands batches of frames through
//! a bounded queue to the analysis (the same [`Engine`] and consumers as offline files).
//!
//! ```text
//!  capture thread                         calling thread (pipeline; runs unprivileged)
//!  source.next_frame() ─► Batch ─► sync_channel(MAX_QUEUED_BATCHES) ─► Recorder (-w)
//!  kernel stats (atomics)      ◄─ emptied batches (recycled) ◄─────── Engine
//!                                                                        │ with hand_off:
//!                                    consumer thread (flushed every 20 ms) ◄─┘ handoff
//! ```
//!
//! Guarantees: memory is bounded (at most [`MAX_QUEUED_BATCHES`] batches in the queue, each
//! at most [`MAX_BATCH_FRAMES_HARD`] frames and [`MAX_BATCH_BYTES_HARD`] bytes, plus the one
//! being filled); when the analysis falls behind, the capture thread drops frames and counts
//! them (`queue_dropped`), the kernel's own drops are read from the socket — both are in
//! every status and in the final [`LiveStats`], never silent. A stop (flag, `--duration`,
//! `--count`, a read error) ends capture, drains what the kernel already holds (bounded by
//! [`DRAIN_MAX`]), analyses and records every queued frame, then ends every open flow. Idle
//! flows end without packets ([`Engine::expire_idle`] once a second, wall clock).
//!
//! The consumer is any `Send` [`FlowConsumer`]: the CLI passes [`crate::analysis::Analysis`]
//! directly, or with the terminal UI's feed as `pipeline::Tee(&mut analysis, &mut feed)`
//! (`src/cli/live.rs`); `on_status` runs on the pipeline's thread between batches.
//!
//! Must not: parse packets in the capture thread (it may still hold privileges the parsers
//! must never have — the CLI drops them before calling [`run`]), or block the capture thread
//! on the analysis except when handing over the very last batch.

pub mod afpacket;
#[cfg(feature = "libpcap")]
pub mod libpcap;
pub mod privs;
pub mod record;
pub mod recording;
pub mod source;
#[cfg(test)]
mod tests;

pub use afpacket::OpenError;
pub use source::{CaptureSource, KernelStats, RawFrame, SourceError};

use crate::capture::Frame;
use crate::flow::FlowRecord;
use crate::pipeline::{Engine, FlowConsumer, MsgCtx, PipelineConfig, RunStats};
use crate::time::Ts;
use dissectors::registry::Message;
use record::Recorder;
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Batches waiting for the analysis at most.
pub const MAX_QUEUED_BATCHES: usize = 64;
/// A batch is handed over once it holds this many frames…
pub const MAX_BATCH_FRAMES: usize = 512;
/// …or this many bytes…
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// …or is this old (so a quiet link still shows up promptly).
pub const BATCH_MAX_AGE: Duration = Duration::from_millis(20);
/// While the queue is full a batch keeps filling up to these limits; beyond them frames are
/// dropped and counted as queue drops. Worst-case queued memory: 65 × 4 MiB.
pub const MAX_BATCH_FRAMES_HARD: usize = 4 * MAX_BATCH_FRAMES;
pub const MAX_BATCH_BYTES_HARD: usize = 4 * MAX_BATCH_BYTES;
/// After a stop, frames already in the kernel's buffer (stamped before the stop) are still
/// read for at most this long.
pub const DRAIN_MAX: Duration = Duration::from_secs(2);
/// How often the analysis wakes without frames (status, idle flows, stop conditions).
const TICK: Duration = Duration::from_millis(100);
/// How often the capture thread reads the kernel's counters.
const STATS_EVERY: Duration = Duration::from_millis(250);
/// How often idle flows are expired by the wall clock.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// What to capture for how long.
#[derive(Clone, Debug, Default)]
pub struct LiveConfig {
    /// Analysis configuration (`None`: record only, no parsing at all).
    pub pipeline: Option<PipelineConfig>,
    /// Stop after this much wall time.
    pub duration: Option<Duration>,
    /// Stop after capturing this many frames.
    pub count: Option<u64>,
    /// Call `on_status` this often (`None`: never).
    pub status_every: Option<Duration>,
    /// Keep only IPv4/IPv6 frames to or from these addresses (the lab's nodes on a shared
    /// loopback); others are counted in `LiveStats::filtered` and neither analysed nor
    /// recorded. At most [`MAX_ONLY_HOSTS`] addresses.
    pub only_hosts: Option<Vec<IpAddr>>,
    /// Run the consumer on a thread of its own ([`crate::handoff`]). Worth it with a core for
    /// each of the capture, the pipeline and the consumer ([`LiveConfig::cores_for_hand_off`]);
    /// with fewer, the extra thread takes CPU from the capture thread and the kernel drops
    /// more.
    pub hand_off: bool,
}

impl LiveConfig {
    /// Whether this machine has a core for each live thread (capture, pipeline, consumer).
    pub fn cores_for_hand_off() -> bool {
        std::thread::available_parallelism().is_ok_and(|n| n.get() >= 3)
    }
}

/// Addresses `only_hosts` may name at most.
pub const MAX_ONLY_HOSTS: usize = 4096;

/// Counters shared between the threads.
#[derive(Debug, Default)]
struct Shared {
    captured: AtomicU64,
    queue_dropped: AtomicU64,
    kernel_received: AtomicU64,
    kernel_dropped: AtomicU64,
}

/// Live counters, for status lines and the final summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub backend: &'static str,
    /// Wall time since capture started.
    pub elapsed: Duration,
    /// Frames read from the kernel.
    pub captured: u64,
    /// Frames analysed (and recorded with -w).
    pub analysed: u64,
    pub analysed_bytes: u64,
    /// Frames dropped because the analysis was behind.
    pub queue_dropped: u64,
    pub kernel: KernelStats,
    /// Flows ended and messages decoded so far.
    pub flows: u64,
    pub messages: u64,
    /// Frames recorded and files written (-w).
    pub recorded: (u64, u64),
    /// Frames left out by `only_hosts`.
    pub filtered: u64,
}

impl LiveStats {
    /// One status line (no trailing newline).
    pub fn line(&self, iface: &str) -> String {
        use crate::report::summary::thousands;
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.analysed as f64 / secs
        } else {
            0.0
        };
        format!(
            "live {iface}: {:.1} s, {} frames ({:.0}/s), {} bytes, {} flows ended, {} messages, \
             kernel drops {}, queue drops {}",
            secs,
            thousands(self.analysed),
            rate,
            thousands(self.analysed_bytes),
            thousands(self.flows),
            thousands(self.messages),
            thousands(self.kernel.dropped),
            thousands(self.queue_dropped),
        )
    }

    /// The live section appended to the final summary.
    pub fn render(&self, iface: &str) -> String {
        use crate::report::summary::thousands;
        let mut s = format!(
            "live capture\n  interface {iface} ({}), {:.1} s\n  frames captured {}, analysed {}\n  \
             kernel: received {}, dropped {}\n  queue dropped {}\n",
            self.backend,
            self.elapsed.as_secs_f64(),
            thousands(self.captured),
            thousands(self.analysed),
            thousands(self.kernel.received),
            thousands(self.kernel.dropped),
            thousands(self.queue_dropped),
        );
        if self.recorded.1 > 0 {
            s.push_str(&format!(
                "  recorded {} frames in {} file(s)\n",
                thousands(self.recorded.0),
                self.recorded.1
            ));
        }
        s
    }
}

/// What a live run produced.
#[derive(Default)]
pub struct Outcome {
    /// Pipeline statistics (frames analysed, decode, flows), as offline.
    pub stats: RunStats,
    pub live: LiveStats,
    /// Why capture ended early (interface down or gone, read error).
    pub source_error: Option<SourceError>,
    /// Why the recording failed (it stopped at that frame).
    pub record_error: Option<String>,
}

/// Frames in one hand-over, packed into one buffer.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// (timestamp, original length, start in `data`, captured length)
    frames: Vec<(Ts, u32, usize, usize)>,
}

impl Batch {
    fn push(&mut self, f: &RawFrame<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(f.data);
        self.frames.push((f.ts, f.orig_len, start, f.data.len()));
    }
    fn ready(&self) -> bool {
        self.frames.len() >= MAX_BATCH_FRAMES || self.data.len() >= MAX_BATCH_BYTES
    }
    fn full(&self) -> bool {
        self.frames.len() >= MAX_BATCH_FRAMES_HARD || self.data.len() >= MAX_BATCH_BYTES_HARD
    }
    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }
}

enum Msg {
    Frames(Batch),
    End(Option<SourceError>),
}

/// Counts flows and messages on their way to the real consumer.
struct Counting<'a> {
    inner: &'a mut dyn FlowConsumer,
    flows: &'a Cell<u64>,
    messages: &'a Cell<u64>,
}

impl FlowConsumer for Counting<'_> {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.flows.set(self.flows.get() + 1);
        self.inner.flow(record, digits);
    }
    fn watermark(&mut self, watermark: (i64, u64)) {
        self.inner.watermark(watermark);
    }
    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        self.messages.set(self.messages.get() + 1);
        self.inner.message(ctx, msg);
    }
    // Every other hook forwarded too: a default would silently drop it.
    fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
        self.inner.packet(ctx, payload);
    }
    fn packet_of_message(&mut self, ctx: &MsgCtx, payload: u32) {
        self.inner.packet_of_message(ctx, payload);
    }
    fn prefetch(&self, live_index: u32) {
        self.inner.prefetch(live_index);
    }
    fn prefetch_referenced(&self, live_index: u32) {
        self.inner.prefetch_referenced(live_index);
    }
    fn live_capacity(&mut self, max_live: usize) {
        self.inner.live_capacity(max_live);
    }
    fn flush(&mut self) {
        self.inner.flush();
    }
}

/// The capture thread: reads until stopped, hands batches over, reports the end.
fn capture_loop(
    mut source: Box<dyn CaptureSource>,
    stop: &AtomicBool,
    count: Option<u64>,
    shared: &Shared,
    tx: &SyncSender<Msg>,
    recycled: &Receiver<Batch>,
) {
    let mut batch = Batch::default();
    let mut batch_started = Instant::now();
    let mut stats_at = Instant::now();
    let mut drain_until: Option<Instant> = None;
    // Frames stamped after the stop are not "already captured": draining ends at the first.
    let mut stop_ts = Ts(i64::MAX);
    let mut captured = 0u64;
    let mut error = None;
    // Hands the batch over if the queue has room; a fresh (recycled) one takes its place.
    let try_hand_over = |batch: &mut Batch, started: &mut Instant| {
        if batch.frames.is_empty() {
            return;
        }
        let next = recycled.try_recv().unwrap_or_default();
        match tx.try_send(Msg::Frames(std::mem::replace(batch, next))) {
            Ok(()) => *started = Instant::now(),
            Err(TrySendError::Full(Msg::Frames(b)))
            | Err(TrySendError::Disconnected(Msg::Frames(b))) => {
                let mut spare = std::mem::replace(batch, b);
                spare.clear();
                drop(spare);
            }
            Err(_) => {}
        }
    };
    loop {
        if drain_until.is_none() && stop.load(Ordering::Relaxed) {
            drain_until = Some(Instant::now() + DRAIN_MAX);
            stop_ts = afpacket::now();
        }
        if drain_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        if count.is_some_and(|n| captured >= n) {
            break;
        }
        match source.next_frame() {
            Ok(Some(frame)) if frame.ts > stop_ts => break,
            Ok(Some(frame)) => {
                captured += 1;
                shared.captured.store(captured, Ordering::Relaxed);
                if batch.full() {
                    try_hand_over(&mut batch, &mut batch_started);
                }
                if batch.full() {
                    shared.queue_dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    batch.push(&frame);
                }
                if batch.ready() || batch_started.elapsed() >= BATCH_MAX_AGE {
                    try_hand_over(&mut batch, &mut batch_started);
                }
            }
            Ok(None) => {
                try_hand_over(&mut batch, &mut batch_started);
                if drain_until.is_some() {
                    break;
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if stats_at.elapsed() >= STATS_EVERY {
            stats_at = Instant::now();
            let k = source.stats();
            shared.kernel_received.store(k.received, Ordering::Relaxed);
            shared.kernel_dropped.store(k.dropped, Ordering::Relaxed);
        }
    }
    let k = source.stats();
    shared.kernel_received.store(k.received, Ordering::Relaxed);
    shared.kernel_dropped.store(k.dropped, Ordering::Relaxed);
    // The analysis drains the queue until End, so blocking here cannot deadlock.
    if !batch.frames.is_empty() {
        let _ = tx.send(Msg::Frames(batch));
    }
    let _ = tx.send(Msg::End(error));
}

/// Runs a live capture until `stop` is set (or duration, count, an error), analysing with
/// `consumer` (when `config.pipeline` is set) and recording with `recorder`. The capture
/// runs on its own thread, the pipeline (decode, flows, dissection) and `on_status` on the
/// calling thread, and `consumer` there too or, with `config.hand_off`, on a third
/// ([`crate::handoff`]), flushed every [`BATCH_MAX_AGE`].
pub fn run<C: FlowConsumer + Send>(
    source: Box<dyn CaptureSource>,
    config: &LiveConfig,
    stop: Arc<AtomicBool>,
    consumer: &mut C,
    recorder: Option<Recorder>,
    on_status: &mut dyn FnMut(&LiveStats),
) -> Outcome {
    if config.pipeline.is_none() || !config.hand_off {
        return run_inline(source, config, stop, consumer, recorder, on_status);
    }
    crate::handoff::handed_off(consumer, |consumer| {
        run_inline(source, config, stop, consumer, recorder, on_status)
    })
}

/// [`run`], with `consumer` called on the pipeline's thread.
fn run_inline(
    source: Box<dyn CaptureSource>,
    config: &LiveConfig,
    stop: Arc<AtomicBool>,
    consumer: &mut dyn FlowConsumer,
    mut recorder: Option<Recorder>,
    on_status: &mut dyn FnMut(&LiveStats),
) -> Outcome {
    let backend = source.backend();
    let linktype = source.linktype();
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::sync_channel::<Msg>(MAX_QUEUED_BATCHES);
    let (back_tx, back_rx) = mpsc::sync_channel::<Batch>(MAX_QUEUED_BATCHES + 2);
    let started = Instant::now();
    let thread = {
        let (stop, shared, count) = (stop.clone(), shared.clone(), config.count);
        std::thread::Builder::new()
            .name("p2ptrace-capture".into())
            .spawn(move || capture_loop(source, &stop, count, &shared, &tx, &back_rx))
    };
    let (flows, messages) = (Cell::new(0), Cell::new(0));
    let mut counting = Counting {
        inner: consumer,
        flows: &flows,
        messages: &messages,
    };
    let pipeline = config.pipeline.clone();
    // Timestamps are nanoseconds (the recording's pcapng says so too, so offline analysis
    // of it prints the same digits).
    let mut engine = pipeline.as_ref().map(|p| {
        let mut e = Engine::new(p, &mut counting);
        e.raise_precision(9);
        e
    });
    let mut live = LiveStats {
        backend,
        ..LiveStats::default()
    };
    let mut source_error = None;
    let mut record_error = None;
    let mut last_ts: Option<Ts> = None;
    let only: Option<std::collections::HashSet<IpAddr>> = config
        .only_hosts
        .as_ref()
        .map(|h| h.iter().copied().take(MAX_ONLY_HOSTS).collect());
    let mut status_at = Instant::now();
    let mut expire_at = Instant::now();
    let mut flushed_at = Instant::now();
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            source_error = Some(SourceError::Read {
                iface: String::new(),
                detail: format!("cannot start the capture thread: {e}"),
            });
            None
        }
    };
    while thread.is_some() {
        match rx.recv_timeout(TICK) {
            Ok(Msg::Frames(mut batch)) => {
                for &(ts, orig_len, start, len) in &batch.frames {
                    let Some(data) = batch.data.get(start..start + len) else {
                        continue;
                    };
                    if let Some(hosts) = &only {
                        let keep = crate::decode::ip_endpoints(linktype, data)
                            .is_some_and(|(a, b)| hosts.contains(&a) || hosts.contains(&b));
                        if !keep {
                            live.filtered += 1;
                            continue;
                        }
                    }
                    if let Some(r) = &mut recorder {
                        if let Err(e) = r.write(ts, data, orig_len) {
                            record_error = Some(e.to_string());
                            recorder = None;
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    live.analysed += 1;
                    live.analysed_bytes += u64::from(orig_len);
                    last_ts = Some(last_ts.map_or(ts, |t| t.max(ts)));
                    if let Some(e) = &mut engine {
                        e.frame(&Frame {
                            ts,
                            linktype,
                            orig_len,
                            interface: 0,
                            data,
                        });
                    }
                }
                batch.clear();
                let _ = back_tx.try_send(batch);
            }
            Ok(Msg::End(e)) => {
                source_error = e;
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if config.duration.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        if flushed_at.elapsed() >= BATCH_MAX_AGE {
            flushed_at = Instant::now();
            if let Some(e) = &mut engine {
                e.flush();
            }
        }
        if expire_at.elapsed() >= EXPIRE_EVERY {
            expire_at = Instant::now();
            if let Some(e) = &mut engine {
                // Never behind the newest frame: kernel and wall clocks are the same clock,
                // but the frame may carry a later stamp than our read of it.
                let now = afpacket::now();
                e.expire_idle(last_ts.map_or(now, |t| t.max(now)));
            }
        }
        if let Some(every) = config.status_every {
            if status_at.elapsed() >= every {
                status_at = Instant::now();
                fill(&mut live, &shared, started, &recorder);
                (live.flows, live.messages) = (flows.get(), messages.get());
                on_status(&live);
            }
        }
    }
    if let Some(t) = thread {
        let _ = t.join();
    }
    let stats = match engine {
        Some(e) => e.finish(),
        None => RunStats {
            frames: live.analysed,
            ts_precision: 9,
            ..RunStats::default()
        },
    };
    (live.flows, live.messages) = (flows.get(), messages.get());
    fill(&mut live, &shared, started, &recorder);
    if let Some(r) = recorder {
        if let Err(e) = r.finish() {
            record_error.get_or_insert(e.to_string());
        }
    }
    Outcome {
        stats,
        live,
        source_error,
        record_error,
    }
}

fn fill(live: &mut LiveStats, shared: &Shared, started: Instant, recorder: &Option<Recorder>) {
    live.elapsed = started.elapsed();
    live.captured = shared.captured.load(Ordering::Relaxed);
    live.queue_dropped = shared.queue_dropped.load(Ordering::Relaxed);
    live.kernel = KernelStats {
        received: shared.kernel_received.load(Ordering::Relaxed),
        dropped: shared.kernel_dropped.load(Ordering::Relaxed),
    };
    if let Some(r) = recorder {
        live.recorded = r.counts();
    }
}
