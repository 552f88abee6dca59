//! End-to-end tests of `p2ptrace sim`: the paper's three setups give the paper's media
//! paths, runs are byte-identical for a seed, the analyzer decodes exactly the labelled
//! messages, tshark reads every capture cleanly, and the committed captures in
//! `captures/sim/` are what the simulator makes today.

mod common;

use flate2::read::GzDecoder;
use p2ptrace::sim::run::run;
use p2ptrace::sim::scenario::{Overrides, SimScenario};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_p2ptrace");

/// The built-in scenarios committed under `captures/sim/` (all but `large`).
const COMMITTED: &[&str] = &[
    "no-nat",
    "one-nat",
    "both-nat-udp-blocked",
    "conference",
    "phone-home",
    "churn",
];

fn sim_cli(scenario: &str, out: &Path, extra: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(["sim", scenario, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sim {scenario}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `p2ptrace analyze DIR/capture.pcapng --csv DIR/an`; returns `DIR/an`.
fn analyze(dir: &Path) -> PathBuf {
    let an = dir.join("an");
    let o = Command::new(BIN)
        .arg("analyze")
        .arg(dir.join("capture.pcapng"))
        .arg("--csv")
        .arg(&an)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    an
}

use common::csv_rows as rows;

fn events_of<'a>(
    ev: &'a [std::collections::HashMap<String, String>],
    kind: &str,
) -> Vec<&'a std::collections::HashMap<String, String>> {
    ev.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn the_papers_three_setups_give_the_papers_media_paths() {
    let tmp = tempfile::tempdir().unwrap();
    for (scenario, path, nat_login) in [
        ("no-nat", "direct-udp", "nat=public"),
        ("one-nat", "relay-udp", "nat=cone"),
        ("both-nat-udp-blocked", "relay-tcp", "nat=udp-blocked"),
    ] {
        let out = tmp.path().join(scenario);
        let summary = sim_cli(scenario, &out, &["--quiet"]);
        assert!(summary.contains("labels: login"), "{summary}");
        let ev = rows(&out.join("events.csv"));
        let setups = events_of(&ev, "call-setup");
        assert_eq!(setups.len(), 2, "{scenario}: both parties set the call up");
        for s in &setups {
            assert_eq!(s["path"], path, "{scenario}: {s:?}");
        }
        assert_eq!(events_of(&ev, "call-end").len(), 2, "{scenario}");
        let logins = events_of(&ev, "login");
        assert_eq!(logins.len(), 2, "{scenario}");
        assert!(logins.iter().all(|l| l["ok"] == "true"));
        let alice = logins.iter().find(|l| l["node"] == "alice").unwrap();
        assert!(alice["detail"].contains(nat_login), "{scenario}: {alice:?}");
        // Every class occurs; a 30 s call of 30 ms frames both ways is ~2,000 voice frames
        // per direction even when relayed.
        let labels = rows(&out.join("labels.csv"));
        for class in ["login", "lookup", "signalling", "media"] {
            assert!(
                labels.iter().any(|l| l["class"] == class),
                "{scenario}: no {class} label"
            );
        }
        let voice = labels.iter().filter(|l| l["msg_type"] == "voice").count();
        assert!(voice >= 1900, "{scenario}: {voice} voice labels");
        // Labels at the core carry public addresses only (NATs translated them).
        assert!(
            labels
                .iter()
                .all(|l| !l["src_addr"].starts_with("192.168.") && l["capture"] == "core"),
            "{scenario}"
        );
    }
}

#[test]
fn login_behind_the_udp_blocking_firewall_falls_back_to_tcp_after_the_probes_time_out() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    sim_cli(
        "both-nat-udp-blocked",
        &out,
        &["--quiet", "--capture-at", "alice"],
    );
    let labels = rows(&out.join("labels.csv"));
    let alice: Vec<_> = labels.iter().filter(|l| l["node"] == "alice").collect();
    let first_udp = alice.iter().position(|l| l["transport"] == "udp").unwrap();
    let first_register = alice
        .iter()
        .position(|l| l["msg_type"] == "sn-register")
        .unwrap();
    assert!(first_udp < first_register, "UDP probes come first");
    assert_eq!(alice[first_register]["transport"], "tcp");
    let t = |i: usize| alice[i]["ts"].parse::<f64>().unwrap();
    assert!(
        t(first_register) - t(first_udp) >= 2.0,
        "TCP only after the UDP probes timed out"
    );
    // At alice's own interface her private address appears.
    assert!(alice.iter().all(|l| l["src_addr"] == "192.168.1.2"));
    assert!(alice.iter().all(|l| l["capture"] == "alice"));
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn same_scenario_and_seed_give_byte_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let s = SimScenario::load("conference", &Overrides::default()).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run(&s, &a, |_| {}).unwrap();
    run(&s, &b, |_| {}).unwrap();
    for f in ["capture.pcapng", "labels.csv", "events.csv"] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs");
    }
    let other = SimScenario::load(
        "conference",
        &Overrides {
            seed: Some(99),
            ..Overrides::default()
        },
    )
    .unwrap();
    let c = tmp.path().join("c");
    run(&other, &c, |_| {}).unwrap();
    assert!(read(&a.join("capture.pcapng")) != read(&c.join("capture.pcapng")));
}

