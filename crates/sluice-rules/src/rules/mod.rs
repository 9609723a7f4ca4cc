//! The rule kinds: one module each (class, function, import, file, sql,
//! share, runtime), and the registry table below.
//!
//! Rules never walk the workspace themselves (ruff's model): the engine
//! parses every file once, then calls each rule's `check` with one
//! application's analysed files ([`AppContext`]); the rule pushes
//! [`Violation`]s into [`Findings`].

pub mod class;
pub mod file;
pub mod function;
pub mod import;
pub mod runtime;
pub mod share;
pub mod sql;

use std::collections::HashMap;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::config::{slug, Severity};
use crate::python::{ClassDef, PyModule, SyntaxError};
use crate::source::Suppressions;
use crate::workspace::App;

/// The kinds of rules, as named in reports and JSON (`kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Class,
    Function,
    Import,
    File,
    Sql,
    Share,
    Runtime,
    /// Built in: a Python file that does not parse.
    Syntax,
}

/// One line per rule kind: its YAML key and what it checks.
pub struct KindInfo {
    pub kind: RuleKind,
    pub yaml_key: &'static str,
    pub title: &'static str,
}

/// The registry: every rule kind the rules file accepts.
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: RuleKind::Class,
        yaml_key: "class_rules",
        title: "Class rules",
    },
    KindInfo {
        kind: RuleKind::Function,
        yaml_key: "function_rules",
        title: "Function rules",
    },
    KindInfo {
        kind: RuleKind::Import,
        yaml_key: "import_rules",
        title: "Import rules",
    },
    KindInfo {
        kind: RuleKind::File,
        yaml_key: "file_rules",
        title: "File rules",
    },
    KindInfo {
        kind: RuleKind::Sql,
        yaml_key: "sql_rules",
        title: "SQL rules",
    },
    KindInfo {
        kind: RuleKind::Share,
        yaml_key: "share_rules",
        title: "Share rules",
    },
    KindInfo {
        kind: RuleKind::Runtime,
        yaml_key: "runtime_rules",
        title: "Runtime rules",
    },
];

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Class => "class",
            RuleKind::Function => "function",
            RuleKind::Import => "import",
            RuleKind::File => "file",
            RuleKind::Sql => "sql",
            RuleKind::Share => "share",
            RuleKind::Runtime => "runtime",
            RuleKind::Syntax => "syntax",
        }
    }
}

/// The id of the built-in rule reporting Python files that do not parse.
pub const SYNTAX_RULE_ID: &str = "python-syntax";

/// What every rule has, whatever its kind.
#[derive(Debug, Clone)]
pub struct RuleMeta {
    pub id: String,
    pub name: String,
    pub description: String,
    pub severity: Severity,
    pub required: bool,
    pub kind: RuleKind,
    paths: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl RuleMeta {
    /// Whether the rule looks at `file` (workspace-relative) given `paths` / `exclude`.
    pub fn applies_to(&self, file: &str) -> bool {
        self.paths.as_ref().is_none_or(|p| p.is_match(file))
            && !self.exclude.as_ref().is_some_and(|e| e.is_match(file))
    }
}

/// A compiled rule: shared metadata and the kind's own check.
#[derive(Debug, Clone)]
pub struct Rule {
    pub meta: RuleMeta,
    pub check: RuleCheck,
}

#[derive(Debug, Clone)]
pub enum RuleCheck {
    Class(class::ClassRule),
    Function(function::FunctionRule),
    Import(import::ImportRule),
    File(file::FileRule),
    Sql(sql::SqlRule),
    Share(share::ShareRule),
    Runtime(runtime::RuntimeRule),
}

/// All rules of a rules file, in file order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

/// Why a rule entry cannot be compiled. The rules file names the entry
/// (`class_rules[0]: ...`, see [`crate::ConfigError`]).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid glob `{pattern}`: {error}")]
    Glob {
        pattern: String,
        error: globset::Error,
    },
    #[error("invalid globs: {0}")]
    GlobSet(globset::Error),
    #[error("`id` must not be empty")]
    EmptyId,
    #[error("`name` must contain letters or digits (or set `id`)")]
    UnnamedRule,
    #[error("`module_name` must not be empty")]
    EmptyModuleName,
    #[error("max_roles ({max}) is less than min_roles ({min})")]
    RoleRange { min: usize, max: usize },
    #[error("`{key}`: `{value}` is not a version")]
    InvalidVersion { key: &'static str, value: String },
}

/// Compiles a list of globs; `None` when empty.
pub(crate) fn glob_set(globs: &[String]) -> Result<Option<GlobSet>, RuleError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        builder.add(compile_glob(g)?);
    }
    builder.build().map(Some).map_err(RuleError::GlobSet)
}

pub(crate) fn compile_glob(pattern: &str) -> Result<Glob, RuleError> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|error| RuleError::Glob {
            pattern: pattern.to_string(),
            error,
        })
}

