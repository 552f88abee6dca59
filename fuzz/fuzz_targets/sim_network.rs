//! Fuzz what the simulator's network does with arbitrary IP packets: NAT boxes of every kind
//! (inbound and outbound), a host's smoltcp-based TCP stack, and the packet helpers. Inputs
//! are a sequence of `[ctl][len][len bytes]` records; `ctl` picks the NAT kind, the direction
//! and how far the clock advances. Nothing may panic; a dropped packet stays untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2ptrace::sim::nat::{Nat, NatConfig, NatKind, Verdict};
use p2ptrace::sim::packet;
use p2ptrace::sim::tcp::TcpHost;
use p2ptrace::time::Ts;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let public = Ipv4Addr::new(100, 64, 0, 1);
    let mut nats: Vec<Nat> = NatKind::ALL
        .iter()
        .map(|k| Nat::new(NatConfig::new(*k, public, 7)))
        .collect();
    let mut tcp: TcpHost<u32> = TcpHost::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)), 1500, 7);
    tcp.listen(33033);
    let (mut segs, mut notes) = (Vec::new(), Vec::new());
    let mut now = Ts(1_767_225_600_000_000_000);
    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (pkt, next) = tail.split_at(n);
        rest = next;
        now = now.add_nanos(i64::from(ctl >> 3) * 50_000_000);
        let _ = packet::tuple(pkt);
        let _ = packet::tcp_info(pkt);
        let mut bytes = pkt.to_vec();
        let nat = &mut nats[usize::from(ctl & 3)];
        let verdict = if ctl & 4 == 0 {
            nat.outbound(now, &mut bytes)
        } else {
            nat.inbound(now, &mut bytes)
        };
        if let Verdict::Drop(_) = verdict {
            assert_eq!(bytes, pkt, "a dropped packet is untouched");
        }
        tcp.receive(now, pkt);
        tcp.poll(now, &mut segs, &mut notes);
        segs.clear();
        notes.clear();
    }
});
