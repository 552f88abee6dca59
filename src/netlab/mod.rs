//! `p2ptrace lab SCENARIO --netns`: the Skylark overlay on real kernel networking — network
//! namespaces, veth links, nftables NAT and firewalls — with live captures and ground truth
//! (docs/netlab.md).
//!
//! What it does: reads a simulator scenario (`scenarios/sim/`, so a netlab run and a `sim`
//! run of the same file are comparable: same address plan, same nodes, seeds, timers and
//! timeline), builds the [`topo::Topology`] it describes, starts one capture per capture
//! point ([`capture::start_capture`]) and one conntrack reader per NAT router
//! ([`nat::ConntrackPoller`]), then runs every node in its own thread: the thread enters the
//! node's namespace (`setns(2)` changes only the calling thread), so every socket the
//! node's [`Driver`] creates — the listening ones and every later outgoing TCP connection —
//! lives in that namespace. The nodes' labels and events are merged, translated to what each
//! capture point sees (public addresses at the core), and written with the captures:
//! `capture.pcapng` + `labels.csv` (core), `capture-NODE.pcapng` + `labels-NODE.csv` (a
//! node's access link), `events.csv`, `topology.txt`.
//!
//! Guarantees: everything the run created is removed when it ends — normally, on an error,
//! on a panic (Drop guards) and on Ctrl-C (the handler stops the drivers, the normal path
//! then tears down); namespaces left by a crashed earlier run (its pid gone) are removed
//! before starting. Only addresses of the documentation and shared ranges inside the run's
//! own namespaces are used; nothing is routed to the host.
//!
//! Must not: change the host's own network namespace, or run without root (checked first).

pub mod capture;
pub mod nat;
pub mod topo;

use crate::peer::driver::sink::{Sink, Tally};
use crate::peer::driver::{Commander, Driver, DriverConfig, DriverStats};
use crate::peer::lab::Plan;
use crate::peer::lab::factory::{ClientSpec, HomeSpec, LoginServerSpec, SuperNodeSpec};
use crate::peer::lab::roles;
use crate::peer::truth::{Event, EventWriter, Label, LabelWriter, Transport};
use crate::sim::nat::NatKind;
use crate::sim::scenario::{Overrides, SimScenario, node_name};
use crate::time::Ts;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};
use topo::{HostDef, NatMode, Topology};

/// Nodes per netlab scenario (one namespace and one thread each).
pub const MAX_NODES: usize = 32;
/// Labels kept per node; beyond it labels are counted as dropped.
pub const MAX_LABELS_PER_NODE: usize = 2_000_000;
/// Events kept per node.
pub const MAX_EVENTS_PER_NODE: usize = 100_000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Servers and super nodes stop this long after the clients.
pub const SERVER_GRACE_NS: i64 = 300_000_000;
/// How long every node may take to bind its sockets.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a netlab run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlabError {
    #[error("lab --netns needs root (network namespaces and nftables)")]
    NotRoot,
    #[error("scenario {0}")]
    Scenario(String),
    #[error("{command}: {reason}")]
    Command { command: String, reason: String },
    #[error("{node}: {reason}")]
    Node { node: String, reason: String },
    #[error("{}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct NetlabOptions {
    /// A built-in simulator scenario name or a TOML file.
    pub scenario: String,
    pub out: PathBuf,
    /// Run this long instead of the scenario's `stop_after`.
    pub duration: Option<Duration>,
    /// Access links to capture besides the core (node names); `None`: every client.
    pub access: Option<Vec<String>>,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct NetlabReport {
    pub scenario: String,
    pub out: PathBuf,
    pub topology: String,
    pub elapsed: Duration,
    pub interrupted: bool,
    pub tally: Tally,
    /// Frames per capture point.
    pub frames: Vec<(String, u64)>,
    /// Labels per capture point, and labels left out of it (not translatable or firewalled).
    pub labels: Vec<(String, usize, usize)>,
    pub stats: Vec<(String, DriverStats)>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl NetlabReport {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lab --netns {}: ran {:.1} s{}, wrote {}",
            self.scenario,
            self.elapsed.as_secs_f64(),
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
            self.out.display()
        );
        s.push_str(&self.topology);
        for ((point, frames), (_, labels, left)) in self.frames.iter().zip(&self.labels) {
            let _ = writeln!(
                s,
                "capture {point}: {frames} frames, {labels} labels ({left} not seen there)"
            );
        }
        s.push_str(&self.tally.render());
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }
}

