//! Command-line interface: argument parsing and wiring only. Each subcommand builds a
//! pipeline configuration, runs it with its consumers, and maps the outcome to the exit codes
//! documented in the README (0 ok, 1 input unreadable, 2 usage, 3 input damaged part-way).

use crate::dissect::DissectConfig;
use crate::flow::{Dir, Uid};
use crate::flow::{FlowConfig, FlowRecord, IdleTimeouts};
use crate::pipeline::{self, FlowConsumer, PipelineConfig, RunStats};
use crate::report::flows_csv::FlowsCsv;
use crate::report::messages_csv::MessagesCsv;
use crate::report::summary::{self, FlowTotals, thousands};
use crate::report::top::{SortBy, TopFlows};
use crate::time::{SecsDisplay, Ts};
use clap::{Args, Parser, Subcommand};
use dissectors::registry::Message;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "p2ptrace",
    version,
    about = "Packet-trace analyzer for peer-to-peer voice overlays",
    long_about = "Packet-trace analyzer for peer-to-peer voice overlays: reads pcap and pcapng \
                  captures (also gzip-compressed, or '-' for stdin), tracks bidirectional flows \
                  and exports flow statistics.",
    after_help = "Exit codes: 0 success; 1 an input cannot be read at all; 2 usage error; \
                  3 an input is damaged part-way (everything before the damage is analysed and \
                  all reports are written)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Summarise captures and dissect their messages; with --csv, write flows.csv and
    /// messages.csv.
    #[command(after_help = "Examples:\n  \
        p2ptrace analyze captures/skylark-call.pcap\n  \
        p2ptrace analyze day1.pcapng day2.pcapng.gz --csv out/\n  \
        tcpdump -i eth0 -w - | p2ptrace analyze - --csv out/\n  \
        p2ptrace analyze trace.pcap --idle-timeout none --csv out/\n  \
        p2ptrace analyze huge.pcap --no-dissect --csv out/   (flow statistics only)")]
    Analyze(AnalyzeArgs),
    /// Print the top flows as an aligned table (like `tshark -z conv`).
    #[command(after_help = "Examples:\n  \
        p2ptrace flows capture.pcap\n  \
        p2ptrace flows capture.pcap --sort pkts --limit 50\n  \
        p2ptrace flows capture.pcap --sort start --limit 0   (all flows)")]
    Flows(FlowsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct FlowOptions {
    /// Idle timeouts in seconds per protocol (tcp, udp, other), e.g. `udp=300,tcp=3600`, or
    /// `none` to disable them. Defaults: tcp=3600, udp=300, other=60.
    #[arg(long, value_name = "SPEC", value_parser = parse_idle_timeouts)]
    pub idle_timeout: Option<IdleTimeouts>,
    /// Live flows at most; beyond it the least recently active flow is evicted (and still
    /// reported, with end_reason=evicted).
    #[arg(long, value_name = "N", default_value_t = FlowConfig::default().max_flows)]
    pub max_flows: usize,
}

impl FlowOptions {
    fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            flow: FlowConfig {
                idle: self.idle_timeout.unwrap_or_default(),
                max_flows: self.max_flows.max(1),
            },
            ..PipelineConfig::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed), read in order as one trace;
    /// `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Write CSV reports (flows.csv, messages.csv) into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// Flow statistics only: no application-layer dissection (no messages.csv, no service
    /// column), for speed.
    #[arg(long)]
    pub no_dissect: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub flow: FlowOptions,
}

#[derive(Args, Debug)]
pub struct FlowsArgs {
    /// Capture files, read in order as one trace; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Sort order.
    #[arg(long, value_enum, default_value_t = SortBy::Bytes)]
    pub sort: SortBy,
    /// Rows to print (0: all flows).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub flow: FlowOptions,
}

/// Parses `none` or `proto=secs[,proto=secs…]` (proto: tcp, udp, other/icmp; secs: a number
/// or `none`). Unnamed protocols keep their defaults.
pub fn parse_idle_timeouts(spec: &str) -> Result<IdleTimeouts, String> {
    let spec = spec.trim();
    if spec.eq_ignore_ascii_case("none") {
        return Ok(IdleTimeouts::NONE);
    }
    let mut t = IdleTimeouts::DEFAULT;
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (proto, value) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}': expected proto=seconds (e.g. udp=300) or none"))?;
        let value = value.trim();
        let nanos = if value.eq_ignore_ascii_case("none") {
            None
        } else {
            let secs: f64 = value
                .trim_end_matches('s')
                .parse()
                .map_err(|_| format!("'{value}': not a number of seconds"))?;
            if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                return Err(format!("'{value}': must be a positive number of seconds"));
            }
            Some((secs * 1e9) as i64)
        };
        match proto.trim().to_ascii_lowercase().as_str() {
            "tcp" => t.tcp = nanos,
            "udp" => t.udp = nanos,
            "other" | "icmp" => t.other = nanos,
            p => return Err(format!("'{p}': unknown protocol (use tcp, udp or other)")),
        }
    }
    Ok(t)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Analyze(args) => analyze(&args),
        Command::Flows(args) => flows(&args),
    };
    ExitCode::from(code)
}

/// A progress bar on stderr when it is a terminal and not `--quiet`.
fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Some(bar)
}