#[test]
fn the_analyzer_decodes_exactly_the_labelled_messages() {
    let tmp = tempfile::tempdir().unwrap();
    for scenario in ["one-nat", "both-nat-udp-blocked", "conference"] {
        let out = tmp.path().join(scenario);
        sim_cli(scenario, &out, &["--quiet"]);
        let an = analyze(&out);
        let labels = rows(&out.join("labels.csv"));
        let msgs = rows(&an.join("messages.csv"));
        assert_eq!(msgs.len(), labels.len(), "{scenario}");
        // The same Skylark messages, type by type and class by class.
        let key = |t: &str, c: &str| format!("{t}/{c}");
        let mut a: Vec<String> = labels
            .iter()
            .filter(|l| !l["msg_type"].starts_with("http-") && !l["msg_type"].starts_with("stun-"))
            .map(|l| key(&l["msg_type"], &l["class"]))
            .collect();
        let mut b: Vec<String> = msgs
            .iter()
            .filter(|m| m["protocol"] == "skylark")
            .map(|m| key(&m["msg_type"], &m["class"]))
            .collect();
        a.sort_unstable();
        b.sort_unstable();
        assert!(
            a == b,
            "{scenario}: Skylark messages differ from the labels"
        );
    }
}

/// tshark with every checksum check on: (malformed, bad checksums, TCP analysis flags as
/// "destination<TAB>expert messages").
fn tshark_check(capture: &Path) -> Option<(usize, usize, Vec<String>)> {
    let run = |filter: &str, fields: &[&str]| -> Option<String> {
        let mut c = Command::new("tshark");
        c.arg("-r").arg(capture).args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-Y",
            filter,
            "-T",
            "fields",
        ]);
        for f in fields {
            c.args(["-e", f]);
        }
        let o = c.output().ok()?;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Some(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let malformed = run("_ws.malformed", &["frame.number"])?.lines().count();
    let bad = run(
        "ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0",
        &["frame.number"],
    )?
    .lines()
    .count();
    let flags: Vec<String> = run("tcp.analysis.flags", &["ip.dst", "_ws.expert.message"])?
        .lines()
        .map(String::from)
        .collect();
    Some((malformed, bad, flags))
}

#[test]
fn tshark_reads_every_simulated_capture_cleanly() {
    if Command::new("tshark").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required under CI (scripts/setup.sh installs it)"
        );
        eprintln!("skipped: tshark not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for scenario in [
        "no-nat",
        "one-nat",
        "both-nat-udp-blocked",
        "conference",
        "churn",
    ] {
        // Every capture point (hosts, NATs' public sides, the core): frames valid everywhere.
        let all = tmp.path().join(format!("{scenario}-all"));
        sim_cli(scenario, &all, &["--quiet", "--capture-at", "all"]);
        let (malformed, bad, _) = tshark_check(&all.join("capture.pcapng")).unwrap();
        assert_eq!(malformed, 0, "{scenario}: malformed packets");
        assert_eq!(bad, 0, "{scenario}: bad checksums");
        // TCP analysis on one capture point (tshark does not separate interfaces, so the
        // same segment seen at two points would look like a retransmission).
        let out = tmp.path().join(scenario);
        let summary = sim_cli(scenario, &out, &["--quiet"]);
        let (_, _, flags) = tshark_check(&out.join("capture.pcapng")).unwrap();
        let lost: u64 = summary
            .split(", ")
            .find_map(|p| p.strip_suffix(" lost on links"))
            .and_then(|n| n.parse().ok())
            .unwrap();
        // A receiver reopening its window is what real stacks do, lossy or not.
        // Segments to a host that crashed (churn's sn2) are retransmitted until the sender
        // gives up, as real stacks do.
        let crashed = if scenario == "churn" {
            "203.0.113.2\t"
        } else {
            "\u{0}"
        };
        let flags: Vec<String> = flags
            .into_iter()
            .filter(|f| !f.ends_with("\tTCP window update") && !f.starts_with(crashed))
            .collect();
        if lost == 0 {
            assert!(
                flags.is_empty(),
                "{scenario}: TCP analysis flags on a lossless network: {flags:?}"
            );
        } else {
            // Only what loss explains: retransmissions, the gaps before them, the
            // duplicate ACKs they cause.
            let explained = [
                "retransmission",
                "previous segment",
                "Duplicate ACK",
                "ACKed segment that wasn't captured",
                "out-of-order",
                "Out-Of-Order",
            ];
            for f in &flags {
                assert!(
                    explained.iter().any(|e| f.contains(e)),
                    "{scenario}: unexpected TCP analysis flag {f:?}"
                );
            }
        }
    }
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    GzDecoder::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .read_to_end(&mut v)
        .unwrap();
    v
}

