//! End-to-end test of `p2ptrace peer`: a login server, a home server, a super node and two
//! clients, each its own process on its own loopback address, wired by the command-line
//! options a user would type; the clients log in, one looks the other up over stdin, and
//! every process stops cleanly on SIGINT with its state saved.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

struct Node {
    name: &'static str,
    child: Child,
    lines: Receiver<String>,
}

fn spawn(name: &'static str, args: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_p2ptrace"))
        .arg("peer")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start p2ptrace peer");
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Node {
        name,
        child,
        lines: rx,
    }
}

impl Node {
    /// Waits (bounded) for a stdout line containing `needle`; returns it.
    #[track_caller]
    fn expect(&self, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("{}: no line with {needle:?} within {within:?}", self.name);
    }

    fn send(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// SIGINT, then the exit status (killed after 10 s).
    fn interrupt(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }
}

#[test]
fn peers_on_loopback_log_in_look_up_and_stop_cleanly() {
    let state = tempfile::tempdir().unwrap();
    let dir = |n: &str| state.path().join(n).to_str().unwrap().to_string();
    let ls = spawn(
        "ls",
        &[
            "login-server",
            "--listen",
            "127.0.71.1:33034",
            "--state",
            &dir("ls"),
            "--account",
            "alice:pw-a",
            "--account",
            "bob:pw-b",
            "--fast-hash",
            "--bootstrap",
            "127.0.71.3:33033",
        ],
    );
    let key_line = ls.expect("public key", Duration::from_secs(10));
    let key = key_line.rsplit(' ').next().unwrap().to_string();
    assert_eq!(key.len(), 64, "{key_line}");
    let home = spawn("home", &["home", "--listen", "127.0.71.2:8080"]);
    let sn = spawn(
        "sn",
        &[
            "supernode",
            "--listen",
            "127.0.71.3:33033",
            "--ls-key",
            &key,
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let client = |name: &'static str, pw: &str, addr: &str| {
        spawn(
            name,
            &[
                "client",
                "--name",
                name,
                "--password",
                pw,
                "--listen",
                addr,
                "--state",
                &dir(name),
                "--ls",
                "127.0.71.1:33034",
                "--home",
                "127.0.71.2:8080",
                "--bootstrap",
                "127.0.71.3:33033",
                "--ls-key",
                &key,
            ],
        )
    };
    let mut alice = client("alice", "pw-a", "127.0.71.4:40000");
    let bob = client("bob", "pw-b", "127.0.71.5:40001");
    for c in [&alice, &bob] {
        let line = c.expect("login ", Duration::from_secs(20));
        assert!(
            line.contains("login ok sn=127.0.71.3:33033"),
            "{}: {line}",
            c.name
        );
    }
    alice.send("lookup bob");
    let found = alice.expect("lookup bob", Duration::from_secs(15));
    assert!(found.contains("found at 127.0.71.5:40001"), "{found}");

    for node in [alice, bob, sn, home, ls] {
        let name = node.name;
        assert_eq!(node.interrupt(), Some(0), "{name} did not stop cleanly");
    }
    assert!(
        Path::new(&dir("ls")).read_dir().unwrap().next().is_some(),
        "LS state saved"
    );
    assert!(
        Path::new(&dir("alice"))
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "client state saved"
    );
}
