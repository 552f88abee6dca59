//! Capture points of a `lab --netns` run: one record-only capture per point, written straight
//! into the run's pcapng for that point (its interface named after the point).
//!
//! [`start_capture`] is the single place that decides how a link is captured: p2ptrace's own
//! AF_PACKET recorder ([`crate::live::recording`]) on a thread that entered the point's
//! namespace, so the socket lives there. [`CaptureProcess`] stops it and finalises the file,
//! also from Drop, so a failed run leaves no capture behind.
//!
//! Must not: capture outside the run's namespaces.

use super::NetlabError;
use crate::live::recording::{Recorded, Recording};
use std::path::{Path, PathBuf};

/// A running capture; stop with [`CaptureProcess::stop`] (Drop stops it too).
pub struct CaptureProcess {
    recording: Option<Recording>,
    pub file: PathBuf,
    /// What the stopped capture wrote, or why it failed.
    pub result: Option<Result<Recorded, String>>,
}

/// Starts capturing `iface` in namespace `ns` into `file` (pcapng, nanosecond timestamps, the
/// interface named `point`) and returns once the capture is listening.
pub fn start_capture(
    ns: &str,
    iface: &str,
    point: &str,
    file: &Path,
) -> Result<CaptureProcess, NetlabError> {
    let name = ns.to_string();
    let prepare: crate::live::recording::Prepare = Box::new(move || super::enter_netns(&name));
    let recording =
        Recording::start(iface, point, file, None, Some(prepare)).map_err(|reason| {
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
    /// Frames written (0 until stopped, or when the capture failed).
    pub fn frames(&self) -> u64 {
        match &self.result {
            Some(Ok(r)) => r.frames,
            _ => 0,
        }
    }

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
