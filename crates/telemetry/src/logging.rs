//! `tracing` output: pretty in development, JSON in production.
//! `RUST_LOG` filters as usual (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (tests, `mw dev`
/// starting two services) are no-ops.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.compact().try_init()
    };
}

/// For tests: pretty logs through the test harness, so only a failing
/// test's logs are shown (`RUST_LOG` filters, default `info`).
pub fn init_for_tests() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,tower_http=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .compact()
        .try_init();
}
