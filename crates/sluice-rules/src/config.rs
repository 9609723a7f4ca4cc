//! The rules file model (`compliance/rules.yml`).
//!
//! The YAML shape is the one data teams already write: a list per
//! rule kind, each entry with `name`, `description`, `severity`, `required`
//! and kind-specific keys. Only optional keys are added (`id`, `paths`,
//! `exclude`). Parsing uses `serde_norway` (the maintained `serde_yaml` fork)
//! with `deny_unknown_fields`, so an unknown key, a wrong type or an unknown
//! severity is rejected with the file, line and column:
//! `compliance/rules.yml:12:5: class_rules[0]: unknown field ...`.
//!
//! [`RulesFile::compile`] turns the model into a [`RuleSet`]: ids resolved
//! and checked for duplicates, globs compiled once.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::rules::{Rule, RuleError, RuleSet};
use crate::source::without_location;

/// How bad a violation is. Only `error` makes `sluice check` exit 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rules file that cannot be used: read failure, YAML error with its
/// position, or an invalid value (bad glob, duplicate id).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The io error is part of the message, not a `#[source]`: the binary
    // prints each cause after the message, which would say it twice.
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    /// `path:LINE:COL: message` — the YAML parser's own position.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// An entry that parsed but cannot be compiled (`class_rules[0]: ...`).
    #[error("{path}: {list}[{index}]: {error}")]
    Rule {
        path: String,
        list: &'static str,
        index: usize,
        error: RuleError,
    },
    /// A value that parsed but makes no sense across rules (a duplicate id).
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn yes() -> bool {
    true
}

fn default_severity() -> Severity {
    Severity::Error
}

/// Declares a rule entry struct with the keys every kind shares followed by
/// its own keys. (`#[serde(flatten)]` would break `deny_unknown_fields`.)
macro_rules! rule_entry {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Human name shown in reports.
            pub name: String,
            /// What the rule is for (shown in `RULES CHECKED`).
            #[serde(default)]
            pub description: String,
            /// `error` (default), `warning` or `info`.
            #[serde(default = "default_severity")]
            pub severity: Severity,
            /// Whether the thing the rule describes must exist (see each kind).
            #[serde(default = "yes")]
            pub required: bool,
            /// Stable id used in suppressions and reports; derived from `name` when absent.
            #[serde(default)]
            pub id: Option<String>,
            /// Globs (workspace-relative) limiting the files the rule looks at.
            #[serde(default)]
            pub paths: Vec<String>,
            /// Globs (workspace-relative) of files the rule skips.
            #[serde(default)]
            pub exclude: Vec<String>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
    };
}

rule_entry! {
    /// `class_rules[]`: classes matching `class_name` must inherit the
    /// required bases and define the required methods.
    ClassRuleEntry {
        #[serde(default = "star")]
        class_name: String,
        #[serde(default)]
        required_base_classes: Vec<String>,
        #[serde(default)]
        required_methods: Vec<String>,
    }
}

rule_entry! {
    /// `function_rules[]`: each page file defines `function_name` at module level.
    FunctionRuleEntry {
        function_name: String,
    }
}

rule_entry! {
    /// `import_rules[]`: each page file imports `module_name` (and `required_items` from it).
    ImportRuleEntry {
        module_name: String,
        #[serde(default)]
        required_items: Vec<String>,
    }
}

rule_entry! {
    /// `file_rules[]`: each application has a file matching `file_pattern`.
    FileRuleEntry {
        file_pattern: String,
        #[serde(default)]
        base_path: String,
    }
}

rule_entry! {
    /// `sql_rules[]`: SQL in `.sql` files and in Python string literals.
    SqlRuleEntry {
        #[serde(default = "sql_extensions")]
        file_extensions: Vec<String>,
        #[serde(default)]
        select_only: bool,
        #[serde(default)]
        forbidden_statements: Vec<String>,
        #[serde(default)]
        required_statements: Vec<String>,
        #[serde(default)]
        case_sensitive: bool,
    }
}

