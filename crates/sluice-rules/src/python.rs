//! Python extraction: one parse per file into a small summary the rules read.
//!
//! Uses `ruff_python_parser` (pinned to 0.0.10, the newest that builds on
//! Rust 1.95): a real, fast, error-reporting Python parser, so classes,
//! imports and string literals are found exactly — never by regex. The AST is
//! dropped after extraction; only [`PyModule`] is kept.
//!
//! SQL candidates are string literals passed to `.sql(`, `execute(`,
//! `read_sql*(` or `query(`, plus any other literal whose first token is a
//! SQL keyword written in one case (`SELECT`/`select`, not prose's
//! `Select`) and that is clearly SQL (see [`crate::sql::Statement::confident`]). Docstrings and other bare string
//! statements are skipped. F-string interpolations become a placeholder.

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Expr, FStringPart, InterpolatedStringElement, Stmt};
use ruff_text_size::{Ranged, TextSize};

use crate::source::{LineIndex, Suppressions};
use crate::sql;

/// A class definition.
#[derive(Debug, Clone)]
pub struct ClassDef {
    pub name: String,
    pub line: u32,
    /// Base classes as dotted names, import aliases resolved
    /// (`from components.base_page import BasePage as BP` → `components.base_page.BasePage`).
    pub bases: Vec<String>,
    /// Methods defined directly in the class body.
    pub methods: Vec<String>,
}

/// A module-level function definition.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub name: String,
    pub line: u32,
}

/// An import statement.
#[derive(Debug, Clone)]
pub struct Import {
    /// Module as written (`components.base_page`, `.helpers` for relative).
    pub module: String,
    /// Names imported with `from module import a, b`; empty for `import module`.
    pub items: Vec<String>,
    pub line: u32,
}

/// A string literal holding SQL.
#[derive(Debug, Clone)]
pub struct SqlLiteral {
    /// Line where the string starts.
    pub line: u32,
    /// Line where the string ends (suppressions anywhere in between count).
    pub end_line: u32,
    pub statements: Vec<sql::Statement>,
}

/// What the rules need from one Python file.
#[derive(Debug, Clone, Default)]
pub struct PyModule {
    pub classes: Vec<ClassDef>,
    pub functions: Vec<FunctionDef>,
    pub imports: Vec<Import>,
    pub sql: Vec<SqlLiteral>,
    pub suppressions: Suppressions,
}

/// A file that does not parse.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Method/function names whose first argument is SQL.
const SQL_CALLS: &[&str] = &[
    "sql",
    "execute",
    "executemany",
    "read_sql",
    "read_sql_query",
    "query",
];

/// Parses `source` once and extracts the summary.
pub fn parse(source: &str) -> Result<PyModule, SyntaxError> {
    let lines = LineIndex::new(source);
    let parsed = ruff_python_parser::parse_module(source).map_err(|err| {
        let start = err.location.start().to_u32();
        SyntaxError {
            line: lines.line(start),
            column: lines.column(start),
            message: err.error.to_string(),
        }
    })?;
    let suppressions = if source.contains("sluice: ignore[") {
        Suppressions::from_comments(
            parsed
                .tokens()
                .iter()
                .filter(|t| t.kind() == TokenKind::Comment)
                .map(|t| (lines.line(t.start().to_u32()), &source[t.range()])),
        )
    } else {
        Suppressions::default()
    };
    let mut extractor = Extractor {
        lines: &lines,
        module: PyModule {
            suppressions,
            ..PyModule::default()
        },
        aliases: Vec::new(),
        call_literals: Vec::new(),
    };
    let body = &parsed.syntax().body;
    // Aliases first, so a base class can use an import written below it.
    for stmt in body {
        extractor.collect_aliases(stmt);
    }
    for stmt in body {
        if let Stmt::FunctionDef(f) = stmt {
            extractor.module.functions.push(FunctionDef {
                name: f.name.id.to_string(),
                line: lines.line(f.range.start().to_u32()),
            });
        }
    }
    extractor.visit_body(body);
    Ok(extractor.module)
}