/// `p2ptrace lab --netns`: runs, prints the report; the exit status (0 ok, 1 failed or
/// errors during the run, 2 bad scenario, 130 interrupted before the run).
pub fn command(opts: &NetlabOptions) -> u8 {
    // SAFETY: geteuid(2) has no preconditions.
    let checked = if unsafe { libc::geteuid() } != 0 {
        Err(NetlabError::NotRoot)
    } else {
        load(opts).and_then(|s| capture_points(&s, opts).map(|_| ()))
    };
    if let Err(e) = checked {
        eprintln!("p2ptrace: error: {e}");
        return if matches!(e, NetlabError::Scenario(_)) {
            2
        } else {
            1
        };
    }
    eprintln!(
        "p2ptrace: lab --netns {}: building the network (Ctrl-C stops and tears down)",
        opts.scenario
    );
    match run(opts) {
        Ok(report) => {
            let _ = std::io::stdout()
                .lock()
                .write_all(report.render().as_bytes());
            u8::from(!report.errors.is_empty())
        }
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            match e {
                NetlabError::Scenario(_) => 2,
                NetlabError::Interrupted => 130,
                _ => 1,
            }
        }
    }
}

/// Moves the calling thread into network namespace `name` (`/run/netns/NAME`).
pub fn enter_netns(name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(Path::new("/run/netns").join(name))?;
    // SAFETY: setns(2) on a valid open fd; it changes only this thread's namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Set by Ctrl-C; every driver registered in [`COMMANDERS`] is stopped too.
static STOP: AtomicBool = AtomicBool::new(false);
static COMMANDERS: Mutex<Vec<Commander>> = Mutex::new(Vec::new());

fn install_ctrl_c() {
    // A second install (a second run in one process) fails harmlessly: the first handler
    // serves the same statics.
    let _ = ctrlc::set_handler(|| {
        STOP.store(true, Ordering::SeqCst);
        if let Ok(c) = COMMANDERS.lock() {
            for c in c.iter() {
                c.stop();
            }
        }
    });
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Keeps a node's labels and events in memory (bounded) for the merge.
#[derive(Default)]
struct MemSink {
    labels: Vec<Label>,
    events: Vec<Event>,
    dropped: u64,
}

impl Sink for MemSink {
    fn label(&mut self, label: &Label) {
        if self.labels.len() < MAX_LABELS_PER_NODE {
            self.labels.push(label.clone());
        } else {
            self.dropped += 1;
        }
    }
    fn event(&mut self, event: &Event) {
        if self.events.len() < MAX_EVENTS_PER_NODE {
            self.events.push(event.clone());
        } else {
            self.dropped += 1;
        }
    }
}

enum Spec {
    LoginServer(LoginServerSpec),
    Home(HomeSpec),
    SuperNode(SuperNodeSpec),
    Client(ClientSpec),
}

enum Ready {
    Up {
        commander: Commander,
        ls_key: Option<[u8; 32]>,
    },
    Failed(String),
}

struct Outcome {
    name: String,
    labels: Vec<Label>,
    events: Vec<Event>,
    stats: DriverStats,
    warnings: Vec<String>,
    errors: Vec<String>,
}

/// One node's thread: enter the namespace, build and bind, report ready, wait for the start
/// time, run the node's part of the timeline, shut down.
fn node_thread(
    name: String,
    ns: String,
    spec: Spec,
    steps: Vec<(Duration, String)>,
    ready: mpsc::Sender<Ready>,
    go: mpsc::Receiver<Option<(Ts, Ts)>>,
) -> Outcome {
    let mut out = Outcome {
        name: name.clone(),
        labels: Vec::new(),
        events: Vec::new(),
        stats: DriverStats::default(),
        warnings: Vec::new(),
        errors: Vec::new(),
    };
    let fail = |out: &mut Outcome, e: String| {
        let _ = ready.send(Ready::Failed(e.clone()));
        out.errors.push(e);
    };
    if let Err(e) = enter_netns(&ns) {
        fail(&mut out, format!("enter namespace {ns}: {e}"));
        return out;
    }
    let factory = roles::factory();
    let mut ls_key = None;
    let built = match &spec {
        Spec::LoginServer(s) => factory.login_server(s).map(|b| {
            ls_key = Some(b.public_key);
            b.node
        }),
        Spec::Home(s) => factory.home(s),
        Spec::SuperNode(s) => factory.supernode(s),
        Spec::Client(s) => factory.client(s),
    };
    let node = match built {
        Ok(n) => n,
        Err(e) => {
            fail(&mut out, e.to_string());
            return out;
        }
    };
    let mut driver = match Driver::new(DriverConfig::default(), MemSink::default()) {
        Ok(d) => d,
        Err(e) => {
            fail(&mut out, e.to_string());
            return out;
        }
    };
    let id = match driver.add(&name, node) {
        Ok(id) => id,
        Err(e) => {
            fail(&mut out, e.to_string());
            return out;
        }
    };
    let _ = ready.send(Ready::Up {
        commander: driver.commander(),
        ls_key,
    });
    let Ok(Some((t0, mut stop_at))) = go.recv() else {
        return out;
    };
    if !matches!(spec, Spec::Client(_)) {
        // Clients leave first, as they do in one driver: a server closing first would make
        // a still-running client note a lost super node.
        stop_at = stop_at.add_nanos(SERVER_GRACE_NS);
    }
    std::thread::sleep(driver.clock().until(t0));
    for (at, cmd) in &steps {
        let at = t0.add_nanos(i64::try_from(at.as_nanos()).unwrap_or(i64::MAX));
        if let Err(e) = driver.schedule(at, id, cmd) {
            out.errors.push(format!("step '{cmd}': {e}"));
        }
    }
    if let Err(e) = driver.run(Some(stop_at)) {
        out.errors.push(e.to_string());
    }
    out.errors.extend(driver.shutdown());
    out.stats = driver.stats().clone();
    out.warnings = driver.warnings().to_vec();
    let sink = driver.into_sink();
    if sink.dropped > 0 {
        out.warnings.push(format!(
            "{} labels or events over the limit dropped",
            sink.dropped
        ));
    }
    out.labels = sink.labels;
    out.events = sink.events;
    out
}

/// The simulator's IPv4 address plan (`src/sim/run.rs`), so labels of both runs name the
/// same hosts: login server 198.51.100.10, home 198.51.100.80, super nodes 203.0.113.N,
/// public clients and NAT routers 100.64.0.N, NATed clients 192.168.1.2.
fn plan_addresses(s: &SimScenario) -> Vec<(Ipv4Addr, Option<Ipv4Addr>)> {
    let sns = s.base.supernodes.len();
    let mut next_public = 0u32;
    let mut public = || {
        let j = next_public;
        next_public += 1;
        Ipv4Addr::new(100, 64, (j / 250) as u8, (1 + j % 250) as u8)
    };
    s.net
        .iter()
        .enumerate()
        .map(|(i, net)| match i {
            0 => (Ipv4Addr::new(198, 51, 100, 10), None),
            1 => (Ipv4Addr::new(198, 51, 100, 80), None),
            i if i < 2 + sns => {
                let j = (i - 2) as u32;
                (
                    Ipv4Addr::new(203, 0, 113 + (j / 250) as u8, (1 + j % 250) as u8),
                    None,
                )
            }
            _ if net.nat.is_some() => (topo::SITE_HOST, Some(public())),
            _ => (public(), None),
        })
        .collect()
}

/// Loads and checks a scenario for the real network.
pub fn load(opts: &NetlabOptions) -> Result<SimScenario, NetlabError> {
    let o = Overrides {
        duration: opts.duration,
        ..Overrides::default()
    };
    let s =
        SimScenario::load(&opts.scenario, &o).map_err(|e| NetlabError::Scenario(e.to_string()))?;
    if s.ipv6 {
        return Err(NetlabError::Scenario(
            "ipv6: not supported with --netns".into(),
        ));
    }
    if s.node_count() > MAX_NODES {
        return Err(NetlabError::Scenario(format!(
            "{} nodes; --netns runs at most {MAX_NODES}",
            s.node_count()
        )));
    }
    if s.base.stop_after > MAX_DURATION {
        return Err(NetlabError::Scenario(format!(
            "stop_after: at most {} s with --netns",
            MAX_DURATION.as_secs()
        )));
    }
    for (i, n) in s.net.iter().enumerate() {
        if let Some(k) = n.nat
            && !matches!(k, NatKind::PortRestricted | NatKind::Symmetric)
        {
            return Err(NetlabError::Scenario(format!(
                "{}: nat = \"{}\": the kernel NAT gives port-restricted or symmetric",
                node_name(&s.base, i),
                k.as_str()
            )));
        }
    }
    Ok(s)
}

/// The capture points: `core` (None), then the access links of the nodes named in
/// `opts.access` (default: every client).
fn capture_points(
    s: &SimScenario,
    opts: &NetlabOptions,
) -> Result<Vec<(String, Option<usize>)>, NetlabError> {
    let mut points: Vec<(String, Option<usize>)> = vec![("core".into(), None)];
    let access: Vec<String> = match &opts.access {
        Some(v) => v.clone(),
        None => s.base.clients.iter().map(|c| c.name.clone()).collect(),
    };
    for a in &access {
        if a == "core" || points.iter().any(|(p, _)| p == a) {
            continue;
        }
        let Some(i) = (0..s.node_count()).find(|&i| node_name(&s.base, i) == a) else {
            return Err(NetlabError::Scenario(format!(
                "--capture-at {a}: no such node (core or a node name)"
            )));
        };
        points.push((a.clone(), Some(i)));
    }
    Ok(points)
}

/// Runs `opts` on real kernel networking.
pub fn run(opts: &NetlabOptions) -> Result<NetlabReport, NetlabError> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetlabError::NotRoot);
    }
    let s = load(opts)?;
    let points = capture_points(&s, opts)?;
    let started = Instant::now();
    // A Ctrl-C of an earlier run in this process is over.
    STOP.store(false, Ordering::SeqCst);
    install_ctrl_c();
    let mut warnings = Vec::new();
    let stale = topo::remove_stale();
    if !stale.is_empty() {
        warnings.push(format!("removed stale namespaces {}", stale.join(", ")));
    }
    let out = &opts.out;
    let out_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NetlabError::Output { path, source }
    };
    std::fs::create_dir_all(out).map_err(out_err(out))?;

    let addrs = plan_addresses(&s);
    let mut defs = Vec::new();
    for (i, net) in s.net.iter().enumerate() {
        let (ip, public) = addrs
            .get(i)
            .copied()
            .unwrap_or((Ipv4Addr::UNSPECIFIED, None));
        if net.start > Duration::ZERO {
            warnings.push(format!(
                "{}: start = {:?} ignored (every node starts at once)",
                node_name(&s.base, i),
                net.start
            ));
        }
        defs.push(HostDef {
            ip,
            nat: match (net.nat, public) {
                (Some(NatKind::Symmetric), Some(p)) => Some((NatMode::Symmetric, p)),
                (Some(_), Some(p)) => Some((NatMode::PortRestricted, p)),
                _ => None,
            },
            udp_blocked: net.udp_blocked,
            nat_udp_timeout: net.nat_udp_timeout,
            loss: net.link.loss,
            mtu: net.link.mtu,
        });
    }
    if s.net
        .iter()
        .any(|n| n.link.latency_ms > 0.0 || n.link.kbps > 0)
    {
        warnings
            .push("link latency, jitter and bandwidth are not emulated (loss and MTU are)".into());
    }
    if stopped() {
        return Err(NetlabError::Interrupted);
    }
    let mut topology = Topology::build(&defs)?;
    let topo_text = describe(&s, &topology, &defs);
    std::fs::write(out.join("topology.txt"), &topo_text)
        .map_err(out_err(&out.join("topology.txt")))?;

    // Capture points: the core bridge, then access links.
    let mut captures = Vec::new();
    for (p, host) in &points {
        let (ns, iface) = match host {
            None => (topology.core.clone(), topo::CORE_BRIDGE),
            Some(i) => (
                topology
                    .hosts
                    .get(*i)
                    .map(|h| h.ns.clone())
                    .unwrap_or_default(),
                "eth0",
            ),
        };
        captures.push(capture::start_capture(
            &ns,
            iface,
            p,
            &point_files(out, p, *host).0,
        )?);
    }
    let pollers: Vec<(usize, nat::ConntrackPoller)> = topology
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            h.nat_ns
                .as_ref()
                .map(|ns| (i, nat::ConntrackPoller::start(ns)))
        })
        .collect();

    // Node specs, as the simulator builds them.
    let plan = Plan::with_addresses(&s.base, |i| {
        IpAddr::V4(addrs.get(i).map_or(Ipv4Addr::UNSPECIFIED, |a| a.0))
    });
    let mut specs: Vec<(String, Spec)> = vec![
        (
            plan.login_server.name.clone(),
            Spec::LoginServer(plan.login_server.clone()),
        ),
        (plan.home.name.clone(), Spec::Home(plan.home.clone())),
    ];
    for sn in &plan.supernodes {
        specs.push((sn.name.clone(), Spec::SuperNode(sn.clone())));
    }
    for c in &plan.clients {
        let mut spec = c.clone();
        spec.bootstrap
            .shuffle(&mut ChaCha8Rng::seed_from_u64(spec.seed ^ 0xb007));
        specs.push((c.name.clone(), Spec::Client(spec)));
    }

    let (ready_tx, ready_rx) = mpsc::channel();
    let mut gos = Vec::new();
    let mut handles = Vec::new();
    let mut ls_key = [0u8; 32];
    let mut setup_error = None;
    for (i, (name, mut spec)) in specs.into_iter().enumerate() {
        match &mut spec {
            Spec::SuperNode(sp) => sp.ls_key = ls_key,
            Spec::Client(sp) => sp.ls_key = Some(ls_key),
            _ => {}
        }
        let steps: Vec<(Duration, String)> = s
            .base
            .steps
            .iter()
            .filter(|st| st.node == name)
            .map(|st| (st.at, st.command.clone()))
            .collect();
        let ns = topology
            .hosts
            .get(i)
            .map(|h| h.ns.clone())
            .unwrap_or_default();
        let (go_tx, go_rx) = mpsc::channel();
        let tx = ready_tx.clone();
        let node = name.clone();
        handles.push(std::thread::spawn(move || {
            node_thread(node, ns, spec, steps, tx, go_rx)
        }));
        gos.push(go_tx);
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ready::Up {
                commander,
                ls_key: k,
            }) => {
                if let Some(k) = k {
                    ls_key = k;
                }
                if let Ok(mut c) = COMMANDERS.lock() {
                    c.push(commander);
                }
            }
            Ok(Ready::Failed(e)) => {
                setup_error = Some(NetlabError::Node {
                    node: name,
                    reason: e,
                });
                break;
            }
            Err(_) => {
                setup_error = Some(NetlabError::Node {
                    node: name,
                    reason: "did not start".into(),
                });
                break;
            }
        }
        if stopped() {
            setup_error = Some(NetlabError::Interrupted);
            break;
        }
    }
    let go = if setup_error.is_none() {
        let clock = crate::peer::driver::Clock::new();
        let t0 = clock.now().add_nanos(100_000_000);
        let stop_at = t0.add_nanos(i64::try_from(s.base.stop_after.as_nanos()).unwrap_or(i64::MAX));
        Some((t0, stop_at))
    } else {
        None
    };
    for g in &gos {
        let _ = g.send(go);
    }
    let outcomes: Vec<Outcome> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    if let Ok(mut c) = COMMANDERS.lock() {
        c.clear();
    }
    let interrupted = stopped();
    let mut mappings = Vec::new();
    for (i, p) in pollers {
        match p.finish() {
            Ok(m) => mappings.push((i, m)),
            Err(e) => warnings.push(e),
        }
    }
    for c in &mut captures {
        c.stop();
    }
    if let Some(e) = setup_error {
        return Err(e);
    }

    // Outputs.
    let mut labels: Vec<Label> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut errors = Vec::new();
    let mut stats = Vec::new();
    let mut tally = Tally::default();
    for o in outcomes {
        errors.extend(o.errors.into_iter().map(|e| format!("{}: {e}", o.name)));
        warnings.extend(o.warnings.into_iter().map(|w| format!("{}: {w}", o.name)));
        stats.push((o.name, o.stats));
        labels.extend(o.labels);
        events.extend(o.events);
    }
    labels.sort_by_key(|l| l.ts);
    events.sort_by_key(|e| e.ts);
    for l in &labels {
        tally.label(l);
    }
    for e in &events {
        tally.event(e);
    }
    let view = View::of_run(&topology, &defs, &s, mappings);
    let mut frames = Vec::new();
    let mut label_counts = Vec::new();
    for ((p, host), c) in points.iter().zip(&captures) {
        let (_, csv) = point_files(out, p, *host);
        frames.push((p.clone(), c.frames()));
        let f = std::fs::File::create(&csv).map_err(out_err(&csv))?;
        let mut w = LabelWriter::new(BufWriter::new(f)).map_err(out_err(&csv))?;
        let (mut kept, mut left) = (0, 0);
        for l in &labels {
            match view.seen(l, *host) {
                Some((src, dst)) => {
                    w.write_seen(l, l.ts, src, dst, p).map_err(out_err(&csv))?;
                    kept += 1;
                }
                None => left += 1,
            }
        }
        w.into_inner().flush().map_err(out_err(&csv))?;
        label_counts.push((p.clone(), kept, left));
    }
    let ev = out.join("events.csv");
    let f = std::fs::File::create(&ev).map_err(out_err(&ev))?;
    let mut w = EventWriter::new(BufWriter::new(f)).map_err(out_err(&ev))?;
    for e in &events {
        w.write(e).map_err(out_err(&ev))?;
    }
    w.into_inner().flush().map_err(out_err(&ev))?;
    drop(captures);
    errors.extend(topology.teardown());
    Ok(NetlabReport {
        scenario: s.base.name.clone(),
        out: out.clone(),
        topology: topo_text,
        elapsed: started.elapsed(),
        interrupted,
        tally,
        frames,
        labels: label_counts,
        stats,
        warnings,
        errors,
    })
}

