//! Interval distributions in bounded memory, summarised by an hdrhistogram of milliseconds
//! (2 significant digits: values within 1 %), clamped to 7 days. Shared by every per-pair
//! timing report (phone-home contacts, keepalives).
//!
//! A histogram costs about 12 KiB and tens of thousands of pairs see only a few intervals
//! each, so a pair keeps its first [`EXACT_MAX`] intervals as plain values and moves to its
//! own histogram only past that. Reports read the plain values sorted, at the histogram's
//! resolution (the rank and rounding of `Histogram::value_at_quantile`), so both forms give
//! the same figures for the same intervals. Filling and walking a histogram per pair instead
//! cost ~50 k instructions a pair, once per report: an eighth of all the work on a 1 M-frame
//! slice of the `large` capture's keepalive hour.

use hdrhistogram::Histogram;

/// Longest interval recorded (7 days, in ms); longer ones are clamped.
const MAX_INTERVAL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Significant digits: about 12 KiB per histogram.
const SIGFIG: u8 = 2;
/// Intervals kept as plain values (4 bytes each) before a pair gets its own histogram.
pub const EXACT_MAX: usize = 256;

/// One pair's intervals: the plain values while few, then a histogram.
#[derive(Clone, Debug, Default)]
pub struct Intervals {
    /// Milliseconds, already clamped; emptied when `hist` takes over.
    exact: Vec<u32>,
    hist: Option<Box<Histogram<u32>>>,
}

/// Reused room for summarising pairs that have no histogram of their own.
#[derive(Default)]
pub struct Scratch {
    /// The pair's plain values, sorted.
    sorted: Vec<u32>,
    /// An empty histogram with the bounds of every pair's: its resolution, never its counts.
    shape: Option<Histogram<u32>>,
}

/// The summary of one pair's intervals; every figure is `None` before the first interval.
pub struct Dist<'a>(Option<Form<'a>>);

enum Form<'a> {
    /// The pair's own histogram (not empty).
    Hist(&'a Histogram<u32>),
    /// The pair's plain values (at least one), sorted, read at `shape`'s resolution.
    Sorted {
        ms: &'a [u32],
        shape: &'a Histogram<u32>,
    },
}

fn new_histogram() -> Option<Histogram<u32>> {
    Histogram::new_with_bounds(1, MAX_INTERVAL_MS, SIGFIG).ok()
}

fn record_all(h: &mut Histogram<u32>, ms: &[u32]) {
    for &v in ms {
        // In bounds by construction (clamped to 1..=MAX_INTERVAL_MS).
        let _ = h.record(u64::from(v));
    }
}

impl Intervals {
    /// Records one interval of `ns` nanoseconds (negative counts as 0).
    pub fn record_ns(&mut self, ns: i64) {
        let ms = u64::try_from(ns / 1_000_000)
            .unwrap_or(0)
            .clamp(1, MAX_INTERVAL_MS);
        if let Some(h) = self.hist.as_mut() {
            let _ = h.record(ms);
            return;
        }
        if self.exact.len() < EXACT_MAX {
            // MAX_INTERVAL_MS < u32::MAX.
            self.exact.push(ms as u32);
            return;
        }
        // Creating the histogram cannot fail with these constant bounds; were it to, the
        // interval would go unrecorded rather than the plain values grow without bound.
        if let Some(mut h) = new_histogram() {
            record_all(&mut h, &self.exact);
            let _ = h.record(ms);
            self.hist = Some(Box::new(h));
            self.exact = Vec::new();
        }
    }

    pub fn count(&self) -> u64 {
        self.hist
            .as_ref()
            .map_or(self.exact.len() as u64, |h| h.len())
    }

    /// The distribution: the pair's own histogram, or its values sorted into `scratch`.
    pub fn dist<'a>(&'a self, scratch: &'a mut Scratch) -> Dist<'a> {
        if let Some(h) = &self.hist {
            return Dist((!h.is_empty()).then_some(Form::Hist(h)));
        }
        if self.exact.is_empty() {
            return Dist(None);
        }
        let Scratch { sorted, shape } = scratch;
        let shape = match shape {
            Some(h) => &*h,
            empty => match new_histogram() {
                Some(h) => empty.insert(h),
                None => return Dist(None),
            },
        };
        sorted.clear();
        sorted.extend_from_slice(&self.exact);
        sorted.sort_unstable();
        Dist(Some(Form::Sorted { ms: sorted, shape }))
    }
}

impl Form<'_> {
    fn min(&self) -> Option<u64> {
        match self {
            Form::Hist(h) => Some(h.min()),
            Form::Sorted { ms, shape } => ms.first().map(|&v| shape.lowest_equivalent(v.into())),
        }
    }

    fn max(&self) -> Option<u64> {
        match self {
            Form::Hist(h) => Some(h.max()),
            Form::Sorted { ms, shape } => ms.last().map(|&v| shape.highest_equivalent(v.into())),
        }
    }

    /// `Histogram::value_at_quantile`: the value of rank ⌈q·n⌉ (at least the first), the
    /// highest equivalent to it (the lowest for q = 0).
    fn quantile(&self, q: f64) -> Option<u64> {
        let (ms, shape) = match self {
            Form::Hist(h) => return Some(h.value_at_quantile(q)),
            Form::Sorted { ms, shape } => (ms, shape),
        };
        let q = if q > 1.0 { 1.0 } else { q };
        let rank = ((q * ms.len() as f64).ceil() as usize).max(1).min(ms.len());
        let v = u64::from(*ms.get(rank.checked_sub(1)?)?);
        Some(if q == 0.0 {
            shape.lowest_equivalent(v)
        } else {
            shape.highest_equivalent(v)
        })
    }
}

