//! Import rules (`import_rules`).
//!
//! ## What it does
//! Each page file must import `module_name` — `import m`, `import m as x`
//! or `from m import ...` all count — and, for each of `required_items`,
//! must contain `from module_name import item`. `import module_name` and
//! then `module_name.item` counts as importing the module only, not the
//! item. With `required: false`, a page that does not import the module at
//! all is fine, but one that does must import the required items.
//!
//! ## Why
//! Pages built on the framework import Streamlit and the base page; an app
//! that does not has been written outside the templates.
//!
//! ## Example
//! ```yaml
//! import_rules:
//!   - name: Pages import BasePage
//!     severity: error
//!     module_name: components.base_page
//!     required_items: [BasePage]
//! ```
//! `import components.base_page` alone fails: "does not import `BasePage`
//! from `components.base_page`".

use super::{AppContext, Findings, RuleError, RuleMeta};
use crate::config::ImportRuleEntry;

#[derive(Debug, Clone)]
pub struct ImportRule {
    module: String,
    items: Vec<String>,
}

impl ImportRule {
    pub fn new(e: ImportRuleEntry) -> Result<ImportRule, RuleError> {
        if e.module_name.trim().is_empty() {
            return Err(RuleError::EmptyModuleName);
        }
        Ok(ImportRule {
            module: e.module_name.trim().to_string(),
            items: e.required_items,
        })
    }

    pub fn summary(&self) -> String {
        if self.items.is_empty() {
            format!("page files import `{}`", self.module)
        } else {
            format!(
                "page files import {} from `{}`",
                self.items.join(", "),
                self.module
            )
        }
    }

    pub fn check(&self, meta: &RuleMeta, ctx: &AppContext, out: &mut Findings) {
        for file in ctx.pages(meta) {
            let Some(module) = file.python() else {
                continue;
            };
            let imports: Vec<_> = module
                .imports
                .iter()
                .filter(|i| i.module == self.module)
                .collect();
            if imports.is_empty() {
                if meta.required {
                    out.push_file(
                        meta,
                        ctx.app,
                        &file.path,
                        format!("page file does not import `{}`", self.module),
                    );
                }
                continue;
            }
            let missing: Vec<&str> = self
                .items
                .iter()
                .filter(|item| !imports.iter().any(|i| i.items.iter().any(|x| x == *item)))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                let line = imports[0].line;
                out.push(
                    meta,
                    ctx.app,
                    &file.path,
                    Some((line, line)),
                    format!(
                        "page file does not import {} from `{}`",
                        super::class::backticked(&missing),
                        self.module
                    ),
                );
            }
        }
    }
}