fn describe(s: &SimScenario, t: &Topology, defs: &[HostDef]) -> String {
    let mut out = format!("core: {} (bridge {})\n", t.core, topo::CORE_BRIDGE);
    for (i, (h, d)) in t.hosts.iter().zip(defs).enumerate() {
        let _ = write!(out, "  {:<10} {:<16} {}", node_name(&s.base, i), h.ip, h.ns);
        if let (Some(nat), Some((mode, public))) = (&h.nat_ns, d.nat) {
            let _ = write!(
                out,
                " behind {} NAT {nat} ({public})",
                match mode {
                    NatMode::PortRestricted => "port-restricted",
                    NatMode::Symmetric => "symmetric",
                }
            );
        }
        if let Some(t) = d.nat_udp_timeout.filter(|_| d.nat.is_some()) {
            let _ = write!(out, ", NAT UDP timeout {} s", t.as_secs());
        }
        if d.udp_blocked {
            out.push_str(", UDP blocked");
        }
        if d.loss > 0.0 {
            let _ = write!(out, ", loss {}", d.loss);
        }
        if d.mtu != 1500 {
            let _ = write!(out, ", mtu {}", d.mtu);
        }
        out.push('\n');
    }
    out
}

/// Where each label's packet appears at a capture point.
struct View {
    /// Per node, in node order.
    names: Vec<String>,
    /// Per node: (inside ip, public ip, udp blocked, NATed).
    hosts: Vec<(IpAddr, IpAddr, bool, bool)>,
    /// Per NATed node: outbound (proto, inside, remote) → public, and the reverse
    /// (proto, public, remote) → inside, each as of a label's time.
    out: BTreeMap<usize, nat::Mappings>,
    back: BTreeMap<usize, nat::Mappings>,
}

