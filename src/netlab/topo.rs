//! The real-network topology of one `lab --netns` run: network namespaces, veth links, a
//! bridge as the "core", NAT routers with nftables masquerade and UDP-dropping firewalls.
//!
//! Layout (docs/netlab.md): a core namespace holds a bridge `br0`; every public host (login
//! server, home server, super nodes, public clients) has its own namespace whose `eth0` is a
//! veth bridged into the core, with its address as a /32 and an on-link default route (a flat
//! switched "Internet"); a NATed client's namespace (its site, `eth0` 192.168.1.2/24) hangs
//! off a NAT router namespace (`lan0` 192.168.1.1/24, `wan0` the public address, bridged into
//! the core) that masquerades (port-restricted: Linux conntrack's default behaviour;
//! symmetric: `masquerade fully-random`) and, for `firewall = "udp-blocked"`, drops all
//! forwarded UDP. Loss on a link is an nftables `numgen random` drop on the core bridge port.
//!
//! Guarantees: every veth is created directly inside its namespaces and every nftables table
//! lives in a namespace, so deleting the namespaces removes everything; [`Topology`]'s Drop
//! kills the processes left in its namespaces and deletes them, on success, on error and on
//! unwinding. Names are `p2pt-<pid>-…`, so parallel runs never collide and
//! [`remove_stale`] can clean up after a crashed run whose pid is gone.
//!
//! Must not: touch the host's own namespace (no veth, route, rule or table is created
//! there), or kill a process outside the namespaces it created (never this process).

use super::NetlabError;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Prefix of every namespace this module creates.
pub const PREFIX: &str = "p2pt-";
/// Namespaces per run at most (one per node, one per NAT, the core).
pub const MAX_NAMESPACES: usize = 64;
/// The core bridge in the core namespace.
pub const CORE_BRIDGE: &str = "br0";
/// The inside address of every NATed client and its router.
pub const SITE_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
pub const SITE_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

