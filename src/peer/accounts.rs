//! The login server's state on disk (PROTOCOL.md §11.1): its Ed25519 signing key, the secret
//! that derives decoy salts for unknown users, and one record per account (salt, Argon2id
//! verifier, cost parameters, buddy list).
//!
//! Format: one TOML file, `login-server.toml` in the state directory, written with mode
//! 0600 (it holds the signing key and the verifiers), replaced atomically (temporary file +
//! rename):
//!
//! ```toml
//! format = 1
//! signing_key = "<64 hex>"      # Ed25519 secret key (RFC 8032 seed)
//! decoy_secret = "<64 hex>"     # derives the salt answered for unknown users
//!
//! [[account]]
//! user = "alice"
//! salt = "<32 hex>"
//! stored = "<64 hex>"           # Argon2id(password, salt), hash-alg 2
//! m_kib = 19456
//! t = 2
//! p = 1
//! buddies = ["bob", "carol"]
//! ```
//!
//! Guarantees: a password is never stored (only the verifier); every table is bounded
//! ([`MAX_ACCOUNTS`], [`MAX_BUDDIES`], [`MAX_STATE_BYTES`]); a malformed file is an error,
//! never a panic. Must not: do I/O anywhere but [`AccountStore::load`] / [`AccountStore::save`].

use super::auth::{self, HashParams, MAX_USER_LEN, SALT_LEN, STORED_LEN};
use super::error::PeerError;
use ed25519_dalek::SigningKey;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Accounts one login server holds.
pub const MAX_ACCOUNTS: usize = 100_000;
/// Buddies per account (PROTOCOL.md §4.3: MAX_LIST_ITEMS).
pub const MAX_BUDDIES: usize = 256;
/// Largest state file read back.
pub const MAX_STATE_BYTES: u64 = 64 << 20;
/// State file name inside the state directory.
pub const STATE_FILE: &str = "login-server.toml";
const FORMAT: u32 = 1;

/// One account: never the password, only what verifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub salt: [u8; SALT_LEN],
    pub stored: [u8; STORED_LEN],
    pub params: HashParams,
    pub buddies: Vec<String>,
}

/// The login server's persistent state.
#[derive(Clone)]
pub struct AccountStore {
    pub signing_key: SigningKey,
    pub decoy_secret: [u8; 32],
    accounts: BTreeMap<String, Account>,
}

impl std::fmt::Debug for AccountStore {
    // Keeps the key and verifiers out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountStore")
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

/// PROTOCOL.md §4.4: user names are 1–64 bytes without control characters.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}

impl AccountStore {
    /// A fresh store with the given key material (from the server's seeded RNG).
    pub fn new(signing_key: [u8; 32], decoy_secret: [u8; 32]) -> AccountStore {
        AccountStore {
            signing_key: SigningKey::from_bytes(&signing_key),
            decoy_secret,
            accounts: BTreeMap::new(),
        }
    }

