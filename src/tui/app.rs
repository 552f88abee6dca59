//! The UI's state and key handling, with no terminal types: [`App`] owns the [`Model`] and
//! the view state (current view, selections, sort orders, filters, the timeline's window)
//! and turns [`Key`]s into state changes and [`Action`]s for the event loop to apply.
//!
//! Guarantees: every key is handled without panicking on any model (empty included); row
//! lists are computed once per change of data, sort or filter and cached, and drawing reads
//! only the visible rows. Must not: touch the terminal, files or clocks (time comes in
//! through [`App::tick`]).

use super::details::{DetailsCache, MessageRef};
use super::feed::{Status, Table};
use super::model::{FlowEntry, Model};
use crate::flow::Uid;
use crate::time::Ts;
use dissectors::registry::TrafficClass;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Longest filter, search or goto text accepted.
pub const MAX_INPUT_LEN: usize = 256;
/// How often (ms of UI time) cached row lists follow data that keeps changing.
pub const REFRESH_MS: u64 = 1000;

/// The views, in Tab order (number keys 1–9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Timeline,
    Flows,
    Messages,
    Calls,
    Lookups,
    PhoneHome,
    Hosts,
    Keepalives,
    Logins,
}

pub const VIEWS: [View; 9] = [
    View::Timeline,
    View::Flows,
    View::Messages,
    View::Calls,
    View::Lookups,
    View::PhoneHome,
    View::Hosts,
    View::Keepalives,
    View::Logins,
];

impl View {
    pub fn title(self) -> &'static str {
        match self {
            View::Timeline => "Timeline",
            View::Flows => "Flows",
            View::Messages => "Messages",
            View::Calls => "Calls",
            View::Lookups => "Lookups",
            View::PhoneHome => "Phone-home",
            View::Hosts => "Hosts",
            View::Keepalives => "Keepalives",
            View::Logins => "Logins",
        }
    }

    /// File-name stem for exports.
    pub fn slug(self) -> &'static str {
        match self {
            View::Timeline => "timeline",
            View::Flows => "flows",
            View::Messages => "messages",
            View::Calls => "calls",
            View::Lookups => "lookups",
            View::PhoneHome => "phonehome",
            View::Hosts => "hosts",
            View::Keepalives => "keepalives",
            View::Logins => "logins",
        }
    }

    fn index(self) -> usize {
        VIEWS.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// A key press, independent of the terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Ctrl + a letter.
    Ctrl(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Backspace,
}

/// What the event loop must do after a key.
#[derive(Debug, PartialEq)]
pub enum Action {
    None,
    Quit,
    Export(Export),
}

/// An export the event loop performs (see [`super::export`]).
#[derive(Debug, PartialEq)]
pub enum Export {
    /// The current table, filtered and sorted, all of its columns.
    Csv { path: PathBuf, table: Table },
    /// Frames of `flows` between `t0` and `t1` (inclusive), re-read from `capture`.
    Pcapng {
        path: PathBuf,
        capture: PathBuf,
        flows: Vec<(u8, SocketAddr, SocketAddr)>,
        t0: Ts,
        t1: Ts,
    },
}

/// The line being typed, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    None,
    Filter,
    Search,
    /// Timeline: jump to a time (seconds from the start).
    Goto,
}

/// Which messages the Messages view lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Flow(Uid),
    /// Messages to or from `host` in `[t0, t1)` (a timeline cell).
    Cell {
        host: IpAddr,
        t0: Ts,
        t1: Ts,
    },
    /// Messages of one call.
    Call(u64),
}

/// Selection, sort and filter of one list view.
#[derive(Clone, Debug, Default)]
pub struct ListState {
    pub sel: usize,
    pub sort_col: Option<usize>,
    pub desc: bool,
    pub filter: String,
    pub search: String,
    /// First visible row (kept by the renderer so the selection stays in view).
    pub offset: Cell<usize>,
}

/// The timeline's window and cursor.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Window start; `None` until data arrives (then the capture's start).
    pub t0: Option<Ts>,
    /// Window length; 0 until data arrives (then the whole capture).
    pub span_ns: i64,
    pub cursor: usize,
    pub lane: usize,
    pub follow: bool,
    /// Columns of the plot at the last draw (the renderer sets it).
    pub width: Cell<usize>,
    pub lane_offset: Cell<usize>,
    /// The user moved the window (zoom, pan, goto): stop fitting it to the whole capture.
    pub user_set: bool,
}

/// A sort key: numbers sort as numbers, the rest as text, empty last.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum SortKey {
    Num(f64),
    Text(String),
    Empty,
}

fn sort_key(s: &str) -> SortKey {
    let t = s.trim_end_matches('+');
    if s.is_empty() {
        SortKey::Empty
    } else if let Ok(v) = t.parse::<f64>() {
        SortKey::Num(v)
    } else {
        SortKey::Text(s.to_ascii_lowercase())
    }
}

/// A view's rows (item indices), shared so a frame can read them without copying.
pub type Rows = std::rc::Rc<Vec<usize>>;

type RowCache = RefCell<Vec<Option<(u64, Rows)>>>;

/// The whole UI state.
pub struct App {
    pub model: Model,
    /// What is shown as the source (file name or interface).
    pub source: String,
    /// The capture file, for details and pcapng export (none for live capture).
    pub capture: Option<PathBuf>,
    pub live: bool,
    pub color: bool,
    pub view: View,
    pub help: bool,
    pub input: Input,
    pub input_buf: String,
    pub lists: [ListState; VIEWS.len()],
    pub scope: Option<Scope>,
    pub details_focus: bool,
    pub field: usize,
    pub timeline: Timeline,
    pub status: Arc<Status>,
    /// One line for the status bar (export done, errors).
    pub notice: Option<String>,
    pub export_dir: PathBuf,
    pub details: RefCell<DetailsCache>,
    /// Visible rows of the current list at the last draw.
    pub page: Cell<usize>,
    /// Width of the current list at the last draw (which columns `s` cycles through).
    pub list_width: Cell<u16>,
    now_ms: u64,
    /// (data version, rows) per view, and when each was computed.
    rows: RowCache,
    computed_at: RefCell<[(u64, u64); VIEWS.len()]>,
    /// The selection when an incremental search started.
    search_origin: usize,
    /// The current scope's message indices (the Messages view's items).
    scope_list: RefCell<Vec<usize>>,
    /// The timeline's last grid and what it was computed for (see `ui`).
    pub(crate) grid: RefCell<Option<GridCache>>,
}

