//! The `sessions` section of `analyze`'s text summary: one line per traffic class with the
//! sessions reconstructed from it (logins, lookups, calls, keepalives, media), so the
//! headline figures of logins.csv, lookups.csv, calls.csv and keepalives.csv are on screen
//! without opening them.
//!
//! Must not: measure anything itself — it summarises rows the measurements already made.
//! Medians come from [`Intervals`] (within 1 %, like the CSVs' interval columns) and are
//! shown to two significant digits, the precision they have.

use super::summary::{plural, thousands};
use crate::measure::calls::{CallRecord, MediaPath};
use crate::measure::intervals::{Intervals, Scratch};
use crate::measure::keepalives::Keepalives;
use crate::measure::logins::{self, Login};
use crate::measure::lookups::{self, Lookup};
use std::fmt::Write as _;

const PATHS: [MediaPath; 4] = [
    MediaPath::DirectUdp,
    MediaPath::RelayUdp,
    MediaPath::RelayTcp,
    MediaPath::DirectTcp,
];

/// Calls as they are reported (a run may see more calls than it could keep): counts by
/// media path, set-up latencies, and media totals.
#[derive(Default)]
pub struct CallDigest {
    /// By [`PATHS`] position.
    paths: [u64; 4],
    no_media: u64,
    ringing: Intervals,
    accept: Intervals,
    frames: u64,
    /// Directions with a loss figure, and the frames they lost (loss × expected).
    measured: u64,
    lost: f64,
    expected: f64,
    jitter_sum_ms: f64,
    jitter_max_ms: f64,
}

impl CallDigest {
    /// Calls reported: each has a media path or none.
    fn calls(&self) -> u64 {
        self.paths.iter().sum::<u64>() + self.no_media
    }

    pub fn add(&mut self, c: &CallRecord) {
        match c
            .media_path
            .and_then(|p| PATHS.iter().position(|&q| q == p))
        {
            Some(i) => self.paths[i] += 1,
            None => self.no_media += 1,
        }
        if let Some(ns) = c.setup_ringing_ns {
            self.ringing.record_ns(ns);
        }
        if let Some(ns) = c.setup_accept_ns {
            self.accept.record_ns(ns);
        }
        for d in [&c.ab, &c.ba] {
            self.frames += d.packets;
            if let (Some(loss), Some(jitter)) = (d.loss, d.jitter_ms) {
                // `packets` were sent; the receiver expected them all.
                self.measured += 1;
                self.lost += loss * d.packets as f64;
                self.expected += d.packets as f64;
                self.jitter_sum_ms += jitter;
                self.jitter_max_ms = self.jitter_max_ms.max(jitter);
            }
        }
    }
}

/// The median of `d`, e.g. `median 1.2 s`, or `None` without values.
fn median(d: &Intervals, scratch: &mut Scratch) -> Option<String> {
    d.dist(scratch)
        .quantile_s(0.5)
        .map(|s| format!("median {} s", two_digits(s)))
}

/// `s` to two significant digits (at least 1 ms: 0.042, 0.30, 9.1, 60, 1800).
fn two_digits(s: f64) -> String {
    let decimals = if s > 0.0 {
        (1 - s.log10().floor() as i32).clamp(0, 3) as usize
    } else {
        3
    };
    format!("{s:.decimals$}")
}

