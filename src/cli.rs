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
    /// Run a whole overlay on loopback from a scenario and write labels.csv and events.csv.
    #[command(after_help = "Examples:\n  \
        p2ptrace lab basic-call --out out/\n  \
        p2ptrace lab conference --out out/\n  \
        p2ptrace lab my-scenario.toml --out out/   (format: docs/lab.md)")]
    Lab(LabArgs),
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
    /// Timer override, e.g. keepalive_s=5 (repeatable; the keys of docs/lab.md [timers]).
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
        Command::Peer(args) => peer(&args),
        Command::Lab(args) => lab(&args),
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

/// Installs the Ctrl-C handler that stops a driver (once per process).
fn stop_on_ctrl_c(commander: crate::peer::driver::Commander) {
    if let Err(e) = ctrlc::set_handler(move || commander.stop()) {
        eprintln!("p2ptrace: warning: cannot catch Ctrl-C ({e}); stop with SIGKILL");
    }
}

fn lab(args: &LabArgs) -> u8 {
    use crate::peer::driver::DriverConfig;
    use crate::peer::lab::{Lab, roles};
    use crate::peer::scenario::Scenario;
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("p2ptrace: error: scenario {e}");
            return 2;
        }
    };
    let factory = roles::factory();
    let lab = match Lab::new(
        &scenario,
        factory.as_ref(),
        &args.out,
        DriverConfig::default(),
    ) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
    };
    stop_on_ctrl_c(lab.commander());
    eprintln!(
        "p2ptrace: lab {}: {} nodes, stopping after {} s (Ctrl-C stops earlier)",
        scenario.name,
        lab.nodes().len(),
        scenario.stop_after.as_secs_f64()
    );
    match lab.run() {
        Ok(report) => {
            let _ = std::io::stdout()
                .lock()
                .write_all(report.render().as_bytes());
            if report.errors.is_empty() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            1
        }
    }
}

/// Parses the role options of `p2ptrace peer` into the spec of one node.
fn peer_timers(args: &PeerArgs) -> Result<crate::peer::scenario::Timers, String> {
    let mut timers = crate::peer::scenario::Timers::default();
    for t in &args.timer {
        timers.set(t)?;
    }
    Ok(timers)
}

fn parse_ls_key(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    let mut key = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return Err("--ls-key: expected 64 hex digits".into());
    }
    for (i, b) in key.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).unwrap_or_default();
        *b = u8::from_str_radix(pair, 16).map_err(|_| "--ls-key: not hex".to_string())?;
    }
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn default_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn peer(args: &PeerArgs) -> u8 {
    match build_peer(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            2
        }
    }
}

/// Builds the node `p2ptrace peer` runs: its name, role name and the node.
fn peer_node(
    args: &PeerArgs,
    factory: &dyn crate::peer::lab::factory::NodeFactory,
) -> Result<(String, &'static str, Box<dyn crate::peer::driver::Hosted>), String> {
    use crate::peer::auth::HashParams;
    use crate::peer::driver::Hosted;
    use crate::peer::lab::factory::{
        Account, ClientSpec, HomeSpec, LoginServerSpec, SuperNodeSpec,
    };
    use crate::peer::scenario::{HOME_PORT, LS_PORT, SN_PORT};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    let role_name = match args.role {
        PeerRole::LoginServer => "ls",
        PeerRole::Home => "home",
        PeerRole::Supernode => "sn",
        PeerRole::Client => "client",
    };
    let name = args.name.clone().unwrap_or_else(|| role_name.to_string());
    let seed = args.seed.unwrap_or_else(|| default_seed(&name));
    let timers = peer_timers(args)?;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listen = |port: u16| args.listen.unwrap_or(SocketAddr::new(local, port));
    let ls_key = args.ls_key.as_deref().map(parse_ls_key).transpose()?;
    let need = |v: Option<SocketAddr>, flag: &str| {
        v.ok_or_else(|| format!("{flag} ADDR is required for a client"))
    };
    let built: Result<Box<dyn Hosted>, _> = match args.role {
        PeerRole::LoginServer => {
            let mut accounts = Vec::new();
            for a in &args.account {
                let (user, password) = a
                    .split_once(':')
                    .ok_or_else(|| format!("--account '{a}': expected USER:PASSWORD"))?;
                accounts.push(Account {
                    user: user.to_string(),
                    password: password.to_string(),
                    buddies: Vec::new(),
                });
            }
            for b in &args.buddies {
                let (user, list) = b
                    .split_once('=')
                    .ok_or_else(|| format!("--buddies '{b}': expected USER=BUDDY,BUDDY"))?;
                let account = accounts
                    .iter_mut()
                    .find(|a| a.user == user)
                    .ok_or_else(|| format!("--buddies '{b}': no --account {user}"))?;
                account.buddies = list.split(',').map(str::to_string).collect();
            }
            let spec = LoginServerSpec {
                name: name.clone(),
                addr: listen(LS_PORT),
                state_dir: args.state.clone(),
                seed,
                hash_params: if args.fast_hash {
                    HashParams::FAST
                } else {
                    HashParams::DEFAULT
                },
                accounts,
                bootstrap: args.bootstrap.clone(),
                timers,
            };
            factory.login_server(&spec).map(|ls| {
                println!("login server public key: {}", hex(&ls.public_key));
                ls.node
            })
        }
        PeerRole::Home => factory.home(&HomeSpec {
            name: name.clone(),
            addr: listen(HOME_PORT),
            latest_version: args.app_version.clone(),
            timers,
        }),
        PeerRole::Supernode => factory.supernode(&SuperNodeSpec {
            name: name.clone(),
            addr: listen(SN_PORT),
            ls_key: ls_key.ok_or("--ls-key HEX is required for a super node")?,
            peers: args.bootstrap.clone(),
            state_dir: args.state.clone(),
            seed,
            timers,
        }),
        PeerRole::Client => {
            let port = 20_000 + u16::try_from(seed % 40_000).unwrap_or(0);
            factory.client(&ClientSpec {
                name: name.clone(),
                password: args
                    .password
                    .clone()
                    .ok_or("--password P is required for a client")?,
                addr: listen(port),
                state_dir: args.state.clone(),
                login_server: need(args.ls, "--ls")?,
                home: need(args.home, "--home")?,
                bootstrap: args.bootstrap.clone(),
                ls_key,
                version: args.app_version.clone(),
                auto_answer: !args.no_auto_answer,
                uplink_kbps: None,
                seed,
                timers,
            })
        }
    };
    let node = built.map_err(|e| format!("{name}: {e}"))?;
    Ok((name, role_name, node))
}

