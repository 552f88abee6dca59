//! `messages.csv`: one row per decoded application message (Skylark, STUN, DNS, HTTP, TLS
//! hello), in the order decoded — capture order, except that a TCP message appears once its
//! last byte arrived in order. Schema documented in `docs/csv.md`.

use super::csv_row::{CsvRow, Encoded};
use super::file_sink::{CHUNK, FileSink};
use crate::classify::Classified;
use crate::flow::{Dir, UidText};
use crate::time::Ts;
use dissectors::registry::{Message, Status, TrafficClass};
use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

pub const MESSAGES_COLUMNS: &[&str] = &[
    "ts", "uid", "dir", "protocol", "msg_type", "txn_id", "call_id", "len", "status", "class",
    "detail", "home",
];

/// Rows are gathered in the row encoder's own buffer and handed to the file's writer thread
/// when it holds this much: one row per message, so they are not copied a second time.
const WRITE_AT: usize = CHUNK;

/// Which messages `messages.csv` lists, by class (`--messages`); every one by default. The
/// other reports and the summary count every message either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageSelection {
    /// Bit [`TrafficClass::index`] of each class listed, bit [`UNCLASSIFIED`] for messages
    /// without a class.
    bits: u8,
}

/// The selection bit of messages without a class.
const UNCLASSIFIED: usize = TrafficClass::ALL.len();
const EVERY: u8 = (1 << (UNCLASSIFIED + 1)) - 1;

fn class_bit(class: Option<TrafficClass>) -> u8 {
    1 << class.map_or(UNCLASSIFIED, TrafficClass::index)
}

impl Default for MessageSelection {
    fn default() -> Self {
        MessageSelection::ALL
    }
}

impl MessageSelection {
    pub const ALL: MessageSelection = MessageSelection { bits: EVERY };

    /// Parses `all`, `none`, the classes to list (`login,lookup`) or, each with `-`, those
    /// to leave out (`-keepalive,-media`); classes named as in the `class` column,
    /// `unclassified` for messages without one.
    pub fn parse(spec: &str) -> Result<MessageSelection, String> {
        match spec {
            "all" => return Ok(MessageSelection::ALL),
            "none" => return Ok(MessageSelection { bits: 0 }),
            _ => {}
        }
        let (mut keep, mut leave) = (0u8, 0u8);
        for item in spec.split(',') {
            let (name, set) = match item.strip_prefix('-') {
                Some(name) => (name, &mut leave),
                None => (item, &mut keep),
            };
            *set |= match name {
                "unclassified" => class_bit(None),
                "all" | "none" => return Err(format!("'{name}' stands alone, not in a list")),
                _ => class_bit(Some(TrafficClass::from_name(name).ok_or_else(|| {
                    format!(
                        "unknown class '{name}': expected all, none, or classes among login, \
                         lookup, signalling, keepalive, media and unclassified"
                    )
                })?)),
            };
        }
        match (keep, leave) {
            (keep, 0) => Ok(MessageSelection { bits: keep }),
            (0, leave) => Ok(MessageSelection {
                bits: EVERY & !leave,
            }),
            _ => Err(
                "name either the classes to list or, each with '-', those to leave out, \
                      not both"
                    .to_string(),
            ),
        }
    }

    /// Whether messages of `class` are listed.
    pub fn lists(self, class: Option<TrafficClass>) -> bool {
        self.bits & class_bit(class) != 0
    }
}

/// The class a row shows: the classifier's, falling back to the dissector's.
fn row_class(msg: &Message, c: &Classified) -> Option<TrafficClass> {
    c.class.or(msg.class)
}

pub struct MessagesCsv {
    out: FileSink,
    /// The messages listed.
    selection: MessageSelection,
    /// Finished rows not written yet, after `room` bytes that are not rows (the sink's:
    /// [`FileSink::hand_over`]).
    row: CsvRow,
    room: usize,
    rows: u64,
    /// `status,class,detail,home` of every row without a detail, by [`tail_index`]: most
    /// rows (keepalives, media) have none, and these four columns then take 36 values.
    tails: Vec<Encoded>,
}

/// Place of a detail-less row's last four columns in [`MessagesCsv::tails`].
fn tail_index(status: Status, class: Option<TrafficClass>, home: bool) -> usize {
    let class = class.map_or(0, |c| c.index() + 1);
    (status.index() * (TrafficClass::ALL.len() + 1) + class) * 2 + usize::from(home)
}

/// The last four columns, as every row writes them.
fn push_tail(
    row: &mut CsvRow,
    status: Status,
    class: Option<TrafficClass>,
    detail: &str,
    home: bool,
) {
    row.str(status.as_str())
        .str(class.map(TrafficClass::as_str).unwrap_or_default())
        .str(detail)
        .str(if home { "true" } else { "false" });
}

