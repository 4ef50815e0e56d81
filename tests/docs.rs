//! The docs against what they describe, with no services (plain `cargo test` runs it):
//! the settings table of docs/configuration.md against the command line clap builds
//! (every flag of `tokencache serve`, its environment variable and its default), the
//! other commands' flags against its "Command line" section, and every relative link of
//! the Markdown files against the files and headings it names. mdBook does not fail on a
//! broken link; this test does.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use clap::{ArgAction, CommandFactory};
use tokencache::cli::Cli;

const CONFIGURATION: &str = "docs/configuration.md";

/// Defaults the program applies itself when a flag is absent (clap has none for them),
/// which the table states as values.
const PROGRAM_DEFAULTS: [(&str, &str); 1] =
    [("database-url", tokencache::app::DEFAULT_DATABASE_URL)];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The lines of `## <title>` up to the next heading of the same or a higher level.
fn section<'a>(doc: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = doc.lines().skip_while(|l| *l != format!("## {title}"));
    let Some(_) = lines.next() else {
        panic!("{CONFIGURATION} has no section `## {title}`");
    };
    lines
        .take_while(|l| !(l.starts_with("## ") || l.starts_with("# ")))
        .collect()
}

/// One row of the settings table: its environment and default cells.
#[derive(Debug, PartialEq)]
struct Row {
    env: String,
    default: String,
}

/// The rows of the first table of the section whose first cell is a flag, by flag.
fn settings_rows(lines: &[&str]) -> (BTreeMap<String, Row>, Vec<String>) {
    let mut rows = BTreeMap::new();
    let mut problems = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| `--flag` | `ENV` | default | note |" splits into 6 cells, empty at both ends.
        let Some(flag) = cells
            .get(1)
            .and_then(|c| c.strip_prefix("`--"))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        if cells.len() < 5 {
            problems.push(format!("the row of --{flag} has too few cells: {line}"));
            continue;
        }
        let row = Row {
            env: cells[2].to_owned(),
            default: cells[3].to_owned(),
        };
        if rows.insert(flag.to_owned(), row).is_some() {
            problems.push(format!("--{flag} has two rows"));
        }
    }
    (rows, problems)
}

fn is_code_span(cell: &str) -> bool {
    cell.len() >= 2
        && cell.starts_with('`')
        && cell.ends_with('`')
        && !cell[1..cell.len() - 1].contains('`')
}

/// The row the command line calls for, and whether the default must be `expected` exactly
/// (otherwise: prose that names no value, for a flag without a default).
fn expected_row(arg: &clap::Arg) -> (String, Option<String>) {
    let long = arg.get_long().unwrap_or_default();
    let env = match arg.get_env() {
        Some(env) => format!("`{}`", env.to_string_lossy()),
        None => "none".to_owned(),
    };
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let default = if matches!(arg.get_action(), ArgAction::SetTrue) {
        Some("off".to_owned())
    } else if !defaults.is_empty() {
        Some(format!("`{}`", defaults.join(",")))
    } else {
        PROGRAM_DEFAULTS
            .iter()
            .find(|(flag, _)| *flag == long)
            .map(|(_, value)| format!("`{value}`"))
    };
    (env, default)
}

/// The arguments of a command that are flags a user types (not --help or --version;
/// hidden ones included).
fn flags(command: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    command
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
}

