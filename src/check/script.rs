//! Read the `docker run` commands of a shell script (a rendered `run.sh` or a hand-written
//! one) into container specs.
//!
//! The script goes through a real shell parser (brush-parser), and only the commands the
//! shell would run count: those inside `( … )`, `{ …; }`, `&&`/`||` chains, pipelines,
//! `if`/`case`/loop bodies and functions are found; heredoc bodies, comments and quoted
//! text are not commands. Words are expanded as far as a script can be read without running
//! it: quotes, escapes, `~`, `$PWD`/`${PWD}`/`$(pwd)`/backtick `pwd` (the script's working
//! directory) and variables the script assigned a literal value before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use brush_parser::ast;
use brush_parser::word::{Parameter, ParameterExpr, WordPiece, WordPieceWithSource};

use super::spec::{Component, ContainerSpec, MountKind, MountSpec, WrittenMount};

/// `docker run` options that take a value (the rest are switches).
const VALUED: [&str; 47] = [
    "-v",
    "--volume",
    "--mount",
    "-u",
    "--user",
    "--name",
    "-w",
    "--workdir",
    "-e",
    "--env",
    "--env-file",
    "-p",
    "--publish",
    "--network",
    "--net",
    "--network-alias",
    "--restart",
    "--entrypoint",
    "-l",
    "--label",
    "--hostname",
    "-h",
    "--add-host",
    "--security-opt",
    "--cap-add",
    "--cap-drop",
    "--ulimit",
    "--log-driver",
    "--log-opt",
    "-m",
    "--memory",
    "--cpus",
    "--pull",
    "--platform",
    "--health-cmd",
    "--health-interval",
    "--health-timeout",
    "--health-retries",
    "--health-start-period",
    "--stop-signal",
    "--group-add",
    "--tmpfs",
    "--userns",
    "--pids-limit",
    "--memory-swap",
    "--memory-reservation",
    "--shm-size",
];

/// Parse a script's text (pure: shared with the fuzz target). `workdir` is the directory
/// the script runs in: relative mount sources and `$PWD` resolve against it.
pub fn parse(script: &str, workdir: &Path) -> Result<Vec<ContainerSpec>> {
    let tokens = brush_parser::tokenize_str(script)
        .map_err(|err| anyhow!("not a shell script flowerbed can read: {err}"))?;
    let options = brush_parser::ParserOptions::default();
    let program = brush_parser::parse_tokens(&tokens, &options)
        .map_err(|err| anyhow!("not a shell script flowerbed can read: {err}"))?;
    let mut reader = Reader {
        workdir,
        options,
        variables: HashMap::new(),
        specs: Vec::new(),
    };
    for list in &program.complete_commands {
        reader.list(list)?;
    }
    if reader.specs.is_empty() {
        return Err(anyhow!("no `docker run` commands found"));
    }
    Ok(reader.specs)
}

/// Read a script; `workdir` defaults to the script's folder. Errors name the file.
pub fn read(path: &Path, workdir: Option<&Path>) -> Result<Vec<ContainerSpec>> {
    let text =
        crate::fsutil::read_regular_text(path, crate::fsutil::TEXT_LIMIT, crate::fsutil::Links::Follow)?;
    let folder = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let workdir = workdir.map_or(folder, |dir| {
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
    });
    parse(&text, &workdir).with_context(|| format!("{}", path.display()))
}

/// Walks the parsed script in the order the shell would run it.
struct Reader<'a> {
    workdir: &'a Path,
    options: brush_parser::ParserOptions,
    /// Variables assigned a literal value so far (`CERTS=/srv/certs`).
    variables: HashMap<String, String>,
    specs: Vec<ContainerSpec>,
}

