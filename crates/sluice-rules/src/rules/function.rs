//! Function rules (`function_rules`).
//!
//! ## What it does
//! Each page file (`dashboard.py`, `pages/*.py`) must define a module-level
//! function matching `function_name` (a glob; usually just `main`). A
//! method of the same name inside a class does not count. With
//! `required: false` the rule checks nothing (it only documents intent).
//!
//! ## Why
//! `main()` is the entry point `streamlit run` and the deployed app call;
//! a page without it renders nothing.
//!
//! ## Example
//! ```yaml
//! function_rules:
//!   - name: Pages define main
//!     severity: error
//!     function_name: main
//! ```
//! A page whose only entry point is `if __name__ == "__main__": Page().run()`
//! fails: "page file does not define function `main()`".

use globset::GlobMatcher;

use super::{compile_glob, AppContext, Findings, RuleError, RuleMeta};
use crate::config::FunctionRuleEntry;

#[derive(Debug, Clone)]
pub struct FunctionRule {
    function_name: String,
    matcher: GlobMatcher,
}

impl FunctionRule {
    pub fn new(e: FunctionRuleEntry) -> Result<FunctionRule, RuleError> {
        Ok(FunctionRule {
            matcher: compile_glob(&e.function_name)?.compile_matcher(),
            function_name: e.function_name,
        })
    }

    pub fn summary(&self) -> String {
        format!("page files define `{}()`", self.function_name)
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        if !meta.required {
            return;
        }
        for file in ctx.pages(meta) {
            let Some(module) = file.python() else {
                continue;
            };
            if !module
                .functions
                .iter()
                .any(|f| self.matcher.is_match(f.name.as_str()))
            {
                out.push_file(
                    meta,
                    ctx.app,
                    &file.path,
                    format!(
                        "page file does not define function `{}()`",
                        self.function_name
                    ),
                );
            }
        }
    }
}
