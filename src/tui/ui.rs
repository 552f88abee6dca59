//! Drawing: [`render`] draws an [`App`] into a ratatui frame — tab bar, the current view,
//! the input/notice line and the status bar, and the help overlay.
//!
//! Guarantees: draws only what is visible (lists from their offset, the timeline from the
//! messages in its window), usable from 80×24 up, never panics on any size (tiny areas draw
//! nothing). In no-colour mode classes are letters: L login, K lookup, S signalling,
//! A keepalive, M media; `o` marks messages of no overlay class and `^` a phone-home contact
//! in both modes. Must not: change
//! model or view state beyond the offsets and sizes it reports back through `Cell`s.

use super::app::{App, GridCache, GridCell, Input, Scope, VIEWS, View};
use super::feed::Status;
use crate::time::Ts;
use dissectors::registry::TrafficClass;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Cell as TCell, Clear, Paragraph, Row, Sparkline, Table,
};
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// Colour of a class (distinct hues, readable on dark and light backgrounds).
pub fn class_color(c: TrafficClass) -> Color {
    match c {
        TrafficClass::Login => Color::Yellow,
        TrafficClass::Lookup => Color::Cyan,
        TrafficClass::Signalling => Color::Magenta,
        TrafficClass::Keepalive => Color::Blue,
        TrafficClass::Media => Color::Green,
        _ => Color::White,
    }
}

/// Letter of a class in no-colour mode.
pub fn class_letter(c: TrafficClass) -> char {
    match c {
        TrafficClass::Login => 'L',
        TrafficClass::Lookup => 'K',
        TrafficClass::Signalling => 'S',
        TrafficClass::Keepalive => 'A',
        TrafficClass::Media => 'M',
        _ => '?',
    }
}

/// Short role tag for lane labels.
fn role_tag(role: &str) -> &'static str {
    match role {
        "login-server" => "LS",
        "home" => "HOME",
        "super-node" => "SN",
        "super-node+relay" => "SN+R",
        "relay" => "RELAY",
        "client" => "C",
        "other" => "-",
        _ => "?",
    }
}

fn sel_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

/// Draws the whole UI.
pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width < 20 || area.height < 6 {
        f.render_widget(Paragraph::new("window too small"), area);
        return;
    }
    let [tabs, main, input, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_tabs(app, f, tabs);
    match app.view {
        View::Timeline => render_timeline(app, f, main),
        View::Messages => render_messages(app, f, main),
        View::Calls => {
            let [t, c] = split_chart(main, 7);
            render_list(app, f, t, View::Calls, "Calls");
            render_call_chart(app, f, c);
        }
        View::PhoneHome => {
            let [t, c] = split_chart(main, 8);
            render_list(app, f, t, View::PhoneHome, "Phone-home");
            render_phonehome_chart(app, f, c);
        }
        View::Keepalives => {
            let [t, c] = split_chart(main, 8);
            render_list(app, f, t, View::Keepalives, "Keepalives");
            let v = app.model.keepalive_intervals.clone();
            render_histogram(f, c, "keepalive interval (s)", &v, app.color);
        }
        v @ (View::Lookups | View::Logins) => {
            let (col, title) = if v == View::Lookups {
                ("latency_s", "lookup latency (s)")
            } else {
                ("duration_s", "login duration (s)")
            };
            let [t, c] = split_chart(main, 8);
            render_list(app, f, t, v, v.title());
            render_histogram(f, c, title, &column_values(app, v, col), app.color);
        }
        v => render_list(app, f, main, v, v.title()),
    }
    render_input(app, f, input);
    render_status(app, f, status);
    if app.help {
        render_help(f, main);
    }
}

fn split_chart(area: Rect, chart: u16) -> [Rect; 2] {
    let chart = if area.height >= chart + 6 { chart } else { 0 };
    Layout::vertical([Constraint::Min(3), Constraint::Length(chart)]).areas(area)
}

