//! Terminal UI (`p2ptrace tui FILE`, and `p2ptrace live` on a terminal): a timeline of the
//! overlay, the flow table, messages with their details, and the calls, lookups,
//! phone-home, hosts, keepalive and login reports with their distributions.
//!
//! Layout: [`feed`] (the pipeline consumer sending classified events over a bounded
//! channel), [`model`] (what the events add up to), [`app`] (view state and keys, no
//! terminal types), [`ui`] (drawing), [`export`] (CSV / pcapng), [`details`] (the message
//! details pane), and here the event loop and terminal set-up.
//!
//! Guarantees: analysis runs on its own thread and the UI drains at most
//! [`MAX_BATCHES_PER_FRAME`] batches per frame, so keys are handled and the screen redrawn at
//! least every [`FRAME_MS`] ms whatever the input; the terminal is restored on exit, on error
//! and on panic (ratatui's panic hook plus a drop guard). Must not: run analysis on the UI
//! thread or leave the terminal in raw mode.

pub mod app;
pub mod details;
pub mod export;
pub mod feed;
pub mod model;
pub mod payload;
pub mod ui;

use crate::capture::CaptureReader;
use crate::classify::HomeSpec;
use crate::dissect::DissectConfig;
use crate::pipeline::{Engine, PipelineConfig, Step, read_frames};
use app::{Action, App, Key};
use crossterm::event::{self, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
pub use feed::{Batch, Event, Feed, Status};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// Longest wait for a key between two frames (so ≥ 1000 / FRAME_MS frames per second).
pub const FRAME_MS: u64 = 50;
/// Batches applied to the model per frame at most (the rest wait for the next frame).
pub const MAX_BATCHES_PER_FRAME: usize = 64;
/// Time per frame spent applying batches at most (ms), so keys stay responsive.
pub const APPLY_BUDGET_MS: u64 = 30;

/// What the status bar names as the source.
#[derive(Clone, Debug)]
pub struct Source {
    /// Shown in the status bar (file name or interface).
    pub name: String,
    /// The capture file (details pane, pcapng export); `None` for live capture.
    pub capture: Option<PathBuf>,
    /// Live capture: the timeline starts in follow mode.
    pub live: bool,
    /// Colours (false: letters for classes).
    pub color: bool,
}

/// Whether colours are wanted: not with `--no-color` nor with `NO_COLOR` set non-empty.
pub fn color_wanted(no_color_flag: bool) -> bool {
    !no_color_flag && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Maps a crossterm key event to the app's keys (`None` for releases and other keys).
pub fn map_key(k: KeyEvent) -> Option<Key> {
    if k.kind == KeyEventKind::Release {
        return None;
    }
    let shift = k.modifiers.contains(KeyModifiers::SHIFT);
    Some(match k.code {
        KeyCode::Char(c) if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Ctrl(c),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left if shift => Key::Char('H'),
        KeyCode::Right if shift => Key::Char('L'),
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// Restores the terminal when dropped (normal exit and `?` errors alike).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = ratatui::try_restore();
    }
}

/// Starts analysing `path` on a background thread, feeding the returned receiver. The
/// thread stops early when `status.stop` is set.
pub fn spawn_file_analysis(
    path: PathBuf,
    home: Vec<HomeSpec>,
    status: Arc<Status>,
) -> io::Result<Receiver<Batch>> {
    let mut reader = CaptureReader::open(&path).map_err(|e| io::Error::other(e.to_string()))?;
    let (tx, rx) = feed::channel();
    std::thread::Builder::new()
        .name("tui-analysis".into())
        .spawn(move || {
            let mut feed = Feed::new(tx, home, true, status.clone());
            let config = PipelineConfig {
                dissect: Some(DissectConfig::default()),
                ..PipelineConfig::default()
            };
            let mut engine = Engine::new(&config, &mut feed);
            // A damaged tail ends the analysis there; what came before is shown.
            let (frames, error) = read_frames(
                &mut reader,
                &mut engine,
                &mut |frame| {
                    if status.stop.load(Ordering::Relaxed) {
                        return Step::Stop;
                    }
                    Status::add(&status.packets, 1);
                    Status::add(&status.bytes, u64::from(frame.orig_len));
                    Step::Analyse
                },
                &mut |_| {},
            );
            if let Some(e) = error {
                status.set_error(format!("{e} (the {frames} frames before it are shown)"));
            }
            let _ = engine.finish();
            feed.finish();
            status.finished.store(1, Ordering::Relaxed);
        })?;
    Ok(rx)
}

/// `p2ptrace tui FILE`: analyses the file in the background and runs the UI until `q`.
pub fn run_file(path: PathBuf, home: Vec<HomeSpec>, color: bool) -> io::Result<()> {
    let status = Arc::new(Status::default());
    let rx = spawn_file_analysis(path.clone(), home, status.clone())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let source = Source {
        name,
        capture: Some(path),
        live: false,
        color,
    };
    let result = run_tui(source, rx, status.clone());
    status.stop.store(true, Ordering::Relaxed);
    result
}

/// Runs the UI over a stream of batches until the user quits. For live capture: build a
/// [`Feed`] (dropping mode) on the capture thread, send its batches here, and keep
/// `status`'s counters current; `status.stop` is set when the user quits.
pub fn run_tui(source: Source, rx: Receiver<Batch>, status: Arc<Status>) -> io::Result<()> {
    let mut app = App::new(
        source.name.clone(),
        source.capture.clone(),
        source.color,
        status.clone(),
    );
    app.live = source.live;
    app.timeline.follow = source.live;
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            let _ = ratatui::try_restore();
            return Err(e);
        }
    };
    let _guard = TerminalGuard;
    let started = Instant::now();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    let mut connected = true;
    let result = loop {
        if connected {
            let budget = Instant::now();
            for _ in 0..MAX_BATCHES_PER_FRAME {
                if budget.elapsed() > Duration::from_millis(APPLY_BUDGET_MS) {
                    break;
                }
                match rx.try_recv() {
                    Ok(b) => app.apply(b),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        connected = false;
                        break;
                    }
                }
            }
        }
        if let Ok(line) = done_rx.try_recv() {
            app.notice = Some(line);
        }
        app.tick(started.elapsed().as_millis() as u64);
        if let Err(e) = terminal.draw(|f| ui::render(&app, f)) {
            break Err(e);
        }
        match event::poll(Duration::from_millis(FRAME_MS)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => break Err(e),
        }
        let ev = match event::read() {
            Ok(ev) => ev,
            Err(e) => break Err(e),
        };
        let event::Event::Key(k) = ev else {
            continue; // resize: the next draw adapts
        };
        let Some(key) = map_key(k) else {
            continue;
        };
        match app.on_key(key) {
            Action::None => {}
            Action::Quit => break Ok(()),
            Action::Export(e) => {
                app.notice = Some("exporting…".into());
                let tx = done_tx.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("tui-export".into())
                        .spawn(move || {
                            let _ = tx.send(export::perform(&e));
                        });
                if spawned.is_err() {
                    app.notice = Some("export failed: cannot start a thread".into());
                }
            }
        }
    };
    status.stop.store(true, Ordering::Relaxed);
    drop(terminal);
    result
}

/// Loads a whole capture into an app without a terminal (tests, snapshots): analyses `path`
/// on a background thread and applies every batch.
pub fn load_file(app: &mut App, path: PathBuf, home: Vec<HomeSpec>) -> io::Result<()> {
    let rx = spawn_file_analysis(path, home, app.status.clone())?;
    for batch in rx {
        app.apply(batch);
    }
    Ok(())
}
