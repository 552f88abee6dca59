//! The TCP connections a serving role holds (login server, home server, super node): each
//! role's own per-connection state, plus when the connection last carried data, so that
//! every role admits, tracks and idles out connections the same way.
//!
//! Guarantees: at most [`MAX_CONNS`] connections are admitted (a connection accepted past
//! that is closed at once through the [`Outbox`]); iteration order, and so the order in
//! which idle connections are reported, depends only on the calls made (no random hasher),
//! so runs with the same seed close connections in the same order.
//! Must not: close or open connections itself (the role does, through its outbox).

use super::io::ConnId;
use super::outbox::Outbox;
use crate::time::Ts;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;

/// Connections a role holds at once; more are closed on accept.
pub const MAX_CONNS: usize = 4096;

struct Held<C> {
    state: C,
    last_activity: Ts,
}

/// A role's connections; see the module docs.
pub struct Conns<C> {
    map: FxHashMap<ConnId, Held<C>>,
}

impl<C> Default for Conns<C> {
    fn default() -> Self {
        Conns {
            map: FxHashMap::default(),
        }
    }
}

impl<C> Conns<C> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether one more connection may be held.
    pub fn has_room(&self) -> bool {
        self.map.len() < MAX_CONNS
    }

    /// An accepted connection: held with `state` when there is room, otherwise closed at
    /// once through `out`. Returns whether it was admitted.
    pub fn accept(
        &mut self,
        out: &mut Outbox,
        now: Ts,
        conn: ConnId,
        (local, remote): (SocketAddr, SocketAddr),
        state: C,
    ) -> bool {
        let admitted = out.accept(conn, local, remote, self.has_room());
        if admitted {
            self.insert(now, conn, state);
        }
        admitted
    }

    /// A connection the role opens itself (it checks [`has_room`](Self::has_room) first).
    pub fn insert(&mut self, now: Ts, conn: ConnId, state: C) {
        let held = Held {
            state,
            last_activity: now,
        };
        self.map.insert(conn, held);
    }

    pub fn get(&self, conn: &ConnId) -> Option<&C> {
        self.map.get(conn).map(|h| &h.state)
    }

    pub fn get_mut(&mut self, conn: &ConnId) -> Option<&mut C> {
        self.map.get_mut(conn).map(|h| &mut h.state)
    }

    /// The connection's state, noting that it carried something at `now`.
    pub fn touch(&mut self, conn: &ConnId, now: Ts) -> Option<&mut C> {
        let held = self.map.get_mut(conn)?;
        held.last_activity = now;
        Some(&mut held.state)
    }

    pub fn remove(&mut self, conn: &ConnId) -> Option<C> {
        self.map.remove(conn).map(|h| h.state)
    }

    /// When the quietest connection will have been silent for `idle_ns`; `None` without
    /// connections.
    pub fn next_idle(&self, idle_ns: i64) -> Option<Ts> {
        self.map
            .values()
            .map(|h| h.last_activity.add_nanos(idle_ns))
            .min()
    }

    /// The connections silent for at least `idle_ns` at `now`.
    pub fn idle_at(&self, now: Ts, idle_ns: i64) -> Vec<ConnId> {
        self.map
            .iter()
            .filter(|(_, h)| now.since(h.last_activity) >= idle_ns)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::truth::Role;

    fn ends() -> (SocketAddr, SocketAddr) {
        (
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:4000".parse().unwrap(),
        )
    }

    fn ts(s: i64) -> Ts {
        Ts(s * 1_000_000_000)
    }

    #[test]
    fn admits_up_to_the_cap_and_refuses_past_it() {
        let mut out = Outbox::new("test", Role::Home);
        let mut conns = Conns::default();
        for i in 0..MAX_CONNS as u64 {
            assert!(conns.accept(&mut out, ts(0), ConnId(i), ends(), i));
        }
        assert!(!conns.has_room());
        assert!(!conns.accept(&mut out, ts(0), ConnId(u64::MAX), ends(), 0));
        assert_eq!(conns.len(), MAX_CONNS);
        assert_eq!(conns.get(&ConnId(u64::MAX)), None);
        assert_eq!(conns.remove(&ConnId(7)), Some(7));
        assert!(conns.has_room());
    }

    #[test]
    fn activity_postpones_the_idle_close() {
        let mut conns = Conns::default();
        assert_eq!(conns.next_idle(30), None);
        let idle = 30 * 1_000_000_000;
        conns.insert(ts(0), ConnId(1), "quiet");
        conns.insert(ts(0), ConnId(2), "busy");
        assert_eq!(conns.touch(&ConnId(2), ts(20)).copied(), Some("busy"));
        assert_eq!(conns.touch(&ConnId(3), ts(20)), None);
        assert_eq!(conns.next_idle(idle), Some(ts(30)));
        assert_eq!(conns.idle_at(ts(29), idle), []);
        assert_eq!(conns.idle_at(ts(30), idle), [ConnId(1)]);
        conns.remove(&ConnId(1));
        assert_eq!(conns.next_idle(idle), Some(ts(50)));
        assert_eq!(conns.idle_at(ts(50), idle), [ConnId(2)]);
    }
}
