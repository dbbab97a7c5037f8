//! The shape ARCHITECTURE.md promises, read off the sources: the top-level modules import
//! each other without a circle, no command module imports another, no source file passes
//! 600 lines, and only the command-line layer (`cli/`, `config/`, `hints`) spells
//! flowerbed's commands and flags, each hint being a command line the parser accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::{CommandFactory, Parser};
use flowerbed::cli::Cli;
use flowerbed::hints::*;

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

/// The code that ships: up to the file's test module, comment lines blanked (so line
/// numbers stay the file's).
fn shipped(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
    code.lines()
        .map(|line| {
            if line.trim_start().starts_with("//") {
                ""
            } else {
                line
            }
        })
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

/// Flags flowerbed shares with what it renders or runs (Flower's components, docker,
/// pip, compose): domain code spells those as the other tool's, so they cannot tell
/// this test anything.
const SHARED_WITH_OTHER_TOOLS: &[&str] = &[
    "cpus",
    "force",
    "format",
    "insecure",
    "isolation",
    "name",
    "pids-limit",
    "platform",
    "python-version",
    "quiet",
    "workdir",
];

/// Every leaf command line (`flowerbed certs generate`) and every long flag of the CLI.
fn cli_spellings() -> (Vec<String>, Vec<String>) {
    let (mut commands, mut flags) = (Vec::new(), Vec::new());
    spellings(&Cli::command(), "flowerbed", &mut commands, &mut flags);
    (commands, flags)
}

/// `flowerbed SUB [SUB...]` for every leaf command, and every long flag.
fn spellings(command: &clap::Command, path: &str, commands: &mut Vec<String>, flags: &mut Vec<String>) {
    flags.extend(
        command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .map(|long| format!("--{long}")),
    );
    let mut subcommands = command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .peekable();
    if subcommands.peek().is_none() {
        commands.push(path.to_string());
    }
    for sub in subcommands {
        spellings(sub, &format!("{path} {}", sub.get_name()), commands, flags);
    }
}

/// Each command line this module writes is one the parser accepts (placeholders stand
/// for values), and each bare command names a real subcommand; each flag constant is
/// a flag of some command.
#[test]
fn every_hint_is_a_command_line_flowerbed_accepts() {
    let names = vec!["example.org".to_string()];
    let runnable = [
        quickstart("DIR"),
        quickstart_with_auth("DIR"),
        quickstart_superlink(),
        quickstart_superlink_auth(),
        from_bundle("FILE"),
        bundle_supernode_out("DIR", "OUT"),
        supernodes_admit("DIR", "KEYS"),
        certs_generate("DIR"),
        certs_generate_new_ca("DIR", false, &names),
        certs_generate_new_ca("DIR", true, &names),
        certs_renew("DIR", &names),
        certs_verify_name("HOST"),
        check("DIR"),
        check_as_root(),
        format!("flowerbed {}", check_live_name()),
        wheels(Some("DIR")),
        render_compose("DIR", "OUT"),
        format!(
            "flowerbed {}",
            made_by().split('`').nth(3).unwrap().replace("FORMAT", "compose")
        ),
        render_selinux(),
        render_supernode_auth(),
        undo("PATH"),
        undo_path("PATH"),
        journal_list(),
        journal_prune(),
        own_ways(true, false),
        own_ways(false, true),
        own_ways(false, false),
        own_command(1000, 1000, ["PATH"]).unwrap(),
    ];
    for line in &runnable {
        // `A (or B)`: each alternative on its own.
        for alternative in line.trim_end_matches(')').split(" (or ") {
            let words = shlex::split(alternative).unwrap();
            let start = words.iter().position(|word| word == "flowerbed").unwrap();
            let parsed = Cli::try_parse_from(&words[start..]);
            assert!(parsed.is_ok(), "{alternative}: {}", parsed.unwrap_err());
        }
    }
    for bare in [
        quickstart_bare(),
        bundle_supernode(),
        supernodes_admit_bare(),
        certs_generate_bare(),
        check_bare(),
        wheels(None),
        undo_bare(),
    ] {
        let mut command = Cli::command();
        for word in bare.split(' ').skip(1) {
            command = command
                .find_subcommand(word)
                .unwrap_or_else(|| panic!("{bare}: no subcommand {word}"))
                .clone();
        }
    }
    let (_, flags) = cli_spellings();
    let constants = [
        flag::ALLOW_HARDLINKS,
        flag::APP,
        flag::CA_CERT,
        flag::CA_KEY,
        flag::DAYS,
        flag::FLOWER_VERSION,
        flag::FORCE,
        flag::HELPER_IMAGE,
        flag::ID_SHIFT,
        flag::IMAGE_DIGEST,
        flag::INSECURE,
        flag::JSON,
        flag::KEY_TYPE,
        flag::NAME,
        flag::NAMESPACE,
        flag::NO_WAIT,
        flag::OUT,
        flag::PLATFORM,
        flag::PUBLIC_ADDRESS,
        flag::PUSH_TO,
        flag::PYTHON_VERSION,
        flag::SKIP_CHANGED,
        flag::SUPERLINK_ADDRESS,
        flag::TO,
        flag::VIA_DOCKER,
        flag::WORKDIR,
    ];
    for constant in constants {
        assert!(
            flags.iter().any(|flag| flag == constant),
            "{constant} is no flag of flowerbed's"
        );
    }
}

/// Nothing outside `cli/`, `config` and this module spells a flowerbed command or one
/// of its own flags (tests and comments aside): they ask this module.
#[test]
fn only_the_command_line_layer_spells_commands_and_flags() {
    let (mut commands, mut flags) = cli_spellings();
    commands.retain(|command| command != "flowerbed");
    flags.sort();
    flags.dedup();
    flags.retain(|flag| !["--help", "--version"].contains(&flag.as_str()));
    flags.retain(|flag| !SHARED_WITH_OTHER_TOOLS.contains(&&flag[2..]));
    assert!(
        commands.iter().any(|c| c == "flowerbed certs generate"),
        "{commands:?}"
    );
    assert!(flags.iter().any(|f| f == "--no-wait"), "{flags:?}");

    let mut found = Vec::new();
    for (relative, text) in sources() {
        let layer = ["cli/", "config/"].iter().any(|dir| relative.starts_with(dir)) || relative == "hints.rs";
        if layer {
            continue;
        }
        for (number, line) in shipped(&text).lines().enumerate() {
            let bounded = |word: &str| {
                line.match_indices(word).any(|(at, _)| {
                    let next = line[at + word.len()..].chars().next();
                    !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
            };
            for word in commands.iter().chain(&flags) {
                if bounded(word) {
                    found.push(format!("src/{relative}:{}: {word}", number + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "spelled outside the command-line layer:\n{}",
        found.join("\n")
    );
}
