//! HMAC signatures: kie.ai's callback scheme, and our own tokens: the HITL
//! approval tokens and the per-run tokens that bind a provider callback URL
//! to its run. Every check is constant time and length-checked
//! (`Mac::verify_slice`).
//!
//! Both kinds of our tokens come from `HITL_SECRET`, each under its own key
//! derived with HKDF-SHA256 (RFC 5869, a distinct `info` per purpose), so a
//! token of one kind can never be presented as the other. Minting uses the
//! current secret; verification accepts the current and, during a rotation,
//! the previous one (`HITL_SECRET_PREVIOUS`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HKDF `info` of the key of HITL approval tokens.
const HITL_TOKEN_INFO: &[u8] = b"myloware/v1/hitl-approval-token";
/// HKDF `info` of the key of provider callback tokens.
const CALLBACK_TOKEN_INFO: &[u8] = b"myloware/v1/provider-callback-token";

/// A 32-byte key for `info` derived from `secret` (HKDF-SHA256, no salt).
pub fn derive_key(secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, secret)
        .expand(info, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    key
}

/// How far a webhook timestamp may be from now.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature headers missing")]
    Missing,
    #[error("timestamp is not a Unix time")]
    BadTimestamp,
    #[error("timestamp outside the {WEBHOOK_TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// kie.ai: base64(HMAC-SHA256(key, "{taskId}.{timestamp}")).
pub fn kieai_signature(key: &[u8], task_id: &str, timestamp: &str) -> String {
    BASE64.encode(
        mac(key, &[task_id.as_bytes(), b".", timestamp.as_bytes()])
            .finalize()
            .into_bytes(),
    )
}

/// Checks kie.ai's `X-Webhook-Timestamp` / `X-Webhook-Signature` for
/// `task_id` at `now` (Unix seconds).
pub fn verify_kieai(
    key: &[u8],
    task_id: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let sent: i64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    // Checked: a timestamp near i64::MIN must not overflow the difference.
    if now
        .checked_sub(sent)
        .is_none_or(|age| age.abs() > WEBHOOK_TOLERANCE_SECS)
    {
        return Err(SignatureError::Stale);
    }
    let given = BASE64.decode(signature.trim()).map_err(|_| SignatureError::Mismatch)?;
    mac(key, &[task_id.as_bytes(), b".", timestamp.as_bytes()])
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The token in a provider callback URL that binds it to `run_id` and
/// `purpose` (e.g. `clip:0`): hex HMAC-SHA256(callback key, "callback:{run_id}:{purpose}"),
/// the callback key derived from `secret` (`HITL_SECRET`).
pub fn callback_token(secret: &[u8], run_id: &str, purpose: &str) -> String {
    let key = derive_key(secret, CALLBACK_TOKEN_INFO);
    hex::encode(callback_mac(&key, run_id, purpose).finalize().into_bytes())
}

fn callback_mac(key: &[u8], run_id: &str, purpose: &str) -> HmacSha256 {
    mac(key, &[b"callback:", run_id.as_bytes(), b":", purpose.as_bytes()])
}

/// Whether `token` binds `run_id` and `purpose` under any of `secrets`
/// (the current one and, during rotation, the previous one).
pub fn verify_callback_token(secrets: &[&[u8]], run_id: &str, purpose: &str, token: &str) -> bool {
    let Ok(given) = hex::decode(token) else { return false };
    // Check every secret, so timing does not say which one matched.
    secrets.iter().fold(false, |ok, secret| {
        let key = derive_key(secret, CALLBACK_TOKEN_INFO);
        ok | callback_mac(&key, run_id, purpose).verify_slice(&given).is_ok()
    })
}

/// What a clip's callback token binds besides the run: `clip:{index}` for
/// a live run, `mock-clip:{index}` for a mock run. The token (which only we
/// can mint) thereby says which kie.ai key verifies the callback, without
/// reading the run: the public mock key never verifies a live run's clip.
pub fn clip_purpose(mode: crate::ProviderMode, index: u32) -> String {
    match mode {
        crate::ProviderMode::Live => format!("clip:{index}"),
        crate::ProviderMode::Mock => format!("mock-clip:{index}"),
    }
}

/// Whether two secrets are equal, in time independent of where they differ
/// (digests are compared, so lengths leak nothing either).
pub fn secrets_equal(expected: &[u8], given: &[u8]) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let (a, b) = (sha2::Sha256::digest(expected), sha2::Sha256::digest(given));
    a.ct_eq(&b).into()
}