struct Extractor<'a> {
    lines: &'a LineIndex,
    module: PyModule,
    /// Local name → qualified name, from imports.
    aliases: Vec<(String, String)>,
    /// Start offsets of literals already taken as call arguments.
    call_literals: Vec<TextSize>,
}

impl Extractor<'_> {
    fn collect_aliases(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::ImportFrom(imp) => {
                let module = imp.module.as_ref().map(|m| m.id.as_str()).unwrap_or("");
                for alias in &imp.names {
                    let local = alias.asname.as_ref().unwrap_or(&alias.name).id.to_string();
                    self.aliases
                        .push((local, format!("{module}.{}", alias.name.id)));
                }
            }
            Stmt::Import(imp) => {
                for alias in &imp.names {
                    if let Some(asname) = &alias.asname {
                        self.aliases
                            .push((asname.id.to_string(), alias.name.id.to_string()));
                    }
                }
            }
            _ => {}
        }
    }

    fn qualify(&self, dotted: String) -> String {
        let head = dotted.split('.').next().unwrap_or("");
        match self.aliases.iter().rev().find(|(local, _)| local == head) {
            Some((_, full)) => format!("{full}{}", &dotted[head.len()..]),
            None => dotted,
        }
    }

    fn record_sql(&mut self, expr: &Expr, from_call: bool) {
        let text = match expr {
            Expr::StringLiteral(s) => std::borrow::Cow::Borrowed(s.value.to_str()),
            Expr::FString(f) => std::borrow::Cow::Owned(fstring_text(f)),
            _ => return,
        };
        // Outside a SQL call, prose such as "Delete rows from the table"
        // must not count: SQL is written in one case, prose is Capitalised.
        if !from_call && !sql::starts_with_keyword_uniform_case(&text) {
            return;
        }
        let mut statements = sql::statements(&text);
        if !from_call {
            statements.retain(|s| s.confident);
        }
        if statements.is_empty() {
            return;
        }
        let range = expr.range();
        self.module.sql.push(SqlLiteral {
            line: self.lines.line(range.start().to_u32()),
            end_line: self.lines.line(range.end().to_u32()),
            statements,
        });
    }
}

/// The text of an f-string with each `{...}` replaced by a placeholder.
fn fstring_text(f: &ruff_python_ast::ExprFString) -> String {
    let mut out = String::new();
    for part in f.value.iter() {
        match part {
            FStringPart::Literal(lit) => out.push_str(&lit.value),
            FStringPart::FString(fs) => {
                for element in fs.elements.iter() {
                    match element {
                        InterpolatedStringElement::Literal(lit) => out.push_str(&lit.value),
                        InterpolatedStringElement::Interpolation(_) => out.push_str("{param}"),
                    }
                }
            }
        }
    }
    out
}

/// `a.b.C` for names and attribute chains; `Generic[T]` → `Generic`.
fn dotted_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Name(n) => Some(n.id.to_string()),
        Expr::Attribute(a) => Some(format!("{}.{}", dotted_name(&a.value)?, a.attr.id)),
        Expr::Subscript(s) => dotted_name(&s.value),
        _ => None,
    }
}

fn is_string(expr: &Expr) -> bool {
    matches!(expr, Expr::StringLiteral(_) | Expr::FString(_))
}

