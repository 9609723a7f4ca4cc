//! pgbouncer's own configuration file, read as the gateway's TOML settings:
//! the migration path (`sluice proxy --config pgbouncer.ini`, and
//! `--print-toml pgbouncer.ini` for the TOML equivalent).
//!
//! The file is read as pgbouncer 1.25 reads it (`lib/usual/cfparser.c` and
//! `src/loader.c`): `[pgbouncer]`, `[databases]`, `[users]` and `[peers]`
//! sections of `key = value` lines; `;` and `#` start a comment only at the
//! start of a line (a value runs to the end of its line); keys may be quoted
//! (`'my db' = ...`, or `"my db"` as pgbouncer's manual has it); numbers are C
//! integers (`0x14`, `024`), seconds are plain numbers with fractions and no
//! units; keywords are in any case; a `[databases]` or `[users]` value is a
//! connection string of `key=value` pairs (values may be `'quoted'`, `''` for a
//! quote); `%include FILE` reads another file in place. No environment
//! variables are expanded (pgbouncer expands none). One difference: relative
//! paths (`%include`, `auth_file`) are taken from the folder of the file given
//! to sluice, as the TOML configuration's are, where pgbouncer takes them from
//! its working directory.
//!
//! Which settings the gateway reads, and as which TOML key, is the one table
//! in [`pgbouncer`]. A setting pgbouncer has and the gateway does not do is an
//! error saying so; a misspelt one gets the nearest known name suggested.
//!
//! The result is a `toml::Table` in the gateway's schema, written out as TOML
//! text and given to [`Config::parse`], so both formats share one validation.
//! Each TOML line remembers the INI file and line it came from, and errors
//! the TOML layer reports are moved back there.

mod pgbouncer;
mod render;
mod syntax;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{read_text, Config, ConfigError};
use pgbouncer::{Place, Target};
use render::Rendered;
use syntax::{connection_string, convert, split_key_value};

/// pgbouncer's limit on `%include` depth.
const MAX_INCLUDE_DEPTH: usize = 10;

/// Whether `path` is to be read as a pgbouncer INI file: it is named `*.ini`,
/// or it has a `[pgbouncer]` section (which the TOML configuration never has:
/// it would be an unknown key there).
pub fn is_pgbouncer_ini(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("ini"))
        || text.lines().any(|line| line.trim() == "[pgbouncer]")
}

/// `sluice proxy --print-toml`: the TOML equivalent of the pgbouncer file at
/// `path`, returned only once it is known to load.
pub fn toml_of_file(path: &Path) -> Result<String, ConfigError> {
    let ini = PgbouncerIni::parse(path, &read_text(path)?)?;
    ini.load()?;
    Ok(ini.toml)
}

/// A pgbouncer INI file converted to the gateway's TOML.
#[derive(Debug, Clone)]
pub struct PgbouncerIni {
    /// The file given (it names the [`Config`], and relative paths start at its folder).
    path: PathBuf,
    /// The TOML equivalent, as `--print-toml` prints it.
    pub toml: String,
    /// Where each TOML line (index = line - 1) came from; `None` for lines
    /// of no setting (comments, blank lines).
    origins: Vec<Option<Origin>>,
    /// Where errors about no line in particular point: the `[pgbouncer]` header.
    fallback: Origin,
}

/// An INI file and line.
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    line: usize,
}

impl PgbouncerIni {
    /// Reads `text` as the pgbouncer file at `path`, with the files it `%include`s.
    pub fn parse(path: &Path, text: &str) -> Result<PgbouncerIni, ConfigError> {
        let mut reader = Reader {
            base: path.parent().unwrap_or(Path::new("")).to_owned(),
            section: None,
            pgbouncer_header: None,
            databases_header: None,
            table: Table::new(),
            marks: BTreeMap::new(),
            seq: 0,
        };
        reader.file(path, text, 0)?;
        let Some(fallback) = reader.pgbouncer_header.clone() else {
            let top = Origin {
                file: path.to_owned(),
                line: 1,
            };
            return Err(invalid_at(
                &top,
                "no [pgbouncer] section (pgbouncer requires one)".into(),
            ));
        };
        if !reader.table.contains_key("databases") {
            let at = reader.databases_header.clone().unwrap_or(fallback.clone());
            return Err(invalid_at(
                &at,
                "no databases in [databases]: clients would have nowhere to go".into(),
            ));
        }
        let name = path
            .file_name()
            .map_or(path.as_os_str(), |n| n)
            .to_string_lossy();
        let mut out = Rendered::default();
        out.line(
            format!("# {name} (pgbouncer's format) as sluice reads it"),
            None,
        );
        out.table(&reader.table, &[], &reader.marks);
        Ok(PgbouncerIni {
            path: path.to_owned(),
            toml: out.text,
            origins: out.origins,
            fallback,
        })
    }