impl Reader<'_> {
    fn list(&mut self, list: &ast::CompoundList) -> Result<()> {
        for ast::CompoundListItem(and_or, _) in &list.0 {
            self.pipeline(&and_or.first)?;
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(pipeline) | ast::AndOr::Or(pipeline) => self.pipeline(pipeline)?,
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, pipeline: &ast::Pipeline) -> Result<()> {
        for command in &pipeline.seq {
            self.command(command)?;
        }
        Ok(())
    }

    fn command(&mut self, command: &ast::Command) -> Result<()> {
        match command {
            ast::Command::Simple(simple) => self.simple(simple),
            ast::Command::Compound(compound, _) => self.compound(compound),
            ast::Command::Function(function) => self.compound(&function.body.0),
            ast::Command::ExtendedTest(..) => Ok(()),
        }
    }

    fn compound(&mut self, compound: &ast::CompoundCommand) -> Result<()> {
        match compound {
            ast::CompoundCommand::BraceGroup(group) => self.list(&group.list),
            ast::CompoundCommand::Subshell(subshell) => self.list(&subshell.list),
            ast::CompoundCommand::ForClause(for_clause) => self.list(&for_clause.body.list),
            ast::CompoundCommand::ArithmeticForClause(for_clause) => self.list(&for_clause.body.list),
            ast::CompoundCommand::CaseClause(case) => {
                for item in &case.cases {
                    if let Some(body) = &item.cmd {
                        self.list(body)?;
                    }
                }
                Ok(())
            }
            ast::CompoundCommand::IfClause(if_clause) => {
                self.list(&if_clause.condition)?;
                self.list(&if_clause.then)?;
                for branch in if_clause.elses.iter().flatten() {
                    if let Some(condition) = &branch.condition {
                        self.list(condition)?;
                    }
                    self.list(&branch.body)?;
                }
                Ok(())
            }
            ast::CompoundCommand::WhileClause(clause) | ast::CompoundCommand::UntilClause(clause) => {
                self.list(&clause.0)?;
                self.list(&clause.1.list)
            }
            ast::CompoundCommand::Coprocess(coprocess) => self.command(&coprocess.body),
            ast::CompoundCommand::Arithmetic(_) => Ok(()),
        }
    }

    fn simple(&mut self, simple: &ast::SimpleCommand) -> Result<()> {
        let mut words: Vec<Option<String>> = Vec::new();
        let mut assignments = Vec::new();
        for item in simple.prefix.iter().flat_map(|prefix| &prefix.0) {
            if let ast::CommandPrefixOrSuffixItem::AssignmentWord(assignment, _) = item {
                assignments.push(assignment);
            }
        }
        if let Some(name) = &simple.word_or_name {
            words.push(self.expand(&name.value));
        }
        for item in simple.suffix.iter().flat_map(|suffix| &suffix.0) {
            // After the command name, `type=bind,source=...` is an ordinary argument even
            // though it looks like an assignment.
            if let ast::CommandPrefixOrSuffixItem::Word(word)
            | ast::CommandPrefixOrSuffixItem::AssignmentWord(_, word) = item
            {
                words.push(self.expand(&word.value));
            }
        }
        if words.is_empty() {
            // `NAME=value` on its own line sets a shell variable for what follows.
            for assignment in assignments {
                if let (ast::AssignmentName::VariableName(name), ast::AssignmentValue::Scalar(value)) =
                    (&assignment.name, &assignment.value)
                {
                    match self.expand(&value.value) {
                        Some(text) => self.variables.insert(name.clone(), text),
                        None => self.variables.remove(name),
                    };
                }
            }
            return Ok(());
        }
        if let Some(spec) = docker_run(&words, self.workdir)? {
            self.specs.push(spec);
        }
        Ok(())
    }

    /// A word as the shell would pass it, or `None` when that depends on running something.
    fn expand(&self, word: &str) -> Option<String> {
        let pieces = brush_parser::word::parse(word, &self.options).ok()?;
        self.expand_pieces(&pieces)
    }

    fn expand_pieces(&self, pieces: &[WordPieceWithSource]) -> Option<String> {
        let mut out = String::new();
        for piece in pieces {
            match &piece.piece {
                WordPiece::Text(text)
                | WordPiece::SingleQuotedText(text)
                | WordPiece::AnsiCQuotedText(text) => {
                    out.push_str(text);
                }
                WordPiece::EscapeSequence(escape) => {
                    out.push_str(escape.strip_prefix('\\').unwrap_or(escape));
                }
                WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    out.push_str(&self.expand_pieces(inner)?);
                }
                WordPiece::TildeExpansion(_) => out.push_str(&std::env::var("HOME").ok()?),
                WordPiece::ParameterExpansion(ParameterExpr::Parameter {
                    parameter: Parameter::Named(name),
                    indirect: false,
                }) => out.push_str(&self.variable(name)?),
                WordPiece::CommandSubstitution(command)
                | WordPiece::BackquotedCommandSubstitution(command)
                    if command.trim() == "pwd" =>
                {
                    out.push_str(&self.workdir.to_string_lossy());
                }
                _ => return None,
            }
        }
        Some(out)
    }

    fn variable(&self, name: &str) -> Option<String> {
        if name == "PWD" {
            return Some(self.workdir.to_string_lossy().into_owned());
        }
        self.variables.get(name).cloned()
    }
}

