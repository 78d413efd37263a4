//! The real project catalog under `projects/`: the facts users rely on.

use std::path::{Path, PathBuf};

use myloware_core::Gate;
use myloware_core::project::{Catalog, CatalogError, Persona, ProjectsSource};

fn projects_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../projects"))
}

fn catalog() -> Catalog {
    Catalog::load(projects_dir()).unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn the_three_projects_exist() {
    let catalog = catalog();
    assert_eq!(catalog.names(), ["aismr", "general", "test_video_gen"]);
}

#[test]
fn test_video_gen_is_a_deterministic_smoke_run() {
    let catalog = catalog();
    let spec = catalog.get("test_video_gen").expect("test_video_gen");
    assert!(spec.is_runnable());
    assert_eq!(
        spec.workflow,
        [Persona::Iggy, Persona::Riley, Persona::Alex, Persona::Quinn]
    );
    assert!(spec.gates().is_empty(), "{:?}", spec.gates());

    let specs = spec.specs.as_ref().expect("specs");
    assert_eq!(specs.video_count, 2);
    assert_eq!(specs.clip_duration_seconds, 8.0);
    assert_eq!(specs.aspect_ratio, "9:16");
    assert_eq!(specs.resolution, "1080x1920");
    assert_eq!(specs.compilation_length_seconds, Some(16.0));
    assert_eq!(specs.overlay.position, "top");
    assert!(specs.overlay.uppercase);
    assert_eq!(specs.overlay.color, "#FFFFFF");
    assert_eq!(specs.overlay.background, "#000000AA");
    let videos: Vec<(&str, &str)> = specs
        .videos
        .iter()
        .map(|v| (v.subject.as_str(), v.header.as_str()))
        .collect();
    assert_eq!(videos, [("moon", "cheeseburger"), ("sun", "pickle")]);

    let publish = spec.publish.as_ref().expect("publish");
    assert_eq!(publish.platforms, ["tiktok"]);
    assert_eq!(publish.profile.as_deref(), Some("myloware-test"));
    assert_eq!(
        publish.caption.as_deref(),
        Some("Test video generation - moon/cheeseburger + sun/pickle")
    );
    assert_eq!(publish.hashtags, ["#test", "#videoGeneration"]);
}

#[test]
fn aismr_has_both_gates_twelve_clips_and_its_guardrails() {
    let catalog = catalog();
    let spec = catalog.get("aismr").expect("aismr");
    assert!(spec.is_runnable());
    assert_eq!(spec.gates(), [Gate::Ideate, Gate::Prepublish]);

    let specs = spec.specs.as_ref().expect("specs");
    assert_eq!(spec.video_count(), 12);
    assert_eq!(specs.clip_duration_seconds, 8.0);
    assert_eq!(specs.aspect_ratio, "9:16");
    assert_eq!(specs.resolution, "1080x1920");
    assert!(specs.single_shot);
    assert_eq!(specs.compilation_length_seconds, Some(110.0));
    assert!(specs.videos.is_empty(), "Iggy invents the modifiers");

    let publish = spec.publish.as_ref().expect("publish");
    assert_eq!(publish.platforms, ["tiktok"]);
    assert_eq!(publish.profile.as_deref(), Some("myloware-aismr"));
    assert_eq!(publish.caption, None, "Quinn writes the caption");
    assert_eq!(publish.hashtag_count, Some(5));
    assert_eq!(publish.max_caption_chars, 2200);

    assert_eq!(
        spec.guardrails,
        [
            "Each clip is 8.0 seconds long, plus or minus 0.1 seconds.",
            "Each clip has exactly one whispered word, spoken at 3.0 seconds.",
            "At most 2 hands are visible in any clip.",
            "No music: the soundtrack is tactile foley only.",
            "No baked-in text in the clips: header overlays are added in the render.",
            "Modifiers are surreal but believable, and unique across runs.",
            "The compilation targets about 110 seconds.",
        ]
    );
}

#[test]
fn runnable_projects_grant_and_require_the_specialist_tools() {
    let catalog = catalog();
    for name in ["test_video_gen", "aismr"] {
        let spec = catalog.get(name).unwrap();
        for persona in [Persona::Iggy, Persona::Riley, Persona::Alex, Persona::Quinn] {
            let tools = spec
                .personas
                .get(&persona)
                .unwrap_or_else(|| panic!("{name}: no tools for {persona}"));
            assert!(tools.tools.iter().any(|t| t == "knowledge_search"), "{name}: {persona}");
        }
        let required = |persona: Persona| spec.personas[&persona].required_tools.clone();
        assert_eq!(required(Persona::Riley), ["submit_clips", "wait_for_clips"]);
        assert_eq!(required(Persona::Alex), ["render_timeline"]);
        assert_eq!(required(Persona::Quinn), ["publish"]);
    }
}

#[test]
fn general_is_conversation_only() {
    let catalog = catalog();
    let spec = catalog.get("general").expect("general");
    assert!(!spec.is_runnable());
    assert!(spec.specs.is_none());
    assert!(spec.publish.is_none());
    assert!(spec.gates().is_empty());
    assert_eq!(
        spec.personas[&Persona::Brendan].tools,
        ["knowledge_search", "list_runs", "run_status", "propose_run"]
    );
}

#[test]
fn all_five_persona_prompts_load() {
    let catalog = catalog();
    for persona in Persona::ALL {
        let prompt = catalog
            .prompts
            .get(&persona)
            .unwrap_or_else(|| panic!("no prompt for {persona}"));
        assert!(prompt.text.lines().count() >= 30, "{persona} prompt is too short");
    }
}

#[test]
fn the_knowledge_base_holds_prompts_notes_and_every_guardrail() {
    let catalog = catalog();
    let docs = catalog.knowledge_documents();
    let guardrails = catalog.guardrail_count();
    assert!(guardrails >= 7, "{guardrails}");
    assert_eq!(docs.len(), 5 + 3 + guardrails);
    let count = |kind: &str| docs.iter().filter(|d| d.kind == kind).count();
    assert_eq!(count("persona_prompt"), 5);
    assert_eq!(count("project_notes"), 3);
    assert_eq!(count("guardrail"), guardrails);
    let mut ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), docs.len(), "knowledge ids must be unique");
}