    /// The configuration: the TOML text through [`Config::parse`], its
    /// errors pointed back at the INI file and line.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::parse(&self.path, &self.toml).map_err(|error| match error {
            ConfigError::Invalid { line, message, .. } => {
                let origin = self.origins.get(line.wrapping_sub(1)).cloned().flatten();
                invalid_at(origin.as_ref().unwrap_or(&self.fallback), message)
            }
            other => other,
        })
    }
}

fn invalid_at(at: &Origin, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: at.file.clone(),
        line: at.line,
        message,
    }
}

/// Where the value or table at a TOML key path (`["databases", "app",
/// "port"]`) was set; `seq` keeps the INI file's order in the TOML output.
#[derive(Debug)]
struct Mark {
    origin: Origin,
    seq: usize,
}

type Marks = BTreeMap<Vec<String>, Mark>;

/// The state of one reading: the section continues across `%include`, as in pgbouncer.
struct Reader {
    base: PathBuf,
    section: Option<String>,
    pgbouncer_header: Option<Origin>,
    databases_header: Option<Origin>,
    table: Table,
    marks: Marks,
    /// Counts marks made, for their `seq`.
    seq: usize,
}

impl Reader {
    fn file(&mut self, path: &Path, text: &str, depth: usize) -> Result<(), ConfigError> {
        for (index, line) in text.lines().enumerate() {
            let at = Origin {
                file: path.to_owned(),
                line: index + 1,
            };
            self.line(&at, line, depth)?;
        }
        Ok(())
    }

