//! Generators of bad input: JSON, broken bodies, headers, and per-route
//! bodies wrong in one way or more.

use myloware_testkit::system;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

#[allow(unused_imports)]
use crate::harness::*;

// --------------------------------------------------------------- generators

/// Keys bodies have (and some they do not), so random objects hit fields.
pub const KEYS: [&str; 32] = [
    "project",
    "input",
    "options",
    "prompt",
    "topic",
    "object",
    "modifiers",
    "user_id",
    "userId",
    "message",
    "events",
    "eventId",
    "runId",
    "seq",
    "type",
    "at",
    "data",
    "signalId",
    "signal",
    "gate",
    "decision",
    "token",
    "reason",
    "approver",
    "update_id",
    "request_id",
    "status",
    "code",
    "msg",
    "taskId",
    "history",
    "graphSpec",
];

/// Strings worth trying anywhere.
pub const STRINGS: [&str; 22] = [
    "",
    " ",
    "\t\n",
    "aismr",
    "test_video_gen",
    "general",
    "ideate",
    "prepublish",
    "workflow",
    "approve",
    "reject",
    "run_abcdefabcdef",
    "run_",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%FF%00",
    "\u{0}",
    "\u{feff}zero width\u{200b}",
    "💥🦀",
    "null",
    "9223372036854775808",
];

pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => ".{0,30}",
        2 => select(STRINGS.to_vec()).prop_map(str::to_owned),
        1 => "[a-z0-9_]{0,20}",
    ]
}

pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![select(KEYS.to_vec()).prop_map(str::to_owned), "[a-zA-Z_]{0,10}"];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key, inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

pub fn not_string() -> impl Strategy<Value = Value> {
    any_json().prop_filter("not a string", |v| !v.is_string())
}

pub fn not_object() -> impl Strategy<Value = Value> {
    any_json().prop_filter("not an object", |v| !v.is_object())
}

/// Sets `pointer` (creating objects on the way) in a copy of `base`.
pub fn set(base: &Value, pointer: &str, value: Value) -> Value {
    let mut out = base.clone();
    let mut at = &mut out;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len() - 1] {
        at = at.as_object_mut().unwrap().entry(*part).or_insert_with(|| json!({}));
    }
    at.as_object_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].to_string(), value);
    out
}

pub fn remove(base: &Value, pointer: &str) -> Value {
    let mut out = base.clone();
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    if let Some(object) = out.pointer_mut(parent).and_then(Value::as_object_mut) {
        object.remove(last);
    }
    out
}

/// Bodies that are not JSON, or not quite: garbage, truncations, a byte
/// changed, deep nesting, numbers out of range, lone surrogates, duplicate
/// keys, trailing data.
pub fn broken_json(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    let text = valid.to_string();
    let len = text.len();
    let (cut, flip) = (text.clone(), text.clone());
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (0..len).prop_map(move |at| cut.as_bytes()[..at].to_vec()),
        (0..len, any::<u8>()).prop_map(move |(at, byte)| {
            let mut bytes = flip.clone().into_bytes();
            bytes[at] = byte;
            bytes
        }),
        (100usize..3000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        (100usize..3000).prop_map(|depth| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes()),
        Just(b"{\"seq\": 1e400}".to_vec()),
        Just(b"{\"message\": \"\\ud800\"}".to_vec()),
        Just(format!("{{\"project\":\"a\",\"project\":\"b\",{}", &text[1..]).into_bytes()),
        Just(format!("{text}{text}").into_bytes()),
        Just(format!("{text} trailing").into_bytes()),
        Just(Vec::new()),
    ]
    // Bytes that still parse belong to the JSON arms (a flipped byte inside
    // a string could make a valid request).
    .prop_filter("not JSON", |bytes| serde_json::from_slice::<Value>(bytes).is_err())
}

/// A JSON body that does not deserialize as `T`.
pub fn not_a<T: serde::de::DeserializeOwned>(value: &Value) -> bool {
    parse::<T>(value).is_err()
}