/// `N logins: a ok, b failed, …`: `rows` counted by `outcome`, for every value in `all`.
fn tally<R, T: Copy + PartialEq>(
    rows: &[R],
    (one, many): (&str, &str),
    outcome: impl Fn(&R) -> T,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> String {
    let counts: Vec<String> = all
        .iter()
        .map(|&o| {
            let n = rows.iter().filter(|r| outcome(r) == o).count() as u64;
            format!("{} {}", thousands(n), name(o))
        })
        .collect();
    format!(
        "{}: {}",
        plural(rows.len() as u64, one, many),
        counts.join(", ")
    )
}

fn login_line(rows: &[Login], scratch: &mut Scratch) -> String {
    let mut line = tally(
        rows,
        ("login", "logins"),
        Login::outcome,
        &logins::Outcome::ALL,
        logins::Outcome::name,
    );
    let udp = rows.iter().filter(|l| l.transport() == "udp").count() as u64;
    let tcp = rows.iter().filter(|l| l.transport() == "tcp").count() as u64;
    let _ = write!(
        line,
        "; SN over udp {}, tcp {}",
        thousands(udp),
        thousands(tcp)
    );
    // A re-registration, or a login whose SN probes were not captured.
    let unseen = rows.len() as u64 - udp - tcp;
    if unseen > 0 {
        let _ = write!(line, ", not seen {}", thousands(unseen));
    }
    let mut durations = Intervals::default();
    for l in rows.iter().filter(|l| l.outcome() == logins::Outcome::Ok) {
        durations.record_ns(l.end.since(l.start));
    }
    if let Some(m) = median(&durations, scratch) {
        let _ = write!(line, "; {m} to log in");
    }
    line
}

fn lookup_line(rows: &[Lookup], scratch: &mut Scratch) -> String {
    let mut line = tally(
        rows,
        ("lookup", "lookups"),
        Lookup::outcome,
        &lookups::Outcome::ALL,
        lookups::Outcome::name,
    );
    let cached = rows.iter().filter(|l| l.from_cache() == Some(true)).count() as u64;
    let _ = write!(line, "; {} answered from cache", thousands(cached));
    let mut latency = Intervals::default();
    for l in rows {
        if let Some(a) = l.answered {
            latency.record_ns(a.since(l.start));
        }
    }
    if let Some(m) = median(&latency, scratch) {
        let _ = write!(line, "; latency {m}");
    }
    line
}

fn call_line(c: &CallDigest, scratch: &mut Scratch) -> String {
    let mut parts: Vec<String> = PATHS
        .iter()
        .zip(c.paths)
        .filter(|&(&p, n)| n > 0 || p != MediaPath::DirectTcp)
        .map(|(p, n)| format!("{} {}", thousands(n), p.as_str()))
        .collect();
    parts.push(format!("{} without media", thousands(c.no_media)));
    let mut line = format!(
        "{}: {}",
        plural(c.calls(), "call", "calls"),
        parts.join(", ")
    );
    if let Some(m) = median(&c.ringing, scratch) {
        let _ = write!(line, "; set-up {m} to ringing");
    }
    if let Some(m) = median(&c.accept, scratch) {
        let _ = write!(line, ", {m} to accept");
    }
    line
}

fn media_line(c: &CallDigest) -> String {
    // Counted where the parties sent them: a relay's copies are not counted again.
    let mut line = format!("{} by the parties", plural(c.frames, "frame", "frames"));
    if c.measured > 0 && c.expected > 0.0 {
        let _ = write!(
            line,
            "; loss {:.2} %, jitter mean {:.2} ms, max {:.2} ms over {} call directions",
            100.0 * c.lost / c.expected,
            c.jitter_sum_ms / c.measured as f64,
            c.jitter_max_ms,
            thousands(c.measured)
        );
    }
    line
}

fn keepalive_line(k: &Keepalives, scratch: &mut Scratch) -> String {
    let (pairs, count, medians) = k.digest(scratch);
    let mut line = format!(
        "{} over {}",
        // sn-refresh only (keepalives.csv, PROTOCOL.md §8.5): the class's other messages
        // (nat-ping/pong re-polls, hold-keepalive) are not client-SN keepalives.
        plural(count, "sn-refresh keepalive", "sn-refresh keepalives"),
        plural(pairs as u64, "client-SN pair", "client-SN pairs")
    );
    if let Some(m) = median(&medians, scratch) {
        let _ = write!(line, "; interval {m} (median of the pairs' medians)");
    }
    line
}

/// The section, or nothing when no session of any kind was seen.
pub fn render(
    logins: &[Login],
    lookups: &[Lookup],
    keepalives: &Keepalives,
    calls: &CallDigest,
) -> String {
    if logins.is_empty() && lookups.is_empty() && keepalives.is_empty() && calls.calls() == 0 {
        return String::new();
    }
    let mut scratch = Scratch::default();
    let lines = [
        ("login", login_line(logins, &mut scratch)),
        ("lookup", lookup_line(lookups, &mut scratch)),
        ("signalling", call_line(calls, &mut scratch)),
        ("keepalive", keepalive_line(keepalives, &mut scratch)),
        ("media", media_line(calls)),
    ];
    let mut text = String::from("sessions\n");
    for (class, line) in lines {
        let _ = writeln!(text, "  {class:<12}{line}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::calls::{DirStats, EndReason};
    use crate::time::Ts;

    fn call(path: Option<MediaPath>, ab: DirStats, accept_ms: Option<i64>) -> CallRecord {
        CallRecord {
            call_id: 1,
            caller: None,
            callee: None,
            caller_addr: None,
            callee_addr: None,
            start: Ts(0),
            setup_ringing_ns: accept_ms.map(|ms| ms * 500_000),
            setup_accept_ns: accept_ms.map(|ms| ms * 1_000_000),
            duration_ns: None,
            end_reason: EndReason::Bye(None),
            media_path: path,
            relay: None,
            ab,
            ba: DirStats::default(),
            hold_ns: 0,
            conference: None,
            mixer: None,
            untracked_frames: 0,
        }
    }

    fn media(packets: u64, loss: f64, jitter_ms: f64) -> DirStats {
        DirStats {
            packets,
            bitrate_kbps: None,
            loss: Some(loss),
            jitter_ms: Some(jitter_ms),
        }
    }

    #[test]
    fn calls_are_counted_by_media_path_with_set_up_medians() {
        let mut d = CallDigest::default();
        d.add(&call(
            Some(MediaPath::RelayTcp),
            media(100, 0.0, 1.0),
            Some(200),
        ));
        d.add(&call(
            Some(MediaPath::RelayTcp),
            media(100, 0.0, 1.0),
            Some(400),
        ));
        d.add(&call(
            Some(MediaPath::DirectUdp),
            media(100, 0.0, 1.0),
            Some(300),
        ));
        d.add(&call(None, DirStats::default(), None));
        let mut scratch = Scratch::default();
        assert_eq!(
            call_line(&d, &mut scratch),
            "4 calls: 1 direct-udp, 0 relay-udp, 2 relay-tcp, 1 without media; \
             set-up median 0.15 s to ringing, median 0.30 s to accept"
        );
        // direct-tcp is named only when seen.
        d.add(&call(Some(MediaPath::DirectTcp), DirStats::default(), None));
        assert!(call_line(&d, &mut scratch).contains(", 1 direct-tcp, 1 without media"));
    }

    #[test]
    fn media_loss_is_weighted_by_frames_and_jitter_averaged_over_directions() {
        let mut d = CallDigest::default();
        d.add(&call(
            Some(MediaPath::DirectUdp),
            media(900, 0.0, 1.0),
            None,
        ));
        d.add(&call(
            Some(MediaPath::DirectUdp),
            media(100, 0.1, 3.0),
            None,
        ));
        // A direction without frames has no loss or jitter and does not count.
        d.add(&call(Some(MediaPath::DirectUdp), DirStats::default(), None));
        assert_eq!(
            media_line(&d),
            "1,000 frames by the parties; loss 1.00 %, jitter mean 2.00 ms, max 3.00 ms over 2 call directions"
        );
        assert_eq!(
            media_line(&CallDigest::default()),
            "0 frames by the parties"
        );
    }

    #[test]
    fn medians_show_two_significant_digits() {
        let shown: Vec<String> = [0.0421, 0.301, 9.087, 60.159, 1800.0, 0.0]
            .into_iter()
            .map(two_digits)
            .collect();
        assert_eq!(shown, ["0.042", "0.30", "9.1", "60", "1800", "0.000"]);
    }

    #[test]
    fn no_sessions_no_section() {
        let k = Keepalives::default();
        assert_eq!(render(&[], &[], &k, &CallDigest::default()), "");
        let mut d = CallDigest::default();
        d.add(&call(None, DirStats::default(), None));
        let text = render(&[], &[], &k, &d);
        assert!(
            text.starts_with("sessions\n  login       0 logins: 0 ok,"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 6, "{text}");
    }
}
