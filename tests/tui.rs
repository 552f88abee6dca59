//! The terminal UI: snapshots of every view on committed captures (ratatui `TestBackend`,
//! insta), key handling over a loaded capture, exports, and an end-to-end run of
//! `p2ptrace tui` inside tmux.

use p2ptrace::tui::app::{Action, App, Export, Key, View};
use p2ptrace::tui::{Status, load_file, ui};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::PathBuf;
use std::sync::Arc;

const ONE_NAT: &str = "captures/sim/one-nat/capture.pcapng.gz";

#[track_caller]
fn loaded(capture: &str, color: bool) -> App {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(capture);
    let mut app = App::new(
        "capture".into(),
        Some(path.clone()),
        color,
        Arc::new(Status::default()),
    );
    load_file(&mut app, path, Vec::new()).unwrap();
    app
}

/// The screen as text, one line per row.
fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn eyeball() {
    let mut app = loaded(ONE_NAT, false);
    for k in 0..8 {
        app.on_key(Key::Char(char::from(b'1' + k)));
        println!("{}", screen(&app, 100, 30));
    }
}
