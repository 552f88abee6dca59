//! The live session with a scripted source: no root, no sockets.

use super::*;
use crate::capture::LinkType;
use crate::capture::write::FrameBuilder;
use std::net::SocketAddrV4;

/// Yields its frames (one per read), then read timeouts, or `fail` once they are used up.
struct Scripted {
    frames: Vec<Vec<u8>>,
    next: usize,
    fail: bool,
}

impl CaptureSource for Scripted {
    fn backend(&self) -> &'static str {
        "scripted"
    }
    fn linktype(&self) -> LinkType {
        LinkType::ETHERNET
    }
    fn snaplen(&self) -> u32 {
        65535
    }
    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, SourceError> {
        let i = self.next;
        match self.frames.get(i) {
            Some(data) => {
                self.next += 1;
                Ok(Some(RawFrame {
                    ts: Ts(1_700_000_000_000_000_000 + i as i64 * 1000),
                    orig_len: data.len() as u32,
                    data,
                }))
            }
            None if self.fail => Err(SourceError::Down { iface: "x0".into() }),
            None => {
                std::thread::sleep(Duration::from_millis(5));
                Ok(None)
            }
        }
    }
    fn stats(&mut self) -> KernelStats {
        KernelStats {
            received: self.next as u64,
            dropped: 0,
        }
    }
}

fn frames(n: usize) -> Vec<Vec<u8>> {
    let mut b = FrameBuilder::new();
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            let src = SocketAddrV4::new([10, 0, 0, 1].into(), 1000 + (i % 7) as u16);
            let dst = SocketAddrV4::new([10, 0, 0, 2].into(), 53);
            b.udp_v4(src, dst, b"hello", &mut out).unwrap();
            out
        })
        .collect()
}

#[derive(Default)]
struct Flows(u64);

impl FlowConsumer for Flows {
    fn flow(&mut self, _record: &FlowRecord, _digits: u8) {
        self.0 += 1;
    }
}

fn config(count: Option<u64>) -> LiveConfig {
    LiveConfig {
        pipeline: Some(PipelineConfig::default()),
        count,
        ..LiveConfig::default()
    }
}

#[test]
fn count_ends_the_run_and_every_frame_is_analysed_and_recorded() {
    for hand_off in [false, true] {
        count_run(hand_off);
    }
}

fn count_run(hand_off: bool) {
    let dir = tempfile::tempdir().unwrap();
    let source = Scripted {
        frames: frames(3000),
        next: 0,
        fail: false,
    };
    let rec = Recorder::create(
        record::RecordConfig {
            path: dir.path().join("r.pcapng"),
            ..Default::default()
        },
        "x0",
        LinkType::ETHERNET,
        65535,
    )
    .unwrap();
    let mut flows = Flows::default();
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = LiveConfig {
        hand_off,
        ..config(Some(2500))
    };
    let out = run(
        Box::new(source),
        &cfg,
        stop,
        &mut flows,
        Some(rec),
        &mut |_| {},
    );
    assert!(out.source_error.is_none() && out.record_error.is_none());
    assert_eq!(out.live.captured, 2500);
    assert_eq!(out.live.analysed, 2500);
    assert_eq!(out.live.queue_dropped, 0);
    assert_eq!(out.live.recorded, (2500, 1));
    assert_eq!(out.stats.frames, 2500);
    // Seven source ports: seven flows, all ended at the finish.
    assert_eq!(flows.0, 7);
    assert_eq!(out.live.flows, 7);
}

#[test]
fn a_read_error_ends_the_run_after_analysing_what_came_before() {
    let source = Scripted {
        frames: frames(10),
        next: 0,
        fail: true,
    };
    let mut flows = Flows::default();
    let out = run(
        Box::new(source),
        &config(None),
        Arc::new(AtomicBool::new(false)),
        &mut flows,
        None,
        &mut |_| {},
    );
    assert!(matches!(out.source_error, Some(SourceError::Down { .. })));
    assert_eq!(out.live.analysed, 10);
    assert_eq!(flows.0, 7);
}

