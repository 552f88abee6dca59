//! Phone-home contacts: how often each client talks to each home endpoint (the login server,
//! the home server, or an address the user names), as `phonehome.csv` rows and the summary's
//! headline (issue 6).
//!
//! A *contact* is one burst of traffic between a client and one home endpoint: packets
//! carrying payload less than [`CONTACT_GAP_NS`] apart belong to the same contact. Packets,
//! not decoded messages: a home endpoint named with `--home` is mostly reached over
//! protocols no dissector decodes (XMPP, QUIC, the rest of a TLS connection), and those bytes
//! and bursts count too. The messages that are decoded say what the contacts carried
//! ([`Kind`]). The interval distribution is over the gaps between the starts of consecutive
//! contacts ([`Intervals`]: an hdrhistogram, fixed memory per pair however long the capture).
//!
//! Must not: decide what is a home endpoint or a client (the classifier does) — it takes
//! observations already attributed.

use super::intervals::{Intervals, Scratch, secs_field};
use crate::report::csv_row::CsvRow;
use crate::time::Ts;
use rustc_hash::FxHashMap;
use std::io::{self, Write};
use std::net::IpAddr;

/// Packets closer than this belong to one contact.
pub const CONTACT_GAP_NS: i64 = 10 * Ts::NANOS_PER_SEC;
/// Client–home pairs tracked; observations of further pairs are counted and dropped. With
/// a histogram of about 12 KiB per pair that has two contacts, at most ~240 MiB.
pub const MAX_PAIRS: usize = 20_000;

/// What a message to or from home was for (`Other` also: traffic no dissector decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    VersionCheck,
    Login,
    Telemetry,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::VersionCheck,
        Kind::Login,
        Kind::Telemetry,
        Kind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VersionCheck => "version-check",
            Kind::Login => "login",
            Kind::Telemetry => "telemetry",
            Kind::Other => "other",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// One packet between a client and a home endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub ts: Ts,
    pub client: IpAddr,
    pub home: IpAddr,
    /// Sent by the client (else by the home endpoint).
    pub to_home: bool,
    /// Transport payload bytes.
    pub bytes: u64,
}

struct Pair {
    contacts: u64,
    contact_start: Ts,
    last_seen: Ts,
    intervals: Intervals,
    bytes_to: u64,
    bytes_from: u64,
    kinds: u8,
}

/// One `phonehome.csv` row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub client: IpAddr,
    pub home: IpAddr,
    pub home_name: String,
    pub contacts: u64,
    pub contacts_per_hour: f64,
    /// Seconds; `None` with fewer than two contacts.
    pub interval_min: Option<f64>,
    pub interval_p50: Option<f64>,
    pub interval_p90: Option<f64>,
    pub interval_p99: Option<f64>,
    pub interval_max: Option<f64>,
    pub bytes_to_home: u64,
    pub bytes_from_home: u64,
    pub kinds: Vec<Kind>,
}

pub const COLUMNS: &[&str] = &[
    "client",
    "home",
    "home_name",
    "contacts",
    "contacts_per_hour",
    "interval_min",
    "interval_p50",
    "interval_p90",
    "interval_p99",
    "interval_max",
    "bytes_to_home",
    "bytes_from_home",
    "kinds",
];

/// Accumulates observations; output sorted by (client, home) for reproducible files.
#[derive(Default)]
pub struct PhoneHome {
    pairs: FxHashMap<(IpAddr, IpAddr), Pair>,
    /// Observations of pairs beyond [`MAX_PAIRS`].
    pub dropped: u64,
}

impl PhoneHome {
    pub fn new() -> PhoneHome {
        PhoneHome::default()
    }

    /// The pair's state; `None` (and counted in [`Self::dropped`]) beyond [`MAX_PAIRS`].
    fn pair(&mut self, client: IpAddr, home: IpAddr) -> Option<&mut Pair> {
        let key = (client, home);
        if !self.pairs.contains_key(&key) && self.pairs.len() >= MAX_PAIRS {
            self.dropped += 1;
            return None;
        }
        Some(self.pairs.entry(key).or_insert_with(|| Pair {
            contacts: 0,
            // Set by the first contact (`contacts == 0` starts one).
            contact_start: Ts(i64::MIN),
            last_seen: Ts(i64::MIN),
            intervals: Intervals::default(),
            bytes_to: 0,
            bytes_from: 0,
            kinds: 0,
        }))
    }

