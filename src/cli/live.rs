//! `p2ptrace live IFACE` and `p2ptrace interfaces`: capture an interface and analyse it with
//! the same pipeline and reports as `analyze` (see [`crate::live`]).

use super::*;
use crate::analysis::Analysis;
use crate::live::record::{RecordConfig, Recorder};
use crate::live::{CaptureSource, LiveConfig, OpenError, privs};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Reports `analyze --csv` writes after the run (opened by name at the end): created and
/// handed to the unprivileged user up front, so they can be written after the drop.
const LATE_REPORTS: [&str; 5] = [
    "phonehome.csv",
    "keepalives.csv",
    "hosts.csv",
    "logins.csv",
    "lookups.csv",
];
/// Reports opened before the drop (by [`Analysis::create`]).
const EARLY_REPORTS: [&str; 3] = ["flows.csv", "messages.csv", "calls.csv"];

/// Which capture backend reads the interface.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Linux AF_PACKET through pnet (default; no system libraries).
    Afpacket,
    /// libpcap (builds with --features libpcap): BPF filters, ring buffer.
    Libpcap,
}

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// The interface to capture (see `p2ptrace interfaces`).
    #[arg(value_name = "IFACE")]
    pub iface: String,
    /// Print a periodically refreshed text summary instead of the terminal UI (the UI opens
    /// only when stdin and stdout are terminals).
    #[arg(long)]
    pub no_tui: bool,
    /// Letters instead of colours for traffic classes in the terminal UI (also NO_COLOR).
    #[arg(long)]
    pub no_color: bool,
    /// BPF capture filter (tcpdump syntax); needs the libpcap build.
    #[arg(long, short = 'f', value_name = "BPF")]
    pub filter: Option<String>,
    /// Capture backend. Default: afpacket, or libpcap when --filter is given and built in.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Bytes kept of each frame (at most 262144).
    #[arg(long, value_name = "N", default_value_t = crate::capture::MAX_CAPLEN,
          value_parser = clap::value_parser!(u32).range(64..=i64::from(crate::capture::MAX_CAPLEN)))]
    pub snaplen: u32,
    /// libpcap: hand over each frame as it arrives instead of in blocks of up to 100 ms
    /// (lower latency; lower top rate, see docs/live.md). AF_PACKET always does.
    #[arg(long)]
    pub immediate: bool,
    /// Put the interface in promiscuous mode (default).
    #[arg(long, overrides_with = "no_promisc")]
    pub promisc: bool,
    /// Leave the interface's promiscuous mode alone.
    #[arg(long)]
    pub no_promisc: bool,
    /// Stop after this much time, e.g. 30s, 10m.
    #[arg(long, value_name = "T", value_parser = parse_sim_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop after capturing N frames.
    #[arg(long, short = 'c', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Record the frames analysed to this pcapng file.
    #[arg(long, short = 'w', value_name = "FILE.pcapng")]
    pub write: Option<PathBuf>,
    /// With -w: start a new file when the current one reaches SIZE (e.g. 100M, 1G, 5000k).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "write")]
    pub rotate_size: Option<u64>,
    /// With -w: start a new file every T of capture time (e.g. 60s, 1h).
    #[arg(long, value_name = "T", value_parser = parse_sim_duration, requires = "write")]
    pub rotate_time: Option<std::time::Duration>,
    /// With --rotate-size/--rotate-time: keep only the newest N files (ring buffer).
    #[arg(long, value_name = "N", requires = "write",
          value_parser = clap::value_parser!(u64).range(1..=crate::live::record::MAX_ROTATE_FILES as u64))]
    pub rotate_files: Option<u64>,
    /// Write the same CSV reports as `analyze --csv` into this directory.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// When started as root: the user to become once the capture is open.
    #[arg(long, value_name = "USER", default_value = "nobody")]
    pub user: String,
    /// A home endpoint (as for `analyze`; repeatable).
    #[arg(long, value_name = "ADDR|CIDR|NAME", value_parser = crate::classify::HomeSpec::parse)]
    pub home: Vec<crate::classify::HomeSpec>,
    /// No periodic status lines.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub messages: MessagesOption,
    #[command(flatten)]
    pub flow: FlowOptions,
}

