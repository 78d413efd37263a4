//! The internal credential: how the API and the orchestrator know each
//! other. Every internal request carries
//! `x-myloware-internal: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `v1\n{METHOD}\n{path and query}\n{t}\n{body}`, keyed by `INTERNAL_SECRET`
//! (the previous secret is accepted during a rotation). A signature binds
//! the method, the path and the body, and is good for five minutes either
//! side of the receiver's clock; every internal route is idempotent, so a
//! replay inside that window changes nothing. Operator API keys are never
//! accepted here, and this secret is accepted nowhere else.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header carrying the credential.
pub const HEADER: &str = "x-myloware-internal";
/// How far a signature's time may be from the receiver's clock.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InternalAuthError {
    #[error("internal credential missing")]
    Missing,
    #[error("internal credential malformed")]
    Malformed,
    #[error("internal credential outside the {TOLERANCE_SECS} s window")]
    Stale,
    #[error("internal credential does not match")]
    Mismatch,
}

fn mac(secret: &[u8], method: &str, path: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in [
        b"v1\n" as &[u8],
        method.as_bytes(),
        b"\n",
        path.as_bytes(),
        b"\n",
        timestamp.as_bytes(),
        b"\n",
    ] {
        mac.update(part);
    }
    mac.update(body);
    mac
}

/// The current secret, and the previous one during a rotation.
#[derive(Debug, Clone)]
pub struct InternalKeys {
    current: SecretString,
    previous: Option<SecretString>,
}

impl InternalKeys {
    pub fn new(current: SecretString, previous: Option<SecretString>) -> InternalKeys {
        InternalKeys { current, previous }
    }

    /// The header value for a request (`path` with its query, as sent).
    pub fn sign(&self, method: &str, path: &str, body: &[u8], now: i64) -> String {
        let timestamp = now.to_string();
        let sig = mac(self.current.expose_secret().as_bytes(), method, path, &timestamp, body)
            .finalize()
            .into_bytes();
        format!("t={timestamp},v1={}", hex::encode(sig))
    }

    /// Checks `header` for a request at `now` (Unix seconds).
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), InternalAuthError> {
        let header = header.ok_or(InternalAuthError::Missing)?;
        let (mut timestamp, mut signature) = (None, None);
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = Some(value),
                Some(("v1", value)) => signature = Some(value),
                _ => return Err(InternalAuthError::Malformed),
            }
        }
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(InternalAuthError::Malformed);
        };
        let sent: i64 = timestamp.parse().map_err(|_| InternalAuthError::Malformed)?;
        if now.checked_sub(sent).is_none_or(|age| age.abs() > TOLERANCE_SECS) {
            return Err(InternalAuthError::Stale);
        }
        let given = hex::decode(signature).map_err(|_| InternalAuthError::Malformed)?;
        // Both secrets are checked, so timing does not say which matched.
        let matches = std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .fold(false, |ok, secret| {
                let valid = mac(secret.expose_secret().as_bytes(), method, path, timestamp, body)
                    .verify_slice(&given)
                    .is_ok();
                ok | valid
            });
        if matches {
            Ok(())
        } else {
            Err(InternalAuthError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn keys(current: &str, previous: Option<&str>) -> InternalKeys {
        InternalKeys::new(current.into(), previous.map(SecretString::from))
    }

    #[test]
    fn a_signature_binds_method_path_body_time_and_secret() {
        let signer = keys("secret", None);
        let header = signer.sign("POST", "/v1/executions", b"{}", NOW);
        assert_eq!(
            signer.verify("POST", "/v1/executions", Some(&header), b"{}", NOW + 299),
            Ok(())
        );
        let check = |method, path, body: &[u8], now| signer.verify(method, path, Some(&header), body, now);
        assert_eq!(
            check("GET", "/v1/executions", b"{}", NOW),
            Err(InternalAuthError::Mismatch)
        );
        assert_eq!(
            check("POST", "/v1/executions/x", b"{}", NOW),
            Err(InternalAuthError::Mismatch)
        );
        assert_eq!(
            check("POST", "/v1/executions", b"{ }", NOW),
            Err(InternalAuthError::Mismatch)
        );
        assert_eq!(
            check("POST", "/v1/executions", b"{}", NOW + 301),
            Err(InternalAuthError::Stale)
        );
        assert_eq!(
            check("POST", "/v1/executions", b"{}", NOW - 301),
            Err(InternalAuthError::Stale)
        );
        let other = keys("other", None);
        assert_eq!(
            other.verify("POST", "/v1/executions", Some(&header), b"{}", NOW),
            Err(InternalAuthError::Mismatch)
        );
    }

    #[test]
    fn the_previous_secret_is_accepted_during_a_rotation() {
        let old = keys("old", None).sign("GET", "/x", b"", NOW);
        assert_eq!(
            keys("new", Some("old")).verify("GET", "/x", Some(&old), b"", NOW),
            Ok(())
        );
        assert!(keys("new", None).verify("GET", "/x", Some(&old), b"", NOW).is_err());
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let signer = keys("secret", None);
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1700000000,v1=zz",
            "junk",
            "t=1,v1=00,x=1",
            "t=-9223372036854775808,v1=00",
        ] {
            assert!(signer.verify("GET", "/", Some(bad), b"", NOW).is_err(), "{bad:?}");
        }
        assert_eq!(
            signer.verify("GET", "/", None, b"", NOW),
            Err(InternalAuthError::Missing)
        );
    }
}
