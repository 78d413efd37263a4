//! Security: configuration that refuses unsafe setups (issue 13, item 12).
//! Before, `HITL_TOKEN_EXPIRY_HOURS` was unbounded (a huge value panicked
//! in chrono when a link was minted), production took an `http`
//! `PUBLIC_BASE_URL` and silently fell back to a SQLite file per machine
//! when `DATABASE_URL` was missing, and `mw dev` outside the checkout
//! listened on 0.0.0.0 with the development keys.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use myloware_core::config::{Config, ConfigError, HttpLimits};

use myloware_testkit::free_port;
use myloware_testkit::process::{Process, Scratch};

/// `mw-system args` in `dir` with only PATH, the projects folder and `vars`.
fn mw(dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> std::process::Command {
    myloware_testkit::process::mw(env!("CARGO_BIN_EXE_mw-system"), dir, args, vars)
}

/// `mw-system args` started in `dir` with `vars`, its stderr in the log
/// file it returns.
fn spawn_logged(dir: &Scratch, args: &[&str], vars: &[(&str, &str)]) -> (Process, PathBuf) {
    let log = dir.0.join("stderr.log");
    let child = Process::of(
        mw(dir, args, vars)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    (child, log)
}

const STRONG: &str = "a-strong-random-value-of-forty-characters!";

/// What a production deployment sets: strong keys, Postgres, https links.
fn production() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ENVIRONMENT", "production"),
        ("API_KEY", STRONG),
        ("HITL_SECRET", STRONG),
        ("INTERNAL_SECRET", "another-strong-random-value-for-internal-use"),
        ("DATABASE_URL", "postgres://mw:pw@db.internal:5432/mw"),
        ("PUBLIC_BASE_URL", "https://mw.example.com"),
    ]
}

/// `Config::from_lookup` over `base` with `changes` applied (`""` unsets),
/// caught if it panics.
fn read(base: &[(&str, &str)], changes: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars: HashMap<String, String> = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (var, value) in changes {
        if value.is_empty() {
            vars.remove(*var);
        } else {
            vars.insert(var.to_string(), value.to_string());
        }
    }
    std::panic::catch_unwind(move || Config::from_lookup(|var| vars.get(var).cloned()))
        .unwrap_or_else(|_| panic!("the configuration panicked on {changes:?}"))
}

#[test]
fn the_production_baseline_is_accepted() {
    let config = read(&production(), &[]).expect("a complete production configuration");
    assert_eq!(config.http, HttpLimits::default());
}

type Vars<'a> = &'a [(&'a str, &'a str)];
/// A variable that must be named, and the setups that set it unsafely:
/// (what, base variables, its value; `""` unsets).
type Cases<'a> = (&'a str, &'a [(&'a str, Vars<'a>, &'a str)]);

#[test]
fn each_unsafe_setting_is_refused_by_name_without_a_panic() {
    let development: Vars = &[];
    let staging: Vars = &[
        ("ENVIRONMENT", "staging"),
        ("API_KEY", STRONG),
        ("HITL_SECRET", STRONG),
        ("INTERNAL_SECRET", "another-strong-random-value-for-internal-use"),
        ("DATABASE_URL", "sqlite:///var/lib/mw/staging.db"),
        ("PUBLIC_BASE_URL", "https://staging.example.com"),
    ];
    assert!(read(staging, &[]).is_ok(), "the staging baseline is accepted");
    let production = production();
    let cases: &[Cases] = &[
        // Approval links: 1 hour to 30 days, anywhere.
        (
            "HITL_TOKEN_EXPIRY_HOURS",
            &[
                ("expiry 0", development, "0"),
                ("expiry 721", development, "721"),
                ("expiry past chrono's range", &production, "9223372036854775807"),
                ("expiry past u64", development, "99999999999999999999999"),
                ("expiry negative", development, "-1"),
            ],
        ),
        // Links carry tokens: https outside development.
        (
            "PUBLIC_BASE_URL",
            &[
                ("production http links", &production, "http://mw.example.com"),
                ("production default links", &production, ""),
                ("staging http links", staging, "http://staging.example.com"),
            ],
        ),
        // One shared database: named explicitly, Postgres in production.
        (
            "DATABASE_URL",
            &[
                ("production without a database", &production, ""),
                ("production on SQLite", &production, "sqlite://data/myloware.db"),
                ("staging without a database", staging, ""),
            ],
        ),
        // The server limits: zero or absurd values would refuse everyone or nothing.
        (
            "HTTP_HEADER_TIMEOUT_SECS",
            &[
                ("header timeout 0", development, "0"),
                ("header timeout huge", development, "301"),
            ],
        ),
        ("HTTP_BODY_TIMEOUT_SECS", &[("body timeout 0", development, "0")]),
        (
            "HTTP_REQUEST_TIMEOUT_SECS",
            &[("request timeout huge", development, "18446744073709551615")],
        ),
        (
            "HTTP_MAX_CONNECTIONS",
            &[
                ("no connections", development, "0"),
                ("connections huge", development, "1000000"),
                ("connections text", development, "lots"),
            ],
        ),
    ];
    for (var, setups) in cases {
        for (case, base, value) in *setups {
            let changes = [(*var, *value)];
            let err = read(base, &changes)
                .err()
                .unwrap_or_else(|| panic!("{case}: {changes:?} was accepted"));
            assert!(
                err.problems.iter().any(|p| p.var == *var),
                "{case}: {var} not named in:\n{err}"
            );
            assert!(err.to_string().contains(&format!("{var}: ")), "{case}: {err}");
            assert!(!err.to_string().contains(STRONG), "{case}: a secret was printed");
        }
    }
}

