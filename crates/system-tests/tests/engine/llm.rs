//! The LLM-backed personas and Brendan against a fake OpenAI-compatible
//! server on loopback that plays each role from the request it gets:
//! tools are called, typed outputs flow from persona to persona, a
//! malformed answer fails the step after one retry, and a missing required
//! tool call is caught.

use std::time::Duration;

use myloware_db::Db;
use myloware_testkit::conformance_tests;
use myloware_testkit::fakes::{OpenAi, call, say};
use myloware_testkit::system;
use myloware_testkit::system::{System, aismr, start};
use serde_json::{Value, json};

const QUICK: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Every persona answers well.
    Good,
    /// Iggy answers prose instead of JSON, every time.
    MalformedIggy,
    /// Riley answers without calling submit_clips / wait_for_clips.
    RileySkipsTools,
}

/// The fake LLM, and what each persona was asked.
#[derive(Clone)]
struct Fake(OpenAi);

impl Fake {
    fn requests_of(&self, role: &str) -> Vec<Value> {
        self.0
            .requests()
            .into_iter()
            .filter(|body| self::role(body) == role)
            .collect()
    }
}

/// The role a request is for: the output schema's name, or Brendan.
fn role(body: &Value) -> String {
    body["response_format"]["json_schema"]["name"]
        .as_str()
        .map(|n| n.trim_end_matches("_output").to_string())
        .unwrap_or_else(|| "brendan".into())
}

fn user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The JSON array after `marker` in `text` (the prompt carries the inputs).
fn json_after(text: &str, marker: &str) -> Value {
    let start = text.find(marker).expect("marker in the prompt") + marker.len();
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    stream.next().unwrap().unwrap()
}

/// An answer `{key: [...]}` with `item` of each element of the JSON array
/// after `marker` in the prompt `user`.
fn one_each(user: &str, marker: &str, key: &str, item: impl Fn(&Value) -> Value) -> Value {
    let items: Vec<Value> = json_after(user, marker).as_array().unwrap().iter().map(item).collect();
    say(&json!({ key: items }).to_string())
}

/// The persona the request is for answers as `mode` says.
fn answer(mode: Mode, body: &Value) -> Value {
    let role = role(body);
    let messages = body["messages"].as_array().unwrap();
    let called: Vec<String> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| m["tool_call_id"].as_str().map(str::to_owned))
        .collect();
    let user = user_text(messages);
    // Brendan's latest user message (the history comes first).
    let latest = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    match role.as_str() {
        "brendan" if called.is_empty() && latest.contains("link") => call(&[("resend_links", json!({}))]),
        "brendan" if latest.contains("link") => say("Here are fresh links."),
        "brendan" if called.is_empty() => call(&[(
            "propose_run",
            json!({"project": "aismr", "object": "candles", "modifiers": [], "skipEditing": false}),
        )]),
        "brendan" => say("Lovely idea: twelve surreal candles. Approve the plan to start."),
        "iggy" if mode == Mode::MalformedIggy => say("Here are some great ideas about candles!"),
        "iggy" if called.is_empty() => call(&[("knowledge_search", json!({"query": "whispered word guardrails"}))]),
        "iggy" => {
            let count: usize = user["Write exactly ".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let ideas: Vec<Value> = (0..count)
                .map(|i| {
                    json!({"index": i, "subject": format!("llm candle {i}"), "header": format!("wax{i}"),
                                "concept": "A candle that hums softly as it melts upward."})
                })
                .collect();
            say(&json!({"ideas": ideas}).to_string())
        }
        "riley" if called.is_empty() && mode != Mode::RileySkipsTools => {
            call(&[("submit_clips", json!({})), ("wait_for_clips", json!({}))])
        }
        "riley" => one_each(
            &user,
            "Ideas: ",
            "scripts",
            |idea| json!({"index": idea["index"], "prompt": format!("LLM shot of {}", idea["subject"]), "duration": 8.0}),
        ),
        "alex" if called.is_empty() => call(&[("render_timeline", json!({}))]),
        "alex" => one_each(
            &user,
            "Clips: ",
            "overlays",
            |clip| json!({"index": clip["index"], "text": format!("llm {}", clip["index"])}),
        ),
        "quinn" if called.is_empty() => call(&[("publish", json!({}))]),
        "quinn" => say(&json!({"caption": "listen with headphones: candles, softly.",
                   "hashtags": ["#aismr", "#asmr", "#candles", "#surreal", "#foley"]})
        .to_string()),
        other => panic!("unexpected role {other}"),
    }
}

