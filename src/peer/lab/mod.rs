//! `p2ptrace lab`: a whole Skylark overlay on loopback, run from a [`Scenario`].
//!
//! What it does: gives every node its own loopback address (`network + 1 + i`: login server,
//! home server, super nodes, clients, in scenario order), builds the nodes through a
//! [`NodeFactory`] (the login server first, since super nodes need its public key), runs
//! them in one [`Driver`], delivers the timeline's commands at their times, stops after
//! `stop_after` (or on [`Lab::commander`]`.stop()`), saves every node, and writes
//! `labels.csv` and `events.csv` into the output directory.
//!
//! Guarantees: the run ends by itself (a scenario's `stop_after` is at most
//! [`crate::peer::scenario::MAX_STOP_AFTER`]); the output files are complete even when a
//! node fails to save. The lab is generic over the factory, so it is tested with small test
//! nodes and runs the real roles through [`roles::factory`].
//!
//! Must not: need root (ports below 1024 are refused by the scenario parser) or touch
//! addresses outside 127.0.0.0/8.

pub mod factory;
pub mod roles;

use crate::peer::auth::HashParams;
use crate::peer::driver::sink::{CsvSink, Tally};
use crate::peer::driver::{Commander, Driver, DriverConfig, DriverError, DriverStats};
use crate::peer::error::PeerError;
use crate::peer::scenario::{HashStrength, Scenario};
use crate::peer::truth::Role;
use factory::{Account, ClientSpec, HomeSpec, LoginServerSpec, NodeFactory, SuperNodeSpec};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a lab could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    #[error("{node}: {source}")]
    Build {
        node: String,
        #[source]
        source: PeerError,
    },
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("{}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Schedule(String),
}

/// A node of a running lab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabNode {
    pub name: String,
    pub role: Role,
    pub addr: SocketAddr,
}

/// Every node's spec, before the login server's key is known (`ls_key` zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub login_server: LoginServerSpec,
    pub home: HomeSpec,
    pub supernodes: Vec<SuperNodeSpec>,
    pub clients: Vec<ClientSpec>,
}

impl Plan {
    /// Addresses, accounts, seeds and timers for every node of `s`, each node on its own
    /// loopback address.
    pub fn new(s: &Scenario) -> Plan {
        Plan::with_addresses(s, |i| IpAddr::V4(s.address(i)))
    }

    /// As [`Plan::new`], with node `i`'s IP address (login server 0, home 1, super nodes,
    /// clients) given by `ip_of` — the simulator's address plan.
    pub fn with_addresses(s: &Scenario, ip_of: impl Fn(usize) -> IpAddr) -> Plan {
        let at = |i: usize, port: u16| SocketAddr::new(ip_of(i), port);
        // Distinct per node, reproducible from the scenario seed.
        let seed = |i: usize| s.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let ls_addr = at(0, s.login_server.port);
        let home_addr = at(1, s.home.port);
        let sn_addrs: Vec<SocketAddr> = s
            .supernodes
            .iter()
            .enumerate()
            .map(|(i, sn)| at(2 + i, sn.port))
            .collect();
        let login_server = LoginServerSpec {
            name: s.login_server.name.clone(),
            addr: ls_addr,
            state_dir: None,
            seed: seed(0),
            hash_params: match s.login_server.hash {
                HashStrength::Default => HashParams::DEFAULT,
                HashStrength::Fast => HashParams::FAST,
            },
            accounts: s
                .clients
                .iter()
                .map(|c| Account {
                    user: c.name.clone(),
                    password: c.password.clone(),
                    buddies: c.buddies.clone(),
                })
                .collect(),
            bootstrap: sn_addrs.clone(),
            timers: s.timers.clone(),
        };
        let home = HomeSpec {
            name: s.home.name.clone(),
            addr: home_addr,
            latest_version: s.home.latest_version.clone(),
            timers: s.timers.clone(),
        };
        let supernodes = s
            .supernodes
            .iter()
            .zip(&sn_addrs)
            .enumerate()
            .map(|(i, (sn, &addr))| SuperNodeSpec {
                name: sn.name.clone(),
                addr,
                ls_key: [0; 32],
                peers: sn_addrs.iter().copied().filter(|a| *a != addr).collect(),
                state_dir: None,
                seed: seed(2 + i),
                timers: s.timers.clone(),
            })
            .collect();
        let first_client = 2 + s.supernodes.len();
        let clients = s
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| ClientSpec {
                name: c.name.clone(),
                password: c.password.clone(),
                addr: at(first_client + i, s.client_port(c)),
                state_dir: None,
                login_server: ls_addr,
                home: home_addr,
                bootstrap: sn_addrs.clone(),
                ls_key: None,
                version: c.version.clone(),
                auto_answer: c.auto_answer,
                uplink_kbps: c.uplink_kbps,
                seed: seed(first_client + i),
                timers: s.timers.clone(),
            })
            .collect();
        Plan {
            login_server,
            home,
            supernodes,
            clients,
        }
    }
}

