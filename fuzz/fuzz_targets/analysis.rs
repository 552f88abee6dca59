//! Fuzz `p2ptrace analyze --csv` on one input read as a capture, through the code it runs
//! (the `pipeline` target mirrors the stages by hand instead): the one read loop
//! (`pipeline::read_frames`, with its look-ahead), `Engine` (fast decoder, flow table,
//! dissection) and `Analysis` (classifier with `--home` specs, measurements, every CSV
//! report, the summary). Small caps make eviction and forced skips reachable. Checked: the
//! reports are written without error, and each CSV parses as CSV with the header's number of
//! fields in every record and as many records as `analyze` says it wrote.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use p2ptrace::analysis::Analysis;
use p2ptrace::capture::{CaptureReader, Frame};
use p2ptrace::classify::HomeSpec;
use p2ptrace::pipeline::{Engine, Step, read_frames};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::LazyLock;

/// The reports' directory, one per fuzzing process, rewritten by every input.
static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("p2ptrace-fuzz-analysis-{}", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_read("fuzz", Box::new(Cursor::new(data.to_vec())))
    else {
        return;
    };
    let homes = ["10.0.0.0/8", "192.0.2.1:80", "*.example"]
        .iter()
        .map(|s| HomeSpec::parse(s).expect("home spec"))
        .collect();
    let mut analysis = Analysis::create(Some(&DIR), true, homes).expect("reports created");
    let config = common::small_config();
    let mut engine = Engine::new(&config, &mut analysis);
    let mut frames = 0u64;
    let mut step = |_: &Frame<'_>| {
        frames += 1;
        if frames > common::MAX_FRAMES {
            Step::Stop
        } else {
            Step::Analyse
        }
    };
    let (_, _error) = read_frames(&mut reader, &mut engine, &mut step, &mut |_| {});
    let stats = engine.finish();
    let done = analysis.finish(&stats);
    assert_eq!(done.error, None);
    for (rows, _, file) in &done.written {
        let mut csv = csv::Reader::from_path(DIR.join(file)).expect("report written");
        let mut records = 0u64;
        for record in csv.records() {
            // Every record has the header's number of fields (the reader checks).
            record.unwrap_or_else(|e| panic!("{file}: {e}"));
            records += 1;
        }
        assert_eq!(records, *rows, "{file}: one record per row reported");
    }
});
