//! `p2ptrace live`, `interfaces` and `lab --capture` end to end on the loopback interface.
//! Capturing needs root (CI runs as root): those tests print why and pass when not root.
//! Traffic goes only to 127.88.0.0/16 addresses; every child process is killed on drop.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[track_caller]
fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipping {test}: capturing on lo needs root (CI runs as root)");
    true
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2ptrace")
}

/// A running `p2ptrace`, killed if the test ends before it does.
struct Running(Option<Child>);

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(bin());
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Running(Some(cmd.spawn().unwrap()))
    }

    fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }

    /// Waits (at most `limit`) for the exit; kills it past the limit and fails.
    #[track_caller]
    fn wait(mut self, limit: Duration) -> Output {
        let started = Instant::now();
        let mut child = self.0.take().unwrap();
        loop {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "p2ptrace did not end within {limit:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `p2ptrace live lo -q -w DIR/live.pcapng --csv DIR/csv …` run in a fresh directory.
struct LiveLo {
    /// Kept for its lifetime: the directory goes when the test ends.
    _dir: tempfile::TempDir,
    pcap: PathBuf,
    csv: PathBuf,
    run: Running,
}

/// Starts `p2ptrace live lo` recording and reporting into a fresh directory, with `extra`
/// arguments and `env`, and returns once the capture is open (its recording exists).
fn live_lo(extra: &[&str], env: &[(&str, &str)]) -> LiveLo {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, csv) = (dir.path().join("live.pcapng"), dir.path().join("csv"));
    let mut args = vec!["live", "lo", "-q", "-w", pcap.to_str().unwrap()];
    args.extend(["--csv", csv.to_str().unwrap()]);
    args.extend(extra);
    let run = Running::start(&args, env);
    wait_for(&pcap);
    LiveLo {
        _dir: dir,
        pcap,
        csv,
        run,
    }
}

/// Waits until `path` exists (the capture is open once its -w file is created).
#[track_caller]
fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The socket is open before the file is created; give the capture thread a moment.
    std::thread::sleep(Duration::from_millis(200));
}

/// `(name, bytes)` of every ```hex vector=NAME block in PROTOCOL.md.
fn vectors() -> Vec<Vec<u8>> {
    common::skylark_vectors()
        .into_iter()
        .map(|(_, b)| b)
        .collect()
}

/// Sends every Skylark test vector as a UDP datagram from 127.88.`net`.1 to .2, then all of
/// them as one TCP stream between the same addresses. Returns the number of vectors.
fn send_skylark(net: u8) -> usize {
    let vectors = vectors();
    let a: SocketAddr = format!("127.88.{net}.1:0").parse().unwrap();
    let b: SocketAddr = format!("127.88.{net}.2:0").parse().unwrap();
    let rx = UdpSocket::bind(b).unwrap();
    let tx = UdpSocket::bind(a).unwrap();
    let to = rx.local_addr().unwrap();
    for v in &vectors {
        tx.send_to(v, to).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let listener = TcpListener::bind(b).unwrap();
    let server = listener.local_addr().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&a.into()).unwrap();
    sock.connect(&server.into()).unwrap();
    let mut client: TcpStream = sock.into();
    let (mut accepted, _) = listener.accept().unwrap();
    for v in &vectors {
        client.write_all(v).unwrap();
    }
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    accepted.read_to_end(&mut sink).unwrap();
    drop(accepted);
    drop(client);
    std::thread::sleep(Duration::from_millis(100));
    vectors.len()
}

