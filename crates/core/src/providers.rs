//! Provider modes and the static facts about each paid provider: its
//! default base URL, the hosts a live client may call, and the variables
//! that configure it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a run's provider calls go to the real services or to the mocks.
/// Fixed per run when the API creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderMode {
    Mock,
    Live,
}

impl ProviderMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mock => "mock",
            Self::Live => "live",
        }
    }
}

impl fmt::Display for ProviderMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mock" => Ok(Self::Mock),
            "live" => Ok(Self::Live),
            other => Err(format!("expected mock or live, got {other:?}")),
        }
    }
}

/// The paid providers MyloWare calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    KieAi,
    Shotstack,
    UploadPost,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Self::KieAi, Self::Shotstack, Self::UploadPost];

    /// The key used in JSON (`providers.kieai`, `providers.uploadPost`).
    pub fn key(self) -> &'static str {
        match self {
            Self::KieAi => "kieai",
            Self::Shotstack => "shotstack",
            Self::UploadPost => "uploadPost",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::KieAi => "https://api.kie.ai",
            Self::Shotstack => "https://api.shotstack.io",
            Self::UploadPost => "https://api.upload-post.com",
        }
    }

    /// The only non-loopback host a live client of this provider may call.
    pub fn allowed_host(self) -> &'static str {
        match self {
            Self::KieAi => "api.kie.ai",
            Self::Shotstack => "api.shotstack.io",
            Self::UploadPost => "api.upload-post.com",
        }
    }

    pub fn base_url_var(self) -> &'static str {
        match self {
            Self::KieAi => "KIEAI_BASE_URL",
            Self::Shotstack => "SHOTSTACK_BASE_URL",
            Self::UploadPost => "UPLOAD_POST_BASE_URL",
        }
    }

    /// Every secret live mode needs for this provider.
    pub fn secret_vars(self) -> &'static [&'static str] {
        match self {
            Self::KieAi => &["KIEAI_API_KEY", "KIEAI_SIGNING_SECRET"],
            Self::Shotstack => &["SHOTSTACK_API_KEY"],
            // Upload-Post's webhooks are unsigned (so only hints): no secret.
            Self::UploadPost => &["UPLOAD_POST_API_KEY"],
        }
    }
}

/// Whether `host` is a loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_leniently_and_print_lowercase() {
        assert_eq!(" Live ".parse::<ProviderMode>(), Ok(ProviderMode::Live));
        assert_eq!("mock".parse::<ProviderMode>(), Ok(ProviderMode::Mock));
        assert!("real".parse::<ProviderMode>().is_err());
        assert_eq!(serde_json::to_string(&ProviderMode::Mock).unwrap(), "\"mock\"");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["localhost", "127.0.0.1", "[::1]", "::1", "127.0.0.2"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["api.kie.ai", "10.0.0.1", "localhost.evil.com", "0.0.0.0"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