/// The container a `docker run` (or `docker container run`) command starts, if `words` is one.
fn docker_run(words: &[Option<String>], workdir: &Path) -> Result<Option<ContainerSpec>> {
    let is = |index: usize, text: &str| words.get(index).and_then(Option::as_deref) == Some(text);
    let Some(docker) = words.iter().position(|word| {
        word.as_deref()
            .is_some_and(|w| w.rsplit('/').next() == Some("docker"))
    }) else {
        return Ok(None);
    };
    let start = if is(docker + 1, "run") {
        docker + 2
    } else if is(docker + 1, "container") && is(docker + 2, "run") {
        docker + 3
    } else {
        return Ok(None);
    };
    let mut rest = words[start..].iter();
    let mut spec = ContainerSpec::unnamed();
    let mut entrypoint = None;
    while let Some(word) = rest.next() {
        let Some(word) = word else { continue };
        if !word.starts_with('-') || word == "-" {
            spec.image = Some(word.clone());
            spec.args = rest.map(|w| w.clone().unwrap_or_default()).collect();
            break;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (word.as_str(), None),
        };
        let value = if VALUED.contains(&flag) {
            match inline {
                Some(value) => Some(value),
                None => match rest.next() {
                    Some(Some(value)) => Some(value.clone()),
                    Some(None) => None, // a value we cannot know without running the script
                    None => return Err(anyhow!("`{flag}` without a value")),
                },
            }
        } else {
            inline
        };
        let Some(value) = value else { continue };
        match flag {
            "-v" | "--volume" => spec.mounts.extend(volume(&value, workdir)),
            "--mount" => spec.mounts.extend(mount(&value, workdir)),
            "-u" | "--user" => spec.user = Some(value),
            "--name" => spec.name = value,
            "-w" | "--workdir" => spec.working_dir = value,
            "--entrypoint" => entrypoint = Some(value),
            _ => {}
        }
    }
    let Some(image) = spec.image.clone() else {
        return Err(anyhow!("`docker run` without an image"));
    };
    if spec.name.is_empty() {
        spec.name.clone_from(&image);
    }
    spec.profile = crate::deploy::Profile::from_image(&image);
    spec.role = Component::guess(&image)
        .or_else(|| entrypoint.as_deref().and_then(Component::guess))
        .or_else(|| Component::guess(&spec.name));
    Ok(Some(spec))
}

fn host_source(source: &str, workdir: &Path) -> PathBuf {
    super::spec::resolve_host(workdir, source)
}

/// `-v SOURCE:TARGET[:OPTIONS]`; named volumes are not host paths.
fn volume(value: &str, workdir: &Path) -> Option<MountSpec> {
    let parts: Vec<&str> = value.splitn(3, ':').collect();
    let (source, target, options) = match parts.as_slice() {
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return None,
    };
    if !(source.starts_with('/') || source.starts_with('.') || source.starts_with('~')) {
        return None;
    }
    let options: Vec<&str> = options.split(',').collect();
    Some(MountSpec {
        source: host_source(source, workdir),
        written: Some(WrittenMount {
            flag: "-v",
            value: value.to_string(),
            source: source.to_string(),
        }),
        target: target.to_string(),
        read_only: options.contains(&"ro"),
        kind: MountKind::Bind,
        selinux_label: options.iter().any(|o| *o == "z" || *o == "Z"),
    })
}