fn frames_in(paths: &[PathBuf]) -> u64 {
    let mut n = 0;
    for p in paths {
        let mut r = p2ptrace::capture::CaptureReader::open(p).unwrap();
        while r.next_frame().unwrap().is_some() {
            n += 1;
        }
    }
    n
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn analyze(input: &Path, csv: &Path) {
    let out = Command::new(bin())
        .args(["analyze", "-q"])
        .arg(input)
        .arg("--csv")
        .arg(csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn live_reports_equal_offline_analysis_of_its_recording() {
    if skip_unless_root("live_reports_equal_offline_analysis_of_its_recording") {
        return;
    }
    parity("afpacket", 1);
}

#[cfg(feature = "libpcap")]
#[test]
fn libpcap_reports_equal_offline_analysis_of_its_recording() {
    if skip_unless_root("libpcap_reports_equal_offline_analysis_of_its_recording") {
        return;
    }
    parity("libpcap", 6);
}

/// Live on lo with `backend` while Skylark vectors go over 127.88.`net`.0/24; the recording
/// analysed offline gives byte-identical reports.
fn parity(backend: &str, net: u8) {
    let LiveLo {
        _dir: dir,
        pcap,
        csv: live_csv,
        run,
    } = live_lo(&["--duration", "4s", "--backend", backend], &[]);
    let off_csv = dir.path().join("offline");
    let n = send_skylark(net);
    let out = run.wait(Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    analyze(&pcap, &off_csv);
    let mut names: Vec<_> = std::fs::read_dir(&off_csv)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let a = std::fs::read_to_string(live_csv.join(name)).unwrap();
        let b = std::fs::read_to_string(off_csv.join(name)).unwrap();
        if a != b {
            let diff = a
                .lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("live:    {x}\noffline: {y}"))
                .unwrap_or_else(|| format!("{} vs {} lines", a.lines().count(), b.lines().count()));
            panic!("{name:?} differs between live and offline:\n{diff}");
        }
    }
    // Our two flows carried every vector once each, as Skylark.
    let flows = common::csv_rows(&live_csv.join("flows.csv"));
    let ours: Vec<_> = flows
        .iter()
        .filter(|r| r["orig_addr"] == format!("127.88.{net}.1"))
        .collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours.iter().all(|r| r["service"] == "skylark"), "{ours:?}");
    let uids: Vec<&String> = ours.iter().map(|r| &r["uid"]).collect();
    let msgs = common::csv_rows(&live_csv.join("messages.csv"));
    let count = msgs.iter().filter(|m| uids.contains(&&m["uid"])).count();
    assert_eq!(count, 2 * n);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("interface lo ({backend})")),
        "{summary}"
    );
    assert!(summary.contains("queue dropped 0"), "{summary}");
}

#[test]
fn sigterm_ends_cleanly_with_every_report() {
    if skip_unless_root("sigterm_ends_cleanly_with_every_report") {
        return;
    }
    let LiveLo {
        _dir,
        pcap,
        csv,
        run,
    } = live_lo(&[], &[]);
    send_skylark(2);
    unsafe { libc::kill(run.pid(), libc::SIGTERM) };
    let out = run.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    // Flows still open at the signal were flushed into the reports.
    let flows = common::csv_rows(&csv.join("flows.csv"));
    let ours = flows
        .iter()
        .filter(|r| r["orig_addr"] == "127.88.2.1")
        .count();
    assert_eq!(ours, 2);
    assert!(frames_in(&[pcap]) > 0);
    assert!(csv.join("hosts.csv").exists() && csv.join("lookups.csv").exists());
}

#[test]
fn count_stops_after_exactly_n_frames() {
    if skip_unless_root("count_stops_after_exactly_n_frames") {
        return;
    }
    // `--messages none` too: live applies it like analyze (messages.csv keeps its header,
    // flows.csv still counts the messages).
    let LiveLo {
        _dir,
        pcap,
        csv,
        run,
    } = live_lo(&["--count", "25", "--messages", "none"], &[]);
    send_skylark(3);
    let out = run.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("frames captured 25, analysed 25"),
        "{summary}"
    );
    assert_eq!(frames_in(&[pcap]), 25);
    let messages = std::fs::read_to_string(csv.join("messages.csv")).unwrap();
    assert_eq!(messages.lines().count(), 1, "{messages}");
    let counted: u64 = common::csv_rows(&csv.join("flows.csv"))
        .iter()
        .flat_map(|r| {
            ["login", "lookup", "signalling", "keepalive", "media"]
                .map(|c| r[&format!("msgs_{c}")].parse::<u64>().unwrap())
        })
        .sum();
    assert!(
        counted > 0,
        "flows.csv counts the messages messages.csv leaves out"
    );
}

