//! The approval page: self-contained HTML (no external assets), every
//! interpolated value escaped, readable on a phone. Opening it changes
//! nothing; its buttons POST.

use myloware_core::Gate;
use serde_json::Value;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;\
line-height:1.45;color:#111}h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;\
padding:.4rem;text-align:left;vertical-align:top}button{font-size:1.1rem;padding:.8rem 1.2rem;border:0;border-radius:.5rem;\
width:100%;margin:.4rem 0}.approve{background:#1a7f37;color:#fff}.reject{background:#cf222e;color:#fff}textarea{width:100%;\
box-sizing:border-box;font-size:1rem}video{width:100%;max-height:70vh;background:#000}.muted{color:#666;font-size:.9rem}";

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

/// What is being approved, from the gate's preview.
fn preview_html(gate: Gate, preview: &Value) -> String {
    match gate {
        Gate::Workflow => {
            let list = |v: &Value| {
                v.as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.as_str())
                            .map(escape)
                            .collect::<Vec<_>>()
                            .join(" → ")
                    })
                    .unwrap_or_default()
            };
            let gates = list(&preview["gates"]);
            format!(
                "<p>Project <b>{}</b></p><p>Pipeline: {}</p><p>Approval gates: {}</p><p>Input:</p><pre>{}</pre>",
                escape(preview["project"].as_str().unwrap_or("?")),
                list(&preview["pipeline"]),
                if gates.is_empty() { "none".to_string() } else { gates },
                escape(&serde_json::to_string_pretty(&preview["input"]).unwrap_or_default())
            )
        }
        Gate::Ideate => {
            let rows: String = preview["ideas"]
                .as_array()
                .map(|ideas| {
                    ideas
                        .iter()
                        .map(|idea| {
                            format!(
                                "<tr><td>{}</td><td><b>{}</b><br>{}</td><td>{}</td></tr>",
                                idea["index"],
                                escape(idea["subject"].as_str().unwrap_or("")),
                                escape(idea["concept"].as_str().unwrap_or("")),
                                escape(idea["header"].as_str().unwrap_or(""))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("<p>Iggy's ideas:</p><table><tr><th>#</th><th>Idea</th><th>Header</th></tr>{rows}</table>")
        }
        Gate::Prepublish => match preview["renderUrl"].as_str() {
            Some(url) => format!(
                "<p>The rendered video, before it is published:</p>\
                 <video controls playsinline preload=\"metadata\" src=\"{0}\"></video>\
                 <p class=\"muted\"><a href=\"{0}\">{0}</a></p>",
                escape(url)
            ),
            None => "<p>The clips are ready to publish (no render).</p>".to_string(),
        },
    }
}

/// The confirmation page: what is being approved, and the two forms.
pub fn confirmation(run_id: &str, project: &str, gate: Gate, preview: &Value, token: &str, expires: &str) -> String {
    let action = |verb: &str| format!("/v1/hitl/{verb}/{}/{}", escape(run_id), gate.as_str());
    let body = format!(
        "<h1>Approve the {gate} gate?</h1>\
         <p class=\"muted\">Run {run} · {project}</p>{preview}\
         <form method=\"post\" action=\"{approve}\">\
           <input type=\"hidden\" name=\"token\" value=\"{token}\">\
           <button class=\"approve\" type=\"submit\">Approve</button>\
         </form>\
         <form method=\"post\" action=\"{reject}\">\
           <input type=\"hidden\" name=\"token\" value=\"{token}\">\
           <label for=\"reason\">Reason for rejecting</label>\
           <textarea id=\"reason\" name=\"reason\" rows=\"3\" maxlength=\"2000\"></textarea>\
           <button class=\"reject\" type=\"submit\">Reject</button>\
         </form>\
         <p class=\"muted\">This link expires {expires}.</p>",
        gate = gate.as_str(),
        run = escape(run_id),
        project = escape(project),
        preview = preview_html(gate, preview),
        approve = action("approve"),
        reject = action("reject"),
        token = escape(token),
        expires = escape(expires),
    );
    document(&format!("Approve {gate} · {run_id}"), &body)
}

/// The page after a decision (or a refusal).
pub fn result(title: &str, message: &str) -> String {
    document(title, &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn everything_interpolated_is_escaped() {
        let evil = "<script>alert('x')</script>\"&";
        let page = confirmation(
            "run_abc",
            evil,
            Gate::Ideate,
            &json!({"ideas": [{"index": 0, "subject": evil, "concept": evil, "header": evil}]}),
            evil,
            "soon",
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }

    #[test]
    fn prepublish_shows_a_player() {
        let page = confirmation(
            "run_abc",
            "aismr",
            Gate::Prepublish,
            &json!({"renderUrl": "https://r/x.mp4"}),
            "t",
            "soon",
        );
        assert!(page.contains("<video controls playsinline"));
        assert!(page.contains("name=\"viewport\""));
    }
}
