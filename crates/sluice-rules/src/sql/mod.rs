//! SQL analysis: split a text into statements and tell reads from writes.
//!
//! Two layers, so templated SQL still gets checked:
//! 1. A small lexer of our own ([`scan`]) that understands quotes, `$$`
//!    bodies and `--`, `//`, `/* */` comments. It splits statements on
//!    top-level `;`, drops comments (a commented-out `DELETE` is not a
//!    statement), finds each statement's line and its leading keywords.
//! 2. `sqlparser` (Snowflake dialect) parses each statement. When it parses,
//!    the AST decides: any nested statement that is not a read (a CTE ending
//!    in DML, `EXPLAIN` of a `DELETE`) or a `SELECT ... INTO` makes it a
//!    write. When it does not parse (`{{ table }}`, `{}` placeholders,
//!    dialect gaps) the token scan decides on its own.
//!
//! A statement that starts as a read and has no write keyword anywhere
//! (as a bare word; strings and quoted names do not count) is a read
//! without asking the parser, which could only agree: this halves the cost
//! of checking a typical dashboard.
//!
//! `sqlparser` was chosen over regexes because keywords inside strings,
//! identifiers and comments must not count, and nested DML must.

use std::ops::ControlFlow;

use sqlparser::ast::{Select, Statement as Ast, Visit, Visitor};
use sqlparser::dialect::SnowflakeDialect;
use sqlparser::parser::Parser;

mod scan;

use scan::{scan, Piece, Tok};

/// One statement found in a SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What the statement does, upper-case: `SELECT`, `DELETE`,
    /// `CREATE TABLE ... AS SELECT`, `WITH ... DELETE`, `SELECT ... INTO`.
    pub label: String,
    /// The leading keywords of the statement that does the work (after a
    /// `WITH` list), as written; used for `forbidden_statements`.
    pub words: Vec<String>,
    /// True when the statement only reads.
    pub read: bool,
    /// 1-based line within the text where the statement starts.
    pub line: u32,
    /// True when `sqlparser` parsed it; false when the token scan decided.
    pub parsed: bool,
    /// True when the text is clearly SQL (it parsed, or has a statement
    /// shape such as `DELETE FROM` / `SELECT ... FROM`). Used to ignore
    /// prose like "Update the chart" that merely starts with a keyword.
    pub confident: bool,
}

/// Keywords that can start a SQL statement; a Python string literal that
/// starts with one of these is a SQL candidate.
pub const STATEMENT_KEYWORDS: &[&str] = &[
    "SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE",
    "GRANT", "REVOKE", "COPY", "CALL", "EXECUTE", "REPLACE", "UPSERT", "SHOW", "DESCRIBE",
    "EXPLAIN", "USE", "PUT", "REMOVE", "UNDROP", "COMMENT",
];

/// Leading keywords of statements that only read.
const READ_STARTS: &[&str] = &[
    "SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "USE", "LIST", "LS",
];

const DML: &[&str] = &["INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT"];

/// Whether `text` starts (after whitespace and comments) with a statement keyword.
pub fn starts_with_keyword(text: &str) -> bool {
    let word = first_word(text);
    !word.is_empty()
        && word.len() <= 9
        && STATEMENT_KEYWORDS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(word))
}

/// Like [`starts_with_keyword`], but the keyword must be all upper or all
/// lower case: `SELECT`, `select` — not `Select`, which is how prose starts.
pub fn starts_with_keyword_uniform_case(text: &str) -> bool {
    let word = first_word(text);
    starts_with_keyword(word)
        && (word.bytes().all(|b| b.is_ascii_uppercase())
            || word.bytes().all(|b| b.is_ascii_lowercase()))
}

