//! Traces: `tracing` spans exported with OpenTelemetry over OTLP/HTTP
//! (protobuf), to `OTEL_EXPORTER_OTLP_ENDPOINT` or, when only
//! `LANGSMITH_API_KEY` is set, to LangSmith's OTLP endpoint with its
//! headers. No endpoint, no export. The exporter runs on its own thread
//! with a bounded queue: a slow or dead collector drops spans, never
//! delays a request.
//!
//! A run is one trace: the API starts it (`<project>-graph`, under
//! `brendan-chat` when the run came from chat) and hands its W3C
//! `traceparent` to the orchestrator, whose step spans are its children.

use std::collections::HashMap;

use myloware_core::config::TelemetryConfig;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use secrecy::ExposeSecret;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// LangSmith's OTLP endpoint (traces go to `{endpoint}/v1/traces`).
pub const LANGSMITH_OTLP_ENDPOINT: &str = "https://api.smith.langchain.com/otel";

/// Where spans go and with which headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The full traces URL (`…/v1/traces`).
    pub traces_url: String,
    pub headers: HashMap<String, String>,
    /// `langsmith` or `otlp`, for the startup log.
    pub kind: &'static str,
}

/// The export the configuration asks for, if any.
pub fn export(config: &TelemetryConfig) -> Option<Export> {
    let traces_url = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
    if let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        let headers = config
            .otlp_headers
            .as_ref()
            .map(|h| parse_headers(h.expose_secret()))
            .unwrap_or_default();
        return Some(Export {
            traces_url: traces_url(endpoint),
            headers,
            kind: "otlp",
        });
    }
    let key = config.langsmith_api_key.as_ref()?;
    let mut headers = HashMap::from([("x-api-key".to_string(), key.expose_secret().to_string())]);
    if let Some(project) = &config.langsmith_project {
        headers.insert("Langsmith-Project".into(), project.clone());
    }
    let endpoint = config.langsmith_endpoint.as_deref().unwrap_or(LANGSMITH_OTLP_ENDPOINT);
    Some(Export {
        traces_url: traces_url(endpoint),
        headers,
        kind: "langsmith",
    })
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2` (values may be
/// percent-encoded, as the specification allows).
pub fn parse_headers(raw: &str) -> HashMap<String, String> {
    raw.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Some(byte) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tracer provider of a running process; flushes on shutdown.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Exports the spans still queued (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "trace export: spans lost at shutdown");
        }
    }
}

/// Builds the exporter and provider for `export`, named `service`.
pub fn provider(export: &Export, service: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(export.traces_url.clone())
        .with_headers(export.headers.clone())
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|err| err.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs W3C trace-context propagation (always: the services pass
/// `traceparent` along even when this process does not export).
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

impl Tracing {
    pub fn new(provider: SdkTracerProvider) -> Tracing {
        Tracing { provider }
    }
}

/// The `traceparent` of the current span, when it is being traced.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` of `span`, when it is being traced.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Sets `key` on `span` as exported, computing `value` only when `span` is
/// exported. Unlike a `tracing` field it never shows in the logs: for
/// content that belongs in traces only (prompts, completions).
pub fn set_exported_attribute(span: &tracing::Span, key: &'static str, value: impl FnOnce() -> String) {
    if span.context().span().span_context().is_valid() {
        span.set_attribute(key, value());
    }
}

/// Makes `span` a child of the remote span `traceparent` (from the other
/// service); an unreadable value is ignored.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn config(vars: &[(&str, &str)]) -> TelemetryConfig {
        let get = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        TelemetryConfig {
            log_format: myloware_core::config::LogFormat::Json,
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            otlp_headers: get("OTEL_EXPORTER_OTLP_HEADERS").map(SecretString::from),
            langsmith_api_key: get("LANGSMITH_API_KEY").map(SecretString::from),
            langsmith_project: get("LANGSMITH_PROJECT"),
            langsmith_endpoint: get("LANGSMITH_ENDPOINT"),
            run_series_ttl: std::time::Duration::from_secs(60),
            max_run_series: 10_000,
            trace_content: false,
        }
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint_or_a_key() {
        assert_eq!(export(&config(&[])), None);
    }

    #[test]
    fn langsmith_gets_its_endpoint_and_headers() {
        let export = export(&config(&[
            ("LANGSMITH_API_KEY", "ls-key"),
            ("LANGSMITH_PROJECT", "myloware"),
        ]))
        .unwrap();
        assert_eq!(export.traces_url, "https://api.smith.langchain.com/otel/v1/traces");
        assert_eq!(export.headers["x-api-key"], "ls-key");
        assert_eq!(export.headers["Langsmith-Project"], "myloware");
        let export = export_with_endpoint();
        assert_eq!(export.traces_url, "http://127.0.0.1:4318/v1/traces");
    }

    fn export_with_endpoint() -> Export {
        export(&config(&[
            ("LANGSMITH_API_KEY", "ls-key"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
        ]))
        .unwrap()
    }

    #[test]
    fn an_otlp_endpoint_wins_and_carries_its_headers() {
        let export = export(&config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-team = blue",
            ),
        ]))
        .unwrap();
        assert_eq!(export.kind, "otlp");
        assert_eq!(export.headers["authorization"], "Bearer abc");
        assert_eq!(export.headers["x-team"], "blue");
    }

    #[test]
    fn a_traceparent_round_trips_and_garbage_is_ignored() {
        let span = tracing::info_span!("test");
        set_parent(&span, Some("not a traceparent"));
        assert_eq!(traceparent_of(&span), None, "no tracing layer, no context");
    }
}
