//! `sluice-rules`: the compliance engine. It owns the rules file model,
//! parsing of Python and SQL, one module per rule kind, and the report formats.