/// A HITL approval token: `{exp}.{hex HMAC-SHA256(approval key, "{run_id}:{gate}:{exp}")}`,
/// the approval key derived from `secret` (`HITL_SECRET`).
pub fn hitl_token(secret: &[u8], run_id: &str, gate: &str, exp: i64) -> String {
    let exp = exp.to_string();
    let key = derive_key(secret, HITL_TOKEN_INFO);
    let sig = hitl_mac(&key, run_id, gate, &exp).finalize().into_bytes();
    format!("{exp}.{}", hex::encode(sig))
}

fn hitl_mac(key: &[u8], run_id: &str, gate: &str, exp: &str) -> HmacSha256 {
    mac(key, &[run_id.as_bytes(), b":", gate.as_bytes(), b":", exp.as_bytes()])
}

/// Whether `token` approves `gate` of `run_id` at `now` under any of
/// `secrets` (the current one and, during rotation, the previous one).
pub fn verify_hitl_token(secrets: &[&[u8]], run_id: &str, gate: &str, token: &str, now: i64) -> bool {
    let Some((exp, sig)) = token.trim().split_once('.') else {
        return false;
    };
    let Ok(expires) = exp.parse::<i64>() else { return false };
    let Ok(given) = hex::decode(sig) else { return false };
    if expires < now {
        return false;
    }
    // Check every secret, so timing does not say which one matched.
    secrets.iter().fold(false, |ok, secret| {
        let key = derive_key(secret, HITL_TOKEN_INFO);
        ok | hitl_mac(&key, run_id, gate, exp).verify_slice(&given).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"kie-signing-key";

    #[test]
    fn kieai_signatures_verify_within_tolerance() {
        let sig = kieai_signature(KEY, "task-1", "1700000000");
        assert_eq!(
            verify_kieai(KEY, "task-1", Some("1700000000"), Some(&sig), 1_700_000_100),
            Ok(())
        );
        assert_eq!(
            verify_kieai(KEY, "task-1", Some("1700000000"), Some(&sig), 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_kieai(KEY, "task-1", Some("1700000000"), Some(&sig), 1_699_999_699),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn kieai_signatures_bind_task_time_and_key() {
        let sig = kieai_signature(KEY, "task-1", "1700000000");
        let now = 1_700_000_000;
        assert_eq!(
            verify_kieai(KEY, "task-2", Some("1700000000"), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_kieai(KEY, "task-1", Some("1700000001"), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_kieai(b"other", "task-1", Some("1700000000"), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn empty_truncated_and_malformed_signatures_are_refused() {
        let sig = kieai_signature(KEY, "t", "1700000000");
        let now = 1_700_000_000;
        for bad in ["", &sig[..10], "not base64!!", "AAAA", &format!("{sig}AAAA")] {
            assert!(
                verify_kieai(KEY, "t", Some("1700000000"), Some(bad), now).is_err(),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            verify_kieai(KEY, "t", None, Some(&sig), now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_kieai(KEY, "t", Some("1700000000"), None, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_kieai(KEY, "t", Some("soon"), Some(&sig), now),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn callback_tokens_bind_run_and_purpose() {
        let token = callback_token(b"secret", "run_abc", "clip:0");
        assert!(verify_callback_token(&[b"secret"], "run_abc", "clip:0", &token));
        assert!(!verify_callback_token(&[b"secret"], "run_abd", "clip:0", &token));
        assert!(!verify_callback_token(&[b"secret"], "run_abc", "clip:1", &token));
        assert!(!verify_callback_token(&[b"secret"], "run_abc", "mock-clip:0", &token));
        assert!(!verify_callback_token(&[b"other"], "run_abc", "clip:0", &token));
        assert!(!verify_callback_token(&[], "run_abc", "clip:0", &token));
        assert!(!verify_callback_token(&[b"secret"], "run_abc", "clip:0", ""));
        assert!(!verify_callback_token(&[b"secret"], "run_abc", "clip:0", &token[..20]));
    }

    #[test]
    fn callback_tokens_survive_a_rotation() {
        let minted_before = callback_token(b"old", "run_abc", "clip:0");
        assert!(
            verify_callback_token(&[b"new", b"old"], "run_abc", "clip:0", &minted_before),
            "previous secret"
        );
        assert!(!verify_callback_token(&[b"new"], "run_abc", "clip:0", &minted_before));
    }

    /// The same secret gives unrelated keys per purpose: an approval
    /// token's MAC is not a callback token's, and neither is keyed by the
    /// secret itself (as tokens minted before the derivation were).
    #[test]
    fn hitl_and_callback_tokens_are_keyed_apart() {
        let secret: &[u8] = b"shared-secret";
        assert_ne!(
            derive_key(secret, HITL_TOKEN_INFO),
            derive_key(secret, CALLBACK_TOKEN_INFO)
        );
        // A callback token over the text an approval token signs.
        let callback = callback_token(secret, "run_a", "ideate");
        let hitl = hitl_token(secret, "run_a", "ideate", 1_700_003_600);
        let (_, hitl_sig) = hitl.split_once('.').unwrap();
        assert_ne!(callback, hitl_sig);
        assert!(!verify_callback_token(&[secret], "run_a", "ideate", hitl_sig));
        assert!(!verify_hitl_token(
            &[secret],
            "run_a",
            "ideate",
            &format!("1700003600.{callback}"),
            1_700_000_000
        ));
        // Tokens keyed by the raw secret (before this derivation) are refused.
        let raw = hex::encode(
            mac(secret, &[b"callback:", b"run_a", b":", b"clip:0"])
                .finalize()
                .into_bytes(),
        );
        assert!(!verify_callback_token(&[secret], "run_a", "clip:0", &raw));
    }

    /// RFC 5869, appendix A.1 (test case 1): the derivation is HKDF-SHA256.
    #[test]
    fn hkdf_matches_rfc_5869_test_vector_1() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf::Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        // No salt is HKDF with a zero-filled salt (RFC 5869, 2.2).
        let mut unsalted = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), b"secret")
            .expand(HITL_TOKEN_INFO, &mut unsalted)
            .unwrap();
        assert_eq!(derive_key(b"secret", HITL_TOKEN_INFO), unsalted);
    }

    #[test]
    fn hitl_tokens_bind_run_gate_expiry_and_secret() {
        let now = 1_700_000_000;
        let token = hitl_token(b"current", "run_a", "ideate", now + 3600);
        assert!(token.starts_with("1700003600."));
        assert!(verify_hitl_token(&[b"current"], "run_a", "ideate", &token, now));
        assert!(
            verify_hitl_token(&[b"new", b"current"], "run_a", "ideate", &token, now),
            "previous secret"
        );
        assert!(!verify_hitl_token(&[b"other"], "run_a", "ideate", &token, now));
        assert!(!verify_hitl_token(&[b"current"], "run_b", "ideate", &token, now));
        assert!(!verify_hitl_token(&[b"current"], "run_a", "prepublish", &token, now));
        assert!(
            !verify_hitl_token(&[b"current"], "run_a", "ideate", &token, now + 3601),
            "expired"
        );
        let (_, sig) = token.split_once('.').unwrap();
        let extended = format!("{}.{sig}", now + 999_999);
        assert!(
            !verify_hitl_token(&[b"current"], "run_a", "ideate", &extended, now),
            "expiry is signed"
        );
        for bad in [
            "",
            ".",
            "abc",
            "1700003600.",
            "1700003600.zz",
            &token[..token.len() - 2],
        ] {
            assert!(
                !verify_hitl_token(&[b"current"], "run_a", "ideate", bad, now),
                "{bad:?}"
            );
        }
    }
}