    pub fn get(&self, user: &str) -> Option<&Account> {
        self.accounts.get(user)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Adds or replaces an account: derives the verifier with `params` (slow by design).
    pub fn add(
        &mut self,
        user: &str,
        password: &str,
        salt: [u8; SALT_LEN],
        params: HashParams,
        buddies: &[String],
    ) -> Result<(), PeerError> {
        if !valid_user(user) {
            return Err(PeerError::Config(format!("invalid user name {user:?}")));
        }
        if buddies.len() > MAX_BUDDIES || !buddies.iter().all(|b| valid_user(b)) {
            return Err(PeerError::Config(format!("invalid buddy list for {user}")));
        }
        if self.accounts.len() >= MAX_ACCOUNTS && !self.accounts.contains_key(user) {
            return Err(PeerError::Config(format!(
                "more than {MAX_ACCOUNTS} accounts"
            )));
        }
        let stored = auth::stored_hash(password, &salt, params)
            .map_err(|e| PeerError::Config(format!("account {user}: {e}")))?;
        self.accounts.insert(
            user.to_owned(),
            Account {
                salt,
                stored,
                params,
                buddies: buddies.to_vec(),
            },
        );
        Ok(())
    }

    /// The salt answered for a user without an account: stable per user and server, so
    /// repeated hellos cannot tell a decoy from a real account (PROTOCOL.md §8.3).
    pub fn decoy_salt(&self, user: &str) -> [u8; SALT_LEN] {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.decoy_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"skylark decoy salt\0");
        mac.update(user.as_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&full[..SALT_LEN]);
        salt
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads `dir/login-server.toml`; `Ok(None)` when it does not exist.
    pub fn load(dir: &Path) -> Result<Option<AccountStore>, PeerError> {
        let path = Self::path(dir);
        let io = |source| PeerError::Io {
            path: path.clone(),
            source,
        };
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let bad = |reason: String| PeerError::BadState {
            path: path.clone(),
            reason,
        };
        if meta.len() > MAX_STATE_BYTES {
            return Err(bad(format!("larger than {MAX_STATE_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let file: StateFile = toml::from_str(&text)
            .map_err(|e| bad(crate::peer::scenario::toml_error_line(&e, Some(&text))))?;
        Self::from_file(file).map(Some).map_err(bad)
    }

    fn from_file(file: StateFile) -> Result<AccountStore, String> {
        if file.format != FORMAT {
            return Err(format!("unsupported format {}", file.format));
        }
        if file.account.len() > MAX_ACCOUNTS {
            return Err(format!("more than {MAX_ACCOUNTS} accounts"));
        }
        let mut store = AccountStore::new(
            unhex_array(&file.signing_key).ok_or("signing_key: 64 hex digits")?,
            unhex_array(&file.decoy_secret).ok_or("decoy_secret: 64 hex digits")?,
        );
        for a in file.account {
            if !valid_user(&a.user) {
                return Err(format!("invalid user name {:?}", a.user));
            }
            if a.buddies.len() > MAX_BUDDIES || !a.buddies.iter().all(|b| valid_user(b)) {
                return Err(format!("{}: invalid buddy list", a.user));
            }
            let params = HashParams {
                m_kib: a.m_kib,
                t: a.t,
                p: a.p,
            };
            if !params.within_bounds() {
                return Err(format!("{}: hash parameters out of bounds", a.user));
            }
            let account = Account {
                salt: unhex_array(&a.salt).ok_or("salt: 32 hex digits")?,
                stored: unhex_array(&a.stored).ok_or("stored: 64 hex digits")?,
                params,
                buddies: a.buddies,
            };
            if store.accounts.insert(a.user.clone(), account).is_some() {
                return Err(format!("duplicate account {:?}", a.user));
            }
        }
        Ok(store)
    }

    /// Writes `dir/login-server.toml` (mode 0600) atomically, creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<(), PeerError> {
        let path = Self::path(dir);
        let io = |source| PeerError::Io {
            path: path.clone(),
            source,
        };
        let file = StateFile {
            format: FORMAT,
            signing_key: hex(&self.signing_key.to_bytes()),
            decoy_secret: hex(&self.decoy_secret),
            account: self
                .accounts
                .iter()
                .map(|(user, a)| AccountRecord {
                    user: user.clone(),
                    salt: hex(&a.salt),
                    stored: hex(&a.stored),
                    m_kib: a.params.m_kib,
                    t: a.params.t,
                    p: a.params.p,
                    buddies: a.buddies.clone(),
                })
                .collect(),
        };
        let text = toml::to_string(&file).map_err(|e| PeerError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        write_private(&tmp, text.as_bytes()).map_err(|source| PeerError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

/// Creates (or truncates) a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path)?;
        // `mode` only applies at creation: tighten a file left by an older run too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut f = opts.open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    signing_key: String,
    decoy_secret: String,
    #[serde(default)]
    account: Vec<AccountRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRecord {
    user: String,
    salt: String,
    stored: String,
    m_kib: u32,
    t: u32,
    p: u32,
    #[serde(default)]
    buddies: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> AccountStore {
        let mut s = AccountStore::new([1; 32], [2; 32]);
        s.add(
            "alice",
            "correct horse",
            [0x10; SALT_LEN],
            HashParams::FAST,
            &["bob".to_string()],
        )
        .unwrap();
        s
    }

    #[test]
    fn saved_store_loads_back_identical_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let s = store();
        s.save(dir.path()).unwrap();
        let back = AccountStore::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.get("alice"), s.get("alice"));
        assert_eq!(back.signing_key.to_bytes(), s.signing_key.to_bytes());
        assert_eq!(back.decoy_secret, s.decoy_secret);
        let text = std::fs::read_to_string(AccountStore::path(dir.path())).unwrap();
        assert!(
            !text.contains("correct horse"),
            "password must never be stored"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(AccountStore::path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn missing_file_is_none_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(AccountStore::load(dir.path()).unwrap().is_none());
        std::fs::write(
            AccountStore::path(dir.path()),
            "format = 1\nsigning_key = 3\n",
        )
        .unwrap();
        let e = AccountStore::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("TOML line 2, column 15: invalid type"), "{e}");
        std::fs::write(AccountStore::path(dir.path()), "format = \n").unwrap();
        let e = AccountStore::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("TOML line 1, column 10"), "{e}");
        std::fs::write(
            AccountStore::path(dir.path()),
            format!(
                "format = 1\nsigning_key = \"{}\"\ndecoy_secret = \"zz\"\n",
                "00".repeat(32)
            ),
        )
        .unwrap();
        assert!(AccountStore::load(dir.path()).is_err());
    }

    #[test]
    fn decoy_salt_is_stable_per_user_and_differs_between_users() {
        let s = store();
        assert_eq!(s.decoy_salt("mallory"), s.decoy_salt("mallory"));
        assert_ne!(s.decoy_salt("mallory"), s.decoy_salt("eve"));
        let other = AccountStore::new([1; 32], [3; 32]);
        assert_ne!(s.decoy_salt("mallory"), other.decoy_salt("mallory"));
    }

    #[test]
    fn invalid_names_and_buddy_lists_are_refused() {
        let mut s = store();
        for bad in ["", "a\nb", &"x".repeat(65)] {
            assert!(
                s.add(bad, "pw", [0; SALT_LEN], HashParams::FAST, &[])
                    .is_err()
            );
        }
        let many: Vec<String> = (0..=MAX_BUDDIES).map(|i| format!("u{i}")).collect();
        assert!(
            s.add("bob", "pw", [0; SALT_LEN], HashParams::FAST, &many)
                .is_err()
        );
    }
}