/// `value` read the way the services read a request body.
pub fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, myloware_http::body::BodyError> {
    myloware_http::body::parse_json(&serde_json::to_vec(value).unwrap())
}

/// Content types, mostly JSON.
pub fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some("application/json".to_string())),
        1 => Just(Some("application/json; charset=utf-8".to_string())),
        1 => Just(Some("application/problem+json".to_string())),
        1 => Just(Some("text/plain".to_string())),
        1 => Just(Some("application/x-www-form-urlencoded".to_string())),
        1 => Just(Some("multipart/form-data; boundary=x".to_string())),
        1 => "[ -~]{0,30}".prop_map(Some),
    ]
}

/// A body for a JSON route: a JSON value sent as such, or broken bytes.
pub fn body_of(values: impl Strategy<Value = Value>, valid: Value) -> impl Strategy<Value = (Option<String>, Body)> {
    prop_oneof![
        3 => (content_type(), values.prop_map(|v| Body(v.to_string().into_bytes()))),
        1 => (content_type(), broken_json(valid).prop_map(Body)),
    ]
}

/// Header values callers may send: printable, sometimes long.
pub fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        select(STRINGS.to_vec())
            .prop_map(str::to_owned)
            .prop_filter("printable", |s| s.bytes().all(|b| (0x20..0x7f).contains(&b))),
        (200usize..9000).prop_map(|n| "k".repeat(n)),
    ]
}

// --------------------------------------------------------------- properties

pub fn start_base() -> Value {
    json!({"project": "test_video_gen", "input": {"prompt": "p"}, "options": {}})
}

/// Start bodies that are wrong in exactly one (or more) ways.
pub fn bad_start() -> impl Strategy<Value = Value> {
    let base = start_base();
    let long = |n: usize| "é".repeat(n);
    prop_oneof![
        not_string().prop_map(move |p| set(&start_base(), "/project", p)),
        text()
            .prop_filter("unknown project", |p| !PROJECTS.contains(&p.as_str()))
            .prop_map(move |p| set(&start_base(), "/project", json!(p))),
        Just(set(&base, "/project", json!("general"))),
        Just(remove(&base, "/project")),
        Just(remove(&base, "/input")),
        not_object().prop_map(move |i| set(&start_base(), "/input", i)),
        // No usable text: none, blank ones, or too long ones.
        proptest::collection::vec((select(RUN_TEXTS.to_vec()), "[ \t\n]{0,5}"), 0..4).prop_map(move |blank| {
            let input: Map<String, Value> = blank.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            set(&start_base(), "/input", Value::Object(input))
        }),
        (select(RUN_TEXTS.to_vec()), 4001usize..4100).prop_map(move |(field, n)| set(
            &start_base(),
            "/input",
            json!({ field: long(n) })
        )),
        not_string().prop_map(move |t| set(&start_base(), "/input/prompt", t)),
        prop_oneof![
            Just(json!([""])),
            Just(json!(["   "])),
            (51usize..60).prop_map(|n| json!(vec!["m"; n])),
            (201usize..260).prop_map(|n| json!(["x".repeat(n)])),
            not_string().prop_map(|m| json!([m])),
            not_object().prop_filter("not a list", |v| !v.is_array() && !v.is_null()),
        ]
        .prop_map(move |m| set(&start_base(), "/input/modifiers", m)),
        ("[a-z]{1,10}", any_json())
            .prop_filter("unknown input field", |(k, _)| !RUN_TEXTS.contains(&k.as_str())
                && k != "modifiers")
            .prop_map(move |(k, v)| set(&start_base(), &format!("/input/{k}"), v)),
        ("[a-zA-Z]{1,10}", any_json())
            .prop_filter("unknown field", |(k, _)| !["project", "input", "options"]
                .contains(&k.as_str()))
            .prop_map(move |(k, v)| set(&start_base(), &format!("/{k}"), v)),
        not_object().prop_map(move |o| set(&start_base(), "/options", o)),
        any_json()
            .prop_filter("not a bool", |v| !v.is_boolean())
            .prop_map(move |v| set(&start_base(), "/options/requireWorkflowApproval", v)),
        prop_oneof![
            Just(json!(["riley"])),
            Just(json!(["nobody"])),
            Just(json!("alex")),
            not_string().prop_map(|s| json!([s])),
        ]
        .prop_map(move |s| set(&start_base(), "/options/skip", s)),
        not_string()
            .prop_filter("not null", |v| !v.is_null())
            .prop_map(move |u| set(&start_base(), "/options/user_id", u)),
        any_json().prop_filter("not a start", |v| {
            // Anything else: only if it cannot be a start at all.
            not_a::<myloware_api::runs::StartRunRequest>(v)
        }),
        Just(start_base()),
    ]
    // Only what the API must refuse.
    .prop_filter("may be a valid start", |v| !start_may_be_accepted(v))
}

