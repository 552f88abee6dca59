//! Authentication primitives shared by the login server, super nodes and clients
//! (PROTOCOL.md §11): the stored password verifier, the challenge–response proof, and the
//! login server's signed credential.
//!
//! - stored = Argon2id(password, salt) with the account's cost parameters (hash-alg 2), so a
//!   stolen account store resists offline guessing; the LS sends salt and parameters in
//!   `auth-challenge`, the client derives the same value.
//! - proof = HMAC-SHA-256(key = stored, message = nonce) (RFC 2104); compared in constant
//!   time.
//! - credential (format version 2): `2 | expiry u64 | node id u64 | n u8 | user | Ed25519
//!   signature (64 B)` over everything before the signature, verifiable by any super node
//!   that knows the LS public key.
//!
//! Must not: keep or log passwords; every input length is bounded.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

pub const SALT_LEN: usize = 16;
pub const NONCE_LEN: usize = 16;
pub const STORED_LEN: usize = 32;
/// PROTOCOL.md §11.3: user names are 1–64 bytes.
pub const MAX_USER_LEN: usize = 64;
pub const CREDENTIAL_VERSION: u8 = 2;
const SIGNATURE_LEN: usize = 64;

/// Argon2id cost parameters (memory in KiB, passes, lanes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl HashParams {
    /// OWASP's recommended minimum for Argon2id (19 MiB, 2 passes, 1 lane).
    pub const DEFAULT: HashParams = HashParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    /// Cheap parameters for tests and large simulations (never for real accounts).
    pub const FAST: HashParams = HashParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    /// Largest parameters a client accepts from a challenge (bounds its work and memory).
    pub const MAX: HashParams = HashParams {
        m_kib: 256 * 1024,
        t: 10,
        p: 4,
    };

    pub fn within_bounds(&self) -> bool {
        self.m_kib <= Self::MAX.m_kib && self.t <= Self::MAX.t && self.p <= Self::MAX.p
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("hash parameters rejected")]
    BadParams,
    #[error("malformed credential")]
    Malformed,
    #[error("credential signature invalid")]
    BadSignature,
}

/// The verifier the login server stores and the client derives (never the password).
pub fn stored_hash(
    password: &str,
    salt: &[u8; SALT_LEN],
    params: HashParams,
) -> Result<[u8; STORED_LEN], AuthError> {
    if !params.within_bounds() {
        return Err(AuthError::BadParams);
    }
    let p = argon2::Params::new(params.m_kib, params.t, params.p, Some(STORED_LEN))
        .map_err(|_| AuthError::BadParams)?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; STORED_LEN];
    a.hash_password_into(password.as_bytes(), salt, &mut out)
        .map_err(|_| AuthError::BadParams)?;
    Ok(out)
}

/// HMAC-SHA-256(stored, nonce).
pub fn proof(stored: &[u8; STORED_LEN], nonce: &[u8]) -> [u8; 32] {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(stored)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(nonce);
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of a received proof with the expected one.
pub fn proof_matches(stored: &[u8; STORED_LEN], nonce: &[u8], received: &[u8]) -> bool {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(stored)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(nonce);
    mac.verify_slice(received).is_ok()
}

/// The plaintext fields of a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Unix seconds.
    pub expiry: u64,
    pub node_id: u64,
    pub user: String,
}

impl Credential {
    fn signed_part(&self) -> Result<Vec<u8>, AuthError> {
        let user = self.user.as_bytes();
        if user.is_empty() || user.len() > MAX_USER_LEN {
            return Err(AuthError::Malformed);
        }
        let mut b = Vec::with_capacity(18 + user.len() + SIGNATURE_LEN);
        b.push(CREDENTIAL_VERSION);
        b.extend_from_slice(&self.expiry.to_be_bytes());
        b.extend_from_slice(&self.node_id.to_be_bytes());
        b.push(user.len() as u8);
        b.extend_from_slice(user);
        Ok(b)
    }

