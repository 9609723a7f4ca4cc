//! The README's "How it is built" block is the crate's module map: every
//! path it names exists, and every source file is named by it (directly, by a
//! folder entry such as `src/auth/`, or as a child of `name.rs` whose folder
//! `name/` holds its parts). Tests and their fixtures are exempt.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `src/...` entries of the module map, in README order.
fn map_entries() -> Vec<String> {
    let readme = std::fs::read_to_string(crate_dir().join("../../README.md")).unwrap();
    let section = readme
        .split("### How it is built")
        .nth(1)
        .expect("README has a '### How it is built' section");
    let block = section.split("```").nth(1).expect("a fenced module map");
    block
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.starts_with("src/"))
        .map(str::to_string)
        .collect()
}

fn source_files(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(crate_dir()).unwrap();
            out.insert(relative.to_string_lossy().into_owned());
        }
    }
}

fn is_test_file(path: &str) -> bool {
    path.ends_with("/tests.rs") || path.contains("/tests/")
}

#[test]
fn every_path_in_the_module_map_exists() {
    let entries = map_entries();
    assert!(entries.len() > 20, "module map too short: {entries:?}");
    let missing: Vec<&String> = entries
        .iter()
        .filter(|entry| !crate_dir().join(entry).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "README names files that do not exist: {missing:?}"
    );
}

#[test]
fn every_source_file_is_in_the_module_map() {
    let entries = map_entries();
    let mut files = BTreeSet::new();
    source_files(&crate_dir().join("src"), &mut files);
    let covered = |file: &str| {
        entries.iter().any(|entry| {
            entry == file
                || (entry.ends_with('/') && file.starts_with(entry.as_str()))
                || entry
                    .strip_suffix(".rs")
                    .is_some_and(|stem| file.starts_with(&format!("{stem}/")))
        })
    };
    let unlisted: Vec<&String> = files
        .iter()
        .filter(|file| !is_test_file(file) && !covered(file))
        .collect();
    assert!(
        unlisted.is_empty(),
        "source files missing from the README's module map: {unlisted:?}"
    );
}
