//! Credentials shared by both services: operator API keys with names and
//! roles, and the internal credential the API and the orchestrator present
//! to each other (never an operator key).

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do. Each role is a fixed set of [`Permission`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including retention and provider mode.
    Admin,
    /// Runs, cancels, dead-letter replays, chat; reads, the audit. Not gate decisions.
    Operator,
    /// Reads, the audit and gate decisions.
    Approver,
    /// Reads only (not the audit: it names people's addresses).
    Viewer,
}

/// What a request needs (see [`Role::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Runs, gates, projects, transcripts, dead letters: reading.
    Read,
    /// Starting and cancelling runs, replaying dead letters, chatting.
    Operate,
    /// Approving and rejecting gates, minting approval links.
    Decide,
    /// Reading the audit of operator actions: who did what to which run,
    /// and from which address and user agent (personal data a read-only
    /// key has no need of).
    Audit,
    /// Pruning, and whatever else changes the service as a whole.
    Administer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Approver, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Viewer => "viewer",
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(permission, Read | Operate | Audit),
            Role::Approver => matches!(permission, Read | Decide | Audit),
            Role::Viewer => permission == Read,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; use admin, operator, approver or viewer"))
    }
}

/// One configured API key: who it is (a name for audit logs), what it may
/// do, and the secret itself.
#[derive(Debug, Clone)]
pub struct NamedKey {
    pub name: String,
    pub role: Role,
    pub key: SecretString,
}

impl NamedKey {
    /// Parses an `API_KEY`/`API_KEYS` entry: `name:role:key`, or a bare key
    /// (an `admin` named `key-<fingerprint>`, so existing setups keep
    /// working). `fallback_name` names a bare key instead when given.
    pub fn parse(entry: &str, fallback_name: Option<&str>) -> Result<NamedKey, String> {
        let entry = entry.trim();
        let mut parts = entry.splitn(3, ':');
        if let (Some(name), Some(role), Some(_)) = (parts.next(), parts.next(), parts.next())
            && valid_name(name)
            && !role.is_empty()
            && role.chars().all(|c| c.is_ascii_alphabetic())
            && role.parse::<Role>().is_err()
        {
            // `name:word:…` is meant as a named key: a mistyped role must
            // not make an admin key of the whole entry.
            return Err(format!(
                "the key named {name:?} has an unknown role {role:?}; use admin, operator, approver or viewer"
            ));
        }
        let mut parts = entry.splitn(3, ':');
        if let (Some(name), Some(role), Some(key)) = (parts.next(), parts.next(), parts.next())
            && let Ok(role) = role.parse::<Role>()
        {
            if !valid_name(name) {
                return Err("a key's name is 1 to 64 letters, digits, '_', '-' or '.'".into());
            }
            if key.is_empty() {
                return Err(format!("the key named {name:?} is empty"));
            }
            return Ok(NamedKey {
                name: name.to_string(),
                role,
                key: SecretString::from(key.to_string()),
            });
        }
        Ok(NamedKey {
            name: fallback_name.map_or_else(|| format!("key-{}", ApiKeys::fingerprint(entry)), str::to_owned),
            role: Role::Admin,
            key: SecretString::from(entry.to_string()),
        })
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Who a valid key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn allows(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }
}

/// The valid API keys, kept as SHA-256 digests so that every comparison
/// takes the same time whatever the candidate's length.
pub struct ApiKeys {
    keys: Vec<([u8; 32], Principal)>,
}

impl ApiKeys {
    pub fn new(keys: &[NamedKey]) -> ApiKeys {
        ApiKeys {
            keys: keys
                .iter()
                .map(|k| {
                    (
                        digest(k.key.expose_secret()),
                        Principal {
                            name: k.name.clone(),
                            role: k.role,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The principal of `candidate`, compared in constant time against
    /// every key (the time taken says nothing about which key matched).
    pub fn principal(&self, candidate: &str) -> Option<&Principal> {
        let candidate = digest(candidate);
        let mut found = None;
        for (key, principal) in &self.keys {
            if bool::from(key.ct_eq(&candidate)) {
                found = Some(principal);
            }
        }
        found
    }

    /// The principal of the key named `name` whose SHA-256 is `digest`
    /// ([`ApiKeys::digest_hex`]): a console session keeps both, so a key
    /// removed, or replaced under the same name, ends its sessions.
    pub fn named(&self, name: &str, digest: &str) -> Option<&Principal> {
        self.keys
            .iter()
            .find(|(key, p)| p.name == name && bool::from(hex::encode(key).as_bytes().ct_eq(digest.as_bytes())))
            .map(|(_, p)| p)
    }

    /// The SHA-256 of a key, hex: what a console session keeps of it.
    pub fn digest_hex(key: &str) -> String {
        hex::encode(digest(key))
    }

    pub fn is_valid(&self, candidate: &str) -> bool {
        self.principal(candidate).is_some()
    }

    /// A short, non-reversible name for a secret (for audit logs, which
    /// must not hold the secret itself).
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

    fn keys(entries: &[&str]) -> ApiKeys {
        ApiKeys::new(
            &entries
                .iter()
                .map(|e| NamedKey::parse(e, None).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn api_keys_accept_only_configured_keys() {
        let keys = keys(&["current", "previous"]);
        assert!(keys.is_valid("current"));
        assert!(keys.is_valid("previous"));
        for bad in ["", "curren", "current ", "CURRENT", "currentx"] {
            assert!(!keys.is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn named_keys_carry_their_role_and_bare_keys_are_admins() {
        let keys = keys(&["ci-bot:viewer:s3cret:with:colons", "plain-key", "ann:approver:k2"]);
        let bot = keys.principal("s3cret:with:colons").unwrap();
        assert_eq!((bot.name.as_str(), bot.role), ("ci-bot", Role::Viewer));
        assert!(keys.principal("ci-bot:viewer:s3cret:with:colons").is_none());
        let plain = keys.principal("plain-key").unwrap();
        assert_eq!(plain.role, Role::Admin);
        assert_eq!(plain.name, format!("key-{}", ApiKeys::fingerprint("plain-key")));
        assert_eq!(keys.principal("k2").unwrap().role, Role::Approver);
        // A bare key may hold colons when it does not read as `name:role:key`.
        assert!(self::keys(&["a:1b:c"]).is_valid("a:1b:c"));
    }

    #[test]
    fn bad_named_keys_are_refused() {
        assert!(NamedKey::parse("ok:admin:", None).is_err());
        assert!(NamedKey::parse("bad name:admin:k", None).is_err());
        let typo = NamedKey::parse("ann:aprover:secret", None).unwrap_err();
        assert!(typo.contains("unknown role \"aprover\""), "{typo}");
    }

    #[test]
    fn roles_grant_their_permissions_only() {
        use Permission::*;
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Operator, [true, true, false, true, false]),
            (Role::Approver, [true, false, true, true, false]),
            (Role::Viewer, [true, false, false, false, false]),
        ];
        for (role, allowed) in table {
            for (permission, want) in [Read, Operate, Decide, Audit, Administer].into_iter().zip(allowed) {
                assert_eq!(role.allows(permission), want, "{role} {permission:?}");
            }
        }
    }

    #[test]
    fn fingerprints_are_stable_and_do_not_contain_the_key() {
        assert_eq!(ApiKeys::fingerprint("abc"), ApiKeys::fingerprint("abc"));
        assert_ne!(ApiKeys::fingerprint("abc"), ApiKeys::fingerprint("abd"));
        assert_eq!(ApiKeys::fingerprint("abc").len(), 16);
    }
}
