//! Record-only capture on its own thread: frames of one interface (optionally only those to or
//! from given hosts, optionally inside a network namespace) written to a pcapng, nothing
//! parsed. Used by `lab --capture` (loopback) and `lab --netns` (each capture point).
//!
//! Guarantees: [`Recording::start`] returns only once the socket is open, so every later
//! packet is captured; [`Recording::finish`] (also run by Drop) stops the thread, finalises the
//! pcapng and reports kernel and queue drops. Must not: parse packets (no parser runs with
//! the capture's privileges).

use super::afpacket::AfPacket;
use super::record::{RecordConfig, Recorder};
use super::{CaptureSource as _, LiveConfig, Outcome};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Frames still in flight when the run stops (a last FIN/ACK) get this long to arrive.
pub const LINGER: Duration = Duration::from_millis(300);

/// Run on the capture thread before the socket is opened (e.g. entering a namespace).
pub type Prepare = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// What a finished recording wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub frames: u64,
    pub kernel_drops: u64,
    pub queue_drops: u64,
}

/// A running record-only capture.
pub struct Recording {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Outcome>>,
    path: PathBuf,
}

impl Recording {
    /// Starts recording `iface` into `path` (pcapng, its interface called `name`). `prepare`
    /// runs first on the capture thread; `only_hosts` keeps frames to or from those addresses.
    pub fn start(
        iface: &str,
        name: &str,
        path: &Path,
        only_hosts: Option<Vec<IpAddr>>,
        prepare: Option<Prepare>,
    ) -> Result<Recording, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (flag, iface_name, file) = (stop.clone(), iface.to_string(), path.to_path_buf());
        let idb_name = name.to_string();
        let thread = std::thread::Builder::new()
            .name("p2ptrace-record".into())
            .spawn(move || {
                let opened = (|| {
                    if let Some(prepare) = prepare {
                        prepare()
                            .map_err(|e| format!("cannot enter the capture's namespace: {e}"))?;
                    }
                    let snaplen = crate::capture::MAX_CAPLEN;
                    // Promiscuous: a bridge device sees the frames it forwards only so.
                    let source =
                        AfPacket::open(&iface_name, snaplen, true).map_err(|e| e.to_string())?;
                    let config = RecordConfig {
                        path: file,
                        ..RecordConfig::default()
                    };
                    let recorder = Recorder::create(config, &idb_name, source.linktype(), snaplen)
                        .map_err(|e| format!("cannot write {e}"))?;
                    Ok((source, recorder))
                })();
                let (source, recorder) = match opened {
                    Ok(v) => {
                        let _ = ready_tx.send(Ok(()));
                        v
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Outcome::default();
                    }
                };
                let live = LiveConfig {
                    only_hosts,
                    ..LiveConfig::default()
                };
                super::run(
                    Box::new(source),
                    &live,
                    flag,
                    &mut (),
                    Some(recorder),
                    &mut |_| {},
                )
            })
            .map_err(|e| format!("cannot start the capture: {e}"))?;
        let mut rec = Recording {
            stop,
            thread: Some(thread),
            path: path.to_path_buf(),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(rec),
            Ok(Err(e)) => {
                rec.join();
                Err(e)
            }
            Err(_) => {
                rec.join();
                Err("the capture thread failed".into())
            }
        }
    }

    /// The pcapng being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn join(&mut self) -> Option<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }

    /// Waits [`LINGER`], stops, finalises the file and says what was written.
    pub fn finish(mut self) -> Result<Recorded, String> {
        std::thread::sleep(LINGER);
        let outcome = self
            .join()
            .ok_or_else(|| "the capture thread failed".to_string())?;
        if let Some(e) = outcome.source_error {
            return Err(e.to_string());
        }
        if let Some(e) = outcome.record_error {
            return Err(format!("recording stopped: {e}"));
        }
        let l = &outcome.live;
        Ok(Recorded {
            frames: l.recorded.0,
            kernel_drops: l.kernel.dropped,
            queue_drops: l.queue_dropped,
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.join();
    }
}
