//! Scripted personas: deterministic outputs from the project definition and
//! the run's input, used when no LLM is configured (and in every test).

use myloware_core::project::ProjectSpec;
use serde_json::{Value, json};

use crate::run_state::{Clip, Idea, Overlay, Revision, Script};

/// Built-in surreal modifiers for projects without fixed videos.
const MODIFIERS: [&str; 12] = [
    "glass",
    "velvet",
    "liquid mercury",
    "moss",
    "honeycomb",
    "porcelain",
    "ice",
    "origami paper",
    "lava",
    "cloud",
    "chrome",
    "jelly",
];

/// The subject of the run: the first of object, subject, topic, title, prompt.
fn run_subject(input: &Value) -> String {
    ["object", "subject", "topic", "title", "prompt"]
        .iter()
        .find_map(|field| input[field].as_str().map(str::trim).filter(|s| !s.is_empty()))
        .unwrap_or("object")
        .to_string()
}

/// Iggy: the project's fixed videos, or one idea per modifier. A revision
/// takes the next modifiers along (fixed videos keep theirs) and notes the
/// reviewer's words in each concept.
pub fn ideas(spec: &ProjectSpec, input: &Value, revision: Option<&Revision>) -> Vec<Idea> {
    let mut ideas = first_ideas(spec, input, revision.map_or(0, |r| r.round));
    if let Some(revision) = revision {
        for idea in &mut ideas {
            idea.concept = format!("{} (revised: {})", idea.concept, revision.feedback);
        }
    }
    ideas
}

fn first_ideas(spec: &ProjectSpec, input: &Value, round: u32) -> Vec<Idea> {
    let Some(specs) = &spec.specs else { return Vec::new() };
    if !specs.videos.is_empty() {
        return specs
            .videos
            .iter()
            .enumerate()
            .map(|(index, v)| Idea {
                index: index as u32,
                subject: v.subject.clone(),
                header: v.header.clone(),
                concept: format!("{} with the header \"{}\"", v.subject, v.header),
            })
            .collect();
    }
    let subject = run_subject(input);
    let given: Vec<String> = input["modifiers"]
        .as_array()
        .map(|m| m.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    (0..specs.video_count)
        .map(|i| {
            let modifier = given
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| MODIFIERS[(i + round) as usize % MODIFIERS.len()].to_string());
            Idea {
                index: i,
                subject: format!("{modifier} {subject}"),
                header: modifier.clone(),
                concept: format!("A {subject} made of {modifier}, handled slowly, believable and tactile"),
            }
        })
        .collect()
}

/// Riley: one cinematic prompt per idea, no on-screen text.
pub fn scripts(spec: &ProjectSpec, ideas: &[Idea]) -> Vec<Script> {
    let duration = spec.specs.as_ref().map_or(8.0, |s| s.clip_duration_seconds);
    let single_shot = spec.specs.as_ref().is_some_and(|s| s.single_shot);
    ideas
        .iter()
        .map(|idea| Script {
            index: idea.index,
            prompt: format!(
                "{}. Vertical 9:16 macro shot, slow push-in, soft window light, shallow depth of field, \
                 tactile foley only, calm mood{}. No on-screen text.",
                idea.concept,
                if single_shot {
                    ", one continuous shot with no cuts"
                } else {
                    ""
                }
            ),
            duration,
        })
        .collect()
}

/// Alex, scripted: each clip's overlay is its idea's header.
pub fn overlays(ideas: &[Idea]) -> Vec<Overlay> {
    ideas
        .iter()
        .map(|idea| Overlay {
            index: idea.index,
            text: idea.header.clone(),
        })
        .collect()
}

/// The Shotstack edit. Clips in order on the video track, each overlay as
/// text during its clip (the first track is drawn on top), fades in and
/// out; total length is the sum of the clip lengths.
pub fn edit(spec: &ProjectSpec, overlays: &[Overlay], clips: &[Clip]) -> Value {
    let specs = spec.specs.as_ref();
    let overlay = specs.map(|s| &s.overlay);
    let mut start = 0.0;
    let mut videos = Vec::new();
    let mut texts = Vec::new();
    for clip in clips {
        let length = clip.duration;
        videos.push(json!({
            "asset": {"type": "video", "src": clip.url},
            "start": start, "length": length, "transition": {"in": "fade", "out": "fade"}
        }));
        if let Some(text) = overlays.iter().find(|o| o.index == clip.index).map(|o| &o.text) {
            let text = if overlay.is_some_and(|o| o.uppercase) {
                text.to_uppercase()
            } else {
                text.clone()
            };
            texts.push(json!({
                "asset": {
                    "type": "text", "text": text,
                    "font": {"color": overlay.map_or("#FFFFFF", |o| o.color.as_str()), "size": 64},
                    "background": {"color": overlay.map_or("#000000AA", |o| o.background.as_str())},
                },
                "position": overlay.map_or("top", |o| o.position.as_str()),
                "start": start, "length": length
            }));
        }
        start += length;
    }
    json!({
        "timeline": {"tracks": [{"clips": texts}, {"clips": videos}]},
        "output": {
            "format": "mp4", "resolution": "1080",
            "aspectRatio": specs.map_or("9:16", |s| s.aspect_ratio.as_str()), "fps": 30
        },
        "lengthSeconds": start,
    })
}

/// Quinn: the fixed caption or one from the ideas, and the hashtags.
pub fn caption(spec: &ProjectSpec, ideas: &[Idea]) -> (String, Vec<String>) {
    let publish = spec.publish.as_ref();
    let max = publish.map_or(2200, |p| p.max_caption_chars) as usize;
    let caption = publish.and_then(|p| p.caption.clone()).unwrap_or_else(|| {
        let subjects: Vec<&str> = ideas.iter().map(|i| i.subject.as_str()).collect();
        format!("{}: {}", spec.title, subjects.join(", "))
    });
    let mut hashtags = publish.map(|p| p.hashtags.clone()).unwrap_or_default();
    let wanted = publish.and_then(|p| p.hashtag_count).map(|n| n as usize);
    if let Some(wanted) = wanted {
        for tag in ["#aismr", "#asmr", "#surreal", "#satisfying", "#fyp", "#oddlysatisfying"] {
            if hashtags.len() >= wanted {
                break;
            }
            if !hashtags.iter().any(|h| h == tag) {
                hashtags.push(tag.to_string());
            }
        }
        hashtags.truncate(wanted);
    }
    let tags = hashtags.join(" ");
    let room = max.saturating_sub(tags.chars().count() + 1);
    let caption: String = caption.chars().take(room).collect();
    (caption, hashtags)
}