#[derive(Args, Debug)]
pub struct InterfacesArgs {}

/// Parses `1234`, `10k`, `100M`, `1G` (powers of 1000, like tcpdump -C) into bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1_000,
                'm' => 1_000_000,
                'g' => 1_000_000_000,
                _ => return Err(format!("'{s}': unknown unit (use k, M or G)")),
            };
            (t.get(..i).unwrap_or(""), m)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}': not a size (e.g. 100M)"))?;
    let bytes = n * mult as f64;
    if !(1.0..1e18).contains(&bytes) {
        return Err(format!("'{s}': must be a positive size"));
    }
    Ok(bytes as u64)
}

/// Opens the capture with the chosen backend, or says why not (and the exit status).
fn open_source(args: &LiveArgs) -> Result<Box<dyn CaptureSource>, (String, u8)> {
    let promisc = !args.no_promisc;
    let backend = args
        .backend
        .unwrap_or(if args.filter.is_some() && cfg!(feature = "libpcap") {
            Backend::Libpcap
        } else {
            Backend::Afpacket
        });
    let opened: Result<Box<dyn CaptureSource>, OpenError> = match backend {
        Backend::Afpacket => {
            if args.filter.is_some() {
                return Err((
                    "-f/--filter needs the libpcap backend (build with --features libpcap)".into(),
                    2,
                ));
            }
            crate::live::afpacket::AfPacket::open(&args.iface, args.snaplen, promisc)
                .map(|s| Box::new(s) as Box<dyn CaptureSource>)
        }
        #[cfg(feature = "libpcap")]
        Backend::Libpcap => crate::live::libpcap::Pcap::open(
            &args.iface,
            args.snaplen,
            promisc,
            args.immediate,
            args.filter.as_deref(),
        )
        .map(|s| Box::new(s) as Box<dyn CaptureSource>),
        #[cfg(not(feature = "libpcap"))]
        Backend::Libpcap => {
            return Err((
                "this p2ptrace was built without libpcap (build with --features libpcap)".into(),
                2,
            ));
        }
    };
    opened.map_err(|e| (e.to_string(), 1))
}

/// Creates (if needed) and hands every report file in `dir` to `target`.
/// The directory itself only when this run created it.
fn hand_over_reports(dir: &Path, created: bool, target: privs::Target) -> Result<(), String> {
    if created {
        privs::chown(dir, target)?;
    }
    for name in EARLY_REPORTS.iter().chain(&LATE_REPORTS) {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        privs::chown(&path, target)?;
    }
    Ok(())
}

