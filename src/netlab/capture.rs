//! Capture points of a `lab --netns` run: one capture process per point, and the conversion
//! of its file into the run's pcapng.
//!
//! [`start_capture`] is the single place that decides how a link is captured (today
//! `ip netns exec NS tcpdump -U -i IFACE -w FILE`); [`CaptureProcess`] stops it with SIGTERM
//! and waits, also from Drop, so a failed run leaves no capture process behind.
//!
//! Must not: capture outside the run's namespaces.

use super::NetlabError;
use crate::capture::CaptureReader;
use crate::capture::write::PcapNgWriter;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a capture process may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a capture process may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames converted per capture point at most.
pub const MAX_FRAMES_PER_POINT: u64 = 50_000_000;

/// A running capture; stop with [`CaptureProcess::stop`] (Drop stops it too).
pub struct CaptureProcess {
    child: Option<Child>,
    pub file: PathBuf,
}

/// Starts capturing `iface` in namespace `ns` into `file` (pcap, nanosecond timestamps) and
/// returns once the capture is listening.
pub fn start_capture(ns: &str, iface: &str, file: &Path) -> Result<CaptureProcess, NetlabError> {
    let command = format!(
        "ip netns exec {ns} tcpdump -i {iface} -w {}",
        file.display()
    );
    let fail = |reason: String| NetlabError::Command {
        command: command.clone(),
        reason,
    };
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", ns, "tcpdump", "-U", "-n", "-s", "0", "-Z", "root",
        ])
        .args(["--time-stamp-precision=nano", "-i", iface, "-w"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let Some(stderr) = child.stderr.take() else {
        return Err(fail("no stderr".into()));
    };
    let mut proc = CaptureProcess {
        child: Some(child),
        file: file.to_path_buf(),
    };
    // tcpdump says "listening on IFACE" once its socket is bound; then every later packet is
    // captured. Its later stderr lines are drained so it never blocks on a full pipe.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut sent = false;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if !sent {
                let _ = tx.send(line);
                sent = true;
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.contains("listening on") => Ok(proc),
        Ok(line) => {
            proc.stop();
            Err(fail(line))
        }
        Err(_) => {
            proc.stop();
            Err(fail("did not start listening".into()))
        }
    }
}

impl CaptureProcess {
    /// SIGTERM (tcpdump flushes and exits), then waits; kills it after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for CaptureProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies the capture file `from` into a new pcapng `to` with one interface named `point`.
/// Returns the number of frames.
pub fn to_pcapng(from: &Path, to: &Path, point: &str) -> Result<u64, NetlabError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| NetlabError::Output {
            path: path.clone(),
            source: e,
        }
    };
    let mut reader = CaptureReader::open(from).map_err(|e| NetlabError::Command {
        command: format!("read {}", from.display()),
        reason: e.to_string(),
    })?;
    let file = std::fs::File::create(to).map_err(io_err(to))?;
    let mut w =
        PcapNgWriter::new(BufWriter::new(file), "p2ptrace lab --netns").map_err(io_err(to))?;
    let mut iface = None;
    let mut n = 0u64;
    while n < MAX_FRAMES_PER_POINT {
        let frame = match reader.next_frame() {
            Ok(Some(f)) => f,
            // A capture cut short by the stop keeps every frame before the damage.
            Ok(None) | Err(_) => break,
        };
        let id = match iface {
            Some(id) => id,
            None => {
                let id = w
                    .add_interface(point, frame.linktype, 0)
                    .map_err(io_err(to))?;
                iface = Some(id);
                id
            }
        };
        w.write_packet(id, frame.ts, frame.data, frame.orig_len)
            .map_err(io_err(to))?;
        n += 1;
    }
    if iface.is_none() {
        w.add_interface(point, crate::capture::LinkType::ETHERNET, 0)
            .map_err(io_err(to))?;
    }
    w.finish().and_then(|mut b| b.flush()).map_err(io_err(to))?;
    Ok(n)
}