    /// One packet; returns whether it starts a new contact.
    pub fn observe(&mut self, o: &Observation) -> bool {
        let Some(p) = self.pair(o.client, o.home) else {
            return false;
        };
        let new = p.contacts == 0 || o.ts.since(p.last_seen) >= CONTACT_GAP_NS;
        if new {
            if p.contacts > 0 {
                p.intervals.record_ns(o.ts.since(p.contact_start));
            }
            p.contacts += 1;
            p.contact_start = o.ts;
        }
        p.last_seen = p.last_seen.max(o.ts);
        if o.to_home {
            p.bytes_to += o.bytes;
        } else {
            p.bytes_from += o.bytes;
        }
        new
    }

    /// A decoded message between `client` and `home` was of `kind`.
    pub fn note_kind(&mut self, client: IpAddr, home: IpAddr, kind: Kind) {
        if let Some(p) = self.pair(client, home) {
            p.kinds |= kind.bit();
        }
    }

    /// The rows, with contacts per hour over `span_ns` (the capture's time span), each home
    /// endpoint named by `name` (e.g. its role, or the host name that made it home).
    /// A pair known only from a message whose packets came before the endpoint was home
    /// (e.g. a stream flushed at the flow's end) has no contact and no row.
    pub fn rows(&self, span_ns: i64, name: &dyn Fn(IpAddr) -> Option<String>) -> Vec<Row> {
        let hours = (span_ns.max(1) as f64) / 3.6e12;
        let mut pairs: Vec<(&(IpAddr, IpAddr), &Pair)> =
            self.pairs.iter().filter(|(_, p)| p.contacts > 0).collect();
        pairs.sort_unstable_by_key(|(k, _)| **k);
        let mut scratch = Scratch::default();
        pairs
            .into_iter()
            .map(|(&(client, home), p)| {
                let i = p.intervals.dist(&mut scratch);
                Row {
                    client,
                    home,
                    home_name: name(home).unwrap_or_default(),
                    contacts: p.contacts,
                    contacts_per_hour: p.contacts as f64 / hours,
                    interval_min: i.min_s(),
                    interval_p50: i.quantile_s(0.5),
                    interval_p90: i.quantile_s(0.9),
                    interval_p99: i.quantile_s(0.99),
                    interval_max: i.max_s(),
                    bytes_to_home: p.bytes_to,
                    bytes_from_home: p.bytes_from,
                    // Nothing decoded said what the traffic was: other.
                    kinds: Kind::ALL
                        .into_iter()
                        .filter(|k| p.kinds & k.bit() != 0 || (p.kinds == 0 && *k == Kind::Other))
                        .collect(),
                }
            })
            .collect()
    }
}

/// Writes `phonehome.csv`.
pub fn write_csv<W: Write>(rows: &[Row], mut out: W) -> io::Result<()> {
    out.write_all(&CsvRow::header(COLUMNS))?;
    let mut r = CsvRow::default();
    let secs = secs_field;
    for row in rows {
        r.clear();
        let kinds: Vec<&str> = row.kinds.iter().map(|k| k.as_str()).collect();
        r.ip(row.client)
            .ip(row.home)
            .str(&row.home_name)
            .uint(row.contacts)
            .str(&format!("{:.3}", row.contacts_per_hour))
            .str(&secs(row.interval_min))
            .str(&secs(row.interval_p50))
            .str(&secs(row.interval_p90))
            .str(&secs(row.interval_p99))
            .str(&secs(row.interval_max))
            .uint(row.bytes_to_home)
            .uint(row.bytes_from_home)
            .str(&kinds.join(";"));
        out.write_all(r.finish())?;
    }
    Ok(())
}

