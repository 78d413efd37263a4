//! The HITL pages: the approval page and the pages after a decision or a
//! refusal. Rendered by askama templates (`crates/api/templates`), checked
//! when the crate compiles and HTML-escaped on every interpolation, so no
//! previewed value can become markup. Self-contained (no external assets),
//! readable on a phone; opening the approval page changes nothing, its
//! buttons POST.
//!
//! Media: only an absolute `https` URL (also `http` in development, where the
//! mock render URLs are) becomes a `<video src>` and a link; anything else
//! (`javascript:`, `data:`, `file:`, relative) is shown as inert text.
//!
//! Every response of the HITL routes carries [`headers`]: a CSP that allows
//! no script at all, no framing, no caching, no referrer.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use myloware_core::Gate;
use myloware_core::config::Environment;
use serde_json::Value;

/// The approval page's policy: no script, inline style only, media and
/// images from https, forms only to this origin, never framed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https:; media-src https:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Development also plays the mock render URLs, which are plain http.
const CSP_DEVELOPMENT: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: http:; \
media-src https: http:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers on a response of the HITL routes (HTML or
/// JSON alike): the one place they are set, as a route layer
/// (`axum::middleware::map_response_with_state`).
pub async fn headers(State(environment): State<Environment>, mut response: Response) -> Response {
    let csp = if environment == Environment::Development {
        CSP_DEVELOPMENT
    } else {
        CSP
    };
    let set: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        // The token-bearing URL goes to no one. With it a browser sends
        // `Origin: null` on the page's own form POST; the cross-site check
        // (routes/hitl.rs) then trusts `Sec-Fetch-Site: same-origin`.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let headers = response.headers_mut();
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The URL to play and link to, when `url` is an absolute `https` URL with
/// a host (or `http` when `allow_http`). The URL is returned as parsed
/// (WHATWG serialisation, as a browser reads it), so what is checked is
/// what is rendered.
pub fn playable_url(url: &str, allow_http: bool) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let scheme_ok = parsed.scheme() == "https" || (allow_http && parsed.scheme() == "http");
    (scheme_ok && parsed.host().is_some()).then(|| parsed.to_string())
}

/// The workflow gate's preview: the proposed run.
struct WorkflowPreview {
    project: String,
    pipeline: Vec<String>,
    gates: Vec<String>,
    /// The input, as pretty JSON.
    input: String,
}

/// One of Iggy's ideas.
struct IdeaRow {
    /// The idea's number as people count (its index + 1); a non-numeric
    /// index as its text.
    index: String,
    subject: String,
    concept: String,
    header: String,
}

/// The prepublish gate's render.
enum Render {
    Playable(String),
    /// Not a URL the page plays: shown as text.
    NotShown(String),
    Missing,
}

/// Where the gate stands, beside its preview: approvals gathered ("1 of 2
/// approvals; 1 more approval from …", for a gate needing several or
/// named approvers) and the requests for changes it still takes.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    pub approvals: Option<String>,
    pub revisions_left: u32,
    /// The gate's revisions so far: the forms send it back, so a decision
    /// is never taken on a preview that changed since the page was opened.
    pub round: u32,
}

/// The request for changes a preview answers.
struct RevisionNote {
    round: String,
    feedback: String,
}

#[derive(Template)]
#[template(path = "confirmation.html")]
struct Confirmation<'a> {
    approvals: Option<String>,
    revisions_left: u32,
    round: u32,
    revision: Option<RevisionNote>,
    run_id: &'a str,
    project: &'a str,
    gate: &'a str,
    token: &'a str,
    expires: &'a str,
    workflow: Option<WorkflowPreview>,
    ideas: Option<Vec<IdeaRow>>,
    render: Option<Render>,
}

#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage<'a> {
    title: &'a str,
    message: &'a str,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The approval page's parts for `gate`, from its preview.