fn render_tabs(app: &App, f: &mut Frame, area: Rect) {
    let short = area.width < 100;
    let mut spans = Vec::new();
    for (i, v) in VIEWS.iter().enumerate() {
        let name = if short {
            match v {
                View::Timeline => "Time",
                View::Messages => "Msgs",
                View::PhoneHome => "Home",
                View::Keepalives => "Keep",
                v => v.title(),
            }
        } else {
            v.title()
        };
        let text = format!("{} {name}", i + 1);
        let style = if *v == app.view {
            sel_style().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::raw(" ?:help"));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}")
    } else {
        format!("{v:.1}{}", UNITS.get(u).copied().unwrap_or(""))
    }
}

fn render_status(app: &App, f: &mut Frame, area: Rect) {
    let s = &app.status;
    let span = match (app.model.first, app.model.last) {
        (Some(a), Some(b)) => format!("{:.1}s", b.since(a) as f64 / 1e9),
        _ => "-".into(),
    };
    let drops = Status::get(&s.kernel_drops) + Status::get(&s.queue_drops);
    let ui_drops = Status::get(&s.ui_dropped) + app.model.msgs_dropped;
    let state = if app.model.done { "done" } else { "reading" };
    let filter = &app.lists[app.view_index()].filter;
    let text = format!(
        " {} | {} pkts {}B | drops {} ui {} | span {} | {} | filter: {}",
        app.source,
        human(Status::get(&s.packets)),
        human(Status::get(&s.bytes)),
        drops,
        ui_drops,
        span,
        state,
        if filter.is_empty() { "-" } else { filter },
    );
    f.render_widget(Paragraph::new(text).style(sel_style()), area);
}

fn render_input(app: &App, f: &mut Frame, area: Rect) {
    let text = match app.input {
        Input::Filter => format!("filter: {}_", app.input_buf),
        Input::Search => format!("search: {}_", app.input_buf),
        Input::Goto => format!("go to (seconds from start): {}_", app.input_buf),
        Input::None => match (&app.notice, app.status.error()) {
            (Some(n), _) => n.clone(),
            (None, Some(e)) => format!("input: {e}"),
            (None, None) => hint(app.view).to_string(),
        },
    };
    f.render_widget(Paragraph::new(text), area);
}

fn hint(view: View) -> &'static str {
    match view {
        View::Timeline => {
            "arrows move  +/- zoom  H/L pan  g/G ends  t goto  f follow  Enter cell  o lane  e pcapng"
        }
        View::Messages => {
            "Enter/→ details  Esc back  s/S sort  r reverse  f filter  / search  e csv"
        }
        _ => "Enter open  s/S sort  r reverse  f filter  / search  n/N next  e csv  q quit",
    }
}