/// "client 10.0.0.5 contacted home 198.51.100.80 (home) 14 times in 6.0 h: median interval
/// 30.0 min" — one line per pair, the most frequent first (at most `limit`).
pub fn headlines(rows: &[Row], span_ns: i64, limit: usize) -> Vec<String> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.contacts));
    let span = crate::time::human_secs(span_ns.max(0) as f64 / 1e9);
    sorted
        .into_iter()
        .take(limit)
        .map(|r| {
            let name = if r.home_name.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.home_name)
            };
            let median = r
                .interval_p50
                .map(|s| format!(": median interval {}", crate::time::human_secs(s)))
                .unwrap_or_default();
            format!(
                "client {} contacted home {}{name} {} time{} in {span}{median}",
                r.client,
                r.home,
                r.contacts,
                if r.contacts == 1 { "" } else { "s" }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = Ts::NANOS_PER_SEC;

    fn obs(t: i64, to_home: bool) -> Observation {
        Observation {
            ts: Ts(t),
            client: "10.0.0.5".parse().unwrap(),
            home: "198.51.100.80".parse().unwrap(),
            to_home,
            bytes: 100,
        }
    }

    /// A packet and the message it carried.
    fn msg(ph: &mut PhoneHome, t: i64, to_home: bool, kind: Kind) -> bool {
        let o = obs(t, to_home);
        ph.note_kind(o.client, o.home, kind);
        ph.observe(&o)
    }

    fn unnamed(_: IpAddr) -> Option<String> {
        None
    }

    #[test]
    fn bursts_are_contacts_and_intervals_are_between_their_starts() {
        let mut ph = PhoneHome::new();
        // Three contacts 30 min apart, each a request and a response 50 ms later, plus a
        // message 9.9 s after the first (same contact).
        for i in 0..3 {
            let t = i * 1800 * S;
            assert!(msg(&mut ph, t, true, Kind::VersionCheck));
            assert!(!msg(&mut ph, t + S / 20, false, Kind::VersionCheck));
        }
        assert!(!msg(
            &mut ph,
            S / 20 + 9 * S + 9 * S / 10,
            true,
            Kind::Telemetry
        ));
        let home = |ip: IpAddr| (ip.to_string() == "198.51.100.80").then(|| "home".to_string());
        let rows = ph.rows(6 * 3600 * S, &home);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.contacts, 3);
        assert!((r.contacts_per_hour - 0.5).abs() < 1e-9);
        for v in [
            r.interval_min,
            r.interval_p50,
            r.interval_p99,
            r.interval_max,
        ] {
            assert!((v.unwrap() - 1800.0).abs() <= 18.0, "{v:?} within 1 %");
        }
        assert_eq!((r.bytes_to_home, r.bytes_from_home), (400, 300));
        assert_eq!(r.kinds, vec![Kind::VersionCheck, Kind::Telemetry]);
        let h = headlines(&rows, 6 * 3600 * S, 5);
        assert_eq!(
            h,
            vec![
                "client 10.0.0.5 contacted home 198.51.100.80 (home) 3 times in 6.0 h: median interval 30.0 min"
            ]
        );
        let mut csv = Vec::new();
        write_csv(&rows, &mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert!(text.starts_with("client,home,home_name,contacts,contacts_per_hour,"));
        assert!(text.contains(",version-check;telemetry\n"), "{text}");
    }

    #[test]
    fn a_gap_of_exactly_ten_seconds_starts_a_new_contact() {
        let mut ph = PhoneHome::new();
        ph.observe(&obs(0, true));
        ph.observe(&obs(10 * S - 1, true));
        ph.observe(&obs(20 * S - 1, true));
        assert_eq!(ph.rows(S, &unnamed)[0].contacts, 2);
        let one = {
            let mut p = PhoneHome::new();
            p.observe(&obs(0, true));
            p.rows(S, &unnamed)
        };
        assert_eq!(one[0].interval_p50, None);
        // No decoded message said what the traffic was.
        assert_eq!(one[0].kinds, vec![Kind::Other]);
    }

    #[test]
    fn pairs_are_bounded_and_ordered() {
        let mut ph = PhoneHome::new();
        for i in 0..(MAX_PAIRS as u32 + 10) {
            let mut o = obs(0, true);
            o.client = IpAddr::from(i.to_be_bytes());
            ph.observe(&o);
        }
        assert_eq!(ph.dropped, 10);
        let rows = ph.rows(S, &unnamed);
        assert_eq!(rows.len(), MAX_PAIRS);
        assert!(rows.windows(2).all(|w| w[0].client < w[1].client));
    }
}