/// Runs the capture with the terminal UI: analysis (reports + the UI's feed) on a worker
/// thread, the UI on this one. Quitting the UI stops the capture; reports are written after.
fn run_with_tui(
    args: &LiveArgs,
    source: Box<dyn CaptureSource>,
    live_config: LiveConfig,
    stop: Arc<AtomicBool>,
    mut analysis: Analysis,
    recorder: Option<Recorder>,
) -> Result<(crate::live::Outcome, Analysis), String> {
    use crate::tui::{Feed, Status};
    use std::sync::atomic::Ordering;
    let ui_status = Arc::new(Status::default());
    let (tx, rx) = crate::tui::feed::channel();
    // Dropping mode: a UI that falls behind loses display events (counted), never capture.
    let mut feed = Feed::new(tx, args.home.clone(), false, ui_status.clone());
    let (worker_status, worker_stop) = (ui_status.clone(), stop.clone());
    let worker = std::thread::Builder::new()
        .name("p2ptrace-analysis".into())
        .spawn(move || {
            let mut on_status = |s: &crate::live::LiveStats| {
                let st = &worker_status;
                st.packets.store(s.captured, Ordering::Relaxed);
                st.bytes.store(s.analysed_bytes, Ordering::Relaxed);
                st.kernel_drops.store(s.kernel.dropped, Ordering::Relaxed);
                st.queue_drops.store(s.queue_dropped, Ordering::Relaxed);
                if st.stop.load(Ordering::Relaxed) {
                    worker_stop.store(true, Ordering::Relaxed);
                }
            };
            let outcome = crate::live::run(
                source,
                &live_config,
                worker_stop.clone(),
                &mut crate::pipeline::Tee(&mut analysis, &mut feed),
                recorder,
                &mut on_status,
            );
            on_status(&outcome.live);
            if let Some(e) = &outcome.source_error {
                worker_status.set_error(e.to_string());
            }
            feed.finish();
            (outcome, analysis)
        })
        .map_err(|e| format!("cannot start the analysis thread: {e}"))?;
    let source = crate::tui::Source {
        name: args.iface.clone(),
        capture: None,
        live: true,
        color: crate::tui::color_wanted(args.no_color),
    };
    let ui = crate::tui::run_tui(source, rx, ui_status.clone());
    ui_status.stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let joined = worker
        .join()
        .map_err(|_| "the analysis thread failed".to_string())?;
    if let Err(e) = ui {
        eprintln!("p2ptrace: error: terminal: {e}");
    }
    Ok(joined)
}

pub(super) fn live(args: &LiveArgs) -> u8 {
    if args.rotate_files.is_some() && args.rotate_size.is_none() && args.rotate_time.is_none() {
        eprintln!("p2ptrace: error: --rotate-files needs --rotate-size or --rotate-time");
        return 2;
    }
    let source = match open_source(args) {
        Ok(s) => s,
        Err((msg, code)) => {
            eprintln!("p2ptrace: error: {msg}");
            return code;
        }
    };
    let csv_existed = args.csv.as_deref().is_some_and(Path::exists);
    let mut analysis = match Analysis::create(args.csv.as_deref(), true, args.home.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
    };
    args.messages.apply(&mut analysis);
    let recorder = match &args.write {
        Some(path) => {
            let config = RecordConfig {
                path: path.clone(),
                rotate_size: args.rotate_size,
                rotate_time: args
                    .rotate_time
                    .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                rotate_files: args.rotate_files.map(|n| n as usize),
            };
            match Recorder::create(config, &args.iface, source.linktype(), source.snaplen()) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("p2ptrace: error: cannot write {e}");
                    return 1;
                }
            }
        }
        None => None,
    };
    // Parsers never run as root: drop before the first frame is analysed.
    if privs::is_root() {
        let dropped = privs::lookup(&args.user).and_then(|target| {
            if target.uid == 0 {
                return Err(format!(
                    "--user {} is root: refusing to parse packets as root",
                    args.user
                ));
            }
            if let Some(r) = &recorder {
                privs::chown(&r.first_path(), target)?;
            }
            if let Some(dir) = &args.csv {
                hand_over_reports(dir, !csv_existed, target)?;
            }
            privs::drop_to(target)
        });
        if let Err(e) = dropped {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
        // Rotated files are created after the drop (as tcpdump -Z -C does).
        let rotates = args.rotate_size.is_some() || args.rotate_time.is_some();
        if let (Some(w), true) = (&args.write, rotates) {
            let dir = match w.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !privs::can_write_dir(&dir) {
                eprintln!(
                    "p2ptrace: error: rotating -w files as user {} needs a directory it can write ({} is not)",
                    args.user,
                    dir.display()
                );
                return 1;
            }
        }
    }
    if std::env::var_os("P2PTRACE_DEBUG_PRIVS").is_some() {
        eprintln!(
            "p2ptrace: debug: analysis thread {}",
            privs::thread_uid_line()
        );
        for (name, uid) in privs::all_threads_uid_lines() {
            eprintln!("p2ptrace: debug: thread {name} {uid}");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A second Ctrl-C ends at once (exit 130); the first asks for a clean stop.
    for (sig, conditional) in [
        (signal_hook::consts::SIGINT, true),
        (signal_hook::consts::SIGTERM, false),
    ] {
        let registered = if conditional {
            signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
                .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
        } else {
            signal_hook::flag::register(sig, stop.clone())
        };
        if let Err(e) = registered {
            eprintln!("p2ptrace: warning: cannot catch signal {sig} ({e})");
        }
    }
    let mut config = args.flow.pipeline_config();
    config.dissect = Some(DissectConfig::default());
    let live_config = LiveConfig {
        pipeline: Some(config),
        duration: args.duration,
        count: args.count,
        status_every: (!args.quiet).then_some(std::time::Duration::from_secs(1)),
        only_hosts: None,
        hand_off: LiveConfig::cores_for_hand_off(),
    };
    if !args.quiet {
        eprintln!(
            "p2ptrace: capturing on {} ({}); Ctrl-C stops",
            args.iface,
            source.backend()
        );
    }
    let tui = !args.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let (outcome, analysis) = if tui {
        let live_config = LiveConfig {
            status_every: Some(std::time::Duration::from_millis(200)),
            ..live_config
        };
        match run_with_tui(args, source, live_config, stop, analysis, recorder) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("p2ptrace: error: {e}");
                return 1;
            }
        }
    } else {
        let iface = args.iface.clone();
        let mut status = |s: &crate::live::LiveStats| eprintln!("p2ptrace: {}", s.line(&iface));
        let outcome = crate::live::run(
            source,
            &live_config,
            stop,
            &mut analysis,
            recorder,
            &mut status,
        );
        (outcome, analysis)
    };
    let mut code = 0;
    if let Some(e) = &outcome.source_error {
        eprintln!("p2ptrace: error: {e} (reports cover what was captured before)");
        code = 1;
    }
    if let Some(e) = &outcome.record_error {
        eprintln!("p2ptrace: error: recording stopped: {e}");
        code = 1;
    }
    let lost = outcome.live.kernel.dropped + outcome.live.queue_dropped;
    if lost > 0 {
        eprintln!(
            "p2ptrace: warning: {} frames lost (kernel {}, queue {})",
            thousands(lost),
            thousands(outcome.live.kernel.dropped),
            thousands(outcome.live.queue_dropped)
        );
    }
    let done = analysis.finish(&outcome.stats);
    super::analyze::print_finished(&done, args.csv.as_deref(), &mut code);
    let _ = std::io::stdout()
        .lock()
        .write_all(outcome.live.render(&args.iface).as_bytes());
    code
}

