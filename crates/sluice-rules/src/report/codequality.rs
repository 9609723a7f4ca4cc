//! `--format codequality`: GitLab Code Quality JSON (a list of issues with
//! `description`, `check_name`, `fingerprint`, `severity`, `location`).
//! The generated `.gitlab-ci.yml` uploads it as `artifacts:reports:codequality`.

use serde_json::json;

use super::{RenderOptions, Report};
use crate::config::Severity;

/// FNV-1a: a stable fingerprint across runs and Rust versions (the std
/// hasher does not promise that).
fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

pub fn render(report: &Report, _options: RenderOptions) -> String {
    let issues: Vec<_> = report
        .violations
        .iter()
        .map(|v| {
            let line = v.line.unwrap_or(1);
            json!({
                "description": format!("{}: {}", v.rule, v.message),
                "check_name": v.rule_id,
                "fingerprint": fingerprint(&[&v.rule_id, &v.file, &line.to_string(), &v.message]),
                "severity": match v.severity {
                    Severity::Error => "major",
                    Severity::Warning => "minor",
                    Severity::Info => "info",
                },
                "location": { "path": v.file, "lines": { "begin": line } },
            })
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&issues).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_stable_and_distinct() {
        assert_eq!(
            super::fingerprint(&["a", "b"]),
            super::fingerprint(&["a", "b"])
        );
        assert_ne!(
            super::fingerprint(&["ab", ""]),
            super::fingerprint(&["a", "b"])
        );
    }
}