/// The timeline's grid for one window (`key`), from data `version`, computed at `at_ms`.
pub(crate) struct GridCache {
    pub key: u64,
    pub version: u64,
    pub at_ms: u64,
    pub cells: Vec<GridCell>,
}

/// One timeline cell: messages per class, and whether a phone-home contact started in it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GridCell {
    pub counts: [u32; 5],
    /// Messages with no overlay class (plain DNS, STUN, …).
    pub other: u32,
    /// A contact of this lane's host with a home endpoint started here (as phonehome.csv
    /// counts contacts: packets, decoded or not).
    pub home: bool,
}

impl App {
    pub fn new(source: String, capture: Option<PathBuf>, color: bool, status: Arc<Status>) -> App {
        App {
            model: Model::new(),
            source,
            capture,
            live: false,
            color,
            view: View::Timeline,
            help: false,
            input: Input::None,
            input_buf: String::new(),
            lists: Default::default(),
            scope: None,
            details_focus: false,
            field: 0,
            timeline: Timeline {
                t0: None,
                span_ns: 0,
                cursor: 0,
                lane: 0,
                follow: false,
                width: Cell::new(60),
                lane_offset: Cell::new(0),
                user_set: false,
            },
            status,
            notice: None,
            export_dir: PathBuf::from("."),
            details: RefCell::new(DetailsCache::default()),
            page: Cell::new(10),
            list_width: Cell::new(u16::MAX),
            now_ms: 0,
            rows: RefCell::new(vec![None; VIEWS.len()]),
            computed_at: RefCell::new([(u64::MAX, 0); VIEWS.len()]),
            search_origin: 0,
            scope_list: RefCell::new(Vec::new()),
            grid: RefCell::new(None),
        }
    }

