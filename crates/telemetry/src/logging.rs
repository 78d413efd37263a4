//! `tracing` output: pretty in development, JSON in production, and the
//! spans exported over OTLP when configured ([`crate::trace`]).
//! `RUST_LOG` filters as usual (default `info`).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::trace::{self, Export, Tracing};

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,hyper=warn,tower_http=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn")
    })
}

/// Installs the global subscriber once (later calls are no-ops) and, with
/// an `export`, the OTLP exporter for `service`; keep the returned
/// [`Tracing`] and shut it down on exit to flush the last spans.
pub fn init(json: bool, export: Option<&Export>, service: &str) -> Option<Tracing> {
    trace::install_propagator();
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if json {
        Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_writer(std::io::stderr),
        )
    } else {
        Box::new(tracing_subscriber::fmt::layer().compact().with_writer(std::io::stderr))
    };
    let mut failed = None;
    let provider = export.and_then(|export| match trace::provider(export, service) {
        Ok(provider) => Some(provider),
        Err(err) => {
            failed = Some(err);
            None
        }
    });
    let otel = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("myloware"))
    });
    let installed = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter())
        .try_init()
        .is_ok();
    if let Some(err) = failed {
        tracing::error!(error = %err, "trace export is off: the exporter cannot be built");
    }
    match (installed, provider, export) {
        (true, Some(provider), Some(export)) => {
            tracing::info!(to = export.kind, url = %export.traces_url, "exporting traces");
            Some(Tracing::new(provider))
        }
        _ => None,
    }
}

/// For tests: pretty logs through the test harness, so only a failing
/// test's logs are shown (`RUST_LOG` filters, default `info`).
pub fn init_for_tests() {
    trace::install_propagator();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_test_writer()
        .compact()
        .try_init();
}
