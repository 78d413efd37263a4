//! The API's signed asset URLs: `GET /v1/assets/{key}?expires=…&sig=…`,
//! `sig` = hex HMAC-SHA256(asset-URL key, `asset:{key}:{expires}`). The
//! asset-URL key is derived from `HITL_SECRET` with HKDF under its own
//! `info`, like the approval and callback tokens of
//! [`myloware_core::signing`]: an asset signature is never an approval or
//! callback token, and the reverse. Minting uses the current secret;
//! verification also takes `HITL_SECRET_PREVIOUS` during a rotation.

use hmac::{Hmac, KeyInit, Mac};
use myloware_core::signing::derive_key;
use sha2::Sha256;

use crate::AssetKey;

/// HKDF `info` of the key of asset URLs.
pub(crate) const ASSET_URL_INFO: &[u8] = b"myloware/v1/asset-url";

/// The keys of asset URLs, derived once from the HITL secrets (current
/// first). Never printed.
pub struct UrlKeys(Vec<[u8; 32]>);

impl std::fmt::Debug for UrlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UrlKeys([REDACTED; {}])", self.0.len())
    }
}

impl UrlKeys {
    /// The keys of `secrets` (the current one first).
    pub fn derive(secrets: &[&[u8]]) -> UrlKeys {
        UrlKeys(secrets.iter().map(|s| derive_key(s, ASSET_URL_INFO)).collect())
    }

    /// The hex signature of `key` until `expires` (Unix seconds), with the
    /// current secret.
    pub fn sign(&self, key: &AssetKey, expires: i64) -> String {
        let current = self.0.first().expect("at least the current secret");
        hex::encode(mac(current, key, &expires.to_string()).finalize().into_bytes())
    }

    /// Whether `sig` signs `key` until `expires`, and `expires` is not past
    /// at `now`. Every key is checked, so timing does not say which matched.
    pub fn verify(&self, key: &AssetKey, expires: &str, sig: &str, now: i64) -> bool {
        let Ok(until) = expires.parse::<i64>() else {
            return false;
        };
        let Ok(given) = hex::decode(sig) else { return false };
        if until < now {
            return false;
        }
        self.0.iter().fold(false, |ok, secret| {
            ok | mac(secret, key, expires).verify_slice(&given).is_ok()
        })
    }
}

fn mac(secret: &[u8; 32], key: &AssetKey, expires: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in [b"asset:", key.as_str().as_bytes(), b":", expires.as_bytes()] {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use myloware_core::signing;

    use super::*;

    fn key(file: &str) -> AssetKey {
        AssetKey::from_parts("aismr", "run_a", file).unwrap()
    }

    #[test]
    fn a_signature_binds_key_expiry_and_secret() {
        let keys = UrlKeys::derive(&[b"current"]);
        let now = 1_700_000_000;
        let sig = keys.sign(&key("render-0.mp4"), now + 60);
        let exp = (now + 60).to_string();
        assert!(keys.verify(&key("render-0.mp4"), &exp, &sig, now));
        assert!(!keys.verify(&key("render-1.mp4"), &exp, &sig, now), "other key");
        assert!(
            !keys.verify(&key("render-0.mp4"), &(now + 61).to_string(), &sig, now),
            "other expiry"
        );
        assert!(!keys.verify(&key("render-0.mp4"), &exp, &sig, now + 61), "expired");
        assert!(!UrlKeys::derive(&[b"other"]).verify(&key("render-0.mp4"), &exp, &sig, now));
        for bad in ["", "zz", &sig[..10], &format!("{sig}00")] {
            assert!(!keys.verify(&key("render-0.mp4"), &exp, bad, now), "{bad:?}");
        }
        for bad in ["", "soon", "1e9", " 1700000060"] {
            assert!(!keys.verify(&key("render-0.mp4"), bad, &sig, now), "{bad:?}");
        }
    }

    #[test]
    fn a_rotation_keeps_urls_minted_before_it() {
        let before = UrlKeys::derive(&[b"old"]).sign(&key("render-0.mp4"), 2_000_000_000);
        let rotated = UrlKeys::derive(&[b"new", b"old"]);
        assert!(rotated.verify(&key("render-0.mp4"), "2000000000", &before, 0));
        assert_ne!(
            rotated.sign(&key("render-0.mp4"), 2_000_000_000),
            before,
            "minted with the new one"
        );
    }

    /// An approval or callback token over the same text is not an asset
    /// signature: each purpose has its own derived key.
    #[test]
    fn asset_signatures_are_keyed_apart_from_other_tokens() {
        let secret: &[u8] = b"shared-secret";
        let keys = UrlKeys::derive(&[secret]);
        let key = key("render-0.mp4");
        let callback = signing::callback_token(secret, "asset", &format!("{key}:2000000000"));
        assert!(!keys.verify(&key, "2000000000", &callback, 0));
        let hitl = signing::hitl_token(secret, "asset", key.as_str(), 2_000_000_000);
        let (_, hitl_sig) = hitl.split_once('.').unwrap();
        assert!(!keys.verify(&key, "2000000000", hitl_sig, 0));
        assert_ne!(
            derive_key(secret, ASSET_URL_INFO),
            derive_key(secret, b"myloware/v1/hitl-approval-token")
        );
    }
}