fn build_peer(args: &PeerArgs) -> Result<u8, String> {
    use crate::peer::driver::sink::{CsvSink, PrintSink, Tee};
    use crate::peer::driver::{Driver, DriverConfig};
    use crate::peer::lab::roles;

    let factory = roles::factory();
    let (name, role_name, node) = peer_node(args, factory.as_ref())?;
    let csv = match &args.out {
        Some(dir) => Some(CsvSink::create(dir).map_err(|(p, e)| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let sink = Tee(PrintSink::new(std::io::stdout()), csv);
    let mut driver = Driver::new(DriverConfig::default(), sink).map_err(|e| e.to_string())?;
    let id = driver.add(&name, node).map_err(|e| e.to_string())?;
    for w in driver.warnings() {
        eprintln!("p2ptrace: warning: {w}");
    }
    let (udp, tcp) = driver.bound(id);
    eprintln!(
        "p2ptrace: {name} ({}) on udp {udp:?} tcp {tcp:?}; Ctrl-C stops",
        role_name
    );
    let commander = driver.commander();
    stop_on_ctrl_c(commander.clone());
    if args.role == PeerRole::Client {
        // The one extra thread: blocking stdin reads, handed over through the channel.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                if let Err(e) = commander.send(id, &line) {
                    eprintln!("p2ptrace: {e}");
                    if commander.stopped() {
                        break;
                    }
                }
            }
        });
    }
    let ran = driver.run(None);
    let errors = driver.shutdown();
    for e in &errors {
        eprintln!("p2ptrace: error: {e}");
    }
    ran.map_err(|e| e.to_string())?;
    eprintln!("p2ptrace: {name} stopped; {:?}", driver.stats());
    Ok(if errors.is_empty() { 0 } else { 1 })
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

    #[test]
    fn ls_key_parses_64_hex_digits_only() {
        let key = parse_ls_key(&"ab".repeat(32)).unwrap();
        assert_eq!(key, [0xab; 32]);
        assert_eq!(hex(&key), "ab".repeat(32));
        assert!(parse_ls_key("abcd").is_err());
        assert!(parse_ls_key(&"zz".repeat(32)).is_err());
        assert!(parse_ls_key(&"é".repeat(32)).is_err());
    }

    /// Records the specs `p2ptrace peer` builds.
    #[derive(Default)]
    struct SpecLog(std::cell::RefCell<Vec<String>>);

    struct Inert;

    impl crate::peer::io::Node for Inert {
        fn listen(&self) -> crate::peer::io::Listen {
            crate::peer::io::Listen::default()
        }
        fn handle_input(&mut self, _: crate::peer::io::Input<'_>) {}
        fn poll_output(&mut self) -> crate::peer::io::Output {
            crate::peer::io::Output::Timeout(Ts(i64::MAX))
        }
    }

    impl crate::peer::driver::Hosted for Inert {}

    impl crate::peer::lab::factory::NodeFactory for SpecLog {
        fn login_server(
            &self,
            spec: &crate::peer::lab::factory::LoginServerSpec,
        ) -> Result<crate::peer::lab::factory::BuiltLoginServer, crate::peer::PeerError> {
            self.0.borrow_mut().push(format!("{spec:?}"));
            Ok(crate::peer::lab::factory::BuiltLoginServer {
                node: Box::new(Inert),
                public_key: [1; 32],
            })
        }
        fn home(
            &self,
            spec: &crate::peer::lab::factory::HomeSpec,
        ) -> Result<Box<dyn crate::peer::driver::Hosted>, crate::peer::PeerError> {
            self.0.borrow_mut().push(format!("{spec:?}"));
            Ok(Box::new(Inert))
        }
        fn supernode(
            &self,
            spec: &crate::peer::lab::factory::SuperNodeSpec,
        ) -> Result<Box<dyn crate::peer::driver::Hosted>, crate::peer::PeerError> {
            self.0.borrow_mut().push(format!("{spec:?}"));
            Ok(Box::new(Inert))
        }
        fn client(
            &self,
            spec: &crate::peer::lab::factory::ClientSpec,
        ) -> Result<Box<dyn crate::peer::driver::Hosted>, crate::peer::PeerError> {
            self.0.borrow_mut().push(format!("{spec:?}"));
            Ok(Box::new(Inert))
        }
    }

    #[track_caller]
    fn peer_err(args: &PeerArgs, f: &SpecLog) -> String {
        match peer_node(args, f) {
            Ok(_) => panic!("accepted {args:?}"),
            Err(e) => e,
        }
    }

    fn peer_args(args: &[&str]) -> PeerArgs {
        let cli = Cli::try_parse_from(["p2ptrace", "peer"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Peer(p) => *p,
            _ => panic!("not peer"),
        }
    }

    #[test]
    fn peer_options_become_node_specs() {
        let f = SpecLog::default();
        let args = peer_args(&[
            "login-server",
            "--account",
            "alice:pw:with:colons",
            "--account",
            "bob:x",
            "--buddies",
            "alice=bob,carol",
            "--fast-hash",
        ]);
        let (name, role, _) = peer_node(&args, &f).unwrap();
        assert_eq!((name.as_str(), role), ("ls", "ls"));
        let spec = f.0.borrow().last().cloned().unwrap();
        assert!(spec.contains("127.0.0.1:33034"), "{spec}");
        assert!(spec.contains("password: \"pw:with:colons\""), "{spec}");
        assert!(spec.contains("buddies: [\"bob\", \"carol\"]"), "{spec}");
        assert!(spec.contains("m_kib: 64"), "fast hash: {spec}");

        let bad = peer_args(&["login-server", "--buddies", "zed=bob"]);
        assert!(peer_err(&bad, &f).contains("--account zed"));
        let sn = peer_args(&["supernode"]);
        assert!(peer_err(&sn, &f).contains("--ls-key"));
        let key = "01".repeat(32);
        let sn = peer_args(&[
            "supernode",
            "--ls-key",
            &key,
            "--bootstrap",
            "127.0.0.9:33033",
        ]);
        peer_node(&sn, &f).unwrap();
        assert!(
            f.0.borrow()
                .last()
                .unwrap()
                .contains("peers: [127.0.0.9:33033]")
        );

        let client = peer_args(&["client", "--name", "alice", "--password", "pw"]);
        assert!(peer_err(&client, &f).contains("--ls"));
        let client = peer_args(&[
            "client",
            "--name",
            "alice",
            "--password",
            "pw",
            "--ls",
            "127.0.0.1:33034",
            "--home",
            "127.0.0.2:8080",
            "--listen",
            "127.0.0.4:40000",
            "--no-auto-answer",
        ]);
        let (name, _, _) = peer_node(&client, &f).unwrap();
        assert_eq!(name, "alice");
        let spec = f.0.borrow().last().cloned().unwrap();
        assert!(spec.contains("127.0.0.4:40000") && spec.contains("auto_answer: false"));
    }

    #[test]
    fn peer_and_lab_arguments_parse() {
        let cli = Cli::try_parse_from([
            "p2ptrace",
            "peer",
            "client",
            "--name",
            "alice",
            "--password",
            "pw",
            "--ls",
            "127.0.0.1:33034",
            "--home",
            "127.0.0.2:8080",
            "--bootstrap",
            "127.0.0.3:33033",
            "127.0.0.4:33033",
            "--timer",
            "keepalive_s=5",
        ])
        .unwrap();
        let Command::Peer(p) = cli.command else {
            panic!("not peer")
        };
        assert_eq!(p.role, PeerRole::Client);
        assert_eq!(p.bootstrap.len(), 2);
        assert_eq!(peer_timers(&p).unwrap().keepalive_s, Some(5));
        let cli = Cli::try_parse_from(["p2ptrace", "lab", "basic-call", "--out", "o"]).unwrap();
        assert!(matches!(cli.command, Command::Lab(_)));
    }
}
