//! Class rules (`class_rules`).
//!
//! ## What it does
//! Every class whose name matches `class_name` (a glob, `*Page`) in an
//! application's Python files must inherit each of `required_base_classes`
//! and must define each of `required_methods`. With `required: true`
//! (default) every page file must also define at least one matching class.
//!
//! Inheritance is followed through classes defined anywhere in the
//! workspace (an app's own intermediate classes, `components/`), through
//! qualified names (`base_page.BasePage`) and import aliases
//! (`from components.base_page import BasePage as Base`). A method counts
//! when the class defines it, or an intermediate workspace class between it
//! and the required base does. What the required base itself (or anything
//! above it) defines does not count, or the rule could never fail.
//!
//! ## Why
//! The base page gives every app the same layout, auth and query guard; the
//! methods are the lifecycle the framework calls.
//!
//! ## Example
//! ```yaml
//! class_rules:
//!   - name: Page classes extend BasePage
//!     severity: error
//!     class_name: "*Page"
//!     required_base_classes: [BasePage]
//!     required_methods: [__init__, set_page_layout, setup_ui, run]
//! ```
//! `class SalesPage:` fails (no base); `class SalesPage(BasePage)` with
//! only `run` fails listing the three missing methods.

use std::collections::HashSet;

use globset::GlobMatcher;

use super::{compile_glob, AppContext, ClassIndex, Findings, RuleError, RuleMeta};
use crate::config::ClassRuleEntry;
use crate::python::ClassDef;

#[derive(Debug, Clone)]
pub struct ClassRule {
    class_name: String,
    matcher: GlobMatcher,
    bases: Vec<String>,
    methods: Vec<String>,
}

/// How far inheritance is followed (guards against cycles and odd code).
const MAX_DEPTH: usize = 32;

fn last_segment(dotted: &str) -> &str {
    dotted.rsplit('.').next().unwrap_or(dotted)
}

/// Whether a base written as `written` (dotted, aliases resolved) names `required`.
fn names_base(written: &str, required: &str) -> bool {
    written == required || last_segment(written) == last_segment(required)
}

/// What a class inherits, as far as the workspace shows.
struct Ancestry {
    /// Required bases reached.
    reached: HashSet<usize>,
    /// Methods of the class and of intermediate workspace classes.
    methods: HashSet<String>,
}

impl ClassRule {
    pub fn new(e: ClassRuleEntry) -> Result<ClassRule, RuleError> {
        Ok(ClassRule {
            matcher: compile_glob(&e.class_name)?.compile_matcher(),
            class_name: e.class_name,
            bases: e.required_base_classes,
            methods: e.required_methods,
        })
    }

    pub fn summary(&self) -> String {
        let mut s = format!("classes `{}`", self.class_name);
        if !self.bases.is_empty() {
            s.push_str(&format!(" inherit {}", self.bases.join(", ")));
        }
        if !self.methods.is_empty() {
            s.push_str(&format!(" and define {}", self.methods.join(", ")));
        }
        s
    }

    fn ancestry(&self, class: &ClassDef, file: &str, index: &ClassIndex) -> Ancestry {
        let mut out = Ancestry {
            reached: HashSet::new(),
            methods: class.methods.iter().cloned().collect(),
        };
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut stack: Vec<(String, String, usize)> = class
            .bases
            .iter()
            .map(|b| (b.clone(), file.to_string(), 1))
            .collect();
        while let Some((base, from_file, depth)) = stack.pop() {
            if let Some(i) = self.bases.iter().position(|r| names_base(&base, r)) {
                // A required base: stop here, its methods do not count.
                out.reached.insert(i);
                continue;
            }
            if depth > MAX_DEPTH || !seen.insert((base.clone(), from_file.clone())) {
                continue;
            }
            if let Some(found) = index.lookup(last_segment(&base), &from_file) {
                out.methods.extend(found.class.methods.iter().cloned());
                for b in &found.class.bases {
                    stack.push((b.clone(), found.file.to_string(), depth + 1));
                }
            }
        }
        out
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        for file in ctx.files.iter().copied() {
            if !file.path.ends_with(".py") || !meta.applies_to(&file.path) {
                continue;
            }
            let Some(module) = file.python() else {
                continue;
            };
            let mut matched = false;
            for class in &module.classes {
                if !self.matcher.is_match(class.name.as_str()) {
                    continue;
                }
                matched = true;
                let ancestry = self.ancestry(class, &file.path, ctx.classes);
                let lines = Some((class.line, class.line));
                let missing_bases: Vec<&str> = self
                    .bases
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !ancestry.reached.contains(i))
                    .map(|(_, b)| b.as_str())
                    .collect();
                if !missing_bases.is_empty() {
                    out.push(
                        meta,
                        ctx.app,
                        &file.path,
                        lines,
                        format!(
                            "class `{}` does not inherit from {}",
                            class.name,
                            backticked(&missing_bases)
                        ),
                    );
                }
                let missing: Vec<&str> = self
                    .methods
                    .iter()
                    .filter(|m| !ancestry.methods.contains(m.as_str()))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    out.push(
                        meta,
                        ctx.app,
                        &file.path,
                        lines,
                        format!(
                            "class `{}` does not define required method{} {}",
                            class.name,
                            if missing.len() == 1 { "" } else { "s" },
                            backticked(&missing)
                        ),
                    );
                }
            }
            if meta.required && !matched && ctx.app.is_page(&file.path) {
                out.push_file(
                    meta,
                    ctx.app,
                    &file.path,
                    format!("page file defines no class matching `{}`", self.class_name),
                );
            }
        }
    }
}

pub(crate) fn backticked(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_match_by_last_segment() {
        assert!(names_base("BasePage", "BasePage"));
        assert!(names_base("components.base_page.BasePage", "BasePage"));
        assert!(names_base(
            "base_page.BasePage",
            "components.base_page.BasePage"
        ));
        assert!(!names_base("BasePageMixin", "BasePage"));
    }
}
