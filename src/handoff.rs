//! A [`FlowConsumer`] run on a second thread: the pipeline's thread reads, decodes, tracks
//! flows and dissects; the consumer's thread classifies, measures and formats the reports.
//!
//! The consumer sees exactly the calls it would see inline, in the same order (one FIFO of
//! batches), so its results are the same. Bounded: at most `IN_FLIGHT` (4) full batches of
//! `BATCH` (4096) events wait; a pipeline faster than its consumer blocks on the next hand-over.
//! Batches are sent back emptied and refilled, so no fresh memory is touched per batch.
//! If the consumer's thread panics, [`handed_off`] panics with it after the pipeline stops.

use crate::flow::FlowRecord;
use crate::pipeline::{FlowConsumer, MsgCtx};
use dissectors::registry::Message;
use std::convert::Infallible;
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Events per batch (under 1 MB). The consumer's thread is woken once per batch; 1024 was
/// about 5 % slower on the `large` capture (one alternating run, within this host's noise).
const BATCH: usize = 4096;

/// Full batches queued for the consumer at most.
const IN_FLIGHT: usize = 4;

/// How many events ahead the consumer's per-flow state is loaded (see [`crate::prefetch`]).
const PREFETCH_AHEAD: usize = 6;

/// One [`FlowConsumer`] call, owned.
#[derive(Debug)]
enum Event {
    Flow(FlowRecord, u8),
    Watermark((i64, u64)),
    /// A message, and the payload of its packet when that packet's call followed it with
    /// the same context (one event instead of two for most datagrams).
    Message(MsgCtx, Message, Option<u32>),
    Packet(MsgCtx, u32),
    Capacity(usize),
    /// [`FlowConsumer::flush`], passed on after the calls before it.
    Flush,
}

// Copied twice per message (into the batch, out of it): growing it costs every message.
const _: () = assert!(size_of::<Event>() <= 216, "Event grew");

impl Event {
    fn live_index(&self) -> Option<u32> {
        match self {
            Event::Message(ctx, ..) | Event::Packet(ctx, _) => Some(ctx.live_index),
            _ => None,
        }
    }

    fn deliver<C: FlowConsumer + ?Sized>(&self, to: &mut C) {
        match self {
            Event::Flow(record, digits) => to.flow(record, *digits),
            Event::Watermark(w) => to.watermark(*w),
            Event::Message(ctx, msg, packet) => {
                to.message(ctx, msg);
                if let Some(payload) = packet {
                    to.packet(ctx, *payload);
                }
            }
            Event::Packet(ctx, payload) => to.packet(ctx, *payload),
            Event::Capacity(max_live) => to.live_capacity(*max_live),
            Event::Flush => to.flush(),
        }
    }
}

