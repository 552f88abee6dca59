//! `p2ptrace analyze`: the summary, flows.csv and messages.csv.

use super::*;
use crate::classify::Classifier;
use crate::measure::{Measurements, Seen};
use crate::report::flows_csv::ClassCounts;

/// Live flows with per-class message counters (one entry per flow that carried a message,
/// removed when its record arrives). Messages of further flows are not counted per flow
/// (their rows show zero counts) and are tallied in `class_overflow`.
pub const MAX_FLOW_CLASS_COUNTERS: usize = 1 << 20;

struct AnalyzeConsumer {
    totals: FlowTotals,
    calls: Option<crate::report::calls_csv::CallsReport>,
    csv: Option<FlowsCsv>,
    messages: Option<MessagesCsv>,
    classifier: Classifier,
    measure: Measurements,
    csv_error: Option<std::io::Error>,
    /// Per-flow class counters, keyed by uid; never iterated (output order never depends on it).
    class_counts: rustc_hash::FxHashMap<crate::flow::Uid, ClassCounts>,
    /// Messages not counted per flow because the counter table was full.
    class_overflow: u64,
}

impl FlowConsumer for AnalyzeConsumer {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.totals.add(record);
        let counts = self.class_counts.remove(&record.uid).unwrap_or_default();
        self.totals.add_classes(&counts);
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.push_classified(record, digits, &counts) {
                self.csv_error.get_or_insert(e);
            }
        }
    }

    fn watermark(&mut self, watermark: (i64, u64)) {
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.release_below(watermark) {
                self.csv_error.get_or_insert(e);
            }
        }
    }

    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        let c = self.classifier.classify(ctx, msg);
        let full = self.class_counts.len() >= MAX_FLOW_CLASS_COUNTERS;
        match self.class_counts.get_mut(&ctx.uid) {
            Some(counts) => counts.add(c.class, &c.kind, msg.len),
            None if full => self.class_overflow += 1,
            None => {
                let mut counts = ClassCounts::default();
                counts.add(c.class, &c.kind, msg.len);
                self.class_counts.insert(ctx.uid, counts);
            }
        }
        let from_home = self.classifier.is_home(ctx.src);
        self.measure.observe(&Seen::new(ctx, msg, &c, from_home));
        if let Some(w) = &mut self.messages {
            if let Err(e) = w.write(ctx.uid, ctx.dir, ctx.ts, msg, &c, ctx.digits) {
                self.csv_error.get_or_insert(e);
            }
        }
        if let Some(c) = &mut self.calls {
            c.message(ctx, msg);
        }
    }
}

/// Creates `dir` and a CSV writer in it, or says on stderr why not.
fn create_report<W>(
    dir: &Path,
    name: &str,
    create: impl FnOnce(&Path) -> std::io::Result<W>,
) -> Result<W, u8> {
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| create(&path))
        .map_err(|e| {
            eprintln!("p2ptrace: error: cannot write {}: {e}", path.display());
            1
        })
}

pub(super) fn analyze(args: &AnalyzeArgs) -> u8 {
    let dissect = !args.no_dissect;
    let mut consumer = AnalyzeConsumer {
        totals: FlowTotals::default(),
        calls: None,
        csv: None,
        messages: None,
        classifier: Classifier::new(args.home.clone()),
        measure: Measurements::default(),
        csv_error: None,
        class_counts: Default::default(),
        class_overflow: 0,
    };
    if let Some(dir) = &args.csv {
        match create_report(dir, "flows.csv", FlowsCsv::create) {
            Ok(w) => consumer.csv = Some(w),
            Err(code) => return code,
        }
        if dissect {
            match create_report(dir, "messages.csv", MessagesCsv::create) {
                Ok(w) => consumer.messages = Some(w),
                Err(code) => return code,
            }
            use crate::report::calls_csv::CallsReport;
            match create_report(dir, "calls.csv", CallsReport::create) {
                Ok(w) => consumer.calls = Some(w),
                Err(code) => return code,
            }
        }
    }
    let mut config = args.flow.pipeline_config();
    if dissect {
        config.dissect = Some(DissectConfig::default());
    }
    let stats = run_with_progress(&args.inputs, &config, &mut consumer, args.quiet);
    report_input_errors(&stats);
    let mut code = stats.exit_code();
    // Close the reports whatever happened: partial results are kept.
    let mut written = Vec::new();
    let mut failed = consumer.csv_error.take();
    if let Some(csv) = consumer.csv.take() {
        written.push((csv.rows(), "flows", "flows.csv"));
        if let Err(e) = csv.finish() {
            failed.get_or_insert(e);
        }
    }
    if let Some(m) = consumer.messages.take() {
        written.push((m.rows(), "messages", "messages.csv"));
        if let Err(e) = m.finish() {
            failed.get_or_insert(e);
        }
    }
    if let Some(c) = consumer.calls.take() {
        match c.finish() {
            Ok(rows) => written.push((rows, "calls", "calls.csv")),
            Err(e) => drop(failed.get_or_insert(e)),
        }
    }
    let span = match (stats.first_ts, stats.last_ts) {
        (Some(a), Some(b)) => b.since(a),
        _ => 0,
    };
    if let (Some(dir), true) = (&args.csv, dissect) {
        match consumer.measure.write_csvs(dir, span) {
            Ok(files) => written.extend(files),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(dir) = &args.csv {
        match failed {
            Some(e) => {
                eprintln!("p2ptrace: error: writing reports in {}: {e}", dir.display());
                code = 1;
            }
            None => {
                for (rows, what, file) in written {
                    eprintln!(
                        "p2ptrace: wrote {} {what} to {}",
                        thousands(rows),
                        dir.join(file).display()
                    );
                }
            }
        }
    }
    consumer.totals.class_overflow = consumer.class_overflow;
    let mut text = summary::render(&stats, &consumer.totals);
    let headlines = consumer.measure.headlines(span, 5);
    if !headlines.is_empty() {
        text.push_str("phone home\n");
        for h in headlines {
            text.push_str(&format!("  {h}\n"));
        }
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).is_err() {
        // stdout closed (e.g. piped into `head`): not an analysis failure.
    }
    code
}