async fn start_with_llm(db: &Db, mode: Mode) -> (System, Fake) {
    let fake = Fake(OpenAi::start(move |body| answer(mode, body)).await);
    let projects = myloware_testkit::projects_dir().display().to_string();
    let mut vars = fake.0.vars();
    vars.push(("PROJECTS_DIR", &projects));
    let system = start(db, &vars).await;
    let docs = system::catalog().knowledge_documents();
    system.orchestrator_state.store.replace_knowledge(&docs).await.unwrap();
    (system, fake)
}

fn persona_completed(system_events: &[myloware_api::store::AppliedEvent], persona: &str) -> Value {
    system_events
        .iter()
        .find(|e| e.kind == "persona.completed" && e.data["persona"] == persona)
        .unwrap_or_else(|| panic!("no persona.completed for {persona}"))
        .data
        .clone()
}

async fn llm_brendan_and_personas_make_an_aismr_video(db: &Db) {
    let (system, fake) = start_with_llm(db, Mode::Good).await;
    let reply = system.chat_ok("llm-user", "make an AISMR video about candles").await;
    assert!(
        reply["response"].as_str().unwrap().starts_with("Lovely idea"),
        "{reply}"
    );
    let run_id = reply["run_ids"][0]
        .as_str()
        .expect("Brendan's tool call proposed a run")
        .to_string();
    let run = system.run(&run_id).await;
    assert_eq!(
        run["payload"]["metadata"]["workflow_proposal"]["input"]["object"],
        "candles"
    );
    // Brendan was offered his tools and saw the user's words.
    let brendan = &fake.requests_of("brendan")[0];
    let tools: Vec<&str> = brendan["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"propose_run") && tools.contains(&"knowledge_search"),
        "{tools:?}"
    );

    // Asked again for the link, Brendan's resend_links call brings a fresh one.
    let resent = system.chat_ok("llm-user", "the link expired, send it again").await;
    assert_eq!(resent["links"][0]["runId"], run_id.as_str(), "{resent}");
    assert_eq!(resent["links"][0]["gate"], "workflow", "{resent}");

    let link = resent["links"][0]["approvalUrl"].as_str().unwrap();
    assert_eq!(system.http.post(link).send().await.unwrap().status().as_u16(), 200);
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    system.approve(&run_id, "ideate").await;
    system.wait_status(&run_id, "awaiting_prepublish", QUICK).await;
    system.approve(&run_id, "prepublish").await;
    let run = system.wait_status(&run_id, "published", QUICK).await;

    // Typed outputs flowed from persona to persona.
    let events = system.api_state.store.list_events(&run_id).await.unwrap();
    let iggy = persona_completed(&events, "iggy");
    assert_eq!(iggy["output"]["ideas"].as_array().unwrap().len(), 12);
    assert_eq!(iggy["output"]["ideas"][3]["subject"], "llm candle 3");
    let riley = persona_completed(&events, "riley");
    assert_eq!(riley["output"]["scripts"][3]["prompt"], "LLM shot of \"llm candle 3\"");
    let alex = persona_completed(&events, "alex");
    let texts = alex["output"]["edit"]["timeline"]["tracks"][0]["clips"].to_string();
    assert!(
        texts.contains("LLM 3"),
        "overlays come from Alex's answer (uppercased): {texts}"
    );
    let quinn = persona_completed(&events, "quinn");
    assert_eq!(quinn["output"]["hashtags"].as_array().unwrap().len(), 5);
    // Token usage is recorded per persona (two calls each at 120 tokens).
    for data in [&iggy, &riley, &alex, &quinn] {
        assert_eq!(data["usage"]["calls"], 2, "{data}");
        assert_eq!(data["usage"]["totalTokens"], 240, "{data}");
    }
    // Each of those requests cost its tokens at the model's price: the
    // fake model is not in the table, so at `openai.other`'s (100 input
    // tokens at $2.50 and 20 output at $10 per million: 450 µ$).
    let spend = system.orchestrator_state.store.spend(&run_id).await.unwrap();
    let llm: Vec<_> = spend.iter().filter(|s| s.charge.provider == "openai").collect();
    assert_eq!(llm.len(), 8, "one row per request: {spend:?}");
    assert!(
        llm.iter()
            .all(|s| (s.charge.usd_micros, s.charge.units, s.charge.model.as_deref())
                == (450, 120.0, Some("fake-model"))),
        "{llm:?}"
    );
    assert_eq!(run["cost"]["byProvider"]["openai"], 0.0036);
    // The published caption is Quinn's.
    let publish = system.mock_calls(&run_id).await;
    assert_eq!(publish[&("upload_post".into(), "publish".into())].len(), 1);
    assert!(!run["result"]["publishUrls"].as_array().unwrap().is_empty());

    // Iggy's knowledge search reached the database and found the guardrail.
    let iggy_second = &fake.requests_of("iggy")[1];
    let tool_result = iggy_second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tool_result.contains("whispered word"), "{tool_result}");
    // Each persona was offered only its project's tools.
    let riley_tools = fake.requests_of("riley")[0]["tools"].to_string();
    assert!(
        riley_tools.contains("submit_clips") && !riley_tools.contains("publish"),
        "{riley_tools}"
    );
    system.stop_idle().await;
}

