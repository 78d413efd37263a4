//! Traces from a real `mw dev` process to an OTLP/HTTP receiver on
//! loopback (protobuf, decoded here): a chat-proposed run is one trace from
//! `brendan-chat` through `aismr-graph` to every persona step and provider
//! request, each span carrying `run_id`; LangSmith's variables send its
//! headers; a dead collector changes nothing for the run; LLM spans carry
//! the prompt and completion, redacted, unless `TRACE_CONTENT=false`.

use myloware_testkit::JsonAnswer;
use myloware_testkit::process::{Process, Scratch};
use myloware_testkit::wait_until;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use prost::Message;
use serde_json::{Value, json};

const KEY: &str = "dev-api-key-not-for-production";

/// The parts of OTLP's `ExportTraceServiceRequest` this test reads
/// (protobuf ignores the other fields).
mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(string, optional, tag = "1")]
        pub string_value: Option<String>,
        #[prost(bool, optional, tag = "2")]
        pub bool_value: Option<bool>,
        #[prost(int64, optional, tag = "3")]
        pub int_value: Option<i64>,
        #[prost(double, optional, tag = "4")]
        pub double_value: Option<f64>,
    }
}

#[derive(Debug, Clone)]
struct SpanSeen {
    trace: String,
    id: String,
    parent: String,
    name: String,
    service: String,
    attributes: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<SpanSeen>>>,
    /// Headers of every export request.
    headers: Arc<Mutex<Vec<HeaderMap>>>,
}

fn text(value: &Option<otlp::AnyValue>) -> String {
    match value {
        Some(v) => v
            .string_value
            .clone()
            .or_else(|| v.int_value.map(|i| i.to_string()))
            .or_else(|| v.bool_value.map(|b| b.to_string()))
            .or_else(|| v.double_value.map(|d| d.to_string()))
            .unwrap_or_default(),
        None => String::new(),
    }
}

