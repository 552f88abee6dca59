//! `p2ptrace sim`: builds a [`World`] from a [`SimScenario`] — an address plan, the real
//! roles from the lab's node factory, a NAT box per NATed client, the capture points — runs
//! it for the scenario's duration and writes `capture.pcapng`, `labels.csv` and
//! `events.csv`.
//!
//! Address plan (IPv4): login server 198.51.100.10, home server 198.51.100.80, super nodes
//! from 203.0.113.1 on, public clients and NAT boxes from 100.64.0.1 on; a NATed client is
//! 192.168.1.2 behind its own NAT. IPv6 (`sim.ipv6`): 2001:db8:100::10 / ::80, super nodes
//! 2001:db8:200::N, clients 2001:db8:300::N.
//!
//! Guarantees: same scenario and seed → byte-identical files; on an error the files hold
//! everything written up to it.

use super::nat::{Nat, NatConfig};
use super::scenario::{MAX_CAPTURE_POINTS, SimScenario, node_name};
use super::world::{Action, Builder, HostConf, Outputs, SimStats, World};
use crate::capture::write::PcapNgWriter;
use crate::peer::driver::Hosted;
use crate::peer::driver::sink::Tally;
use crate::peer::error::PeerError;
use crate::peer::lab::factory::NodeFactory;
use crate::peer::lab::{Plan, roles};
use crate::peer::truth::{EventWriter, LabelWriter};
use crate::time::Ts;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("{node}: {source}")]
    Build {
        node: String,
        #[source]
        source: PeerError,
    },
    #[error("{}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--capture-at {0}")]
    CapturePoint(String),
}

/// What a finished run did.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub scenario: String,
    pub out: PathBuf,
    pub hosts: usize,
    pub nats: usize,
    pub capture_points: Vec<String>,
    pub simulated: Duration,
    pub wall: Duration,
    pub stats: SimStats,
    pub tally: Tally,
}

impl SimReport {
    pub fn render(&self) -> String {
        let s = &self.stats;
        let wall = self.wall.as_secs_f64().max(1e-9);
        format!(
            "sim {}: {} hosts ({} behind NAT), {:.0} s simulated in {:.2} s\n\
             packets: {} sent, {} delivered, {} lost on links, {} queue drops, {} dropped by NATs, {} by firewalls, {} undeliverable\n\
             tcp: {} segments carried several messages, {} messages spanned segments\n\
             throughput: {:.0} simulated packets/s ({} events)\n\
             capture: {} frames at {} → {}\n{}",
            self.scenario,
            self.hosts,
            self.nats,
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64(),
            s.packets_sent,
            s.packets_delivered,
            s.lost,
            s.queue_drops,
            s.nat_drops,
            s.firewall_drops,
            s.undeliverable,
            s.tcp_shared_segments,
            s.tcp_spanning_messages,
            s.packets_sent as f64 / wall,
            s.events_processed,
            s.frames_captured,
            self.capture_points.join(", "),
            self.out.join("capture.pcapng").display(),
            self.tally.render(),
        )
    }
}

/// Node `i`'s own address and, when NATed, its NAT's public address.
struct Addresses {
    ips: Vec<IpAddr>,
    nat_public: Vec<Option<Ipv4Addr>>,
}

fn plan_addresses(s: &SimScenario) -> Addresses {
    let sns = s.base.supernodes.len();
    let mut ips = Vec::with_capacity(s.node_count());
    let mut nat_public = Vec::with_capacity(s.node_count());
    let mut next_public = 0u32;
    let mut public = || {
        let j = next_public;
        next_public += 1;
        // 100.64.0.0/10, skipping .0 and .255 host bytes.
        let third = j / 250;
        Ipv4Addr::new(
            100,
            64 + (third / 256) as u8,
            (third % 256) as u8,
            (1 + j % 250) as u8,
        )
    };
    for (i, net) in s.net.iter().enumerate() {
        let (ip, nat) = if s.ipv6 {
            let ip = match i {
                0 => Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10),
                1 => Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x80),
                i if i < 2 + sns => {
                    let j = (i - 1) as u32;
                    Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, (j >> 16) as u16, j as u16)
                }
                i => {
                    let j = (i - 1 - sns) as u32;
                    Ipv6Addr::new(0x2001, 0xdb8, 0x300, 0, 0, 0, (j >> 16) as u16, j as u16)
                }
            };
            (IpAddr::V6(ip), None)
        } else {
            match i {
                0 => (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), None),
                1 => (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 80)), None),
                i if i < 2 + sns => {
                    let j = (i - 2) as u32;
                    let ip = Ipv4Addr::new(203, 0, 113 + (j / 250) as u8, (1 + j % 250) as u8);
                    (IpAddr::V4(ip), None)
                }
                _ if net.nat.is_some() => {
                    (IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)), Some(public()))
                }
                _ => (IpAddr::V4(public()), None),
            }
        };
        ips.push(ip);
        nat_public.push(nat);
    }
    Addresses { ips, nat_public }
}

