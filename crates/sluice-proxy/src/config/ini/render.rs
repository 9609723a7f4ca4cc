//! The converted settings written as TOML text, remembering which INI file
//! and line each TOML line came from.

use toml::{Table, Value};

use super::{Marks, Origin};

/// TOML text being written, with the origin of each line.
#[derive(Default)]
pub(super) struct Rendered {
    pub text: String,
    pub origins: Vec<Option<Origin>>,
}

impl Rendered {
    pub fn line(&mut self, text: String, origin: Option<Origin>) {
        self.text.push_str(&text);
        self.text.push('\n');
        self.origins.push(origin);
    }

    /// `table` (at `path`): a `[header]` if it has values of its own (or
    /// none at all), its values, then its subtables; in the INI file's order,
    /// `[proxy]` first.
    pub fn table(&mut self, table: &Table, path: &[String], marks: &Marks) {
        let mark = |key: &str| {
            let mut full = path.to_vec();
            full.push(key.to_owned());
            marks.get(&full)
        };
        let order = |key: &str| {
            let first = path.is_empty() && key == "proxy";
            (
                !first,
                mark(key).map_or(usize::MAX, |m| m.seq),
                key.to_owned(),
            )
        };
        let mut values: Vec<(&String, &Value)> =
            table.iter().filter(|(_, v)| !v.is_table()).collect();
        let mut tables: Vec<(&String, &Value)> =
            table.iter().filter(|(_, v)| v.is_table()).collect();
        values.sort_by_key(|(key, _)| order(key));
        tables.sort_by_key(|(key, _)| order(key));
        if !path.is_empty() && (!values.is_empty() || tables.is_empty()) {
            if !self.text.is_empty() {
                self.line(String::new(), None);
            }
            let header: Vec<String> = path.iter().map(|key| toml_key(key)).collect();
            let origin = marks.get(path).map(|m| m.origin.clone());
            self.line(format!("[{}]", header.join(".")), origin);
        }
        for (key, value) in values {
            let origin = mark(key).map(|m| m.origin.clone());
            self.line(format!("{} = {value}", toml_key(key)), origin);
        }
        for (key, value) in tables {
            let mut sub = path.to_vec();
            sub.push(key.clone());
            self.table(value.as_table().expect("filtered to tables"), &sub, marks);
        }
    }
}

/// A TOML key: bare when it can be, else quoted.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}
