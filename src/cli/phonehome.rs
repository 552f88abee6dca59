//! `p2ptrace phonehome`: just the phone-home report — per client and home endpoint, how
//! often the client made contact and at what intervals — as an aligned table or CSV.

use super::*;
use crate::classify::{Classifier, HomeSpec};
use crate::measure::Measurements;
use crate::measure::phonehome;
use crate::pipeline::MsgCtx;

#[derive(Args, Debug)]
pub struct PhoneHomeArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed; '-' for stdin).
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// A home endpoint besides those learned from the traffic: ADDR, ADDR:PORT, CIDR or a
    /// host name pattern (matched against DNS, TLS SNI and HTTP Host). Repeatable.
    #[arg(long, value_name = "ADDR|CIDR|NAME", value_parser = HomeSpec::parse)]
    pub home: Vec<HomeSpec>,
    /// Print phonehome.csv to stdout instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub flow: FlowOptions,
}

pub const AFTER_HELP: &str = "Examples:\n  \
    p2ptrace phonehome captures/sim/phone-home/capture.pcapng.gz\n  \
    p2ptrace phonehome day.pcapng --home '*.vendor.example' --home 203.0.113.0/24\n  \
    p2ptrace phonehome day.pcapng --csv > phonehome.csv\n\n\
    A contact is one burst of traffic between a client and a home endpoint (packets with \
    payload less than 10 s apart, decoded or not); intervals are between the starts of \
    consecutive contacts.";

struct Consumer {
    classifier: Classifier,
    measure: Measurements,
}

impl FlowConsumer for Consumer {
    fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}

    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        self.measure
            .classify_and_observe(&mut self.classifier, ctx, msg);
    }

    fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
        self.measure.packet_uncached(&self.classifier, ctx, payload);
    }
}

pub fn phonehome_cmd(args: &PhoneHomeArgs) -> u8 {
    let mut consumer = Consumer {
        classifier: Classifier::new(args.home.clone()),
        measure: Measurements::default(),
    };
    let mut config = args.flow.pipeline_config();
    config.dissect = Some(DissectConfig::default());
    let stats = run_with_progress(&args.inputs, &config, &mut consumer, args.quiet);
    report_input_errors(&stats);
    let span = match (stats.first_ts, stats.last_ts) {
        (Some(a), Some(b)) => b.since(a),
        _ => 0,
    };
    let rows = consumer.measure.phonehome_rows(span, &consumer.classifier);
    let mut out = std::io::stdout().lock();
    let written = if args.csv {
        phonehome::write_csv(&rows, &mut out)
    } else {
        out.write_all(render(&rows, span).as_bytes())
    };
    // A closed stdout (piped into `head`) is not an analysis failure.
    let _ = written;
    stats.exit_code()
}

/// The aligned table.
fn render(rows: &[phonehome::Row], span_ns: i64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if rows.is_empty() {
        s.push_str("no phone-home traffic found (name home endpoints with --home)\n");
        return s;
    }
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    // Text columns as wide as their widest cell (IPv6 addresses, host names).
    let width = |title: &str, cell: &dyn Fn(&phonehome::Row) -> String| {
        rows.iter()
            .map(|r| cell(r).len())
            .fold(title.len(), usize::max)
    };
    let wc = width("client", &|r| r.client.to_string());
    let wh = width("home", &|r| r.home.to_string());
    let wn = width("home_name", &|r| r.home_name.clone());
    let _ = writeln!(
        s,
        "{:<wc$} {:<wh$} {:<wn$} {:>8} {:>8} {:>10} {:>10} {:>10}  kinds",
        "client", "home", "home_name", "contacts", "per_hour", "p50_s", "p90_s", "max_s"
    );
    for r in rows {
        let kinds: Vec<&str> = r.kinds.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(
            s,
            "{:<wc$} {:<wh$} {:<wn$} {:>8} {:>8.2} {:>10} {:>10} {:>10}  {}",
            r.client.to_string(),
            r.home.to_string(),
            r.home_name,
            r.contacts,
            r.contacts_per_hour,
            secs(r.interval_p50),
            secs(r.interval_p90),
            secs(r.interval_max),
            kinds.join(",")
        );
    }
    let _ = writeln!(
        s,
        "{} client–home pairs over {}",
        rows.len(),
        crate::time::human_secs(span_ns.max(0) as f64 / 1e9)
    );
    s
}
