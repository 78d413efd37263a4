//! HMAC signatures: kie.ai's callback scheme, and the per-run tokens that
//! bind a provider callback URL to its run. Every check is constant time
//! and length-checked (`Mac::verify_slice`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

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

/// Hex HMAC-SHA256 of a raw body (Upload-Post's scheme).
pub fn hex_body_signature(key: &[u8], body: &[u8]) -> String {
    hex::encode(mac(key, &[body]).finalize().into_bytes())
}

pub fn verify_hex_body(key: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let given = hex::decode(signature.trim().trim_start_matches("sha256=")).map_err(|_| SignatureError::Mismatch)?;
    mac(key, &[body])
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The token in a provider callback URL that binds it to `run_id` and
/// `purpose` (e.g. `clip:0`): hex HMAC-SHA256(secret, "callback:{run_id}:{purpose}").
pub fn callback_token(secret: &[u8], run_id: &str, purpose: &str) -> String {
    hex::encode(
        mac(secret, &[b"callback:", run_id.as_bytes(), b":", purpose.as_bytes()])
            .finalize()
            .into_bytes(),
    )
}

pub fn verify_callback_token(secret: &[u8], run_id: &str, purpose: &str, token: &str) -> bool {
    hex::decode(token).is_ok_and(|given| {
        mac(secret, &[b"callback:", run_id.as_bytes(), b":", purpose.as_bytes()])
            .verify_slice(&given)
            .is_ok()
    })
}

/// Whether two secrets are equal, in time independent of where they differ
/// (digests are compared, so lengths leak nothing either).
pub fn secrets_equal(expected: &[u8], given: &[u8]) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let (a, b) = (sha2::Sha256::digest(expected), sha2::Sha256::digest(given));
    a.ct_eq(&b).into()
}

/// A HITL approval token: `{exp}.{hex HMAC-SHA256(secret, "{run_id}:{gate}:{exp}")}`.
pub fn hitl_token(secret: &[u8], run_id: &str, gate: &str, exp: i64) -> String {
    let exp = exp.to_string();
    let sig = mac(
        secret,
        &[run_id.as_bytes(), b":", gate.as_bytes(), b":", exp.as_bytes()],
    )
    .finalize()
    .into_bytes();
    format!("{exp}.{}", hex::encode(sig))
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
        let valid = mac(
            secret,
            &[run_id.as_bytes(), b":", gate.as_bytes(), b":", exp.as_bytes()],
        )
        .verify_slice(&given)
        .is_ok();
        ok | valid
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
    fn hex_body_signatures() {
        let sig = hex_body_signature(KEY, b"{\"a\":1}");
        assert_eq!(verify_hex_body(KEY, b"{\"a\":1}", Some(&sig)), Ok(()));
        assert_eq!(
            verify_hex_body(KEY, b"{\"a\":1}", Some(&format!("sha256={sig}"))),
            Ok(())
        );
        assert_eq!(
            verify_hex_body(KEY, b"{\"a\":2}", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_hex_body(KEY, b"{\"a\":1}", Some("")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_hex_body(KEY, b"{\"a\":1}", None), Err(SignatureError::Missing));
    }

    #[test]
    fn callback_tokens_bind_run_and_purpose() {
        let token = callback_token(b"secret", "run_abc", "clip:0");
        assert!(verify_callback_token(b"secret", "run_abc", "clip:0", &token));
        assert!(!verify_callback_token(b"secret", "run_abd", "clip:0", &token));
        assert!(!verify_callback_token(b"secret", "run_abc", "clip:1", &token));
        assert!(!verify_callback_token(b"other", "run_abc", "clip:0", &token));
        assert!(!verify_callback_token(b"secret", "run_abc", "clip:0", ""));
        assert!(!verify_callback_token(b"secret", "run_abc", "clip:0", &token[..20]));
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
