use std::collections::HashMap;

use super::*;
use crate::providers::Provider;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|var| map.get(var).cloned())
}

fn vars_named(err: &ConfigError) -> Vec<&'static str> {
    err.problems.iter().map(|p| p.var).collect()
}

/// What production needs besides the keys: Postgres and an https base URL.
const DEPLOYED: [(&str, &str); 2] = [
    ("DATABASE_URL", "postgres://mw@db:5432/mw"),
    ("PUBLIC_BASE_URL", "https://mw.example.com"),
];

/// A deployed `environment` with strong, distinct secrets, then `extra`
/// (a variable in `extra` replaces its default here).
fn deployed(environment: &str, extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let (strong, hitl, internal) = ("k".repeat(40), "h".repeat(40), "i".repeat(40));
    let mut vars = vec![
        ("ENVIRONMENT", environment),
        ("API_KEY", strong.as_str()),
        ("HITL_SECRET", hitl.as_str()),
        ("INTERNAL_SECRET", internal.as_str()),
        DEPLOYED[0],
        DEPLOYED[1],
    ];
    vars.extend_from_slice(extra);
    config(&vars)
}

fn production(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    deployed("production", extra)
}

const LIVE_SECRETS: &[(&str, &str)] = &[
    ("KIEAI_API_KEY", "k"),
    ("KIEAI_SIGNING_SECRET", "s"),
    ("SHOTSTACK_API_KEY", "k"),
    ("UPLOAD_POST_API_KEY", "k"),
];

#[test]
fn development_defaults_need_no_variables() {
    let config = config(&[]).unwrap();
    assert_eq!(config.environment, Environment::Development);
    assert_eq!(config.providers_mode, ProviderMode::Mock);
    assert_eq!(config.api_keys[0].key.expose_secret(), DEV_API_KEY);
    assert_eq!(config.database_url.expose_secret(), DEFAULT_DATABASE_URL);
    assert_eq!(config.api_port, 8080);
    assert_eq!(config.orchestrator_port, 8090);
    assert_eq!(config.orchestrator_url.as_str(), "http://127.0.0.1:8090/");
    assert_eq!(config.projects, ProjectsSource::Shipped);
}

#[test]
fn projects_dir_replaces_the_shipped_projects() {
    let set = config(&[("PROJECTS_DIR", "/srv/projects")]).unwrap();
    assert_eq!(set.projects, ProjectsSource::Folder("/srv/projects".into()));
    assert_eq!(set.projects.to_string(), "PROJECTS_DIR /srv/projects");
    let blank = config(&[("PROJECTS_DIR", " ")]).unwrap();
    assert_eq!(blank.projects, ProjectsSource::Shipped, "blank counts as unset");
}

#[test]
fn live_mode_without_secrets_names_every_missing_variable() {
    let err = config(&[("USE_MOCK_PROVIDERS", "false")]).unwrap_err();
    assert_eq!(
        vars_named(&err),
        [
            "KIEAI_API_KEY",
            "KIEAI_SIGNING_SECRET",
            "SHOTSTACK_API_KEY",
            "UPLOAD_POST_API_KEY",
        ]
    );
    assert!(err.to_string().contains("KIEAI_SIGNING_SECRET: required in live mode"));
}

#[test]
fn live_mode_with_every_secret_starts_in_development() {
    let mut vars = LIVE_SECRETS.to_vec();
    vars.push(("USE_MOCK_PROVIDERS", "false"));
    let config = config(&vars).unwrap();
    assert_eq!(config.providers_mode, ProviderMode::Live);
    assert!(Provider::ALL.iter().all(|p| config.providers.is_configured(*p)));
}

