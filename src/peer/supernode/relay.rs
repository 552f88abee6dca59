//! Media relay state of a super node (PROTOCOL.md §7.3): one grant per call id, at most two
//! legs (UDP source addresses or TCP connections), a per-call bandwidth cap and release
//! after [`super::SuperNodeConfig::relay_idle_s`] without frames or on `bye`.
//!
//! Guarantees: frames are forwarded only between the two legs of a granted call; a third
//! source is dropped; a TCP leg is admitted only with the grant's token; bounded by
//! [`MAX_RELAYS`]. Must not: create a grant for anyone but a registered client (the caller
//! checks that).

use crate::peer::io::ConnId;
use crate::time::Ts;
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;

/// Calls one SN relays at once.
pub const MAX_RELAYS: usize = 1024;
pub const TOKEN_LEN: usize = 16;

/// One end of a relayed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    Udp(SocketAddr),
    Tcp(ConnId),
}

#[derive(Debug)]
pub struct Relay {
    pub token: [u8; TOKEN_LEN],
    pub legs: [Option<Leg>; 2],
    pub last_frame: Ts,
    /// Start of the current one-second bandwidth window and bytes forwarded in it.
    window_start: Ts,
    window_bytes: u64,
}

/// Why a frame was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    UnknownCall,
    ThirdSource,
    NoPeerLeg,
    OverCap,
}

#[derive(Debug, Default)]
pub struct Relays {
    map: HashMap<u32, Relay>,
}

impl Relays {
    pub fn get(&self, call_id: u32) -> Option<&Relay> {
        self.map.get(&call_id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A grant for `call_id`: the existing one (both parties may ask), else a new one with
    /// `token`; `None` when the table is full.
    pub fn grant(&mut self, call_id: u32, token: [u8; TOKEN_LEN], now: Ts) -> Option<&Relay> {
        if !self.map.contains_key(&call_id) && self.map.len() >= MAX_RELAYS {
            return None;
        }
        Some(self.map.entry(call_id).or_insert(Relay {
            token,
            legs: [None, None],
            last_frame: now,
            window_start: now,
            window_bytes: 0,
        }))
    }

    /// Admits a TCP leg presenting `token`; false when the call or token is wrong or both
    /// legs are taken.
    pub fn admit_tcp(&mut self, call_id: u32, token: &[u8], conn: ConnId, now: Ts) -> bool {
        let Some(r) = self.map.get_mut(&call_id) else {
            return false;
        };
        if r.token.as_slice() != token {
            return false;
        }
        let leg = Leg::Tcp(conn);
        if r.legs.contains(&Some(leg)) {
            return true;
        }
        match r.legs.iter_mut().find(|l| l.is_none()) {
            Some(slot) => {
                *slot = Some(leg);
                r.last_frame = now;
                true
            }
            None => false,
        }
    }

    /// Where a frame of `bytes` from `from` goes: the other leg, after the leg table and
    /// the bandwidth cap (`cap_bps` bytes per second, per call) agree.
    pub fn route(
        &mut self,
        call_id: u32,
        from: Leg,
        bytes: usize,
        now: Ts,
        cap_bps: u64,
    ) -> Result<Leg, Drop> {
        let r = self.map.get_mut(&call_id).ok_or(Drop::UnknownCall)?;
        let me = match r.legs.iter().position(|l| *l == Some(from)) {
            Some(i) => i,
            None => {
                // UDP sources latch into a free slot; TCP legs are admitted by token only.
                let (Leg::Udp(_), Some(i)) = (from, r.legs.iter().position(Option::is_none)) else {
                    return Err(Drop::ThirdSource);
                };
                r.legs[i] = Some(from);
                i
            }
        };
        r.last_frame = now;
        let other = r.legs[1 - me].ok_or(Drop::NoPeerLeg)?;
        if now.since(r.window_start) >= Ts::NANOS_PER_SEC {
            r.window_start = now;
            r.window_bytes = 0;
        }
        let after = r.window_bytes.saturating_add(bytes as u64);
        if after > cap_bps {
            return Err(Drop::OverCap);
        }
        r.window_bytes = after;
        Ok(other)
    }

    pub fn release(&mut self, call_id: u32) -> bool {
        self.map.remove(&call_id).is_some()
    }

    /// Drops TCP legs on a closed connection.
    pub fn conn_closed(&mut self, conn: ConnId) {
        for r in self.map.values_mut() {
            for l in &mut r.legs {
                if *l == Some(Leg::Tcp(conn)) {
                    *l = None;
                }
            }
        }
    }

    /// Releases calls idle for `idle` nanoseconds; returns how many.
    pub fn expire(&mut self, now: Ts, idle: i64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, r| now.since(r.last_frame) < idle);
        before - self.map.len()
    }

    pub fn next_expiry(&self, idle: i64) -> Option<Ts> {
        self.map
            .values()
            .map(|r| r.last_frame.add_nanos(idle))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(p: u16) -> Leg {
        Leg::Udp(SocketAddr::from(([10, 0, 0, 1], p)))
    }

    #[test]
    fn two_udp_sources_latch_and_a_third_is_dropped() {
        let mut r = Relays::default();
        r.grant(7, [1; TOKEN_LEN], Ts(0)).unwrap();
        assert_eq!(r.route(7, u(1), 80, Ts(0), 10_000), Err(Drop::NoPeerLeg));
        assert_eq!(r.route(7, u(2), 80, Ts(0), 10_000), Ok(u(1)));
        assert_eq!(r.route(7, u(1), 80, Ts(0), 10_000), Ok(u(2)));
        assert_eq!(r.route(7, u(3), 80, Ts(0), 10_000), Err(Drop::ThirdSource));
        assert_eq!(r.route(8, u(1), 80, Ts(0), 10_000), Err(Drop::UnknownCall));
    }

    #[test]
    fn tcp_legs_need_the_token() {
        let mut r = Relays::default();
        r.grant(7, [1; TOKEN_LEN], Ts(0)).unwrap();
        assert!(!r.admit_tcp(7, &[2; TOKEN_LEN], ConnId(5), Ts(0)));
        assert_eq!(
            r.route(7, Leg::Tcp(ConnId(5)), 10, Ts(0), 1000),
            Err(Drop::ThirdSource)
        );
        assert!(r.admit_tcp(7, &[1; TOKEN_LEN], ConnId(5), Ts(0)));
        assert_eq!(r.route(7, u(1), 10, Ts(0), 1000), Ok(Leg::Tcp(ConnId(5))));
    }

    #[test]
    fn bandwidth_cap_applies_per_second_window() {
        let mut r = Relays::default();
        r.grant(7, [1; TOKEN_LEN], Ts(0)).unwrap();
        r.route(7, u(1), 0, Ts(0), 100).ok();
        assert!(r.route(7, u(2), 60, Ts(0), 100).is_ok());
        assert_eq!(r.route(7, u(2), 60, Ts(1), 100), Err(Drop::OverCap));
        assert!(r.route(7, u(2), 60, Ts(Ts::NANOS_PER_SEC), 100).is_ok());
    }

    #[test]
    fn idle_relays_are_released() {
        let mut r = Relays::default();
        r.grant(7, [1; TOKEN_LEN], Ts(0)).unwrap();
        assert_eq!(r.expire(Ts(5), 10), 0);
        assert_eq!(r.expire(Ts(10), 10), 1);
        assert!(r.is_empty());
    }
}