impl View {
    fn of_run(
        t: &Topology,
        defs: &[HostDef],
        s: &SimScenario,
        maps: Vec<(usize, nat::Mappings)>,
    ) -> View {
        let names = (0..s.node_count())
            .map(|i| node_name(&s.base, i).to_string())
            .collect();
        let hosts = t
            .hosts
            .iter()
            .zip(defs)
            .map(|(h, d)| {
                (
                    IpAddr::V4(h.ip),
                    IpAddr::V4(h.public),
                    d.udp_blocked,
                    d.nat.is_some(),
                )
            })
            .collect();
        View::new(names, hosts, maps)
    }

    fn new(
        names: Vec<String>,
        hosts: Vec<(IpAddr, IpAddr, bool, bool)>,
        maps: Vec<(usize, nat::Mappings)>,
    ) -> View {
        let mut out = BTreeMap::new();
        let mut back = BTreeMap::new();
        for (i, m) in maps {
            let rev = m.reversed();
            out.insert(i, m);
            back.insert(i, rev);
        }
        View {
            names,
            hosts,
            out,
            back,
        }
    }

    /// `l`'s (src, dst) at the core (`at` None) or at node `at`'s access link; None when the
    /// packet never passes there (firewalled, another host's link, no NAT mapping).
    fn seen(&self, l: &Label, at: Option<usize>) -> Option<(SocketAddr, SocketAddr)> {
        let proto = match l.transport {
            Transport::Udp => 17,
            Transport::Tcp => 6,
        };
        let udp = proto == 17;
        let sender = self.names.iter().position(|n| n.as_str() == &*l.node)?;
        let (s_ip, _, s_blocked, s_nat) = *self.hosts.get(sender)?;
        let receiver = self.hosts.iter().position(|h| h.1 == l.dst.ip());
        match at {
            None => {
                if !s_nat || l.src.ip() != s_ip {
                    return Some((l.src, l.dst));
                }
                if udp && s_blocked {
                    return None;
                }
                let public = self.out.get(&sender)?.at(&(proto, l.src, l.dst), l.ts)?;
                Some((public, l.dst))
            }
            Some(a) => {
                let (_, _, blocked, natted) = *self.hosts.get(a)?;
                if sender == a {
                    return Some((l.src, l.dst));
                }
                if receiver != Some(a) {
                    return None;
                }
                // What the sender put on the wire at the core.
                let (src, dst) = self.seen(l, None)?;
                if !natted {
                    return Some((src, dst));
                }
                if udp && blocked {
                    return None;
                }
                let inside = self.back.get(&a)?.at(&(proto, dst, src), l.ts)?;
                Some((src, inside))
            }
        }
    }
}

