//! The LLM agent layer: one persona task (Iggy's ideas, Brendan's turn) run
//! over an OpenAI-compatible chat-completions endpoint to a validated answer.
//!
//! [`Llm::run`] sends the task's messages with its function tools, executes
//! the tool calls the model makes through a [`ToolHandler`] and loops until
//! the model answers without tools. A wrong final answer (required tools not
//! called, content that is not JSON or fails `validate`) gets one corrective
//! retry naming what was wrong; a second wrong answer is an error.
//!
//! Transport: every HTTP attempt times out after [`REQUEST_TIMEOUT`].
//! async-openai 0.43 retries inside the client (its `OpenAIRetryLayer`,
//! installed by `Client::build`): 3 retries on 5xx, on 429 other than
//! `insufficient_quota`, and on connect errors, waiting 100, 200, 400 ms (or
//! the server's `Retry-After`); other 4xx and timeouts are not retried.
//! [`CALL_DEADLINE`] bounds a completion including those retries.
//!
//! Each completion request is a `chat <model>` span and each tool call a
//! `tool <name>` span (GenAI semantic conventions); with `TRACE_CONTENT`
//! they also carry the prompt and completion, or the tool's arguments and
//! result, redacted ([`content`]).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionTool, ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest,
    CreateChatCompletionResponse, FunctionObject, ResponseFormat, ResponseFormatJsonSchema, ToolChoiceOptions,
};
use myloware_core::config::LlmConfig;
use myloware_core::redact::Redactor;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tracing::Instrument;

mod content;
mod messages;

pub use content::MAX_CONTENT_BYTES;
use content::Messages;
use messages::{assistant_message, check, function_tool, quote, user_message};

/// Timeout of one HTTP attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one completion request including async-openai's retries.
pub const CALL_DEADLINE: Duration = Duration::from_secs(150);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest server body quoted in an error.
const MAX_QUOTED: usize = 500;

/// The chat-completions client for one model.
#[derive(Clone)]
pub struct Llm {
    client: Client<OpenAIConfig>,
    model: String,
    /// The key, only to scrub it from server messages.
    api_key: secrecy::SecretString,
    /// With `TRACE_CONTENT`: what the spans' content is redacted with.
    content: Option<Arc<Redactor>>,
}

impl fmt::Debug for Llm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Llm")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A function the model may call.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

/// The JSON schema the final answer must follow (structured outputs).
#[derive(Debug, Clone)]
pub struct OutputSchema {
    pub name: String,
    pub schema: Value,
}

/// An extra check of the parsed answer; `Err` names what is wrong.
pub type Validator = Box<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// One agent task: the conversation, the tools and what a valid answer is.
pub struct AgentTask {
    /// "iggy", "brendan": for logs and errors.
    pub name: String,
    /// The system prompt.
    pub system: String,
    /// The user message (may be long: JSON context).
    pub user: String,
    /// Earlier turns, placed between the system prompt and `user`.
    pub history: Vec<(Role, String)>,
    pub tools: Vec<ToolSpec>,
    /// Each must be called at least once before the final answer.
    pub required_tools: Vec<String>,
    /// When set, the request asks for this schema (`strict`) and the final
    /// content must be JSON.
    pub output: Option<OutputSchema>,
    /// Extra check of the parsed answer. When set, the content must be JSON
    /// even without `output`.
    pub validate: Option<Validator>,
    /// Bound on tool-call rounds per attempt.
    pub max_rounds: u32,
    /// The run this task works for: on every span of the task.
    pub run_id: Option<String>,
}

impl fmt::Debug for AgentTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentTask")
            .field("name", &self.name)
            .field("tools", &self.tools.iter().map(|t| &t.name).collect::<Vec<_>>())
            .field("required_tools", &self.required_tools)
            .field("output", &self.output.as_ref().map(|o| &o.name))
            .field("max_rounds", &self.max_rounds)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// Executes the model's tool calls.
#[async_trait::async_trait]
pub trait ToolHandler: Send + Sync {
    /// Executes a tool call; `Err(message)` is reported to the model as the
    /// tool result `{"error": message}`.
    async fn call(&self, name: &str, arguments: Value) -> Result<Value, String>;
}

/// Tokens over every completion request of a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Completion requests made.
    pub calls: u32,
    /// Each request's tokens, in order (each is priced on its own).
    #[serde(skip)]
    pub requests: Vec<RequestTokens>,
}