rule_entry! {
    /// `share_rules[]`: `share.yml` is valid and shares the app with allowed roles.
    ShareRuleEntry {
        #[serde(default = "share_pattern")]
        file_pattern: String,
        #[serde(default)]
        valid_roles: Vec<String>,
        #[serde(default)]
        safe_data_roles: Vec<String>,
        #[serde(default = "share_keys")]
        required_keys: Vec<String>,
        #[serde(default = "one")]
        min_roles: usize,
        #[serde(default)]
        max_roles: Option<usize>,
    }
}

rule_entry! {
    /// `runtime_rules[]`: the app's packages file is the one its runtime
    /// (from its `snowflake.yml`) reads, and suits that runtime.
    RuntimeRuleEntry {
        #[serde(default = "container_min_streamlit")]
        container_min_streamlit: String,
    }
}

/// The oldest Streamlit Snowflake's container runtime runs.
fn container_min_streamlit() -> String {
    "1.50".to_string()
}

fn star() -> String {
    "*".to_string()
}
fn sql_extensions() -> Vec<String> {
    vec![".sql".to_string(), ".py".to_string()]
}
fn share_pattern() -> String {
    "**/share.yml".to_string()
}
fn share_keys() -> Vec<String> {
    vec!["share".to_string()]
}
fn one() -> usize {
    1
}

/// The whole rules file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub class_rules: Vec<ClassRuleEntry>,
    #[serde(default)]
    pub function_rules: Vec<FunctionRuleEntry>,
    #[serde(default)]
    pub import_rules: Vec<ImportRuleEntry>,
    #[serde(default)]
    pub file_rules: Vec<FileRuleEntry>,
    #[serde(default)]
    pub sql_rules: Vec<SqlRuleEntry>,
    #[serde(default)]
    pub share_rules: Vec<ShareRuleEntry>,
    #[serde(default)]
    pub runtime_rules: Vec<RuntimeRuleEntry>,
}

impl RulesFile {
    /// Parses rules YAML; `display_path` is used in error messages.
    pub fn parse(text: &str, display_path: &str) -> Result<RulesFile, ConfigError> {
        // An empty (or comment-only) file is an empty rule set, not an error.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(RulesFile::default());
        }
        serde_norway::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line(), loc.column()))
                .unwrap_or((1, 1));
            ConfigError::Syntax {
                path: display_path.to_string(),
                line,
                column,
                message: without_location(&err.to_string()),
            }
        })
    }

    /// Turns the entries into checkable rules (ids, compiled globs).
    pub fn compile(self, display_path: &str) -> Result<RuleSet, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: display_path.to_string(),
            message,
        };
        let mut rules: Vec<Rule> = Vec::new();
        let path = display_path;
        compile_list(
            path,
            "class_rules",
            self.class_rules,
            Rule::class,
            &mut rules,
        )?;
        compile_list(
            path,
            "function_rules",
            self.function_rules,
            Rule::function,
            &mut rules,
        )?;
        compile_list(
            path,
            "import_rules",
            self.import_rules,
            Rule::import,
            &mut rules,
        )?;
        compile_list(path, "file_rules", self.file_rules, Rule::file, &mut rules)?;
        compile_list(path, "sql_rules", self.sql_rules, Rule::sql, &mut rules)?;
        compile_list(
            path,
            "share_rules",
            self.share_rules,
            Rule::share,
            &mut rules,
        )?;
        compile_list(
            path,
            "runtime_rules",
            self.runtime_rules,
            Rule::runtime,
            &mut rules,
        )?;
        let mut seen = std::collections::HashSet::new();
        for rule in &rules {
            if !seen.insert(rule.meta.id.clone()) {
                return Err(invalid(format!(
                    "duplicate rule id `{}` (give one of the rules an explicit `id`)",
                    rule.meta.id
                )));
            }
        }
        Ok(RuleSet { rules })
    }
}