#[test]
fn the_settings_table_has_every_flag_of_serve_with_its_environment_and_default() {
    let mut cli = Cli::command();
    // Propagates the global flags (the stores, --log-format) to the subcommands.
    cli.build();
    let serve = cli
        .find_subcommand("serve")
        .expect("the command line has a serve command");
    let doc = read(CONFIGURATION);
    let (rows, mut problems) = settings_rows(&section(&doc, "Settings"));

    let mut seen = BTreeSet::new();
    for arg in flags(serve) {
        let long = arg.get_long().unwrap_or_default();
        seen.insert(long.to_owned());
        let (env, default) = expected_row(arg);
        let Some(row) = rows.get(long) else {
            if arg.is_hide_set() {
                // Out of --help (a replaced flag, refused or ignored): a row is optional.
                continue;
            }
            problems.push(format!(
                "missing row for --{long}: add `| `--{long}` | {env} | {} | … |` to the \
                 Settings table",
                default.as_deref().unwrap_or("(what happens without it)")
            ));
            continue;
        };
        if row.env != env {
            problems.push(format!(
                "--{long}: environment {} in the table, {env} on the command line",
                row.env
            ));
        }
        match default {
            Some(default) if row.default != default => problems.push(format!(
                "--{long}: default {} in the table, {default} on the command line",
                row.default
            )),
            None if is_code_span(&row.default) || row.default == "off" => problems.push(format!(
                "--{long}: default {} in the table, but the command line has none: say \
                     in words what happens without it",
                row.default
            )),
            _ => {}
        }
    }
    for flag in rows.keys().filter(|f| !seen.contains(*f)) {
        problems.push(format!(
            "extra row --{flag}: `tokencache serve` has no such flag"
        ));
    }
    assert!(
        problems.is_empty(),
        "{CONFIGURATION}, section Settings, differs from the command line \
         (src/cli/args.rs):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_flag_of_the_other_commands_is_in_the_command_line_section() {
    let mut cli = Cli::command();
    cli.build();
    let doc = read(CONFIGURATION);
    let text = section(&doc, "Command line").join("\n");
    let book: String = markdown_files()
        .iter()
        .filter(|f| f.starts_with("docs/"))
        .map(|f| read(f))
        .collect();
    let mut problems = Vec::new();
    let mut stack: Vec<(String, &clap::Command)> = cli
        .get_subcommands()
        .filter(|c| !matches!(c.get_name(), "serve" | "help"))
        .map(|c| (c.get_name().to_owned(), c))
        .collect();
    while let Some((path, command)) = stack.pop() {
        if !text.contains(command.get_name()) {
            problems.push(format!("`tokencache {path}` is not in the synopsis"));
        }
        for arg in flags(command).filter(|a| !a.is_global_set()) {
            let long = arg.get_long().unwrap_or_default();
            if !text.contains(&format!("--{long}")) {
                problems.push(format!(
                    "`tokencache {path}`: --{long} is not in the synopsis"
                ));
            }
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                if !book.contains(&*env) {
                    problems.push(format!(
                        "`tokencache {path}`: --{long}'s variable {env} is nowhere in docs/"
                    ));
                }
            }
        }
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            stack.push((format!("{path} {}", sub.get_name()), sub));
        }
    }
    assert!(
        problems.is_empty(),
        "{CONFIGURATION}, section Command line, differs from the command line \
         (src/cli/args.rs):\n  {}",
        problems.join("\n  ")
    );
}

/// The Markdown files whose links are checked, relative to the repository.
fn markdown_files() -> Vec<String> {
    let mut files: Vec<String> = [
        "README.md",
        "ARCHITECTURE.md",
        "CONTRIBUTING.md",
        "loadtest/README.md",
    ]
    .map(String::from)
    .to_vec();
    let mut book: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    book.sort();
    files.extend(book);
    files
}

/// The text of a Markdown file without its code: fenced blocks become empty lines (so
/// line numbers stay), inline code spans are removed.
fn prose(doc: &str) -> Vec<String> {
    let mut fence: Option<&str> = None;
    doc.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if let Some(open) = fence {
                if trimmed.starts_with(open) {
                    fence = None;
                }
                return String::new();
            }
            for marker in ["```", "~~~"] {
                if trimmed.starts_with(marker) {
                    fence = Some(marker);
                    return String::new();
                }
            }
            without_code_spans(line)
        })
        .collect()
}

fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        let closing = "`".repeat(ticks);
        match after.find(&closing) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every link target of a line: inline links and images `[text](target "title")`, and
/// reference definitions `[name]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        targets.push(target.to_owned());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some((_, target)) = trimmed.split_once("]: ") {
            targets.push(target.split_whitespace().next().unwrap_or("").to_owned());
        }
    }
    targets
}