#[test]
fn duration_ends_the_run_on_time() {
    if skip_unless_root("duration_ends_the_run_on_time") {
        return;
    }
    let started = Instant::now();
    let out = Running::start(&["live", "lo", "-q", "--duration", "1s"], &[])
        .wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn rotation_spreads_every_frame_over_several_files() {
    if skip_unless_root("rotation_spreads_every_frame_over_several_files") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // New files are created after the drop to nobody: the directory must let it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let base = dir.path().join("ring.pcapng");
    let first = dir.path().join("ring-00000.pcapng");
    let run = Running::start(
        &[
            "live",
            "lo",
            "-q",
            "--count",
            "150",
            "-w",
            base.to_str().unwrap(),
            "--rotate-size",
            "4k",
        ],
        &[],
    );
    wait_for(&first);
    send_skylark(4);
    send_skylark(4);
    let out = run.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(frames_in(&files), 150);
    // Read in order they are one trace: offline analysis takes them all.
    let csv = dir.path().join("csv");
    let mut cmd = Command::new(bin());
    cmd.args(["analyze", "-q"])
        .args(&files)
        .arg("--csv")
        .arg(&csv);
    assert!(cmd.output().unwrap().status.success());
}

#[test]
fn missing_interface_is_one_error_line_and_exit_1() {
    let out = Command::new(bin())
        .args(["live", "nosuch0", "--count", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("p2ptrace: error: no interface named nosuch0"),
        "{err}"
    );
}

#[cfg(not(feature = "libpcap"))]
#[test]
fn filters_need_the_libpcap_build() {
    let out = Command::new(bin())
        .args(["live", "lo", "-f", "udp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("needs the libpcap backend"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[cfg(feature = "libpcap")]
#[test]
fn libpcap_filter_keeps_only_matching_frames() {
    if skip_unless_root("libpcap_filter_keeps_only_matching_frames") {
        return;
    }
    let LiveLo {
        _dir,
        pcap,
        csv,
        run,
    } = live_lo(
        &[
            "-f",
            "udp and host 127.88.5.2",
            "--immediate",
            "--duration",
            "3s",
        ],
        &[],
    );
    let n = send_skylark(5);
    let out = run.wait(Duration::from_secs(15));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(libpcap)"));
    assert_eq!(frames_in(&[pcap]), n as u64);
    let flows = common::csv_rows(&csv.join("flows.csv"));
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0]["proto"], "udp");
}

/// The binary, copied where an unprivileged user can run it.
fn public_copy(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("p2ptrace");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

#[test]
fn without_permission_one_line_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = if is_root() {
        if !common::have_tool("setpriv") {
            eprintln!("skipping: setpriv not installed");
            return;
        }
        let copy = public_copy(dir.path());
        Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(copy)
            .args(["live", "lo", "--count", "1"])
            .output()
            .unwrap()
    } else {
        Command::new(bin())
            .args(["live", "lo", "--count", "1"])
            .output()
            .unwrap()
    };
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("p2ptrace: error: capturing on lo needs root or CAP_NET_RAW"),
        "{err}"
    );
}

#[test]
fn parsers_run_as_nobody_after_the_capture_opens() {
    use std::os::unix::fs::MetadataExt;
    if skip_unless_root("parsers_run_as_nobody_after_the_capture_opens") {
        return;
    }
    let LiveLo {
        _dir,
        pcap,
        csv,
        run,
    } = live_lo(&["--duration", "1s"], &[("P2PTRACE_DEBUG_PRIVS", "1")]);
    let out = run.wait(Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let nobody = p2ptrace::live::privs::lookup("nobody").unwrap();
    let err = stderr(&out);
    let want = format!(
        "p2ptrace: debug: analysis thread Uid:\t{0}\t{0}\t{0}\t{0}",
        nobody.uid
    );
    assert!(err.lines().any(|l| l == want), "{err}");
    // Every thread, also those started before the drop (the report writers).
    let threads: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("p2ptrace: debug: thread "))
        .collect();
    // The main thread and the two report writers at least. Not by name: a thread names
    // itself once it first runs, so a writer just started may still show the process name.
    assert!(threads.len() >= 3, "{err}");
    let dropped = format!("Uid:\t{0}\t{0}\t{0}\t{0}", nobody.uid);
    for line in &threads {
        assert!(line.ends_with(&dropped), "{line}");
    }
    assert_eq!(std::fs::metadata(&pcap).unwrap().uid(), nobody.uid);
    // Every report was written although the late ones are opened after the drop.
    for name in ["flows.csv", "messages.csv", "phonehome.csv", "lookups.csv"] {
        let m = std::fs::metadata(csv.join(name)).unwrap();
        assert_eq!(m.uid(), nobody.uid, "{name}");
        assert!(m.len() > 0, "{name} is empty");
    }
}

#[test]
fn live_and_interfaces_have_help_with_examples() {
    for cmd in ["live", "interfaces"] {
        let out = Command::new(bin()).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{cmd}: {text}");
    }
}

#[test]
fn interfaces_lists_loopback_with_its_address() {
    let out = Command::new(bin()).arg("interfaces").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lo = text
        .lines()
        .find(|l| l.starts_with("lo "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(lo.contains(" up ") && lo.contains("127.0.0.1/8"), "{lo}");
    let want = if is_root() {
        "yes"
    } else {
        "no: needs root or CAP_NET_RAW"
    };
    assert!(lo.contains(want), "{lo}");
}

/// The committed lab capture (scripts/regen-lab-capture.sh): every label matched and
/// classified right over the real kernel stack.
#[test]
fn committed_lab_capture_scores_perfectly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/lab/basic-call");
    let out = Command::new(bin())
        .arg("score")
        .arg(dir.join("capture.pcapng.gz"))
        .arg("--labels")
        .arg(dir.join("labels.csv.gz"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_score_perfect(&String::from_utf8_lossy(&out.stdout));
}

#[track_caller]
fn assert_score_perfect(json: &str) {
    let field = |name: &str| -> u64 {
        let at = json.find(&format!("\"{name}\": ")).unwrap() + name.len() + 4;
        json[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(field("matched"), field("labels"), "{json}");
    assert_eq!(field("unlabelled"), 0, "{json}");
    for class in ["login", "lookup", "signalling", "keepalive", "media"] {
        let at = json.find(&format!("\"{class}\": {{")).unwrap();
        let part = &json[at..at + 90];
        assert!(
            part.contains("\"precision\": 1.000000, \"recall\": 1.000000"),
            "{class}: {part}"
        );
    }
}

/// A short lab (login, lookup, a 3 s call) on its own loopback network, captured live.
const SHORT_LAB: &str = r#"
name = "short-call"
seed = 3
stop_after = "9s"
network = "127.89.0.0"
[timers]
keepalive_s = 2
[login_server]
name = "ls"
hash = "fast"
[home]
name = "home"
latest_version = "1.0.0"
[[supernode]]
name = "sn1"
[[client]]
name = "alice"
password = "a"
buddies = ["bob"]
[[client]]
name = "bob"
password = "b"
[[step]]
at = "3s"
node = "alice"
command = "lookup bob"
[[step]]
at = "4s"
node = "alice"
command = "call bob"
[[step]]
at = "7s"
node = "alice"
command = "hangup"
"#;

#[test]
fn lab_capture_records_the_lab_and_scores_perfectly() {
    if skip_unless_root("lab_capture_records_the_lab_and_scores_perfectly") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("short.toml");
    std::fs::write(&scenario, SHORT_LAB).unwrap();
    let out_dir = dir.path().join("out");
    let out = Running::start(
        &[
            "lab",
            scenario.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--capture",
        ],
        &[],
    )
    .wait(Duration::from_secs(40));
    assert!(out.status.success(), "{}", stderr(&out));
    let score = Command::new(bin())
        .arg("score")
        .arg(out_dir.join("capture.pcapng"))
        .arg("--labels")
        .arg(out_dir.join("labels.csv"))
        .args(["--json", "--tolerance-ms", "10"])
        .output()
        .unwrap();
    assert!(score.status.success(), "{}", stderr(&score));
    assert_score_perfect(&String::from_utf8_lossy(&score.stdout));
}

/// A network namespace created for one test, deleted on drop (also when the test fails).
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Option<Netns> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .ok()?
            .success();
        ok.then(|| Netns(name.to_string()))
    }

    #[track_caller]
    fn run(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn interface_going_down_is_one_error_line_with_reports_written() {
    if skip_unless_root("interface_going_down_is_one_error_line_with_reports_written") {
        return;
    }
    if !Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("skipping: iproute2 not installed");
        return;
    }
    let Some(ns) = Netns::create("p2ptrace-live-down") else {
        eprintln!("skipping: cannot create a network namespace here");
        return;
    };
    ns.run(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ns.run(&["ip", "link", "set", "d0", "up"]);
    ns.run(&["ip", "link", "set", "d1", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("d.pcapng");
    let csv = dir.path().join("csv");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0, bin(), "live", "d0", "-q", "-w"])
        .arg(&pcap)
        .arg("--csv")
        .arg(&csv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = Running(Some(cmd.spawn().unwrap()));
    wait_for(&pcap);
    ns.run(&["ip", "link", "set", "d0", "down"]);
    let out = run.wait(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with("p2ptrace: error: interface d0 went down"),
        "{err}"
    );
    assert!(csv.join("flows.csv").exists() && csv.join("hosts.csv").exists());
    let _ = frames_in(&[pcap]); // complete and readable
}

/// `p2ptrace live` in a real terminal opens the TUI in follow mode over the live stream;
/// quitting it stops the capture, restores the terminal and still writes every report.
#[test]
fn live_in_a_terminal_shows_the_tui_and_quitting_writes_the_reports() {
    if skip_unless_root("live_in_a_terminal_shows_the_tui_and_quitting_writes_the_reports") {
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("csv");
    let name = format!("p2ptrace-live-{}", std::process::id());
    let cmd = format!(
        "{} live lo --no-color --csv {}; echo LIVE-EXIT=$?; sleep 30",
        bin(),
        csv.display()
    );
    let ok = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "100", "-y", "30"])
        .args(["sh", "-c", &cmd])
        .status()
        .unwrap();
    assert!(ok.success());
    let t = common::Tmux(name);
    t.wait_for("Timeline [follow]");
    send_skylark(9);
    t.keys(&["2"]);
    let p = t.wait_for("127.88.9.1");
    assert!(p.contains("lo |"), "status bar names the interface:\n{p}");
    t.keys(&["q"]);
    let p = t.wait_for("LIVE-EXIT=0");
    assert!(p.contains("live capture"), "summary after the UI:\n{p}");
    assert!(
        !p.contains("Timeline [follow]"),
        "alternate screen left:\n{p}"
    );
    let flows = common::csv_rows(&csv.join("flows.csv"));
    assert!(flows.iter().any(|r| r["orig_addr"] == "127.88.9.1"));
    assert!(csv.join("messages.csv").exists() && csv.join("hosts.csv").exists());
}
