//! The LLM agent layer against a fake OpenAI-compatible server: scripted
//! replies, every request recorded; and what its spans carry, as exported.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use myloware_core::config::LlmConfig;
use myloware_orchestrator::llm::{
    AgentTask, Llm, LlmError, MAX_CONTENT_BYTES, OutputSchema, RequestTokens, Role, ToolHandler, ToolSpec, Usage,
    Validator,
};
use serde_json::{Value, json};

const KEY: &str = "sk-test-key-0123456789";
const MODEL: &str = "gpt-test";

/// A request the fake received.
#[derive(Debug, Clone)]
struct Recorded {
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Fake {
    replies: Mutex<VecDeque<(u16, Value)>>,
    requests: Mutex<Vec<Recorded>>,
}

impl Fake {
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The messages of the `n`th request.
    fn messages(&self, n: usize) -> Vec<Value> {
        self.requests()[n].body["messages"].as_array().unwrap().clone()
    }
}

async fn completions(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: axum::Json<Value>) -> Response {
    fake.requests.lock().unwrap().push(Recorded {
        authorization: headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()),
        body: body.0,
    });
    let reply = fake.replies.lock().unwrap().pop_front();
    let (status, body) = reply.unwrap_or((
        500,
        json!({"error": {"message": "fake: no scripted reply left", "type": "fake"}}),
    ));
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Serves the scripted replies on 127.0.0.1; returns the fake and its `/v1` base.
async fn spawn_fake(replies: Vec<(u16, Value)>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake {
        replies: Mutex::new(replies.into()),
        requests: Mutex::default(),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake.clone());
    (fake, format!("{}/v1", myloware_testkit::fakes::serve(app).await))
}

fn llm(base: &str) -> Llm {
    Llm::from_config(&LlmConfig {
        api_key: Some(KEY.into()),
        base_url: base.parse().unwrap(),
        model: MODEL.into(),
    })
    .expect("a key is configured")
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// A final answer.
fn answer(content: &str) -> (u16, Value) {
    answer_with_usage(content, 10, 5)
}

fn answer_with_usage(content: &str, prompt: u64, completion: u64) -> (u16, Value) {
    (
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": usage(prompt, completion),
        }),
    )
}

/// A reply calling tools: `(id, name, raw arguments)`.
fn tool_calls(calls: &[(&str, &str, &str)], prompt: u64, completion: u64) -> (u16, Value) {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
        .collect();
    (
        200,
        json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": null, "tool_calls": calls}}],
            "usage": usage(prompt, completion),
        }),
    )
}

/// Tools that record their calls: `search` answers, `fail` errs.
#[derive(Default)]
struct Tools {
    calls: Mutex<Vec<(String, Value)>>,
}

impl Tools {
    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl ToolHandler for Tools {
    async fn call(&self, name: &str, arguments: Value) -> Result<Value, String> {
        self.calls.lock().unwrap().push((name.to_owned(), arguments.clone()));
        match name {
            "search" => Ok(json!({"results": ["wax", "wick"], "query": arguments["query"]})),
            _ => Err(format!("{name} is broken")),
        }
    }
}

fn tool(name: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: format!("the {name} tool"),
        parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
                           "additionalProperties": false}),
    }
}

fn ideas_schema() -> OutputSchema {
    OutputSchema {
        name: "ideas".into(),
        schema: json!({"type": "object", "properties": {"ideas": {"type": "array", "items": {"type": "string"}}},
                       "required": ["ideas"], "additionalProperties": false}),
    }
}

/// Iggy: one `search` tool, JSON ideas out.
fn iggy() -> AgentTask {
    AgentTask {
        name: "iggy".into(),
        system: "You are Iggy.".into(),
        user: r#"{"object":"candles"}"#.into(),
        history: Vec::new(),
        tools: vec![tool("search")],
        required_tools: Vec::new(),
        output: Some(ideas_schema()),
        validate: None,
        max_rounds: 8,
        run_id: None,
    }
}