/// Builds the metadata from a rule entry's shared keys.
macro_rules! meta_of {
    ($entry:expr, $kind:expr) => {{
        let e = &$entry;
        let id = match &e.id {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            Some(_) => return Err(RuleError::EmptyId),
            None => slug(&e.name),
        };
        if id.is_empty() {
            return Err(RuleError::UnnamedRule);
        }
        RuleMeta {
            id,
            name: e.name.clone(),
            description: e.description.clone(),
            severity: e.severity,
            required: e.required,
            kind: $kind,
            paths: glob_set(&e.paths)?,
            exclude: glob_set(&e.exclude)?,
        }
    }};
}

/// A finding. `file` is workspace-relative; `line` is absent for findings
/// about something missing (an app without a README).
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub rule_id: String,
    pub rule: String,
    pub kind: RuleKind,
    pub severity: Severity,
    pub app: String,
    pub file: String,
    pub line: Option<u32>,
    #[serde(skip)]
    pub end_line: Option<u32>,
    pub message: String,
    /// The finding is about the file as a whole (a page without `main()`),
    /// reported at line 1: no line is its offending text (see
    /// [`crate::baseline`]).
    #[serde(skip)]
    pub whole_file: bool,
}

/// A file after the parse phase.
#[derive(Debug)]
pub enum Analysis {
    Python(PyModule),
    PythonError(SyntaxError),
    Sql {
        statements: Vec<crate::sql::Statement>,
        suppressions: Suppressions,
    },
    /// Not parsed (YAML, Markdown, ...): rules that need it read it themselves.
    Other,
}

#[derive(Debug)]
pub struct AnalyzedFile {
    /// Workspace-relative path.
    pub path: String,
    pub analysis: Analysis,
}

impl AnalyzedFile {
    pub fn python(&self) -> Option<&PyModule> {
        match &self.analysis {
            Analysis::Python(m) => Some(m),
            _ => None,
        }
    }

    pub fn suppressions(&self) -> Option<&Suppressions> {
        match &self.analysis {
            Analysis::Python(m) => Some(&m.suppressions),
            Analysis::Sql { suppressions, .. } => Some(suppressions),
            _ => None,
        }
    }
}

/// Every class defined in the workspace (apps and components), by name,
/// for resolving inheritance across files.
pub struct ClassIndex<'a> {
    by_name: HashMap<&'a str, Vec<IndexedClass<'a>>>,
}

#[derive(Clone, Copy)]
pub struct IndexedClass<'a> {
    /// Workspace-relative file defining it.
    pub file: &'a str,
    pub class: &'a ClassDef,
}

impl<'a> ClassIndex<'a> {
    pub fn build(files: impl Iterator<Item = &'a AnalyzedFile>) -> ClassIndex<'a> {
        let mut by_name: HashMap<&str, Vec<IndexedClass>> = HashMap::new();
        for f in files {
            if let Some(m) = f.python() {
                for class in &m.classes {
                    by_name
                        .entry(class.name.as_str())
                        .or_default()
                        .push(IndexedClass {
                            file: f.path.as_str(),
                            class,
                        });
                }
            }
        }
        ClassIndex { by_name }
    }

    /// The definition a base named `name` (last segment) most likely refers
    /// to from `from_file`: same file, then same folder tree, then any.
    pub fn lookup(&self, name: &str, from_file: &str) -> Option<IndexedClass<'a>> {
        let candidates = self.by_name.get(name)?;
        if let Some(c) = candidates.iter().find(|c| c.file == from_file) {
            return Some(*c);
        }
        let dir = from_file.rsplit_once('/').map_or("", |(d, _)| d);
        // `applications/<app>/`: the trailing slash keeps `app_1` from matching `app_10`.
        let app_dir: String = dir.split('/').take(2).collect::<Vec<_>>().join("/") + "/";
        candidates
            .iter()
            .find(|c| c.file.starts_with(&app_dir))
            .or_else(|| candidates.first())
            .copied()
    }
}

/// One application's analysed files and the workspace around it.
pub struct AppContext<'a> {
    pub app: &'a App,
    pub root: &'a Path,
    pub files: Vec<&'a AnalyzedFile>,
    pub classes: &'a ClassIndex<'a>,
}

impl<'a> AppContext<'a> {
    /// Page files (dashboard.py, pages/*.py) the rule applies to.
    pub fn pages<'s>(&'s self, meta: &'s RuleMeta) -> impl Iterator<Item = &'a AnalyzedFile> + 's {
        self.files
            .iter()
            .copied()
            .filter(move |f| self.app.is_page(&f.path) && meta.applies_to(&f.path))
    }
}

/// A required file of an app and whether it was found (for the text report).
#[derive(Debug, Clone, Serialize)]
pub struct RequiredFile {
    pub rule: String,
    pub pattern: String,
    /// The file that satisfied the rule.
    pub found: Option<String>,
}

/// What checking one app produced.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<Violation>,
    /// Roles the app is shared with, per environment (`*` = every environment).
    pub share_roles: Vec<(String, Vec<String>)>,
    pub required_files: Vec<RequiredFile>,
}

