//! The client's persistent state (PROTOCOL.md §8.1): the host cache of super node addresses
//! (at most [`MAX_HOST_CACHE`]), the node id chosen at install, and the last credential the
//! login server issued, saved in one text file so a restart skips AUTH while the credential
//! is valid.
//!
//! File format (`<state_dir>/client-state.txt`, UTF-8, one record per line, `#` comments):
//!
//! ```text
//! # skylark client state v1
//! node-id 0123456789abcdef
//! credential 1767225600 02...hex blob...
//! sn 192.0.2.1:33033
//! sn [2001:db8::1]:40000
//! ```
//!
//! Guarantees: loading never trusts the file — unknown lines are errors, sizes are bounded
//! (the file is read at most [`MAX_STATE_FILE`] bytes, the cache keeps the first
//! [`MAX_HOST_CACHE`] distinct entries). Must not: touch the filesystem except in
//! [`ClientState::load`] / [`ClientState::save`], which the driver calls.

use crate::peer::PeerError;
use dissectors::skylark::MAX_BLOB_LEN;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// PROTOCOL.md §8.9: host-cache size 200 entries.
pub const MAX_HOST_CACHE: usize = 200;
/// A state file larger than this is refused (200 addresses plus a credential fit in 16 KiB).
pub const MAX_STATE_FILE: u64 = 64 * 1024;
/// The file name inside the state directory.
pub const STATE_FILE: &str = "client-state.txt";

/// Super node addresses in preference order (most recently confirmed first), bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCache {
    entries: Vec<SocketAddr>,
}

impl HostCache {
    pub fn entries(&self) -> &[SocketAddr] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an address not yet known; ignored when the cache is full (old entries that
    /// answered before are worth more than fresh hearsay).
    pub fn add(&mut self, a: SocketAddr) {
        if !self.entries.contains(&a) && self.entries.len() < MAX_HOST_CACHE {
            self.entries.push(a);
        }
    }

    /// Moves a confirmed-live SN to the front (evicting the last entry when needed).
    pub fn promote(&mut self, a: SocketAddr) {
        self.entries.retain(|e| *e != a);
        self.entries.insert(0, a);
        self.entries.truncate(MAX_HOST_CACHE);
    }

    pub fn remove(&mut self, a: SocketAddr) {
        self.entries.retain(|e| *e != a);
    }
}

/// A credential as the client keeps it: the opaque signed blob and its expiry (Unix s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedCredential {
    pub expiry: u64,
    pub blob: Vec<u8>,
}

/// Everything the client persists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientState {
    pub node_id: Option<u64>,
    pub credential: Option<SavedCredential>,
    pub host_cache: HostCache,
}

fn bad(path: &Path, line: usize, reason: &str) -> PeerError {
    PeerError::BadState {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 2 * MAX_BLOB_LEN {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn hex_encode(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

impl ClientState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Parses the text form (see the module docs).
    pub fn parse(text: &str, path: &Path) -> Result<ClientState, PeerError> {
        let mut st = ClientState::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut w = line.split_whitespace();
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("node-id"), Some(id), None, None) => {
                    let id = u64::from_str_radix(id, 16).map_err(|_| bad(path, n, "node-id"))?;
                    st.node_id = Some(id);
                }
                (Some("credential"), Some(exp), Some(blob), None) => {
                    let expiry = exp.parse().map_err(|_| bad(path, n, "expiry"))?;
                    let blob = hex_decode(blob).ok_or_else(|| bad(path, n, "credential hex"))?;
                    st.credential = Some(SavedCredential { expiry, blob });
                }
                (Some("sn"), Some(a), None, None) => {
                    let a = a.parse().map_err(|_| bad(path, n, "sn address"))?;
                    st.host_cache.add(a);
                }
                _ => return Err(bad(path, n, "unknown record")),
            }
        }
        Ok(st)
    }

    /// The text form written by [`ClientState::save`].
    pub fn to_text(&self) -> String {
        let mut s = String::from("# skylark client state v1\n");
        if let Some(id) = self.node_id {
            s.push_str(&format!("node-id {id:016x}\n"));
        }
        if let Some(c) = &self.credential {
            s.push_str(&format!(
                "credential {} {}\n",
                c.expiry,
                hex_encode(&c.blob)
            ));
        }
        for a in self.host_cache.entries() {
            s.push_str(&format!("sn {a}\n"));
        }
        s
    }

    /// Reads `<dir>/client-state.txt`; a missing file is an empty state (first start).
    pub fn load(dir: &Path) -> Result<ClientState, PeerError> {
        let path = Self::path(dir);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ClientState::default());
            }
            Err(source) => return Err(PeerError::Io { path, source }),
        };
        let mut text = String::new();
        file.take(MAX_STATE_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|source| PeerError::Io {
                path: path.clone(),
                source,
            })?;
        if text.len() as u64 > MAX_STATE_FILE {
            return Err(bad(&path, 0, "file too large"));
        }
        Self::parse(&text, &path)
    }

    /// Writes the state atomically (temporary file, then rename), creating `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), PeerError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PeerError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, self.to_text()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cache_is_bounded_deduplicated_and_promotes_to_front() {
        let mut hc = HostCache::default();
        for i in 0..300u32 {
            hc.add(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 33033)));
        }
        hc.add(sa("10.0.0.0:33033"));
        assert_eq!(hc.len(), MAX_HOST_CACHE);
        hc.promote(sa("192.0.2.9:1"));
        assert_eq!(hc.entries()[0], sa("192.0.2.9:1"));
        assert_eq!(hc.len(), MAX_HOST_CACHE);
    }

    #[test]
    fn save_then_load_round_trips_and_missing_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("p2ptrace-hc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(ClientState::load(&dir).unwrap(), ClientState::default());
        let mut st = ClientState {
            node_id: Some(0x0123_4567_89ab_cdef),
            credential: Some(SavedCredential {
                expiry: 1_767_225_600,
                blob: vec![2, 0, 0xff],
            }),
            host_cache: HostCache::default(),
        };
        st.host_cache.add(sa("192.0.2.1:33033"));
        st.host_cache.add(sa("[2001:db8::1]:40000"));
        st.save(&dir).unwrap();
        assert_eq!(ClientState::load(&dir).unwrap(), st);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_records_and_bad_hex_are_refused() {
        let p = Path::new("x");
        assert!(ClientState::parse("bogus 1\n", p).is_err());
        assert!(ClientState::parse("credential 5 abc\n", p).is_err());
        assert!(ClientState::parse("sn not-an-addr\n", p).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = ClientState::parse(&text, Path::new("x"));
        }

        #[test]
        fn text_round_trip(id in any::<u64>(), exp in any::<u64>(),
                           blob in proptest::collection::vec(any::<u8>(), 1..64),
                           ports in proptest::collection::vec(1u16.., 0..10)) {
            let mut st = ClientState {
                node_id: Some(id),
                credential: Some(SavedCredential { expiry: exp, blob }),
                host_cache: HostCache::default(),
            };
            for p in ports {
                st.host_cache.add(SocketAddr::from(([127, 0, 0, 1], p)));
            }
            prop_assert_eq!(ClientState::parse(&st.to_text(), Path::new("x")).unwrap(), st);
        }
    }
}
