//! Command-line interface: argument parsing and wiring only. Each subcommand builds a
//! pipeline configuration, runs it with its consumers, and maps the outcome to the exit codes
//! documented in the README (0 ok, 1 input unreadable, 2 usage, 3 input damaged part-way).

use crate::dissect::DissectConfig;
use crate::flow::{FlowConfig, FlowRecord, IdleTimeouts};
use crate::pipeline::{self, FlowConsumer, MsgCtx, PipelineConfig, RunStats};
use crate::report::messages_csv::MessageSelection;
use crate::report::summary::thousands;
use crate::report::top::{SortBy, TopFlows};
use crate::time::{SecsDisplay, Ts};
use clap::{Args, Parser, Subcommand};
use dissectors::registry::Message;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod analyze;
mod diff;
mod flows;
mod live;
mod peer;
mod phonehome;
mod score;
mod sim;
mod tui;

use analyze::analyze;
use flows::flows;
use peer::{lab, peer};
use sim::sim;

#[derive(Parser, Debug)]
#[command(
    name = "p2ptrace",
    version,
    about = "Packet-trace analyzer for peer-to-peer voice overlays",
    long_about = "Packet-trace analyzer for peer-to-peer voice overlays: reads pcap and pcapng \
                  captures (also gzip-compressed, or '-' for stdin), tracks bidirectional flows, \
                  dissects Skylark, STUN, DNS, HTTP and TLS, classifies login, lookup, \
                  signalling, keepalive and media traffic and reconstructs logins, lookups, \
                  calls and phone-home contacts; ships the Skylark reference peer and a \
                  network simulator that label the traffic they make, to score against.",
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
    /// Summarise captures: flows, messages by class, sessions and phone-home; with --csv,
    /// write the eight CSV reports (docs/csv.md).
    #[command(after_help = "Examples:\n  \
        p2ptrace analyze captures/voip-mix.pcap\n  \
        p2ptrace analyze captures/sim/one-nat/capture.pcapng.gz --csv out/\n  \
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
    /// Run one Skylark node (login server, home server, super node or client) on real
    /// sockets until Ctrl-C; a client reads commands from stdin.
    #[command(after_help = "Examples:\n  \
        p2ptrace peer login-server --listen 127.0.0.1:33034 --state ls/ --account alice:pw1 --account bob:pw2\n  \
        p2ptrace peer home --listen 127.0.0.2:8080\n  \
        p2ptrace peer supernode --listen 127.0.0.3:33033 --ls-key <HEX printed by the login server>\n  \
        p2ptrace peer client --name alice --password pw1 --listen 127.0.0.4:40000 \\\n      \
        --ls 127.0.0.1:33034 --home 127.0.0.2:8080 --bootstrap 127.0.0.3:33033\n\n\
        Client commands (stdin): lookup USER | call USER | hold | resume | hangup | \
        conference USER USER... | status")]
    Peer(Box<PeerArgs>),
    /// Run a whole overlay from a scenario on loopback (or, with --netns, on network
    /// namespaces with kernel NAT and firewalls) and write labels.csv and events.csv.
    #[command(after_help = "Examples:\n  \
        p2ptrace lab basic-call --out out/\n  \
        p2ptrace lab conference --out out/\n  \
        p2ptrace lab my-scenario.toml --out out/   (format: docs/lab.md)\n  \
        sudo p2ptrace lab basic-call --out out/ --capture   (also out/capture.pcapng, docs/live.md)\n  \
        sudo p2ptrace lab one-nat --netns --out out/   (namespaces, nftables NAT, docs/netlab.md)")]
    Lab(LabArgs),
    /// Run a scenario in the deterministic network simulator (NATs, firewalls, lossy links,
    /// real TCP) and write capture.pcapng, labels.csv and events.csv.
    #[command(after_help = "Examples:\n  \
        p2ptrace sim no-nat --out out/\n  \
        p2ptrace sim both-nat-udp-blocked --out out/ --capture-at core,alice,nat:alice\n  \
        p2ptrace sim large --out big/ --duration 10m\n  \
        p2ptrace sim my-scenario.toml --out out/ --seed 7   (format: docs/sim.md)\n\n\
        Built-in scenarios: no-nat, one-nat, both-nat-udp-blocked, conference, phone-home, \
        churn, large. Same scenario and seed: byte-identical outputs.")]
    Sim(SimArgs),
    /// The phone-home report: per client and home endpoint (login or home server, or one
    /// named with --home), contacts and their intervals.
    #[command(after_help = phonehome::AFTER_HELP)]
    Phonehome(phonehome::PhoneHomeArgs),
    /// Score the analyzer's classification against ground-truth labels (labels.csv).
    #[command(after_help = score::AFTER_HELP)]
    Score(score::ScoreArgs),
    /// Terminal UI over a capture: timeline, flows, messages, calls, lookups, phone-home,
    /// hosts and keepalives.
    #[command(after_help = "Examples:\n  \
        p2ptrace tui captures/sim/one-nat/capture.pcapng.gz\n  \
        p2ptrace tui trace.pcap --home 198.51.100.80 --no-color\n\n\
        Keys: ? shows them all; q quits. docs/tui.md describes the views.")]
    Tui(tui::TuiArgs),
    /// Compare two runs of a scenario side by side (e.g. `sim` and `lab --netns`): message
    /// mix, bytes per class, login time, call set-up latency, media path.
    #[command(after_help = diff::AFTER_HELP)]
    Diff(diff::DiffArgs),
    /// Capture an interface live and analyse it like `analyze` (root or CAP_NET_RAW; drops
    /// to --user once the capture is open). Ctrl-C or SIGTERM end it cleanly.
    #[command(after_help = "Examples:\n  \
        sudo p2ptrace live eth0\n  \
        sudo p2ptrace live eth0 --duration 10m --csv out/ -w out/trace.pcapng\n  \
        sudo p2ptrace live eth0 -w ring.pcapng --rotate-size 100M --rotate-files 10\n  \
        sudo p2ptrace live lo --count 1000 -q\n  \
        sudo p2ptrace live eth0 -f 'udp or tcp port 443'   (libpcap build)\n\n\
        Details: docs/live.md")]
    Live(Box<live::LiveArgs>),
    /// List capture interfaces: name, state, whether capture is permitted, addresses.
    #[command(after_help = "Examples:\n  \
        p2ptrace interfaces\n  \
        sudo p2ptrace interfaces   (capture permitted: yes)")]
    Interfaces(live::InterfacesArgs),
}

