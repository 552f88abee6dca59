//! `p2ptrace score`: the analyzer's classification against ground-truth labels.

use super::*;
use crate::classify::{Classifier, HomeSpec};
use crate::score::{Join, LabelError, LabelReader, Observed, render_json, render_text};

pub(super) const AFTER_HELP: &str = "Examples:\n  \
    p2ptrace score captures/sim/no-nat/capture.pcapng.gz --labels captures/sim/no-nat/labels.csv.gz\n  \
    p2ptrace score out/capture.pcapng --labels out/labels.csv --capture nat:alice --json\n\n\
    The join and the definitions: docs/score.md.";

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Capture files, read in order as one trace.
    #[arg(required = true, value_name = "CAPTURE")]
    pub inputs: Vec<PathBuf>,
    /// Ground truth: labels.csv (plain or gzip) of `p2ptrace sim`, `lab` or `peer`.
    #[arg(long, value_name = "LABELS")]
    pub labels: PathBuf,
    /// The capture point whose labels to use (labels.csv `capture` column). Default: the
    /// first one in the file.
    #[arg(long, value_name = "NAME")]
    pub capture: Option<String>,
    /// Largest time difference between a label and its message, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2.0, value_parser = parse_tolerance)]
    pub tolerance_ms: f64,
    /// Print `{"matched": N, "labels": N, "classes": {...}, ...}` instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// A home endpoint besides those learned from the traffic (as for `analyze`).
    #[arg(long, value_name = "ADDR|CIDR|NAME", value_parser = HomeSpec::parse)]
    pub home: Vec<HomeSpec>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub flow: FlowOptions,
}

fn parse_tolerance(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (0.0..=3_600_000.0).contains(v))
        .ok_or_else(|| format!("'{s}': not a tolerance in milliseconds (0 to 3600000)"))
}

struct ScoreConsumer {
    classifier: Classifier,
    join: Join,
    labels: LabelReader,
    error: Option<LabelError>,
}

impl ScoreConsumer {
    /// Feeds the join every label up to `until` (all when `None`).
    fn pump(&mut self, until: Option<Ts>) {
        if self.error.is_some() {
            return;
        }
        loop {
            match self.labels.peek() {
                Ok(Some(l)) if until.is_none_or(|u| l.ts <= u) => {}
                Ok(_) => return,
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
            if let Ok(Some(l)) = self.labels.next_label() {
                self.join.label(l);
            }
        }
    }
}

impl FlowConsumer for ScoreConsumer {
    fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}

    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        let verdict = self.classifier.classify(ctx, msg);
        let until = self.join.read_labels_until(ctx.ts);
        self.pump(Some(until));
        self.join.message(Observed {
            ts: ctx.ts,
            proto: ctx.proto,
            src: ctx.src,
            dst: ctx.dst,
            txn_id: Observed::txn_id_of(msg),
            call_id: msg.call_id,
            verdict,
        });
    }
}

pub(super) fn score(args: &ScoreArgs) -> u8 {
    let labels = match LabelReader::open(&args.labels, args.capture.clone()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
    };
    let mut consumer = ScoreConsumer {
        classifier: Classifier::new(args.home.clone()),
        join: Join::new((args.tolerance_ms * 1e6) as i64),
        labels,
        error: None,
    };
    let mut config = args.flow.pipeline_config();
    config.dissect = Some(DissectConfig::default());
    let stats = run_with_progress(&args.inputs, &config, &mut consumer, args.quiet);
    report_input_errors(&stats);
    let code = stats.exit_code();
    if code == 1 {
        return 1;
    }
    consumer.pump(None);
    if let Some(e) = consumer.error.take() {
        eprintln!("p2ptrace: error: {e}");
        return 1;
    }
    let capture = consumer.labels.capture().to_string();
    let tally = consumer.join.finish();
    if tally.labels == 0 {
        let which = args
            .capture
            .as_deref()
            .map(|c| format!(" for capture point '{c}'"))
            .unwrap_or_default();
        eprintln!(
            "p2ptrace: warning: no labels{which} in {}",
            args.labels.display()
        );
    }
    let text = if args.json {
        render_json(&tally, &capture)
    } else {
        render_text(&tally, &capture)
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).is_err() {
        // stdout closed (piped into `head`): not a scoring failure.
    }
    code
}
