//! `p2ptrace lab --netns` (root only) and `p2ptrace diff`: Baset & Schulzrinne's three
//! setups on real kernel networking — the media path and login transport the paper observed,
//! the score on the lab capture, nothing left behind (also after SIGINT) — and the
//! side-by-side report.
//!
//! The three runs take ~56 s each and run in parallel (cargo's test threads); without root
//! the netns tests print why and pass.

mod common;

use common::{bin, csv_rows};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Label-to-packet tolerance for score: labels carry the driver's send time, the capture the
/// kernel's. A busy 2-core machine can delay a send's syscall: usually by a few ms, but CI
/// once saw one voice frame of the symmetric-NAT run reach the core capture 55 ms after its
/// label (two lab runs in parallel with the rest of the suite). Pairs are also keyed by
/// transport, endpoints and kind, so a wider window only widens the search among frames of
/// the same call.
const TOLERANCE_MS: &str = "100";

fn root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: lab --netns needs root (network namespaces, nftables)");
        return false;
    }
    // `ip -V` and `nft -v` print versions; scripts/setup.sh installs all three.
    for (tool, arg) in [("ip", "-V"), ("nft", "-v")] {
        if !Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            eprintln!("skipped: lab --netns needs {tool} (scripts/setup.sh installs it)");
            return false;
        }
    }
    true
}

#[track_caller]
fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Everything a run with process id `pid` could leave behind, as text (empty: nothing).
fn leftovers(pid: u32, out: &Path) -> String {
    let tag = format!("p2pt-{pid}-");
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&tag) {
                found.push(format!("namespace {name}"));
            }
        }
    }
    // veths whose peer sits in one of the run's namespaces would show `link-netns p2pt-…`.
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    for l in String::from_utf8_lossy(&links.stdout).lines() {
        if l.contains(&tag) {
            found.push(format!("link {l}"));
        }
    }
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&tables.stdout).lines() {
        if l.contains("p2pt") {
            found.push(format!("host nft {l}"));
        }
    }
    let out = out.display().to_string();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&tag) || (cmd.contains("tcpdump") && cmd.contains(&out)) {
                found.push(format!(
                    "process {}: {cmd}",
                    p.file_name().to_string_lossy()
                ));
            }
        }
    }
    found.join("\n")
}