/// Draws a list view's table (visible rows only); `title` heads the block.
fn render_list(app: &App, f: &mut Frame, area: Rect, view: View, title: &str) {
    let rows = app.rows(view);
    let l = &app.lists[view_index(view)];
    let cols = app.columns(view);
    app.list_width.set(area.width.saturating_sub(2));
    let shown = app.shown_columns(view, area.width.saturating_sub(2));
    let block = Block::bordered().title(format!(
        "{title} ({}{})",
        rows.len(),
        if l.filter.is_empty() {
            String::new()
        } else {
            format!(" matching '{}'", l.filter)
        }
    ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let height = inner.height.saturating_sub(1) as usize;
    app.page.set(height.max(1));
    let sel = l.sel.min(rows.len().saturating_sub(1));
    let mut offset = l.offset.get();
    if sel < offset {
        offset = sel;
    } else if height > 0 && sel >= offset + height {
        offset = sel + 1 - height;
    }
    l.offset.set(offset);
    let visible: Vec<usize> = rows.iter().skip(offset).take(height).copied().collect();
    // Column widths from the header and the visible cells, capped, fitted to the width.
    let mut widths: Vec<usize> = shown
        .iter()
        .map(|&c| cols.get(c).map_or(0, |n| n.len() + 1))
        .collect();
    let cells: Vec<Vec<String>> = visible
        .iter()
        .map(|&i| {
            shown
                .iter()
                .map(|&c| app.cell(view, i, c).into_owned())
                .collect()
        })
        .collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count()).min(24);
        }
    }
    let header = Row::new(shown.iter().map(|&c| {
        let name = cols.get(c).map(|n| n.to_string()).unwrap_or_default();
        let mark = match l.sort_col {
            Some(s) if s == c && l.desc => "▼",
            Some(s) if s == c => "▲",
            _ => "",
        };
        TCell::from(format!("{name}{mark}"))
    }))
    .style(Style::default().add_modifier(Modifier::BOLD));
    let trows = cells.into_iter().enumerate().map(|(k, r)| {
        let row = Row::new(r.into_iter().map(TCell::from));
        if offset + k == sel {
            row.style(sel_style())
        } else {
            row
        }
    });
    fit_widths(&mut widths, inner.width as usize);
    let constraints: Vec<Constraint> = widths
        .iter()
        .map(|w| Constraint::Length(*w as u16))
        .collect();
    let table = Table::new(trows, constraints)
        .header(header)
        .column_spacing(1);
    f.render_widget(table, inner);
    if rows.is_empty() {
        let msg = match view {
            View::Messages if app.scope.is_none() => {
                "no flow selected: choose one in Flows (2) or a cell in the Timeline (1)"
            }
            _ if !app.model.done => "waiting for data…",
            _ => "no rows",
        };
        if inner.height > 1 {
            let r = Rect::new(inner.x, inner.y + 1, inner.width, 1);
            f.render_widget(Paragraph::new(msg), r);
        }
    }
}

/// Shrinks the widest columns until they fit `avail` with one space between columns, so
/// the layout is never over-constrained (the solver's choice there is not deterministic).
fn fit_widths(widths: &mut [usize], avail: usize) {
    let spacing = widths.len().saturating_sub(1);
    while widths.iter().sum::<usize>() + spacing > avail {
        let Some(w) = widths.iter_mut().filter(|w| **w > 3).max_by_key(|w| **w) else {
            break;
        };
        *w -= 1;
    }
}

fn render_messages(app: &App, f: &mut Frame, area: Rect) {
    let title = match app.scope {
        Some(Scope::Flow(uid)) => match app.model.flow_by_uid(uid) {
            Some(fl) => format!(
                "Messages of {uid} {} {}↔{}",
                fl.proto_name(),
                fl.orig,
                fl.resp
            ),
            None => format!("Messages of {uid}"),
        },
        Some(Scope::Call(id)) => format!("Messages of call {id}"),
        Some(Scope::Cell { host, t0, t1 }) => {
            let first = app.model.first.unwrap_or(t0);
            format!(
                "Messages of {host} {:.3}–{:.3}s",
                t0.since(first) as f64 / 1e9,
                t1.since(first) as f64 / 1e9
            )
        }
        None => "Messages".into(),
    };
    let [list, details] = if area.width >= 120 {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area)
    } else {
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area)
    };
    render_list(app, f, list, View::Messages, &title);
    let mut block = Block::bordered().title("Details");
    if app.details_focus {
        block = block.border_style(Style::default().add_modifier(Modifier::BOLD));
    }
    let inner = block.inner(details);
    f.render_widget(block, details);
    if let Some(r) = app.selected_message_ref() {
        let mut cache = app.details.borrow_mut();
        super::details::render_details_styled(
            inner,
            f.buffer_mut(),
            &r,
            app.field,
            &mut cache,
            !app.color,
        );
    }
}

