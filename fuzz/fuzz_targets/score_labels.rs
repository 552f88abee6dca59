//! Fuzz `p2ptrace score`'s label input and join: any bytes read as labels.csv give labels or
//! a one-line error naming the line, never a panic. Every label read is joined, and so is a
//! message made from it (time, class and ids perturbed by the label's own fields, some
//! dropped), in file order. Checked: the tally's counts are consistent and both reports
//! render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2ptrace::classify::{Classified, Known};
use p2ptrace::score::{Join, LabelReader, Observed, render_json, render_text};
use p2ptrace::time::Ts;
use std::borrow::Cow;
use std::io::Cursor;

/// Labels read at most per input (keeps each run short).
const MAX_LABELS: usize = 5000;

fuzz_target!(|data: &[u8]| {
    let input = Box::new(Cursor::new(data.to_vec()));
    let mut labels = match LabelReader::from_read("fuzz".into(), input, None) {
        Ok(r) => r,
        Err(e) => return assert!(!e.to_string().contains('\n'), "{e}"),
    };
    let mut join = Join::new(2_000_000);
    for _ in 0..MAX_LABELS {
        let l = match labels.next_label() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                assert!(!e.to_string().contains('\n'), "{e}");
                break;
            }
        };
        let salt = l.txn_id.unwrap_or(0) ^ l.call_id.unwrap_or(0) ^ u64::from(l.src.port());
        let message = (salt % 7 != 0).then(|| Observed {
            ts: Ts(l
                .ts
                .as_nanos()
                .saturating_add((salt % 5) as i64 * 1_000_000 - 2_000_000)),
            proto: l.proto,
            src: l.src,
            dst: l.dst,
            txn_id: if salt % 11 == 0 { None } else { l.txn_id },
            call_id: l.call_id,
            verdict: Classified {
                kind: Cow::Owned(l.kind.clone()),
                known: Known::from_name(&l.kind),
                class: (salt % 13 != 0).then_some(l.class),
                home: l.home ^ (salt % 17 == 0),
            },
        });
        join.label(l);
        if let Some(m) = message {
            join.message(m);
        }
    }
    let tally = join.finish();
    assert!(tally.matched <= tally.labels);
    assert!(tally.offsets.message_first <= tally.matched);
    assert_eq!(tally.offsets.max_ms().is_some(), tally.matched > 0);
    let support: u64 = tally.classes.values().map(|c| c.support).sum();
    assert_eq!(support, tally.labels);
    for c in tally.classes.values() {
        assert!(c.true_pos <= c.support.min(c.predicted));
    }
    assert!(render_text(&tally, labels.capture()).contains("matched"));
    assert!(render_json(&tally, labels.capture()).starts_with('{'));
});