fn preview_parts(gate: Gate, preview: &Value, allow_http: bool) -> Confirmation<'static> {
    let revision = preview.get("revision").map(|r| RevisionNote {
        round: text(&r["round"]),
        feedback: text(&r["feedback"]),
    });
    let mut page = Confirmation {
        approvals: None,
        revisions_left: 0,
        round: 0,
        revision,
        run_id: "",
        project: "",
        gate: "",
        token: "",
        expires: "",
        workflow: None,
        ideas: None,
        render: None,
    };
    match gate {
        Gate::Workflow => {
            page.workflow = Some(WorkflowPreview {
                project: preview["project"].as_str().unwrap_or("?").to_string(),
                pipeline: texts(&preview["pipeline"]),
                gates: texts(&preview["gates"]),
                input: serde_json::to_string_pretty(&preview["input"]).unwrap_or_default(),
            });
        }
        Gate::Ideate => {
            let ideas = preview["ideas"].as_array().map(Vec::as_slice).unwrap_or_default();
            page.ideas = Some(
                ideas
                    .iter()
                    .map(|idea| IdeaRow {
                        index: idea["index"]
                            .as_u64()
                            .map_or_else(|| text(&idea["index"]), |i| (i + 1).to_string()),
                        subject: text(&idea["subject"]),
                        concept: text(&idea["concept"]),
                        header: text(&idea["header"]),
                    })
                    .collect(),
            );
        }
        Gate::Prepublish => {
            page.render = Some(match &preview["renderUrl"] {
                Value::Null => Render::Missing,
                url => {
                    let url = text(url);
                    match playable_url(&url, allow_http) {
                        Some(playable) => Render::Playable(playable),
                        None => Render::NotShown(url),
                    }
                }
            });
        }
    }
    page
}

/// The confirmation page: what is being approved, and the forms (approve,
/// reject, and request changes while the gate takes any).
/// `allow_http`: whether an `http` render URL plays (development).
#[allow(clippy::too_many_arguments)]
pub fn confirmation(
    run_id: &str,
    project: &str,
    gate: Gate,
    preview: &Value,
    token: &str,
    expires: &str,
    allow_http: bool,
    standing: &Standing,
) -> String {
    let page = Confirmation {
        approvals: standing.approvals.clone(),
        round: standing.round,
        revisions_left: if gate == Gate::Workflow {
            0
        } else {
            standing.revisions_left
        },
        run_id,
        project,
        gate: gate.as_str(),
        token,
        expires,
        ..preview_parts(gate, preview, allow_http)
    };
    render(&page)
}

/// The page after a decision (or a refusal).
pub fn result(title: &str, message: &str) -> String {
    render(&ResultPage { title, message })
}