fn first_word(text: &str) -> &str {
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_start();
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Analyses every statement of a SQL text.
pub fn statements(text: &str) -> Vec<Statement> {
    scan(text)
        .into_iter()
        .map(|piece| classify(&text[piece.start..piece.end], &piece))
        .collect()
}

fn upper(word: &str) -> String {
    word.to_ascii_uppercase()
}

fn is(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

/// Token-level view of a statement: label, effective words, read, shape.
struct TokenVerdict<'a> {
    label: String,
    words: Vec<&'a str>,
    read: bool,
    confident: bool,
}

fn token_verdict<'a>(toks: &[Tok<'a>]) -> TokenVerdict<'a> {
    // Skip leading parentheses: `(SELECT ...) UNION ...`.
    let first = toks
        .iter()
        .position(|t| !matches!(t, Tok::Open))
        .unwrap_or(0);
    let toks_from = &toks[first..];
    let lead: Vec<&str> = toks_from
        .iter()
        .take(6)
        .map_while(|t| match t {
            Tok::Word(w) => Some(*w),
            _ => None,
        })
        .collect();
    let Some(&head) = lead.first() else {
        return TokenVerdict {
            label: "UNKNOWN".into(),
            words: Vec::new(),
            read: false,
            confident: false,
        };
    };
    let head_up = upper(head);
    let n = lead.len();
    let has_word = |kw: &str| toks_from.iter().any(|t| is(t, kw));
    let has_top_level = |kw: &str| {
        let mut depth = 0;
        toks_from.iter().any(|t| {
            match t {
                Tok::Open => depth += 1,
                Tok::Close => depth -= 1,
                _ => {}
            }
            depth == 0 && is(t, kw)
        })
    };
    match head_up.as_str() {
        "WITH" => {
            // The statement after the CTE list decides: the first DML keyword anywhere.
            if let Some(pos) = toks_from.iter().position(|t| DML.iter().any(|k| is(t, k))) {
                let words: Vec<&str> = toks_from[pos..]
                    .iter()
                    .take(3)
                    .map_while(|t| match t {
                        Tok::Word(w) => Some(*w),
                        _ => None,
                    })
                    .collect();
                let verb = upper(words[0]);
                return TokenVerdict {
                    label: format!("WITH ... {verb}"),
                    words,
                    read: false,
                    confident: true,
                };
            }
            TokenVerdict {
                label: "SELECT".into(),
                words: vec![head],
                read: true,
                confident: has_word("SELECT"),
            }
        }
        "SELECT" => {
            if has_top_level("INTO") {
                TokenVerdict {
                    label: "SELECT ... INTO".into(),
                    words: lead,
                    read: false,
                    confident: true,
                }
            } else {
                TokenVerdict {
                    label: "SELECT".into(),
                    words: lead,
                    read: true,
                    confident: has_word("FROM") || toks_from.len() <= 8,
                }
            }
        }
        h if READ_STARTS.contains(&h) => TokenVerdict {
            label: h.to_string(),
            words: lead,
            read: true,
            confident: n >= 2,
        },
        "CREATE" => {
            // Skip modifiers to find the object: CREATE OR REPLACE TRANSIENT TABLE.
            const MODIFIERS: &[&str] = &[
                "OR",
                "REPLACE",
                "TEMP",
                "TEMPORARY",
                "TRANSIENT",
                "VOLATILE",
                "LOCAL",
                "GLOBAL",
                "SECURE",
                "RECURSIVE",
                "MATERIALIZED",
                "IF",
                "NOT",
                "EXISTS",
            ];
            let object = lead[1..]
                .iter()
                .find(|w| !MODIFIERS.iter().any(|m| m.eq_ignore_ascii_case(w)))
                .map(|w| upper(w))
                .unwrap_or_default();
            let ctas =
                object == "TABLE" && has_word("AS") && (has_word("SELECT") || has_word("WITH"));
            let label = if ctas {
                "CREATE TABLE ... AS SELECT".to_string()
            } else if object.is_empty() {
                "CREATE".to_string()
            } else {
                format!("CREATE {object}")
            };
            TokenVerdict {
                label,
                words: lead,
                read: false,
                confident: !object.is_empty(),
            }
        }
        "COPY" | "MERGE" | "INSERT" => TokenVerdict {
            label: if head_up == "COPY" {
                "COPY INTO".into()
            } else {
                head_up.clone()
            },
            confident: has_word("INTO") || head_up == "MERGE" && has_word("USING"),
            words: lead,
            read: false,
        },
        "EXECUTE" | "EXEC" => TokenVerdict {
            label: if lead
                .get(1)
                .is_some_and(|w| w.eq_ignore_ascii_case("IMMEDIATE"))
            {
                "EXECUTE IMMEDIATE".into()
            } else {
                "EXECUTE".into()
            },
            confident: n >= 2,
            words: lead,
            read: false,
        },
        "DELETE" => TokenVerdict {
            label: head_up,
            confident: has_word("FROM"),
            words: lead,
            read: false,
        },
        "UPDATE" => TokenVerdict {
            label: head_up,
            confident: has_word("SET"),
            words: lead,
            read: false,
        },
        "GRANT" | "REVOKE" => TokenVerdict {
            label: head_up,
            confident: has_word("ON") || has_word("TO") || has_word("FROM"),
            words: lead,
            read: false,
        },
        "DROP" | "ALTER" | "TRUNCATE" | "UNDROP" => TokenVerdict {
            label: match lead.get(1) {
                Some(obj) if !obj.eq_ignore_ascii_case("IF") => format!("{head_up} {}", upper(obj)),
                _ => head_up,
            },
            confident: n >= 3 || head.eq_ignore_ascii_case("TRUNCATE") && n >= 2,
            words: lead,
            read: false,
        },
        "CALL" => TokenVerdict {
            label: head_up,
            confident: toks_from.iter().any(|t| matches!(t, Tok::Open)),
            words: lead,
            read: false,
        },
        _ => TokenVerdict {
            confident: false,
            label: head_up,
            words: lead,
            read: false,
        },
    }
}

