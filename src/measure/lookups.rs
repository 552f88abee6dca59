//! User lookups (`lookups.csv`, PROTOCOL.md §8.6): one row per client `search`, paired with
//! its answer by (client, transaction id): latency, rings walked, nodes asked, outcome.
//!
//! A `search` from an SN's port 33033 is the SN's own ring search, not a client lookup, and
//! is not a row. `search-result` ends a lookup `found` (`found-offline` when its entry says
//! offline); an error response (`not-found`) ends it `not-found`; a `search-referral`
//! (iterative search) counts a ring and keeps it open. A lookup unanswered at the end of the capture is `timeout`. The target is the
//! user name the dissector puts in the detail. The protocol does not mark answers from a
//! cache: a lookup is `from_cache` when the client's SN answered `found` without searching
//! rings itself (no `search` for the target from that SN's port 33033 while the lookup was
//! open) and without referrals — from its directory or its 300 s result cache (§8.6). Only a
//! capture that sees the SN's own traffic can tell; elsewhere every answer looks cached.
//!
//! Must not: keep unbounded state: at most [`MAX_PENDING`] open lookups and [`MAX_LOOKUPS`]
//! rows, [`MAX_NODES`] nodes per lookup; the rest is counted in `dropped`.

use crate::classify::Known;
use crate::report::csv_row::CsvRow;
use crate::time::Ts;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

/// Lookups awaiting an answer.
pub const MAX_PENDING: usize = 20_000;
/// Lookups kept for the CSV.
pub const MAX_LOOKUPS: usize = 200_000;
/// Distinct nodes remembered per lookup.
pub const MAX_NODES: usize = 256;
/// The well-known SN port: searches from it are SN-to-SN ring searches (§8.6).
const SN_PORT: u16 = 33033;
/// Longest target name kept, in bytes.
const MAX_TARGET: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Found,
    /// Found, but the entry says the user is offline (§5.3 status 0).
    FoundOffline,
    NotFound,
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Found,
        Outcome::FoundOffline,
        Outcome::NotFound,
        Outcome::Timeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::FoundOffline => "found-offline",
            Outcome::NotFound => "not-found",
            Outcome::Timeout => "timeout",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Lookup {
    pub client: IpAddr,
    pub target: String,
    pub start: Ts,
    /// When the answer came; `None` while open.
    pub answered: Option<Ts>,
    /// `search-referral`s received: rings the client walked itself (0: recursive search).
    pub rings: u32,
    nodes: Vec<IpAddr>,
    outcome: Option<Outcome>,
    /// SN-to-SN ring searches the client's SN sent for this target while it was open.
    pub sn_searches: u32,
}

impl Lookup {
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn outcome(&self) -> Outcome {
        self.outcome.unwrap_or(Outcome::Timeout)
    }

    /// Found by the first SN without ring searches or referrals; `None` unless found.
    pub fn from_cache(&self) -> Option<bool> {
        matches!(self.outcome(), Outcome::Found | Outcome::FoundOffline)
            .then_some(self.rings == 0 && self.sn_searches == 0)
    }

    pub fn latency_s(&self) -> Option<f64> {
        self.answered.map(|a| a.since(self.start) as f64 / 1e9)
    }
}

/// The user name in a search message's detail (after an `error=` token if any).
fn target_of(detail: &str) -> String {
    let name = match detail.split_once(' ') {
        Some((first, rest)) if first.starts_with("error=") => rest,
        _ if detail.starts_with("error=") => "",
        _ => detail,
    };
    let name = name.split(' ').next().unwrap_or("");
    let mut end = name.len().min(MAX_TARGET);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).unwrap_or("").to_string()
}

#[derive(Default)]
pub struct Lookups {
    pending: BTreeMap<(IpAddr, u64), Lookup>,
    /// Open lookups by (the SN the client asked, target), to credit that SN's ring searches.
    by_sn: BTreeMap<(IpAddr, String), (IpAddr, u64)>,
    done: Vec<Lookup>,
    pub dropped: u64,
}