/// `--mount type=bind,source=/x,target=/y,readonly`
fn mount(value: &str, workdir: &Path) -> Option<MountSpec> {
    let mut kind = "volume";
    let (mut source, mut target, mut read_only) = (None, None, false);
    for field in value.split(',') {
        let (key, val) = field.split_once('=').map_or((field, ""), |(k, v)| (k, v));
        match key {
            "type" => kind = if val == "bind" { "bind" } else { "other" },
            "source" | "src" => source = Some(val.to_string()),
            "target" | "destination" | "dst" => target = Some(val.to_string()),
            "readonly" | "ro" => read_only = val.is_empty() || val == "true" || val == "1",
            _ => {}
        }
    }
    if kind != "bind" {
        return None;
    }
    let source = source?;
    Some(MountSpec {
        source: host_source(&source, workdir),
        written: Some(WrittenMount {
            flag: "--mount",
            value: value.to_string(),
            source,
        }),
        target: target?,
        read_only,
        kind: MountKind::Bind,
        selinux_label: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(script: &str) -> Vec<String> {
        parse(script, Path::new("/srv/site"))
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    #[test]
    fn reads_docker_run_lines() {
        let script = r"#!/bin/sh
set -eu
docker network create flower
docker run -d \
  --name superlink \
  --network flower \
  --user 49999:49999 \
  -v '/srv/my certs/superlink-certificates:/app/certificates:ro' \
  --mount type=bind,source=/srv/state,target=/app/state \
  flwr/superlink:1.42.0 \
  --ssl-keyfile certificates/server.key \
  --database state/state.db
docker run --rm -d --name=supernode-1 -v ./ca:/app/ca:ro flwr/supernode:1.42.0 --insecure
";
        let specs = parse(script, Path::new("/srv/site")).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "superlink");
        assert_eq!(specs[0].role, Some(Component::Superlink));
        assert_eq!(specs[0].profile.map(|p| p.version), Some("1.42.0"));
        assert_eq!(specs[0].user.as_deref(), Some("49999:49999"));
        assert_eq!(
            specs[0].mounts[0].source,
            PathBuf::from("/srv/my certs/superlink-certificates")
        );
        assert!(specs[0].mounts[0].read_only);
        assert!(!specs[0].mounts[1].read_only);
        assert_eq!(specs[0].flag_value("--database"), Some("state/state.db"));
        assert_eq!(specs[1].name, "supernode-1");
        assert!(specs[1].mounts[0].written_relative());
        assert_eq!(specs[1].mounts[0].source, PathBuf::from("/srv/site/ca"));
        assert!(specs[1].has_flag("--insecure"));
    }

    #[test]
    fn the_working_directory_expands_in_every_spelling() {
        let script = r#"docker run --name a -v "$(pwd)"/certs:/app/certificates:ro flwr/superlink:1.42.0
docker run --name b -v $PWD/certs:/app/certificates:ro flwr/superlink:1.42.0
docker run --name c -v "${PWD}/certs:/app/certificates:ro" flwr/superlink:1.42.0
docker run --name d -v `pwd`/certs:/app/certificates:ro flwr/superlink:1.42.0
CERTS=/srv/elsewhere
docker run --name e -v "$CERTS":/app/certificates:ro flwr/superlink:1.42.0
docker run --name f -v "$(hostname)":/app/certificates:ro flwr/superlink:1.42.0
"#;
        let specs = parse(script, Path::new("/srv/site")).unwrap();
        let sources: Vec<(String, Option<PathBuf>)> = specs
            .iter()
            .map(|s| (s.name.clone(), s.mounts.first().map(|m| m.source.clone())))
            .collect();
        let certs = Some(PathBuf::from("/srv/site/certs"));
        assert_eq!(
            sources,
            [
                ("a".to_string(), certs.clone()),
                ("b".to_string(), certs.clone()),
                ("c".to_string(), certs.clone()),
                ("d".to_string(), certs),
                ("e".to_string(), Some(PathBuf::from("/srv/elsewhere"))),
                ("f".to_string(), None),
            ]
        );
        assert!(specs.iter().take(5).all(|s| !s.mounts[0].written_relative()));
    }

    #[test]
    fn structure_decides_what_is_a_command() {
        let script = r#"
cat > notes.txt <<'EOF'
docker run --name in-heredoc flwr/superlink:1.42.0
EOF
echo "docker run --name in-a-string flwr/superlink:1.42.0"
# docker run --name in-a-comment flwr/superlink:1.42.0
( docker run --name in-subshell flwr/superlink:1.42.0 )
{ docker run --name in-group flwr/supernode:1.42.0; }
docker network create flower && docker run --name in-chain flwr/supernode:1.42.0 || exit 1
if [ -n "${X:-}" ]; then docker run --name in-if flwr/supernode:1.42.0; fi
start() {
  sudo docker container run --name in-function flwr/supernode:1.42.0
}
"#;
        assert_eq!(
            names(script),
            ["in-subshell", "in-group", "in-chain", "in-if", "in-function"]
        );
    }

    #[test]
    fn no_docker_run_is_an_error() {
        assert!(parse("echo hello\n", Path::new("/")).is_err());
        assert!(parse("docker run --name x\n", Path::new("/")).is_err());
        assert!(parse("if then fi (\n", Path::new("/")).is_err());
    }
}