/// Upload-Post's webhooks are unsigned: live mode needs no signing
/// secret for it, and live callbacks of kie.ai never fall back to the
/// public mock key.
#[test]
fn upload_post_needs_no_signing_secret_and_kieai_has_no_mock_fallback() {
    let mut vars = LIVE_SECRETS.to_vec();
    vars.push(("USE_MOCK_PROVIDERS", "false"));
    assert!(!vars.iter().any(|(var, _)| *var == "UPLOAD_POST_SIGNING_SECRET"));
    let config = config(&vars).unwrap();
    assert!(config.providers.is_configured(Provider::UploadPost));
    assert_eq!(config.providers.live_kieai_signing_key().as_deref(), Some(&b"s"[..]));

    let mock = super::Config::from_lookup(|_| None).unwrap();
    assert_eq!(mock.providers.live_kieai_signing_key(), None);
    assert_eq!(
        mock.providers.mock_kieai_signing_key(),
        MOCK_KIEAI_SIGNING_SECRET.as_bytes()
    );
}

#[test]
fn providers_mode_is_an_alias_and_conflicts_are_refused() {
    assert_eq!(
        config(&[("PROVIDERS_MODE", "mock")]).unwrap().providers_mode,
        ProviderMode::Mock
    );
    let err = config(&[("PROVIDERS_MODE", "live"), ("USE_MOCK_PROVIDERS", "true")]).unwrap_err();
    assert_eq!(vars_named(&err), ["PROVIDERS_MODE"]);
    let err = config(&[("USE_MOCK_PROVIDERS", "maybe")]).unwrap_err();
    assert_eq!(vars_named(&err), ["USE_MOCK_PROVIDERS"]);
}

#[test]
fn outside_development_default_or_short_keys_are_refused() {
    let err = config(&[("ENVIRONMENT", "production")]).unwrap_err();
    assert_eq!(
        vars_named(&err),
        [
            "API_KEY",
            "HITL_SECRET",
            "INTERNAL_SECRET",
            "DATABASE_URL",
            "PUBLIC_BASE_URL"
        ]
    );

    let err = production(&[("API_KEY", DEV_API_KEY), ("HITL_SECRET", "short")]).unwrap_err();
    assert_eq!(vars_named(&err), ["API_KEY", "HITL_SECRET"]);
    assert!(err.problems[0].message.contains("development default"));
    assert!(err.problems[1].message.contains("at least 32"));

    let strong = "x".repeat(40);
    let ok = production(&[("API_KEY", &strong), ("HITL_SECRET", &strong)]);
    assert!(ok.is_ok());
}

#[test]
fn named_keys_with_roles_are_read_and_checked() {
    let with_keys = |keys: &str| production(&[("API_KEYS", keys)]);
    let ok = with_keys(&format!(
        "ann:approver:{}, ci:viewer:{}",
        "a".repeat(40),
        "c".repeat(40)
    ))
    .unwrap();
    let roles: Vec<_> = ok.api_keys.iter().map(|k| (k.name.as_str(), k.role)).collect();
    assert_eq!(roles[0].1, crate::auth::Role::Admin, "a bare API_KEY is an admin");
    assert_eq!(
        &roles[1..],
        [("ann", crate::auth::Role::Approver), ("ci", crate::auth::Role::Viewer)]
    );

    let err = with_keys("ann:approver:short").unwrap_err();
    assert_eq!(vars_named(&err), ["API_KEYS"]);
    assert!(err.problems[0].message.contains("\"ann\""), "{err}");
    let err = with_keys(&format!("x:viewer:{0},x:admin:{0}b", "a".repeat(40))).unwrap_err();
    assert!(err.problems[0].message.contains("unique"), "{err}");
    let err = with_keys(&format!("bad name:viewer:{}", "a".repeat(40))).unwrap_err();
    assert_eq!(vars_named(&err), ["API_KEYS"]);
}