/// Bare words that can make a statement write something. A statement
/// without any of them only reads, whatever the parser would say.
const WRITE_KEYWORDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "INTO", "CREATE", "DROP", "ALTER", "TRUNCATE",
    "GRANT", "REVOKE", "CALL", "EXECUTE", "EXEC", "COPY", "PUT", "REMOVE", "UNDROP", "REPLACE",
    "RENAME", "COMMENT", "SET", "UNSET", "LOCK", "VACUUM", "ANALYZE", "OPTIMIZE", "LOAD", "UNLOAD",
];

fn has_write_keyword(toks: &[Tok]) -> bool {
    toks.iter().any(|t| match t {
        // Every write keyword is 3..=8 ASCII letters: a cheap length filter first.
        Tok::Word(w) => {
            (3..=8).contains(&w.len()) && WRITE_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
        }
        _ => false,
    })
}

/// Finds write statements (and `SELECT ... INTO`) anywhere in an AST.
struct WriteFinder {
    write: Option<String>,
}

fn is_read_statement(stmt: &Ast) -> bool {
    matches!(
        stmt,
        Ast::Query(_)
            | Ast::Explain { .. }
            | Ast::ExplainTable { .. }
            | Ast::Use(_)
            | Ast::List(_)
            | Ast::ShowFunctions { .. }
            | Ast::ShowVariable { .. }
            | Ast::ShowStatus { .. }
            | Ast::ShowVariables { .. }
            | Ast::ShowCreate { .. }
            | Ast::ShowColumns { .. }
            | Ast::ShowCatalogs { .. }
            | Ast::ShowDatabases { .. }
            | Ast::ShowProcessList { .. }
            | Ast::ShowSchemas { .. }
            | Ast::ShowCharset(_)
            | Ast::ShowObjects(_)
            | Ast::ShowTables { .. }
            | Ast::ShowViews { .. }
            | Ast::ShowCollation { .. }
    )
}

impl Visitor for WriteFinder {
    type Break = ();

