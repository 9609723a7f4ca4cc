//! Baselines: adopting `sluice check` in a repository that already breaks
//! rules. `sluice check --write-baseline FILE` records today's violations;
//! `sluice check --baseline FILE` then reports only violations that are not
//! in it, so CI fails on new debt while the old debt is paid off.
//!
//! A violation is matched by its rule, its file and a *fingerprint* of the
//! offending text (the source lines it points at, each trimmed, hashed with
//! SHA-256), never by its line number: a line inserted above moves the
//! violation, and it still matches. Violations about something missing (a
//! file, a page's `main()` or `BasePage` import) point at no line of their
//! own and are fingerprinted by their message. Identical
//! violations are counted: a baseline entry with `count: 1` hides one of
//! them, so a second copy of the same offending line in the same file is new
//! (the later one in the file is reported).
//!
//! The file is JSON (stable order, one entry per rule/file/fingerprint with
//! the first message for reviewers), so it diffs well in merge requests:
//!
//! ```json
//! {"sluice_baseline": 1, "violations": [{"rule_id": "select-only-sql",
//!   "file": "applications/sales/dashboard.py", "fingerprint": "1b0f8e2d9c3a4b5e",
//!   "count": 1, "message": "DELETE is not allowed ..."}]}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::rules::Violation;
use crate::source::without_location;

/// The format version written as `sluice_baseline`.
pub const BASELINE_FORMAT: u32 = 1;

/// Hex digits of the SHA-256 kept (64 bits: collisions within one file's
/// violations of one rule are not a concern).
const FINGERPRINT_LEN: usize = 16;

/// What identifies a known violation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    rule_id: String,
    file: String,
    fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    count: usize,
    message: String,
}

/// The violations a repository already had.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    entries: BTreeMap<Key, Known>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineFile {
    sluice_baseline: u32,
    #[serde(default)]
    violations: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    rule_id: String,
    file: String,
    fingerprint: String,
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    message: String,
}

fn one() -> usize {
    1
}

/// A baseline file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read the baseline {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: sluice_baseline {found} is not a format this sluice reads (it writes {BASELINE_FORMAT})", .path.display())]
    Version { path: PathBuf, found: u32 },
}

/// Where violations were split by a baseline.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Not in the baseline: reported.
    pub new: Vec<Violation>,
    /// In the baseline: hidden.
    pub known: Vec<Violation>,
    /// Baseline entries (counted) that no violation matched any more: fixed debt.
    pub fixed: usize,
}

impl Baseline {
    /// The baseline of `violations` (workspace-relative files under `root`).
    pub fn from_violations(root: &Path, violations: &[Violation]) -> Baseline {
        let mut texts = SourceCache::new(root);
        let mut entries: BTreeMap<Key, Known> = BTreeMap::new();
        for violation in violations {
            let key = texts.key(violation);
            entries
                .entry(key)
                .or_insert_with(|| Known {
                    count: 0,
                    message: violation.message.clone(),
                })
                .count += 1;
        }
        Baseline { entries }
    }

    /// Reads a baseline file; `path` is also how errors name it.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|error| BaselineError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Baseline::parse(&text, path)
    }

    /// Parses a baseline's JSON; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Baseline, BaselineError> {
        let file: BaselineFile =
            serde_json::from_str(text).map_err(|e| BaselineError::Invalid {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: without_location(&e.to_string()),
            })?;
        if file.sluice_baseline != BASELINE_FORMAT {
            return Err(BaselineError::Version {
                path: path.to_path_buf(),
                found: file.sluice_baseline,
            });
        }
        let mut entries = BTreeMap::new();
        for entry in file.violations {
            let key = Key {
                rule_id: entry.rule_id,
                file: entry.file,
                fingerprint: entry.fingerprint,
            };
            let known: &mut Known = entries.entry(key).or_insert(Known {
                count: 0,
                message: entry.message,
            });
            known.count += entry.count;
        }
        Ok(Baseline { entries })
    }

    /// The baseline as the JSON file `--write-baseline` writes.
    pub fn to_json(&self) -> String {
        let file = BaselineFile {
            sluice_baseline: BASELINE_FORMAT,
            violations: self
                .entries
                .iter()
                .map(|(key, known)| Entry {
                    rule_id: key.rule_id.clone(),
                    file: key.file.clone(),
                    fingerprint: key.fingerprint.clone(),
                    count: known.count,
                    message: known.message.clone(),
                })
                .collect(),
        };
        let mut out = serde_json::to_string_pretty(&file).unwrap_or_default();
        out.push('\n');
        out
    }

    /// How many violations the baseline holds (duplicates counted).
    pub fn len(&self) -> usize {
        self.entries.values().map(|k| k.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many files the baseline names.
    pub fn files(&self) -> usize {
        let files: std::collections::BTreeSet<&str> =
            self.entries.keys().map(|k| k.file.as_str()).collect();
        files.len()
    }

    /// Splits `violations` (in report order: by file, then line) into new and
    /// known ones. Each entry hides at most `count` violations; the later
    /// copies of an identical violation are new. Only entries whose file
    /// `checked` accepts count as fixed when unmatched (`--app` checks one app).
    pub fn split(
        &self,
        root: &Path,
        violations: Vec<Violation>,
        checked: impl Fn(&str) -> bool,
    ) -> Split {
        let mut texts = SourceCache::new(root);
        let mut used: HashMap<Key, usize> = HashMap::new();
        let mut split = Split::default();
        for violation in violations {
            let key = texts.key(&violation);
            let allowed = self.entries.get(&key).map_or(0, |k| k.count);
            let seen = used.entry(key).or_insert(0);
            if *seen < allowed {
                *seen += 1;
                split.known.push(violation);
            } else {
                split.new.push(violation);
            }
        }
        split.fixed = self
            .entries
            .iter()
            .filter(|(key, _)| checked(&key.file))
            .map(|(key, known)| known.count - used.get(key).copied().unwrap_or(0))
            .sum();
        split
    }
}

/// Source files read once each while fingerprinting.
struct SourceCache<'a> {
    root: &'a Path,
    files: HashMap<String, Option<Vec<String>>>,
}