/// Renders a template; writing into a `String` fails only if a value's
/// `Display` does, which none of these do.
fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|err| {
        tracing::error!(error = %err, "an HITL page did not render");
        "<!doctype html><title>Error</title><p>This page could not be shown.</p>".to_string()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EVIL: &str = "<script>alert('x')</script>\"&";

    #[test]
    fn everything_interpolated_is_escaped() {
        let page = confirmation(
            "run_abc",
            EVIL,
            Gate::Ideate,
            &json!({"ideas": [{"index": EVIL, "subject": EVIL, "concept": EVIL, "header": EVIL}]}),
            EVIL,
            EVIL,
            false,
            &Standing::default(),
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("'x'"), "{page}");
        const ESCAPED: &str = "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#34;&#38;";
        // The project, the idea (index, subject, concept, header), the token (in both forms), the expiry.
        assert_eq!(page.matches(ESCAPED).count(), 8, "{page}");
        let workflow = confirmation(
            "run_abc",
            "p",
            Gate::Workflow,
            &json!({"project": EVIL, "pipeline": [EVIL], "gates": [EVIL], "input": {"prompt": "</pre><script>x</script>"}}),
            "t",
            "soon",
            false,
            &Standing::default(),
        );
        assert!(!workflow.contains("<script>"), "{workflow}");
        assert!(!workflow.contains("</pre><"), "{workflow}");
        assert_eq!(result(EVIL, EVIL).matches(ESCAPED).count(), 3);
    }

    #[test]
    fn a_revised_preview_says_what_was_asked_and_the_form_asks_for_changes() {
        let standing = Standing {
            approvals: Some("1 of 2 approvals; 1 more approval from role:approver".into()),
            revisions_left: 2,
            round: 1,
        };
        let preview = json!({"ideas": [], "revision": {"round": 1, "feedback": EVIL}});
        let page = confirmation(
            "run_abc",
            "aismr",
            Gate::Ideate,
            &preview,
            "t",
            "soon",
            false,
            &standing,
        );
        assert!(page.contains("Revision 1"), "{page}");
        assert!(
            !page.contains("<script>") && page.contains("&#60;script&#62;"),
            "{page}"
        );
        assert!(
            page.contains("1 of 2 approvals; 1 more approval from role:approver"),
            "{page}"
        );
        assert!(page.contains("action=\"/v1/hitl/revise/run_abc/ideate\""), "{page}");
        assert!(page.contains("2 requests for changes left"), "{page}");
        let spent = Standing::default();
        let page = confirmation("run_abc", "aismr", Gate::Ideate, &preview, "t", "soon", false, &spent);
        assert!(!page.contains("/v1/hitl/revise/"), "no revision left: {page}");
        let workflow = confirmation(
            "run_abc",
            "aismr",
            Gate::Workflow,
            &json!({}),
            "t",
            "soon",
            false,
            &standing,
        );
        assert!(
            !workflow.contains("/v1/hitl/revise/"),
            "a proposal is edited, not revised: {workflow}"
        );
    }

    #[test]
    fn numbers_are_rendered_as_numbers() {
        let page = confirmation(
            "run_abc",
            "aismr",
            Gate::Ideate,
            &json!({"ideas": [{"index": 7, "subject": "moon", "concept": "c", "header": "h"}]}),
            "t",
            "soon",
            false,
            &Standing::default(),
        );
        assert!(page.contains("<td>8</td>"), "idea 7 is the eighth: {page}");
    }

    #[test]
    fn pages_are_self_contained_and_fit_a_phone() {
        for page in [
            confirmation(
                "run_abc",
                "aismr",
                Gate::Workflow,
                &json!({}),
                "t",
                "soon",
                false,
                &Standing::default(),
            ),
            result("Approved", "Thank you"),
        ] {
            assert!(page.contains("name=\"viewport\""), "{page}");
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "no external assets: {page}"
            );
            assert!(!page.contains("<script"), "no script: {page}");
        }
    }

    #[test]
    fn prepublish_shows_a_player_for_an_https_render() {
        let page = confirmation(
            "run_abc",
            "aismr",
            Gate::Prepublish,
            &json!({"renderUrl": "https://cdn.example/x.mp4"}),
            "t",
            "soon",
            false,
            &Standing::default(),
        );
        assert!(
            page.contains("<video controls playsinline preload=\"metadata\" src=\"https://cdn.example/x.mp4\">"),
            "{page}"
        );
        assert!(page.contains("<a href=\"https://cdn.example/x.mp4\""), "{page}");
    }

    #[test]
    fn other_schemes_are_inert_text() {
        for (url, allow_http) in [
            ("javascript:alert(1)", true),
            ("JaVa\tScRiPt:alert(1)", true),
            (" javascript:alert(1)", true),
            ("data:text/html,<script>alert(1)</script>", true),
            ("file:///etc/passwd", true),
            ("/relative/x.mp4", true),
            ("//cdn.example/x.mp4", true),
            ("http://cdn.example/x.mp4", false),
            ("https://", true),
        ] {
            let page = confirmation(
                "run_abc",
                "aismr",
                Gate::Prepublish,
                &json!({"renderUrl": url}),
                "t",
                "soon",
                allow_http,
                &Standing::default(),
            );
            assert!(!page.contains("<video"), "{url}: {page}");
            assert!(!page.contains("<a "), "{url}: {page}");
            assert!(page.contains("is not shown"), "{url}: {page}");
        }
        assert_eq!(
            playable_url("http://127.0.0.1:9/x.mp4", true).as_deref(),
            Some("http://127.0.0.1:9/x.mp4")
        );
        let number = confirmation(
            "r",
            "p",
            Gate::Prepublish,
            &json!({"renderUrl": 5}),
            "t",
            "soon",
            true,
            &Standing::default(),
        );
        assert!(
            !number.contains("<video") && number.contains("is not shown"),
            "{number}"
        );
        let missing = confirmation(
            "r",
            "p",
            Gate::Prepublish,
            &json!({}),
            "t",
            "soon",
            true,
            &Standing::default(),
        );
        assert!(missing.contains("no render"), "{missing}");
    }
}