async fn a_malformed_answer_is_retried_once_then_fails_the_step(db: &Db) {
    let (system, fake) = start_with_llm(db, Mode::MalformedIggy).await;
    let run_id = system.start_run(aismr("candles")).await;
    let run = system.wait_status(&run_id, "failed", QUICK).await;
    let error = &run["result"]["error"];
    assert_eq!(error["code"], "llm.iggy_failed", "{run}");
    assert_eq!(error["persona"], "iggy");
    assert!(
        error["message"].as_str().unwrap().contains("invalid answer twice"),
        "{error}"
    );
    let iggy = fake.requests_of("iggy");
    assert_eq!(iggy.len(), 2, "one answer and one corrective retry");
    // The retry told the model what was wrong.
    let last = iggy[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert!(last["content"].as_str().unwrap().contains("JSON"), "{last}");
    // Nothing fake went further: no clip was submitted.
    assert!(system.mock_calls(&run_id).await.is_empty());
    system.stop_idle().await;
}

async fn a_missing_required_tool_call_fails_riley_before_any_clip(db: &Db) {
    let (system, fake) = start_with_llm(db, Mode::RileySkipsTools).await;
    let run_id = system.start_run(aismr("candles")).await;
    system.wait_status(&run_id, "awaiting_ideate", QUICK).await;
    system.approve(&run_id, "ideate").await;
    let run = system.wait_status(&run_id, "failed", QUICK).await;
    let error = &run["result"]["error"];
    assert_eq!(error["code"], "llm.riley_failed", "{run}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("submit_clips") && message.contains("wait_for_clips"),
        "{message}"
    );
    assert_eq!(fake.requests_of("riley").len(), 2);
    assert!(system.mock_calls(&run_id).await.is_empty(), "no clip was paid for");
    system.stop_idle().await;
}

conformance_tests!(
    llm_brendan_and_personas_make_an_aismr_video,
    a_malformed_answer_is_retried_once_then_fails_the_step,
    a_missing_required_tool_call_fails_riley_before_any_clip,
);