impl MessagesCsv {
    pub fn create(path: &Path) -> io::Result<MessagesCsv> {
        let mut out = FileSink::create(path)?;
        out.write_all(&CsvRow::header(MESSAGES_COLUMNS))?;
        Ok(MessagesCsv {
            out,
            selection: MessageSelection::ALL,
            row: CsvRow::default(),
            room: 0,
            rows: 0,
            tails: tails(),
        })
    }

    /// Lists only the messages `selection` names from now on.
    pub fn select(&mut self, selection: MessageSelection) {
        self.selection = selection;
    }

    /// Whether the file lists only some messages.
    pub fn is_selective(&self) -> bool {
        self.selection != MessageSelection::ALL
    }

    /// Whether `msg`, classified `c`, gets a row (checked before its row is assembled).
    pub fn lists(&self, msg: &Message, c: &Classified) -> bool {
        self.selection.lists(row_class(msg, c))
    }

    fn write_rows(&mut self) -> io::Result<()> {
        self.room = self.out.hand_over(self.row.rows_buf(), self.room)?;
        Ok(())
    }

    /// Writes one row, whether or not [`Self::lists`] it; `c` is the classifier's verdict
    /// (its class fills `class`, falling back to the dissector's).
    pub fn write(
        &mut self,
        uid: &UidText,
        dir: Dir,
        ts: Ts,
        msg: &Message,
        c: &Classified,
        digits: u8,
    ) -> io::Result<()> {
        let row = &mut self.row;
        let class = row_class(msg, c);
        row.ts(ts, digits)
            .uid(uid)
            .name(dir.as_str())
            .name(msg.protocol);
        // A borrowed type is a name from the dissector's table; one built from the wire
        // (e.g. an HTTP method) is checked.
        match &msg.msg_type {
            Cow::Borrowed(name) => row.name(name),
            Cow::Owned(text) => row.str(text),
        }
        .opt_uint(msg.txn_id)
        .opt_uint(msg.call_id)
        .uint(u64::from(msg.len));
        let detail = msg.detail.as_deref().unwrap_or_default();
        match self.tails.get(tail_index(msg.status, class, c.home)) {
            Some(tail) if detail.is_empty() => row.encoded(tail),
            _ => {
                push_tail(row, msg.status, class, detail, c.home);
                row
            }
        }
        .end_row();
        self.rows += 1;
        if self.row.rows().len() >= WRITE_AT {
            self.write_rows()?;
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the remaining rows and waits until all are in the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.write_rows()?;
        self.out.finish()
    }
}

/// Every detail-less tail, in [`tail_index`] order.
fn tails() -> Vec<Encoded> {
    let classes = std::iter::once(None).chain(TrafficClass::ALL.map(Some));
    let mut tails = Vec::new();
    for status in Status::ALL {
        for class in classes.clone() {
            for home in [false, true] {
                debug_assert_eq!(tail_index(status, class, home), tails.len());
                tails.push(Encoded::new(|r| push_tail(r, status, class, "", home)));
            }
        }
    }
    tails
}

impl Drop for MessagesCsv {
    /// Rows gathered are written even without `finish` (like a `BufWriter`'s drop; an
    /// error here has no one to go to); the sink's own drop then waits for them.
    fn drop(&mut self) {
        let _ = self.write_rows();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Known;
    use crate::flow::Uid;
    use dissectors::skylark::MsgType;

    fn write_rows(path: &Path, n: u64, finish: bool) {
        let mut csv = MessagesCsv::create(path).unwrap();
        let c = Classified {
            kind: Cow::Borrowed("sn-refresh"),
            known: Known::SnRefresh,
            class: None,
            home: false,
        };
        for i in 0..n {
            let msg = Message {
                protocol: "skylark",
                msg_type: Cow::Borrowed("sn-refresh"),
                type_code: MsgType::SnRefresh.type_code(),
                txn_id: Some(i),
                call_id: None,
                len: 40,
                status: Status::Complete,
                class: None,
                detail: Some(format!("row {i}, quoted")),
                call: None,
            };
            csv.write(&Uid(i).encode(), Dir::Orig, Ts(i as i64), &msg, &c, 6)
                .unwrap();
        }
        assert_eq!(csv.rows(), n);
        if finish {
            csv.finish().unwrap();
        }
    }

    #[test]
    fn names_written_without_a_quote_check_never_needed_one() {
        let same = |name: &'static str| {
            let (mut checked, mut plain) = (CsvRow::default(), CsvRow::default());
            checked.str(name);
            plain.name(name);
            assert_eq!(checked.finish(), plain.finish(), "{name:?}");
        };
        for raw in 0..=u16::MAX {
            same(dissectors::skylark::messages::MsgType::from(raw).name());
        }
        for dir in [Dir::Orig, Dir::Resp] {
            same(dir.as_str());
        }
        for dissector in dissectors::registry::ALL {
            same(dissector.name);
        }
    }

