//! Source text helpers shared by the parsers: byte offset → line numbers,
//! and `sluice: ignore[rule-id]` suppression comments.

/// Start offsets of every line, so an offset maps to a 1-based line with a
/// binary search instead of a rescan.
pub struct LineIndex {
    starts: Vec<u32>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i as u32 + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: u32) -> u32 {
        match self.starts.binary_search(&offset) {
            Ok(i) => i as u32 + 1,
            Err(i) => i as u32,
        }
    }

    /// 1-based column (in bytes) of a byte offset.
    pub fn column(&self, offset: u32) -> u32 {
        let line = self.line(offset);
        offset - self.starts[line as usize - 1] + 1
    }
}

/// A parser's message without the ` at line L column C` that serde_norway
/// and serde_json append: Sluice's errors say the location in front
/// instead, compiler style (`file:line:col: message`). One helper for both
/// crates (`sluice-apps` reads `sluice.yml` and `.sluice-app.yml` with it).
pub fn without_location(message: &str) -> String {
    // From the first location on: a YAML scanner error names two
    // (`... at line 3 column 3, while parsing a block collection at line 2 column 1`).
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string()
}

/// A YAML parse error as (1-based line, `invalid YAML: message`), the
/// message [`without_location`].
pub fn yaml_error(e: &serde_norway::Error) -> (u32, String) {
    (
        e.location().map_or(1, |l| l.line() as u32),
        format!("invalid YAML: {}", without_location(&e.to_string())),
    )
}

/// Rule ids silenced per line (`# sluice: ignore[a, b]`, or `-- sluice: ignore[a]` in SQL).
#[derive(Debug, Default, Clone)]
pub struct Suppressions {
    /// (line, rule id), sorted by line.
    entries: Vec<(u32, String)>,
}

const MARKER: &str = "sluice: ignore[";

impl Suppressions {
    /// Parses suppressions from comment texts with their lines.
    pub fn from_comments<'a>(comments: impl Iterator<Item = (u32, &'a str)>) -> Suppressions {
        let mut entries = Vec::new();
        for (line, comment) in comments {
            let mut rest = comment;
            while let Some(at) = rest.find(MARKER) {
                rest = &rest[at + MARKER.len()..];
                let Some(end) = rest.find(']') else { break };
                for id in rest[..end].split(',') {
                    let id = id.trim();
                    if !id.is_empty() {
                        entries.push((line, id.to_string()));
                    }
                }
                rest = &rest[end..];
            }
        }
        entries.sort();
        Suppressions { entries }
    }

    /// Scans a non-Python text (SQL, YAML) line by line for the marker after
    /// a `#` or `--` comment start.
    pub fn scan_lines(text: &str) -> Suppressions {
        if !text.contains(MARKER) {
            return Suppressions::default();
        }
        let comments = text.lines().enumerate().filter_map(|(i, line)| {
            let at = line.find(MARKER)?;
            let before = &line[..at];
            (before.contains('#') || before.contains("--")).then_some((i as u32 + 1, &line[at..]))
        });
        Suppressions::from_comments(comments)
    }

    /// Whether `rule_id` is silenced on any line of `first..=last`.
    pub fn silences(&self, rule_id: &str, first: u32, last: u32) -> bool {
        let start = self.entries.partition_point(|(l, _)| *l < first);
        self.entries[start..]
            .iter()
            .take_while(|(l, _)| *l <= last)
            .any(|(_, id)| id == rule_id)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let idx = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(2), 1);
        assert_eq!(idx.line(3), 2);
        assert_eq!(idx.line(6), 3);
        assert_eq!(idx.line(7), 4);
        assert_eq!(idx.column(8), 2);
    }

    #[test]
    fn suppressions_parse_several_ids() {
        let s = Suppressions::from_comments(
            [(3, "# sluice: ignore[select-only, page-class]")].into_iter(),
        );
        assert!(s.silences("select-only", 3, 3));
        assert!(s.silences("page-class", 1, 5));
        assert!(!s.silences("page-class", 4, 9));
        assert!(!s.silences("other", 3, 3));
    }

    #[test]
    fn scan_lines_needs_a_comment() {
        let s = Suppressions::scan_lines("select 1 -- sluice: ignore[a]\nx: 'sluice: ignore[b]'\n");
        assert!(s.silences("a", 1, 1));
        assert!(!s.silences("b", 2, 2));
    }
}