impl<'a> Visitor<'a> for Extractor<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            // Docstrings and bare strings are never executed as SQL.
            Stmt::Expr(e) if is_string(&e.value) => return,
            Stmt::ClassDef(class) => {
                let bases = class
                    .bases()
                    .iter()
                    .filter_map(dotted_name)
                    .map(|d| self.qualify(d))
                    .collect();
                let methods = class
                    .body
                    .iter()
                    .filter_map(|s| match s {
                        Stmt::FunctionDef(f) => Some(f.name.id.to_string()),
                        _ => None,
                    })
                    .collect();
                self.module.classes.push(ClassDef {
                    name: class.name.id.to_string(),
                    line: self.lines.line(class.range.start().to_u32()),
                    bases,
                    methods,
                });
            }
            Stmt::Import(imp) => {
                let line = self.lines.line(imp.range.start().to_u32());
                for alias in &imp.names {
                    self.module.imports.push(Import {
                        module: alias.name.id.to_string(),
                        items: Vec::new(),
                        line,
                    });
                }
            }
            Stmt::ImportFrom(imp) => {
                let module = format!(
                    "{}{}",
                    ".".repeat(imp.level as usize),
                    imp.module.as_ref().map(|m| m.id.as_str()).unwrap_or("")
                );
                self.module.imports.push(Import {
                    module,
                    items: imp.names.iter().map(|a| a.name.id.to_string()).collect(),
                    line: self.lines.line(imp.range.start().to_u32()),
                });
            }
            _ => {}
        }
        walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Call(call) => {
                let callee = match call.func.as_ref() {
                    Expr::Attribute(a) => Some(a.attr.id.as_str()),
                    Expr::Name(n) => Some(n.id.as_str()),
                    _ => None,
                };
                if callee.is_some_and(|c| SQL_CALLS.contains(&c)) {
                    let arg = call.arguments.args.first().or_else(|| {
                        call.arguments
                            .keywords
                            .iter()
                            .find(|k| {
                                k.arg.as_ref().is_some_and(|a| {
                                    matches!(
                                        a.id.as_str(),
                                        "sql" | "query" | "statement" | "sql_text"
                                    )
                                })
                            })
                            .map(|k| &k.value)
                    });
                    if let Some(arg) = arg.filter(|a| is_string(a)) {
                        self.call_literals.push(arg.range().start());
                        self.record_sql(arg, true);
                    }
                }
            }
            Expr::StringLiteral(_) | Expr::FString(_) => {
                if !self.call_literals.contains(&expr.range().start()) {
                    self.record_sql(expr, false);
                }
                // Interpolations may hold further literals, but never SQL we check.
                return;
            }
            _ => {}
        }
        walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"
import streamlit as st
from components.base_page import BasePage as BP
import components.base_page

class Helper: pass

class SalesPage(BP, components.base_page.Mixin):
    """SELECT this docstring is not SQL FROM anywhere"""
    def __init__(self) -> None:
        super().__init__(title="Sales")
    def run(self) -> None:
        df = self.query("SELECT region FROM sales")  # sluice: ignore[select-only]
        st.button("Update the chart")
        st.caption("Delete rows from the table")
        q = f"""
            DELETE FROM {table}
            WHERE day < '2020-01-01'
        """
        session.sql(q)

def main() -> None:
    SalesPage().run()
"#;

    #[test]
    fn extracts_classes_functions_imports() {
        let m = parse(PAGE).unwrap();
        let names: Vec<_> = m.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Helper", "SalesPage"]);
        let page = &m.classes[1];
        assert_eq!(page.line, 8);
        assert_eq!(
            page.bases,
            [
                "components.base_page.BasePage",
                "components.base_page.Mixin"
            ]
        );
        assert_eq!(page.methods, ["__init__", "run"]);
        assert_eq!(m.functions.len(), 1);
        assert_eq!(m.functions[0].name, "main");
        assert_eq!(m.imports.len(), 3);
        assert_eq!(m.imports[1].module, "components.base_page");
        assert_eq!(m.imports[1].items, ["BasePage"]);
    }

    #[test]
    fn extracts_sql_literals_with_their_line() {
        let m = parse(PAGE).unwrap();
        assert_eq!(m.sql.len(), 2, "{:?}", m.sql);
        assert_eq!(m.sql[0].line, 13);
        assert!(m.sql[0].statements[0].read);
        assert_eq!(m.sql[1].line, 16);
        assert_eq!(m.sql[1].end_line, 19);
        assert_eq!(m.sql[1].statements[0].label, "DELETE");
        assert!(m.suppressions.silences("select-only", 13, 13));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let err = parse("import os\n\ndef broken(:\n    pass\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(!err.message.is_empty());
    }
}