    #[test]
    fn last_four_columns_are_right_for_every_status_class_home_and_detail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let mut csv = MessagesCsv::create(&path).unwrap();
        let mut want = Vec::new();
        let classes = std::iter::once(None).chain(TrafficClass::ALL.map(Some));
        for status in Status::ALL {
            for class in classes.clone() {
                for home in [false, true] {
                    for detail in [None, Some(""), Some("a=1"), Some("b, \"q\"")] {
                        let msg = Message {
                            protocol: "skylark",
                            msg_type: Cow::Borrowed("nat-ping"),
                            type_code: MsgType::NatPing.type_code(),
                            txn_id: None,
                            call_id: None,
                            len: 40,
                            status,
                            class: None,
                            detail: detail.map(str::to_string),
                            call: None,
                        };
                        let c = Classified {
                            kind: Cow::Borrowed("nat-ping"),
                            known: Known::Other, // nat-ping
                            class,
                            home,
                        };
                        csv.write(&Uid(1).encode(), Dir::Resp, Ts(0), &msg, &c, 0)
                            .unwrap();
                        let detail = match detail.unwrap_or_default() {
                            d if d.contains(',') => format!("\"{}\"", d.replace('"', "\"\"")),
                            d => d.to_string(),
                        };
                        want.push(format!(
                            "0,C00000000001,resp,skylark,nat-ping,,,40,{},{},{detail},{home}",
                            status.as_str(),
                            class.map(TrafficClass::as_str).unwrap_or_default(),
                        ));
                    }
                }
            }
        }
        csv.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(got, want);
    }

    /// The classes `spec` lists, as names (`unclassified` for none).
    fn listed(spec: &str) -> Result<Vec<&'static str>, String> {
        let sel = MessageSelection::parse(spec)?;
        let all = TrafficClass::ALL.map(Some).into_iter().chain([None]);
        Ok(all
            .filter(|c| sel.lists(*c))
            .map(|c| c.map_or("unclassified", TrafficClass::as_str))
            .collect())
    }

    #[test]
    fn selections_list_named_classes_or_all_but_the_excluded() {
        let every = vec![
            "login",
            "lookup",
            "signalling",
            "keepalive",
            "media",
            "unclassified",
        ];
        assert_eq!(listed("all").unwrap(), every);
        assert_eq!(MessageSelection::default(), MessageSelection::ALL);
        assert_eq!(listed("none").unwrap(), Vec::<&str>::new());
        assert_eq!(listed("media,login").unwrap(), ["login", "media"]);
        assert_eq!(listed("unclassified").unwrap(), ["unclassified"]);
        assert_eq!(
            listed("-keepalive,-unclassified").unwrap(),
            ["login", "lookup", "signalling", "media"]
        );
        assert_eq!(listed("-keepalive,-keepalive").unwrap().len(), 5);
        for bad in [
            "",
            "login,",
            "Login",
            "-",
            "keepalives",
            "all,login",
            "login,-media",
        ] {
            let e = MessageSelection::parse(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
        assert!(
            MessageSelection::parse("login,-media")
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            MessageSelection::parse("-none")
                .unwrap_err()
                .contains("stands alone")
        );
    }

    #[test]
    fn a_row_is_listed_by_the_classifiers_class_or_else_the_dissectors() {
        let mut msg = Message {
            protocol: "dns",
            msg_type: Cow::Borrowed("query"),
            type_code: None,
            txn_id: None,
            call_id: None,
            len: 40,
            status: Status::Complete,
            class: Some(TrafficClass::Keepalive),
            detail: None,
            call: None,
        };
        let mut c = Classified {
            kind: Cow::Borrowed("query"),
            known: Known::Other,
            class: Some(TrafficClass::Login),
            home: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut csv = MessagesCsv::create(&dir.path().join("m.csv")).unwrap();
        assert!(csv.lists(&msg, &c) && !csv.is_selective());
        csv.select(MessageSelection::parse("-login").unwrap());
        assert!(csv.is_selective());
        assert!(!csv.lists(&msg, &c));
        c.class = None;
        assert!(csv.lists(&msg, &c), "the dissector's keepalive");
        msg.class = None;
        assert!(csv.lists(&msg, &c), "unclassified");
        csv.select(MessageSelection::parse("-unclassified").unwrap());
        assert!(!csv.lists(&msg, &c));
    }

    #[test]
    fn every_row_is_written_in_order_past_the_gathering_buffer_with_or_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3 * WRITE_AT as u64 / 60; // rows of ~70 bytes: several writes
        for finish in [true, false] {
            let path = dir.path().join(format!("m-{finish}.csv"));
            write_rows(&path, n, finish);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.len() > 2 * WRITE_AT);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len() as u64, n + 1);
            assert_eq!(lines[0], MESSAGES_COLUMNS.join(","));
            for (i, line) in lines[1..].iter().enumerate() {
                assert!(line.contains(&format!(",{i},,40,")), "{line}");
                assert!(line.contains(&format!("\"row {i}, quoted\"")), "{line}");
            }
        }
    }
}