/// Runs `run` with a [`FlowConsumer`] that forwards every call to `consumer` on another
/// thread; returns once `consumer` has seen them all. Falls back to delivering to `consumer`
/// on this thread if none can be started.
///
/// Generic over the consumer (not `dyn`): its thread's delivery loop is then compiled for the
/// concrete type, its calls direct and inlined (through `dyn`, a one-core run on the
/// simulator's `large` capture took 9–15 % more CPU). `run` gets the concrete [`Handoff`]
/// for the same reason on its side (see [`crate::pipeline::Engine`]).
pub fn handed_off<C, R>(consumer: &mut C, run: impl FnOnce(&mut Handoff<'_, C>) -> R) -> R
where
    C: FlowConsumer + Send,
{
    std::thread::scope(|scope| {
        let (full, queued) = mpsc::sync_channel::<Vec<Event>>(IN_FLIGHT);
        let (emptied, empty) = mpsc::channel();
        // The consumer goes over only once its thread runs, so it is still ours if none can.
        let (give, take) = mpsc::sync_channel::<&mut C>(1);
        let started = std::thread::Builder::new()
            .name("analysis".into())
            .spawn_scoped(scope, move || {
                let Ok(consumer) = take.recv() else { return };
                let _ = crate::recycle::serve(queued, emptied, |batch| {
                    deliver_all(batch, consumer);
                    Ok::<(), Infallible>(())
                });
            });
        let Ok(worker) = started else {
            return delivered_here(consumer, run);
        };
        if let Err(mpsc::SendError(consumer)) = give.send(consumer) {
            return delivered_here(consumer, run);
        }
        let mut handoff = Handoff::new(To::Thread {
            full: Some(full),
            empty,
        });
        let out = run(&mut handoff);
        handoff.send_batch();
        drop(handoff);
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
        out
    })
}

/// [`handed_off`] without a thread: the batches go to `consumer` on this one.
fn delivered_here<C: FlowConsumer, R>(
    consumer: &mut C,
    run: impl FnOnce(&mut Handoff<'_, C>) -> R,
) -> R {
    let mut here = Handoff::new(To::Inline(consumer));
    let out = run(&mut here);
    here.send_batch();
    out
}

/// Delivers a batch's events in order, loading the per-flow state of those a few ahead.
fn deliver_all<C: FlowConsumer + ?Sized>(batch: &[Event], to: &mut C) {
    for (i, event) in batch.iter().enumerate() {
        if let Some(ahead) = batch.get(i + PREFETCH_AHEAD).and_then(Event::live_index) {
            to.prefetch(ahead);
        }
        // Half as far ahead, the state prefetched then has arrived and can be followed.
        if let Some(ahead) = batch
            .get(i + PREFETCH_AHEAD / 2)
            .and_then(Event::live_index)
        {
            to.prefetch_referenced(ahead);
        }
        event.deliver(to);
    }
}

/// The pipeline's side of [`handed_off`]: gathers events into a batch and hands it over
/// when full.
pub struct Handoff<'a, C> {
    batch: Vec<Event>,
    to: To<'a, C>,
}

/// Where full batches go.
enum To<'a, C> {
    /// To the consumer's thread (`full`: `None` once it has gone, i.e. panicked), which
    /// sends them back emptied on `empty`.
    Thread {
        full: Option<SyncSender<Vec<Event>>>,
        empty: Receiver<Vec<Event>>,
    },
    /// To the consumer on this thread, when no other could be started.
    Inline(&'a mut C),
}

impl<'a, C: FlowConsumer> Handoff<'a, C> {
    fn new(to: To<'a, C>) -> Self {
        Handoff {
            batch: Vec::with_capacity(BATCH),
            to,
        }
    }

    /// Appends the event `make` builds, written straight into the batch. Built first and
    /// then pushed, an event went through the stack: its fields written there one by one
    /// and then copied out whole, and a wide read of narrow writes cannot be served before
    /// they reach the cache, which the stores of the frame's flow state (a cache miss, often)
    /// hold up. That copy, a `memmove` a message, cost ~9 % of the user time of a steady
    /// slice of the simulator's hour.
    #[inline(always)]
    fn push_with(&mut self, make: impl FnOnce() -> Event) {
        if self.batch.len() == self.batch.capacity() {
            self.batch.reserve(BATCH);
        }
        let len = self.batch.len();
        if let Some(slot) = self.batch.spare_capacity_mut().first_mut() {
            slot.write(make());
            // SAFETY: the element at `len`, the first past the length, was just written.
            unsafe { self.batch.set_len(len + 1) };
        }
        if self.batch.len() >= BATCH {
            self.send_batch();
        }
    }

    /// Hands the batch over, full or not (nothing when empty).
    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        match &mut self.to {
            To::Inline(consumer) => {
                deliver_all(&self.batch, *consumer);
                self.batch.clear();
            }
            To::Thread { full, empty } => {
                let batch = crate::recycle::take_refill(&mut self.batch, empty, BATCH);
                if full.as_ref().is_some_and(|s| s.send(batch).is_err()) {
                    // The consumer panicked: drop what follows; the join re-raises the panic.
                    *full = None;
                }
            }
        }
    }
}

impl<C: FlowConsumer> FlowConsumer for Handoff<'_, C> {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.push_with(|| Event::Flow(record.clone(), digits));
    }
    fn watermark(&mut self, watermark: (i64, u64)) {
        self.push_with(|| Event::Watermark(watermark));
    }
    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        self.message_owned(ctx, msg.clone());
    }
    fn message_owned(&mut self, ctx: &MsgCtx, msg: Message) {
        self.push_with(|| Event::Message(*ctx, msg, None));
    }
    fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
        self.push_with(|| Event::Packet(*ctx, payload));
    }
    /// Rides with its message's event, unless that has been handed over already.
    fn packet_of_message(&mut self, ctx: &MsgCtx, payload: u32) {
        if let Some(Event::Message(last, _, packet @ None)) = self.batch.last_mut() {
            debug_assert_eq!(last, ctx, "the packet of another message");
            *packet = Some(payload);
            return;
        }
        self.packet(ctx, payload);
    }
    fn live_capacity(&mut self, max_live: usize) {
        self.push_with(|| Event::Capacity(max_live));
    }
    /// Sends the batch now, and the consumer flushes in turn once it has it.
    fn flush(&mut self) {
        self.push_with(|| Event::Flush);
        self.send_batch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Dir, Uid};
    use crate::pipeline::{self, PipelineConfig};
    use crate::time::Ts;
    use std::path::PathBuf;

    /// Every call it gets, as text.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl FlowConsumer for Recorder {
        fn flow(&mut self, record: &FlowRecord, digits: u8) {
            self.0.push(format!("flow {record:?} {digits}"));
        }
        fn watermark(&mut self, w: (i64, u64)) {
            self.0.push(format!("watermark {w:?}"));
        }
        fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
            self.0.push(format!("message {ctx:?} {msg:?}"));
        }
        fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
            self.0.push(format!("packet {ctx:?} {payload}"));
        }
        fn live_capacity(&mut self, max_live: usize) {
            self.0.push(format!("capacity {max_live}"));
        }
        fn flush(&mut self) {
            self.0.push("flush".into());
        }
    }

    fn dissecting() -> PipelineConfig {
        PipelineConfig {
            dissect: Some(Default::default()),
            ..Default::default()
        }
    }

    fn run<C: FlowConsumer + ?Sized>(consumer: &mut C) {
        let inputs =
            [PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("captures/sim/churn/capture.pcapng.gz")];
        pipeline::run(&inputs, &dissecting(), consumer, &mut |_, _, _| {});
    }

    #[test]
    fn a_flush_reaches_the_consumer_after_the_calls_before_it() {
        let mut handed = Recorder::default();
        handed_off(&mut handed, |c| {
            c.live_capacity(3);
            c.flush();
            c.live_capacity(4);
        });
        assert_eq!(handed.0, ["capacity 3", "flush", "capacity 4"]);
    }

    #[test]
    fn the_consumer_gets_the_calls_it_would_get_inline_in_the_same_order() {
        let mut inline = Recorder::default();
        run(&mut inline);
        let mut handed = Recorder::default();
        handed_off(&mut handed, |c| run(c));
        assert!(inline.0.len() > 3 * BATCH, "{} calls", inline.0.len());
        for kind in ["flow", "watermark", "message", "packet", "capacity"] {
            assert!(inline.0.iter().any(|c| c.starts_with(kind)), "no {kind}");
        }
        assert_eq!(inline.0.len(), handed.0.len());
        assert!(inline.0 == handed.0, "the calls differ");
        // Batched but delivered on this thread, as when no thread can be started.
        let mut batched = Recorder::default();
        delivered_here(&mut batched, |c| run(c));
        assert!(inline.0 == batched.0, "the calls delivered inline differ");
    }

    /// The pipeline gives messages away (`message_owned`); a tee must still show each to
    /// both of its consumers, as a consumer alone would see them.
    #[test]
    fn both_consumers_of_a_tee_get_the_calls_one_would_get_alone() {
        let mut alone = Recorder::default();
        run(&mut alone);
        let (mut first, mut second) = (Recorder::default(), Recorder::default());
        run(&mut pipeline::Tee(&mut first, &mut second));
        assert!(
            alone.0.iter().any(|c| c.starts_with("message")),
            "no message"
        );
        assert!(first.0 == alone.0, "the first consumer's calls differ");
        assert!(second.0 == alone.0, "the second consumer's calls differ");
    }

    fn ctx(ts: i64) -> MsgCtx {
        let ends = (
            "10.0.0.5:4000".parse().unwrap(),
            "10.0.0.9:5000".parse().unwrap(),
            Dir::Orig,
        );
        MsgCtx::new(Uid(1), 0, Dir::Orig, Ts(ts), ends, 17, 6)
    }

    fn message() -> Message {
        Message {
            protocol: "skylark",
            msg_type: "keepalive".into(),
            type_code: None,
            txn_id: Some(9),
            call_id: None,
            len: 20,
            status: dissectors::registry::Status::Complete,
            class: None,
            detail: None,
            call: None,
        }
    }

    #[test]
    fn a_packet_rides_with_the_message_it_completed() {
        let (full, _queued) = mpsc::sync_channel(1);
        let (_emptied, empty) = mpsc::channel();
        let mut h: Handoff<'_, Recorder> = Handoff::new(To::Thread {
            full: Some(full),
            empty,
        });
        h.message(&ctx(1), &message());
        h.packet_of_message(&ctx(1), 20);
        assert_eq!(h.batch.len(), 1);
        // Any other packet is an event of its own.
        h.packet(&ctx(1), 20);
        h.message(&ctx(2), &message());
        h.packet(&ctx(2), 20);
        h.packet(&ctx(3), 20);
        assert_eq!(h.batch.len(), 5);
        let mut got = Recorder::default();
        deliver_all(&h.batch, &mut got);
        let mut want = Recorder::default();
        want.message(&ctx(1), &message());
        want.packet(&ctx(1), 20);
        want.packet(&ctx(1), 20);
        want.message(&ctx(2), &message());
        want.packet(&ctx(2), 20);
        want.packet(&ctx(3), 20);
        assert_eq!(got.0, want.0);
    }

    /// Each call, as `(what, live index)`, in order.
    #[derive(Default)]
    struct Prefetches(std::cell::RefCell<Vec<(&'static str, u32)>>);

    impl FlowConsumer for Prefetches {
        fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}
        fn message(&mut self, ctx: &MsgCtx, _msg: &Message) {
            self.0.get_mut().push(("message", ctx.live_index));
        }
        fn prefetch(&self, live_index: u32) {
            self.0.borrow_mut().push(("prefetch", live_index));
        }
        fn prefetch_referenced(&self, live_index: u32) {
            self.0.borrow_mut().push(("referenced", live_index));
        }
    }

    #[test]
    fn a_flows_state_is_loaded_ahead_of_its_event_and_then_what_it_refers_to() {
        let events = 20;
        let batch: Vec<Event> = (0..events)
            .map(|i| {
                let ctx = MsgCtx {
                    live_index: 100 + i,
                    ..ctx(1)
                };
                Event::Message(ctx, message(), None)
            })
            .collect();
        let mut got = Prefetches::default();
        deliver_all(&batch, &mut got);
        let calls = got.0.into_inner();
        let at = |what: &str, live: u32| calls.iter().position(|&c| c == (what, live));
        for live in 100..100 + events {
            let delivered = at("message", live).expect("delivered");
            // The first events come before their state could be asked for.
            if live >= 100 + PREFETCH_AHEAD as u32 {
                let (p, r) = (at("prefetch", live), at("referenced", live));
                assert!(p < r && r < Some(delivered), "{live}: {calls:?}");
            }
        }
    }

    /// Blocks at its first call until `go` says so.
    struct Stalled(mpsc::Receiver<()>);

    impl FlowConsumer for Stalled {
        fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}
        fn watermark(&mut self, _w: (i64, u64)) {
            let _ = self.0.recv();
        }
    }

    #[test]
    fn a_stalled_consumer_holds_the_pipeline_back_after_a_bounded_backlog() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (go, wait) = mpsc::channel();
        let sent = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                handed_off(&mut Stalled(wait), |c| {
                    for i in 0..100 * BATCH {
                        c.watermark((i as i64, 0));
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
            // Wait until the pipeline stops (blocked, or done if nothing held it back).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            let mut last = usize::MAX;
            let backlog = loop {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let now = sent.load(Ordering::Relaxed);
                if (now == last && now > 0) || std::time::Instant::now() > deadline {
                    break now;
                }
                last = now;
            };
            // Queued, being delivered, being filled.
            assert!(
                backlog <= (IN_FLIGHT + 2) * BATCH,
                "{backlog} events handed over"
            );
            drop(go);
        });
        assert_eq!(sent.load(Ordering::Relaxed), 100 * BATCH);
    }

    /// Panics at the first flow it gets.
    struct Failing;

    impl FlowConsumer for Failing {
        fn flow(&mut self, _record: &FlowRecord, _digits: u8) {
            panic!("consumer failed");
        }
    }

    #[test]
    fn a_panic_of_the_consumer_reaches_the_caller_once_the_run_is_over() {
        let mut ran = false;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handed_off(&mut Failing, |c| {
                run(c);
                ran = true;
            })
        }));
        let panic = outcome.expect_err("the consumer's panic was lost");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"consumer failed"));
        assert!(ran, "the run did not finish");
    }
}