/// Whether the API could accept this start (a superset of what it does).
pub fn start_may_be_accepted(value: &Value) -> bool {
    let Ok(start) = parse::<myloware_api::runs::StartRunRequest>(value) else {
        return false;
    };
    let input = &start.input;
    let texts = [&input.prompt, &input.title, &input.subject, &input.object, &input.topic];
    ["aismr", "test_video_gen"].contains(&start.project.as_str())
        && texts
            .iter()
            .all(|t| t.as_ref().is_none_or(|t| t.chars().count() <= 4000))
        && texts.iter().any(|t| t.as_ref().is_some_and(|t| !t.trim().is_empty()))
        && input.modifiers.len() <= 50
        && input
            .modifiers
            .iter()
            .all(|m| !m.trim().is_empty() && m.chars().count() <= 200)
        && !start.options.skip.contains(&myloware_core::project::Persona::Riley)
}

/// Whether the API could accept this chat turn.
pub fn chat_may_be_accepted(value: &Value) -> bool {
    let Ok(turn) = parse::<myloware_api::routes::chat::ChatRequest>(value) else {
        return false;
    };
    let message = turn.message.trim();
    myloware_api::chat::validate_user_id(&turn.user_id).is_ok()
        && !message.is_empty()
        && message.chars().count() <= myloware_api::chat::MAX_MESSAGE_CHARS
}

/// The orchestrator's resume body, to tell which bodies would decide.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub struct Resume {
    pub gate: myloware_core::Gate,
    pub decision: String,
    #[serde(default)]
    pub approver: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Whether this resume body decides the ideate gate.
pub fn decides_ideate(value: &Value) -> bool {
    parse::<Resume>(value)
        .is_ok_and(|r| r.gate == myloware_core::Gate::Ideate && ["approve", "reject"].contains(&r.decision.as_str()))
}

/// Whether the orchestrator would create an execution from this body.
pub fn execution_may_be_accepted(value: &Value) -> bool {
    parse::<myloware_core::wire::StartExecution>(value).is_ok_and(|start| {
        myloware_core::ids::is_run_id(&start.run_id) && myloware_core::graph::nodes(&start.graph_spec).is_ok()
    })
}

/// A valid body of the route, to break.
pub fn event_base(run_id: &str, seq: i64) -> Value {
    json!({"events": [{"eventId": format!("e-{seq}"), "runId": run_id, "seq": seq, "type": "persona.started",
        "at": "2026-01-01T00:00:00Z", "data": {"persona": "riley"}}]})
}

/// A valid body of the route, to break.
pub fn execution_base(run_id: &str) -> Value {
    let spec = system::catalog().get("test_video_gen").unwrap().clone();
    json!({"runId": run_id, "project": "test_video_gen",
        "graphSpec": {"pipeline": ["iggy", "riley", "alex", "quinn"], "hitl_gates": []},
        "projectSpec": spec, "providersMode": "mock", "input": {"prompt": "p"}, "videos": []})
}
