//! Compiles the repository's `projects/` into the crate: every project
//! definition (`projects/*.toml`) and persona prompt
//! (`projects/personas/*.md`), so `mw` finds its catalog from any folder
//! (`PROJECTS_DIR` overrides it). Writes `$OUT_DIR/shipped_projects.rs`, a
//! list of (path under `projects/`, `include_str!` of the file): the
//! compiler then tracks each file, and the rerun below sees files added or
//! removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let projects = manifest.join("../../projects");
    println!("cargo::rerun-if-changed={}", projects.display());

    let mut files = files(&projects, "", "toml");
    files.extend(files_in(&projects.join("personas"), "personas/", "md"));
    let mut out = String::from("pub(super) const SHIPPED: &[(&str, &str)] = &[\n");
    for (name, path) in files {
        let path = path.canonicalize().expect("a listed file exists");
        writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("shipped_projects.rs");
    std::fs::write(&target, out).unwrap_or_else(|err| panic!("writing {}: {err}", target.display()));
}

/// The files of `dir` ending in `.ext`, named `prefix<file name>`, sorted;
/// the build fails when the folder cannot be read.
fn files(dir: &Path, prefix: &str, ext: &str) -> Vec<(String, PathBuf)> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|err| {
        panic!(
            "myloware-core embeds the shipped projects from {}: {err} (the build needs the repository's projects/)",
            dir.display()
        )
    });
    let mut files: Vec<(String, PathBuf)> = entries
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == ext))
        .map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name");
            (format!("{prefix}{name}"), path.clone())
        })
        .collect();
    files.sort();
    files
}

/// [`files`] of a folder that may be absent (the catalog then names each
/// missing persona prompt).
fn files_in(dir: &Path, prefix: &str, ext: &str) -> Vec<(String, PathBuf)> {
    if dir.is_dir() {
        files(dir, prefix, ext)
    } else {
        Vec::new()
    }
}
