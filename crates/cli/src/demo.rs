//! `mw demo <project>`: starts a run and follows it from start to publish
//! URL, showing personas, gates with their links (approved by the demo with
//! `--auto-approve`, else by a person), clips, the render and the publish.

use std::time::Duration;

use serde_json::json;

use crate::client::ApiTarget;
use crate::follow::Follow;
use crate::runs;

/// What a demo run is about when `--object` is not given.
fn default_input(project: &str) -> serde_json::Value {
    match project {
        "aismr" => json!({"object": "candles"}),
        // test_video_gen makes its two fixed videos whatever it is asked.
        _ => json!({"prompt": format!("{project} demo")}),
    }
}

pub async fn run(
    target: &ApiTarget,
    project: &str,
    object: Option<String>,
    auto_approve: bool,
    timeout: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let input = match object {
        Some(object) => json!({"object": object}),
        None => default_input(project),
    };
    if !json {
        let about: Vec<String> = input
            .as_object()
            .into_iter()
            .flatten()
            .map(|(field, value)| format!("{field} {value}"))
            .collect();
        println!(
            "demo: {project} ({}); approvals: {}",
            about.join(", "),
            if auto_approve {
                "by the demo (--auto-approve)"
            } else {
                "yours, at each gate"
            }
        );
    }
    let run_id = runs::start(target, &json!({"project": project, "input": input}), json, true).await?;
    Follow::new(target, &run_id, json, auto_approve, timeout.map(Duration::from_secs))
        .run()
        .await
        .map(|_| ())
}
