//! Rows passed to a statement as one JSON array parameter (`[[a, b, …], …]`), and the SQL
//! that reads them in each backend's dialect: `json_each` on SQLite, `jsonb_array_elements`
//! on PostgreSQL (where each element's text is cast to its column's type). One statement
//! writes any number of rows.
//!
//! A layout ([`JsonRows`]) names a table's columns once, in the order the Rust side writes
//! each row's array; every statement that reads those rows is generated from it — on both
//! backends, and (compared in a test) in SQLite's `order_writes` trigger, migration 0012.
//! Texts are built once per dialect ([`PerDialect`]): sqlx caches prepared statements by
//! their text.
//!
//! What it must never do: decide what is written. Callers bind the values.

use std::sync::OnceLock;

/// The SQL dialect a statement is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// How an array element is read (SQLite's `->>` already answers the JSON value's type;
/// PostgreSQL's answers text, cast to this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlType {
    Text,
    BigInt,
    Int,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    /// The next element of each row's array.
    Element(SqlType),
    /// A value the statement gives every row (a parameter, a constant), in order.
    Given,
}

/// One column of a layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    name: &'static str,
    source: Source,
}

/// A column read from the row's array (its position among the element columns is its
/// index in the array).
pub(crate) const fn element(name: &'static str, ty: SqlType) -> Column {
    Column { name, source: Source::Element(ty) }
}

/// A column whose value the statement gives (the same for every row).
pub(crate) const fn given(name: &'static str) -> Column {
    Column { name, source: Source::Given }
}

/// Whether the rows must be inserted in the array's order (events: their `seq` follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOrder {
    Any,
    AsGiven,
}

/// A table's columns as rows of a JSON array parameter carry them.
#[derive(Debug)]
pub(crate) struct JsonRows {
    pub(crate) table: &'static str,
    pub(crate) columns: &'static [Column],
}

impl JsonRows {
    /// How many values each row's array holds.
    #[cfg(test)]
    pub(crate) fn elements(&self) -> usize {
        self.columns.iter().filter(|c| matches!(c.source, Source::Element(_))).count()
    }

    /// `INSERT INTO table (columns) SELECT … FROM <rows of array>`: `array` is the JSON
    /// array (a parameter such as `$2`, or `NEW.lines` in a trigger), `given` the values of
    /// the [`given`] columns, in order.
    pub(crate) fn insert(&self, dialect: Dialect, array: &str, given: &[&str], order: RowOrder) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        let mut given = given.iter();
        let mut elements = 0..;
        let values: Vec<String> = self
            .columns
            .iter()
            .map(|c| match c.source {
                Source::Given => {
                    let value = given.next();
                    debug_assert!(value.is_some(), "{}.{}: no value given", self.table, c.name);
                    value.map_or_else(|| "NULL".to_owned(), |v| (*v).to_owned())
                }
                Source::Element(ty) => read(dialect, elements.next().unwrap_or_default(), ty),
            })
            .collect();
        debug_assert!(given.next().is_none(), "{}: more values given than columns", self.table);
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            self.table,
            names.join(", "),
            values.join(", "),
            source(dialect, array, order)
        )
    }

    /// [`JsonRows::insert`] followed by an upsert clause (`ON CONFLICT …`). SQLite needs a
    /// `WHERE` between a `SELECT` and `ON CONFLICT` (else it parses `ON` as a join's).
    pub(crate) fn upsert(&self, dialect: Dialect, array: &str, given: &[&str], conflict: &str) -> String {
        let insert = self.insert(dialect, array, given, RowOrder::Any);
        match dialect {
            Dialect::Sqlite => format!("{insert} WHERE true {conflict}"),
            Dialect::Postgres => format!("{insert} {conflict}"),
        }
    }
}

/// Element `index` of a row, read as `ty`.
fn read(dialect: Dialect, index: usize, ty: SqlType) -> String {
    match (dialect, ty) {
        (Dialect::Sqlite, _) => format!("v.value ->> {index}"),
        (Dialect::Postgres, SqlType::Text) => format!("v ->> {index}"),
        (Dialect::Postgres, SqlType::BigInt) => format!("(v ->> {index})::bigint"),
        (Dialect::Postgres, SqlType::Int) => format!("(v ->> {index})::int"),
    }
}

/// The rows of `array`, each as `v`.
fn source(dialect: Dialect, array: &str, order: RowOrder) -> String {
    match (dialect, order) {
        (Dialect::Sqlite, RowOrder::Any) => format!("json_each({array}) AS v"),
        (Dialect::Sqlite, RowOrder::AsGiven) => format!("json_each({array}) AS v ORDER BY v.key"),
        (Dialect::Postgres, RowOrder::Any) => format!("jsonb_array_elements({array}::jsonb) AS v"),
        (Dialect::Postgres, RowOrder::AsGiven) => {
            format!("jsonb_array_elements({array}::jsonb) WITH ORDINALITY AS t (v, n) ORDER BY n")
        }
    }
}

impl Dialect {
    /// `IN (…)` over the values of a JSON array of `ty` bound as parameter `$n`.
    pub(crate) fn in_array(self, n: u8, ty: SqlType) -> String {
        match (self, ty) {
            (Dialect::Sqlite, _) => format!("IN (SELECT value FROM json_each(${n}))"),
            (Dialect::Postgres, SqlType::Text) => format!("IN (SELECT jsonb_array_elements_text(${n}::jsonb))"),
            (Dialect::Postgres, SqlType::BigInt) => {
                format!("IN (SELECT (jsonb_array_elements_text(${n}::jsonb))::bigint)")
            }
            (Dialect::Postgres, SqlType::Int) => format!("IN (SELECT (jsonb_array_elements_text(${n}::jsonb))::int)"),
        }
    }
}

/// A statement's text in each dialect, built on first use and kept (a `static`).
pub(crate) struct PerDialect {
    build: fn(Dialect) -> String,
    texts: OnceLock<[String; 2]>,
}

impl PerDialect {
    pub(crate) const fn new(build: fn(Dialect) -> String) -> PerDialect {
        PerDialect { build, texts: OnceLock::new() }
    }

    pub(crate) fn get(&self, dialect: Dialect) -> &str {
        let [sqlite, postgres] =
            self.texts.get_or_init(|| [(self.build)(Dialect::Sqlite), (self.build)(Dialect::Postgres)]);
        match dialect {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

impl crate::Store {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            crate::Store::Sqlite(_) => Dialect::Sqlite,
            crate::Store::Postgres(_) => Dialect::Postgres,
        }
    }
}

impl crate::Tx {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            crate::Tx::Sqlite(_) => Dialect::Sqlite,
            crate::Tx::Postgres(_) => Dialect::Postgres,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: JsonRows = JsonRows {
        table: "t",
        columns: &[element("a", SqlType::Text), given("owner"), element("b", SqlType::BigInt), given("at")],
    };

    #[test]
    fn elements_are_numbered_in_order_and_given_values_fill_the_rest() {
        assert_eq!(
            ROWS.insert(Dialect::Sqlite, "$2", &["$1", "7"], RowOrder::Any),
            "INSERT INTO t (a, owner, b, at) SELECT v.value ->> 0, $1, v.value ->> 1, 7 FROM json_each($2) AS v"
        );
        assert_eq!(
            ROWS.insert(Dialect::Postgres, "$2", &["$1", "7"], RowOrder::AsGiven),
            "INSERT INTO t (a, owner, b, at) SELECT v ->> 0, $1, (v ->> 1)::bigint, 7 \
             FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t (v, n) ORDER BY n"
        );
        assert_eq!(ROWS.elements(), 2);
    }
}