    /// The blob the login server hands out.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, AuthError> {
        let mut b = self.signed_part()?;
        let sig = key.sign(&b);
        b.extend_from_slice(&sig.to_bytes());
        Ok(b)
    }

    /// Reads the plaintext fields without checking the signature (a client reading its
    /// own credential's expiry).
    pub fn read_unverified(blob: &[u8]) -> Result<Credential, AuthError> {
        let (&version, rest) = blob.split_first().ok_or(AuthError::Malformed)?;
        if version != CREDENTIAL_VERSION {
            return Err(AuthError::Malformed);
        }
        let expiry = rest
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or(AuthError::Malformed)?;
        let node_id = rest
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or(AuthError::Malformed)?;
        let n = usize::from(*rest.get(16).ok_or(AuthError::Malformed)?);
        if n == 0 || n > MAX_USER_LEN {
            return Err(AuthError::Malformed);
        }
        let user = rest.get(17..17 + n).ok_or(AuthError::Malformed)?;
        let user = std::str::from_utf8(user).map_err(|_| AuthError::Malformed)?;
        if rest.len() != 17 + n + SIGNATURE_LEN {
            return Err(AuthError::Malformed);
        }
        Ok(Credential {
            expiry,
            node_id,
            user: user.to_string(),
        })
    }

    /// Checks the blob's signature with the login server's public key and returns its
    /// fields (expiry is the caller's to check against its clock).
    pub fn verify(blob: &[u8], ls_key: &VerifyingKey) -> Result<Credential, AuthError> {
        let cred = Credential::read_unverified(blob)?;
        let split = blob
            .len()
            .checked_sub(SIGNATURE_LEN)
            .ok_or(AuthError::Malformed)?;
        let (msg, sig) = blob.split_at(split);
        let sig = Signature::from_slice(sig).map_err(|_| AuthError::Malformed)?;
        ls_key
            .verify(msg, &sig)
            .map_err(|_| AuthError::BadSignature)?;
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_is_hmac_of_the_stored_hash_and_rejects_other_passwords() {
        let salt = [0x10u8; SALT_LEN];
        let nonce = [0xa0u8; NONCE_LEN];
        let stored = stored_hash("correct horse", &salt, HashParams::FAST).unwrap();
        let p = proof(&stored, &nonce);
        assert!(proof_matches(&stored, &nonce, &p));
        let wrong = stored_hash("battery staple", &salt, HashParams::FAST).unwrap();
        assert!(!proof_matches(&stored, &nonce, &proof(&wrong, &nonce)));
        assert!(!proof_matches(&stored, &[0u8; NONCE_LEN], &p));
        // Another salt gives another verifier for the same password.
        let other = stored_hash("correct horse", &[0x11; SALT_LEN], HashParams::FAST).unwrap();
        assert_ne!(stored, other);
    }

    #[test]
    fn absurd_hash_parameters_are_refused() {
        let huge = HashParams {
            m_kib: u32::MAX,
            t: 1,
            p: 1,
        };
        assert_eq!(
            stored_hash("x", &[0; SALT_LEN], huge),
            Err(AuthError::BadParams)
        );
    }

    #[test]
    fn credentials_verify_with_the_ls_key_only() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let cred = Credential {
            expiry: 1_767_225_600,
            node_id: 0x0123_4567_89ab_cdef,
            user: "alice".into(),
        };
        let blob = cred.sign(&key).unwrap();
        assert_eq!(
            Credential::verify(&blob, &key.verifying_key()),
            Ok(cred.clone())
        );
        assert_eq!(Credential::read_unverified(&blob), Ok(cred));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert_eq!(
            Credential::verify(&blob, &other),
            Err(AuthError::BadSignature)
        );
        let mut tampered = blob.clone();
        tampered[5] ^= 1; // the expiry
        assert_eq!(
            Credential::verify(&tampered, &key.verifying_key()),
            Err(AuthError::BadSignature)
        );
        for cut in 0..blob.len() {
            assert!(Credential::verify(&blob[..cut], &key.verifying_key()).is_err());
        }
    }
}
