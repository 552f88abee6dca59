//! `p2ptrace flows`: the top flows as an aligned table.

use super::*;

struct TopConsumer {
    top: TopFlows,
}

impl FlowConsumer for TopConsumer {
    fn flow(&mut self, record: &FlowRecord, _digits: u8) {
        self.top.offer(record);
    }
}

pub(super) fn flows(args: &FlowsArgs) -> u8 {
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let mut consumer = TopConsumer {
        top: TopFlows::new(args.sort, limit),
    };
    let stats = run_with_progress(
        &args.inputs,
        &args.flow.pipeline_config(),
        &mut consumer,
        args.quiet,
    );
    report_input_errors(&stats);
    let seen = consumer.top.seen();
    let rows = consumer.top.into_sorted();
    let text = render_flow_table(&rows, seen, stats.first_ts.unwrap_or_default());
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    stats.exit_code()
}

/// The aligned table of `p2ptrace flows`: one row per flow, `->` counts from the
/// originator, `<-` from the responder, start relative to the first packet.
pub fn render_flow_table(rows: &[FlowRecord], seen: u64, t0: Ts) -> String {
    use crate::flow::Dir;
    use std::fmt::Write as _;
    let ep = |e: crate::flow::Endpoint| match e.addr.to_ip() {
        std::net::IpAddr::V6(a) => format!("[{a}]:{}", e.port),
        a => format!("{a}:{}", e.port),
    };
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let (o, s) = (r.dir(Dir::Orig), r.dir(Dir::Resp));
            [
                r.proto_name().to_string(),
                ep(r.orig),
                ep(r.resp),
                thousands(o.pkts),
                thousands(o.bytes),
                thousands(s.pkts),
                thousands(s.bytes),
                thousands(r.total_bytes()),
                SecsDisplay {
                    nanos: r.ts_start.since(t0),
                    digits: 6,
                }
                .to_string(),
                SecsDisplay {
                    nanos: r.duration_ns(),
                    digits: 6,
                }
                .to_string(),
            ]
        })
        .collect();
    let header = [
        "proto",
        "originator",
        "responder",
        "pkts->",
        "bytes->",
        "<-pkts",
        "<-bytes",
        "bytes",
        "start",
        "duration",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, row: &[&str]| {
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if i < 3 {
                let _ = write!(s, "{c:<w$}  ");
            } else {
                let _ = write!(s, "{c:>w$}  ");
            }
        }
        let trimmed = s.trim_end().len();
        s.truncate(trimmed);
        s.push('\n');
    };
    line(&mut s, &header);
    for row in &cells {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut s, &refs);
    }
    let _ = writeln!(
        s,
        "{} of {} flows",
        thousands(rows.len() as u64),
        thousands(seen)
    );
    s
}