/// A heading's anchor as GitHub and mdBook make it: the text without its markup, lower
/// case, spaces to `-`, every other character but letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    // Links keep their text: `[text](url)` reads as `text`.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](") {
            Some(mid) => {
                let mid = open + mid;
                let close = rest[mid..].find(')').map_or(rest.len(), |c| mid + c + 1);
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..mid]);
                rest = &rest[close..];
            }
            None => {
                text.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_lowercase().collect::<String>())
            } else if c == ' ' {
                Some("-".to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a Markdown file's headings (a repeated one gets `-1`, `-2`, … as on
/// GitHub and in mdBook).
fn anchors(doc: &str) -> BTreeSet<String> {
    let mut fence = false;
    let mut seen = BTreeMap::<String, usize>::new();
    let mut anchors = BTreeSet::new();
    for line in doc.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = !fence;
            continue;
        }
        if fence || !line.starts_with('#') {
            continue;
        }
        let text = line.trim_start_matches('#');
        if !text.starts_with(' ') {
            continue;
        }
        let text = text.trim().trim_end_matches('#').trim();
        let base = slug(text);
        let count = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// `base/relative` with `.` and `..` resolved, without touching the file system; a path
/// that leaves the repository starts with `..`.
fn join(base: &Path, relative: &str) -> PathBuf {
    let joined = base.join(relative);
    let mut parts: Vec<Component> = Vec::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                _ => parts.push(Component::ParentDir),
            },
            Component::CurDir => {}
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

#[test]
fn every_relative_link_leads_to_a_file_and_every_anchor_to_a_heading() {
    let mut problems = Vec::new();
    for file in markdown_files() {
        let doc = read(&file);
        let dir = Path::new(&file).parent().unwrap_or(Path::new(""));
        for (n, line) in prose(&doc).iter().enumerate() {
            for target in link_targets(line) {
                let at = format!("{file}:{}", n + 1);
                if target.is_empty() {
                    problems.push(format!("{at}: a link without a target"));
                    continue;
                }
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let linked = if path.is_empty() {
                    PathBuf::from(&file)
                } else {
                    join(dir, path)
                };
                if linked.starts_with("..") {
                    problems.push(format!(
                        "{at}: {target} names {}, outside the repository",
                        linked.display()
                    ));
                    continue;
                }
                if !root().join(&linked).exists() {
                    problems.push(format!(
                        "{at}: {target} names {}, which does not exist",
                        linked.display()
                    ));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if linked.extension().is_some_and(|e| e == "md") {
                    let headings =
                        anchors(&std::fs::read_to_string(root().join(&linked)).unwrap_or_default());
                    if !headings.contains(anchor) {
                        problems.push(format!(
                            "{at}: {target}: {} has no heading whose anchor is #{anchor}",
                            linked.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = read("docs/SUMMARY.md");
    let listed: BTreeSet<String> = summary.lines().flat_map(link_targets).collect();
    let missing: Vec<String> = markdown_files()
        .into_iter()
        .filter_map(|f| f.strip_prefix("docs/").map(str::to_owned))
        .filter(|f| f != "SUMMARY.md" && !listed.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/SUMMARY.md does not list {missing:?}: mdBook leaves such a file out of the \
         book, and links to it break there"
    );
}

#[test]
fn the_readme_fits_in_200_lines() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines: keep it to the first screen and move the rest into \
         a chapter of docs/"
    );
}

#[test]
fn slugs_follow_github_and_mdbook() {
    assert_eq!(
        slug("Moving from xxjwxc/oauth2"),
        "moving-from-xxjwxcoauth2"
    );
    assert_eq!(
        slug("Scaling out: Redis Cluster and Sentinel"),
        "scaling-out-redis-cluster-and-sentinel"
    );
    assert_eq!(slug("Gateways and OAuth 2.0"), "gateways-and-oauth-20");
    assert_eq!(slug("nginx (`auth_request`)"), "nginx-auth_request");
    assert_eq!(
        slug("gRPC ext_authz beside check_token"),
        "grpc-ext_authz-beside-check_token"
    );
    assert_eq!(slug("A [link](x.md) here"), "a-link-here");
    let doc = "# A\n## B\n```\n# not a heading\n```\n## B\n";
    assert_eq!(
        anchors(doc),
        ["a", "b", "b-1"].map(String::from).into_iter().collect()
    );
}
