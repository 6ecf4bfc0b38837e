//! The workspace declares only dependencies a member uses: a declared, unused one (socket2 was)
//! suggests a design the code does not have.

use std::path::Path;

/// The `[section]` of a Cargo.toml as its `key = value` lines, comments and blanks left out.
fn section<'a>(toml: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    toml.lines()
        .map(str::trim)
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn key(line: &str) -> &str {
    line.split(['=', '.']).next().unwrap_or("").trim()
}

#[test]
fn every_workspace_dependency_is_used_by_a_member() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    let members_line = section(&manifest, "workspace")
        .into_iter()
        .find(|l| key(l) == "members")
        .expect("workspace members")
        .to_string();
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.contains(&"apps"), "{members:?}");
    let member_manifests: Vec<String> = members
        .iter()
        .map(|m| std::fs::read_to_string(root.join(m).join("Cargo.toml")).expect("member"))
        .collect();
    let declared = section(&manifest, "workspace.dependencies");
    assert!(!declared.is_empty());
    for dep in declared.iter().map(|l| key(l)) {
        let used = member_manifests.iter().any(|m| {
            ["dependencies", "dev-dependencies", "build-dependencies"]
                .iter()
                .flat_map(|s| section(m, s))
                .any(|l| key(l) == dep && l.contains("workspace"))
        });
        assert!(
            used,
            "{dep} is declared in [workspace.dependencies] but no member uses it: use it or drop it"
        );
    }
}