/// One completion request's tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTokens {
    pub input: u64,
    pub output: u64,
}

/// One tool call and what the model was told it returned.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallRecord {
    pub name: String,
    /// The parsed arguments (the raw text as a string when not JSON).
    pub arguments: Value,
    /// The result, or `{"error": ...}`.
    pub result: Value,
}

/// A validated answer.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    /// The final content as the model sent it.
    pub content: String,
    /// The parsed content when the task asked for JSON.
    pub output: Option<Value>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub usage: Usage,
    /// 1, or 2 after the corrective retry.
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Transport or non-2xx, with the server's message (never the key).
    #[error("the LLM request failed: {0}")]
    Request(String),
    #[error("{task} gave an invalid answer twice: {reason}")]
    Invalid { task: String, reason: String },
    #[error("{task} did not call the required tool(s) {missing:?}")]
    MissingTools { task: String, missing: Vec<String> },
    #[error("{task} kept calling tools past {rounds} rounds")]
    TooManyRounds { task: String, rounds: u32 },
}

/// What was wrong with a final answer.
struct Rejection {
    missing: Vec<String>,
    invalid: Option<String>,
}

impl Rejection {
    fn correction(&self, task: &AgentTask) -> String {
        let mut lines = Vec::new();
        if !self.missing.is_empty() {
            let names = self
                .missing
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!(
                "You did not call the required tool(s) {names}: call them first."
            ));
        }
        if let Some(reason) = &self.invalid {
            lines.push(format!("Your answer was rejected: {reason}."));
        }
        lines.push(match &task.output {
            Some(schema) => format!(
                "Then reply with only the corrected JSON answer (schema `{}`).",
                schema.name
            ),
            None if task.validate.is_some() => "Then reply with only the corrected JSON answer.".into(),
            None => "Then give your final answer again.".into(),
        });
        lines.join("\n")
    }

    fn into_error(self, task: &AgentTask) -> LlmError {
        if !self.missing.is_empty() {
            LlmError::MissingTools {
                task: task.name.clone(),
                missing: self.missing,
            }
        } else {
            LlmError::Invalid {
                task: task.name.clone(),
                reason: self.invalid.unwrap_or_default(),
            }
        }
    }
}

impl Llm {
    /// None when no `OPENAI_API_KEY` is configured.
    pub fn from_config(config: &LlmConfig) -> Option<Llm> {
        let key = config.api_key.as_ref()?;
        if key.expose_secret().trim().is_empty() {
            return None;
        }
        // async-openai unwraps the header it builds from the key.
        if reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).is_err() {
            tracing::warn!("OPENAI_API_KEY is not a valid header value; the LLM is disabled");
            return None;
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("myloware/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        // Organization and project are set explicitly so the environment
        // (OPENAI_ORG_ID, OPENAI_PROJECT_ID) does not leak into the requests.
        let openai = OpenAIConfig::new()
            .with_api_base(config.base_url.as_str().trim_end_matches('/'))
            .with_api_key(key.expose_secret())
            .with_org_id("")
            .with_project_id("");
        Some(Llm {
            client: Client::build(http, openai),
            model: config.model.clone(),
            api_key: key.clone(),
            content: None,
        })
    }

    /// Puts the prompts and completions, and the tools' arguments and
    /// results, on the spans, redacted by `redactor` (`TRACE_CONTENT`).
    pub fn with_trace_content(mut self, redactor: Redactor) -> Llm {
        self.content = Some(Arc::new(redactor));
        self
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Runs one agent task to a validated answer.
    pub async fn run(&self, task: &AgentTask, tools: &dyn ToolHandler) -> Result<AgentOutput, LlmError> {
        let mut messages = Vec::with_capacity(task.history.len() + 2);
        messages.push(ChatCompletionRequestMessage::System(
            ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(task.system.clone()),
                name: None,
            },
        ));
        for (role, text) in &task.history {
            messages.push(match role {
                Role::User => user_message(text.clone()),
                Role::Assistant => assistant_message(Some(text.clone()), None),
            });
        }
        messages.push(user_message(task.user.clone()));

        let mut usage = Usage::default();
        let mut records = Vec::new();
        let mut called = BTreeSet::new();
        let mut attempts = 1;
        let mut rounds = 0;
        loop {
            let response = self.complete(task, &messages, attempts, rounds).await?;
            usage.calls += 1;
            if let Some(u) = &response.usage {
                usage.prompt_tokens += u64::from(u.prompt_tokens);
                usage.completion_tokens += u64::from(u.completion_tokens);
                usage.total_tokens += u64::from(u.total_tokens);
                usage.requests.push(RequestTokens {
                    input: u64::from(u.prompt_tokens),
                    output: u64::from(u.completion_tokens),
                });
            }
            let message = response
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| LlmError::Request("the response had no choices".into()))?
                .message;

            let calls = message.tool_calls.unwrap_or_default();
            if !calls.is_empty() {
                if rounds >= task.max_rounds {
                    return Err(LlmError::TooManyRounds {
                        task: task.name.clone(),
                        rounds: task.max_rounds,
                    });
                }
                rounds += 1;
                let mut results = Vec::with_capacity(calls.len());
                for call in &calls {
                    let (id, record, reached_handler) = self.execute(task, call, tools).await;
                    if reached_handler {
                        called.insert(record.name.clone());
                    }
                    results.push(ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                        content: ChatCompletionRequestToolMessageContent::Text(record.result.to_string()),
                        tool_call_id: id,
                    }));
                    records.push(record);
                }
                messages.push(assistant_message(message.content, Some(calls)));
                messages.extend(results);
                continue;
            }