/// What a finished lab run did.
#[derive(Clone, Debug)]
pub struct LabReport {
    pub scenario: String,
    pub out: PathBuf,
    pub nodes: Vec<LabNode>,
    pub tally: Tally,
    pub stats: DriverStats,
    pub elapsed: Duration,
    /// Stopped by a stop request before `stop_after`.
    pub interrupted: bool,
    /// Save and output errors (the run itself completed).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl LabReport {
    /// The short summary `p2ptrace lab` prints.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lab {}: {} nodes, ran {:.1} s{}, wrote {} and {}",
            self.scenario,
            self.nodes.len(),
            self.elapsed.as_secs_f64(),
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
            self.out.join("labels.csv").display(),
            self.out.join("events.csv").display(),
        );
        for n in &self.nodes {
            let _ = writeln!(s, "  {:<12} {:<13} {}", n.name, n.role.as_str(), n.addr);
        }
        s.push_str(&self.tally.render());
        let missing: Vec<&str> = dissectors::registry::TrafficClass::ALL
            .iter()
            .filter(|c| self.tally.labels_of(**c) == 0)
            .map(|c| c.as_str())
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(s, "warning: no {} traffic", missing.join(", "));
        }
        let st = &self.stats;
        let dropped = st.udp_send_failed
            + st.udp_bad_local
            + st.tcp_accept_refused
            + st.tcp_overflow_closed
            + st.tcp_unknown_conn
            + st.commands_unknown_node;
        if dropped > 0 {
            let _ = writeln!(s, "driver: {st:?}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        s
    }
}

/// A lab ready to run.
pub struct Lab {
    scenario: Scenario,
    driver: Driver<CsvSink>,
    nodes: Vec<LabNode>,
    out: PathBuf,
}

impl Lab {
    /// Builds every node and binds its sockets; creates `out` with empty CSV files.
    pub fn new(
        scenario: &Scenario,
        factory: &dyn NodeFactory,
        out: &Path,
        config: DriverConfig,
    ) -> Result<Lab, LabError> {
        let sink =
            CsvSink::create(out).map_err(|(path, source)| LabError::Output { path, source })?;
        let mut driver = Driver::new(config, sink)?;
        let plan = Plan::new(scenario);
        let mut nodes = Vec::new();
        let build = |node: &str| {
            let node = node.to_string();
            move |source| LabError::Build { node, source }
        };

        let ls = factory
            .login_server(&plan.login_server)
            .map_err(build(&plan.login_server.name))?;
        let ls_key = ls.public_key;
        driver.add(&plan.login_server.name, ls.node)?;
        nodes.push(LabNode {
            name: plan.login_server.name.clone(),
            role: Role::LoginServer,
            addr: plan.login_server.addr,
        });

        let home = factory.home(&plan.home).map_err(build(&plan.home.name))?;
        driver.add(&plan.home.name, home)?;
        nodes.push(LabNode {
            name: plan.home.name.clone(),
            role: Role::Home,
            addr: plan.home.addr,
        });

        for mut spec in plan.supernodes {
            spec.ls_key = ls_key;
            let node = factory.supernode(&spec).map_err(build(&spec.name))?;
            driver.add(&spec.name, node)?;
            nodes.push(LabNode {
                name: spec.name,
                role: Role::SuperNode,
                addr: spec.addr,
            });
        }
        for mut spec in plan.clients {
            spec.ls_key = Some(ls_key);
            let node = factory.client(&spec).map_err(build(&spec.name))?;
            driver.add(&spec.name, node)?;
            nodes.push(LabNode {
                name: spec.name,
                role: Role::Client,
                addr: spec.addr,
            });
        }
        Ok(Lab {
            scenario: scenario.clone(),
            driver,
            nodes,
            out: out.to_path_buf(),
        })
    }

    pub fn nodes(&self) -> &[LabNode] {
        &self.nodes
    }

    /// Stops the run early (Ctrl-C) from another thread.
    pub fn commander(&self) -> Commander {
        self.driver.commander()
    }

    /// Runs the timeline to `stop_after`, then shuts every node down and closes the files.
    pub fn run(mut self) -> Result<LabReport, LabError> {
        let started = Instant::now();
        let t0 = self.driver.now();
        for step in &self.scenario.steps {
            let node = self.driver.node_id(&step.node).ok_or_else(|| {
                LabError::Schedule(format!("step for unknown node '{}'", step.node))
            })?;
            let at = t0.add_nanos(i64::try_from(step.at.as_nanos()).unwrap_or(i64::MAX));
            self.driver
                .schedule(at, node, &step.command)
                .map_err(LabError::Schedule)?;
        }
        let stop_at =
            t0.add_nanos(i64::try_from(self.scenario.stop_after.as_nanos()).unwrap_or(i64::MAX));
        let ran = self.driver.run(Some(stop_at));
        let interrupted = self.driver.commander().stopped();
        let errors = self.driver.shutdown();
        ran?;
        Ok(LabReport {
            scenario: self.scenario.name.clone(),
            out: self.out,
            nodes: self.nodes,
            tally: self.driver.sink().tally.clone(),
            stats: self.driver.stats().clone(),
            elapsed: started.elapsed(),
            interrupted,
            errors,
            warnings: self.driver.warnings().to_vec(),
        })
    }
}
