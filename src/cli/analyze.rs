//! `p2ptrace analyze`: the summary and, with `--csv`, every report (see [`crate::analysis`]).

use super::*;
use crate::analysis::Analysis;
use crate::report::summary::plural;

pub(super) fn analyze(args: &AnalyzeArgs) -> u8 {
    let dissect = !args.no_dissect;
    let mut analysis = match Analysis::create(args.csv.as_deref(), dissect, args.home.clone()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("p2ptrace: error: {e}");
            return 1;
        }
    };
    args.messages.apply(&mut analysis);
    let mut config = args.flow.pipeline_config();
    if dissect {
        config.dissect = Some(DissectConfig::default());
    }
    let stats = run_with_progress(&args.inputs, &config, &mut analysis, args.quiet);
    report_input_errors(&stats);
    let mut code = stats.exit_code();
    let done = analysis.finish(&stats);
    print_finished(&done, args.csv.as_deref(), &mut code);
    code
}

/// Says on stderr which reports were written (or why not) and prints the summary.
pub(super) fn print_finished(done: &crate::analysis::Finished, dir: Option<&Path>, code: &mut u8) {
    if let Some(dir) = dir {
        match &done.error {
            Some(e) => {
                eprintln!("p2ptrace: error: {e}");
                *code = 1;
            }
            None => {
                for (rows, what, file) in &done.written {
                    // Every report's noun is a regular plural ("calls", "keepalive pairs").
                    let one = what.strip_suffix('s').unwrap_or(what);
                    eprintln!(
                        "p2ptrace: wrote {} to {}",
                        plural(*rows, one, what),
                        dir.join(file).display()
                    );
                }
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(done.summary.as_bytes()).is_err() {
        // stdout closed (e.g. piped into `head`): not an analysis failure.
    }
}