    /// Advances UI time (ms); cached lists of changing data refresh at most every
    /// [`REFRESH_MS`]. In follow mode the timeline window tracks the newest data.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        self.fit_timeline();
    }

    /// UI time (ms) as of the last tick.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Applies a batch of events to the model.
    pub fn apply(&mut self, batch: Vec<super::feed::Event>) {
        self.model.apply(batch);
        self.fit_timeline();
    }

    /// Sets the timeline window once data arrives, and follows the newest data if asked.
    fn fit_timeline(&mut self) {
        let (Some(first), Some(last)) = (self.model.first, self.model.last) else {
            return;
        };
        let whole = last.since(first).max(1);
        if self.timeline.t0.is_none() || !self.timeline.user_set {
            self.timeline.t0 = Some(first);
            self.timeline.span_ns = whole;
        }
        if self.timeline.follow {
            self.timeline.t0 = Some(last.add_nanos(-self.timeline.span_ns));
        }
    }

    // ---- rows of the list views ----

    /// The table behind a report view.
    pub fn table(&self, view: View) -> Option<&Table> {
        let t = &self.model.tables;
        match view {
            View::Lookups => Some(&t.lookups),
            View::PhoneHome => Some(&t.phonehome),
            View::Hosts => Some(&t.hosts),
            View::Keepalives => Some(&t.keepalives),
            View::Logins => Some(&t.logins),
            _ => None,
        }
    }

    /// Column names of a list view.
    pub fn columns(&self, view: View) -> Vec<Cow<'static, str>> {
        match view {
            View::Flows => FLOW_COLUMNS.iter().map(|c| Cow::Borrowed(*c)).collect(),
            View::Messages => MSG_COLUMNS.iter().map(|c| Cow::Borrowed(*c)).collect(),
            View::Calls => crate::report::calls_csv::CALLS_COLUMNS
                .iter()
                .map(|c| Cow::Borrowed(*c))
                .collect(),
            View::Timeline => Vec::new(),
            v => self
                .table(v)
                .map(|t| t.columns.iter().map(|c| Cow::Owned(c.clone())).collect())
                .unwrap_or_default(),
        }
    }

    /// Columns drawn in `width` cells (all columns are sortable and exported).
    pub fn shown_columns(&self, view: View, width: u16) -> Vec<usize> {
        let names: &[&str] = match view {
            View::Flows if width < 100 => {
                &["proto", "orig", "resp", "class", "dur", "bytes", "msgs"]
            }
            View::Flows if width < 130 => &[
                "proto", "orig", "resp", "service", "class", "start", "dur", "pkts", "bytes",
                "msgs", "home",
            ],
            View::Messages if width < 100 => &["#", "time", "src", "dst", "type", "class", "len"],
            View::Calls => &[
                "call_id",
                "caller",
                "callee",
                "start",
                "setup_accept_s",
                "duration_s",
                "end_reason",
                "media_path",
                "relay",
                "loss_ab",
                "jitter_ms_ab",
            ],
            // Times since the epoch crowd out the rest below 120 cells.
            View::Logins if width < 120 => &[
                "client",
                "duration_s",
                "outcome",
                "transport",
                "fallback_port",
                "bytes",
                "steps",
            ],
            View::PhoneHome => &[
                "client",
                "home",
                "home_name",
                "contacts",
                "contacts_per_hour",
                "interval_p50",
                "interval_max",
                "bytes_to_home",
                "kinds",
            ],
            _ => &[],
        };
        let cols = self.columns(view);
        if names.is_empty() {
            return (0..cols.len()).collect();
        }
        names
            .iter()
            .filter_map(|n| cols.iter().position(|c| c == n))
            .collect()
    }

    /// Number of underlying items of a list view (before filtering).
    fn item_count(&self, view: View) -> usize {
        match view {
            View::Flows => self.model.flows.len(),
            View::Messages => self.scope_cache().len(),
            View::Calls => self.model.calls.len(),
            View::Timeline => 0,
            v => self.table(v).map_or(0, |t| t.rows.len()),
        }
    }

    /// The model messages (indices) of the current scope, in order.
    pub fn scope_msgs(&self) -> Vec<usize> {
        let m = &self.model;
        match self.scope {
            None => Vec::new(),
            Some(Scope::Flow(uid)) => m
                .flow_by_uid(uid)
                .map(|f| f.msgs.iter().map(|&i| i as usize).collect())
                .unwrap_or_default(),
            Some(Scope::Cell { host, t0, t1 }) => m
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.ts >= t0 && r.ts < t1 && (r.src.ip() == host || r.dst.ip() == host)
                })
                .map(|(i, _)| i)
                .collect(),
            Some(Scope::Call(id)) => m
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.call_id == Some(id))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    fn rel(&self, ts: Ts) -> String {
        let first = self.model.first.unwrap_or(ts);
        format!("{:.3}", ts.since(first) as f64 / 1e9)
    }

    /// One cell of a list view: `item` is the underlying item index.
    pub fn cell(&self, view: View, item: usize, col: usize) -> Cow<'_, str> {
        match view {
            View::Flows => match self.model.flows.get(item) {
                Some(f) => self.flow_cell(f, col),
                None => Cow::Borrowed(""),
            },
            View::Messages => self.msg_cell(item, col),
            View::Calls => self
                .model
                .calls
                .get(item)
                .and_then(|c| c.fields.get(col))
                .map(|s| Cow::Borrowed(s.as_str()))
                .unwrap_or(Cow::Borrowed("")),
            View::Timeline => Cow::Borrowed(""),
            v => self
                .table(v)
                .and_then(|t| t.rows.get(item))
                .and_then(|r| r.get(col))
                .map(|s| Cow::Borrowed(s.as_str()))
                .unwrap_or(Cow::Borrowed("")),
        }
    }

    fn flow_cell<'a>(&self, f: &'a FlowEntry, col: usize) -> Cow<'a, str> {
        match col {
            0 => Cow::Owned(f.uid.to_string()),
            1 => Cow::Borrowed(f.proto_name()),
            2 => Cow::Owned(f.orig.to_string()),
            3 => Cow::Owned(f.resp.to_string()),
            4 => Cow::Borrowed(f.service.unwrap_or("")),
            5 => Cow::Borrowed(f.class().map_or("", TrafficClass::as_str)),
            6 => Cow::Owned(self.rel(f.start)),
            7 => Cow::Owned(format!("{:.3}", f.end.since(f.start) as f64 / 1e9)),
            8 => Cow::Owned((f.pkts[0] + f.pkts[1]).to_string()),
            9 => Cow::Owned((f.bytes[0] + f.bytes[1]).to_string()),
            10 => Cow::Owned(f.msgs.len().to_string()),
            11 => Cow::Borrowed(if f.home { "home" } else { "" }),
            _ => Cow::Borrowed(""),
        }
    }

    /// `item` indexes the scope's message list.
    fn msg_cell(&self, item: usize, col: usize) -> Cow<'_, str> {
        let Some(m) = self.scope_msg(item) else {
            return Cow::Borrowed("");
        };
        match col {
            0 => Cow::Owned(m.index_in_flow.to_string()),
            1 => Cow::Owned(self.rel(m.ts)),
            2 => Cow::Owned(m.src.to_string()),
            3 => Cow::Owned(m.dst.to_string()),
            4 => Cow::Borrowed(m.protocol),
            5 => Cow::Borrowed(&m.kind),
            6 => Cow::Borrowed(m.class.map_or("", TrafficClass::as_str)),
            7 => Cow::Owned(m.len.to_string()),
            8 => Cow::Borrowed(if m.home { "home" } else { "" }),
            _ => Cow::Borrowed(""),
        }
    }

    /// The `item`-th message of the current scope.
    pub fn scope_msg(&self, item: usize) -> Option<&super::model::Msg> {
        let idx = *self.scope_cache().get(item)?;
        self.model.msgs.get(idx)
    }

    /// The scope's message indices, as of the Messages view's last row computation.
    fn scope_cache(&self) -> std::cell::Ref<'_, Vec<usize>> {
        self.scope_list.borrow()
    }

    /// Whether a row passes the view's filter.
    fn passes(&self, view: View, item: usize, filter: &[Token]) -> bool {
        filter.iter().all(|t| match (view, t) {
            (View::Flows, t) => self
                .model
                .flows
                .get(item)
                .is_some_and(|f| flow_matches(f, t, self)),
            (View::Messages, Token::Class(c)) => {
                self.scope_msg(item).is_some_and(|m| m.class == Some(*c))
            }
            (View::Messages, Token::Home) => self.scope_msg(item).is_some_and(|m| m.home),
            (View::Messages, Token::Host(h)) => self
                .scope_msg(item)
                .is_some_and(|m| addr_matches(&m.src, h) || addr_matches(&m.dst, h)),
            (_, Token::Field(name, value)) => {
                let cols = self.columns(view);
                match cols.iter().position(|c| c.eq_ignore_ascii_case(name)) {
                    Some(c) => contains_ci(&self.cell(view, item, c), value),
                    None => self.row_contains(view, item, &format!("{name}:{value}")),
                }
            }
            (_, Token::Class(c)) => self.row_contains(view, item, c.as_str()),
            (_, Token::Host(h)) => self.row_contains(view, item, h),
            (_, Token::Proto(p)) => self.row_contains(view, item, p),
            (_, Token::Home) => self.row_contains(view, item, "home"),
            (_, Token::Text(s)) => self.row_contains(view, item, s),
        })
    }

    fn row_contains(&self, view: View, item: usize, needle: &str) -> bool {
        (0..self.columns(view).len()).any(|c| contains_ci(&self.cell(view, item, c), needle))
    }

    /// The rows of a list view after filter and sort, as item indices (cached).
    pub fn rows(&self, view: View) -> Rows {
        let vi = view.index();
        let key = self.cache_key(view);
        {
            let cache = self.rows.borrow();
            if let Some(Some((k, rows))) = cache.get(vi) {
                let (_, at) = self.computed_at.borrow()[vi];
                let stale = *k != key;
                let data_only = stale && (*k >> 32) == (key >> 32);
                let fresh_enough = data_only && self.now_ms.saturating_sub(at) < REFRESH_MS;
                if !stale || fresh_enough {
                    return rows.clone();
                }
            }
        }
        if view == View::Messages {
            *self.scope_list.borrow_mut() = self.scope_msgs();
        }
        let rows: Rows = std::rc::Rc::new(self.compute_rows(view));
        if let Some(slot) = self.rows.borrow_mut().get_mut(vi) {
            *slot = Some((key, rows.clone()));
        }
        if let Some(slot) = self.computed_at.borrow_mut().get_mut(vi) {
            *slot = (key, self.now_ms);
        }
        rows
    }

    /// High 32 bits: what the user set (sort, filter, scope); low: the data version.
    fn cache_key(&self, view: View) -> u64 {
        use std::hash::{Hash, Hasher};
        let l = &self.lists[view.index()];
        let mut h = rustc_hash::FxHasher::default();
        (l.sort_col, l.desc, &l.filter).hash(&mut h);
        if view == View::Messages {
            format!("{:?}", self.scope).hash(&mut h);
        }
        (h.finish() << 32) | (self.model.version & 0xffff_ffff)
    }

    fn compute_rows(&self, view: View) -> Vec<usize> {
        let l = &self.lists[view.index()];
        let filter = parse_filter(&l.filter);
        let n = if view == View::Messages {
            self.scope_list.borrow().len()
        } else {
            self.item_count(view)
        };
        let mut rows: Vec<usize> = (0..n)
            .filter(|&i| filter.is_empty() || self.passes(view, i, &filter))
            .collect();
        if let Some(col) = l.sort_col {
            let mut keyed: Vec<(SortKey, usize)> = rows
                .iter()
                .map(|&i| (sort_key(&self.cell(view, i, col)), i))
                .collect();
            keyed.sort_by(|a, b| {
                let o = cmp_keys(&a.0, &b.0);
                let o = if l.desc { o.reverse() } else { o };
                o.then(a.1.cmp(&b.1))
            });
            rows = keyed.into_iter().map(|(_, i)| i).collect();
        }
        rows
    }

    // ---- keys ----

    pub fn on_key(&mut self, key: Key) -> Action {
        self.notice = None;
        if self.input != Input::None {
            return self.on_input_key(key);
        }
        if self.help {
            if matches!(key, Key::Char('?') | Key::Esc | Key::Char('q')) {
                self.help = false;
            }
            return Action::None;
        }
        match key {
            Key::Char('q') | Key::Ctrl('c') => return Action::Quit,
            Key::Char('?') => self.help = true,
            Key::Tab => self.switch((self.view.index() + 1) % VIEWS.len()),
            Key::BackTab => self.switch((self.view.index() + VIEWS.len() - 1) % VIEWS.len()),
            Key::Char(c @ '1'..='9') => self.switch(c as usize - '1' as usize),
            Key::Char('e') => return self.export(),
            Key::Esc => self.back(),
            _ => {
                if self.view == View::Timeline {
                    self.timeline_key(key);
                } else {
                    self.list_key(key);
                }
            }
        }
        Action::None
    }

    fn switch(&mut self, i: usize) {
        if let Some(v) = VIEWS.get(i) {
            self.view = *v;
            self.details_focus = false;
        }
    }

    /// Esc: leave the details pane, or go back from Messages to where it came from.
    fn back(&mut self) {
        if self.details_focus {
            self.details_focus = false;
        } else if self.view == View::Messages {
            self.view = match self.scope {
                Some(Scope::Cell { .. }) => View::Timeline,
                Some(Scope::Call(_)) => View::Calls,
                _ => View::Flows,
            };
        }
    }

    fn list(&mut self) -> &mut ListState {
        &mut self.lists[self.view.index()]
    }

    fn list_key(&mut self, key: Key) {
        let view = self.view;
        let n = self.rows(view).len();
        let page = self.page.get().max(1);
        if view == View::Messages && self.details_focus {
            let count = self.selected_message_ref().map_or(0, |r| {
                super::details::field_count(&r, &mut self.details.borrow_mut())
            });
            match key {
                Key::Up | Key::Char('k') => self.field = self.field.saturating_sub(1),
                Key::Down | Key::Char('j') => {
                    self.field = (self.field + 1).min(count.saturating_sub(1))
                }
                Key::Left | Key::Char('h') => self.details_focus = false,
                _ => {}
            }
            return;
        }
        let shown = self.shown_columns(view, self.list_width.get());
        let l = self.list();
        match key {
            Key::Up | Key::Char('k') => l.sel = l.sel.saturating_sub(1),
            Key::Down | Key::Char('j') => l.sel = (l.sel + 1).min(n.saturating_sub(1)),
            Key::PageUp => l.sel = l.sel.saturating_sub(page),
            Key::PageDown => l.sel = (l.sel + page).min(n.saturating_sub(1)),
            Key::Home | Key::Char('g') => l.sel = 0,
            Key::End | Key::Char('G') => l.sel = n.saturating_sub(1),
            Key::Char('s') | Key::Char('S') if !shown.is_empty() => {
                // Through the columns drawn, from the current one.
                let pos = l.sort_col.and_then(|c| shown.iter().position(|s| *s == c));
                let n = shown.len();
                let next = match (key, pos) {
                    (Key::Char('s'), Some(p)) => (p + 1) % n,
                    (Key::Char('s'), None) => 0,
                    (_, Some(p)) => (p + n - 1) % n,
                    (_, None) => n - 1,
                };
                l.sort_col = shown.get(next).copied();
            }
            Key::Char('r') => l.desc = !l.desc,
            Key::Char('f') => {
                self.input_buf = self.list().filter.clone();
                self.input = Input::Filter;
            }
            Key::Char('/') => {
                self.search_origin = self.list().sel;
                self.input_buf.clear();
                self.input = Input::Search;
            }
            Key::Char('n') => self.search_next(1),
            Key::Char('N') => self.search_next(-1),
            Key::Enter => self.open(),
            Key::Right | Key::Char('l') if view == View::Messages => {
                self.details_focus = true;
                self.field = 0;
            }
            _ => {}
        }
    }

    /// Enter on a list row: a flow opens its messages; a call opens the call's messages; a
    /// host opens its flows.
    fn open(&mut self) {
        let rows = self.rows(self.view);
        let Some(&item) = rows.get(self.lists[self.view.index()].sel) else {
            return;
        };
        match self.view {
            View::Flows => {
                if let Some(f) = self.model.flows.get(item) {
                    self.scope = Some(Scope::Flow(f.uid));
                    self.show_messages();
                }
            }
            View::Calls => {
                if let Some(c) = self.model.calls.get(item) {
                    self.scope = Some(Scope::Call(u64::from(c.record.call_id)));
                    self.show_messages();
                }
            }
            View::Hosts | View::PhoneHome | View::Keepalives | View::Lookups | View::Logins => {
                let host = self.cell(self.view, item, 0).into_owned();
                let l = &mut self.lists[View::Flows.index()];
                l.filter = format!("host:{host}");
                l.sel = 0;
                self.view = View::Flows;
            }
            View::Messages => {
                self.details_focus = true;
                self.field = 0;
            }
            View::Timeline => {}
        }
    }

    fn show_messages(&mut self) {
        let l = &mut self.lists[View::Messages.index()];
        l.sel = 0;
        l.filter.clear();
        self.view = View::Messages;
        self.details_focus = false;
    }

    fn search_next(&mut self, step: isize) {
        let view = self.view;
        let needle = self.list().search.clone();
        if needle.is_empty() {
            return;
        }
        let rows = self.rows(view);
        let n = rows.len();
        let start = self.list().sel;
        for k in 1..=n {
            let pos = (start as isize + step * k as isize).rem_euclid(n.max(1) as isize) as usize;
            if rows
                .get(pos)
                .is_some_and(|&i| self.row_contains(view, i, &needle))
            {
                self.list().sel = pos;
                return;
            }
        }
        self.notice = Some(format!("not found: {needle}"));
    }

    /// Incremental search: the first row from where the search began that contains `text`.
    fn search_from_origin(&mut self) {
        let view = self.view;
        let needle = self.input_buf.clone();
        self.list().search = needle.clone();
        let rows = self.rows(view);
        let origin = self.search_origin;
        let n = rows.len();
        let found = (0..n).map(|k| (origin + k) % n.max(1)).find(|&pos| {
            rows.get(pos)
                .is_some_and(|&i| self.row_contains(view, i, &needle))
        });
        self.list().sel = found.unwrap_or(origin);
    }

    fn on_input_key(&mut self, key: Key) -> Action {
        match key {
            Key::Esc => {
                if self.input == Input::Search {
                    let origin = self.search_origin;
                    let l = self.list();
                    l.sel = origin;
                    l.search.clear();
                }
                self.input = Input::None;
            }
            Key::Enter => {
                match self.input {
                    Input::Filter => {
                        let text = self.input_buf.trim().to_string();
                        let l = self.list();
                        l.filter = text;
                        l.sel = 0;
                    }
                    Input::Goto => self.goto(),
                    _ => {}
                }
                self.input = Input::None;
            }
            Key::Backspace => {
                self.input_buf.pop();
                if self.input == Input::Search {
                    self.search_from_origin();
                }
            }
            Key::Char(c) if self.input_buf.len() < MAX_INPUT_LEN && !c.is_control() => {
                self.input_buf.push(c);
                if self.input == Input::Search {
                    self.search_from_origin();
                }
            }
            Key::Ctrl('c') => return Action::Quit,
            _ => {}
        }
        Action::None
    }

    // ---- timeline ----

    /// Lanes: hosts grouped by role (login server, home, super nodes, relays, clients,
    /// others), then by address.
    pub fn lanes(&self) -> Vec<IpAddr> {
        let mut hosts = self.model.hosts.clone();
        hosts.sort_by_key(|h| (role_rank(self.model.role(*h)), *h));
        hosts
    }

    /// Nanoseconds per plot column.
    pub fn bin_ns(&self) -> i64 {
        (self.timeline.span_ns / self.timeline.width.get().max(1) as i64).max(1)
    }

    /// The time range of the cursor's column.
    pub fn cursor_range(&self) -> Option<(Ts, Ts)> {
        let t0 = self.timeline.t0?;
        let bin = self.bin_ns();
        // After a resize the cursor may lie past the plot: use its last column.
        let col = self
            .timeline
            .cursor
            .min(self.timeline.width.get().saturating_sub(1));
        let a = t0.add_nanos(bin.saturating_mul(col as i64));
        Some((a, a.add_nanos(bin)))
    }

    fn timeline_key(&mut self, key: Key) {
        if matches!(
            key,
            Key::Char('H' | 'L' | '+' | '=' | 'z' | '-' | '_' | 'Z' | 'F' | 'f')
                | Key::Home
                | Key::End
                | Key::Char('g' | 'G')
        ) {
            self.timeline.user_set = true;
        }
        let width = self.timeline.width.get().max(1);
        let lanes = self.lanes().len();
        let page = self.page.get().max(1);
        let tl = &mut self.timeline;
        let span = tl.span_ns.max(1);
        match key {
            Key::Up | Key::Char('k') => tl.lane = tl.lane.saturating_sub(1),
            Key::Down | Key::Char('j') => tl.lane = (tl.lane + 1).min(lanes.saturating_sub(1)),
            Key::PageUp => tl.lane = tl.lane.saturating_sub(page),
            Key::PageDown => tl.lane = (tl.lane + page).min(lanes.saturating_sub(1)),
            Key::Left | Key::Char('h') => tl.cursor = tl.cursor.saturating_sub(1),
            Key::Right | Key::Char('l') => tl.cursor = (tl.cursor + 1).min(width - 1),
            Key::Char('H') => self.pan(-span / 4),
            Key::Char('L') => self.pan(span / 4),
            Key::Char('+') | Key::Char('=') | Key::Char('z') => self.zoom(true),
            Key::Char('-') | Key::Char('_') | Key::Char('Z') => self.zoom(false),
            Key::Home | Key::Char('g') => {
                self.timeline.follow = false;
                self.timeline.t0 = self.model.first;
                self.timeline.cursor = 0;
            }
            Key::End | Key::Char('G') => {
                if let Some(last) = self.model.last {
                    self.timeline.t0 = Some(last.add_nanos(-span));
                    self.timeline.cursor = width - 1;
                }
            }
            Key::Char('0') => {
                self.timeline.user_set = false;
                self.timeline.follow = false;
                self.fit_timeline();
            }
            Key::Char('F') | Key::Char('f') => {
                self.timeline.follow = !self.timeline.follow;
                self.fit_timeline();
            }
            Key::Char('t') => {
                self.input_buf.clear();
                self.input = Input::Goto;
            }
            Key::Char('o') => {
                // The selected lane's flows.
                if let Some(host) = self.lanes().get(self.timeline.lane) {
                    let l = &mut self.lists[View::Flows.index()];
                    l.filter = format!("host:{host}");
                    l.sel = 0;
                    self.view = View::Flows;
                }
            }
            Key::Enter => {
                let lanes = self.lanes();
                if let (Some(&host), Some((t0, t1))) =
                    (lanes.get(self.timeline.lane), self.cursor_range())
                {
                    self.scope = Some(Scope::Cell { host, t0, t1 });
                    self.show_messages();
                }
            }
            _ => {}
        }
    }

    fn pan(&mut self, ns: i64) {
        self.timeline.follow = false;
        if let Some(t0) = self.timeline.t0 {
            self.timeline.t0 = Some(t0.add_nanos(ns));
        }
    }

    /// Zooms by 2× around the cursor's column.
    fn zoom(&mut self, zoom_in: bool) {
        let Some(t0) = self.timeline.t0 else {
            return;
        };
        let width = self.timeline.width.get().max(1) as i64;
        let span = self.timeline.span_ns.max(1);
        let at = t0.add_nanos(span / width * self.timeline.cursor as i64);
        let new_span = if zoom_in {
            (span / 2).max(width.saturating_mul(1000))
        } else {
            span.saturating_mul(2).min(i64::MAX / 4)
        };
        let frac = self.timeline.cursor as f64 / width as f64;
        self.timeline.span_ns = new_span;
        self.timeline.t0 = Some(at.add_nanos(-((new_span as f64 * frac) as i64)));
    }

    /// Goto: centres the window on `input_buf` seconds from the capture's start.
    fn goto(&mut self) {
        let Ok(secs) = self.input_buf.trim().trim_end_matches('s').parse::<f64>() else {
            self.notice = Some(format!("not a time in seconds: {}", self.input_buf));
            return;
        };
        let Some(first) = self.model.first else {
            return;
        };
        if !secs.is_finite() {
            return;
        }
        let at = first.add_nanos((secs * 1e9) as i64);
        self.timeline.follow = false;
        self.timeline.user_set = true;
        self.timeline.t0 = Some(at.add_nanos(-self.timeline.span_ns / 2));
        self.timeline.cursor = self.timeline.width.get() / 2;
    }

    // ---- details and export ----

    /// The selected message of the Messages view, as a details reference.
    pub fn selected_message_ref(&self) -> Option<MessageRef> {
        let rows = self.rows(View::Messages);
        let item = *rows.get(self.lists[View::Messages.index()].sel)?;
        let m = self.scope_msg(item)?;
        Some(MessageRef {
            capture: self.capture.clone().unwrap_or_default(),
            uid_endpoints: self.model.endpoints(m),
            proto: m.proto,
            dir_from: m.src,
            ts: m.ts,
            protocol: m.protocol,
            msg_type: m.msg_type.to_string(),
            index_in_flow: m.index_in_flow as usize,
        })
    }

    fn export_path(&self, ext: &str) -> PathBuf {
        let stem = format!("p2ptrace-{}", self.view.slug());
        let mut path = self.export_dir.join(format!("{stem}.{ext}"));
        let mut n = 1;
        while path.exists() && n < 10_000 {
            path = self.export_dir.join(format!("{stem}-{n}.{ext}"));
            n += 1;
        }
        path
    }

    /// `e`: the current view as CSV, or the timeline's window as pcapng.
    fn export(&mut self) -> Action {
        if self.view == View::Timeline {
            return self.export_pcapng();
        }
        let view = self.view;
        let columns: Vec<String> = self.columns(view).iter().map(|c| c.to_string()).collect();
        let rows = self
            .rows(view)
            .iter()
            .map(|&i| {
                (0..columns.len())
                    .map(|c| self.cell(view, i, c).into_owned())
                    .collect()
            })
            .collect();
        Action::Export(Export::Csv {
            path: self.export_path("csv"),
            table: Table { columns, rows },
        })
    }

    /// Flows with a message to or from the selected lane's host in the window (and passing
    /// the Flows view's filter), and the window.
    fn export_pcapng(&mut self) -> Action {
        let Some(capture) = self.capture.clone() else {
            self.notice = Some("pcapng export needs a capture file".into());
            return Action::None;
        };
        let (Some(t0), Some(host)) = (
            self.timeline.t0,
            self.lanes().get(self.timeline.lane).copied(),
        ) else {
            self.notice = Some("nothing to export".into());
            return Action::None;
        };
        let t1 = t0.add_nanos(self.timeline.span_ns);
        let allowed: rustc_hash::FxHashSet<usize> =
            self.rows(View::Flows).iter().copied().collect();
        let mut flows = Vec::new();
        for (i, f) in self.model.flows.iter().enumerate() {
            if !allowed.contains(&i) || (f.orig.ip() != host && f.resp.ip() != host) {
                continue;
            }
            let inside = f.msgs.iter().any(|&m| {
                self.model
                    .msgs
                    .get(m as usize)
                    .is_some_and(|m| m.ts >= t0 && m.ts <= t1)
            });
            if inside {
                flows.push((f.proto, f.orig, f.resp));
            }
        }
        if flows.is_empty() {
            self.notice = Some(format!("no flow of {host} in the window"));
            return Action::None;
        }
        Action::Export(Export::Pcapng {
            path: self.export_path("pcapng"),
            capture,
            flows,
            t0,
            t1,
        })
    }
}

