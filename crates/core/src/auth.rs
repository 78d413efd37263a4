//! API-key checks shared by both services.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The valid API keys, kept as SHA-256 digests so that every comparison
/// takes the same time whatever the candidate's length.
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new(keys: &[SecretString]) -> ApiKeys {
        ApiKeys {
            digests: keys.iter().map(|k| digest(k.expose_secret())).collect(),
        }
    }

    /// Constant-time check of `candidate` against every key.
    pub fn is_valid(&self, candidate: &str) -> bool {
        let candidate = digest(candidate);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, key| found | key.ct_eq(&candidate))
            .into()
    }

    /// A short, non-reversible name for a key (for rate limits and audit
    /// logs, which must not hold the key itself).
    pub fn fingerprint(key: &str) -> String {
        hex::encode(&digest(key)[..8])
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_accept_only_configured_keys() {
        let keys = ApiKeys::new(&[SecretString::from("current"), SecretString::from("previous")]);
        assert!(keys.is_valid("current"));
        assert!(keys.is_valid("previous"));
        for bad in ["", "curren", "current ", "CURRENT", "currentx"] {
            assert!(!keys.is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_are_stable_and_do_not_contain_the_key() {
        assert_eq!(ApiKeys::fingerprint("abc"), ApiKeys::fingerprint("abc"));
        assert_ne!(ApiKeys::fingerprint("abc"), ApiKeys::fingerprint("abd"));
        assert_eq!(ApiKeys::fingerprint("abc").len(), 16);
    }
}