/// Compiles one list of the rules file into `rules`; an entry that does
/// not compile is named by its list and index.
fn compile_list<E>(
    path: &str,
    list: &'static str,
    entries: Vec<E>,
    compile: fn(E) -> Result<Rule, RuleError>,
    rules: &mut Vec<Rule>,
) -> Result<(), ConfigError> {
    for (index, entry) in entries.into_iter().enumerate() {
        rules.push(compile(entry).map_err(|error| ConfigError::Rule {
            path: path.to_string(),
            list,
            index,
            error,
        })?);
    }
    Ok(())
}

/// Reads, parses and compiles a rules file. Errors name `display_path`.
pub fn load_rules(path: &Path, display_path: &str) -> Result<RuleSet, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: display_path.to_string(),
        error,
    })?;
    parse_rules(&text, display_path)
}

/// Parses and compiles rules YAML held in memory.
pub fn parse_rules(text: &str, display_path: &str) -> Result<RuleSet, ConfigError> {
    RulesFile::parse(text, display_path)?.compile(display_path)
}

/// A stable id from a rule name: lower-case words joined by `-`
/// ("Page classes inherit BasePage" → `page-classes-inherit-basepage`).
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_reported_with_line_and_column() {
        let text = "class_rules:\n  - name: x\n    severity: error\n    colour: red\n";
        let err = RulesFile::parse(text, "rules.yml").unwrap_err().to_string();
        assert!(err.starts_with("rules.yml:4:5: "), "{err}");
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn unknown_severity_is_an_error() {
        let text =
            "file_rules:\n  - name: readme\n    severity: fatal\n    file_pattern: README.md\n";
        let err = RulesFile::parse(text, "rules.yml").unwrap_err().to_string();
        assert!(err.starts_with("rules.yml:3:"), "{err}");
        assert!(err.contains("fatal"), "{err}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let text = "sql_rules:\n  - name: s\n    select_only: [yes]\n";
        let err = RulesFile::parse(text, "rules.yml").unwrap_err().to_string();
        assert!(err.starts_with("rules.yml:3:"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let text = "file_rules:\n  - {name: Readme, file_pattern: README.md}\n  - {name: readme, file_pattern: x.md}\n";
        let err = parse_rules(text, "rules.yml").unwrap_err().to_string();
        assert!(err.contains("duplicate rule id `readme`"), "{err}");
    }

    #[test]
    fn entries_that_cannot_compile_are_named() {
        let text = "file_rules:\n  - {name: a, file_pattern: README.md}\n  - {name: b, file_pattern: \"[\"}\n";
        let err = parse_rules(text, "rules.yml").unwrap_err().to_string();
        assert!(
            err.starts_with("rules.yml: file_rules[1]: invalid glob `[`: "),
            "{err}"
        );
        let text = "share_rules:\n  - {name: s, min_roles: 3, max_roles: 2}\n";
        let err = parse_rules(text, "rules.yml").unwrap_err().to_string();
        assert_eq!(
            err,
            "rules.yml: share_rules[0]: max_roles (2) is less than min_roles (3)"
        );
        let text = "import_rules:\n  - {name: \"!!\", module_name: streamlit}\n";
        let err = parse_rules(text, "rules.yml").unwrap_err().to_string();
        assert_eq!(
            err,
            "rules.yml: import_rules[0]: `name` must contain letters or digits (or set `id`)"
        );
    }

    #[test]
    fn empty_file_is_an_empty_rule_set() {
        assert!(parse_rules("# nothing yet\n", "rules.yml")
            .unwrap()
            .rules
            .is_empty());
    }

    #[test]
    fn slug_derives_ids() {
        assert_eq!(
            slug("Page classes inherit BasePage!"),
            "page-classes-inherit-basepage"
        );
        assert_eq!(slug("  SELECT-only SQL "), "select-only-sql");
    }
}