    fn pre_visit_statement(&mut self, stmt: &Ast) -> ControlFlow<()> {
        if is_read_statement(stmt) {
            return ControlFlow::Continue(());
        }
        let text = stmt.to_string();
        let verb = text.split_whitespace().next().unwrap_or("STATEMENT");
        self.write = Some(upper(verb));
        ControlFlow::Break(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if select.into.is_some() {
            self.write = Some("SELECT ... INTO".into());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

fn classify(text: &str, piece: &Piece) -> Statement {
    let verdict = token_verdict(&piece.toks);
    let words = verdict.words.iter().map(|w| w.to_string()).collect();
    // Placeholders (`{{ x }}`, `{}`, `%s`) never parse: skip the attempt.
    let templated = text.contains('{') || text.contains("%s") || text.contains("%(");
    // A read-looking statement without a single write keyword (as a bare
    // word: strings and quoted names do not count) cannot be a write, so
    // the parser could only agree: skip it on this hot path.
    if verdict.read && !has_write_keyword(&piece.toks) {
        return Statement {
            label: verdict.label,
            words,
            read: true,
            line: piece.line,
            parsed: false,
            confident: verdict.confident,
        };
    }
    let parsed = if templated {
        None
    } else {
        Parser::new(&SnowflakeDialect {})
            .try_with_sql(text)
            .and_then(|mut p| p.parse_statements())
            .ok()
            .filter(|stmts| !stmts.is_empty())
    };
    match parsed {
        Some(stmts) => {
            let mut finder = WriteFinder { write: None };
            for stmt in &stmts {
                if finder.write.is_some() {
                    break;
                }
                let _ = stmt.visit(&mut finder);
            }
            let (read, label) = match finder.write {
                None => (true, verdict.label),
                // The token scan names writes better (`CREATE TABLE ... AS SELECT`).
                Some(_) if !verdict.read => (false, verdict.label),
                Some(ast_label) if ast_label == "SELECT ... INTO" => (false, ast_label),
                Some(ast_label) => (false, format!("WITH ... {ast_label}")),
            };
            Statement {
                label,
                words,
                read,
                line: piece.line,
                parsed: true,
                confident: true,
            }
        }
        None => Statement {
            label: verdict.label,
            words,
            read: verdict.read,
            line: piece.line,
            parsed: false,
            confident: verdict.confident,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut s = statements(sql);
        assert_eq!(s.len(), 1, "{sql}: {s:?}");
        s.remove(0)
    }

    #[test]
    fn reads() {
        for sql in [
            "SELECT region, SUM(amount) FROM sales GROUP BY region",
            "with t as (select 1 as x) select * from t",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "SHOW TABLES",
            "select 'delete from x' as note from dual",
        ] {
            let s = one(sql);
            assert!(s.read, "{sql}: {s:?}");
        }
    }

    #[test]
    fn writes_are_labelled() {
        let cases = [
            ("DELETE FROM sales WHERE id = 1", "DELETE"),
            ("DeLeTe from sales", "DELETE"),
            ("insert into t values (1)", "INSERT"),
            ("UPDATE t SET a = 1", "UPDATE"),
            (
                "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.a = s.a",
                "MERGE",
            ),
            ("COPY INTO t FROM @stage", "COPY INTO"),
            ("GRANT SELECT ON TABLE t TO ROLE r", "GRANT"),
            ("REVOKE SELECT ON TABLE t FROM ROLE r", "REVOKE"),
            ("CALL refresh_sales()", "CALL"),
            ("EXECUTE IMMEDIATE 'DELETE FROM t'", "EXECUTE IMMEDIATE"),
            (
                "CREATE TABLE t2 AS SELECT * FROM t",
                "CREATE TABLE ... AS SELECT",
            ),
            ("CREATE OR REPLACE TABLE t2 (a INT)", "CREATE TABLE"),
            ("DROP TABLE t", "DROP TABLE"),
            ("TRUNCATE TABLE t", "TRUNCATE TABLE"),
            ("SELECT * INTO new_t FROM t", "SELECT ... INTO"),
            (
                "WITH d AS (SELECT id FROM t) DELETE FROM t WHERE id IN (SELECT id FROM d)",
                "WITH ... DELETE",
            ),
        ];
        for (sql, label) in cases {
            let s = one(sql);
            assert!(!s.read, "{sql}: {s:?}");
            assert_eq!(s.label, label, "{sql}: {s:?}");
        }
    }

    #[test]
    fn reads_with_write_words_go_through_the_parser() {
        // `replace` here is a function: the parser confirms it is a read.
        let s = one("SELECT REPLACE(name, 'a', 'b') FROM t");
        assert!(s.parsed && s.read, "{s:?}");
        let s = one("SELECT 1");
        assert!(!s.parsed && s.read, "fast path: {s:?}");
        assert!(has_write_keyword(&scan("select x into y from t")[0].toks));
        assert!(!has_write_keyword(
            &scan("select 'delete' as \"update\" from t")[0].toks
        ));
    }

    #[test]
    fn multi_statement_split_with_lines() {
        let s = statements("SELECT 1;\n-- DELETE FROM t;\n/* DROP TABLE t; */\nDELETE FROM t;\n");
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].read);
        assert_eq!(s[1].label, "DELETE");
        assert_eq!(s[1].line, 4);
    }

    #[test]
    fn semicolons_in_strings_do_not_split() {
        let s = statements("SELECT 'a;b' FROM t; SELECT \"x;y\" FROM t");
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.read));
    }

    #[test]
    fn templated_sql_falls_back_to_tokens() {
        let s = one("DELETE FROM {{ table }} WHERE day < '{cutoff}'");
        assert!(!s.parsed);
        assert!(!s.read);
        assert_eq!(s.label, "DELETE");
        let s = one("SELECT * FROM {table} WHERE x = %s");
        assert!(!s.parsed);
        assert!(s.read);
        let s = one("with x as (select 1) insert into {t} select * from x");
        assert!(!s.read);
        assert_eq!(s.label, "WITH ... INSERT");
    }

    #[test]
    fn prose_is_not_confident_sql() {
        let s = one("Update the chart when the filter changes");
        assert!(!s.confident);
        assert!(starts_with_keyword("  select 1"));
        assert!(starts_with_keyword("-- note\nDELETE FROM t"));
        assert!(!starts_with_keyword("Selected rows"));
        assert!(starts_with_keyword_uniform_case("delete from t"));
        assert!(!starts_with_keyword_uniform_case(
            "Delete rows from the table"
        ));
    }

    #[test]
    fn comment_only_text_has_no_statements() {
        assert!(statements("-- DELETE FROM sales;\n/* nothing */").is_empty());
    }
}
