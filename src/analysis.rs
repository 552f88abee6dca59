//! The analysis every front end shares (`analyze`, `live`, `tui`): classification,
//! measurements and the CSV reports, fed by the pipeline as a [`FlowConsumer`].
//!
//! Guarantees: reports are written as flows end (memory bounded by the consumers' caps);
//! [`Analysis::finish`] closes every report whatever happened before, so partial results are
//! kept. Must not: print (front ends decide what to say), or read the clock.

use crate::classify::{Classifier, FlowHomes, HomeSpec};
use crate::flow::{FlowRecord, UidCache};
use crate::measure::hosts::FlowHosts;
use crate::measure::{Measurements, Seen};
use crate::pipeline::{FlowConsumer, MsgCtx, RunStats};
use crate::report::calls_csv::CallsReport;
use crate::report::flows_csv::{ClassCounts, EvidenceKinds, FlowsCsv};
use crate::report::messages_csv::{MessageSelection, MessagesCsv};
use crate::report::sessions::{self, CallDigest};
use crate::report::summary::{self, FlowTotals};
use dissectors::registry::Message;
use std::path::{Path, PathBuf};

/// Classification, measurements and reports for one run.
pub struct Analysis {
    dir: Option<PathBuf>,
    dissect: bool,
    totals: FlowTotals,
    calls: Option<CallsReport>,
    csv: Option<FlowsCsv>,
    messages: Option<MessagesCsv>,
    classifier: Classifier,
    measure: Measurements,
    csv_error: Option<std::io::Error>,
    /// Per-flow state by [`MsgCtx::live_index`] (as long as the flow table is at its peak;
    /// reset as each flow's record arrives).
    per_flow: Vec<PerFlow>,
    /// Names of the kinds in the per-flow counts' evidence.
    kinds: EvidenceKinds,
}

/// What [`Analysis`] keeps for each live flow. Aligned to a cache line: unaligned, its
/// 184 bytes spanned four lines for three flows in four, not three, and each message
/// loads them all. In declared order, so that `hosts`, which the hand-off reads ahead of
/// the others ([`FlowConsumer::prefetch_referenced`]), is in the first line prefetched.
#[derive(Default)]
#[repr(C, align(64))]
struct PerFlow {
    hosts: FlowHosts,
    homes: FlowHomes,
    uid: UidCache,
    counts: ClassCounts,
}

// One per live flow (637 k at the `large` capture's peak): growing it costs every flow.
const _: () = assert!(size_of::<PerFlow>() <= 192, "PerFlow grew");

/// What [`Analysis::finish`] produced.
pub struct Finished {
    /// The text summary (flows, classes, phone-home headlines).
    pub summary: String,
    /// `(rows, what, file)` for each report written, in a stable order; `what` is a plural
    /// noun ending in `s` ("calls", "keepalive pairs").
    pub written: Vec<(u64, &'static str, &'static str)>,
    /// One line saying why writing the reports failed, if it did.
    pub error: Option<String>,
}

