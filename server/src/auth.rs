//! Credentials: agent passwords (argon2id), API tokens (stored as SHA-256), visitor tokens
//! (signed by the server), identity verification of the host site's users, login throttling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random secret, hex-encoded.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A password for the first admin: 16 characters without look-alikes.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// API tokens are shown once and stored only as this hash.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn new_api_token() -> String {
    format!("kefu_{}", random_hex(24))
}

/// Signs and checks visitor tokens: `v1.<visitor_id>.<site_id>.<signature>`.
#[derive(Clone)]
pub struct VisitorTokens {
    key: Vec<u8>,
}

/// The identity a valid visitor token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorClaims {
    pub visitor_id: String,
    pub site_id: String,
}

impl VisitorTokens {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    pub fn issue(&self, visitor_id: &str, site_id: &str) -> String {
        let payload = format!("v1.{visitor_id}.{site_id}");
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    pub fn verify(&self, token: &str) -> Option<VisitorClaims> {
        let (payload, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.mac(payload).verify_slice(&sig).ok()?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(visitor_id), Some(site_id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(VisitorClaims {
            visitor_id: visitor_id.to_owned(),
            site_id: site_id.to_owned(),
        })
    }
}

/// Checks the host site's proof that its logged-in user is `user_id`: hex HMAC-SHA256 of the id
/// with the site's secret, compared in constant time.
pub fn verify_identity(site_secret: &str, user_id: &str, hash_hex: &str) -> bool {
    let Ok(expected) = hex::decode(hash_hex.trim()) else {
        return false;
    };
    let mut mac =
        HmacSha256::new_from_slice(site_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(user_id.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// Counts failed logins per email and per address; after `MAX_FAILURES` within the window, more
/// attempts are refused until it passes.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const MAX_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);

impl LoginThrottle {
    /// `Some(wait)` when `key` must wait before trying again.
    pub fn check(&self, key: &str) -> Option<Duration> {
        let map = self.failures.lock();
        let (count, since) = map.get(key)?;
        let elapsed = since.elapsed();
        (*count >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    pub fn fail(&self, key: &str) {
        let mut map = self.failures.lock();
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub fn succeed(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn visitor_tokens_cannot_be_forged() {
        let tokens = VisitorTokens::new(b"k1".to_vec());
        let t = tokens.issue("vis1", "site1");
        assert_eq!(
            tokens.verify(&t),
            Some(VisitorClaims {
                visitor_id: "vis1".into(),
                site_id: "site1".into()
            })
        );
        // Another visitor's id with this signature, or another key, fails.
        let forged = t.replace("vis1", "vis2");
        assert_eq!(tokens.verify(&forged), None);
        assert_eq!(VisitorTokens::new(b"k2".to_vec()).verify(&t), None);
        assert_eq!(tokens.verify("garbage"), None);
        assert_eq!(tokens.verify(""), None);
    }

    #[test]
    fn identity_hash_is_hmac_of_the_user_id() {
        let mut mac = HmacSha256::new_from_slice(b"secret").unwrap();
        mac.update(b"42");
        let good = hex::encode(mac.finalize().into_bytes());
        assert!(verify_identity("secret", "42", &good));
        assert!(!verify_identity("secret", "43", &good));
        assert!(!verify_identity("other", "42", &good));
        assert!(!verify_identity("secret", "42", "zz"));
    }

    #[test]
    fn throttle_blocks_after_five_failures() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.fail("a@b");
        }
        assert!(t.check("a@b").is_none());
        t.fail("a@b");
        assert!(t.check("a@b").is_some());
        assert!(t.check("c@d").is_none());
        t.succeed("a@b");
        assert!(t.check("a@b").is_none());
    }
}
