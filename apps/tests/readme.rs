//! The README stands alone and its tour is what the binary takes: links stay inside the
//! repository, it says how to get `tapir` on the PATH, and every `tapir` line of the tour parses
//! (subcommands, options, values, services), with the files it serves made by a line before it.
//! No network and no root: `--help` ends each parse before a node starts.

use std::path::{Path, PathBuf};
use std::process::Command;

const TAPIR: &str = env!("CARGO_BIN_EXE_tapir");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The targets of `[text](target)` links in markdown.
fn link_targets(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = md;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn markdown_links_stay_inside_the_repository() {
    let root = root();
    for doc in ["README.md", "deploy/README.md"] {
        let text = read(doc);
        assert!(
            !text.contains("PYIP-README"),
            "{doc} points at the PyIP README, which is not in the repository"
        );
        let dir = root.join(doc).parent().unwrap().to_path_buf();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            let resolved = dir.join(path).canonicalize();
            assert!(
                resolved.as_ref().is_ok_and(|p| p.starts_with(&root)),
                "{doc} links to {target}, which is not a file in the repository"
            );
        }
    }
}

#[test]
fn readme_and_demo_say_how_to_get_tapir_on_the_path() {
    let readme = read("README.md");
    assert!(readme.contains("cargo install --path apps --locked"));
    // That command installs a binary called tapir: apps is the package that builds it.
    let apps = read("apps/Cargo.toml");
    assert!(apps.contains("[[bin]]\nname = \"tapir\""), "{apps}");
    assert!(TAPIR.ends_with("/tapir"));
    // The demo says where the binary it runs is, before running it.
    let demo = read("scripts/demo");
    let say = demo
        .lines()
        .position(|l| l.starts_with("echo ") && l.contains("$PWD/target/release/tapir"))
        .expect("scripts/demo prints where the binary is");
    let run = demo
        .lines()
        .position(|l| l.starts_with("exec ./target/release/tapir "))
        .expect("scripts/demo runs target/release/tapir");
    assert!(say < run);
}

/// The lines of the README's tour (the first ```sh block under "A short tour"), with `\`
/// continuations joined and comments cut.
fn tour() -> Vec<String> {
    let readme = read("README.md");
    let at = readme.find("## A short tour").expect("the tour");
    let block = &readme[at..];
    let start = block.find("```sh\n").expect("the tour's block") + 6;
    let end = start + block[start..].find("```").unwrap();
    let mut lines = Vec::new();
    let mut cont = String::new();
    for l in block[start..end].lines() {
        if let Some(head) = l.strip_suffix('\\') {
            cont.push_str(head);
            continue;
        }
        cont.push_str(l);
        let line = match cont.find(" # ") {
            Some(i) if cont[..i].matches('\'').count().is_multiple_of(2) => cont[..i].to_string(),
            _ => cont.clone(),
        };
        lines.push(line.trim().to_string());
        cont.clear();
    }
    lines
}

#[test]
fn every_tapir_line_of_the_tour_parses_and_its_files_are_made_first() {
    let lines = tour();
    let n = lines
        .iter()
        .find_map(|l| l.strip_prefix("N=\""))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("the tour sets N");
    let mut made: Vec<String> = Vec::new();
    let mut checked = 0;
    for line in &lines {
        // What shell lines create: `mkdir -p DIR` and `> FILE`.
        if let Some(rest) = line.strip_prefix("mkdir -p ") {
            made.push(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(i) = line.rfind("> ") {
            made.push(line[i + 2..].split_whitespace().next().unwrap().to_string());
        }
        let Some(args) = line.strip_prefix("tapir ") else {
            continue;
        };
        // `[-I]` marks an option to add or leave out: parse with it.
        let args = args.replace("$N", &n).replace(['[', ']'], "");
        let words = shlex::split(&args).expect("shell words");
        if words[0] == "trace" {
            // Its filter words run to the end of the line, so no --help there: decoding a
            // capture that is not there gets past parsing (options and filter) to exit 1.
            let out = Command::new(TAPIR)
                .args(&words)
                .current_dir(std::env::temp_dir())
                .output()
                .expect("run tapir");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.code() == Some(1) && err.contains("cannot read"),
                "tour line `{line}` does not parse: {err}"
            );
            checked += 1;
            continue;
        }
        let out = Command::new(TAPIR)
            .args(&words)
            .arg("--help")
            .output()
            .expect("run tapir");
        assert!(
            out.status.success(),
            "tour line `{line}` does not parse: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
        if words[0] == "serve" {
            for w in words.iter().skip(1).filter(|w| !w.starts_with('-')) {
                let Ok(spec) = w.parse::<tapir_apps::services::ServiceSpec>() else {
                    continue; // an option's value
                };
                if let Some(path) = spec.dir {
                    let path = path.display().to_string();
                    assert!(
                        made.contains(&path),
                        "tour line `{line}` serves {path}, which no line before it makes"
                    );
                }
            }
        }
    }
    assert!(
        checked >= 15,
        "{checked} tapir lines in the tour: {lines:#?}"
    );
}
