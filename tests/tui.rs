//! The terminal UI: snapshots of every view on committed captures (ratatui `TestBackend`,
//! insta) at 80×24 and 120×40, navigation over a loaded capture, exports, bad input, and an
//! end-to-end run of `p2ptrace tui` inside tmux.

use p2ptrace::capture::CaptureReader;
use p2ptrace::tui::app::{Action, App, Export, Key, Scope, VIEWS, View};
use p2ptrace::tui::{Status, export, load_file, ui};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

mod common;
use common::Tmux;

const ONE_NAT: &str = "captures/sim/one-nat/capture.pcapng.gz";
const PHONE_HOME: &str = "captures/sim/phone-home/capture.pcapng.gz";

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[track_caller]
fn loaded(capture: &str, color: bool) -> App {
    let path = repo(capture);
    let mut app = App::new(
        "capture".into(),
        Some(path.clone()),
        color,
        Arc::new(Status::default()),
    );
    load_file(&mut app, path, Vec::new()).unwrap();
    assert!(app.model.done);
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

/// Draws once (the renderer reports the plot width and page size), then presses `keys`.
fn keys(app: &mut App, w: u16, h: u16, keys: &[Key]) {
    for k in keys {
        screen(app, w, h);
        app.on_key(*k);
    }
}

#[test]
fn every_view_at_80x24_and_120x40() {
    for (w, h) in [(80u16, 24u16), (120, 40)] {
        let mut app = loaded(ONE_NAT, false);
        for v in 0..VIEWS.len() as u8 {
            app.on_key(Key::Char(char::from(b'1' + v)));
            let name = format!("one_nat_{}_{w}x{h}", app.view.slug());
            insta::assert_snapshot!(name, screen(&app, w, h));
        }
        // Messages of the call's signalling flow, with the details pane.
        app.on_key(Key::Char('2'));
        app.on_key(Key::Char('f'));
        for c in "class:signalling host:100.64.0.1".chars() {
            app.on_key(Key::Char(c));
        }
        app.on_key(Key::Enter);
        app.on_key(Key::Enter);
        assert_eq!(app.view, View::Messages);
        insta::assert_snapshot!(
            format!("one_nat_messages_of_flow_{w}x{h}"),
            screen(&app, w, h)
        );
        app.on_key(Key::Char('?'));
        insta::assert_snapshot!(format!("one_nat_help_{w}x{h}"), screen(&app, w, h));
    }
}

#[test]
fn phone_home_and_keepalive_distributions() {
    let mut app = loaded(PHONE_HOME, false);
    for v in [View::PhoneHome, View::Keepalives, View::Timeline] {
        app.on_key(Key::Char(char::from(b'1' + v as u8)));
        insta::assert_snapshot!(
            format!("phone_home_{}_80x24", v.slug()),
            screen(&app, 80, 24)
        );
    }
    assert!(!app.model.keepalive_intervals.is_empty());
    assert!(app.model.contact_intervals().len() > 1);
}

#[test]
fn colour_timeline_draws_blocks_and_letters_without_colour() {
    let app = loaded(ONE_NAT, true);
    let s = screen(&app, 80, 24);
    assert!(s.contains('█'), "{s}");
    assert!(s.contains("login"));
    let plain = screen(&loaded(ONE_NAT, false), 80, 24);
    assert!(!plain.contains('█'));
    assert!(plain.contains("MMMM"), "{plain}");
}

#[test]
fn a_call_opens_its_messages_in_order() {
    let mut app = loaded(ONE_NAT, false);
    keys(&mut app, 80, 24, &[Key::Char('4'), Key::Enter]);
    assert_eq!(app.view, View::Messages);
    let Some(Scope::Call(id)) = app.scope else {
        panic!("scope {:?}", app.scope)
    };
    let rows = app.rows(View::Messages);
    assert!(rows.len() > 1000, "{} messages of call {id}", rows.len());
    let times: Vec<_> = (0..rows.len())
        .filter_map(|i| app.scope_msg(i).map(|m| m.ts))
        .collect();
    assert_eq!(times.len(), rows.len());
    let kinds: Vec<&str> = (0..20)
        .filter_map(|i| app.scope_msg(i).map(|m| m.kind.as_ref()))
        .collect();
    assert!(
        kinds.contains(&"invite") && kinds.contains(&"accept"),
        "{kinds:?}"
    );
    // Filter the call's messages to signalling only.
    keys(&mut app, 80, 24, &[Key::Char('f')]);
    for c in "class:signalling".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    let n = app.rows(View::Messages).len();
    assert!((2..=20).contains(&n), "{n}");
}

#[test]
fn timeline_zoom_keeps_the_cursor_time_and_hosts_are_grouped_by_role() {
    let mut app = loaded(ONE_NAT, false);
    screen(&app, 80, 24);
    let lanes = app.lanes();
    let roles: Vec<&str> = lanes.iter().map(|h| app.model.role(*h)).collect();
    assert_eq!(
        roles,
        [
            "login-server",
            "home",
            "super-node+relay",
            "super-node",
            "client",
            "client"
        ]
    );
    keys(&mut app, 80, 24, &[Key::Right; 20]);
    let before = app.cursor_range().unwrap().0;
    keys(&mut app, 80, 24, &[Key::Char('+'), Key::Char('+')]);
    let after = app.cursor_range().unwrap();
    let bin = app.bin_ns();
    assert!(
        (after.0.since(before)).abs() <= 2 * bin,
        "{before:?} {after:?}"
    );
    keys(&mut app, 80, 24, &[Key::End]);
    let last = app.model.last.unwrap();
    let (_, end) = app.cursor_range().unwrap();
    assert!(
        end.since(last).abs() <= 2 * app.bin_ns(),
        "{end:?} {last:?}"
    );
}

#[test]
fn exports_write_csv_and_pcapng_of_the_lanes_flows() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = loaded(ONE_NAT, false);
    app.export_dir = dir.path().to_path_buf();
    // Flows, filtered to media: a CSV with the header and two rows.
    keys(&mut app, 80, 24, &[Key::Char('2'), Key::Char('f')]);
    for c in "class:media".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    let Action::Export(e) = app.on_key(Key::Char('e')) else {
        panic!("no export")
    };
    let line = export::perform(&e);
    assert!(line.starts_with("exported 2 rows"), "{line}");
    let text = std::fs::read_to_string(dir.path().join("p2ptrace-flows.csv")).unwrap();
    assert!(
        text.starts_with("uid,proto,orig,resp,service,class,"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3);
    // Timeline: the whole window, lane of alice's public address (a client lane), as pcapng.
    app.lists[1].filter.clear();
    keys(&mut app, 80, 24, &[Key::Char('1')]);
    let lane = app
        .lanes()
        .iter()
        .position(|h| h.to_string() == "100.64.0.1")
        .unwrap();
    app.timeline.lane = lane;
    let Action::Export(e) = app.on_key(Key::Char('e')) else {
        panic!("no pcapng export: {:?}", app.notice)
    };
    let Export::Pcapng { path, flows, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(
        flows
            .iter()
            .all(|(_, a, b)| a.ip().to_string() == "100.64.0.1"
                || b.ip().to_string() == "100.64.0.1")
    );
    let line = export::perform(&e);
    assert!(line.starts_with("exported"), "{line}");
    let mut r = CaptureReader::open(path).unwrap();
    let mut n = 0;
    while let Some(_f) = r.next_frame().unwrap() {
        n += 1;
    }
    assert!(n > 1900, "{n} frames");
    // A second export does not overwrite the first.
    let Action::Export(Export::Pcapng { path: p2, .. }) = app.on_key(Key::Char('e')) else {
        panic!()
    };
    assert_ne!(&p2, path);
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_p2ptrace")
}

#[test]
fn bad_input_is_one_error_line_and_exit_1() {
    let out = Command::new(bin())
        .args(["tui", "/nonexistent/capture.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("p2ptrace: error: "), "{err}");
    assert!(out.stdout.is_empty(), "nothing drawn");
    // A readable file but no terminal: refused before touching the screen.
    let out = Command::new(bin())
        .args(["tui", repo(ONE_NAT).to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a terminal"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn tui_in_a_real_terminal_navigates_to_a_call_and_restores_the_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed");
        return;
    }
    let name = format!("p2ptrace-tui-{}", std::process::id());
    let shell_cmd = format!(
        "cd {} && {} tui {ONE_NAT} --no-color; echo TUI-EXIT=$?",
        env!("CARGO_MANIFEST_DIR"),
        bin()
    );
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            "-c",
            &format!("{shell_cmd}; sleep 30"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let t = Tmux(name);
    let p = t.wait_for("done");
    assert!(p.contains("Timeline"), "{p}");
    assert!(p.contains("SN+R 203.0.113.1"), "{p}");
    // Resize to 80×24: the next frame uses the short tab names.
    t.run(&["resize-window", "-t", &t.0, "-x", "80", "-y", "24"]);
    let p = t.wait_for("1 Time 2 Flows");
    assert!(p.contains("SN+R 203.0.113.1"), "{p}");
    // Calls view, Enter on the call: its messages; Right: the details pane.
    t.keys(&["4"]);
    let p = t.wait_for("Calls (1)");
    assert!(p.contains("alice") && p.contains("relay-"), "{p}");
    t.keys(&["Enter"]);
    let p = t.wait_for("Messages of call");
    assert!(p.contains("invite"), "{p}");
    t.keys(&["Right"]);
    t.wait_for("Details");
    t.keys(&["?"]);
    t.wait_for("Keys");
    // Separately: ESC followed at once by q reads as Alt-q.
    t.keys(&["Escape"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.pane().contains("Keys") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    t.keys(&["q"]);
    let p = t.wait_for("TUI-EXIT=0");
    // Back on the normal screen: the UI's frame is gone, the shell's line is there.
    assert!(
        !p.contains("Messages of call"),
        "alternate screen not left:\n{p}"
    );
    // The terminal is out of raw mode: typed text echoes and the line discipline works.
    let stty = Command::new("tmux")
        .args(["display-message", "-p", "-t", &t.0, "#{alternate_on}"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&stty.stdout).trim(), "0");
}

/// Not a pass/fail test: times the work of one frame over a million messages (run with
/// `cargo test --test tui perf -- --ignored --nocapture`).
#[test]
#[ignore]
fn perf_a_million_messages() {
    use dissectors::registry::TrafficClass;
    use p2ptrace::flow::Uid;
    use p2ptrace::time::Ts;
    use p2ptrace::tui::feed::{Event, MsgRow};
    use std::borrow::Cow;
    use std::time::Instant;
    let mut app = App::new("perf".into(), None, true, Arc::new(Status::default()));
    let t = Instant::now();
    let n = 1_000_000u64;
    let mut batch = Vec::new();
    for i in 0..n {
        let src: std::net::SocketAddr = format!("10.0.{}.{}:4000", (i / 7) % 50, i % 7)
            .parse()
            .unwrap();
        let dst: std::net::SocketAddr = "10.1.0.1:5000".parse().unwrap();
        batch.push(Event::Msg(Box::new(MsgRow {
            uid: Uid(i % 50_000),
            ts: Ts((i as i64) * 1_000_000),
            src,
            dst,
            endpoints: (src, dst),
            proto: 17,
            protocol: "skylark",
            msg_type: Cow::Borrowed("voice"),
            kind: Cow::Borrowed("voice"),
            class: Some(TrafficClass::Media),
            home: false,
            len: 80,
            call_id: Some(i % 100),
            media: Some(((i % 65536) as u16, (i * 240) as u32)),
            index_in_flow: 0,
        })));
        if batch.len() == 1024 {
            app.apply(std::mem::take(&mut batch));
        }
    }
    app.apply(batch);
    println!("apply 1M messages: {:?}", t.elapsed());
    for (name, keys) in [
        ("timeline", vec![Key::Char('1')]),
        ("timeline zoomed", vec![Key::Char('+')]),
        ("flows", vec![Key::Char('2')]),
        (
            "flows sorted by bytes",
            vec![Key::Char('S'), Key::Char('S'), Key::Char('S')],
        ),
        (
            "flows filtered",
            vec![Key::Char('f'), Key::Char('x'), Key::Enter],
        ),
    ] {
        for k in keys {
            app.on_key(k);
        }
        let t = Instant::now();
        screen(&app, 120, 40);
        let first = t.elapsed();
        let t = Instant::now();
        screen(&app, 120, 40);
        println!(
            "{name}: first frame {first:?}, next frame {:?}",
            t.elapsed()
        );
    }
    println!(
        "size of a kept message: {} bytes",
        std::mem::size_of::<p2ptrace::tui::model::Msg>()
    );
}

#[test]
fn no_color_environment_shows_letters_and_e_exports_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = format!("p2ptrace-tui-nc-{}", std::process::id());
    let cmd = format!(
        "cd {} && NO_COLOR=1 {} tui {}; echo TUI-EXIT=$?; sleep 30",
        dir.path().display(),
        bin(),
        repo(ONE_NAT).display()
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            "-c",
            &cmd,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let t = Tmux(name);
    let p = t.wait_for("done");
    assert!(p.contains("MMMMMMMMMM") && p.contains("L login"), "{p}");
    // Export the flows table from the running UI, into the working directory.
    t.keys(&["2"]);
    t.wait_for("Flows (12)");
    t.keys(&["e"]);
    t.wait_for("exported 12 rows");
    let csv = std::fs::read_to_string(dir.path().join("p2ptrace-flows.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    t.keys(&["q"]);
    t.wait_for("TUI-EXIT=0");
}

#[test]
fn a_damaged_capture_shows_what_came_before_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(repo("captures/voip-mix.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    // Cut inside a record, well past the start.
    std::fs::write(&cut, &full[..full.len() / 2 + 7]).unwrap();
    let mut app = App::new(
        "cut".into(),
        Some(cut.clone()),
        false,
        Arc::new(Status::default()),
    );
    load_file(&mut app, cut, Vec::new()).unwrap();
    assert!(app.model.done);
    assert!(!app.model.flows.is_empty());
    let s = screen(&app, 80, 24);
    assert!(s.contains("input: "), "{s}");
}

#[test]
fn voip_mix_timeline_and_flows() {
    let mut app = loaded("captures/voip-mix.pcap", false);
    insta::assert_snapshot!("voip_mix_timeline_80x24", screen(&app, 80, 24));
    app.on_key(Key::Char('2'));
    insta::assert_snapshot!("voip_mix_flows_80x24", screen(&app, 80, 24));
}

#[test]
fn a_host_or_a_lane_opens_its_flows() {
    let mut app = loaded(ONE_NAT, false);
    keys(&mut app, 80, 24, &[Key::Char('7'), Key::Enter]);
    assert_eq!(app.view, View::Flows);
    assert_eq!(app.lists[1].filter, "host:100.64.0.1");
    assert_eq!(app.rows(View::Flows).len(), 6);
    keys(
        &mut app,
        80,
        24,
        &[Key::Char('1'), Key::Char('g'), Key::Char('o')],
    );
    assert_eq!(app.view, View::Flows);
    assert_eq!(
        app.lists[1].filter, "host:198.51.100.10",
        "the login server's lane"
    );
    assert_eq!(app.rows(View::Flows).len(), 2);
    // A login opens its client's flows; the second login is the second client's.
    keys(&mut app, 80, 24, &[Key::Char('9'), Key::Down, Key::Enter]);
    assert_eq!(app.view, View::Flows);
    assert_eq!(app.lists[1].filter, "host:100.64.0.2");
}

#[test]
fn the_timeline_marks_phone_home_contacts_of_undecoded_traffic() {
    let Some(ext) = common::external_captures() else {
        return;
    };
    // WhatsApp: the client's only traffic to the resolved *.whatsapp.net address is XMPP,
    // which no dissector decodes — one contact (phonehome.csv), so one `^` in its lane.
    let path = ext.join("peafowl/whatsapp.pcap");
    let mut app = App::new(
        "capture".into(),
        Some(path.clone()),
        false,
        Arc::new(Status::default()),
    );
    let home = p2ptrace::classify::HomeSpec::parse("*.whatsapp.net").unwrap();
    load_file(&mut app, path, vec![home]).unwrap();
    assert!(app.model.done);
    let text = screen(&app, 200, 60);
    let lane = text
        .lines()
        .find(|l| l.contains(" 192.168.1.176 "))
        .unwrap_or_else(|| panic!("no lane for the client:\n{text}"));
    assert_eq!(lane.matches('^').count(), 1, "{lane}");
    let marks: usize = text
        .lines()
        .filter(|l| !l.contains("^ home"))
        .map(|l| l.matches('^').count())
        .sum();
    assert_eq!(marks, 1, "{text}");
}