pub const COLUMNS: &[&str] = &[
    "client",
    "target",
    "start",
    "latency_s",
    "rings",
    "nodes",
    "outcome",
    "sn_searches",
    "from_cache",
];

impl Lookups {
    pub fn observe(
        &mut self,
        ts: Ts,
        src: SocketAddr,
        dst: SocketAddr,
        known: Known,
        txn: Option<u64>,
        detail: &str,
    ) {
        let Some(txn) = txn else { return };
        let t @ (Known::Search | Known::SearchResult | Known::SearchReferral) = known else {
            return;
        };
        let error = detail.starts_with("error=");
        match t {
            Known::Search if !error && src.port() == SN_PORT => {
                let by = (src.ip(), target_of(detail));
                if let Some(l) = self.by_sn.get(&by).and_then(|k| self.pending.get_mut(k)) {
                    l.sn_searches = l.sn_searches.saturating_add(1);
                }
            }
            Known::Search if !error => {
                let key = (src.ip(), txn);
                if let Some(l) = self.pending.get_mut(&key) {
                    if !l.nodes.contains(&dst.ip()) && l.nodes.len() < MAX_NODES {
                        l.nodes.push(dst.ip());
                    }
                    return;
                }
                if self.pending.len() >= MAX_PENDING {
                    self.dropped += 1;
                    return;
                }
                let target = target_of(detail);
                self.by_sn.insert((dst.ip(), target.clone()), key);
                self.pending.insert(
                    key,
                    Lookup {
                        client: src.ip(),
                        target,
                        start: ts,
                        answered: None,
                        rings: 0,
                        nodes: vec![dst.ip()],
                        outcome: None,
                        sn_searches: 0,
                    },
                );
            }
            _ => {
                let key = (dst.ip(), txn);
                let Some(l) = self.pending.get_mut(&key) else {
                    return;
                };
                if t == Known::SearchReferral && !error {
                    l.rings = l.rings.saturating_add(1);
                    return;
                }
                if l.target.is_empty() {
                    l.target = target_of(detail);
                }
                l.answered = Some(ts);
                l.outcome = Some(if error || t == Known::Search {
                    Outcome::NotFound
                } else if detail.ends_with(" status=offline") {
                    Outcome::FoundOffline
                } else {
                    Outcome::Found
                });
                if let Some(l) = self.pending.remove(&key) {
                    if let Some(first) = l.nodes.first() {
                        let by = (*first, l.target.clone());
                        if self.by_sn.get(&by) == Some(&key) {
                            self.by_sn.remove(&by);
                        }
                    }
                    if self.done.len() >= MAX_LOOKUPS {
                        self.dropped += 1;
                    } else {
                        self.done.push(l);
                    }
                }
            }
        }
    }

    /// All lookups by start time; unanswered ones are `timeout`.
    pub fn rows(&self) -> Vec<Lookup> {
        let mut rows = self.done.clone();
        rows.extend(self.pending.values().cloned());
        rows.sort_by_key(|l| (l.start, l.client));
        rows
    }
}