fn render_timeline(app: &App, f: &mut Frame, area: Rect) {
    let block = Block::bordered().title(format!(
        "Timeline{}",
        if app.timeline.follow { " [follow]" } else { "" }
    ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 4 || inner.width < 20 {
        return;
    }
    // Legend.
    let mut legend = Vec::new();
    for c in TrafficClass::ALL {
        if app.color {
            legend.push(Span::styled("█", Style::default().fg(class_color(c))));
        } else {
            legend.push(Span::raw(class_letter(c).to_string()));
        }
        legend.push(Span::raw(format!(" {} ", c.as_str())));
    }
    legend.push(Span::raw("o other ^ home ═ call"));
    let [leg, body, axis] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(Line::from(legend)), leg);
    let label_w = (inner.width / 4).clamp(8, 24);
    let plot_w = inner.width.saturating_sub(label_w + 1).max(1);
    app.timeline.width.set(plot_w as usize);
    let Some(t0) = app.timeline.t0 else {
        f.render_widget(Paragraph::new("waiting for data…"), body);
        return;
    };
    let bin = app.bin_ns();
    let t1 = t0.add_nanos(bin.saturating_mul(i64::from(plot_w)));
    let lanes = app.lanes();
    // Call rows at the bottom (at most a quarter of the body).
    let calls: Vec<&super::feed::CallRow> = app
        .model
        .calls
        .iter()
        .filter(|c| {
            let end = c.record.start.add_nanos(c.record.duration_ns.unwrap_or(0));
            end >= t0 && c.record.start < t1
        })
        .collect();
    let call_rows = (calls.len() as u16).min(body.height / 4);
    let lane_rows = body.height.saturating_sub(call_rows) as usize;
    app.page.set(lane_rows.max(1));
    let sel = app.timeline.lane.min(lanes.len().saturating_sub(1));
    let mut off = app.timeline.lane_offset.get();
    if sel < off {
        off = sel;
    } else if lane_rows > 0 && sel >= off + lane_rows {
        off = sel + 1 - lane_rows;
    }
    app.timeline.lane_offset.set(off);
    let visible: Vec<IpAddr> = lanes.iter().skip(off).take(lane_rows).copied().collect();
    let index: FxHashMap<IpAddr, usize> =
        visible.iter().enumerate().map(|(i, h)| (*h, i)).collect();
    let w = plot_w as usize;
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (t0, bin, w, &visible).hash(&mut h);
        h.finish()
    };
    let mut cache = app.grid.borrow_mut();
    // Same window, newer data: recomputed at most every REFRESH_MS while data streams in.
    let fresh = cache.as_ref().is_some_and(|g| {
        g.key == key
            && (g.version == app.model.version
                || app.now_ms().saturating_sub(g.at_ms) < super::app::REFRESH_MS)
    });
    if !fresh {
        *cache = Some(GridCache {
            key,
            version: app.model.version,
            at_ms: app.now_ms(),
            cells: grid(app, &index, t0, t1, bin, w),
        });
    }
    let grid: &[GridCell] = cache.as_ref().map(|g| g.cells.as_slice()).unwrap_or(&[]);
    let buf = f.buffer_mut();
    for (li, host) in visible.iter().enumerate() {
        let y = body.y + li as u16;
        let selected = off + li == sel;
        let label = format!("{} {host}", role_tag(app.model.role(*host)));
        let lstyle = if selected {
            sel_style()
        } else {
            Style::default()
        };
        buf.set_stringn(body.x, y, &label, label_w as usize, lstyle);
        for col in 0..w {
            let x = body.x + label_w + 1 + col as u16;
            let Some(c) = grid.get(li * w + col) else {
                continue;
            };
            let dominant = c
                .counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .max_by_key(|(i, n)| (**n, usize::MAX - *i))
                .and_then(|(i, _)| TrafficClass::ALL.get(i).copied());
            let (mut ch, mut style) = match dominant {
                None if c.other > 0 => ('o', Style::default()),
                None => ('·', Style::default().fg(Color::DarkGray)),
                Some(cl) if app.color => ('█', Style::default().fg(class_color(cl))),
                Some(cl) => (class_letter(cl), Style::default()),
            };
            if !app.color && dominant.is_none() && c.other == 0 {
                style = Style::default();
                ch = '.';
            }
            if c.home {
                ch = '^';
                if let (true, Some(cl)) = (app.color, dominant) {
                    style = Style::default().bg(class_color(cl)).fg(Color::Black);
                }
            }
            if selected && col == app.timeline.cursor.min(w.saturating_sub(1)) {
                style = style.add_modifier(Modifier::REVERSED);
                if ch == '·' || ch == '.' {
                    ch = '+';
                }
            }
            if let Some(cell) = buf.cell_mut((x, y)) {
                cell.set_char(ch).set_style(style);
            }
        }
    }
    // Calls as spans between their parties.
    for (k, c) in calls.iter().take(call_rows as usize).enumerate() {
        let y = body.y + lane_rows as u16 + k as u16;
        let r = &c.record;
        let who = |n: &Option<String>, a: Option<std::net::SocketAddr>| {
            n.clone()
                .or_else(|| a.map(|a| a.ip().to_string()))
                .unwrap_or_else(|| "?".into())
        };
        let label = format!(
            "call {} {}→{}",
            r.call_id,
            who(&r.caller, r.caller_addr),
            who(&r.callee, r.callee_addr)
        );
        buf.set_stringn(body.x, y, &label, label_w as usize, Style::default());
        let end = r.start.add_nanos(r.duration_ns.unwrap_or(0).max(bin));
        let a = (r.start.since(t0) / bin).clamp(0, w as i64) as usize;
        let b = (end.since(t0) / bin).clamp(0, w as i64) as usize;
        let long = match (r.media_path, r.relay) {
            (Some(p), Some(relay)) => format!(" {} via {} ", p.as_str(), relay.ip()),
            (Some(p), None) => format!(" {} ", p.as_str()),
            _ => String::new(),
        };
        let short = format!(" {} ", r.media_path.map(|p| p.as_str()).unwrap_or(""));
        let path = if b > a + long.chars().count() {
            long
        } else {
            short
        };
        let style = if app.color {
            Style::default().fg(class_color(TrafficClass::Signalling))
        } else {
            Style::default()
        };
        for col in a..b.max(a + 1).min(w) {
            let x = body.x + label_w + 1 + col as u16;
            if let Some(cell) = buf.cell_mut((x, y)) {
                cell.set_char('═').set_style(style);
            }
        }
        let text_x = body.x + label_w + 1 + a.min(w.saturating_sub(1)) as u16;
        let room = (w.saturating_sub(a)).min(path.chars().count());
        if room > 0 && b > a + path.chars().count() {
            buf.set_stringn(text_x + 1, y, &path, room, style);
        }
    }
    // Axis: window start, cursor range, bin, end.
    let first = app.model.first.unwrap_or(t0);
    let rel = |t: Ts| t.since(first) as f64 / 1e9;
    let cur = app.cursor_range();
    let text = format!(
        "{:.2}s  cursor {}  bin {}  …{:.2}s",
        rel(t0),
        cur.map(|(a, b)| format!("{:.3}–{:.3}s", rel(a), rel(b)))
            .unwrap_or_default(),
        secs_short(bin),
        rel(t1)
    );
    f.render_widget(Paragraph::new(text), axis);
}