fn cmp_keys(a: &SortKey, b: &SortKey) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (SortKey::Num(x), SortKey::Num(y)) => x.total_cmp(y),
        (SortKey::Num(_), SortKey::Text(_)) => Less,
        (SortKey::Text(_), SortKey::Num(_)) => Greater,
        (SortKey::Text(x), SortKey::Text(y)) => x.cmp(y),
        (SortKey::Empty, SortKey::Empty) => Equal,
        (SortKey::Empty, _) => Greater,
        (_, SortKey::Empty) => Less,
    }
}

pub const FLOW_COLUMNS: &[&str] = &[
    "uid", "proto", "orig", "resp", "service", "class", "start", "dur", "pkts", "bytes", "msgs",
    "home",
];
pub const MSG_COLUMNS: &[&str] = &[
    "#", "time", "src", "dst", "protocol", "type", "class", "len", "home",
];

/// Display order of roles on the timeline.
pub fn role_rank(role: &str) -> u8 {
    match role {
        "login-server" => 0,
        "home" => 1,
        "super-node" | "super-node+relay" => 2,
        "relay" => 3,
        "client" => 4,
        "other" => 5,
        _ => 6,
    }
}

/// One filter term.
#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    Class(TrafficClass),
    Host(String),
    Proto(String),
    Home,
    /// `column:value` (substring of that column).
    Field(String, String),
    Text(String),
}

