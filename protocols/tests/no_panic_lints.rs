//! "No panic from the wire" is a lint setting, and this test keeps it one: the crate root must
//! deny `unwrap`, `expect`, `panic!` and unchecked indexing/slicing outside tests, and no source
//! file may switch those lints back off. (`cargo clippy -- -D warnings` then enforces them.)

use std::fs;
use std::path::Path;

const LINTS: [&str; 4] = [
    "clippy::unwrap_used",
    "clippy::expect_used",
    "clippy::panic",
    "clippy::indexing_slicing",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_crate_denies_panicking_input_handling() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let deny = lib
        .split("deny(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("lib.rs has a deny(...) list");
    assert!(
        lib.contains("not(test)"),
        "the deny applies to non-test code"
    );
    for lint in LINTS {
        assert!(deny.contains(lint), "lib.rs must deny {lint}");
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for lint in LINTS {
            for attr in ["allow(", "expect(", "warn("] {
                for (i, _) in text.match_indices(attr) {
                    let args = text[i..].split(')').next().unwrap_or("");
                    assert!(
                        !args.contains(lint),
                        "{} turns {lint} off: use .get() or a checked view instead",
                        f.display()
                    );
                }
            }
        }
    }
}