/// Messages of the window binned per visible lane and column (one pass over the messages).
fn grid(
    app: &App,
    index: &FxHashMap<IpAddr, usize>,
    t0: Ts,
    t1: Ts,
    bin: i64,
    w: usize,
) -> Vec<GridCell> {
    let mut grid = vec![GridCell::default(); index.len() * w];
    for m in app.model.msgs_between(t0, t1) {
        if m.ts < t0 || m.ts >= t1 {
            continue;
        }
        let col = (m.ts.since(t0) / bin) as usize;
        if col >= w {
            continue;
        }
        for host in [m.src.ip(), m.dst.ip()] {
            let Some(c) = index
                .get(&host)
                .and_then(|&lane| grid.get_mut(lane * w + col))
            else {
                continue;
            };
            match m.class.and_then(|cl| c.counts.get_mut(cl.index())) {
                Some(n) => *n += 1,
                None => c.other += 1,
            }
        }
    }
    // The client's phone-home contacts (start times in order, as the report counts them).
    for (&(client, _), starts) in &app.model.contacts {
        let Some(&lane) = index.get(&client) else {
            continue;
        };
        let from = starts.partition_point(|t| *t < t0);
        for t in starts[from..].iter().take_while(|t| **t < t1) {
            let col = (t.since(t0) / bin) as usize;
            if let Some(c) = grid.get_mut(lane * w + col).filter(|_| col < w) {
                c.home = true;
            }
        }
    }
    grid
}

