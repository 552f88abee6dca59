//! Top-N flows by a sort key, in bounded memory (a heap of N records), for `p2ptrace flows`.

use crate::flow::FlowRecord;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// Total bytes on the wire, largest first.
    Bytes,
    /// Total packets, largest first.
    Pkts,
    /// Start time, earliest first.
    Start,
}

/// Rank of a record: larger ranks first in the final table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank(u64, Reverse<i64>, Reverse<u64>);

fn rank(by: SortBy, r: &FlowRecord) -> Rank {
    let tie = (Reverse(r.ts_start.0), Reverse(r.seq));
    match by {
        SortBy::Bytes => Rank(r.total_bytes(), tie.0, tie.1),
        SortBy::Pkts => Rank(r.total_pkts(), tie.0, tie.1),
        SortBy::Start => Rank(0, tie.0, tie.1),
    }
}

struct Entry(Rank, FlowRecord);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the heap's top is the weakest entry, the one to drop.
        other.0.cmp(&self.0)
    }
}

/// Keeps the `limit` best flows seen.
pub struct TopFlows {
    by: SortBy,
    limit: usize,
    heap: BinaryHeap<Entry>,
    seen: u64,
}

impl TopFlows {
    pub fn new(by: SortBy, limit: usize) -> TopFlows {
        TopFlows {
            by,
            limit,
            heap: BinaryHeap::with_capacity(limit.min(1 << 16) + 1),
            seen: 0,
        }
    }

    pub fn offer(&mut self, rec: &FlowRecord) {
        self.seen += 1;
        if self.limit == 0 {
            return;
        }
        let r = rank(self.by, rec);
        if self.heap.len() == self.limit {
            match self.heap.peek() {
                Some(weakest) if weakest.0 >= r => return,
                _ => {}
            }
            self.heap.pop();
        }
        self.heap.push(Entry(r, rec.clone()));
    }

    /// Flows offered in all (not only kept).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept flows, best first.
    pub fn into_sorted(self) -> Vec<FlowRecord> {
        // `into_sorted_vec` is ascending by `Ord`, i.e. best first given the reversal.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| e.1)
            .collect()
    }
}