/// Parses a filter line: terms separated by spaces, all must hold. `class:NAME`,
/// `host:ADDR` (address or prefix), `proto:tcp|udp`, `home`, `COLUMN:TEXT`, or text.
pub fn parse_filter(s: &str) -> Vec<Token> {
    s.split_whitespace()
        .map(|t| match t.split_once(':') {
            Some(("class", v)) => TrafficClass::ALL
                .iter()
                .find(|c| c.as_str().starts_with(&v.to_ascii_lowercase()) && !v.is_empty())
                .map(|c| Token::Class(*c))
                .unwrap_or_else(|| Token::Field("class".into(), v.into())),
            Some(("host", v)) => Token::Host(v.to_string()),
            Some(("proto", v)) => Token::Proto(v.to_ascii_lowercase()),
            Some((k, v)) if !k.is_empty() => Token::Field(k.to_string(), v.to_string()),
            _ if t.eq_ignore_ascii_case("home") => Token::Home,
            _ => Token::Text(t.to_string()),
        })
        .collect()
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// `host:` matches an address exactly (with or without port) or as a prefix (`10.0.`).
fn addr_matches(a: &SocketAddr, h: &str) -> bool {
    let ip = a.ip().to_string();
    ip == h || a.to_string() == h || (h.ends_with('.') && ip.starts_with(h))
}

fn flow_matches(f: &FlowEntry, t: &Token, app: &App) -> bool {
    match t {
        Token::Class(c) => f.class_counts.get(c.index()).is_some_and(|n| *n > 0),
        Token::Host(h) => addr_matches(&f.orig, h) || addr_matches(&f.resp, h),
        Token::Proto(p) => f.proto_name().eq_ignore_ascii_case(p),
        Token::Home => f.home,
        Token::Field(k, v) => match FLOW_COLUMNS.iter().position(|c| c == k) {
            Some(c) => contains_ci(&app.flow_cell(f, c), v),
            None => false,
        },
        Token::Text(s) => (0..FLOW_COLUMNS.len()).any(|c| contains_ci(&app.flow_cell(f, c), s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::feed::{Event, FlowRow, MsgRow};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn msg(uid: u64, t_ms: i64, src: &str, dst: &str, class: TrafficClass, kind: &str) -> Event {
        Event::Msg(Box::new(MsgRow {
            uid: Uid(uid),
            ts: Ts(t_ms * 1_000_000),
            src: sa(src),
            dst: sa(dst),
            endpoints: (sa(src), sa(dst)),
            proto: if class == TrafficClass::Media { 17 } else { 6 },
            protocol: "skylark",
            msg_type: Cow::Owned(kind.to_string()),
            kind: Cow::Owned(kind.to_string()),
            class: Some(class),
            home: kind == "auth-hello",
            len: 60,
            call_id: None,
            media: None,
            index_in_flow: 0,
        }))
    }

    /// Three flows: a TCP login to home, a UDP media flow, a TCP signalling flow.
    fn app() -> App {
        let mut a = App::new("test".into(), None, false, Arc::new(Status::default()));
        a.apply(vec![
            msg(
                1,
                0,
                "10.0.0.5:4000",
                "10.0.0.1:33034",
                TrafficClass::Login,
                "auth-hello",
            ),
            msg(
                2,
                1000,
                "10.0.0.5:4000",
                "10.0.0.9:5000",
                TrafficClass::Media,
                "voice",
            ),
            msg(
                2,
                1030,
                "10.0.0.9:5000",
                "10.0.0.5:4000",
                TrafficClass::Media,
                "voice",
            ),
            msg(
                3,
                500,
                "10.0.0.6:4001",
                "10.0.0.9:33033",
                TrafficClass::Signalling,
                "invite",
            ),
            Event::Flow(FlowRow {
                uid: Uid(2),
                proto: 17,
                orig: sa("10.0.0.5:4000"),
                resp: sa("10.0.0.9:5000"),
                start: Ts(1_000_000_000),
                end: Ts(9_000_000_000),
                pkts: [400, 390],
                bytes: [40_000, 39_000],
                service: Some("skylark"),
                state: "SF",
            }),
            Event::Done {
                first: Some(Ts(0)),
                last: Some(Ts(10_000_000_000)),
            },
        ]);
        a
    }

    #[test]
    fn tab_and_number_keys_switch_views() {
        let mut a = app();
        assert_eq!(a.view, View::Timeline);
        a.on_key(Key::Tab);
        assert_eq!(a.view, View::Flows);
        a.on_key(Key::BackTab);
        a.on_key(Key::BackTab);
        assert_eq!(a.view, View::Logins);
        a.on_key(Key::Char('4'));
        assert_eq!(a.view, View::Calls);
        a.on_key(Key::Char('9'));
        assert_eq!(a.view, View::Logins);
        a.on_key(Key::Char('0'));
        assert_eq!(a.view, View::Logins);
    }

    #[test]
    fn help_swallows_keys_until_closed_and_q_quits() {
        let mut a = app();
        assert_eq!(a.on_key(Key::Char('?')), Action::None);
        assert!(a.help);
        assert_eq!(a.on_key(Key::Tab), Action::None);
        assert_eq!(a.view, View::Timeline);
        a.on_key(Key::Esc);
        assert!(!a.help);
        assert_eq!(a.on_key(Key::Char('q')), Action::Quit);
        a.on_key(Key::Char('2'));
        a.on_key(Key::Char('f'));
        assert_eq!(
            a.on_key(Key::Char('q')),
            Action::None,
            "q is text in the filter line"
        );
        assert_eq!(a.on_key(Key::Ctrl('c')), Action::Quit);
    }

    #[test]
    fn filter_line_parses_every_term() {
        let t = parse_filter("class:media host:10.0.0.5 proto:tcp home service:stun bob");
        assert_eq!(
            t,
            vec![
                Token::Class(TrafficClass::Media),
                Token::Host("10.0.0.5".into()),
                Token::Proto("tcp".into()),
                Token::Home,
                Token::Field("service".into(), "stun".into()),
                Token::Text("bob".into()),
            ]
        );
        assert_eq!(
            parse_filter("class:sig"),
            vec![Token::Class(TrafficClass::Signalling)]
        );
    }

    fn type_line(a: &mut App, s: &str) {
        for c in s.chars() {
            a.on_key(Key::Char(c));
        }
        a.on_key(Key::Enter);
    }

    #[test]
    fn flows_filter_by_class_host_proto_and_home() {
        let mut a = app();
        a.on_key(Key::Char('2'));
        assert_eq!(a.rows(View::Flows).len(), 3);
        for (filter, want) in [
            ("class:media", vec![1]),
            ("host:10.0.0.5", vec![0, 1]),
            ("host:10.0.0.", vec![0, 1, 2]),
            ("proto:tcp", vec![0, 2]),
            ("home", vec![0]),
            ("proto:udp class:login", vec![]),
            ("service:skylark proto:udp", vec![1]),
        ] {
            a.on_key(Key::Char('f'));
            for _ in 0..40 {
                a.on_key(Key::Backspace);
            }
            type_line(&mut a, filter);
            assert_eq!(*a.rows(View::Flows), want, "{filter}");
        }
        assert_eq!(a.lists[1].filter, "service:skylark proto:udp");
    }

    #[test]
    fn sort_cycles_columns_and_reverses() {
        let mut a = app();
        a.on_key(Key::Char('2'));
        // Column 6 is start: 0 s, 0.5 s, 1 s.
        for _ in 0..7 {
            a.on_key(Key::Char('s'));
        }
        assert_eq!(a.lists[1].sort_col, Some(6));
        assert_eq!(*a.rows(View::Flows), vec![0, 2, 1]);
        a.on_key(Key::Char('r'));
        assert_eq!(*a.rows(View::Flows), vec![1, 2, 0]);
        a.on_key(Key::Char('S'));
        assert_eq!(a.lists[1].sort_col, Some(5));
    }

    #[test]
    fn incremental_search_moves_and_escape_restores() {
        let mut a = app();
        a.on_key(Key::Char('2'));
        a.on_key(Key::Char('/'));
        for c in "10.0.0.6".chars() {
            a.on_key(Key::Char(c));
        }
        assert_eq!(a.lists[1].sel, 2);
        a.on_key(Key::Esc);
        assert_eq!(a.lists[1].sel, 0);
        a.on_key(Key::Char('/'));
        type_line(&mut a, "udp");
        assert_eq!(a.lists[1].sel, 1);
        a.on_key(Key::Char('n'));
        assert_eq!(a.lists[1].sel, 1, "the only match stays selected");
        assert!(a.notice.is_none());
    }

    #[test]
    fn enter_opens_a_flows_messages_and_escape_goes_back() {
        let mut a = app();
        a.on_key(Key::Char('2'));
        a.on_key(Key::Down);
        a.on_key(Key::Enter);
        assert_eq!(a.view, View::Messages);
        assert_eq!(a.scope, Some(Scope::Flow(Uid(2))));
        assert_eq!(a.rows(View::Messages).len(), 2);
        let r = a.selected_message_ref().unwrap();
        assert_eq!(r.dir_from, sa("10.0.0.5:4000"));
        assert_eq!(r.msg_type, "voice");
        a.on_key(Key::Down);
        assert_eq!(
            a.selected_message_ref().unwrap().dir_from,
            sa("10.0.0.9:5000")
        );
        a.on_key(Key::Right);
        assert!(a.details_focus);
        a.on_key(Key::Esc);
        assert!(!a.details_focus);
        a.on_key(Key::Esc);
        assert_eq!(a.view, View::Flows);
    }

    #[test]
    fn timeline_zoom_pan_jump_and_open_cell() {
        let mut a = app();
        a.timeline.width.set(100);
        assert_eq!(a.timeline.t0, Some(Ts(0)));
        assert_eq!(a.timeline.span_ns, 10_000_000_000);
        a.on_key(Key::Char('+'));
        assert_eq!(a.timeline.span_ns, 5_000_000_000);
        a.on_key(Key::Char('-'));
        a.on_key(Key::Char('-'));
        assert_eq!(a.timeline.span_ns, 20_000_000_000);
        a.on_key(Key::Char('L'));
        assert_eq!(a.timeline.t0, Some(Ts(5_000_000_000)));
        a.on_key(Key::Home);
        assert_eq!(a.timeline.t0, Some(Ts(0)));
        a.on_key(Key::Char('0'));
        assert_eq!(a.timeline.span_ns, 10_000_000_000);
        a.on_key(Key::Char('t'));
        type_line(&mut a, "5");
        assert_eq!(a.timeline.t0, Some(Ts(0)));
        assert_eq!(a.timeline.cursor, 50);
        // Lanes: unknown roles, by address; lane 0 is 10.0.0.1, lane 1 10.0.0.5.
        assert_eq!(a.lanes()[1], "10.0.0.5".parse::<IpAddr>().unwrap());
        a.on_key(Key::Down);
        a.on_key(Key::Char('g'));
        for _ in 0..10 {
            a.on_key(Key::Right);
        }
        a.on_key(Key::Enter);
        assert_eq!(a.view, View::Messages);
        assert!(matches!(a.scope, Some(Scope::Cell { .. })));
        assert_eq!(
            a.rows(View::Messages).len(),
            2,
            "both voice frames at 1.0x s"
        );
        a.on_key(Key::Esc);
        assert_eq!(a.view, View::Timeline);
    }

    #[test]
    fn export_of_a_filtered_table_has_all_columns_and_only_matching_rows() {
        let mut a = app();
        a.on_key(Key::Char('2'));
        a.on_key(Key::Char('f'));
        type_line(&mut a, "proto:tcp");
        let Action::Export(Export::Csv { table, path }) = a.on_key(Key::Char('e')) else {
            panic!("no export");
        };
        assert!(path.ends_with("p2ptrace-flows.csv"));
        assert_eq!(table.columns.len(), FLOW_COLUMNS.len());
        assert_eq!(table.rows.len(), 2);
        // The timeline needs a capture file for pcapng.
        a.on_key(Key::Char('1'));
        assert_eq!(a.on_key(Key::Char('e')), Action::None);
        assert!(a.notice.is_some());
    }

    #[test]
    fn keys_on_an_empty_model_do_not_panic() {
        let mut a = App::new("x".into(), None, true, Arc::new(Status::default()));
        let keys = [
            Key::Up,
            Key::Down,
            Key::Left,
            Key::Right,
            Key::PageUp,
            Key::PageDown,
            Key::Home,
            Key::End,
            Key::Enter,
            Key::Esc,
            Key::Char('s'),
            Key::Char('S'),
            Key::Char('r'),
            Key::Char('n'),
            Key::Char('N'),
            Key::Char('+'),
            Key::Char('-'),
            Key::Char('H'),
            Key::Char('L'),
            Key::Char('e'),
            Key::Char('0'),
        ];
        for v in 0..VIEWS.len() as u8 {
            a.on_key(Key::Char(char::from(b'1' + v)));
            for k in keys {
                let _ = a.on_key(k);
            }
        }
    }
}