fn secs_short(ns: i64) -> String {
    if ns >= Ts::NANOS_PER_SEC {
        format!("{:.2}s", ns as f64 / 1e9)
    } else {
        format!("{:.1}ms", ns as f64 / 1e6)
    }
}

/// Numbers of one column of a report view (empty cells skipped).
fn column_values(app: &App, view: View, col: &str) -> Vec<f64> {
    let Some(t) = app.table(view) else {
        return Vec::new();
    };
    let Some(c) = t.col(col) else {
        return Vec::new();
    };
    t.rows
        .iter()
        .filter_map(|r| r.get(c).and_then(|v| v.parse::<f64>().ok()))
        .collect()
}

/// A histogram of `values` in at most 12 equal bins.
fn render_histogram(f: &mut Frame, area: Rect, title: &str, values: &[f64], color: bool) {
    if area.height < 3 {
        return;
    }
    let block = Block::bordered().title(format!("{title}, n={}", values.len()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        f.render_widget(Paragraph::new("no data"), inner);
        return;
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = if hi - lo < 1e-6 {
        1
    } else {
        ((inner.width / 7) as usize).clamp(1, 12)
    };
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0u64; bins];
    for v in &finite {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Bar::default()
                .value(*n)
                .label(Line::from(format!("{:.3}", lo + width * i as f64)))
        })
        .collect();
    let mut chart = BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(6)
        .bar_gap(1);
    if color {
        chart = chart.bar_style(Style::default().fg(Color::Cyan));
    }
    f.render_widget(chart, inner);
}

fn render_call_chart(app: &App, f: &mut Frame, area: Rect) {
    if area.height < 3 {
        return;
    }
    let rows = app.rows(View::Calls);
    let l = &app.lists[view_index(View::Calls)];
    let call = rows
        .get(l.sel)
        .and_then(|&i| app.model.calls.get(i))
        .map(|c| c.record.call_id);
    let block = Block::bordered().title(match call {
        Some(id) => format!("call {id}: packets/s, jitter (ms), lost/s per second"),
        None => "call media per second".into(),
    });
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(s) = call.and_then(|id| app.model.series.get(&u64::from(id))) else {
        f.render_widget(Paragraph::new("no media frames"), inner);
        return;
    };
    let label_w = 12u16.min(inner.width / 3);
    let series: [(&str, Vec<u64>, String); 3] = [
        (
            "pkts/s",
            s.pkts.iter().map(|&v| u64::from(v)).collect(),
            format!("max {}", s.pkts.iter().max().copied().unwrap_or(0)),
        ),
        (
            "jitter",
            s.jitter_ms.iter().map(|&v| (v * 10.0) as u64).collect(),
            format!("{:.1}ms", s.jitter_ms.last().copied().unwrap_or(0.0)),
        ),
        (
            "lost/s",
            s.lost_per_sec(),
            format!("{} lost", s.lost.last().copied().unwrap_or(0)),
        ),
    ];
    let h = (inner.height / 3).max(1);
    for (k, (name, data, summary)) in series.iter().enumerate() {
        let y = inner.y + k as u16 * h;
        if y >= inner.y + inner.height {
            break;
        }
        let r = Rect::new(inner.x, y, inner.width, h.min(inner.y + inner.height - y));
        let [lab, spark] =
            Layout::horizontal([Constraint::Length(label_w), Constraint::Min(1)]).areas(r);
        f.render_widget(Paragraph::new(format!("{name} {summary}")), lab);
        let tail: Vec<u64> = data
            .iter()
            .skip(data.len().saturating_sub(spark.width as usize))
            .copied()
            .collect();
        let mut sp = Sparkline::default().data(&tail);
        if app.color {
            sp = sp.style(Style::default().fg(Color::Green));
        }
        f.render_widget(sp, spark);
    }
}

