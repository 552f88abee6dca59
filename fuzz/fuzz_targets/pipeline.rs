//! Fuzz the whole analysis path on one input read as a capture, mirroring
//! `p2ptrace::pipeline::run` (which needs a file): reader → decoder → flow table → per-flow
//! dissection (content probes, TCP reassembly, every dissector) → flow end. Small flow and
//! budget caps make eviction and forced skips reachable; every message row is checked.
#![no_main]

mod common;

use dissectors::registry::Message;
use libfuzzer_sys::fuzz_target;
use p2ptrace::capture::CaptureReader;
use p2ptrace::decode::Decoder;
use p2ptrace::dissect::{Dissection, FlowApp};
use p2ptrace::flow::reassembly::StreamEnd;
use p2ptrace::flow::{Dir, EndReason, FlowRecord, FlowSink, FlowTable};
use p2ptrace::time::Ts;
use std::io::Cursor;

fn check(msg: &Message) {
    if let Some(d) = &msg.detail {
        assert!(d.len() <= 200, "detail too long: {d:?}");
        assert!(
            d.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "detail: {d:?}"
        );
    }
}

struct Sink {
    dissection: Dissection,
    flows: u64,
    messages: u64,
}

impl FlowSink<FlowApp> for Sink {
    fn flow_ended(&mut self, record: FlowRecord, mut app: FlowApp) {
        let how = match record.end {
            EndReason::Evicted => StreamEnd::Evicted,
            _ => StreamEnd::Timeout,
        };
        let messages = &mut self.messages;
        self.dissection.on_flow_end(
            &mut app,
            record.ts_end,
            how,
            &mut |_dir: Dir, _ts: Ts, msg: Message| {
                check(&msg);
                *messages += 1;
            },
        );
        if let Some(name) = app.service() {
            assert!(dissectors::registry::ALL.iter().any(|d| d.name == name));
        }
        self.flows += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_read("fuzz", Box::new(Cursor::new(data.to_vec())))
    else {
        return;
    };
    let config = common::small_config();
    let mut decoder = Decoder::new(config.defrag);
    let mut table = FlowTable::<FlowApp>::new(config.flow);
    let mut sink = Sink {
        dissection: Dissection::new(
            dissectors::registry::ALL,
            config.dissect.expect("dissection on"),
        ),
        flows: 0,
        messages: 0,
    };
    for _ in 0..common::MAX_FRAMES {
        let frame = match reader.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        if let Some(pkt) = decoder.decode(&frame) {
            let at = table.ingest(&pkt, &mut sink);
            let messages = &mut sink.messages;
            if let Some(app) = table.app_mut(at.slot) {
                sink.dissection.on_packet(
                    app,
                    &pkt,
                    at.dir,
                    &mut |_dir: Dir, _ts: Ts, msg: Message| {
                        check(&msg);
                        *messages += 1;
                    },
                );
            }
        }
    }
    table.finish(&mut sink);
    assert_eq!(table.live(), 0);
    let _ = (sink.dissection.stats(), sink.flows, decoder.stats());
});
