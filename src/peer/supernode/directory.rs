//! A super node's directory (PROTOCOL.md §8.4) and lookup cache (§8.6).
//!
//! Directory: one entry per user registered here, valid `ttl` after the last `sn-register`
//! or full refresh; when the client's connection closes the entry stays, offline, until it
//! expires. Cache: entries learnt from other SNs' `search-result`s, kept
//! [`super::SuperNodeConfig::cache_s`]. Both are bounded ([`MAX_DIRECTORY`], [`MAX_CACHE`]):
//! when full, the entry closest to expiry goes first.
//! Must not: hold entries past their expiry once [`Table::expire`] ran.

use crate::peer::io::ConnId;
use crate::time::Ts;
use dissectors::skylark::FieldId;
use dissectors::skylark::object::{Object, Value};
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;

/// Directory entries (online and offline) one SN keeps.
pub const MAX_DIRECTORY: usize = 20_000;
/// Cached lookup results.
pub const MAX_CACHE: usize = 4096;

/// PROTOCOL.md §5.3 presence status.
pub const STATUS_OFFLINE: u32 = 0;
pub const STATUS_ONLINE: u32 = 1;
/// Largest status value defined (do not disturb).
pub const STATUS_MAX: u32 = 3;
/// Largest nat-type value defined (UDP blocked).
pub const NAT_TYPE_MAX: u32 = 4;

/// One user's directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub status: u32,
    pub addr: Option<SocketAddr>,
    pub sn_addr: Option<SocketAddr>,
    pub nat_type: Option<u32>,
    /// The client's registered connection while it is up (directory only).
    pub conn: Option<ConnId>,
    pub expires: Ts,
}

impl Entry {
    /// The wire form: an `entry` list (user, status, addr, sn-addr, nat-type).
    pub fn to_object(&self, user: &str) -> Object {
        let mut items = vec![
            Object::str(FieldId::User, user),
            Object::u32(FieldId::Status, self.status),
        ];
        if let Some(a) = self.addr {
            items.push(Object::addr(FieldId::Addr, a));
        }
        if let Some(a) = self.sn_addr {
            items.push(Object::addr(FieldId::SnAddr, a));
        }
        if let Some(n) = self.nat_type {
            items.push(Object::u32(FieldId::NatType, n));
        }
        Object::list(FieldId::Entry, items)
    }

    /// Reads an `entry` list from another SN; `None` without a valid user.
    pub fn from_items(items: &[Object], expires: Ts) -> Option<(String, Entry)> {
        let mut user = None;
        let mut e = Entry {
            status: STATUS_OFFLINE,
            addr: None,
            sn_addr: None,
            nat_type: None,
            conn: None,
            expires,
        };
        for o in items {
            match (o.id, &o.value) {
                (FieldId::User, Value::Str(s)) => user = Some(s.clone()),
                (FieldId::Status, Value::U32(v)) if *v <= STATUS_MAX => e.status = *v,
                (FieldId::Addr, Value::Addr(a)) => e.addr = Some(*a),
                (FieldId::SnAddr, Value::Addr(a)) => e.sn_addr = Some(*a),
                (FieldId::NatType, Value::U32(v)) if *v <= NAT_TYPE_MAX => e.nat_type = Some(*v),
                _ => {}
            }
        }
        let user = user.filter(|u| crate::peer::accounts::valid_user(u))?;
        Some((user, e))
    }
}

/// A bounded user → entry map with expiry.
#[derive(Debug)]
pub struct Table {
    map: HashMap<String, Entry>,
    max: usize,
}

impl Table {
    pub fn new(max: usize) -> Table {
        Table {
            map: HashMap::default(),
            max,
        }
    }

    pub fn get(&self, user: &str, now: Ts) -> Option<&Entry> {
        self.map.get(user).filter(|e| now < e.expires)
    }

    pub fn get_mut(&mut self, user: &str) -> Option<&mut Entry> {
        self.map.get_mut(user)
    }

    /// Inserts or replaces; evicts the entry nearest to expiry when full.
    pub fn insert(&mut self, user: &str, e: Entry) {
        if !self.map.contains_key(user) && self.map.len() >= self.max {
            let victim = self
                .map
                .iter()
                .min_by_key(|(_, e)| (e.conn.is_some(), e.expires))
                .map(|(u, _)| u.clone());
            if let Some(v) = victim {
                self.map.remove(&v);
            }
        }
        self.map.insert(user.to_owned(), e);
    }

    pub fn remove(&mut self, user: &str) -> Option<Entry> {
        self.map.remove(user)
    }

    /// Drops expired entries.
    pub fn expire(&mut self, now: Ts) {
        self.map.retain(|_, e| now < e.expires);
    }

    pub fn next_expiry(&self) -> Option<Ts> {
        self.map.values().map(|e| e.expires).min()
    }

    /// Users whose entry names this connection.
    pub fn users_on(&self, conn: ConnId) -> impl Iterator<Item = &str> {
        self.map
            .iter()
            .filter(move |(_, e)| e.conn == Some(conn))
            .map(|(u, _)| u.as_str())
    }

    /// Registered users with a live connection.
    pub fn online(&self) -> usize {
        self.map.values().filter(|e| e.conn.is_some()).count()
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

    fn e(expires: i64, conn: Option<u64>) -> Entry {
        Entry {
            status: STATUS_ONLINE,
            addr: Some("10.0.0.1:1000".parse().unwrap()),
            sn_addr: Some("10.0.0.9:33033".parse().unwrap()),
            nat_type: Some(2),
            conn: conn.map(ConnId),
            expires: Ts(expires),
        }
    }

    #[test]
    fn entry_round_trips_through_its_wire_list() {
        let x = e(100, None);
        let Value::List(items) = x.to_object("alice").value else {
            panic!()
        };
        assert_eq!(
            Entry::from_items(&items, Ts(100)),
            Some(("alice".into(), x))
        );
        assert_eq!(Entry::from_items(&[], Ts(1)), None);
    }

    #[test]
    fn full_table_evicts_offline_entries_nearest_expiry_first() {
        let mut t = Table::new(2);
        t.insert("a", e(50, Some(1)));
        t.insert("b", e(100, None));
        t.insert("c", e(10, Some(2)));
        assert!(t.get("a", Ts(0)).is_some());
        assert!(t.get("b", Ts(0)).is_none(), "offline entry goes first");
        assert!(t.get("c", Ts(0)).is_some());
    }

    #[test]
    fn expired_entries_are_invisible_then_dropped() {
        let mut t = Table::new(10);
        t.insert("a", e(50, None));
        assert!(t.get("a", Ts(49)).is_some());
        assert!(t.get("a", Ts(50)).is_none());
        t.expire(Ts(50));
        assert!(t.is_empty());
    }
}
