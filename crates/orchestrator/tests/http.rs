//! The orchestrator's skeleton over real HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use myloware_core::config::Config;
use myloware_db::{Db, conformance_tests};
use myloware_orchestrator::{OrchestratorServer, OrchestratorState};
use serde_json::{Value, json};

const KEY: &str = "orchestrator-test-key";

async fn spawn(db: &Db) -> String {
    let env: HashMap<&str, &str> = [("API_KEY", KEY), ("ORCHESTRATOR_PORT", "0"), ("BIND_HOST", "127.0.0.1")].into();
    let config = Config::from_lookup(|var| env.get(var).map(|v| v.to_string())).unwrap();
    let state = OrchestratorState::new(Arc::new(config), myloware_orchestrator::store::open(db));
    let server = OrchestratorServer::bind(state).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    base
}

async fn health_and_metrics_are_open_everything_else_needs_the_key(db: &Db) {
    let base = spawn(db).await;
    let http = reqwest::Client::new();

    let health: Value = http
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "orchestrator");

    let response = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "invalid API key"})
    );

    let response = http
        .get(format!("{base}/ready"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["checks"],
        json!({"database": "ok"})
    );

    let response = http
        .get(format!("{base}/v1/nothing"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "not found"}));

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains("service=\"orchestrator\"")
            && l.contains("route=\"/ready\"")
            && l.contains("status=\"401\"")),
        "{metrics}"
    );
}

conformance_tests!(health_and_metrics_are_open_everything_else_needs_the_key);