fn run_with_progress(
    inputs: &[PathBuf],
    config: &PipelineConfig,
    consumer: &mut dyn FlowConsumer,
    quiet: bool,
) -> RunStats {
    let bar = progress_bar(quiet);
    let mut current: Option<PathBuf> = None;
    let mut on_progress = |path: &Path, done: u64, total: Option<u64>| {
        if let Some(bar) = &bar {
            if current.as_deref() != Some(path) {
                current = Some(path.to_path_buf());
                bar.set_message(path.display().to_string());
                bar.set_length(total.unwrap_or(0));
            }
            bar.set_position(done);
        }
    };
    let stats = pipeline::run(inputs, config, consumer, &mut on_progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    stats
}

/// Prints each input error as one line on stderr.
fn report_input_errors(stats: &RunStats) {
    for input in &stats.inputs {
        if let Some(e) = &input.error {
            if e.is_fatal_at_start() {
                eprintln!("p2ptrace: error: {e}");
            } else {
                eprintln!(
                    "p2ptrace: warning: {e} (the {} frames before it were analysed)",
                    input.frames
                );
            }
        }
    }
}

struct AnalyzeConsumer {
    totals: FlowTotals,
    csv: Option<FlowsCsv>,
    messages: Option<MessagesCsv>,
    csv_error: Option<std::io::Error>,
}

impl FlowConsumer for AnalyzeConsumer {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.totals.add(record);
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.push(record, digits) {
                self.csv_error.get_or_insert(e);
            }
        }
    }

    fn watermark(&mut self, watermark: (i64, u64)) {
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.release_below(watermark) {
                self.csv_error.get_or_insert(e);
            }
        }
    }

    fn message(&mut self, uid: Uid, dir: Dir, ts: Ts, msg: &Message, digits: u8) {
        if let Some(w) = &mut self.messages {
            if let Err(e) = w.write(uid, dir, ts, msg, digits) {
                self.csv_error.get_or_insert(e);
            }
        }
    }
}

/// Creates `dir` and a CSV writer in it, or says on stderr why not.
fn create_report<W>(
    dir: &Path,
    name: &str,
    create: impl FnOnce(&Path) -> std::io::Result<W>,
) -> Result<W, u8> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| create(&path))
        .map_err(|e| {
            eprintln!("p2ptrace: error: cannot write {}: {e}", path.display());
            1
        })
}

fn analyze(args: &AnalyzeArgs) -> u8 {
    let dissect = !args.no_dissect;
    let mut consumer = AnalyzeConsumer {
        totals: FlowTotals::default(),
        csv: None,
        messages: None,
        csv_error: None,
    };
    if let Some(dir) = &args.csv {
        match create_report(dir, "flows.csv", FlowsCsv::create) {
            Ok(w) => consumer.csv = Some(w),
            Err(code) => return code,
        }
        if dissect {
            match create_report(dir, "messages.csv", MessagesCsv::create) {
                Ok(w) => consumer.messages = Some(w),
                Err(code) => return code,
            }
        }
    }
    let mut config = args.flow.pipeline_config();
    if dissect {
        config.dissect = Some(DissectConfig::default());
    }
    let stats = run_with_progress(&args.inputs, &config, &mut consumer, args.quiet);
    report_input_errors(&stats);
    let mut code = stats.exit_code();
    // Close the reports whatever happened: partial results are kept.
    let mut written = Vec::new();
    let mut failed = consumer.csv_error.take();
    if let Some(csv) = consumer.csv.take() {
        written.push((csv.rows(), "flows", "flows.csv"));
        if let Err(e) = csv.finish() {
            failed.get_or_insert(e);
        }
    }
    if let Some(m) = consumer.messages.take() {
        written.push((m.rows(), "messages", "messages.csv"));
        if let Err(e) = m.finish() {
            failed.get_or_insert(e);
        }
    }
    if let Some(dir) = &args.csv {
        match failed {
            Some(e) => {
                eprintln!("p2ptrace: error: writing reports in {}: {e}", dir.display());
                code = 1;
            }
            None => {
                for (rows, what, file) in written {
                    eprintln!(
                        "p2ptrace: wrote {} {what} to {}",
                        thousands(rows),
                        dir.join(file).display()
                    );
                }
            }
        }
    }
    let text = summary::render(&stats, &consumer.totals);
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).is_err() {
        // stdout closed (e.g. piped into `head`): not an analysis failure.
    }
    code
}

struct TopConsumer {
    top: TopFlows,
}

impl FlowConsumer for TopConsumer {
    fn flow(&mut self, record: &FlowRecord, _digits: u8) {
        self.top.offer(record);
    }
}

fn flows(args: &FlowsArgs) -> u8 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeout_spec_parses() {
        assert_eq!(parse_idle_timeouts("none"), Ok(IdleTimeouts::NONE));
        let t = parse_idle_timeouts("udp=200,tcp=none").unwrap();
        assert_eq!(t.udp, Some(200 * Ts::NANOS_PER_SEC));
        assert_eq!(t.tcp, None);
        assert_eq!(t.other, IdleTimeouts::DEFAULT.other);
        assert_eq!(
            parse_idle_timeouts("icmp=0.5").unwrap().other,
            Some(500_000_000)
        );
        assert!(parse_idle_timeouts("udp").is_err());
        assert!(parse_idle_timeouts("udp=-1").is_err());
        assert!(parse_idle_timeouts("sctp=5").is_err());
        assert!(parse_idle_timeouts("udp=abc").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
