//! Keepalives per client–super-node pair (`keepalives.csv`): how many, and the intervals
//! between consecutive ones the client sent (PROTOCOL.md §8.5: every 60 s by default).
//!
//! Must not: decide which messages are keepalives or who is the super node (the classifier
//! does); it takes observations already attributed.

use super::intervals::{Intervals, Scratch, secs_field};
use crate::report::csv_row::CsvRow;
use crate::time::Ts;
use rustc_hash::FxHashMap;
use std::io::{self, Write};
use std::net::IpAddr;

/// Client–SN pairs tracked; further pairs are counted and dropped (~12 KiB each at most).
pub const MAX_PAIRS: usize = 20_000;

#[derive(Default)]
struct Pair {
    count: u64,
    last: Option<Ts>,
    intervals: Intervals,
}

/// Accumulates keepalives; output sorted by (client, super node).
#[derive(Default)]
pub struct Keepalives {
    pairs: FxHashMap<(IpAddr, IpAddr), Pair>,
    pub dropped: u64,
}

pub const COLUMNS: &[&str] = &[
    "client",
    "supernode",
    "count",
    "interval_min",
    "interval_p50",
    "interval_p90",
    "interval_max",
];

impl Keepalives {
    /// A keepalive the client sent to the super node at `ts`.
    pub fn observe(&mut self, ts: Ts, client: IpAddr, supernode: IpAddr) {
        let key = (client, supernode);
        if !self.pairs.contains_key(&key) && self.pairs.len() >= MAX_PAIRS {
            self.dropped += 1;
            return;
        }
        let p = self.pairs.entry(key).or_default();
        if let Some(last) = p.last {
            p.intervals.record_ns(ts.since(last));
        }
        p.count += 1;
        p.last = Some(ts);
    }

    /// Client–SN pairs seen.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Pairs, keepalives, and each pair's median interval (pairs with at least one
    /// interval) as one distribution: the summary's keepalive line.
    pub fn digest(&self, scratch: &mut Scratch) -> (usize, u64, Intervals) {
        let mut medians = Intervals::default();
        let mut count = 0;
        for p in self.pairs.values() {
            count += p.count;
            if let Some(s) = p.intervals.dist(scratch).quantile_s(0.5) {
                medians.record_ns((s * 1e9) as i64);
            }
        }
        (self.pairs.len(), count, medians)
    }

    pub fn write_csv<W: Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(&CsvRow::header(COLUMNS))?;
        let mut r = CsvRow::default();
        let mut scratch = Scratch::default();
        let mut all: Vec<(&(IpAddr, IpAddr), &Pair)> = self.pairs.iter().collect();
        all.sort_unstable_by_key(|(k, _)| **k);
        for (&(client, sn), p) in all {
            let i = p.intervals.dist(&mut scratch);
            r.clear();
            r.ip(client)
                .ip(sn)
                .uint(p.count)
                .str(&secs_field(i.min_s()))
                .str(&secs_field(i.quantile_s(0.5)))
                .str(&secs_field(i.quantile_s(0.9)))
                .str(&secs_field(i.max_s()));
            out.write_all(r.finish())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_between_a_clients_keepalives() {
        let mut k = Keepalives::default();
        let (c, sn) = ("10.0.0.5".parse().unwrap(), "203.0.113.1".parse().unwrap());
        for i in 0..10 {
            k.observe(Ts(i * 60_000_000_000), c, sn);
        }
        k.observe(Ts(0), "10.0.0.6".parse().unwrap(), sn);
        let mut out = Vec::new();
        k.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert!(lines[1].starts_with("10.0.0.5,203.0.113.1,10,"), "{text}");
        let fields: Vec<f64> = lines[1]
            .split(',')
            .skip(3)
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(fields.iter().all(|v| (v - 60.0).abs() <= 0.6), "{fields:?}");
        assert_eq!(lines[2], "10.0.0.6,203.0.113.1,1,,,,");
    }

    #[test]
    fn the_digest_counts_every_pair_and_takes_each_pairs_median() {
        let mut k = Keepalives::default();
        let sn: IpAddr = "203.0.113.1".parse().unwrap();
        let s = 1_000_000_000;
        // Three pairs: medians 60 s and 30 s (one odd interval each), and a lone keepalive.
        for (client, period) in [("10.0.0.1", 60), ("10.0.0.2", 30)] {
            let c = client.parse().unwrap();
            let mut t = 0;
            for gap in [period, period, 5, period] {
                k.observe(Ts(t), c, sn);
                t += gap * s;
            }
            k.observe(Ts(t), c, sn);
        }
        k.observe(Ts(0), "10.0.0.3".parse().unwrap(), sn);
        let mut scratch = Scratch::default();
        let (pairs, count, medians) = k.digest(&mut scratch);
        assert_eq!((pairs, count, medians.count()), (3, 11, 2));
        let d = medians.dist(&mut scratch);
        let (lo, hi) = (d.min_s().unwrap(), d.max_s().unwrap());
        assert!(
            (lo - 30.0).abs() <= 0.6 && (hi - 60.0).abs() <= 1.2,
            "{lo} {hi}"
        );
    }
}