#[test]
fn the_bounds_themselves_are_accepted_and_links_can_be_minted_at_the_longest() {
    let config = read(&production(), &[("HITL_TOKEN_EXPIRY_HOURS", "720")]).unwrap();
    assert_eq!(config.hitl_token_lifetime(), chrono::TimeDelta::hours(720));
    assert!(
        chrono::Utc::now()
            .checked_add_signed(config.hitl_token_lifetime())
            .is_some()
    );
    let config = read(&[], &[("HITL_TOKEN_EXPIRY_HOURS", "1"), ("HTTP_MAX_CONNECTIONS", "1")]).unwrap();
    assert_eq!(config.hitl_token_lifetime(), chrono::TimeDelta::hours(1));
    assert_eq!(config.http.max_connections, 1);
}

#[test]
fn the_default_bind_host_is_loopback() {
    let config = read(&[], &[]).unwrap();
    assert!(config.bind_host.is_loopback(), "{}", config.bind_host);
    let config = read(&[], &[("BIND_HOST", "0.0.0.0")]).unwrap();
    assert_eq!(config.bind_host.to_string(), "0.0.0.0", "BIND_HOST still opens it up");
}

#[test]
fn production_without_database_url_refuses_to_start() {
    let dir = Scratch::new("no-database");
    let port = free_port().to_string();
    let mut vars = production();
    vars.retain(|(var, _)| *var != "DATABASE_URL");
    vars.extend([("BIND_HOST", "127.0.0.1"), ("API_PORT", port.as_str())]);
    let (mut child, log) = spawn_logged(&dir, &["serve", "api"], &vars);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mw serve api was still running after 30 s in production without DATABASE_URL"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "exited 0:\n{stderr}");
    assert!(stderr.contains("DATABASE_URL: missing"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains(STRONG), "a secret was printed:\n{stderr}");
    assert!(!dir.0.join("data").exists(), "a SQLite database was created");
}

/// An address of this machine that is not loopback, if it has one: the
/// source address of a route out (a UDP `connect` sends nothing).
fn non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn mw_dev_without_bind_host_listens_on_loopback_only() {
    let dir = Scratch::new("dev-bind");
    let (api_port, orchestrator_port) = (free_port(), free_port());
    let (api, orchestrator) = (api_port.to_string(), orchestrator_port.to_string());
    let vars = [
        ("API_PORT", api.as_str()),
        ("ORCHESTRATOR_PORT", orchestrator.as_str()),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ];
    let (_child, log) = spawn_logged(&dir, &["dev"], &vars);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = stderr.lines().find(|l| l.contains("mw dev ready")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "mw dev not ready after 60 s:\n{stderr}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let fields = if ready["fields"].is_object() {
        &ready["fields"]
    } else {
        &ready
    };
    for (service, port) in [("api", api_port), ("orchestrator", orchestrator_port)] {
        let listening: SocketAddr = fields[service].as_str().unwrap().parse().unwrap();
        assert_eq!(
            listening,
            SocketAddr::from(([127, 0, 0, 1], port)),
            "mw dev's {service} listens on {listening}"
        );
        TcpStream::connect_timeout(&listening, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{service} not reachable on loopback: {e}"));
        if let Some(ip) = non_loopback_address() {
            let outside = SocketAddr::new(ip, port);
            assert!(
                TcpStream::connect_timeout(&outside, Duration::from_secs(2)).is_err(),
                "mw dev's {service} is reachable on {outside}"
            );
        }
    }
}