impl Findings {
    pub fn push(
        &mut self,
        meta: &RuleMeta,
        app: &App,
        file: &str,
        lines: Option<(u32, u32)>,
        message: String,
    ) {
        self.violations.push(Violation {
            rule_id: meta.id.clone(),
            rule: meta.name.clone(),
            kind: meta.kind,
            severity: meta.severity,
            app: app.name.clone(),
            file: file.to_string(),
            line: lines.map(|l| l.0),
            end_line: lines.map(|l| l.1),
            message,
            whole_file: false,
        });
    }

    /// A finding about `file` as a whole, shown at its line 1.
    pub fn push_file(&mut self, meta: &RuleMeta, app: &App, file: &str, message: String) {
        self.push(meta, app, file, Some((1, 1)), message);
        if let Some(last) = self.violations.last_mut() {
            last.whole_file = true;
        }
    }
}

impl Rule {
    pub fn class(e: crate::config::ClassRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::Class);
        Ok(Rule {
            meta,
            check: RuleCheck::Class(class::ClassRule::new(e)?),
        })
    }
    pub fn function(e: crate::config::FunctionRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::Function);
        Ok(Rule {
            meta,
            check: RuleCheck::Function(function::FunctionRule::new(e)?),
        })
    }
    pub fn import(e: crate::config::ImportRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::Import);
        Ok(Rule {
            meta,
            check: RuleCheck::Import(import::ImportRule::new(e)?),
        })
    }
    pub fn file(e: crate::config::FileRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::File);
        Ok(Rule {
            meta,
            check: RuleCheck::File(file::FileRule::new(e)?),
        })
    }
    pub fn sql(e: crate::config::SqlRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::Sql);
        Ok(Rule {
            meta,
            check: RuleCheck::Sql(sql::SqlRule::new(e)?),
        })
    }
    pub fn share(e: crate::config::ShareRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::Share);
        Ok(Rule {
            meta,
            check: RuleCheck::Share(share::ShareRule::new(e)?),
        })
    }
    pub fn runtime(e: crate::config::RuntimeRuleEntry) -> Result<Rule, RuleError> {
        let meta = meta_of!(e, RuleKind::Runtime);
        Ok(Rule {
            meta,
            check: RuleCheck::Runtime(runtime::RuntimeRule::new(e)?),
        })
    }

    /// Runs the rule over one app.
    pub fn check(&self, ctx: &AppContext, out: &mut Findings) {
        match &self.check {
            RuleCheck::Class(r) => r.check(&self.meta, ctx, out),
            RuleCheck::Function(r) => r.check(&self.meta, ctx, out),
            RuleCheck::Import(r) => r.check(&self.meta, ctx, out),
            RuleCheck::File(r) => r.check(&self.meta, ctx, out),
            RuleCheck::Sql(r) => r.check(&self.meta, ctx, out),
            RuleCheck::Share(r) => r.check(&self.meta, ctx, out),
            RuleCheck::Runtime(r) => r.check(&self.meta, ctx, out),
        }
    }

    /// One-line summary of what the rule demands (RULES CHECKED section).
    pub fn summary(&self) -> String {
        match &self.check {
            RuleCheck::Class(r) => r.summary(),
            RuleCheck::Function(r) => r.summary(),
            RuleCheck::Import(r) => r.summary(),
            RuleCheck::File(r) => r.summary(),
            RuleCheck::Sql(r) => r.summary(),
            RuleCheck::Share(r) => r.summary(),
            RuleCheck::Runtime(r) => r.summary(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, source: &str) -> AnalyzedFile {
        AnalyzedFile {
            path: path.to_string(),
            analysis: Analysis::Python(crate::python::parse(source).unwrap()),
        }
    }

    #[test]
    fn lookup_prefers_same_file_then_same_app() {
        let files = [
            file(
                "applications/app_10/common.py",
                "class Base:\n    def run(self): ...\n",
            ),
            file(
                "applications/app_1/common.py",
                "class Base:\n    def setup_ui(self): ...\n",
            ),
            file("applications/app_1/dashboard.py", "class Other: ...\n"),
        ];
        let index = ClassIndex::build(files.iter());
        let found = index
            .lookup("Base", "applications/app_1/dashboard.py")
            .unwrap();
        assert_eq!(found.file, "applications/app_1/common.py");
        let found = index.lookup("Base", "applications/app_10/x.py").unwrap();
        assert_eq!(found.file, "applications/app_10/common.py");
        assert!(index
            .lookup("Missing", "applications/app_1/dashboard.py")
            .is_none());
    }

    #[test]
    fn paths_and_exclude_limit_a_rule() {
        let text = "function_rules:\n  - name: m\n    function_name: main\n    paths: [\"applications/a/**\"]\n    exclude: [\"**/legacy.py\"]\n";
        let rules = crate::config::parse_rules(text, "rules.yml").unwrap();
        let meta = &rules.rules[0].meta;
        assert!(meta.applies_to("applications/a/pages/x.py"));
        assert!(!meta.applies_to("applications/a/pages/legacy.py"));
        assert!(!meta.applies_to("applications/b/dashboard.py"));
    }
}