/// A copy of the real catalog in a fresh temp folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn copy_of_catalog(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "myloware-projects-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("personas")).unwrap();
        for sub in ["", "personas"] {
            for entry in std::fs::read_dir(projects_dir().join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
                }
            }
        }
        Scratch(dir)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.0.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} does not contain {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_shipped_catalog_is_the_repositorys_projects_folder() {
    let shipped = Catalog::shipped().unwrap_or_else(|err| panic!("{err}"));
    let folder = catalog();
    assert_eq!(shipped.projects, folder.projects);
    let texts =
        |c: &Catalog| -> Vec<(Persona, String)> { c.prompts.values().map(|p| (p.persona, p.text.clone())).collect() };
    assert_eq!(texts(&shipped), texts(&folder));
    assert_eq!(shipped.knowledge_documents(), folder.knowledge_documents());
    assert_eq!(
        shipped.prompts[&Persona::Iggy].path,
        Path::new("projects/personas/iggy.md"),
        "named as in the repository"
    );
    let loaded = Catalog::load_from(&ProjectsSource::Shipped).unwrap();
    assert_eq!(loaded.names(), ["aismr", "general", "test_video_gen"]);
}

#[test]
fn a_projects_folder_with_one_project_is_the_whole_catalog() {
    let scratch = Scratch::copy_of_catalog("one");
    for other in ["aismr.toml", "general.toml"] {
        std::fs::remove_file(scratch.0.join(other)).unwrap();
    }
    let catalog = Catalog::load_from(&ProjectsSource::Folder(scratch.0.clone())).unwrap();
    assert_eq!(catalog.names(), ["test_video_gen"], "nothing shipped is added");
    assert_eq!(catalog.prompts.len(), 5);
}

#[test]
fn an_intact_copy_loads() {
    let scratch = Scratch::copy_of_catalog("intact");
    let catalog = Catalog::load(&scratch.0).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(catalog.names().len(), 3);
}

/// A copy of the catalog with one `(file, from, to)` edit is refused with
/// exactly one problem, which names each of `named`: the error.
fn refused_naming(tag: &str, (file, from, to): (&str, &str, &str), named: &[&str]) -> CatalogError {
    let scratch = Scratch::copy_of_catalog(tag);
    scratch.edit(file, from, to);
    let err = Catalog::load(&scratch.0).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    let problem = &err.problems[0];
    for name in named {
        assert!(problem.contains(name), "{name} not in {problem}");
    }
    err
}

#[test]
fn a_project_named_unlike_its_file_is_refused_naming_the_file() {
    let misnamed = ("aismr.toml", "project = \"aismr\"", "project = \"asmr\"");
    let err = refused_naming("misnamed", misnamed, &["aismr.toml", "project"]);
    assert!(err.to_string().contains("aismr.toml"), "{err}");
}

#[test]
fn a_typo_field_is_refused_naming_the_file_and_field() {
    let typo = ("test_video_gen.toml", "videoCount = 2", "vidoeCount = 2");
    refused_naming("typo", typo, &["test_video_gen.toml", "vidoeCount"]);
}
