//! Capture points of a `lab --netns` run: one record-only capture per point, and the
//! conversion of its file into the run's pcapng.
//!
//! [`start_capture`] is the single place that decides how a link is captured: p2ptrace's own
//! AF_PACKET recorder ([`crate::live::recording`]) on a thread that entered the point's
//! namespace, so the socket lives there. [`CaptureProcess`] stops it and finalises the file,
//! also from Drop, so a failed run leaves no capture behind.
//!
//! Must not: capture outside the run's namespaces.

use super::NetlabError;
use crate::capture::CaptureReader;
use crate::capture::write::PcapNgWriter;
use crate::live::recording::{Recorded, Recording};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Frames converted per capture point at most.
pub const MAX_FRAMES_PER_POINT: u64 = 50_000_000;

/// A running capture; stop with [`CaptureProcess::stop`] (Drop stops it too).
pub struct CaptureProcess {
    recording: Option<Recording>,
    pub file: PathBuf,
    /// What the stopped capture wrote, or why it failed.
    pub result: Option<Result<Recorded, String>>,
}

/// Starts capturing `iface` in namespace `ns` into `file` (pcapng, nanosecond timestamps) and
/// returns once the capture is listening.
pub fn start_capture(ns: &str, iface: &str, file: &Path) -> Result<CaptureProcess, NetlabError> {
    let name = ns.to_string();
    let prepare: crate::live::recording::Prepare = Box::new(move || super::enter_netns(&name));
    let recording = Recording::start(iface, file, None, Some(prepare)).map_err(|reason| {
        NetlabError::Command {
            command: format!("capture {iface} in {ns}"),
            reason,
        }
    })?;
    Ok(CaptureProcess {
        recording: Some(recording),
        file: file.to_path_buf(),
        result: None,
    })
}

impl CaptureProcess {
    /// Stops the capture and finalises its file; lost frames are reported on stderr.
    pub fn stop(&mut self) {
        let Some(recording) = self.recording.take() else {
            return;
        };
        let result = recording.finish();
        match &result {
            Ok(r) if r.kernel_drops + r.queue_drops > 0 => eprintln!(
                "p2ptrace: warning: capture {} lost {} frames",
                self.file.display(),
                r.kernel_drops + r.queue_drops
            ),
            Err(e) => eprintln!("p2ptrace: warning: capture {}: {e}", self.file.display()),
            Ok(_) => {}
        }
        self.result = Some(result);
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
