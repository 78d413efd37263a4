//! Prompts, completions and tool calls on the spans (`TRACE_CONTENT`).
//!
//! The attributes are `gen_ai.prompt` and `gen_ai.completion`, each one
//! JSON object: LangSmith documents them as a run's inputs and outputs
//! (its OpenTelemetry attribute mapping), and its own SDK's exporter sends
//! them so. Messages are in the chat-completions shape (`{"messages":
//! [{"role", "content", "tool_calls"}]}`), which LangSmith shows as a chat.
//! OpenTelemetry's newer `gen_ai.input.messages`/`gen_ai.output.messages`
//! are not in LangSmith's mapping, so they are not sent (the content once).
//!
//! Content is set on the exported span only, never as a `tracing` field:
//! the logs, which print span fields, never carry it. Every string is
//! redacted ([`Redactor`]) and each attribute is at most
//! [`MAX_CONTENT_BYTES`].

use myloware_core::redact::{Redactor, bounded_json};
use serde::Serialize;

use super::*;

/// The largest content attribute (bytes of JSON); longer content has its
/// strings cut.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024;

/// Sets `key` (`gen_ai.prompt` or `gen_ai.completion`) on `span` to
/// `content` as a JSON object, redacted and bounded; `what` names a value
/// that is not an object (LangSmith's inputs and outputs are objects).
pub(super) fn set(span: &tracing::Span, key: &'static str, redactor: &Redactor, what: &str, content: &impl Serialize) {
    myloware_telemetry::trace::set_exported_attribute(span, key, || {
        let mut value = serde_json::to_value(content).unwrap_or(Value::Null);
        if !value.is_object() {
            value = json!({ what: value });
        }
        redactor.redact_json(&mut value);
        bounded_json(&value, MAX_CONTENT_BYTES)
    });
}

/// `{"messages": [...]}`, serialized only when the span is exported.
#[derive(Serialize)]
pub(super) struct Messages<'a, T: Serialize> {
    pub messages: &'a [T],
}