/// A per-node seed for the network side (links, NAT ports, TCP ISNs).
fn net_seed(seed: u64, i: usize) -> u64 {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 31;
    x.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn reseed(seed: u64, incarnation: u32) -> u64 {
    seed ^ u64::from(incarnation.saturating_sub(1)).wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Runs `s`, writing into `out`. `progress` gets the simulated fraction done (0 to 1).
pub fn run(
    s: &SimScenario,
    out: &Path,
    mut progress: impl FnMut(f64),
) -> Result<SimReport, SimError> {
    let started = Instant::now();
    let out_err = |path: PathBuf| move |source: io::Error| SimError::Output { path, source };
    std::fs::create_dir_all(out).map_err(out_err(out.to_path_buf()))?;
    let create = |name: &str| -> Result<BufWriter<File>, SimError> {
        let path = out.join(name);
        File::create(&path)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(out_err(path))
    };
    let pcap_path = out.join("capture.pcapng");
    let outputs = Outputs {
        pcap: PcapNgWriter::new(create("capture.pcapng")?, "p2ptrace sim")
            .map_err(out_err(pcap_path.clone()))?,
        labels: LabelWriter::new(create("labels.csv")?).map_err(out_err(out.join("labels.csv")))?,
        events: EventWriter::new(create("events.csv")?).map_err(out_err(out.join("events.csv")))?,
    };
    let start = Ts(i64::try_from(s.start_time)
        .unwrap_or(0)
        .saturating_mul(Ts::NANOS_PER_SEC));
    let mut world = World::new(start, outputs);

    let addrs = plan_addresses(s);
    let plan = Plan::with_addresses(&s.base, |i| {
        addrs
            .ips
            .get(i)
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    });
    let factory: Rc<dyn NodeFactory> = Rc::from(roles::factory());
    let built = factory
        .login_server(&plan.login_server)
        .map_err(|source| SimError::Build {
            node: plan.login_server.name.clone(),
            source,
        })?;
    let ls_key = built.public_key;
    let first_ls = RefCell::new(Some(built.node));

    let mut builders: Vec<Builder> = Vec::with_capacity(s.node_count());
    {
        let f = factory.clone();
        let spec = plan.login_server.clone();
        builders.push(Box::new(move |_inc| match first_ls.borrow_mut().take() {
            Some(n) => Ok(n),
            None => f.login_server(&spec).map(|b| b.node),
        }) as Builder);
    }
    {
        let f = factory.clone();
        let spec = plan.home.clone();
        builders.push(Box::new(move |_| f.home(&spec)));
    }
    for sn in &plan.supernodes {
        let f = factory.clone();
        let mut spec = sn.clone();
        spec.ls_key = ls_key;
        builders.push(Box::new(move |inc| {
            let mut sp = spec.clone();
            sp.seed = reseed(spec.seed, inc);
            f.supernode(&sp)
        }));
    }
    for c in &plan.clients {
        let f = factory.clone();
        let mut spec = c.clone();
        spec.ls_key = Some(ls_key);
        // Every installation's host cache lists the bootstrap super nodes in its own order,
        // so clients spread over them (the lab keeps the scenario's order).
        spec.bootstrap
            .shuffle(&mut ChaCha8Rng::seed_from_u64(spec.seed ^ 0xb007));
        builders.push(Box::new(move |inc| -> Result<Box<dyn Hosted>, PeerError> {
            let mut sp = spec.clone();
            sp.seed = reseed(spec.seed, inc);
            f.client(&sp)
        }));
    }

    let mut nats = 0;
    for (i, (build, net)) in builders.into_iter().zip(&s.net).enumerate() {
        let seed = net_seed(s.base.seed, i);
        let ip = addrs
            .ips
            .get(i)
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let nat = match (net.nat, addrs.nat_public.get(i).copied().flatten()) {
            (Some(kind), Some(public)) => {
                nats += 1;
                let mut cfg = NatConfig::new(kind, public, seed);
                if let Some(t) = net.nat_udp_timeout {
                    cfg.udp_timeout_ns = duration_ns(t);
                }
                let n = Nat::new(cfg);
                Some(world.add_nat(n, &net.link, seed, i))
            }
            _ => None,
        };
        let h = world.add_host(
            HostConf {
                name: node_name(&s.base, i).to_string(),
                ip,
                link: net.link,
                nat,
                udp_blocked: net.udp_blocked,
                seed,
            },
            build,
        );
        world.schedule(start.add_nanos(duration_ns(net.start)), h, Action::Join);
    }
    let mut points = Vec::new();
    for name in &s.capture_at {
        add_capture(&mut world, s, name, &mut points).map_err(|e| match e {
            CaptureErr::Unknown(m) => SimError::CapturePoint(m),
            CaptureErr::Io(source) => SimError::Output {
                path: pcap_path.clone(),
                source,
            },
        })?;
    }
    for st in &s.base.steps {
        if let Some(h) = world.host_index(&st.node) {
            world.schedule(
                start.add_nanos(duration_ns(st.at)),
                h,
                Action::parse(&st.command),
            );
        }
    }
    let end = start.add_nanos(duration_ns(s.base.stop_after));
    let total = duration_ns(s.base.stop_after).max(1) as f64;
    world.run_until(end, |now| progress(now.since(start) as f64 / total));
    progress(1.0);
    let (stats, tally, result) = world.finish();
    let flush = |o: Outputs<BufWriter<File>>| -> io::Result<()> {
        o.pcap.finish()?.flush()?;
        o.labels.into_inner().flush()?;
        o.events.into_inner().flush()
    };
    result.and_then(flush).map_err(out_err(out.to_path_buf()))?;
    Ok(SimReport {
        scenario: s.base.name.clone(),
        out: out.to_path_buf(),
        hosts: s.node_count(),
        nats,
        capture_points: points,
        simulated: s.base.stop_after,
        wall: started.elapsed(),
        stats,
        tally,
    })
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

enum CaptureErr {
    Unknown(String),
    Io(io::Error),
}

fn add_capture<W: Write>(
    world: &mut World<W>,
    s: &SimScenario,
    name: &str,
    points: &mut Vec<String>,
) -> Result<(), CaptureErr> {
    let io = CaptureErr::Io;
    if points.iter().any(|p| p == name) {
        return Ok(());
    }
    match name {
        "core" => world.capture_core().map_err(io)?,
        "all" => {
            let n = s.node_count();
            let nats = s.net.iter().filter(|x| x.nat.is_some()).count();
            if 1 + n + nats > MAX_CAPTURE_POINTS {
                return Err(CaptureErr::Unknown(format!(
                    "all: {} capture points, at most {MAX_CAPTURE_POINTS}",
                    1 + n + nats
                )));
            }
            world.capture_core().map_err(io)?;
            for h in 0..n {
                world.capture_host(h).map_err(io)?;
                if let Some(nat) = world.nat_of(h) {
                    world.capture_nat(nat).map_err(io)?;
                }
            }
        }
        _ => {
            let (host, nat) = match name.strip_prefix("nat:") {
                Some(h) => (h, true),
                None => (name, false),
            };
            let Some(h) = world.host_index(host) else {
                return Err(CaptureErr::Unknown(format!(
                    "{name}: not a capture point (core, all, a node name, or nat:NODE)"
                )));
            };
            if nat {
                let Some(n) = world.nat_of(h) else {
                    return Err(CaptureErr::Unknown(format!(
                        "{name}: {host} is not behind a NAT"
                    )));
                };
                world.capture_nat(n).map_err(io)?;
            } else {
                world.capture_host(h).map_err(io)?;
            }
        }
    }
    points.push(name.to_string());
    Ok(())
}