/// Creates `dir` and a report in it, or one line saying why not.
fn create_report<W>(
    dir: &Path,
    name: &str,
    create: impl FnOnce(&Path) -> std::io::Result<W>,
) -> Result<W, String> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| create(&path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Analysis {
    /// An analysis writing its CSV reports into `csv` (none: summary only). Without
    /// `dissect` only flows.csv is written.
    pub fn create(
        csv: Option<&Path>,
        dissect: bool,
        home: Vec<HomeSpec>,
    ) -> Result<Analysis, String> {
        let mut a = Analysis {
            dir: csv.map(Path::to_path_buf),
            dissect,
            totals: FlowTotals::default(),
            calls: None,
            csv: None,
            messages: None,
            classifier: Classifier::new(home),
            measure: Measurements::default(),
            csv_error: None,
            per_flow: Default::default(),
            kinds: EvidenceKinds::default(),
        };
        if let Some(dir) = csv {
            a.csv = Some(create_report(dir, "flows.csv", FlowsCsv::create)?);
            if dissect {
                a.messages = Some(create_report(dir, "messages.csv", MessagesCsv::create)?);
            }
        }
        // Calls feed the summary too, so they are tracked even without calls.csv.
        if dissect {
            a.calls = Some(match csv {
                Some(dir) => create_report(dir, "calls.csv", CallsReport::create)?,
                None => CallsReport::summary_only(),
            });
        }
        Ok(a)
    }

    /// Lists only the messages `selection` names in messages.csv (`--messages`); the other
    /// reports and the summary still count every message.
    pub fn select_messages(&mut self, selection: MessageSelection) {
        if let Some(m) = &mut self.messages {
            m.select(selection);
        }
    }

    /// Totals of the flows ended so far (a live run's running summary).
    pub fn totals(&self) -> &FlowTotals {
        &self.totals
    }

    /// Closes every report and renders the summary for `stats`.
    pub fn finish(mut self, stats: &RunStats) -> Finished {
        let mut written = Vec::new();
        let mut failed = self.csv_error.take();
        if let Some(csv) = self.csv.take() {
            written.push((csv.rows(), "flows", "flows.csv"));
            if let Err(e) = csv.finish() {
                failed.get_or_insert(e);
            }
        }
        if let Some(m) = self.messages.take() {
            let what = if m.is_selective() {
                "selected messages"
            } else {
                "messages"
            };
            written.push((m.rows(), what, "messages.csv"));
            if let Err(e) = m.finish() {
                failed.get_or_insert(e);
            }
        }
        let mut calls = CallDigest::default();
        if let Some(c) = self.calls.take() {
            let (digest, rows) = c.finish();
            calls = digest;
            match rows {
                Some(Ok(rows)) => written.push((rows, "calls", "calls.csv")),
                Some(Err(e)) => drop(failed.get_or_insert(e)),
                None => {}
            }
        }
        let logins = self.measure.logins.rows();
        let lookups = self.measure.lookups.rows();
        let span = match (stats.first_ts, stats.last_ts) {
            (Some(a), Some(b)) => b.since(a),
            _ => 0,
        };
        if let (Some(dir), true) = (&self.dir, self.dissect) {
            match self
                .measure
                .write_csvs(dir, span, &logins, &lookups, &self.classifier)
            {
                Ok(files) => written.extend(files),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        let error = failed.map(|e| {
            let dir = self.dir.as_deref().unwrap_or(Path::new("."));
            format!("writing reports in {}: {e}", dir.display())
        });
        let mut text = summary::render(stats, &self.totals);
        text.push_str(&sessions::render(
            &logins,
            &lookups,
            &self.measure.keepalives,
            &calls,
        ));
        if let Some(line) = self.measure.hosts.summary_line() {
            text.push_str(&line);
        }
        let headlines = self.measure.headlines(span, 5, &self.classifier);
        if !headlines.is_empty() {
            text.push_str("phone home\n");
            for h in headlines {
                text.push_str(&format!("  {h}\n"));
            }
        }
        Finished {
            summary: text,
            written,
            error,
        }
    }
}

impl FlowConsumer for Analysis {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.totals.add(record);
        let i = record.live_index as usize;
        // Read in place, then reset: taking the state out would copy it twice per flow.
        let none;
        let counts = match self.per_flow.get(i) {
            Some(f) => &f.counts,
            None => {
                none = ClassCounts::default();
                &none
            }
        };
        self.totals.add_classes(counts);
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.push_classified(record, digits, counts, &self.kinds) {
                self.csv_error.get_or_insert(e);
            }
        }
        if let Some(f) = self.per_flow.get_mut(i) {
            *f = PerFlow::default();
        }
    }

    fn watermark(&mut self, watermark: (i64, u64)) {
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.release_below(watermark) {
                self.csv_error.get_or_insert(e);
            }
        }
    }

    fn prefetch(&self, live_index: u32) {
        crate::prefetch::prefetch(&self.per_flow, live_index as usize);
    }

    fn prefetch_referenced(&self, live_index: u32) {
        if let Some(f) = self.per_flow.get(live_index as usize) {
            self.measure.hosts.prefetch(&f.hosts);
        }
    }

    fn live_capacity(&mut self, max_live: usize) {
        crate::prefetch::reserve_ceiling(&mut self.per_flow, max_live);
    }

    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        let PerFlow {
            counts,
            uid,
            hosts,
            homes,
        } = per_flow(&mut self.per_flow, ctx.live_index);
        let c = self
            .classifier
            .classify_in_flow(ctx, msg, counts.skylark_msgs > 0, homes);
        counts.add(c.class, &c.kind, msg.len, &mut self.kinds);
        if msg.protocol == "skylark" {
            counts.add_skylark(ctx.dir, msg.txn_id);
        }
        let from_home = self.classifier.homes(ctx, homes).0;
        self.measure
            .observe(&Seen::new(ctx, msg, &c, from_home), hosts);
        if let Some(w) = self.messages.as_mut().filter(|w| w.lists(msg, &c)) {
            if let Err(e) = w.write(uid.text(ctx.uid), ctx.dir, ctx.ts, msg, &c, ctx.digits) {
                self.csv_error.get_or_insert(e);
            }
        }
        if let Some(c) = &mut self.calls {
            c.message(ctx, msg);
        }
    }

    fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
        let f = per_flow(&mut self.per_flow, ctx.live_index);
        self.measure
            .packet(&self.classifier, ctx, payload, (&mut f.homes, &mut f.hosts));
    }
}

/// The state of the flow at `live_index`, grown on demand (bounded by the flow table's cap,
/// which bounds live indexes).
#[inline]
fn per_flow(v: &mut Vec<PerFlow>, live_index: u32) -> &mut PerFlow {
    let i = live_index as usize;
    if i >= v.len() {
        grow_per_flow(v, i + 1);
    }
    &mut v[i]
}

/// Rare (a new highest live index), so kept out of the per-message path.
#[cold]
#[inline(never)]
fn grow_per_flow(v: &mut Vec<PerFlow>, len: usize) {
    crate::prefetch::grow_huge_with(v, len, PerFlow::default);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_flow_state_for_the_flow_tables_cap_is_reserved_up_front() {
        let mut a = Analysis::create(None, true, Vec::new()).unwrap();
        a.live_capacity(1_000_000);
        assert!(a.per_flow.capacity() >= 1_000_000);
    }
}
