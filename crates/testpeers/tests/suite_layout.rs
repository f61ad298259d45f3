//! Each crate links its integration tests into one binary, `tests/suite.rs` (`autotests = false`):
//! a test file the suite does not declare would never be compiled or run, and nothing else would
//! notice. This checks every crate of the workspace.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Modules `suite.rs` declares with `mod <name>;`.
fn declared_modules(suite: &str) -> BTreeSet<String> {
    suite
        .lines()
        .filter_map(|line| line.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

/// The `.rs` files directly under `tests/`, without the suite itself.
fn test_files(tests: &Path) -> BTreeSet<String> {
    std::fs::read_dir(tests)
        .unwrap_or_else(|e| panic!("reading {}: {e}", tests.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .filter(|stem| stem != "suite")
        .collect()
}

#[test]
fn every_test_file_of_every_crate_is_in_its_suite() {
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let krate = entry.unwrap().path();
        let tests = krate.join("tests");
        if !tests.is_dir() {
            continue;
        }
        let files = test_files(&tests);
        let suite_path = tests.join("suite.rs");
        let suite = std::fs::read_to_string(&suite_path).unwrap_or_else(|e| {
            panic!(
                "{} has test files {files:?} but no suite.rs: {e}",
                tests.display()
            )
        });
        let declared = declared_modules(&suite);
        let missing: Vec<_> = files.difference(&declared).collect();
        assert!(
            missing.is_empty(),
            "{} does not declare {missing:?}: add `mod <file>;` for each, or they never run",
            suite_path.display()
        );
        let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("autotests = false")
                && manifest.contains("[[test]]\nname = \"suite\"\npath = \"tests/suite.rs\""),
            "{}: expected `autotests = false` and one [[test]] named suite at tests/suite.rs",
            krate.join("Cargo.toml").display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} crates with tests found");
}

#[test]
fn a_file_left_out_of_the_suite_is_seen() {
    let suite = "mod support;\n\nmod a;\n";
    let files: BTreeSet<String> = ["a", "b"].map(String::from).into();
    let declared = declared_modules(suite);
    assert_eq!(
        files.difference(&declared).collect::<Vec<_>>(),
        [&"b".to_owned()]
    );
}