impl<'a> SourceCache<'a> {
    fn new(root: &'a Path) -> Self {
        SourceCache {
            root,
            files: HashMap::new(),
        }
    }

    fn key(&mut self, violation: &Violation) -> Key {
        Key {
            rule_id: violation.rule_id.clone(),
            file: violation.file.clone(),
            fingerprint: self.fingerprint(violation),
        }
    }

    /// SHA-256 of the violation's source lines (trimmed), or of its message
    /// when it is about the whole file, has no line, or the lines cannot be read.
    fn fingerprint(&mut self, violation: &Violation) -> String {
        let text = violation
            .line
            .filter(|_| !violation.whole_file)
            .and_then(|first| {
                let last = violation.end_line.unwrap_or(first).max(first);
                let lines = self.lines(&violation.file)?;
                let range = lines.get(first as usize - 1..last as usize)?;
                Some(format!("lines\n{}", range.join("\n")))
            })
            .unwrap_or_else(|| format!("message\n{}", violation.message));
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex[..FINGERPRINT_LEN].to_string()
    }

    fn lines(&mut self, file: &str) -> Option<&Vec<String>> {
        let root = self.root;
        self.files
            .entry(file.to_string())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(root.join(file)).ok()?;
                Some(text.lines().map(|l| l.trim().to_string()).collect())
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use crate::rules::RuleKind;

    fn violation(file: &str, line: Option<u32>, message: &str) -> Violation {
        Violation {
            rule_id: "select-only-sql".into(),
            rule: "SELECT only".into(),
            kind: RuleKind::Sql,
            severity: Severity::Error,
            app: "a".into(),
            file: file.into(),
            line,
            end_line: line,
            message: message.into(),
            whole_file: false,
        }
    }

    #[test]
    fn moved_lines_match_and_a_second_copy_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let file = "applications/a/dashboard.py";
        std::fs::create_dir_all(dir.path().join("applications/a")).unwrap();
        std::fs::write(dir.path().join(file), "x = 1\nq('DELETE FROM t')\n").unwrap();
        let before = [violation(file, Some(2), "DELETE")];
        let baseline = Baseline::from_violations(dir.path(), &before);
        assert_eq!(baseline.len(), 1);

        // An unrelated line above, and the same offending line once more below.
        std::fs::write(
            dir.path().join(file),
            "import os\nx = 1\n   q('DELETE FROM t')\nq('DELETE FROM t')\n",
        )
        .unwrap();
        let after = vec![
            violation(file, Some(3), "DELETE"),
            violation(file, Some(4), "DELETE"),
        ];
        let split = baseline.split(dir.path(), after, |_| true);
        assert_eq!(split.known.len(), 1);
        assert_eq!(split.known[0].line, Some(3));
        assert_eq!(split.new.len(), 1);
        assert_eq!(split.new[0].line, Some(4));
        assert_eq!(split.fixed, 0);
    }

    #[test]
    fn a_finding_about_the_whole_file_survives_an_edit_of_line_1() {
        let dir = tempfile::tempdir().unwrap();
        let file = "applications/a/dashboard.py";
        std::fs::create_dir_all(dir.path().join("applications/a")).unwrap();
        std::fs::write(dir.path().join(file), "import streamlit as st\n").unwrap();
        let mut no_main = violation(file, Some(1), "page file does not define function `main()`");
        no_main.whole_file = true;
        let baseline = Baseline::from_violations(dir.path(), std::slice::from_ref(&no_main));
        std::fs::write(dir.path().join(file), "import os\nimport streamlit as st\n").unwrap();
        let split = baseline.split(dir.path(), vec![no_main], |_| true);
        assert_eq!((split.known.len(), split.new.len()), (1, 0));
    }

    #[test]
    fn round_trips_through_json_and_counts_fixed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let missing = violation("applications/a", None, "no README.md");
        let baseline = Baseline::from_violations(dir.path(), &[missing.clone(), missing]);
        let text = baseline.to_json();
        assert!(text.contains("\"count\": 2"), "{text}");
        let again = Baseline::parse(&text, Path::new("b.json")).unwrap();
        assert_eq!(again, baseline);
        let split = again.split(dir.path(), Vec::new(), |_| true);
        assert_eq!(split.fixed, 2);
        // Entries of apps that were not checked are not fixed.
        let split = again.split(dir.path(), Vec::new(), |f| f.starts_with("applications/b/"));
        assert_eq!(split.fixed, 0);
    }

    #[test]
    fn bad_files_name_their_line() {
        let err = Baseline::parse(
            "{\n  \"sluice_baseline\": 1,\n  \"violation\": []\n}",
            Path::new("b.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("b.json:3:"), "{err}");
        assert!(err.contains("unknown field `violation`"), "{err}");
        let err = Baseline::parse("{\"sluice_baseline\": 7}", Path::new("b.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "b.json: sluice_baseline 7 is not a format this sluice reads (it writes 1)"
        );
    }
}