pub fn write_csv<W: Write>(rows: &[Lookup], mut out: W) -> io::Result<()> {
    out.write_all(&CsvRow::header(COLUMNS))?;
    let mut r = CsvRow::default();
    for l in rows {
        r.clear();
        r.ip(l.client).str(&l.target).ts9(l.start);
        match l.latency_s() {
            Some(s) => r.str(&format!("{s:.3}")),
            None => r.str(""),
        };
        r.uint(u64::from(l.rings))
            .uint(l.nodes() as u64)
            .str(l.outcome().name())
            .uint(u64::from(l.sn_searches));
        match l.from_cache() {
            Some(c) => r.str(if c { "true" } else { "false" }),
            None => r.str(""),
        };
        out.write_all(r.finish())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C: &str = "10.0.0.5:4000";
    const SN: &str = "203.0.113.1:33033";

    fn feed(l: &mut Lookups, ms: i64, from: &str, to: &str, kind: &str, txn: u64, d: &str) {
        l.observe(
            Ts(ms * 1_000_000),
            from.parse().unwrap(),
            to.parse().unwrap(),
            Known::from_name(kind),
            Some(txn),
            d,
        );
    }

    #[test]
    fn found_not_found_timeout_and_sn_searches_ignored() {
        let mut l = Lookups::default();
        feed(&mut l, 0, C, SN, "search", 1, "bob");
        feed(&mut l, 10, SN, "203.0.113.2:33033", "search", 9, "bob");
        feed(&mut l, 120, SN, C, "search-result", 1, "bob");
        feed(&mut l, 200, C, SN, "search", 2, "carol");
        feed(&mut l, 300, SN, C, "search-referral", 2, "carol");
        feed(&mut l, 400, SN, C, "search", 2, "error=not-found carol");
        feed(&mut l, 500, C, SN, "search", 3, "dave");
        feed(&mut l, 600, C, SN, "search", 4, "erin");
        feed(
            &mut l,
            650,
            SN,
            C,
            "search-result",
            4,
            "erin status=offline",
        );
        let rows = l.rows();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            (
                rows[3].target.as_str(),
                rows[3].outcome(),
                rows[3].from_cache()
            ),
            ("erin", Outcome::FoundOffline, Some(true))
        );
        assert_eq!(
            (rows[0].target.as_str(), rows[0].outcome()),
            ("bob", Outcome::Found)
        );
        assert!((rows[0].latency_s().unwrap() - 0.12).abs() < 1e-9);
        assert_eq!((rows[1].outcome(), rows[1].rings), (Outcome::NotFound, 1));
        assert_eq!(
            (rows[2].outcome(), rows[2].latency_s()),
            (Outcome::Timeout, None)
        );
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "10.0.0.5,bob,0.000000000,0.120,0,1,found,1,false"
        );
    }

    #[test]
    fn from_cache_when_the_sn_answers_without_ring_searches() {
        let mut l = Lookups::default();
        feed(&mut l, 0, C, SN, "search", 1, "bob");
        feed(&mut l, 40, SN, C, "search-result", 1, "bob");
        feed(&mut l, 100, C, SN, "search", 2, "carol");
        feed(
            &mut l,
            110,
            "203.0.113.9:33033",
            "203.0.113.2:33033",
            "search",
            9,
            "carol",
        );
        feed(&mut l, 150, SN, C, "search-result", 2, "carol");
        feed(&mut l, 200, C, SN, "search", 3, "dave");
        feed(&mut l, 210, SN, "203.0.113.2:33033", "search", 9, "dave");
        feed(&mut l, 220, SN, "203.0.113.3:33033", "search", 9, "dave");
        feed(&mut l, 300, SN, C, "search-result", 3, "dave");
        feed(&mut l, 400, SN, "203.0.113.3:33033", "search", 9, "dave");
        let rows = l.rows();
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.sn_searches, r.from_cache()))
            .collect();
        assert_eq!(
            got,
            [(0, Some(true)), (0, Some(true)), (2, Some(false))],
            "another SN's search is not ours; searches after the answer are not counted"
        );
        assert!(l.by_sn.is_empty());
    }

    #[test]
    fn target_from_detail() {
        assert_eq!(target_of("bob"), "bob");
        assert_eq!(target_of("error=not-found bob"), "bob");
        assert_eq!(target_of("error=not-found"), "");
        assert_eq!(target_of(""), "");
    }

    proptest! {
        #[test]
        fn random_sequences_never_panic(seq in proptest::collection::vec((0usize..4, 0u64..5, any::<bool>(), ".{0,300}"), 0..200)) {
            let kinds = ["search", "search-result", "search-referral", "other"];
            let mut l = Lookups::default();
            for (i, (k, txn, dir, d)) in seq.into_iter().enumerate() {
                let (a, b) = if dir { (C, SN) } else { (SN, C) };
                feed(&mut l, i as i64, a, b, kinds[k], txn, &d);
            }
            let rows = l.rows();
            prop_assert!(rows.iter().all(|r| r.target.len() <= MAX_TARGET && r.nodes() <= MAX_NODES));
            write_csv(&rows, Vec::new()).unwrap();
        }
    }
}
