//! `p2ptrace peer` and `p2ptrace lab`: Skylark nodes on real sockets.

use super::*;

/// Installs the Ctrl-C handler that stops a driver (once per process).
fn stop_on_ctrl_c(commander: crate::peer::driver::Commander) {
    if let Err(e) = ctrlc::set_handler(move || commander.stop()) {
        eprintln!("p2ptrace: warning: cannot catch Ctrl-C ({e}); stop with SIGKILL");
    }
}

pub(super) fn lab(args: &LabArgs) -> u8 {
    if args.netns {
        return crate::netlab::command(&crate::netlab::NetlabOptions {
            scenario: args.scenario.clone(),
            out: args.out.clone(),
            duration: args.duration,
            access: args.capture_at.clone(),
        });
    }
    use crate::peer::driver::DriverConfig;
    use crate::peer::lab::{Lab, roles};
    use crate::peer::scenario::Scenario;
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("p2ptrace: error: scenario {}: {e}", args.scenario);
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
    let capture = if args.capture {
        let hosts = lab.nodes().iter().map(|n| n.addr.ip()).collect();
        let path = args.out.join("capture.pcapng");
        match crate::live::recording::Recording::start("lo", "lo", &path, Some(hosts), None) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("p2ptrace: error: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    eprintln!(
        "p2ptrace: lab {}: {} nodes, stopping after {} s (Ctrl-C stops earlier)",
        scenario.name,
        lab.nodes().len(),
        scenario.stop_after.as_secs_f64()
    );
    let mut code = match lab.run() {
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
    };
    if let Some(c) = capture {
        let path = c.path().to_path_buf();
        match c.finish() {
            Ok(r) => {
                eprintln!(
                    "p2ptrace: wrote {} frames to {} (kernel drops {}, queue drops {})",
                    thousands(r.frames),
                    path.display(),
                    thousands(r.kernel_drops),
                    thousands(r.queue_drops)
                );
                if r.kernel_drops + r.queue_drops > 0 {
                    eprintln!(
                        "p2ptrace: error: the capture lost frames; labels will not all match"
                    );
                    code = 1;
                }
            }
            Err(e) => {
                eprintln!("p2ptrace: error: {e}");
                code = 1;
            }
        }
    }
    code
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

pub(super) fn peer(args: &PeerArgs) -> u8 {
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