fn committed_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/sim")
        .join(name)
}

#[test]
fn committed_simulator_captures_are_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    for name in COMMITTED {
        let dir = committed_dir(name);
        let s = SimScenario::load(name, &Overrides::default()).unwrap();
        let out = tmp.path().join(name);
        run(&s, &out, |_| {}).unwrap();
        for f in ["capture.pcapng", "labels.csv", "events.csv"] {
            let fresh = read(&out.join(f));
            let committed = gunzip(&dir.join(format!("{f}.gz")));
            assert!(
                fresh == committed,
                "captures/sim/{name}/{f}.gz is stale: run scripts/regen-sim-captures.sh"
            );
        }
        let expect = std::fs::read_to_string(dir.join("EXPECT.md")).unwrap();
        let cmd = format!("p2ptrace sim {name} --out captures/sim/{name}");
        assert!(expect.contains(&cmd), "{name}: EXPECT.md names the command");
    }
}

#[test]
fn tcp_messages_share_and_span_segments_as_on_real_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = sim_cli("both-nat-udp-blocked", &tmp.path().join("o"), &["--quiet"]);
    let line = summary.lines().find(|l| l.starts_with("tcp: ")).unwrap();
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() == 2 && nums[0] > 0 && nums[1] > 0, "{line}");
}

#[test]
fn a_nat_udp_timeout_shorter_than_the_repoll_gives_new_public_ports() {
    // The lab's symmetric-NAT scenario forgets idle UDP mappings after 5 s; the simulator's
    // NAT does the same with it, and keeps one mapping at its default of 120 s.
    let tmp = tempfile::tempdir().unwrap();
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/netlab/one-symmetric-nat.toml");
    let short = tmp.path().join("short");
    sim_cli(file.to_str().unwrap(), &short, &["--quiet"]);
    let labels = rows(&short.join("labels.csv"));
    let ports = common::udp_source_ports(&labels, "alice", "203.0.113.2");
    assert!(ports.len() >= 3, "{ports:?}");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("nat_udp_timeout = \"5s\"\n", "");
    let default = tmp.path().join("default.toml");
    std::fs::write(&default, text).unwrap();
    let long = tmp.path().join("long");
    sim_cli(default.to_str().unwrap(), &long, &["--quiet"]);
    let labels = rows(&long.join("labels.csv"));
    let ports = common::udp_source_ports(&labels, "alice", "203.0.113.2");
    assert_eq!(ports.len(), 1, "{ports:?}");
}

#[test]
fn an_ipv6_overlay_runs_and_analyzes() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sim/no-nat.toml"),
    )
    .unwrap()
    .replace(
        "stop_after = \"55s\"",
        "stop_after = \"55s\"\n[sim]\nipv6 = true",
    );
    let file = tmp.path().join("v6.toml");
    std::fs::write(&file, text).unwrap();
    let out = tmp.path().join("out");
    sim_cli(file.to_str().unwrap(), &out, &["--quiet"]);
    let ev = rows(&out.join("events.csv"));
    assert!(
        events_of(&ev, "call-setup")
            .iter()
            .all(|e| e["path"] == "direct-udp")
    );
    let labels = rows(&out.join("labels.csv"));
    assert!(labels.len() > 2000);
    assert!(
        labels
            .iter()
            .all(|l| l["src_addr"].starts_with("2001:db8:"))
    );
    let an = analyze(&out);
    assert_eq!(rows(&an.join("messages.csv")).len(), labels.len());
    if let Some((malformed, bad, _)) = tshark_check(&out.join("capture.pcapng")) {
        assert_eq!((malformed, bad), (0, 0));
    }
}

#[test]
fn bad_scenarios_and_capture_points_get_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "seed = 1\n[network\n").unwrap();
    let bad = bad.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        // toml's own message draws the source over several lines; ours names the place.
        (
            &["sim", bad, "--out"],
            2,
            "bad.toml: TOML line 2, column 9: unclosed table",
        ),
        (
            &["sim", "no-such-scenario", "--out"],
            2,
            "built-in scenario",
        ),
        (
            &["sim", "no-nat", "--capture-at", "mars", "--out"],
            2,
            "mars",
        ),
        (
            &["sim", "no-nat", "--capture-at", "nat:alice", "--out"],
            2,
            "not behind a NAT",
        ),
        (&["sim", "no-nat", "--duration", "soon", "--out"], 2, "soon"),
    ];
    for (args, code, text) in cases {
        let o = Command::new(BIN)
            .args(*args)
            .arg(tmp.path().join("x"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
        // One line of error (clap adds its "For more information" hint to usage errors).
        let lines = err
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("For more"));
        assert_eq!(lines.count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    // An output directory that cannot be created: exit 1, one line.
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let o = Command::new(BIN)
        .args(["sim", "no-nat", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
}
