//! `sluice-rules`: the compliance engine behind `sluice check`.
//!
//! Maintainers state policy once in `compliance/rules.yml`; every
//! application of the workspace is checked against it, exactly (real Python
//! and SQL parsers, no text matching) and fast (every file parsed once, in
//! parallel).
//!
//! # Layout
//! - [`config`] — the rules file model; YAML errors as `rules.yml:LINE:COL: message`.
//! - [`workspace`] — the applications (folders under the apps dir except
//!   `components/`) and their files.
//! - [`python`] — one `ruff_python_parser` parse per file → classes, bases,
//!   methods, functions, imports, SQL string literals with their lines.
//! - [`sql`] — statement splitting, comment stripping, read/write
//!   classification with `sqlparser` (Snowflake dialect) and a token-scan
//!   fallback for templated SQL.
//! - [`rules`] — one module per rule kind (class, function, import, file,
//!   sql, share) and the registry table [`rules::KINDS`].
//! - [`baseline`] — known violations (`--baseline`), matched by rule, file
//!   and a fingerprint of the offending text.
//! - [`engine`] — the walker: parse phase, rule phase, suppressions.
//! - [`report`] — the result model and one module per output format.
//! - [`source`] — line numbers and `# sluice: ignore[rule-id]` comments.
//!
//! The default rules file that `sluice init` writes is [`DEFAULT_RULES`].

pub mod baseline;
pub mod config;
pub mod engine;
pub mod python;
pub mod report;
pub mod rules;
pub mod source;
pub mod sql;
pub mod workspace;

pub use baseline::{Baseline, BaselineError};
pub use config::{load_rules, parse_rules, ConfigError, Severity};
pub use engine::{check, CheckError, CheckOptions};
pub use report::{render, Format, RenderOptions, Report};
pub use rules::{RuleSet, Violation};
pub use workspace::Workspace;

/// The rules file `sluice init` writes to `compliance/rules.yml`.
pub const DEFAULT_RULES: &str = include_str!("../default-rules.yml");
