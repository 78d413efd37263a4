//! The chat-completions side of an agent task: the messages and tool
//! definitions sent, and the checks of the final answer.

use super::*;

pub(super) fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

pub(super) fn user_message(text: String) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
        content: ChatCompletionRequestUserMessageContent::Text(text),
        name: None,
    })
}

pub(super) fn assistant_message(
    content: Option<String>,
    tool_calls: Option<Vec<ChatCompletionMessageToolCalls>>,
) -> ChatCompletionRequestMessage {
    ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
        content: content.map(ChatCompletionRequestAssistantMessageContent::Text),
        tool_calls,
        ..Default::default()
    })
}

pub(super) fn function_tool(tool: &ToolSpec) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: tool.name.clone(),
            description: Some(tool.description.clone()),
            parameters: Some(tool.parameters.clone()),
            strict: None,
        },
    })
}

/// Checks a final answer: the parsed output (when JSON is asked for) or
/// what was wrong.
pub(super) fn check(
    task: &AgentTask,
    called: &BTreeSet<String>,
    content: &str,
    refusal: Option<&str>,
) -> Result<Option<Value>, Rejection> {
    let missing: Vec<String> = task
        .required_tools
        .iter()
        .filter(|name| !called.contains(*name))
        .cloned()
        .collect();
    let wants_json = task.output.is_some() || task.validate.is_some();
    let parsed = if !wants_json {
        Ok(None)
    } else if content.trim().is_empty() {
        Err(match refusal {
            Some(refusal) => format!("the model refused: {}", quote(refusal)),
            None => "the answer is empty".to_owned(),
        })
    } else {
        parse_json(content)
            .map_err(|err| format!("the answer is not valid JSON ({err})"))
            .and_then(|value| match &task.validate {
                Some(validate) => validate(&value).map(|()| Some(value)),
                None => Ok(Some(value)),
            })
    };
    match parsed {
        Ok(output) if missing.is_empty() => Ok(output),
        Ok(_) => Err(Rejection { missing, invalid: None }),
        Err(reason) => Err(Rejection {
            missing,
            invalid: Some(reason),
        }),
    }
}

/// Parses the answer, accepting it inside a ```json fence.
fn parse_json(content: &str) -> Result<Value, serde_json::Error> {
    let trimmed = content.trim();
    let direct = serde_json::from_str(trimmed);
    if direct.is_ok() {
        return direct;
    }
    let Some(start) = trimmed.find("```") else {
        return direct;
    };
    let after = &trimmed[start + 3..];
    // Skip the info string ("json") up to the end of the fence line.
    let Some(body_start) = after.find('\n') else {
        return direct;
    };
    let body = &after[body_start + 1..];
    let body = body.find("```").map_or(body, |end| &body[..end]);
    serde_json::from_str(body.trim()).or(direct)
}
