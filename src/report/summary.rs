//! The human summary printed by `p2ptrace analyze`: inputs, totals, time span, flows by
//! protocol, and every anomaly counted on the way.

use crate::capture::Format;
use crate::flow::FlowRecord;
use crate::pipeline::RunStats;
use crate::time::SecsDisplay;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Flow counts per protocol, accumulated from records as they end.
#[derive(Debug, Default)]
pub struct FlowTotals {
    /// proto name → (flows, packets, bytes)
    by_proto: BTreeMap<&'static str, (u64, u64, u64)>,
    evicted: u64,
    /// Per class (column order of `TrafficClass::ALL`): messages, bytes, flows.
    classes: [(u64, u64, u64); 5],
}

impl FlowTotals {
    pub fn add(&mut self, rec: &FlowRecord) {
        let e = self.by_proto.entry(rec.proto_name()).or_default();
        e.0 += 1;
        e.1 += rec.total_pkts();
        e.2 += rec.total_bytes();
        if rec.end == crate::flow::EndReason::Evicted {
            self.evicted += 1;
        }
    }

    /// Adds one ended flow's per-class message counts.
    pub fn add_classes(&mut self, counts: &crate::report::flows_csv::ClassCounts) {
        for ((t, m), b) in self
            .classes
            .iter_mut()
            .zip(counts.msgs.iter())
            .zip(counts.bytes.iter())
        {
            if *m > 0 {
                t.0 = t.0.saturating_add(*m);
                t.1 = t.1.saturating_add(*b);
                t.2 += 1;
            }
        }
    }

    pub fn flows(&self) -> u64 {
        self.by_proto.values().map(|v| v.0).sum()
    }
}

/// Groups digits by thousands: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 call`, `2,000 calls`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

fn format_name(format: Option<Format>, gzip: bool) -> String {
    let base = match format {
        Some(Format::Pcap { nanos, big_endian }) => format!(
            "pcap ({}, {})",
            if nanos { "ns" } else { "µs" },
            if big_endian {
                "big-endian"
            } else {
                "little-endian"
            }
        ),
        Some(Format::PcapNg) => "pcapng".to_string(),
        None => "unreadable".to_string(),
    };
    if gzip { format!("{base}, gzip") } else { base }
}