#[test]
fn the_stop_flag_ends_an_idle_capture_and_status_is_reported() {
    let source = Scripted {
        frames: Vec::new(),
        next: 0,
        fail: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut statuses = 0;
    let cfg = LiveConfig {
        status_every: Some(Duration::from_millis(100)),
        ..config(None)
    };
    let out = run(
        Box::new(source),
        &cfg,
        stop,
        &mut Flows::default(),
        None,
        &mut |s| {
            statuses += 1;
            assert!(s.line("x0").contains("kernel drops 0, queue drops 0"));
            if statuses == 3 {
                flag.store(true, Ordering::Relaxed);
            }
        },
    );
    assert!(statuses >= 3);
    assert!(out.source_error.is_none());
    assert!(out.live.render("x0").contains("interface x0 (scripted)"));
}

#[test]
fn only_hosts_keeps_frames_of_the_named_addresses() {
    let mut b = FrameBuilder::new();
    let mut keep = Vec::new();
    let mut other = Vec::new();
    let a = SocketAddrV4::new([127, 77, 0, 5].into(), 4000);
    let c = SocketAddrV4::new([127, 0, 0, 1].into(), 4000);
    b.udp_v4(a, c, b"x", &mut keep).unwrap();
    b.udp_v4(c, c, b"x", &mut other).unwrap();
    let source = Scripted {
        frames: vec![keep, other.clone(), other],
        next: 0,
        fail: false,
    };
    let cfg = LiveConfig {
        only_hosts: Some(vec![IpAddr::from([127, 77, 0, 5])]),
        ..config(Some(3))
    };
    let out = run(
        Box::new(source),
        &cfg,
        Arc::new(AtomicBool::new(false)),
        &mut Flows::default(),
        None,
        &mut |_| {},
    );
    assert_eq!((out.live.analysed, out.live.filtered), (1, 2));
}

#[test]
fn ip_ends_reads_the_addresses_and_refuses_short_frames() {
    let mut b = FrameBuilder::new();
    let mut f = Vec::new();
    let a = SocketAddrV4::new([10, 0, 0, 1].into(), 1);
    let d = SocketAddrV4::new([10, 0, 0, 2].into(), 2);
    b.udp_v4(a, d, b"", &mut f).unwrap();
    assert_eq!(
        crate::decode::ip_endpoints(LinkType::ETHERNET, &f),
        Some((IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])))
    );
    for cut in 0..34 {
        assert_eq!(
            crate::decode::ip_endpoints(LinkType::ETHERNET, &f[..cut]),
            None,
            "{cut}"
        );
    }
    assert!(crate::decode::ip_endpoints(LinkType::RAW, &f[14..]).is_some());
}

/// Counts ended flows where another thread can see them.
struct SharedFlows(Arc<AtomicU64>);

impl FlowConsumer for SharedFlows {
    fn flow(&mut self, _record: &FlowRecord, _digits: u8) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_quiet_link_still_reaches_the_handed_off_consumer_during_the_run() {
    // Seven flows, then silence: the first idle expiry (wall clock, a second in) ends them,
    // and the consumer on its own thread must see them while the capture still runs, not
    // only once it stops (seven events are far from a full hand-off batch).
    let source = Scripted {
        frames: frames(10),
        next: 0,
        fail: false,
    };
    let seen = Arc::new(AtomicU64::new(0));
    let mut consumer = SharedFlows(seen.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut seen_live = false;
    let cfg = LiveConfig {
        status_every: Some(Duration::from_millis(10)),
        duration: Some(Duration::from_secs(10)),
        hand_off: true,
        ..config(None)
    };
    let out = run(
        Box::new(source),
        &cfg,
        stop,
        &mut consumer,
        None,
        &mut |_| {
            if seen.load(Ordering::Relaxed) == 7 {
                seen_live = true;
                flag.store(true, Ordering::Relaxed);
            }
        },
    );
    assert!(seen_live, "the flows reached the consumer only at the end");
    assert!(out.live.elapsed < Duration::from_secs(10));
    assert_eq!((out.live.flows, seen.load(Ordering::Relaxed)), (7, 7));
}