/// The role `p2ptrace peer` runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    LoginServer,
    Home,
    Supernode,
    Client,
}

#[derive(Args, Debug)]
pub struct PeerArgs {
    /// Which node to run.
    #[arg(value_enum)]
    pub role: PeerRole,
    /// Listening address (UDP and TCP for super nodes and clients). Defaults:
    /// 127.0.0.1 with port 33034 (login server), 8080 (home), 33033 (super node), or a
    /// port derived from the seed (client).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// State directory (account store and key, host cache and credential), loaded at start
    /// and saved at exit.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Node name (a client's user name). Default: the role name.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// RNG seed. Default: derived from the name.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Also write labels.csv and events.csv into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Timer override, e.g. keepalive_s=5 (repeatable; the keys of `docs/lab.md`, section `[timers]`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub timer: Vec<String>,
    /// Login server: an account to create, USER:PASSWORD (repeatable).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub account: Vec<String>,
    /// Login server: a buddy list, USER=BUDDY,BUDDY (repeatable).
    #[arg(long, value_name = "USER=BUDDIES")]
    pub buddies: Vec<String>,
    /// Login server: cheap password hashing (tests and labs only).
    #[arg(long)]
    pub fast_hash: bool,
    /// Super node, client: the login server's public key (64 hex digits, printed by
    /// `p2ptrace peer login-server`).
    #[arg(long, value_name = "HEX")]
    pub ls_key: Option<String>,
    /// Client: the login server's address.
    #[arg(long, value_name = "ADDR")]
    pub ls: Option<std::net::SocketAddr>,
    /// Client: the home server's address.
    #[arg(long, value_name = "ADDR")]
    pub home: Option<std::net::SocketAddr>,
    /// Login server, client: bootstrap super nodes; super node: other super nodes.
    #[arg(long, value_name = "ADDR", num_args = 1..)]
    pub bootstrap: Vec<std::net::SocketAddr>,
    /// Client: the account password.
    #[arg(long, value_name = "P")]
    pub password: Option<String>,
    /// Client: the software version it reports; home server: the latest version it
    /// announces.
    #[arg(long, value_name = "V", default_value = crate::peer::scenario::DEFAULT_VERSION)]
    pub app_version: String,
    /// Client: do not accept incoming calls automatically.
    #[arg(long)]
    pub no_auto_answer: bool,
}