/// The pcapng and labels file of capture point `p` (`host`: `None` for the core).
fn point_files(out: &Path, p: &str, host: Option<usize>) -> (PathBuf, PathBuf) {
    if host.is_none() {
        (out.join("capture.pcapng"), out.join("labels.csv"))
    } else {
        (
            out.join(format!("capture-{p}.pcapng")),
            out.join(format!("labels-{p}.csv")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::truth::Role;
    use dissectors::registry::TrafficClass;

    fn label(node: &str, t: Transport, src: &str, dst: &str) -> Label {
        Label {
            ts: Ts(1),
            transport: t,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            msg_type: "voice",
            class: TrafficClass::Media,
            home: false,
            txn_id: None,
            call_id: None,
            node: node.into(),
            role: Role::Client,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// sn1 public; alice behind NAT 100.64.0.1; bob behind NAT 100.64.0.2 with UDP blocked.
    fn view() -> View {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut alice = nat::Mappings::default();
        alice.observe(
            (17, addr("192.168.1.2:4000"), addr("203.0.113.1:33033")),
            addr("100.64.0.1:4000"),
            Ts(i64::MIN),
        );
        let mut bob = nat::Mappings::default();
        bob.observe(
            (6, addr("192.168.1.2:5000"), addr("203.0.113.1:33033")),
            addr("100.64.0.2:61000"),
            Ts(i64::MIN),
        );
        View::new(
            vec!["sn1".into(), "alice".into(), "bob".into()],
            vec![
                (ip("203.0.113.1"), ip("203.0.113.1"), false, false),
                (ip("192.168.1.2"), ip("100.64.0.1"), false, true),
                (ip("192.168.1.2"), ip("100.64.0.2"), true, true),
            ],
            vec![(1, alice), (2, bob)],
        )
    }

    #[test]
    fn the_core_sees_natted_senders_with_their_public_mapping() {
        let v = view();
        let l = label(
            "alice",
            Transport::Udp,
            "192.168.1.2:4000",
            "203.0.113.1:33033",
        );
        assert_eq!(
            v.seen(&l, None),
            Some((addr("100.64.0.1:4000"), addr("203.0.113.1:33033")))
        );
        // Only alice's own link and the core see it, untranslated on her link.
        assert_eq!(
            v.seen(&l, Some(1)),
            Some((addr("192.168.1.2:4000"), addr("203.0.113.1:33033")))
        );
        assert_eq!(v.seen(&l, Some(2)), None);
        // No mapping: the packet never left the site.
        let lost = label(
            "alice",
            Transport::Udp,
            "192.168.1.2:4001",
            "203.0.113.1:33033",
        );
        assert_eq!(v.seen(&lost, None), None);
    }

    #[test]
    fn replies_are_translated_back_on_the_natted_access_link() {
        let v = view();
        let l = label(
            "sn1",
            Transport::Tcp,
            "203.0.113.1:33033",
            "100.64.0.2:61000",
        );
        assert_eq!(v.seen(&l, None), Some((l.src, l.dst)));
        assert_eq!(
            v.seen(&l, Some(2)),
            Some((addr("203.0.113.1:33033"), addr("192.168.1.2:5000")))
        );
        assert_eq!(
            v.seen(&l, Some(0)),
            Some((l.src, l.dst)),
            "the sender's link"
        );
        assert_eq!(v.seen(&l, Some(1)), None);
    }

    #[test]
    fn the_udp_firewall_hides_udp_beyond_the_site() {
        let v = view();
        let out = label(
            "bob",
            Transport::Udp,
            "192.168.1.2:5000",
            "203.0.113.1:33033",
        );
        assert_eq!(v.seen(&out, None), None);
        assert!(
            v.seen(&out, Some(2)).is_some(),
            "bob's own link still sees it"
        );
        let inbound = label(
            "sn1",
            Transport::Udp,
            "203.0.113.1:33033",
            "100.64.0.2:5000",
        );
        assert!(v.seen(&inbound, None).is_some(), "dropped after the core");
        assert_eq!(v.seen(&inbound, Some(2)), None);
    }

    #[test]
    fn nat_rules_match_the_setups() {
        let pr = topo::nat_rules(NatMode::PortRestricted, false);
        assert!(pr.contains("oifname \"wan0\" masquerade;") && !pr.contains("drop"));
        let sym = topo::nat_rules(NatMode::Symmetric, true);
        assert!(sym.contains("masquerade fully-random") && sym.contains("udp drop"));
        assert_eq!(topo::owner_pid("p2pt-1234-core"), Some(1234));
        assert_eq!(topo::owner_pid("p2pt-x-core"), None);
        assert_eq!(topo::owner_pid("other"), None);
    }

    #[test]
    fn scenarios_the_kernel_cannot_run_are_refused() {
        let opts = |scenario: &str| NetlabOptions {
            scenario: scenario.into(),
            out: PathBuf::from("unused"),
            duration: None,
            access: None,
        };
        assert!(load(&opts("both-nat-udp-blocked")).is_ok());
        assert!(matches!(
            load(&opts("large")),
            Err(NetlabError::Scenario(_))
        ));
        assert!(
            matches!(load(&opts("conference")), Err(NetlabError::Scenario(e)) if e.contains("full-cone"))
        );
    }
}
