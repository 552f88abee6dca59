//! Signalling routes of a forwarding super node (PROTOCOL.md §8.7): call id → the two
//! connections the call's messages travel between, kept until the call ends (bye, reject,
//! cancel, or a leg closing) plus a linger time.
//!
//! Guarantees: a message is forwarded only to the other leg of its call's route; bounded by
//! [`MAX_CALLS`]. Must not: rewrite forwarded messages.

use crate::peer::io::ConnId;
use crate::time::Ts;
use rustc_hash::FxHashMap as HashMap;

/// Calls one SN forwards at once.
pub const MAX_CALLS: usize = 4096;

#[derive(Debug)]
pub struct Route {
    /// [caller side, callee side].
    pub legs: [ConnId; 2],
    /// The invite's transaction id (error responses carry no call id, §5.2).
    pub invite_txn: u32,
    pub ended: Option<Ts>,
}

#[derive(Debug, Default)]
pub struct Calls {
    map: HashMap<u32, Route>,
}

impl Calls {
    /// Records a route; false when the table is full or the call id is taken.
    pub fn open(&mut self, call_id: u32, caller: ConnId, callee: ConnId, txn: u32) -> bool {
        if self.map.len() >= MAX_CALLS || self.map.contains_key(&call_id) {
            return false;
        }
        self.map.insert(
            call_id,
            Route {
                legs: [caller, callee],
                invite_txn: txn,
                ended: None,
            },
        );
        true
    }

    pub fn contains(&self, call_id: u32) -> bool {
        self.map.contains_key(&call_id)
    }

    /// The other leg of `call_id` seen from `from`; `None` if `from` is not a leg.
    pub fn other(&self, call_id: u32, from: ConnId) -> Option<ConnId> {
        let r = self.map.get(&call_id)?;
        match r.legs {
            [a, b] if a == from => Some(b),
            [a, b] if b == from => Some(a),
            _ => None,
        }
    }

    /// The call whose invite (transaction `txn`) went out on `conn`, and its other leg.
    pub fn by_invite(&self, conn: ConnId, txn: u32) -> Option<(u32, ConnId)> {
        self.map.iter().find_map(|(id, r)| {
            (r.invite_txn == txn && r.legs[1] == conn && r.ended.is_none())
                .then_some((*id, r.legs[0]))
        })
    }

    /// Starts the linger time (the first end counts).
    pub fn end(&mut self, call_id: u32, now: Ts) {
        if let Some(r) = self.map.get_mut(&call_id) {
            r.ended.get_or_insert(now);
        }
    }

    pub fn conn_closed(&mut self, conn: ConnId, now: Ts) {
        for r in self.map.values_mut() {
            if r.legs.contains(&conn) {
                r.ended.get_or_insert(now);
            }
        }
    }

    pub fn expire(&mut self, now: Ts, linger: i64) {
        self.map
            .retain(|_, r| r.ended.is_none_or(|t| now.since(t) < linger));
    }

    pub fn next_expiry(&self, linger: i64) -> Option<Ts> {
        self.map
            .values()
            .filter_map(|r| r.ended.map(|t| t.add_nanos(linger)))
            .min()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_go_to_the_other_leg_only_and_routes_linger_after_the_end() {
        let mut c = Calls::default();
        assert!(c.open(9, ConnId(1), ConnId(2), 5));
        assert!(!c.open(9, ConnId(3), ConnId(4), 6), "call id taken");
        assert_eq!(c.other(9, ConnId(1)), Some(ConnId(2)));
        assert_eq!(c.other(9, ConnId(2)), Some(ConnId(1)));
        assert_eq!(c.other(9, ConnId(3)), None);
        assert_eq!(c.by_invite(ConnId(2), 5), Some((9, ConnId(1))));
        c.end(9, Ts(100));
        c.expire(Ts(129), 30);
        assert!(c.contains(9));
        c.expire(Ts(130), 30);
        assert!(c.is_empty());
    }
}