#[derive(Args, Debug)]
pub struct LabArgs {
    /// A built-in scenario (basic-call, conference, promotion) or a scenario TOML file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: String,
    /// Directory for labels.csv and events.csv (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Run on real kernel networking (root): network namespaces, veths, nftables NAT and
    /// firewalls; SCENARIO is then a simulator scenario (no-nat, one-nat,
    /// both-nat-udp-blocked or a file). Also writes capture.pcapng (docs/netlab.md).
    #[arg(long)]
    pub netns: bool,
    /// With --netns: access links to capture besides the core (node names, comma-separated;
    /// default: every client).
    #[arg(long, value_name = "NODES", value_delimiter = ',', requires = "netns")]
    pub capture_at: Option<Vec<String>>,
    /// With --netns: run this long instead of the scenario's stop_after (e.g. 30s).
    #[arg(long, value_name = "T", value_parser = parse_sim_duration, requires = "netns")]
    pub duration: Option<std::time::Duration>,
    /// Also capture the lab's traffic on `lo` into DIR/capture.pcapng (root or
    /// CAP_NET_RAW): ground truth over the real kernel network stack.
    #[arg(long, conflicts_with = "netns")]
    pub capture: bool,
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// A built-in scenario or a scenario TOML file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: String,
    /// Directory for capture.pcapng, labels.csv and events.csv (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed for everything random (nodes, links, NAT ports, TCP ISNs, crowds).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Simulated time to run, e.g. 90s, 10m, 1h (default: the scenario's stop_after).
    #[arg(long, value_name = "T", value_parser = parse_sim_duration)]
    pub duration: Option<std::time::Duration>,
    /// Capture points: core (default), all, a node name, nat:NODE; comma-separated or
    /// repeated. One pcapng interface each.
    #[arg(long, value_name = "POINTS", value_delimiter = ',')]
    pub capture_at: Vec<String>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_sim_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::peer::scenario::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{s}': not a duration (e.g. 90s, 10m, 1h)"))
}

#[derive(Args, Debug, Clone)]
pub struct FlowOptions {
    /// Idle timeouts in seconds per protocol (tcp, udp, other), e.g. `udp=300,tcp=3600`, or
    /// `none` to disable them. Defaults: tcp=3600, udp=300, other=60.
    #[arg(long, value_name = "SPEC", value_parser = parse_idle_timeouts)]
    pub idle_timeout: Option<IdleTimeouts>,
    /// Live flows at most; beyond it the least recently active flow is evicted (and still
    /// reported, with end_reason=evicted).
    #[arg(long, value_name = "N", default_value_t = FlowConfig::default().max_flows,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_flows: usize,
}

impl FlowOptions {
    fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            flow: FlowConfig {
                idle: self.idle_timeout.unwrap_or_default(),
                max_flows: self.max_flows,
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
    /// Write the CSV reports into this directory (created if missing): flows, messages,
    /// logins, lookups, calls, keepalives, phonehome and hosts (docs/csv.md); only flows.csv
    /// with --no-dissect.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// Flow statistics only: no application-layer dissection (no messages.csv, no service
    /// column), for speed.
    #[arg(long, conflicts_with = "messages")]
    pub no_dissect: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// A home endpoint besides those learned from the traffic: ADDR, ADDR:PORT, CIDR or a
    /// host name pattern such as `*.example.com` (repeatable).
    #[arg(long, value_name = "ADDR|CIDR|NAME", value_parser = crate::classify::HomeSpec::parse)]
    pub home: Vec<crate::classify::HomeSpec>,
    #[command(flatten)]
    pub messages: MessagesOption,
    #[command(flatten)]
    pub flow: FlowOptions,
}

/// `--messages` (`analyze`, `live`): which messages messages.csv lists.
#[derive(Args, Debug, Clone, Default)]
pub struct MessagesOption {
    /// Which messages messages.csv lists, by class: `all` (default), `none`, the classes to
    /// list (`login,lookup,signalling`) or, each with `-`, those to leave out
    /// (`-keepalive,-media`); `unclassified` names messages without a class. The summary and
    /// the other reports count every message either way.
    #[arg(id = "messages", long = "messages", value_name = "CLASSES", allow_hyphen_values = true,
          requires = "csv", value_parser = MessageSelection::parse)]
    pub selection: Option<MessageSelection>,
}

impl MessagesOption {
    /// Applies the option to `analysis`'s messages.csv.
    pub fn apply(&self, analysis: &mut crate::analysis::Analysis) {
        if let Some(s) = self.selection {
            analysis.select_messages(s);
        }
    }
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
        Command::Peer(args) => peer(&args),
        Command::Lab(args) => lab(&args),
        Command::Sim(args) => sim(&args),
        Command::Score(args) => score::score(&args),
        Command::Phonehome(args) => phonehome::phonehome_cmd(&args),
        Command::Tui(args) => tui::tui(&args),
        Command::Diff(args) => diff::diff(&args),
        Command::Live(args) => live::live(&args),
        Command::Interfaces(args) => live::interfaces(&args),
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

/// Runs the pipeline over `inputs` with `consumer` on a second thread (see
/// [`crate::handoff`]), showing progress on stderr unless `quiet`.
fn run_with_progress<C: FlowConsumer + Send>(
    inputs: &[PathBuf],
    config: &PipelineConfig,
    consumer: &mut C,
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
    let stats = crate::handoff::handed_off(consumer, |consumer| {
        pipeline::run(inputs, config, consumer, &mut on_progress)
    });
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