/// Runs one command; a failure carries its first stderr line.
pub fn run(args: &[&str], stdin: Option<&str>) -> Result<(), NetlabError> {
    use std::io::Write;
    let Some((prog, rest)) = args.split_first() else {
        return Ok(());
    };
    let mut cmd = Command::new(prog);
    cmd.args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let what = || args.join(" ");
    let mut child = cmd.spawn().map_err(|e| NetlabError::Command {
        command: what(),
        reason: e.to_string(),
    })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        let _ = input.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| NetlabError::Command {
        command: what(),
        reason: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(NetlabError::Command {
        command: what(),
        reason: err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed")
            .to_string(),
    })
}

/// Names of the namespaces that currently exist.
pub fn list_namespaces() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Pids of the processes in namespace `ns` (`ip netns pids`).
fn pids_in(ns: &str) -> Vec<i32> {
    let Ok(out) = Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills every process in `ns` except this one, then deletes the namespace (which removes
/// its veths and nftables tables). Returns the first failure.
pub fn delete_namespace(ns: &str) -> Result<(), NetlabError> {
    let me = std::process::id() as i32;
    for pid in pids_in(ns) {
        if pid != me && pid > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    run(&["ip", "netns", "del", ns], None)
}

/// The pid a `p2pt-<pid>-…` name belongs to.
pub fn owner_pid(ns: &str) -> Option<u32> {
    ns.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Deletes the `p2pt-*` namespaces of runs whose process no longer exists. Returns their
/// names.
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for ns in list_namespaces() {
        let Some(pid) = owner_pid(&ns) else {
            continue;
        };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if delete_namespace(&ns).is_ok() {
            removed.push(ns);
        }
    }
    removed
}

/// One host's place in the topology.
#[derive(Clone, Debug)]
pub struct HostNet {
    /// The host's namespace (where its sockets live).
    pub ns: String,
    /// The NAT router's namespace, when NATed.
    pub nat_ns: Option<String>,
    /// The address the host binds.
    pub ip: Ipv4Addr,
    /// The address the core sees (the NAT's public address when NATed).
    pub public: Ipv4Addr,
}

/// How one host is attached.
#[derive(Clone, Debug)]
pub struct HostDef {
    pub ip: Ipv4Addr,
    /// NAT kind and public address.
    pub nat: Option<(NatMode, Ipv4Addr)>,
    pub udp_blocked: bool,
    /// The NAT's conntrack UDP timeouts (unreplied and stream) when not the kernel's.
    pub nat_udp_timeout: Option<Duration>,
    /// Packet loss on the core port, 0 to 1, both directions.
    pub loss: f64,
    pub mtu: u16,
}

/// The NAT behaviours a kernel masquerade gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatMode {
    /// Endpoint-independent mapping with port preservation, address-and-port-dependent
    /// filtering: Linux conntrack's default masquerade.
    PortRestricted,
    /// A new random port per connection (`masquerade fully-random`).
    Symmetric,
}

/// The namespaces of one run; Drop deletes them all.
pub struct Topology {
    pub core: String,
    pub hosts: Vec<HostNet>,
    created: Vec<String>,
}

impl Topology {
    /// Builds the topology for `defs` (one per node, in node order). On error everything
    /// created so far is deleted (by Drop).
    pub fn build(defs: &[HostDef]) -> Result<Topology, NetlabError> {
        let pid = std::process::id();
        let nats = defs.iter().filter(|d| d.nat.is_some()).count();
        if 1 + defs.len() + nats > MAX_NAMESPACES {
            return Err(NetlabError::Scenario(format!(
                "{} nodes need {} namespaces, at most {MAX_NAMESPACES}",
                defs.len(),
                1 + defs.len() + nats
            )));
        }
        let mut t = Topology {
            core: format!("{PREFIX}{pid}-core"),
            hosts: Vec::new(),
            created: Vec::new(),
        };
        let core = t.core.clone();
        t.add_ns(&core)?;
        run(
            &[
                "ip",
                "-n",
                &core,
                "link",
                "add",
                CORE_BRIDGE,
                "type",
                "bridge",
            ],
            None,
        )?;
        run(&["ip", "-n", &core, "link", "set", CORE_BRIDGE, "up"], None)?;
        let mut bridge_rules = String::new();
        for (i, d) in defs.iter().enumerate() {
            let host_ns = format!("{PREFIX}{pid}-h{i}");
            t.add_ns(&host_ns)?;
            let port = format!("p{i}");
            let mtu = d.mtu.to_string();
            // The namespace on the core: the host itself, or its NAT router.
            let (edge_ns, edge_if, public) = match d.nat {
                None => (host_ns.clone(), "eth0", d.ip),
                Some((mode, public)) => {
                    let nat_ns = format!("{PREFIX}{pid}-n{i}");
                    t.add_ns(&nat_ns)?;
                    veth(&host_ns, "eth0", &nat_ns, "lan0")?;
                    let host_addr = format!("{}/24", d.ip);
                    let router = format!("{SITE_ROUTER}/24");
                    run(
                        &[
                            "ip", "-n", &host_ns, "addr", "add", &host_addr, "dev", "eth0",
                        ],
                        None,
                    )?;
                    run(
                        &["ip", "-n", &nat_ns, "addr", "add", &router, "dev", "lan0"],
                        None,
                    )?;
                    for (ns, dev) in [(&host_ns, "eth0"), (&nat_ns, "lan0")] {
                        run(
                            &["ip", "-n", ns, "link", "set", dev, "mtu", &mtu, "up"],
                            None,
                        )?;
                    }
                    let gw = SITE_ROUTER.to_string();
                    run(
                        &["ip", "-n", &host_ns, "route", "add", "default", "via", &gw],
                        None,
                    )?;
                    run(
                        &[
                            "ip",
                            "netns",
                            "exec",
                            &nat_ns,
                            "sh",
                            "-c",
                            "echo 1 > /proc/sys/net/ipv4/ip_forward",
                        ],
                        None,
                    )?;
                    run(
                        &["ip", "netns", "exec", &nat_ns, "nft", "-f", "-"],
                        Some(&nat_rules(mode, d.udp_blocked)),
                    )?;
                    // Per namespace, and present once the NAT rules loaded conntrack.
                    if let Some(t) = d.nat_udp_timeout {
                        let secs = t.as_secs().max(1);
                        let set = format!(
                            "echo {secs} > /proc/sys/net/netfilter/nf_conntrack_udp_timeout && \
                             echo {secs} > /proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream"
                        );
                        run(&["ip", "netns", "exec", &nat_ns, "sh", "-c", &set], None)?;
                    }
                    t.hosts.push(HostNet {
                        ns: host_ns.clone(),
                        nat_ns: Some(nat_ns.clone()),
                        ip: d.ip,
                        public,
                    });
                    (nat_ns, "wan0", public)
                }
            };
            if d.nat.is_none() {
                t.hosts.push(HostNet {
                    ns: host_ns.clone(),
                    nat_ns: None,
                    ip: d.ip,
                    public,
                });
            }
            veth(&edge_ns, edge_if, &core, &port)?;
            let addr = format!("{public}/32");
            run(
                &["ip", "-n", &edge_ns, "addr", "add", &addr, "dev", edge_if],
                None,
            )?;
            // The NAT's uplink keeps 1500; a small MTU belongs to the client's own link.
            let edge_mtu = if d.nat.is_some() {
                "1500"
            } else {
                mtu.as_str()
            };
            run(
                &[
                    "ip", "-n", &edge_ns, "link", "set", edge_if, "mtu", edge_mtu, "up",
                ],
                None,
            )?;
            run(&["ip", "-n", &edge_ns, "link", "set", "lo", "up"], None)?;
            run(
                &[
                    "ip", "-n", &edge_ns, "route", "add", "default", "dev", edge_if,
                ],
                None,
            )?;
            run(
                &[
                    "ip",
                    "-n",
                    &core,
                    "link",
                    "set",
                    &port,
                    "master",
                    CORE_BRIDGE,
                ],
                None,
            )?;
            run(&["ip", "-n", &core, "link", "set", &port, "up"], None)?;
            if d.nat.is_some() {
                run(&["ip", "-n", &host_ns, "link", "set", "lo", "up"], None)?;
            }
            if d.loss > 0.0 {
                // Uplink loss before the core capture sees the packet (prerouting), downlink
                // loss after it (forward), as the simulator's links do.
                let per_10k = (d.loss * 10_000.0).round().clamp(0.0, 10_000.0) as u32;
                bridge_rules.push_str(&format!(
                    "add rule bridge p2pt loss_in iifname \"{port}\" numgen random mod 10000 < {per_10k} drop\n\
                     add rule bridge p2pt loss_out oifname \"{port}\" numgen random mod 10000 < {per_10k} drop\n"
                ));
            }
        }
        if !bridge_rules.is_empty() {
            let rules = format!(
                "add table bridge p2pt\n\
                 add chain bridge p2pt loss_in {{ type filter hook prerouting priority 0; policy accept; }}\n\
                 add chain bridge p2pt loss_out {{ type filter hook forward priority 0; policy accept; }}\n\
                 {bridge_rules}"
            );
            run(
                &["ip", "netns", "exec", &core, "nft", "-f", "-"],
                Some(&rules),
            )?;
        }
        Ok(t)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), NetlabError> {
        run(&["ip", "netns", "add", ns], None)?;
        self.created.push(ns.to_string());
        run(&["ip", "-n", ns, "link", "set", "lo", "up"], None)
    }

    /// Every namespace of the run.
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }

    /// Deletes everything now; returns the failures (Drop ignores them).
    pub fn teardown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(ns) = self.created.pop() {
            if let Err(e) = delete_namespace(&ns) {
                errors.push(e.to_string());
            }
        }
        errors
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// A veth pair created directly in its two namespaces (never in the host's).
fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<(), NetlabError> {
    run(
        &[
            "ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b,
            "netns", ns_b,
        ],
        None,
    )
}

/// The NAT router's ruleset.
pub fn nat_rules(mode: NatMode, udp_blocked: bool) -> String {
    let masq = match mode {
        NatMode::PortRestricted => "masquerade",
        NatMode::Symmetric => "masquerade fully-random",
    };
    let fw = if udp_blocked {
        // Baset & Schulzrinne's UDP-restricted firewall: no UDP in or out of the site.
        "meta l4proto udp drop;"
    } else {
        ""
    };
    format!(
        "table ip p2pt {{\n\
         \tchain nat_out {{ type nat hook postrouting priority srcnat; policy accept; oifname \"wan0\" {masq}; }}\n\
         \tchain fw {{ type filter hook forward priority filter; policy accept; {fw} }}\n\
         }}\n"
    )
}
