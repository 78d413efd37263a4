//! `mw validate env`.

use myloware_core::ProviderMode;
use myloware_core::config::Config;
use myloware_core::costs::usd;
use myloware_core::providers::Provider;

use crate::env;

pub async fn env(env_file: Option<&env::EnvFile>, online: bool) -> anyhow::Result<()> {
    match env_file {
        Some(file) => println!("env file: {file}"),
        None => println!("env file: none (ENVIRONMENT names no environment)"),
    }
    let config = match env::config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            anyhow::bail!("the configuration is not valid; fix the variables above");
        }
    };
    print_summary(&config);
    for warning in config.warnings() {
        println!("warning: {warning}");
    }
    if std::env::var_os("UPLOAD_POST_SIGNING_SECRET").is_some() {
        println!(
            "warning: UPLOAD_POST_SIGNING_SECRET is ignored (Upload-Post does not sign its webhooks; \
             they only wake a publishing run, which then asks Upload-Post)"
        );
    }
    let catalog = env::catalog(&config)?;
    println!(
        "projects: {} ({}), {}",
        catalog.projects.len(),
        catalog.names().join(", "),
        config.projects
    );
    if online {
        check_online(&config).await?;
    }
    println!("configuration OK");
    Ok(())
}

/// Calls each provider with a harmless request (live mode only).
async fn check_online(config: &Config) -> anyhow::Result<()> {
    if config.providers_mode != ProviderMode::Live {
        println!("online check: skipped in mock mode (no provider is called)");
        return Ok(());
    }
    env::init_logging(config);
    let mut failed = 0;
    for (provider, outcome) in myloware_providers::live::probe(config).await {
        let host = config.providers.endpoint(provider).host();
        tracing::info!(
            provider = provider.key(),
            host,
            ok = outcome.is_ok(),
            "provider checked online"
        );
        match outcome {
            Ok(detail) => println!("  {:<11} {host:<28} ok: {detail}", provider.key()),
            Err(error) => {
                failed += 1;
                println!("  {:<11} {host:<28} FAILED: {error}", provider.key());
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} provider(s) failed the online check");
    }
    Ok(())
}

/// Mode, database and provider hosts: what a service started now would use.
pub fn print_summary(config: &Config) {
    println!("environment: {}", config.environment.as_str());
    println!("providers mode: {}", config.providers_mode);
    println!("database: {}", config.database_url_redacted());
    println!("public base url: {}", config.public_base_url);
    println!("orchestrator url: {}", config.orchestrator_url);
    let note = match config.providers_mode {
        ProviderMode::Mock => " (mock mode: no provider is called; these are the hosts live mode would call)",
        ProviderMode::Live => "",
    };
    println!("provider hosts{note}:");
    for provider in Provider::ALL {
        let endpoint = config.providers.endpoint(provider);
        let configured = if config.providers.is_configured(provider) {
            "configured"
        } else {
            "not configured"
        };
        println!(
            "  {:<11} {:<28} {configured}",
            provider.key(),
            endpoint.base_url.as_str()
        );
    }
    let llm = if config.llm.api_key.is_some() {
        format!("{} at {}", config.llm.model, config.llm.base_url)
    } else {
        "not configured (personas and Brendan run scripted)".to_string()
    };
    println!("llm: {llm}");
    let traces = myloware_telemetry::trace::export(&config.telemetry).map_or("not exported".to_string(), |export| {
        format!("{} {}", export.kind, export.traces_url)
    });
    let content = if config.telemetry.trace_content {
        "with prompts and completions, secrets redacted (TRACE_CONTENT=true)"
    } else {
        "without prompts and completions (TRACE_CONTENT=false)"
    };
    println!("traces: {traces}, {content}");
    let prices = &config.prices;
    let source = config
        .prices_file
        .as_ref()
        .map_or("defaults".to_string(), |path| format!("PRICES_FILE {}", path.display()));
    let llm = prices.llm_price(&config.llm.model);
    println!(
        "prices: {source} (kie.ai {} ${:.2}/clip, Shotstack ${:.2}/min, Upload-Post ${:.2}/publish, {} ${:.2}/${:.2} per 1M tokens)",
        myloware_core::costs::KIEAI_MODEL,
        usd(prices.clip(myloware_core::costs::KIEAI_MODEL).usd_micros),
        usd(prices.shotstack_render_minute),
        usd(prices.upload_post_publish),
        config.llm.model,
        usd(llm.input_per_million),
        usd(llm.output_per_million),
    );
    let chat = &config.chat;
    let telegram = match (&chat.telegram_bot_token, &chat.telegram_webhook_secret) {
        (Some(_), Some(_)) => "bot and webhook secret set (chat front door open)",
        (Some(_), None) => "bot set; no TELEGRAM_WEBHOOK_SECRET, so /v1/telegram/webhook is closed",
        (None, Some(_)) => "webhook secret set but no TELEGRAM_BOT_TOKEN: replies cannot be sent",
        (None, None) => "not configured",
    };
    println!("telegram: {telegram}");
    let webhook = chat.webhook_url.as_ref().map_or("not configured".to_string(), |u| {
        format!("{}://{} (gate links)", u.scheme(), u.host_str().unwrap_or_default())
    });
    println!("chat webhook: {webhook}");
    let assets = &config.assets;
    let store = match &assets.bucket {
        None => format!("local folder {}", assets.dir.display()),
        Some(bucket) => format!(
            "bucket s3://{}/{} at {}",
            bucket.bucket,
            bucket.prefix,
            bucket.endpoint.as_ref().map_or("AWS S3".to_string(), |e| e.to_string())
        ),
    };
    println!(
        "rendered videos: {store} (URLs valid {} h)",
        assets.url_ttl().as_secs() / 3600
    );
}
