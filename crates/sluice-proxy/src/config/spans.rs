//! Where things are in a configuration file's text: its reading, and the
//! spans of a section or a setting line, so that every error can say
//! `file:line`.

use std::path::Path;

use super::ConfigError;

/// The text of a configuration file.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })
}

/// The span of the first line of `text` that `is_it` picks, for a message about it.
fn line_span(text: &str, is_it: impl Fn(&str) -> bool) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if is_it(line.trim()) {
            return Some(offset..offset + line.len());
        }
        offset += line.len();
    }
    None
}

/// Where the `[name]` table starts.
pub(super) fn section_span(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    line_span(text, |line| {
        line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) == Some(name)
    })
}

/// Where `name = ...` is written.
pub(super) fn setting_span(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    line_span(text, |line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