/// Whether this process may open packet sockets (tries one).
fn capture_permitted() -> bool {
    // SAFETY: socket(2) then close(2) of the descriptor it returned.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return false;
        }
        libc::close(fd);
    }
    true
}

pub(super) fn interfaces(_args: &InterfacesArgs) -> u8 {
    let permitted = capture_permitted();
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "CAPTURE".into(),
        "ADDRESSES".into(),
    ]];
    let mut nics = pnet_datalink::interfaces();
    nics.sort_by_key(|n| n.index);
    for nic in nics {
        let up = nic.is_up();
        let linktype = crate::live::afpacket::linktype_of(&nic.name);
        let capture = match (permitted, up, linktype) {
            (false, _, _) => "no: needs root or CAP_NET_RAW",
            (true, false, _) => "no: down",
            (true, true, None) => "no: link type",
            (true, true, Some(_)) => "yes",
        };
        let addrs: Vec<String> = nic.ips.iter().map(|ip| ip.to_string()).collect();
        rows.push([
            nic.name.clone(),
            if up { "up" } else { "down" }.into(),
            capture.into(),
            if addrs.is_empty() {
                "-".into()
            } else {
                addrs.join(" ")
            },
        ]);
    }
    let widths: [usize; 3] =
        std::array::from_fn(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0));
    let mut out = String::new();
    for r in &rows {
        out.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("10k"), Ok(10_000));
        assert_eq!(parse_size("1.5M"), Ok(1_500_000));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("10x").is_err());
        assert!(parse_size("M").is_err());
    }
}
