//! The catalog: every project definition and persona prompt, shipped in
//! the binary or read from a folder, loaded and checked together, and the
//! knowledge documents the personas search.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{Persona, ProjectSpec};

/// A persona's system prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonaPrompt {
    pub persona: Persona,
    pub path: PathBuf,
    pub text: String,
}

/// A document of the knowledge base the personas search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnowledgeDoc {
    /// Stable id, so re-ingesting replaces instead of duplicating.
    pub id: String,
    pub project: Option<String>,
    pub persona: Option<Persona>,
    /// `persona_prompt`, `guardrail` or `project_notes`.
    pub kind: &'static str,
    pub title: String,
    pub body: String,
}

/// Everything under `projects/`, validated.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub projects: BTreeMap<String, ProjectSpec>,
    pub prompts: BTreeMap<Persona, PersonaPrompt>,
}

/// Every problem found while loading the catalog, each naming its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid project definitions:\n  - {}", .problems.join("\n  - "))]
pub struct CatalogError {
    pub problems: Vec<String>,
}

/// Where the catalog comes from: the projects shipped in the binary, or a
/// folder (`PROJECTS_DIR`) that replaces them entirely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectsSource {
    Shipped,
    Folder(PathBuf),
}

impl fmt::Display for ProjectsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shipped => f.write_str("shipped in the binary"),
            Self::Folder(dir) => write!(f, "PROJECTS_DIR {}", dir.display()),
        }
    }
}

/// The repository's `projects/` at build time (`crates/core/build.rs`):
/// each file's path under `projects/` and its text.
mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped_projects.rs"));
}

/// A file the catalog reads: its path (in messages) and its text, or why
/// it could not be read.
type Source = (PathBuf, Result<String, String>);

impl Catalog {
    /// The catalog `source` names.
    pub fn load_from(source: &ProjectsSource) -> Result<Catalog, CatalogError> {
        match source {
            ProjectsSource::Shipped => Catalog::shipped(),
            ProjectsSource::Folder(dir) => Catalog::load(dir),
        }
    }

    /// The projects and persona prompts compiled into the binary, named
    /// `projects/...` as in the repository.
    pub fn shipped() -> Result<Catalog, CatalogError> {
        let dir = Path::new("projects");
        let text = |name: &str| {
            shipped::SHIPPED
                .iter()
                .find(|(shipped, _)| *shipped == name)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| "not shipped in the binary".to_string())
        };
        let projects = shipped::SHIPPED
            .iter()
            .filter(|(name, _)| !name.contains('/') && name.ends_with(".toml"))
            .map(|(name, text)| (dir.join(name), Ok(text.to_string())))
            .collect();
        Catalog::check(dir, projects, |persona| {
            let name = format!("personas/{persona}.md");
            (dir.join(&name), text(&name))
        })
    }

    /// Loads `dir/*.toml` (one project each, named after its slug) and
    /// `dir/personas/*.md`.
    pub fn load(dir: &Path) -> Result<Catalog, CatalogError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                return Err(CatalogError {
                    problems: vec![format!("{}: cannot read the projects folder: {err}", dir.display())],
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        let read = |path: PathBuf| {
            let text = std::fs::read_to_string(&path).map_err(|err| err.to_string());
            (path, text)
        };
        let projects = files.into_iter().map(read).collect();
        Catalog::check(dir, projects, |persona| {
            read(dir.join("personas").join(format!("{persona}.md")))
        })
    }

    /// Parses and checks the project files of `dir` and each persona's
    /// prompt (from `prompt`), naming the file of every problem.
    fn check(
        dir: &Path,
        project_files: Vec<Source>,
        prompt: impl Fn(Persona) -> Source,
    ) -> Result<Catalog, CatalogError> {
        let mut problems = Vec::new();
        let mut projects = BTreeMap::new();
        for (path, text) in project_files {
            let text = match text {
                Ok(text) => text,
                Err(err) => {
                    problems.push(format!("{}: cannot read: {err}", path.display()));
                    continue;
                }
            };
            match ProjectSpec::parse(&path, &text) {
                Ok(spec) => {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                    if stem != spec.project {
                        problems.push(format!(
                            "{}: project: is {:?} but the file is named {stem}.toml",
                            path.display(),
                            spec.project
                        ));
                    }
                    projects.insert(spec.project.clone(), spec);
                }
                Err(mut errs) => problems.append(&mut errs),
            }
        }
        if projects.is_empty() && problems.is_empty() {
            problems.push(format!("{}: no project definitions (*.toml) found", dir.display()));
        }

        let mut prompts = BTreeMap::new();
        for persona in Persona::ALL {
            let (path, text) = prompt(persona);
            match text {
                Ok(text) if !text.trim().is_empty() => {
                    prompts.insert(persona, PersonaPrompt { persona, path, text });
                }
                Ok(_) => problems.push(format!("{}: the persona prompt is empty", path.display())),
                Err(err) => problems.push(format!("{}: cannot read the persona prompt: {err}", path.display())),
            }
        }

        if problems.is_empty() {
            Ok(Catalog { projects, prompts })
        } else {
            Err(CatalogError { problems })
        }
    }

    pub fn get(&self, project: &str) -> Option<&ProjectSpec> {
        self.projects.get(project)
    }

    pub fn names(&self) -> Vec<&str> {
        self.projects.keys().map(String::as_str).collect()
    }

    pub fn guardrail_count(&self) -> usize {
        self.projects.values().map(|p| p.guardrails.len()).sum()
    }

    /// The knowledge base: persona prompts, every guardrail, project notes.
    pub fn knowledge_documents(&self) -> Vec<KnowledgeDoc> {
        let mut docs: Vec<KnowledgeDoc> = self
            .prompts
            .values()
            .map(|p| KnowledgeDoc {
                id: format!("persona:{}", p.persona),
                project: None,
                persona: Some(p.persona),
                kind: "persona_prompt",
                title: format!("{} persona prompt", p.persona),
                body: p.text.clone(),
            })
            .collect();
        for spec in self.projects.values() {
            docs.push(KnowledgeDoc {
                id: format!("project:{}", spec.project),
                project: Some(spec.project.clone()),
                persona: None,
                kind: "project_notes",
                title: spec.title.clone(),
                body: format!("{}\n\n{}", spec.description, spec.notes).trim().to_string(),
            });
            for (i, rule) in spec.guardrails.iter().enumerate() {
                docs.push(KnowledgeDoc {
                    id: format!("guardrail:{}:{i}", spec.project),
                    project: Some(spec.project.clone()),
                    persona: None,
                    kind: "guardrail",
                    title: format!("{} guardrail {}", spec.project, i + 1),
                    body: rule.clone(),
                });
            }
        }
        docs
    }
}
