//! The `(start ns, seq)` keys of the live flows, for the report watermark: the smallest.
//!
//! Flows are created in capture order, so their keys nearly always arrive in increasing
//! order: they go to the back of a queue, and the queue's front is the smallest. A flow that
//! ends is not searched for: its entry stays until it reaches the front (dead entries there
//! are dropped at once, so the front is always live), or until dead entries outnumber the
//! live ones and the queue is swept (memory stays under about twice the live flows). Only a
//! key below the queue's last (the capture clock went back) goes to an ordered set instead;
//! a key is in one place or the other, so an ended flow's key is looked for in that set
//! only while it holds any. (A balanced tree for every key cost ~800 instructions per flow
//! on a million-flow capture.)
//!
//! Liveness is the caller's: `is_live(slot, seq)` says whether the flow created with `seq`
//! still holds slot `slot` (a slot is reused by later flows with other numbers).

use std::collections::{BTreeSet, VecDeque};

pub type StartKey = (i64, u64);

#[derive(Debug, Default)]
pub struct LiveStarts {
    /// Keys in increasing order with their flows' slots; the front is live.
    queue: VecDeque<(StartKey, u32)>,
    /// Entries in `queue` whose flow has ended.
    dead: usize,
    /// Keys that arrived below the queue's last one.
    late: BTreeSet<StartKey>,
}

/// Dead entries tolerated in the queue beyond half of it before a sweep.
const SWEEP_SLACK: usize = 64;

impl LiveStarts {
    /// Adds a new live flow's key (keys are unique: the creation number is in them).
    pub fn insert(&mut self, key: StartKey, slot: u32) {
        if self.queue.back().is_some_and(|(last, _)| key < *last) {
            self.late.insert(key);
        } else {
            self.queue.push_back((key, slot));
        }
    }

    /// Forgets an ended flow's key. Call after the flow has left its slot, so that
    /// `is_live` is already false for it.
    pub fn remove(&mut self, key: StartKey, is_live: impl Fn(u32, u64) -> bool) {
        if !self.late.is_empty() && self.late.remove(&key) {
            return;
        }
        self.dead += 1;
        while let Some(&((_, seq), slot)) = self.queue.front() {
            if is_live(slot, seq) {
                break;
            }
            self.queue.pop_front();
            self.dead -= 1;
        }
        if self.dead > self.queue.len() / 2 + SWEEP_SLACK {
            self.queue.retain(|&((_, seq), slot)| is_live(slot, seq));
            self.dead = 0;
        }
    }

    /// The smallest live key.
    pub fn first(&self) -> Option<StartKey> {
        let queued = self.queue.front().map(|(key, _)| *key);
        match (queued, self.late.first().copied()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets every key (all flows ended at once).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.late.clear();
        self.dead = 0;
    }

    /// Entries held, dead ones included.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.queue.len() + self.late.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A model run: flows with random start times (sometimes going back) created and
    /// ended in random order, slots reused; `first` always equals the smallest live key and
    /// memory stays within about twice the live flows.
    fn check(ops: Vec<(bool, i64, usize)>) -> Result<(), TestCaseError> {
        let mut starts = LiveStarts::default();
        // slot -> (seq, key) of the flow holding it.
        let mut slots: Vec<Option<(u64, StartKey)>> = Vec::new();
        let mut live: HashMap<u64, u32> = HashMap::new();
        let mut seq = 0u64;
        for (create, ts, pick) in ops {
            if create || live.is_empty() {
                let slot = match slots.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        slots.push(None);
                        slots.len() - 1
                    }
                };
                let key = (ts, seq);
                starts.insert(key, slot as u32);
                slots[slot] = Some((seq, key));
                live.insert(seq, slot as u32);
                seq += 1;
            } else {
                let mut seqs: Vec<u64> = live.keys().copied().collect();
                seqs.sort_unstable();
                let ended = seqs[pick % seqs.len()];
                let slot = live.remove(&ended).unwrap();
                let (_, key) = slots[slot as usize].take().unwrap();
                starts.remove(key, |s, q| {
                    slots
                        .get(s as usize)
                        .and_then(|x| x.as_ref())
                        .is_some_and(|(held, _)| *held == q)
                });
            }
            let want = slots.iter().flatten().map(|(_, key)| *key).min();
            prop_assert_eq!(starts.first(), want);
            prop_assert!(starts.held() <= 2 * live.len() + 2 * SWEEP_SLACK);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn first_is_the_smallest_live_key(
            ops in proptest::collection::vec((any::<bool>(), 0i64..50, any::<usize>()), 0..300)
        ) {
            // Times drift upward with occasional steps back, like a merged capture.
            let mut t = 0i64;
            let ops = ops
                .into_iter()
                .map(|(create, step, pick)| {
                    t += step - 5;
                    (create, t, pick)
                })
                .collect();
            check(ops)?;
        }

        #[test]
        fn long_lived_flow_keeps_memory_bounded(n in 200usize..2000) {
            // One flow that never ends, then many short ones: each ends before the next.
            let mut ops = vec![(true, 0, 0)];
            for i in 0..n {
                ops.push((true, i as i64 + 1, 0));
                ops.push((false, 0, 1));
            }
            check(ops)?;
        }
    }

    #[test]
    fn clear_forgets_everything() {
        let mut starts = LiveStarts::default();
        starts.insert((5, 0), 0);
        starts.insert((3, 1), 1);
        assert_eq!(starts.first(), Some((3, 1)));
        starts.clear();
        assert_eq!(starts.first(), None);
        assert_eq!(starts.held(), 0);
    }
}