            let content = message.content.unwrap_or_default();
            let rejection = match check(task, &called, &content, message.refusal.as_deref()) {
                Ok(output) => {
                    return Ok(AgentOutput {
                        content,
                        output,
                        tool_calls: records,
                        usage,
                        attempts,
                    });
                }
                Err(rejection) => rejection,
            };
            tracing::warn!(
                task = %task.name,
                attempt = attempts,
                missing = ?rejection.missing,
                reason = rejection.invalid.as_deref().unwrap_or(""),
                "the LLM's answer was rejected"
            );
            if attempts >= 2 {
                return Err(rejection.into_error(task));
            }
            attempts += 1;
            rounds = 0;
            messages.push(assistant_message(Some(content), None));
            messages.push(user_message(rejection.correction(task)));
        }
    }

    /// One completion request, in its own span.
    async fn complete(
        &self,
        task: &AgentTask,
        messages: &[ChatCompletionRequestMessage],
        attempt: u32,
        round: u32,
    ) -> Result<CreateChatCompletionResponse, LlmError> {
        let request = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: messages.to_vec(),
            tools: (!task.tools.is_empty()).then(|| task.tools.iter().map(function_tool).collect()),
            tool_choice: (!task.tools.is_empty())
                .then_some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto)),
            response_format: task.output.as_ref().map(|output| ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: output.name.clone(),
                    schema: output.schema.clone(),
                    strict: Some(true),
                },
            }),
            ..Default::default()
        };
        // GenAI semantic conventions; LangSmith reads the `langsmith.*` ones.
        let span = tracing::info_span!(
            "llm.call",
            otel.name = %format!("chat {}", self.model),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.system = "openai",
            gen_ai.request.model = %self.model,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            langsmith.span.kind = "llm",
            run_id = tracing::field::Empty,
            langsmith.metadata.run_id = tracing::field::Empty,
            task = %task.name,
            attempt,
            round,
        );
        if let Some(run_id) = &task.run_id {
            span.record("run_id", run_id.as_str());
            span.record("langsmith.metadata.run_id", run_id.as_str());
        }
        if let Some(redactor) = &self.content {
            content::set(&span, "gen_ai.prompt", redactor, "messages", &Messages { messages });
        }
        async {
            let sent = tokio::time::timeout(CALL_DEADLINE, self.client.chat().create(request)).await;
            let response = match sent {
                Err(_) => {
                    return Err(LlmError::Request(format!(
                        "no answer within {} s",
                        CALL_DEADLINE.as_secs()
                    )));
                }
                Ok(Err(err)) => {
                    let message = self.describe(&err);
                    tracing::warn!(error = %message, "LLM request failed");
                    return Err(LlmError::Request(message));
                }
                Ok(Ok(response)) => response,
            };
            if let Some(redactor) = &self.content {
                let messages: Vec<_> = response.choices.iter().map(|choice| &choice.message).collect();
                let messages = Messages { messages: &messages };
                content::set(
                    &tracing::Span::current(),
                    "gen_ai.completion",
                    redactor,
                    "messages",
                    &messages,
                );
            }
            if let Some(u) = &response.usage {
                let span = tracing::Span::current();
                span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
                span.record("gen_ai.usage.output_tokens", u.completion_tokens);
                tracing::debug!(
                    prompt_tokens = u.prompt_tokens,
                    completion_tokens = u.completion_tokens,
                    total_tokens = u.total_tokens,
                    "LLM usage"
                );
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }

    /// Runs one tool call: its id, its record, and whether the handler ran.
    async fn execute(
        &self,
        task: &AgentTask,
        call: &ChatCompletionMessageToolCalls,
        tools: &dyn ToolHandler,
    ) -> (String, ToolCallRecord, bool) {
        let (id, name, raw) = match call {
            ChatCompletionMessageToolCalls::Function(call) => (
                call.id.clone(),
                call.function.name.clone(),
                call.function.arguments.clone(),
            ),
            ChatCompletionMessageToolCalls::Custom(call) => (
                call.id.clone(),
                call.custom_tool.name.clone(),
                call.custom_tool.input.clone(),
            ),
        };
        let function = matches!(call, ChatCompletionMessageToolCalls::Function(_));
        let known = function && task.tools.iter().any(|tool| tool.name == name);
        // Models send "" for a function without parameters.
        let parsed = if raw.trim().is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_str::<Value>(&raw)
        };
        let (arguments, result, reached) = if !known {
            let arguments = parsed.unwrap_or(Value::String(raw));
            (arguments, json!({"error": format!("unknown tool {name}")}), false)
        } else {
            match parsed {
                Err(_) => (
                    Value::String(raw),
                    json!({"error": "arguments are not valid JSON"}),
                    false,
                ),
                Ok(arguments) => {
                    let span = tracing::info_span!(
                        "tool",
                        otel.name = %format!("tool {name}"),
                        gen_ai.operation.name = "execute_tool",
                        gen_ai.tool.name = %name,
                        langsmith.span.kind = "tool",
                        run_id = tracing::field::Empty,
                        langsmith.metadata.run_id = tracing::field::Empty,
                    );
                    if let Some(run_id) = &task.run_id {
                        span.record("run_id", run_id.as_str());
                        span.record("langsmith.metadata.run_id", run_id.as_str());
                    }
                    if let Some(redactor) = &self.content {
                        content::set(&span, "gen_ai.prompt", redactor, "input", &arguments);
                    }
                    let called = tools.call(&name, arguments.clone()).instrument(span.clone()).await;
                    let result = match called {
                        Ok(value) => value,
                        Err(message) => json!({"error": message}),
                    };
                    if let Some(redactor) = &self.content {
                        content::set(&span, "gen_ai.completion", redactor, "output", &result);
                    }
                    (arguments, result, true)
                }
            }
        };
        tracing::debug!(task = %task.name, tool = %name, ok = result.get("error").is_none(), "LLM tool call");
        (
            id,
            ToolCallRecord {
                name,
                arguments,
                result,
            },
            reached,
        )
    }

    /// The error as the operator should read it: the server's own message,
    /// with the key scrubbed.
    fn describe(&self, err: &OpenAIError) -> String {
        let message = match err {
            OpenAIError::ApiError(response) => {
                let api = &response.api_error;
                // async-openai keeps a 5xx body verbatim: dig the message out.
                let text = serde_json::from_str::<Value>(&api.message)
                    .ok()
                    .and_then(|body| {
                        body.pointer("/error/message")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| api.message.clone());
                let mut message = format!("{}: {}", response.status_code, quote(&text));
                if let Some(code) = api.code.as_deref().or(api.r#type.as_deref()) {
                    message.push_str(&format!(" ({code})"));
                }
                message
            }
            OpenAIError::JSONDeserialize(err, body) => format!("unreadable response ({err}): {}", quote(body)),
            // reqwest's message names the URL; the causes say what happened.
            OpenAIError::Reqwest(err) => {
                let mut message = err.to_string();
                let mut source = std::error::Error::source(err);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                message
            }
            other => other.to_string(),
        };
        let key = self.api_key.expose_secret();
        if key.is_empty() {
            message
        } else {
            message.replace(key, "[redacted]")
        }
    }
}
