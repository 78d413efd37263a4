use super::*;

#[test]
fn http_series_render_as_a_counter_and_a_cumulative_histogram() {
    let metrics = HttpMetrics::new("api", Duration::from_secs(60), DEFAULT_MAX_RUN_SERIES);
    let labels = [
        "api",
        "POST",
        "/v1/hitl/approve/{runId}/{gate}",
        "200",
        "run_a",
        "ideate",
        "iggy",
    ];
    metrics.observe(labels, 0.003);
    metrics.observe(labels, 0.02);
    metrics.observe(labels, 20.0);
    metrics.observe(["api", "GET", "/health", "200", "", "", ""], 0.0005);
    let text = metrics.render();
    let run = r#"gate="ideate",method="POST",persona="iggy",route="/v1/hitl/approve/{runId}/{gate}",runId="run_a",service="api",status="200""#;
    for line in [
        "# TYPE http_requests_total counter".to_string(),
        "# TYPE http_request_duration_seconds histogram".to_string(),
        format!("http_requests_total{{{run}}} 3"),
        format!("http_request_duration_seconds_bucket{{{run},le=\"0.001\"}} 0"),
        format!("http_request_duration_seconds_bucket{{{run},le=\"0.005\"}} 1"),
        format!("http_request_duration_seconds_bucket{{{run},le=\"0.025\"}} 2"),
        format!("http_request_duration_seconds_bucket{{{run},le=\"10\"}} 2"),
        format!("http_request_duration_seconds_bucket{{{run},le=\"+Inf\"}} 3"),
        format!("http_request_duration_seconds_sum{{{run}}} 20.023"),
        format!("http_request_duration_seconds_count{{{run}}} 3"),
        r#"http_requests_total{gate="",method="GET",persona="",route="/health",runId="",service="api",status="200"} 1"#
            .to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn a_finished_runs_series_are_dropped_after_the_ttl() {
    let metrics = HttpMetrics::new("api", Duration::from_millis(50), DEFAULT_MAX_RUN_SERIES);
    let labels = |run: &'static str| ["api", "GET", "/v1/runs/{runId}", "200", run, "", ""];
    metrics.observe(labels("run_a"), 0.01);
    metrics.observe(labels("run_b"), 0.01);
    metrics.observe(["api", "GET", "/health", "200", "", "", ""], 0.001);
    metrics.run_finished("run_a");
    assert!(metrics.render().contains("runId=\"run_a\""), "kept until the TTL");
    std::thread::sleep(Duration::from_millis(60));
    metrics.sweep();
    let text = metrics.render();
    assert!(!text.contains("runId=\"run_a\""), "{text}");
    assert!(text.contains("runId=\"run_b\""), "a running run keeps its series");
    assert!(text.contains("route=\"/health\""), "series without a run stay");
    assert_eq!(metrics.tracked_runs(), 1);
}

#[test]
fn only_answers_about_a_known_run_keep_run_gate_and_persona() {
    let route = "/v1/hitl/approve/{runId}/{gate}";
    let ok = HttpLabels::new("POST", route, 200, "run_abc123", "ideate", is_known(StatusCode::OK));
    assert_eq!((ok.run_id, ok.gate, ok.persona), ("run_abc123", "ideate", "iggy"));
    let found = HttpLabels::new(
        "GET",
        route,
        303,
        "run_abc123",
        "ideate",
        is_known(StatusCode::SEE_OTHER),
    );
    assert_eq!(found.run_id, "run_abc123");
    for status in [
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::CONFLICT,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
    ] {
        let labels = HttpLabels::new("POST", route, status.as_u16(), "run_abc123", "ideate", is_known(status));
        assert_eq!((labels.run_id, labels.gate, labels.persona), ("", "", ""), "{status}");
        assert_eq!(labels.route, route, "the template stays");
        assert_eq!(labels.status, status.as_u16());
    }
}

#[test]
fn label_values_come_from_bounded_sets() {
    let long = format!("run_{}", "a".repeat(5000));
    let labels = HttpLabels::new("BREW", &"/x".repeat(5000), 200, &long, "nope", true);
    assert_eq!(labels.method, "OTHER");
    assert_eq!(labels.route.chars().count(), MAX_LABEL_CHARS);
    assert_eq!((labels.run_id, labels.gate, labels.persona), ("", "", ""));
    for bad in ["RUN_ABC", "run_", "run_a\"b", "run_a/../b", "abc", "run_\u{e9}"] {
        assert_eq!(
            HttpLabels::new("GET", "/v1/runs/{runId}", 200, bad, "", true).run_id,
            "",
            "{bad}"
        );
    }
    assert_eq!(
        HttpLabels::new("PATCH", "unmatched", 404, "", "", false).method,
        "PATCH"
    );
    assert_eq!(HttpLabels::new("get", "unmatched", 404, "", "", false).method, "OTHER");
    let gate = HttpLabels::new("POST", "/x", 200, "", "prepublish", true);
    assert_eq!((gate.gate, gate.persona), ("prepublish", "quinn"));
}

#[test]
fn runs_beyond_the_cap_are_counted_without_their_run() {
    let metrics = HttpMetrics::new("api", Duration::from_secs(60), 2);
    let labels = |run: &'static str| ["api", "GET", "/v1/runs/{runId}", "200", run, "", ""];
    for run in ["run_a", "run_b", "run_c", "run_d", "run_a"] {
        metrics.observe(labels(run), 0.01);
    }
    assert_eq!(metrics.tracked_runs(), 2);
    let text = metrics.render();
    assert!(
        text.contains("runId=\"run_a\"") && text.contains("runId=\"run_b\""),
        "{text}"
    );
    assert!(!text.contains("run_c") && !text.contains("run_d"), "{text}");
    let unlabelled = r#"http_requests_total{gate="",method="GET",persona="",route="/v1/runs/{runId}",runId="",service="api",status="200"} 2"#;
    assert!(text.lines().any(|l| l == unlabelled), "{text}");
    let dropped = r#"myloware_metrics_labels_dropped_total{service="api"} 2"#;
    assert!(text.lines().any(|l| l == dropped), "{text}");
}

#[test]
fn a_fresh_registry_has_its_series_at_zero() {
    let metrics = HttpMetrics::new("orchestrator", Duration::from_secs(60), DEFAULT_MAX_RUN_SERIES);
    metrics.declare("POST", "/v1/hitl/approve/{runId}/{gate}", 200, "ideate");
    let text = metrics.render();
    for line in [
        r#"myloware_metrics_labels_dropped_total{service="orchestrator"} 0"#,
        r#"http_requests_total{gate="",method="GET",persona="",route="/metrics",runId="",service="orchestrator",status="200"} 0"#,
        r#"http_requests_total{gate="ideate",method="POST",persona="iggy",route="/v1/hitl/approve/{runId}/{gate}",runId="",service="orchestrator",status="200"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}