    fn line(&mut self, at: &Origin, line: &str, depth: usize) -> Result<(), ConfigError> {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            return Ok(());
        }
        if let Some(name) = line
            .strip_prefix("%include")
            .filter(|rest| rest.starts_with([' ', '\t']))
        {
            return self.include(at, name.trim(), depth);
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some((name, rest)) = header.split_once(']') else {
                return Err(invalid_at(
                    at,
                    "syntax error: no `]` after the section name".into(),
                ));
            };
            self.section(at, name)?;
            // pgbouncer reads on after the `]` as if on a new line.
            return self.line(at, rest, depth);
        }
        let (key, value) = split_key_value(line).ok_or_else(|| {
            invalid_at(
                at,
                format!(
                    "syntax error: expected `key = value`, `[section]` or a comment, got `{line}`"
                ),
            )
        })?;
        match self.section.as_deref() {
            None => Err(invalid_at(
                at,
                format!("`{key}` is set before any [section]"),
            )),
            Some("pgbouncer") => self.setting(at, Place::Pgbouncer, &[], "", &key, value),
            Some("databases") => self.database(at, &key, value),
            Some("users") => self.user(at, &key, value),
            // [peers], the only other section `section` lets through.
            Some(_) => Err(unsupported(at, &key, " in [peers]", "peering")),
        }
    }

    fn include(&mut self, at: &Origin, name: &str, depth: usize) -> Result<(), ConfigError> {
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(invalid_at(
                at,
                format!("%include {name}: includes nested more than {MAX_INCLUDE_DEPTH} deep"),
            ));
        }
        let path = self.base.join(name);
        let text = std::fs::read_to_string(&path).map_err(|error| {
            invalid_at(
                at,
                format!("%include {name}: cannot read {}: {error}", path.display()),
            )
        })?;
        self.file(&path, &text, depth + 1)
    }

    fn section(&mut self, at: &Origin, name: &str) -> Result<(), ConfigError> {
        match name {
            "pgbouncer" => {
                if let Some(first) = &self.pgbouncer_header {
                    // pgbouncer would reset the settings above to their defaults here.
                    return Err(invalid_at(
                        at,
                        format!(
                            "a second [pgbouncer] section (the first is at {}:{}): \
                             merge them into one",
                            first.file.display(),
                            first.line
                        ),
                    ));
                }
                self.pgbouncer_header = Some(at.clone());
                self.mark(vec!["proxy".into()], at);
            }
            "databases" => {
                self.databases_header.get_or_insert_with(|| at.clone());
            }
            "users" | "peers" => {}
            other => {
                return Err(invalid_at(
                    at,
                    format!(
                        "unknown section [{other}]: pgbouncer's sections are [pgbouncer], \
                         [databases], [users] and [peers]"
                    ),
                ))
            }
        }
        self.section = Some(name.to_owned());
        Ok(())
    }

    /// `NAME = host=... port=...`: `[databases.NAME]`, replacing an earlier line for NAME.
    fn database(&mut self, at: &Origin, name: &str, value: &str) -> Result<(), ConfigError> {
        if name == "*" {
            return Err(unsupported(
                at,
                "*",
                " in [databases]",
                "a fallback for any database name: list each database",
            ));
        }
        if name == "pgbouncer" {
            return Err(invalid_at(
                at,
                "database name \"pgbouncer\" is reserved for pgbouncer's admin console".into(),
            ));
        }
        let of = format!(" of database \"{name}\"");
        self.entry(
            at,
            Place::Database,
            key_path(&["databases", name]),
            &of,
            value,
        )?;
        if !self
            .marks
            .contains_key(&key_path(&["databases", name, "host"]))
        {
            return Err(invalid_at(
                at,
                format!(
                    "database \"{name}\" has no host=: sluice connects over TCP \
                     (pgbouncer's default is a Unix socket)"
                ),
            ));
        }
        Ok(())
    }

    /// `NAME = pool_mode=... pool_size=...`: `[users.NAME]`.
    fn user(&mut self, at: &Origin, name: &str, value: &str) -> Result<(), ConfigError> {
        let of = format!(" of user \"{name}\"");
        self.entry(at, Place::User, key_path(&["users", name]), &of, value)
    }

    /// One `[databases]` or `[users]` line: its table, made anew, and each of its parameters.
    fn entry(
        &mut self,
        at: &Origin,
        place: Place,
        path: Vec<String>,
        of: &str,
        connstr: &str,
    ) -> Result<(), ConfigError> {
        self.marks.retain(|key, _| !key.starts_with(&path));
        self.put(path.clone(), Value::Table(Table::new()), at);
        let pairs = connection_string(connstr).map_err(|near| {
            invalid_at(
                at,
                format!("syntax error in the connection string{of} near `{near}`"),
            )
        })?;
        for (key, value) in pairs {
            self.setting(at, place, &path, of, &key, &value)?;
        }
        Ok(())
    }

    /// One setting: looked up in the table, its value read as pgbouncer
    /// would, and put at its TOML key under `path`.
    fn setting(
        &mut self,
        at: &Origin,
        place: Place,
        path: &[String],
        of: &str,
        name: &str,
        raw: &str,
    ) -> Result<(), ConfigError> {
        let Some(setting) = pgbouncer::find(place, name) else {
            let hint = pgbouncer::nearest(place, name)
                .map(|known| format!(" (did you mean \"{known}\"?)"))
                .unwrap_or_default();
            return Err(invalid_at(
                at,
                format!("unknown pgbouncer setting \"{name}\"{of}{hint}"),
            ));
        };
        let (key, kind) = match setting.target {
            Target::Toml(key, kind) => (key, kind),
            Target::Unsupported(instead) => return Err(unsupported(at, name, of, instead)),
        };
        let value = convert(kind, raw).map_err(|expected| {
            let comment = if raw.contains(" ;") || raw.contains(" #") {
                " (pgbouncer allows comments only on lines of their own)"
            } else {
                ""
            };
            invalid_at(
                at,
                format!("invalid value \"{raw}\" for \"{name}\"{of}: {expected}{comment}"),
            )
        })?;
        let mut full = path.to_vec();
        full.extend(key.split('.').map(str::to_owned));
        self.put(full, value, at);
        Ok(())
    }

    /// Puts `value` at the TOML key `path`, remembering where it was set.
    fn put(&mut self, path: Vec<String>, value: Value, at: &Origin) {
        let (leaf, parent) = path.split_last().expect("key paths are never empty");
        table_at(&mut self.table, parent).insert(leaf.clone(), value);
        self.mark(path, at);
    }

    fn mark(&mut self, path: Vec<String>, at: &Origin) {
        self.seq += 1;
        let seq = self.seq;
        self.marks.insert(
            path,
            Mark {
                origin: at.clone(),
                seq,
            },
        );
    }
}

fn unsupported(at: &Origin, name: &str, of: &str, instead: &str) -> ConfigError {
    let instead = if instead.is_empty() {
        String::new()
    } else {
        format!(" ({instead})")
    };
    invalid_at(
        at,
        format!(
            "unsupported pgbouncer setting \"{name}\"{of}: supported by pgbouncer but not by \
             sluice{instead}"
        ),
    )
}

fn key_path(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| key.to_string()).collect()
}

/// The table at `path` under `root`, made if missing.
fn table_at<'t>(root: &'t mut Table, path: &[String]) -> &'t mut Table {
    path.iter().fold(root, |table, key| {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        entry
            .as_table_mut()
            .expect("the INI reader only nests tables")
    })
}