async fn receive(State(collector): State<Collector>, headers: HeaderMap, body: Bytes) -> Vec<u8> {
    let request = otlp::ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    collector.headers.lock().unwrap().push(headers);
    let mut spans = collector.spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(&kv.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(SpanSeen {
                    trace: hex(&span.trace_id),
                    id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name,
                    service: service.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                        .collect(),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse.
    Vec::new()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A collector on loopback serving `path`; its base URL.
async fn collector(path: &str) -> (Collector, String) {
    let collector = Collector::default();
    let app = axum::Router::new()
        .route(path, post(receive))
        .with_state(collector.clone());
    (collector, myloware_testkit::fakes::serve(app).await)
}

/// `mw dev` in a fresh folder (SQLite) with `vars`, killed on drop (then
/// its folder removed).
struct Dev {
    process: Process,
    api: String,
    http: reqwest::Client,
    _dir: Scratch,
}

impl Dev {
    async fn start(name: &str, vars: &[(&str, String)]) -> Dev {
        let dir = Scratch::new(&format!("traces-{name}"));
        let (api_port, orchestrator_port) = (myloware_testkit::free_port(), myloware_testkit::free_port());
        let api = format!("http://127.0.0.1:{api_port}");
        let defaults = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("PROJECTS_DIR", myloware_testkit::projects_dir().display().to_string()),
            ("BIND_HOST", "127.0.0.1".into()),
            ("API_PORT", api_port.to_string()),
            ("ORCHESTRATOR_PORT", orchestrator_port.to_string()),
            ("API_URL", api.clone()),
            ("PUBLIC_BASE_URL", api.clone()),
            ("ORCHESTRATOR_URL", format!("http://127.0.0.1:{orchestrator_port}")),
            ("ENGINE_POLL_MS", "50".into()),
            ("RATE_LIMIT_PER_MINUTE", "0".into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "info".into()),
            // Export often, so the test does not wait for the default 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ];
        let env: Vec<(String, String)> = defaults
            .into_iter()
            .chain(vars.iter().cloned())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let bin = Path::new(env!("CARGO_BIN_EXE_mw-system"));
        let mut process = Process::spawn("mw", bin, &["dev"], &env, dir.path()).unwrap();
        if let Err(why) = process.wait_healthy(api_port, Duration::from_secs(20)).await {
            panic!("mw dev did not start: {why}");
        }
        Dev {
            process,
            api,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .header("x-api-key", KEY)
            .json(&body)
            .sent()
            .await;
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn wait_status(&self, run_id: &str, status: &str) {
        let url = &format!("{}/v1/runs/{run_id}", self.api);
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(50),
            status,
            move || async move {
                let run: Value = self.http.get(url).header("x-api-key", KEY).json_answer().await;
                if run["status"] == status {
                    Ok(())
                } else {
                    Err(format!("run is {}, log:\n{}", run["status"], self.process.log_tail(40)))
                }
            },
        )
        .await
    }
}

/// Waits until the collector holds spans satisfying `done`.
async fn spans_until(collector: &Collector, what: &str, done: impl Fn(&[SpanSeen]) -> bool) -> Vec<SpanSeen> {
    let done = &done;
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        what,
        move || async move {
            let spans = collector.spans.lock().unwrap().clone();
            if done(&spans) {
                return Ok(spans);
            }
            let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
            Err(format!("none among {names:?}"))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_proposed_run_is_one_trace_with_run_id_on_every_span() {
    let (collector, base) = collector("/v1/traces").await;
    let dev = Dev::start("otlp", &[("OTEL_EXPORTER_OTLP_ENDPOINT", base)]).await;
    let reply = dev
        .post(
            "/v1/chat/brendan",
            json!({"user_id": "tracer", "message": "make an AISMR video about candles"}),
        )
        .await;
    let run_id = reply["run_ids"][0].as_str().unwrap().to_string();
    let link = reply["links"][0]["approvalUrl"].as_str().unwrap();
    assert!(dev.http.post(link).send().await.unwrap().status().is_success());
    for gate in ["ideate", "prepublish"] {
        dev.wait_status(&run_id, &format!("awaiting_{gate}")).await;
        dev.post(&format!("/v1/hitl/approve/{run_id}/{gate}"), json!({})).await;
    }
    dev.wait_status(&run_id, "published").await;

    let personas = ["persona.iggy", "persona.riley", "persona.alex", "persona.quinn"];
    let spans = spans_until(&collector, "the whole run", |spans| {
        let has = |name: &str| spans.iter().any(|s| s.name == name);
        has("brendan-chat")
            && has("aismr-graph")
            && personas.iter().all(|p| has(p))
            && has("provider.upload_post.publish")
    })
    .await;
    let chat = spans.iter().find(|s| s.name == "brendan-chat").unwrap();
    let graph = spans.iter().find(|s| s.name == "aismr-graph").unwrap();
    assert_eq!(graph.attributes["run_id"], run_id);
    assert_eq!(graph.attributes["langsmith.metadata.run_id"], run_id);
    // chat -> run: one trace, the run's root under the chat turn.
    assert_eq!(graph.trace, chat.trace);
    assert_eq!(graph.parent, chat.id);
    // Brendan's side of the turn (the orchestrator) joins it through traceparent.
    let turn = spans
        .iter()
        .find(|s| s.name == "brendan.turn")
        .expect("the orchestrator's turn span");
    assert_eq!(
        (turn.trace.as_str(), turn.parent.as_str()),
        (chat.trace.as_str(), chat.id.as_str())
    );

    // Every span about the run is in that trace and names the run.
    let of_run: Vec<&SpanSeen> = spans
        .iter()
        .filter(|s| s.attributes.get("run_id") == Some(&run_id))
        .collect();
    for span in &of_run {
        assert_eq!(span.trace, chat.trace, "{} is in another trace", span.name);
    }
    for name in personas
        .iter()
        .copied()
        .chain(["provider.kieai.submit", "provider.shotstack.render", "gate.ideate"])
    {
        assert!(of_run.iter().any(|s| s.name == name), "{name} with run_id missing");
    }
    // Persona steps hang under the orchestrator's execution spans, which
    // hang under the run's root.
    let executions: Vec<&SpanSeen> = of_run.iter().copied().filter(|s| s.name == "execution").collect();
    assert!(!executions.is_empty());
    assert!(executions.iter().all(|e| e.parent == graph.id));
    let iggy = of_run.iter().find(|s| s.name == "persona.iggy").unwrap();
    assert!(executions.iter().any(|e| e.id == iggy.parent));
    let submit = of_run.iter().find(|s| s.name == "provider.kieai.submit").unwrap();
    let riley: Vec<&&SpanSeen> = of_run.iter().filter(|s| s.name == "persona.riley").collect();
    assert!(
        riley.iter().any(|r| r.id == submit.parent),
        "provider requests are children of their step"
    );
    // `mw dev` runs both services in one process: one service name.
    assert!(spans.iter().all(|s| s.service == "myloware"), "{:?}", spans[0].service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langsmith_variables_send_its_headers_and_a_dead_collector_changes_nothing() {
    let (collector, base) = collector("/otel/v1/traces").await;
    let dev = Dev::start(
        "langsmith",
        &[
            ("LANGSMITH_API_KEY", "ls-test-key".into()),
            ("LANGSMITH_PROJECT", "myloware-tests".into()),
            ("LANGSMITH_ENDPOINT", format!("{base}/otel")),
        ],
    )
    .await;
    let started = dev
        .post(
            "/v1/runs/start",
            json!({"project": "test_video_gen", "input": {"prompt": "smoke"}}),
        )
        .await;
    let run_id = started["runId"].as_str().unwrap().to_string();
    dev.wait_status(&run_id, "published").await;
    spans_until(&collector, "test_video_gen-graph", |spans| {
        spans.iter().any(|s| s.name == "test_video_gen-graph")
    })
    .await;
    let headers = collector.headers.lock().unwrap()[0].clone();
    assert_eq!(headers["x-api-key"], "ls-test-key");
    assert_eq!(headers["langsmith-project"], "myloware-tests");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    drop(dev);

    // Nothing listens at the endpoint: requests and runs are unaffected.
    let dead = format!("http://127.0.0.1:{}", myloware_testkit::free_port());
    let dev = Dev::start("dead", &[("OTEL_EXPORTER_OTLP_ENDPOINT", dead)]).await;
    let started = Instant::now();
    let run = dev
        .post(
            "/v1/runs/start",
            json!({"project": "test_video_gen", "input": {"prompt": "smoke"}}),
        )
        .await;
    dev.wait_status(run["runId"].as_str().unwrap(), "published").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_spans_carry_the_redacted_prompt_and_completion_unless_switched_off() {
    let llm = myloware_testkit::fakes::OpenAi::start(|_| myloware_testkit::fakes::say("Candles it is.")).await;
    let message = format!("hello, my key is {KEY}");
    for content in [true, false] {
        let (collector, base) = collector("/v1/traces").await;
        let mut vars: Vec<(&str, String)> = llm.vars().into_iter().map(|(k, v)| (k, v.to_string())).collect();
        vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", base));
        if !content {
            vars.push(("TRACE_CONTENT", "false".into()));
        }
        let dev = Dev::start(&format!("content-{content}"), &vars).await;
        dev.post("/v1/chat/brendan", json!({"user_id": "tracer", "message": message}))
            .await;

        let spans = spans_until(&collector, "the LLM call", |spans| {
            spans.iter().any(|s| s.name == "chat fake-model")
        })
        .await;
        let chat = spans.iter().find(|s| s.name == "chat fake-model").unwrap();
        assert_eq!(chat.attributes["gen_ai.request.model"], "fake-model");
        if content {
            // Development records content by default; the API key is a configured secret.
            let prompt = &chat.attributes["gen_ai.prompt"];
            assert!(prompt.contains("hello, my key is [REDACTED]"), "{prompt}");
            let completion: Value = serde_json::from_str(&chat.attributes["gen_ai.completion"]).unwrap();
            assert_eq!(completion["messages"][0]["content"], "Candles it is.");
        } else {
            assert!(!chat.attributes.contains_key("gen_ai.prompt"), "{:?}", chat.attributes);
            assert!(!chat.attributes.contains_key("gen_ai.completion"));
        }
        let exported = format!("{spans:?}");
        assert!(!exported.contains(KEY), "the API key was exported");
    }
}
