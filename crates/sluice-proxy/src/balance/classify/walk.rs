//! A complete walk over a pg_query parse tree, looking for what makes a
//! statement unsafe for a replica.
//!
//! `pg_query` has a node iterator, but it only descends into the nodes its
//! own summaries need (it skips, for example, the arguments of a `CASE`), and
//! missing one `nextval` inside an expression would send a write to a
//! replica. Writing our own walker over the ~270 node types would be long and
//! would rot with each PostgreSQL release. Instead we use the fact that every
//! node type derives `serde::Serialize`: [`Scan`] is a tiny serde
//! `Serializer` that serializes nothing but watches the struct names and
//! fields go by. Serde visits every field of every node, so nothing is
//! skipped, and nothing is allocated except function names.

use std::fmt;

use serde::ser::{self, Serialize};

/// What a walk found anywhere in the tree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Findings {
    /// An `INSERT`, `UPDATE`, `DELETE` or `MERGE` (for example in a `WITH`).
    pub modifies_data: bool,
    /// `FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE`.
    pub locks_rows: bool,
    /// `SELECT ... INTO` (or `CREATE TABLE AS`'s target).
    pub select_into: bool,
    /// A relation created `TEMP`/`TEMPORARY`.
    pub temporary: bool,
    /// Every function called, as written (`"now"`, `"pg_catalog.count"`).
    pub functions: Vec<String>,
}

/// Walks `node` (any pg_query node) and reports what it contains.
pub(crate) fn scan<T: Serialize + ?Sized>(node: &T) -> Findings {
    let mut scan = Scan::default();
    // Our serializer never fails; an error here would be a serde bug.
    let _ = node.serialize(&mut scan);
    scan.findings
}

/// A struct being serialized and the field currently inside it.
#[derive(Clone, Copy)]
struct Frame {
    name: &'static str,
    field: &'static str,
}

#[derive(Default)]
struct Scan {
    frames: Vec<Frame>,
    /// Name parts of the function calls being walked (innermost last).
    calls: Vec<Vec<String>>,
    findings: Findings,
}

impl Scan {
    fn enter(&mut self, name: &'static str) {
        match name {
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                self.findings.modifies_data = true
            }
            "LockingClause" => self.findings.locks_rows = true,
            "IntoClause" => self.findings.select_into = true,
            "FuncCall" => self.calls.push(Vec::new()),
            _ => {}
        }
        self.frames.push(Frame { name, field: "" });
    }

    fn leave(&mut self) {
        if let Some(frame) = self.frames.pop() {
            if frame.name == "FuncCall" {
                if let Some(parts) = self.calls.pop() {
                    self.findings.functions.push(parts.join("."));
                }
            }
        }
    }

    fn string(&mut self, value: &str) {
        let n = self.frames.len();
        let Some(top) = self.frames.last().copied() else {
            return;
        };
        match (top.name, top.field) {
            // FuncCall.funcname -> Node.node -> String.sval
            ("String", "sval") if n >= 3 => {
                let call = self.frames[n - 3];
                if call.name == "FuncCall" && call.field == "funcname" {
                    if let Some(parts) = self.calls.last_mut() {
                        parts.push(value.to_owned());
                    }
                }
            }
            ("RangeVar", "relpersistence") if value == "t" => self.findings.temporary = true,
            _ => {}
        }
    }
}

/// The only error type serde demands; [`Scan`] never produces one.
#[derive(Debug)]
pub(crate) struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parse tree walk failed")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Never
    }
}

type Done = Result<(), Never>;

impl ser::Serializer for &mut Scan {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Done {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Done {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Done {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Done {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Done {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Done {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Done {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Done {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Done {
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Done {
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> Done {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Done {
        Ok(())
    }
    fn serialize_str(self, value: &str) -> Done {
        self.string(value);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Done {
        Ok(())
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self, Never> {
        self.enter(name);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.enter(variant);
        Ok(self)
    }
}

impl ser::SerializeSeq for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        if let Some(frame) = self.frames.last_mut() {
            frame.field = key;
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        self.leave();
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Scan {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Done {
        if let Some(frame) = self.frames.last_mut() {
            frame.field = key;
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        self.leave();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_sql(sql: &str) -> Findings {
        let parsed = pg_query::parse(sql, 0).unwrap();
        scan(&parsed.protobuf)
    }

    #[test]
    fn finds_functions_everywhere_including_where_pg_query_nodes_does_not_look() {
        let found = scan_sql(
            "SELECT CASE WHEN x THEN nextval('s') ELSE coalesce(a(), pg_catalog.b(c())) END \
             FROM t WHERE y = ANY(ARRAY[d()]) ORDER BY e() LIMIT f()",
        );
        let mut functions = found.functions.clone();
        functions.sort();
        assert_eq!(
            functions,
            ["a", "c", "d", "e", "f", "nextval", "pg_catalog.b"]
        );
        assert!(!found.modifies_data && !found.locks_rows && !found.select_into);
    }

    #[test]
    fn finds_writes_locks_into_and_temporary_relations() {
        assert!(scan_sql("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x").modifies_data);
        assert!(scan_sql("SELECT * FROM (SELECT * FROM t FOR SHARE) s").locks_rows);
        let into = scan_sql("SELECT 1 INTO TEMP t");
        assert!(into.select_into && into.temporary);
        assert!(scan_sql("CREATE TEMPORARY VIEW v AS SELECT 1").temporary);
        assert_eq!(
            scan_sql("SELECT * FROM t JOIN u USING (id)"),
            Findings::default()
        );
    }

    #[test]
    fn string_literals_are_not_function_names() {
        let found = scan_sql("SELECT 'nextval', \"nextval\" FROM nextval");
        assert!(found.functions.is_empty(), "{:?}", found.functions);
    }
}