fn roles(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["role"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_tool_call_round_trip_then_a_json_answer() {
    let (fake, base) = spawn_fake(vec![
        tool_calls(&[("call_1", "search", r#"{"query":"candles"}"#)], 100, 20),
        answer_with_usage(r#"{"ideas":["wax","wick"]}"#, 150, 30),
    ])
    .await;
    let tools = Tools::default();

    let out = llm(&base).run(&iggy(), &tools).await.unwrap();

    assert_eq!(tools.calls(), vec![("search".to_owned(), json!({"query": "candles"}))]);
    assert_eq!(fake.requests().len(), 2);
    let messages = fake.messages(1);
    assert_eq!(roles(&messages), ["system", "user", "assistant", "tool"]);
    let call = &messages[2]["tool_calls"][0];
    assert_eq!(call["id"], "call_1");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "search");
    assert_eq!(messages[3]["tool_call_id"], "call_1");
    let result: Value = serde_json::from_str(messages[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"results": ["wax", "wick"], "query": "candles"}));

    assert_eq!(out.output, Some(json!({"ideas": ["wax", "wick"]})));
    assert_eq!(out.content, r#"{"ideas":["wax","wick"]}"#);
    assert_eq!(out.attempts, 1);
    assert_eq!(
        out.usage,
        Usage {
            prompt_tokens: 250,
            completion_tokens: 50,
            total_tokens: 300,
            calls: 2,
            requests: vec![
                RequestTokens { input: 100, output: 20 },
                RequestTokens { input: 150, output: 30 },
            ],
        }
    );
    assert_eq!(out.tool_calls.len(), 1);
    assert_eq!(out.tool_calls[0].name, "search");
    assert_eq!(out.tool_calls[0].arguments, json!({"query": "candles"}));
    assert_eq!(out.tool_calls[0].result, result);
}

#[tokio::test]
async fn the_request_carries_the_schema_the_tools_the_model_and_the_key() {
    let (fake, base) = spawn_fake(vec![answer(r#"{"ideas":[]}"#)]).await;
    let mut task = iggy();
    task.history = vec![
        (Role::User, "earlier question".into()),
        (Role::Assistant, "earlier answer".into()),
    ];

    // A trailing slash on the base URL is trimmed.
    llm(&format!("{base}/")).run(&task, &Tools::default()).await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = &requests[0].body;
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "ideas");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["response_format"]["json_schema"]["schema"], ideas_schema().schema);
    assert_eq!(body["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "search");
    assert_eq!(body["tools"][0]["function"]["description"], "the search tool");
    assert_eq!(body["tools"][0]["function"]["parameters"], tool("search").parameters);
    assert_eq!(body["tool_choice"], "auto");
    let messages = fake.messages(0);
    assert_eq!(roles(&messages), ["system", "user", "assistant", "user"]);
    assert_eq!(messages[0]["content"], "You are Iggy.");
    assert_eq!(messages[1]["content"], "earlier question");
    assert_eq!(messages[2]["content"], "earlier answer");
    assert_eq!(messages[3]["content"], r#"{"object":"candles"}"#);
}

#[tokio::test]
async fn without_an_output_schema_or_tools_the_request_has_neither_and_text_is_accepted() {
    let (fake, base) = spawn_fake(vec![answer("Hi! I'm Brendan.")]).await;
    let task = AgentTask {
        name: "brendan".into(),
        tools: Vec::new(),
        output: None,
        ..iggy()
    };

    let out = llm(&base).run(&task, &Tools::default()).await.unwrap();

    assert_eq!(out.content, "Hi! I'm Brendan.");
    assert_eq!(out.output, None);
    let body = &fake.requests()[0].body;
    assert!(body.get("response_format").is_none(), "{body}");
    assert!(body.get("tools").is_none(), "{body}");
    assert!(body.get("tool_choice").is_none(), "{body}");
}

#[tokio::test]
async fn a_malformed_answer_gets_one_corrective_retry() {
    let (fake, base) = spawn_fake(vec![
        answer("Here are some ideas: wax, wick"),
        answer("```json\n{\"ideas\":[\"wax\"]}\n```"),
    ])
    .await;

    let out = llm(&base).run(&iggy(), &Tools::default()).await.unwrap();

    assert_eq!(out.attempts, 2);
    assert_eq!(out.output, Some(json!({"ideas": ["wax"]})));
    assert_eq!(out.usage.calls, 2);
    assert_eq!(fake.requests().len(), 2);
    let messages = fake.messages(1);
    assert_eq!(roles(&messages), ["system", "user", "assistant", "user"]);
    assert_eq!(messages[2]["content"], "Here are some ideas: wax, wick");
    let correction = messages[3]["content"].as_str().unwrap();
    assert!(correction.contains("not valid JSON"), "{correction}");
    assert!(correction.contains("expected value at line 1 column 1"), "{correction}");
    assert!(correction.contains("`ideas`"), "{correction}");
}

#[tokio::test]
async fn malformed_twice_is_invalid_after_exactly_two_requests() {
    let (fake, base) = spawn_fake(vec![
        answer("not json"),
        answer("{\"ideas\": [\"unterminated\""),
        answer(r#"{"ideas":["never asked for"]}"#),
    ])
    .await;

    let err = llm(&base).run(&iggy(), &Tools::default()).await.unwrap_err();

    match &err {
        LlmError::Invalid { task, reason } => {
            assert_eq!(task, "iggy");
            assert!(reason.contains("not valid JSON"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(
        err.to_string().starts_with("iggy gave an invalid answer twice"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_required_tool_never_called_is_named_then_missing() {
    let (fake, base) = spawn_fake(vec![
        answer(r#"{"ideas":["wax"]}"#),
        answer(r#"{"ideas":["wax"]}"#),
        answer(r#"{"ideas":["never asked for"]}"#),
    ])
    .await;
    let task = AgentTask {
        required_tools: vec!["search".into()],
        ..iggy()
    };

    let err = llm(&base).run(&task, &Tools::default()).await.unwrap_err();

    match err {
        LlmError::MissingTools { task, missing } => {
            assert_eq!(task, "iggy");
            assert_eq!(missing, ["search"]);
        }
        other => panic!("expected MissingTools, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 2);
    let messages = fake.messages(1);
    assert_eq!(roles(&messages), ["system", "user", "assistant", "user"]);
    let correction = messages[3]["content"].as_str().unwrap();
    assert!(correction.contains("required tool(s) `search`"), "{correction}");
}

#[tokio::test]
async fn a_required_tool_called_after_the_correction_is_accepted() {
    let (fake, base) = spawn_fake(vec![
        answer(r#"{"ideas":["wax"]}"#),
        tool_calls(&[("call_9", "search", r#"{"query":"wax"}"#)], 10, 5),
        answer(r#"{"ideas":["wax","wick"]}"#),
    ])
    .await;
    let tools = Tools::default();
    let task = AgentTask {
        required_tools: vec!["search".into()],
        ..iggy()
    };

    let out = llm(&base).run(&task, &tools).await.unwrap();

    assert_eq!(out.attempts, 2);
    assert_eq!(out.usage.calls, 3);
    assert_eq!(tools.calls().len(), 1);
    assert_eq!(out.output, Some(json!({"ideas": ["wax", "wick"]})));
    assert_eq!(
        roles(&fake.messages(2)),
        ["system", "user", "assistant", "user", "assistant", "tool"]
    );
}

#[tokio::test]
async fn a_rejecting_validator_triggers_the_retry_with_its_reason() {
    let (fake, base) = spawn_fake(vec![
        answer(r#"{"ideas":["wax","wick"]}"#),
        answer(r#"{"ideas":["wax","wick","flame"]}"#),
    ])
    .await;
    let validate: Validator = Box::new(|value| {
        let count = value["ideas"].as_array().map_or(0, Vec::len);
        if count == 3 {
            Ok(())
        } else {
            Err(format!("expected 3 ideas, got {count}"))
        }
    });
    let task = AgentTask {
        validate: Some(validate),
        ..iggy()
    };

    let out = llm(&base).run(&task, &Tools::default()).await.unwrap();

    assert_eq!(out.attempts, 2);
    assert_eq!(out.output, Some(json!({"ideas": ["wax", "wick", "flame"]})));
    let correction = fake.messages(1)[3]["content"].as_str().unwrap().to_owned();
    assert!(correction.contains("expected 3 ideas, got 2"), "{correction}");
}

#[tokio::test]
async fn a_validator_rejecting_twice_is_invalid_with_its_reason() {
    let (fake, base) = spawn_fake(vec![answer(r#"{"ideas":[]}"#), answer(r#"{"ideas":[]}"#)]).await;
    let task = AgentTask {
        validate: Some(Box::new(|_| Err("no ideas".into()))),
        ..iggy()
    };

    let err = llm(&base).run(&task, &Tools::default()).await.unwrap_err();

    assert!(
        matches!(&err, LlmError::Invalid { reason, .. } if reason == "no ideas"),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_401_is_a_request_error_with_the_servers_message_and_without_the_key() {
    let (fake, base) = spawn_fake(vec![(
        401,
        json!({"error": {"message": format!("Incorrect API key provided: {KEY}."),
                         "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )])
    .await;

    let err = llm(&base).run(&iggy(), &Tools::default()).await.unwrap_err();

    let LlmError::Request(message) = &err else {
        panic!("expected Request, got {err:?}")
    };
    assert!(message.contains("Incorrect API key provided"), "{message}");
    assert!(message.contains("401"), "{message}");
    assert!(!err.to_string().contains(KEY), "{err}");
    assert!(!format!("{err:?}").contains(KEY), "{err:?}");
    // A 4xx is not retried.
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_500_is_retried_a_bounded_number_of_times_then_a_request_error() {
    let failure = (
        500,
        json!({"error": {"message": "The server had an error while processing your request."}}),
    );
    let (fake, base) = spawn_fake(vec![failure; 6]).await;
    let started = Instant::now();

    let err = llm(&base).run(&iggy(), &Tools::default()).await.unwrap_err();

    let LlmError::Request(message) = &err else {
        panic!("expected Request, got {err:?}")
    };
    assert!(
        message.contains("The server had an error while processing your request."),
        "{message}"
    );
    assert!(message.contains("500"), "{message}");
    // async-openai 0.43: the first request and 3 retries (100, 200, 400 ms apart).
    assert_eq!(fake.requests().len(), 4);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_500_then_success_is_retried_transparently() {
    let (fake, base) = spawn_fake(vec![
        (503, json!({"error": {"message": "overloaded"}})),
        answer(r#"{"ideas":["wax"]}"#),
    ])
    .await;

    let out = llm(&base).run(&iggy(), &Tools::default()).await.unwrap();

    assert_eq!(out.output, Some(json!({"ideas": ["wax"]})));
    assert_eq!(out.usage.calls, 1);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_dead_server_fails_within_seconds() {
    let base = format!("http://127.0.0.1:{}/v1", myloware_testkit::free_port());
    let started = Instant::now();

    let err = llm(&base).run(&iggy(), &Tools::default()).await.unwrap_err();

    let LlmError::Request(message) = &err else {
        panic!("expected Request, got {err:?}")
    };
    assert!(message.to_lowercase().contains("connect"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_are_answered_with_errors_without_the_handler() {
    let (fake, base) = spawn_fake(vec![
        tool_calls(
            &[
                ("call_a", "delete_everything", "{}"),
                ("call_b", "search", "{not json"),
                ("call_c", "fail", r#"{"query":"x"}"#),
            ],
            10,
            5,
        ),
        answer(r#"{"ideas":[]}"#),
    ])
    .await;
    let tools = Tools::default();
    let task = AgentTask {
        tools: vec![tool("search"), tool("fail")],
        ..iggy()
    };

    let out = llm(&base).run(&task, &tools).await.unwrap();

    // Only the known tool with valid arguments reached the handler.
    assert_eq!(tools.calls(), vec![("fail".to_owned(), json!({"query": "x"}))]);
    let messages = fake.messages(1);
    assert_eq!(
        roles(&messages),
        ["system", "user", "assistant", "tool", "tool", "tool"]
    );
    let results: Vec<(Value, Value)> = messages[3..]
        .iter()
        .map(|m| {
            (
                m["tool_call_id"].clone(),
                serde_json::from_str(m["content"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            (json!("call_a"), json!({"error": "unknown tool delete_everything"})),
            (json!("call_b"), json!({"error": "arguments are not valid JSON"})),
            (json!("call_c"), json!({"error": "fail is broken"})),
        ]
    );
    assert_eq!(out.tool_calls.len(), 3);
    assert_eq!(
        out.tool_calls[0].result,
        json!({"error": "unknown tool delete_everything"})
    );
    assert_eq!(out.tool_calls[1].arguments, json!("{not json"));
}

#[tokio::test]
async fn tool_calls_past_max_rounds_fail() {
    let round = |id: &str| tool_calls(&[(id, "search", r#"{"query":"again"}"#)], 10, 5);
    let (fake, base) = spawn_fake(vec![round("c1"), round("c2"), round("c3"), answer(r#"{"ideas":[]}"#)]).await;
    let tools = Tools::default();
    let task = AgentTask {
        max_rounds: 2,
        run_id: None,
        ..iggy()
    };

    let err = llm(&base).run(&task, &tools).await.unwrap_err();

    assert!(
        matches!(&err, LlmError::TooManyRounds { task, rounds: 2 } if task == "iggy"),
        "{err:?}"
    );
    assert_eq!(tools.calls().len(), 2);
    assert_eq!(fake.requests().len(), 3);
}

#[test]
fn no_key_no_llm() {
    let config = |key: Option<&str>| LlmConfig {
        api_key: key.map(Into::into),
        base_url: "https://api.openai.com/v1".parse().unwrap(),
        model: MODEL.into(),
    };
    assert!(Llm::from_config(&config(None)).is_none());
    assert!(Llm::from_config(&config(Some(""))).is_none());
    let llm = Llm::from_config(&config(Some(KEY))).unwrap();
    assert_eq!(llm.model(), MODEL);
    assert!(!format!("{llm:?}").contains(KEY));
}

// ------------------------------------------------------- content on spans

/// An exported span's attributes, as text.
type Attributes = HashMap<String, String>;

/// Spans as the exporter gets them: each ended span's name and attributes.
#[derive(Debug, Clone, Default)]
struct Exported(Arc<Mutex<Vec<(String, Attributes)>>>);

impl opentelemetry_sdk::trace::SpanExporter for Exported {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        let mut spans = self.0.lock().unwrap();
        for span in batch {
            let attributes = span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect();
            spans.push((span.name.to_string(), attributes));
        }
        Ok(())
    }
}

impl Exported {
    /// The attributes of every span named `name`, in the order they ended.
    fn named(&self, name: &str) -> Vec<Attributes> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
            .collect()
    }
}

/// Exports this thread's spans (the test's runtime is single-threaded) to
/// the returned list, as `mw` does with OTLP, while the guard lives.
///
/// `tracing` caches whether a callsite is enabled once per process, asking
/// the subscriber of whichever thread reaches it first: a sibling test
/// running the LLM client without a subscriber would switch the `chat` span
/// off for every test. A bare global registry answers for such threads (it
/// enables everything and records nothing), and the cache is rebuilt once
/// this thread's subscriber is in place.
fn export_spans() -> (Exported, tracing::subscriber::DefaultGuard) {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry())
            .expect("no other global subscriber in this test binary");
    });
    let exported = Exported::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exported.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (exported, guard)
}

/// Parses a content attribute (JSON).
fn content(span: &Attributes, key: &str) -> Value {
    serde_json::from_str(&span[key]).unwrap_or_else(|err| panic!("{key} is not JSON ({err}): {}", span[key]))
}

const CONFIGURED_SECRET: &str = "configured-secret-0123456789";

#[tokio::test]
async fn with_trace_content_the_spans_carry_prompt_completion_and_tool_call_redacted() {
    let query = format!("candles {CONFIGURED_SECRET}");
    let (_fake, base) = spawn_fake(vec![
        tool_calls(&[("call_1", "search", &json!({"query": query}).to_string())], 100, 20),
        answer(r#"{"ideas":["wax","a key like sk-proj-AbCdEf0123456789xyz"]}"#),
    ])
    .await;
    let mut task = iggy();
    task.user = format!(
        "make candles; approve at https://mw.example.com/v1/hitl/approve/run_a/ideate?token=1796677328.{} with \
         Authorization: Bearer abcdefghijklmnop0123 and {CONFIGURED_SECRET}",
        "ab".repeat(32)
    );
    let (exported, _guard) = export_spans();
    let llm = llm(&base).with_trace_content(myloware_core::redact::Redactor::new([CONFIGURED_SECRET]));

    llm.run(&task, &Tools::default()).await.unwrap();

    let chats = exported.named(&format!("chat {MODEL}"));
    assert_eq!(chats.len(), 2, "one span per completion request");
    assert_eq!(
        chats[0]["gen_ai.usage.input_tokens"], "100",
        "fields recorded after the content stay"
    );
    let prompt = content(&chats[0], "gen_ai.prompt");
    let messages = prompt["messages"].as_array().unwrap();
    assert_eq!(roles(messages), ["system", "user"]);
    assert_eq!(messages[0]["content"], "You are Iggy.");
    assert_eq!(
        messages[1]["content"],
        "make candles; approve at https://mw.example.com/v1/hitl/approve/run_a/ideate?token=[REDACTED] with \
         Authorization: Bearer [REDACTED] and [REDACTED]"
    );
    let completion = content(&chats[0], "gen_ai.completion");
    let call = &completion["messages"][0]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "search");
    assert_eq!(call["arguments"], r#"{"query":"candles [REDACTED]"}"#);
    // The second request's prompt holds the whole conversation so far.
    let prompt = content(&chats[1], "gen_ai.prompt");
    assert_eq!(
        roles(prompt["messages"].as_array().unwrap()),
        ["system", "user", "assistant", "tool"]
    );
    let completion = content(&chats[1], "gen_ai.completion");
    assert_eq!(
        completion["messages"][0]["content"],
        r#"{"ideas":["wax","a key like [REDACTED]"]}"#
    );
    assert_eq!(completion["messages"][0]["role"], "assistant");

    let tools = exported.named("tool search");
    assert_eq!(tools.len(), 1);
    assert_eq!(
        content(&tools[0], "gen_ai.prompt"),
        json!({"query": "candles [REDACTED]"})
    );
    assert_eq!(
        content(&tools[0], "gen_ai.completion"),
        json!({"results": ["wax", "wick"], "query": "candles [REDACTED]"})
    );

    let everything = format!("{:?}", exported.0.lock().unwrap());
    assert!(
        !everything.contains(CONFIGURED_SECRET),
        "a secret was exported: {everything}"
    );
    assert!(!everything.contains("abcdefghijklmnop0123") && !everything.contains("sk-proj"));
}

#[tokio::test]
async fn without_trace_content_the_spans_carry_no_content() {
    let (_fake, base) = spawn_fake(vec![
        tool_calls(&[("call_1", "search", r#"{"query":"candles"}"#)], 100, 20),
        answer(r#"{"ideas":["wax"]}"#),
    ])
    .await;
    let (exported, _guard) = export_spans();

    llm(&base).run(&iggy(), &Tools::default()).await.unwrap();

    let spans: Vec<_> = exported
        .named(&format!("chat {MODEL}"))
        .into_iter()
        .chain(exported.named("tool search"))
        .collect();
    assert_eq!(spans.len(), 3);
    for span in &spans {
        assert!(span.contains_key("gen_ai.operation.name"), "{span:?}");
        assert!(
            !span
                .keys()
                .any(|k| k.starts_with("gen_ai.prompt") || k.starts_with("gen_ai.completion")),
            "{span:?}"
        );
    }
    assert_eq!(spans[0]["gen_ai.usage.input_tokens"], "100");
}

#[tokio::test]
async fn long_content_is_bounded_and_stays_json() {
    let (_fake, base) = spawn_fake(vec![answer(&"w".repeat(50_000))]).await;
    let task = AgentTask {
        user: "u".repeat(100_000),
        tools: Vec::new(),
        output: None,
        ..iggy()
    };
    let (exported, _guard) = export_spans();
    let llm = llm(&base).with_trace_content(myloware_core::redact::Redactor::default());

    llm.run(&task, &Tools::default()).await.unwrap();

    let chat = &exported.named(&format!("chat {MODEL}"))[0];
    for key in ["gen_ai.prompt", "gen_ai.completion"] {
        assert!(chat[key].len() <= MAX_CONTENT_BYTES, "{key}: {} bytes", chat[key].len());
    }
    let prompt = content(chat, "gen_ai.prompt");
    let user = prompt["messages"][1]["content"].as_str().unwrap();
    assert!(user.starts_with("uuu") && user.ends_with("…[truncated]"), "{user}");
    assert_eq!(
        prompt["messages"][0]["content"], "You are Iggy.",
        "short strings are kept"
    );
}