/// Runs `lab SCENARIO --netns --out DIR`; returns (stdout, pid).
fn run_lab(scenario: &str, out: &Path) -> (String, u32) {
    let child = Command::new(bin())
        .args(["lab", scenario, "--netns", "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    (ok(&output), pid)
}

fn analyze(dir: &Path) -> PathBuf {
    let csv = dir.join("analysis");
    ok(&Command::new(bin())
        .arg("analyze")
        .arg(dir.join("capture.pcapng"))
        .arg("--csv")
        .arg(&csv)
        .arg("-q")
        .output()
        .unwrap());
    csv
}

/// `score --json` on one capture point: every label matched, precision and recall 1.
#[track_caller]
fn score_is_perfect(capture: &Path, labels: &Path) {
    let json = ok(&Command::new(bin())
        .arg("score")
        .arg(capture)
        .arg("--labels")
        .arg(labels)
        .args(["--json", "-q", "--tolerance-ms", TOLERANCE_MS])
        .output()
        .unwrap());
    let num = |key: &str| -> u64 {
        let at = json.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
        json[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(num("labels") > 100, "{json}");
    assert_eq!(num("matched"), num("labels"), "{json}");
    assert_eq!(num("unlabelled"), 0, "{json}");
    let classes = json.matches("\"support\"").count();
    assert_eq!(
        json.matches("\"precision\": 1.000000, \"recall\": 1.000000")
            .count(),
        classes,
        "{json}"
    );
}

/// One setup end to end: the run, its files, the paper's media path, the score at every
/// capture point, and no leftovers.
fn setup(scenario: &str, media_path: &str, login_transport: &str) -> Option<tempfile::TempDir> {
    if !root() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (stdout, pid) = run_lab(scenario, &out);
    assert!(stdout.contains("capture core:"), "{stdout}");
    assert_eq!(leftovers(pid, &out), "", "left behind by {scenario}");
    for f in ["capture.pcapng", "labels.csv", "events.csv", "topology.txt"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let events = csv_rows(&out.join("events.csv"));
    let logins = events
        .iter()
        .filter(|e| e["event"] == "login" && e["ok"] == "true");
    assert_eq!(logins.count(), 2, "both clients log in");
    let setups: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "call-setup")
        .collect();
    assert_eq!(setups.len(), 2);
    assert!(setups.iter().all(|e| e["path"] == media_path), "{setups:?}");

    let csv = analyze(&out);
    let calls = csv_rows(&csv.join("calls.csv"));
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["media_path"], media_path);
    assert_eq!(calls[0]["end_reason"], "bye:hangup");
    let logins = csv_rows(&csv.join("logins.csv"));
    assert_eq!(logins.len(), 2, "{logins:?}");
    for l in &logins {
        assert_eq!(l["outcome"], "ok", "{l:?}");
        assert_eq!(l["transport"], login_transport, "{l:?}");
    }
    // The NATed clients appear with their routers' public addresses at the core.
    assert!(logins.iter().all(|l| l["client"].starts_with("100.64.0.")));

    score_is_perfect(&out.join("capture.pcapng"), &out.join("labels.csv"));
    for client in ["alice", "bob"] {
        score_is_perfect(
            &out.join(format!("capture-{client}.pcapng")),
            &out.join(format!("labels-{client}.csv")),
        );
    }
    Some(dir)
}

#[test]
fn no_nat_media_is_direct_udp() {
    // A namespace of a crashed earlier run (its pid cannot exist), with a process still in
    // it, is removed first.
    let stale = "p2pt-4294967-core";
    let mut sleeper = None;
    if root() {
        ok(&Command::new("ip")
            .args(["netns", "add", stale])
            .output()
            .unwrap());
        sleeper = Some(
            Command::new("ip")
                .args(["netns", "exec", stale, "sleep", "300"])
                .spawn()
                .unwrap(),
        );
    }
    setup("no-nat", "direct-udp", "udp");
    if let Some(mut sleeper) = sleeper {
        assert!(!Path::new("/run/netns").join(stale).exists());
        let start = Instant::now();
        while sleeper.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "process not killed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn one_nat_media_is_relayed_udp() {
    if let Some(dir) = setup("one-nat", "relay-udp", "udp") {
        // The client's discovery calls a port-restricted NAT a cone (PROTOCOL.md nat-type 2:
        // the same reflexive address towards two SNs).
        assert_nat_type(&dir.path().join("run"), "cone");
    }
}

#[test]
fn symmetric_nat_is_discovered_as_symmetric() {
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/netlab/one-symmetric-nat.toml");
    if let Some(dir) = setup(scenario.to_str().unwrap(), "relay-udp", "udp") {
        let out = dir.path().join("run");
        assert_nat_type(&out, "symmetric");
        // The NAT forgets an idle UDP mapping after 5 s, so alice's 20 s re-polls of sn2 from
        // one socket leave from new public ports: setup()'s perfect score shows each label
        // was translated with the mapping of its own time. Two ports at least (a change):
        // on the loaded 2-core CI machine only two re-polls once fell inside the 55 s run
        // (["42944", "2953"]); the simulator's test, free of wall time, asks for three.
        let labels = csv_rows(&out.join("labels.csv"));
        let ports = common::udp_source_ports(&labels, "alice", "203.0.113.2");
        assert!(ports.len() >= 2, "{ports:?}");
    }
}

/// alice's login event names the NAT type her discovery found.
#[track_caller]
fn assert_nat_type(out: &Path, nat: &str) {
    let events = csv_rows(&out.join("events.csv"));
    let login = events
        .iter()
        .find(|e| e["event"] == "login" && e["node"] == "alice")
        .unwrap();
    assert!(
        login["detail"].contains(&format!("nat={nat} ")),
        "{login:?}"
    );
}

#[test]
fn udp_blocked_login_falls_back_to_tcp_and_media_is_relayed_tcp() {
    setup("both-nat-udp-blocked", "relay-tcp", "tcp");
}

#[test]
fn sigint_mid_run_leaves_nothing_behind() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int");
    let child = Command::new(bin())
        .args(["lab", "one-nat", "--netns", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the network is up and the nodes run (the topology file is written after
    // the namespaces exist), then a little longer.
    let start = Instant::now();
    while !out.join("topology.txt").exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !leftovers(pid, &out).is_empty(),
        "the run should be up by now"
    );
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    let stdout = ok(&output);
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    assert_eq!(leftovers(pid, &out), "");
    // The files written up to the stop are complete.
    assert!(!csv_rows(&out.join("labels.csv")).is_empty());
}

#[test]
fn lab_netns_refuses_a_nat_the_kernel_does_not_give() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("cone.toml");
    std::fs::write(
        &scenario,
        "stop_after = \"5s\"\n[[supernode]]\nname = \"sn1\"\n\
         [[client]]\nname = \"a\"\npassword = \"p\"\nnat = \"full-cone\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["lab"])
        .arg(&scenario)
        .args(["--netns", "--out"])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("full-cone"), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("needs root"), "{err}");
    }
    assert!(err.starts_with("p2ptrace: error:"), "{err}");
}

/// Two small simulator runs of the same scenario with different seeds stand in for a sim
/// and a lab directory (the diff only reads the files).
#[test]
fn diff_prints_both_runs_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (d, seed) in [(&a, "1"), (&b, "2")] {
        ok(&Command::new(bin())
            .args([
                "sim",
                "no-nat",
                "--duration",
                "50s",
                "--seed",
                seed,
                "-q",
                "--out",
            ])
            .arg(d)
            .output()
            .unwrap());
    }
    let text = ok(&Command::new(bin())
        .arg("diff")
        .args([&a, &b])
        .output()
        .unwrap());
    for section in [
        "messages by kind",
        "bytes by class",
        "login time (s)",
        "call set-up (s)",
        "media path",
        "labels by class",
        "events by kind",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    let path = text
        .lines()
        .skip_while(|l| *l != "media path")
        .nth(1)
        .unwrap();
    assert!(
        path.contains("direct-udp") && path.contains("same"),
        "{text}"
    );
    let voice = text
        .lines()
        .find(|l| l.trim_start().starts_with("voice "))
        .unwrap();
    assert!(voice.contains('%'), "{text}");

    // A directory without a capture is one clear error.
    let bad = Command::new(bin())
        .arg("diff")
        .arg(&a)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("p2ptrace: error:") && err.contains("capture.pcapng"),
        "{err}"
    );
}

/// A topology that fails half-way (an MTU the kernel refuses on the second host) removes the
/// namespaces it had already created (the guard's Drop).
#[test]
fn a_failed_build_removes_what_it_created() {
    use p2ptrace::netlab::topo::{HostDef, NatMode, Topology};
    if !root() {
        return;
    }
    let host = |ip: [u8; 4], nat: Option<(NatMode, [u8; 4])>, mtu: u16| HostDef {
        ip: ip.into(),
        nat: nat.map(|(m, p)| (m, p.into())),
        udp_blocked: false,
        nat_udp_timeout: None,
        loss: 0.0,
        mtu,
    };
    let defs = [
        host([198, 51, 100, 10], None, 1500),
        host(
            [192, 168, 1, 2],
            Some((NatMode::PortRestricted, [100, 64, 0, 1])),
            0,
        ),
    ];
    let err = match Topology::build(&defs) {
        Ok(_) => panic!("an MTU of 0 must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("mtu") && !err.contains('\n'), "{err}");
    assert_eq!(leftovers(std::process::id(), Path::new("/nonexistent")), "");
}