impl<'a> Dist<'a> {
    fn secs(&self, f: impl FnOnce(&Form<'a>) -> Option<u64>) -> Option<f64> {
        self.0.as_ref().and_then(f).map(|ms| ms as f64 / 1000.0)
    }

    /// Seconds; `None` before the first interval.
    pub fn min_s(&self) -> Option<f64> {
        self.secs(Form::min)
    }

    pub fn max_s(&self) -> Option<f64> {
        self.secs(Form::max)
    }

    /// The `q` quantile (0 to 1) in seconds.
    pub fn quantile_s(&self, q: f64) -> Option<f64> {
        self.secs(|f| f.quantile(q))
    }
}

/// A seconds column: 3 decimals, empty when unknown.
pub fn secs_field(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.3}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (count, min, p50, p90, p99, max) of a distribution.
    fn figures(i: &Intervals, scratch: &mut Scratch) -> (u64, [Option<f64>; 5]) {
        let d = i.dist(scratch);
        let q = |q| d.quantile_s(q);
        (i.count(), [d.min_s(), q(0.5), q(0.9), q(0.99), d.max_s()])
    }

    /// The same intervals recorded straight into one histogram: what every form must report.
    fn reference(ns: &[i64]) -> [Option<f64>; 5] {
        let mut h = new_histogram().unwrap();
        for &v in ns {
            let ms = u64::try_from(v / 1_000_000).unwrap_or(0);
            h.record(ms.clamp(1, MAX_INTERVAL_MS)).unwrap();
        }
        let s = |v: u64| Some(v as f64 / 1000.0);
        [
            s(h.min()),
            s(h.value_at_quantile(0.5)),
            s(h.value_at_quantile(0.9)),
            s(h.value_at_quantile(0.99)),
            s(h.max()),
        ]
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut i = Intervals::default();
        let mut scratch = Scratch::default();
        assert_eq!(figures(&i, &mut scratch), (0, [None; 5]));
        for s in 1..=100 {
            i.record_ns(s * 60 * 1_000_000_000);
        }
        let (n, [min, p50, p90, _, max]) = figures(&i, &mut scratch);
        assert_eq!(n, 100);
        let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() <= want * 0.01;
        assert!(near(min, 60.0));
        assert!(near(p50, 3000.0));
        assert!(near(p90, 5400.0));
        assert!(near(max, 6000.0));
        i.record_ns(-5);
        i.record_ns(i64::MAX);
        assert_eq!(i.count(), 102);
        assert_eq!(secs_field(None), "");
        assert_eq!(secs_field(Some(1.5)), "1.500");
    }

    #[test]
    fn plain_values_and_own_histogram_report_the_same_figures() {
        for n in [1, 2, EXACT_MAX - 1, EXACT_MAX, EXACT_MAX + 1, 3 * EXACT_MAX] {
            // Spread over several orders of magnitude, with clamped extremes.
            let ns: Vec<i64> = (0..n as i64)
                .map(|k| match k % 7 {
                    0 => -1,
                    1 => i64::MAX,
                    _ => (k * k * 7_919 + 13) * 1_000_003,
                })
                .collect();
            let mut i = Intervals::default();
            ns.iter().for_each(|&v| i.record_ns(v));
            assert_eq!(i.hist.is_some(), n > EXACT_MAX, "n = {n}");
            let got = figures(&i, &mut Scratch::default());
            assert_eq!(got, (n as u64, reference(&ns)), "n = {n}");
        }
    }

    proptest::proptest! {
        /// Sorted plain values read like a histogram holding them, for any quantile: few
        /// distinct values (ties, one bucket) as well as values across the whole range.
        #[test]
        fn sorted_values_read_like_a_histogram(
            ms in proptest::collection::vec(
                proptest::prop_oneof![1u32..40, 59_000u32..61_000, 1..=MAX_INTERVAL_MS as u32],
                1..=EXACT_MAX,
            ),
            q in proptest::prop_oneof![0.0..=1.0, proptest::sample::select(vec![0.0, 0.5, 0.9, 0.99, 1.0, 1.5])],
        ) {
            let mut i = Intervals::default();
            ms.iter().for_each(|&v| i.record_ns(i64::from(v) * 1_000_000));
            let mut h = new_histogram().unwrap();
            record_all(&mut h, &ms);
            let mut scratch = Scratch::default();
            let (plain, hist) = (i.dist(&mut scratch), Dist(Some(Form::Hist(&h))));
            let sorted = matches!(plain.0, Some(Form::Sorted { .. }));
            proptest::prop_assert!(sorted, "not the plain form");
            proptest::prop_assert_eq!(plain.quantile_s(q), hist.quantile_s(q));
            proptest::prop_assert_eq!(plain.min_s(), hist.min_s());
            proptest::prop_assert_eq!(plain.max_s(), hist.max_s());
        }
    }

    #[test]
    fn a_reused_scratch_forgets_the_previous_pair() {
        let mut scratch = Scratch::default();
        let (mut long, mut short) = (Intervals::default(), Intervals::default());
        (1..50).for_each(|h| long.record_ns(h * 3_600_000_000_000));
        (1..5).for_each(|s| short.record_ns(s * 1_000_000_000));
        let first = figures(&long, &mut scratch);
        assert_eq!(
            figures(&short, &mut scratch),
            figures(&short, &mut Scratch::default())
        );
        assert_eq!(figures(&long, &mut scratch), first);
        assert_eq!(figures(&Intervals::default(), &mut scratch), (0, [None; 5]));
    }
}