fn render_phonehome_chart(app: &App, f: &mut Frame, area: Rect) {
    if area.height < 3 {
        return;
    }
    let [hist, spark] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    render_histogram(
        f,
        hist,
        "contact interval (s)",
        &app.model.contact_intervals(),
        app.color,
    );
    let rows = app.rows(View::PhoneHome);
    let l = &app.lists[view_index(View::PhoneHome)];
    let pick = |name: &str| {
        rows.get(l.sel).and_then(|&i| {
            let t = app.table(View::PhoneHome)?;
            let c = t.col(name)?;
            t.rows.get(i)?.get(c)?.parse::<IpAddr>().ok()
        })
    };
    let (client, home) = (pick("client"), pick("home"));
    let block = Block::bordered().title(match client {
        Some(c) => format!("contacts of {c} over time"),
        None => "contacts over time".into(),
    });
    let inner = block.inner(spark);
    f.render_widget(block, spark);
    let (Some(client), Some(home), Some(first), Some(last)) =
        (client, home, app.model.first, app.model.last)
    else {
        return;
    };
    let Some(times) = app.model.contacts.get(&(client, home)) else {
        f.render_widget(Paragraph::new("no contacts"), inner);
        return;
    };
    let w = inner.width.max(1) as usize;
    let bin = (last.since(first) / w as i64).max(1);
    let mut data = vec![0u64; w];
    for t in times {
        let i = ((t.since(first) / bin) as usize).min(w - 1);
        if let Some(d) = data.get_mut(i) {
            *d += 1;
        }
    }
    let mut sp = Sparkline::default().data(&data);
    if app.color {
        sp = sp.style(Style::default().fg(Color::Yellow));
    }
    f.render_widget(sp, inner);
}

/// Every key, for the help overlay and docs/tui.md.
pub const HELP: &[(&str, &str)] = &[
    ("Tab S-Tab, 1-9", "next / previous view, view by number"),
    ("?", "this help (Esc or ? closes it)"),
    ("q, Ctrl-C", "quit"),
    (
        "Up Down j k PgUp PgDn",
        "move the selection (row, timeline lane)",
    ),
    ("g G, Home End", "first / last row; timeline: start / end"),
    ("Enter", "open: flow/call/cell -> messages, host -> flows"),
    ("o", "Timeline: the selected lane's flows"),
    ("Esc", "back (details, list, previous view); cancel"),
    ("s S, r", "sort by next / previous column; reverse"),
    ("f", "filter: class:media host:IP proto:tcp home COL:TEXT"),
    ("/, n N", "incremental search; next / previous match"),
    (
        "Right l, Left h",
        "Messages: details / list; Timeline: cursor",
    ),
    ("+ - (z Z)", "Timeline: zoom in / out around the cursor"),
    ("H L (S-Left S-Right)", "Timeline: pan by a quarter window"),
    ("t, 0", "Timeline: go to time (s from start); fit all"),
    ("f", "Timeline: follow the newest data (live)"),
    ("e", "export: table -> CSV; timeline window -> pcapng"),
];

fn render_help(f: &mut Frame, area: Rect) {
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect::new(area.x, area.y, area.width, h);
    f.render_widget(Clear, r);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| Line::from(format!("{k:<22} {v}")))
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("Keys")),
        r,
    );
}

fn view_index(v: View) -> usize {
    VIEWS.iter().position(|x| *x == v).unwrap_or(0)
}

impl App {
    pub(crate) fn view_index(&self) -> usize {
        view_index(self.view)
    }
}
