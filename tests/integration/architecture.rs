//! The shape ARCHITECTURE.md promises, read off the sources: the top-level modules import
//! each other without a circle, no command module imports another, and no source file
//! passes 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.push((relative, std::fs::read_to_string(entry.path()).unwrap()));
    }
    out.sort();
    out
}

/// The code that ships: up to the file's test module, comments left out.
fn shipped(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::NAME` a piece of code names, whether in a path or in `use crate::{…}`.
fn crate_names(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            for item in inner.split(',') {
                names.insert(word(item.trim()));
            }
        } else {
            names.insert(word(rest));
        }
    }
    names
}

/// The top-level module a source file belongs to.
fn top_module(relative: &str) -> String {
    relative
        .split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let files = sources();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(relative, _)| top_module(relative))
        .filter(|module| module != "lib" && module != "main")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (relative, text) in &files {
        let from = top_module(relative);
        for to in crate_names(&shipped(text)) {
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges["commands"].contains("deploy"),
        "the scan sees imports: {edges:?}"
    );

    // A circle is an edge whose target reaches back to its source.
    let reaches = |from: &str, goal: &str| -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(module) = stack.pop() {
            if module == goal {
                return true;
            }
            for next in edges.get(&module).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        false
    };
    let circles: Vec<String> = edges
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter(|(from, to)| reaches(to, from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:?}");

    // The layer below commands knows neither the clap types nor the settings module.
    for (from, tos) in &edges {
        if !["app", "commands", "config", "cli"].contains(&from.as_str()) {
            assert!(
                !tos.contains("cli") && !tos.contains("config"),
                "{from} imports the command-line layer: {tos:?}"
            );
        }
    }
}

#[test]
fn no_command_module_imports_another() {
    let files = sources();
    let commands: BTreeSet<String> = files
        .iter()
        .filter_map(|(relative, _)| relative.strip_prefix("commands/"))
        .map(|name| name.trim_end_matches(".rs").to_string())
        .filter(|name| name != "mod")
        .collect();
    assert!(
        commands.contains("deploy") && commands.contains("bundle"),
        "{commands:?}"
    );
    for (relative, text) in &files {
        let Some(name) = relative.strip_prefix("commands/") else {
            continue;
        };
        let own = name.trim_end_matches(".rs");
        let code = shipped(text);
        for prefix in ["commands::", "super::"] {
            for (at, _) in code.match_indices(prefix) {
                let other: String = code[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    other == own || !commands.contains(&other),
                    "src/{relative} imports the command module {other}"
                );
            }
        }
    }
}

#[test]
fn no_source_file_passes_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    for folder in ["src", "tests", "benches", "fuzz/fuzz_targets"] {
        for entry in walkdir::WalkDir::new(root.join(folder)) {
            let entry = entry.unwrap();
            if entry.path().extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let lines = std::fs::read_to_string(entry.path()).unwrap().lines().count();
            if lines > 600 {
                long.push((entry.path().strip_prefix(root).unwrap().to_path_buf(), lines));
            }
        }
    }
    assert!(long.is_empty(), "{long:?}");
}