/// Renders the summary.
pub fn render(stats: &RunStats, flows: &FlowTotals) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "inputs");
    for input in &stats.inputs {
        let _ = writeln!(
            s,
            "  {}  {}  {} frames{}",
            input.path.display(),
            format_name(input.format, input.gzip),
            thousands(input.frames),
            match &input.error {
                Some(e) if e.is_fatal_at_start() => " — not read".to_string(),
                Some(_) => " — damaged, read up to the damage".to_string(),
                None => String::new(),
            }
        );
    }
    let _ = writeln!(
        s,
        "packets      {} frames, {} bytes on the wire",
        thousands(stats.frames),
        thousands(stats.wire_bytes)
    );
    if let (Some(first), Some(last)) = (stats.first_ts, stats.last_ts) {
        let d = stats.ts_precision;
        let _ = writeln!(
            s,
            "time span    {} .. {} ({} s)",
            first.display(d),
            last.display(d),
            SecsDisplay {
                nanos: last.since(first),
                digits: d.min(6)
            }
        );
    }
    let _ = writeln!(s, "flows        {}", thousands(flows.flows()));
    if !flows.by_proto.is_empty() {
        let _ = writeln!(
            s,
            "  {:<10} {:>12} {:>14} {:>16}",
            "proto", "flows", "packets", "bytes"
        );
        for (proto, (n, p, b)) in &flows.by_proto {
            let _ = writeln!(
                s,
                "  {:<10} {:>12} {:>14} {:>16}",
                proto,
                thousands(*n),
                thousands(*p),
                thousands(*b)
            );
        }
    }
    if let Some(d) = &stats.dissect {
        let services: Vec<String> = d
            .flows_by_service
            .iter()
            .map(|(name, flows)| {
                let msgs = d.messages_by_service.get(name).copied().unwrap_or(0);
                let (flows, msgs) = (plural(*flows, "flow", "flows"), plural(msgs, "msg", "msgs"));
                format!("{name} {flows} / {msgs}")
            })
            .collect();
        let _ = writeln!(
            s,
            "services     {}",
            if services.is_empty() {
                "none recognised".to_string()
            } else {
                services.join(", ")
            }
        );
        let _ = writeln!(
            s,
            "  {:<10} {:>12} {:>14} {:>16}",
            "class", "flows", "messages", "bytes"
        );
        for (class, (m, b, n)) in dissectors::registry::TrafficClass::ALL
            .iter()
            .zip(flows.classes.iter())
        {
            let _ = writeln!(
                s,
                "  {:<10} {:>12} {:>14} {:>16}",
                class.as_str(),
                thousands(*n),
                thousands(*m),
                thousands(*b)
            );
        }
    }
    let t = &stats.table;
    let _ = writeln!(
        s,
        "flow table   peak {} live, {} idle-expired, {} evicted (cap), {} reused endpoints",
        thousands(t.peak_live as u64),
        thousands(t.flows_idle_expired),
        thousands(flows.evicted),
        thousands(t.flows_reused)
    );
    let dec = &stats.decode;
    let _ = writeln!(
        s,
        "decode       ipv4 {}, ipv6 {}, tcp {}, udp {}, icmp {}, other ip {}, non-ip {}",
        thousands(dec.ipv4),
        thousands(dec.ipv6),
        thousands(dec.tcp),
        thousands(dec.udp),
        thousands(dec.icmp),
        thousands(dec.other_ip),
        thousands(dec.non_ip)
    );
    if dec.fragments > 0 {
        let _ = writeln!(
            s,
            "fragments    {} seen, {} datagrams reassembled",
            thousands(dec.fragments),
            thousands(dec.reassembled)
        );
    }
    let mut anomalies: Vec<(String, u64)> = dec
        .anomalies()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    if let Some(d) = &stats.dissect {
        if d.parse_errors > 0 {
            anomalies.push(("application messages malformed".into(), d.parse_errors));
        }
        if d.flows_abandoned > 0 {
            anomalies.push((
                "flows no longer dissected after errors".into(),
                d.flows_abandoned,
            ));
        }
    }
    if t.ts_backwards > 0 {
        anomalies.push(("timestamps going backwards".into(), t.ts_backwards));
    }
    for input in &stats.inputs {
        if let Some(e) = &input.error {
            anomalies.push((e.to_string(), 1));
        }
    }
    if anomalies.is_empty() {
        let _ = writeln!(s, "anomalies    none");
    } else {
        let _ = writeln!(s, "anomalies");
        for (label, n) in anomalies {
            let _ = writeln!(s, "  {:>10}  {label}", thousands(n));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_agrees_with_the_count() {
        assert_eq!(plural(1, "flow", "flows"), "1 flow");
        assert_eq!(plural(0, "flow", "flows"), "0 flows");
        assert_eq!(plural(2000, "msg", "msgs"), "2,000 msgs");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn class_totals_count_flows_with_messages_of_the_class() {
        use crate::report::flows_csv::{ClassCounts, EvidenceKinds};
        use dissectors::registry::TrafficClass;
        let mut t = FlowTotals::default();
        let mut c = ClassCounts::default();
        let k = &mut EvidenceKinds::default();
        c.add(Some(TrafficClass::Media), &"media".into(), 100, k);
        c.add(Some(TrafficClass::Media), &"media".into(), 100, k);
        c.add(Some(TrafficClass::Login), &"hc-probe".into(), 10, k);
        t.add_classes(&c);
        t.add_classes(&ClassCounts::default());
        assert_eq!(t.classes[4], (2, 200, 1));
        assert_eq!(t.classes[0], (1, 10, 1));
        assert_eq!(t.classes[1], (0, 0, 0));
    }
}