#[test]
fn previous_secrets_twin_keys_and_unlimited_rates_are_refused_in_production() {
    assert!(production(&[]).is_ok());
    for (var, value) in [
        ("INTERNAL_SECRET_PREVIOUS", DEV_INTERNAL_SECRET),
        ("INTERNAL_SECRET_PREVIOUS", "short"),
        ("HITL_SECRET_PREVIOUS", DEV_HITL_SECRET),
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ] {
        assert_eq!(
            vars_named(&production(&[(var, value)]).unwrap_err()),
            [var],
            "{var}={value}"
        );
    }
    // The admin key `deployed` sets, again as a named key.
    let twin = format!("ops:operator:{}", "k".repeat(40));
    let err = production(&[("API_KEYS", twin.as_str())]).unwrap_err();
    assert!(err.problems[0].message.contains("same secret"), "{err}");
    let err = production(&[("API_KEYS", "ann:aprover:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]).unwrap_err();
    assert!(err.problems[0].message.contains("unknown role"), "{err}");
    // Development keeps its switch.
    assert!(config(&[("RATE_LIMIT_PER_MINUTE", "0")]).is_ok());
}

#[test]
fn the_internal_secret_is_required_outside_development_and_used_for_nothing_else() {
    let strong = "k".repeat(40);
    let with_internal = |internal: &str| deployed("staging", &[("INTERNAL_SECRET", internal)]);
    assert_eq!(vars_named(&with_internal(&strong).unwrap_err()), ["INTERNAL_SECRET"]);
    assert_eq!(
        vars_named(&with_internal(&"h".repeat(40)).unwrap_err()),
        ["INTERNAL_SECRET"]
    );
    assert_eq!(vars_named(&with_internal("short").unwrap_err()), ["INTERNAL_SECRET"]);
    assert!(with_internal(&"i".repeat(40)).is_ok());
    // Development: optional; the services fall back to the dev secret.
    let dev = config(&[]).unwrap();
    assert!(dev.internal_secret.is_none());
    let _ = dev.internal_keys();
}

#[test]
fn telegram_chat_lists_are_integers_and_approvers_are_allowed_chats() {
    let ok = config(&[("TELEGRAM_ALLOWED_CHAT_IDS", "42, -100123")]).unwrap();
    assert_eq!(ok.chat.telegram_allowed_chat_ids, ["42", "-100123"]);
    assert_eq!(
        ok.chat.telegram_approver_chat_ids,
        ["42", "-100123"],
        "default: the allowed list"
    );
    let ok = config(&[
        ("TELEGRAM_ALLOWED_CHAT_IDS", "42,43"),
        ("TELEGRAM_APPROVER_CHAT_IDS", "43"),
    ])
    .unwrap();
    assert_eq!(ok.chat.telegram_approver_chat_ids, ["43"]);
    assert!(config(&[]).unwrap().chat.telegram_allowed_chat_ids.is_empty());
    let err = config(&[("TELEGRAM_ALLOWED_CHAT_IDS", "42,@me")]).unwrap_err();
    assert_eq!(vars_named(&err), ["TELEGRAM_ALLOWED_CHAT_IDS"]);
    let err = config(&[("TELEGRAM_ALLOWED_CHAT_IDS", "42"), ("TELEGRAM_APPROVER_CHAT_IDS", "7")]).unwrap_err();
    assert_eq!(vars_named(&err), ["TELEGRAM_APPROVER_CHAT_IDS"]);
}

#[test]
fn problems_never_contain_secret_values() {
    let err = production(&[("API_KEY", "sekrit-value"), ("HITL_SECRET", "other-sekrit")]).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("sekrit"), "{text}");
    let config = config(&[("API_KEY", "sekrit-value")]).unwrap();
    assert!(!format!("{config:?}").contains("sekrit"));
}

#[test]
fn provider_hosts_are_checked_against_the_allowlist() {
    let err = config(&[("KIEAI_BASE_URL", "https://evil.example.com")]).unwrap_err();
    assert_eq!(vars_named(&err), ["KIEAI_BASE_URL"]);
    let ok = config(&[("KIEAI_BASE_URL", "http://127.0.0.1:9999")]).unwrap();
    assert_eq!(ok.providers.kieai.host(), "127.0.0.1");
    let err = production(&[("KIEAI_BASE_URL", "http://127.0.0.1:9999")]).unwrap_err();
    assert_eq!(vars_named(&err), ["KIEAI_BASE_URL"]);
    let err = config(&[("SHOTSTACK_BASE_URL", "https://api.shotstack.io/edit/v1")]).unwrap_err();
    assert_eq!(vars_named(&err), ["SHOTSTACK_BASE_URL"]);
}

#[test]
fn bad_values_are_reported_together() {
    let err = config(&[
        ("API_PORT", "eighty"),
        ("DATABASE_URL", "mysql://x"),
        ("LOG_FORMAT", "xml"),
    ])
    .unwrap_err();
    assert_eq!(vars_named(&err), ["DATABASE_URL", "API_PORT", "LOG_FORMAT"]);
}

#[test]
fn database_passwords_are_redacted() {
    let config = config(&[("DATABASE_URL", "postgres://me:hunter2@db:5432/mw")]).unwrap();
    assert_eq!(config.database_url_redacted(), "postgres://me:***@db:5432/mw");
}

#[test]
fn trace_content_is_on_in_development_and_off_elsewhere_unless_set() {
    assert!(config(&[]).unwrap().telemetry.trace_content);
    assert!(!config(&[("TRACE_CONTENT", "false")]).unwrap().telemetry.trace_content);
    assert!(!production(&[]).unwrap().telemetry.trace_content);
    assert!(!deployed("staging", &[]).unwrap().telemetry.trace_content);
    assert!(
        production(&[("TRACE_CONTENT", "true")])
            .unwrap()
            .telemetry
            .trace_content
    );
    let err = production(&[("TRACE_CONTENT", "sometimes")]).unwrap_err();
    assert_eq!(vars_named(&err), ["TRACE_CONTENT"]);
}

#[test]
fn the_redactor_knows_every_configured_secret() {
    let config = production(&[
        ("API_KEYS", "ops:operator:operator-key-0123456789-abcdefghij"),
        ("HITL_SECRET_PREVIOUS", "previous-hitl-0123456789-abcdefghijklmn"),
        ("OPENAI_API_KEY", "openai-key-0123456789"),
        ("KIEAI_API_KEY", "kie-key-0123456789"),
        ("KIEAI_SIGNING_SECRET", "kie-signing-0123456789"),
        ("SHOTSTACK_API_KEY", "shotstack-0123456789"),
        ("UPLOAD_POST_API_KEY", "upload-post-0123456789"),
        ("TELEGRAM_BOT_TOKEN", "123456:telegram-bot-token"),
        ("TELEGRAM_WEBHOOK_SECRET", "telegram-webhook-secret"),
        ("LANGSMITH_API_KEY", "lsv2_pt_langsmith-key"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=otlp-header-credential"),
        ("ASSET_BUCKET_URL", "s3://renders/prod"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key-value"),
        ("DATABASE_URL", "postgres://mw:db-password-123@db:5432/mw"),
    ])
    .unwrap();
    let redactor = config.redactor();
    let (api_key, hitl, internal) = ("k".repeat(40), "h".repeat(40), "i".repeat(40));
    for value in [
        api_key.as_str(),
        hitl.as_str(),
        internal.as_str(),
        "operator-key-0123456789-abcdefghij",
        "previous-hitl-0123456789-abcdefghijklmn",
        "openai-key-0123456789",
        "kie-key-0123456789",
        "kie-signing-0123456789",
        "shotstack-0123456789",
        "upload-post-0123456789",
        "123456:telegram-bot-token",
        "telegram-webhook-secret",
        "lsv2_pt_langsmith-key",
        "otlp-header-credential",
        "AKIAEXAMPLEKEYID",
        "aws-secret-access-key-value",
        "db-password-123",
    ] {
        let text = format!("the value is {value}.");
        assert_eq!(
            redactor.redact(&text),
            "the value is [REDACTED].",
            "{value} is not redacted"
        );
    }
}

#[test]
fn prices_file_overrides_the_defaults_and_refuses_unknown_keys() {
    let dir = std::env::temp_dir().join(format!("mw-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("prices.toml");
    std::fs::write(&good, "[shotstack]\nrender_minute = 0.2\n").unwrap();
    let config = config(&[("PRICES_FILE", good.to_str().unwrap())]).unwrap();
    assert_eq!(config.prices.shotstack_render_minute, 200_000);
    assert_eq!(config.prices_file.as_deref(), Some(good.as_path()));
    assert_eq!(self::config(&[]).unwrap().prices, crate::costs::PriceTable::default());

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[shotstack]\nrender_minute = 0.2\nper_render = 1\n").unwrap();
    let err = self::config(&[("PRICES_FILE", bad.to_str().unwrap())]).unwrap_err();
    assert_eq!(vars_named(&err), ["PRICES_FILE"]);
    assert!(err.to_string().contains("per_render"), "{err}");
    let missing = dir.join("missing.toml");
    let err = self::config(&[("PRICES_FILE", missing.to_str().unwrap())]).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_llm_model_without_a_price_is_a_warning() {
    let priced = config(&[("OPENAI_API_KEY", "sk-test")]).unwrap();
    assert!(priced.warnings().iter().all(|w| !w.contains("LLM_MODEL")));
    let unpriced = config(&[("OPENAI_API_KEY", "sk-test"), ("LLM_MODEL", "my-local-model")]).unwrap();
    assert!(
        unpriced.warnings().iter().any(|w| w.contains("my-local-model")),
        "{:?}",
        unpriced.warnings()
    );
}

#[test]
fn spend_limits_and_the_run_cap_are_read_and_checked() {
    let config = config(&[]).unwrap();
    assert_eq!(config.budget, super::BudgetConfig::default(), "no limit unless set");
    let config = self::config(&[
        ("SPEND_LIMIT_DAILY_USD", "12.5"),
        ("SPEND_LIMIT_MONTHLY_USD", "0"),
        ("MAX_ACTIVE_RUNS", "4"),
        ("MAX_PROVIDER_JOBS", "6"),
    ])
    .unwrap();
    assert_eq!(
        config.budget,
        super::BudgetConfig {
            daily_micros: Some(12_500_000),
            monthly_micros: Some(0),
            max_active_runs: Some(4),
            max_provider_jobs: Some(6),
        }
    );
    let err = self::config(&[
        ("SPEND_LIMIT_DAILY_USD", "-1"),
        ("SPEND_LIMIT_MONTHLY_USD", "lots"),
        ("MAX_ACTIVE_RUNS", "0"),
        ("MAX_PROVIDER_JOBS", "none"),
    ])
    .unwrap_err();
    assert_eq!(
        vars_named(&err),
        [
            "SPEND_LIMIT_DAILY_USD",
            "SPEND_LIMIT_MONTHLY_USD",
            "MAX_ACTIVE_RUNS",
            "MAX_PROVIDER_JOBS"
        ]
    );
}

#[test]
fn the_schedule_tick_is_read_and_bounded() {
    assert_eq!(config(&[]).unwrap().schedule_tick, std::time::Duration::from_secs(1));
    let config = self::config(&[("SCHEDULE_TICK_MS", "250")]).unwrap();
    assert_eq!(config.schedule_tick, std::time::Duration::from_millis(250));
    for bad in ["0", "49", "60001", "soon"] {
        let err = self::config(&[("SCHEDULE_TICK_MS", bad)]).unwrap_err();
        assert_eq!(vars_named(&err), ["SCHEDULE_TICK_MS"], "{bad}");
    }
}

#[test]
fn gate_lifetimes_are_hours_with_fractions_and_a_reminder_comes_first() {
    let config = config(&[]).unwrap();
    assert_eq!(config.gate_timeout, chrono::TimeDelta::hours(72));
    assert_eq!(config.gate_remind_after, None, "no reminder unless set");
    let config = self::config(&[("GATE_REMIND_AFTER_HOURS", "0.5"), ("GATE_TIMEOUT_HOURS", "1.25")]).unwrap();
    assert_eq!(config.gate_remind_after, Some(chrono::TimeDelta::minutes(30)));
    assert_eq!(config.gate_timeout, chrono::TimeDelta::minutes(75));
    for (remind, timeout, wrong) in [
        ("2", "1", "GATE_REMIND_AFTER_HOURS"),
        ("1", "0", "GATE_TIMEOUT_HOURS"),
        ("soon", "72", "GATE_REMIND_AFTER_HOURS"),
        ("1", "-3", "GATE_TIMEOUT_HOURS"),
    ] {
        let err = self::config(&[("GATE_REMIND_AFTER_HOURS", remind), ("GATE_TIMEOUT_HOURS", timeout)]).unwrap_err();
        assert_eq!(vars_named(&err), [wrong], "{remind} / {timeout}");
    }
}
