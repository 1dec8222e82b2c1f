//! The two migration folders build the same schema: the same tables, the same columns
//! with the same kind of type and the same nullability, the same keys (primary, unique,
//! foreign), the same named indexes, and the same values allowed by each
//! `CHECK (column IN (…))` — read back from each database's catalog after migrating, so a
//! migration written for one backend and forgotten (or mistyped) for the other shows here.
//! The differences that are meant are listed in [`ALLOWED`], each with its reason.

use std::collections::{BTreeMap, BTreeSet};

use allot_core::{FoKind, FoStatus, NodeStatus, NodeType};
use sqlx::{PgPool, SqlitePool};

use crate::conformance;
use crate::harness::{self, Backend, Db};

conformance!(checked_status_values_are_the_cores_closed_sets);

/// What may differ, and why. `(backend that has it, what)`.
const ALLOWED: &[(Backend, Thing<'static>, &str)] = &[
    // SQLite places an order through one INSERT into this view, whose INSTEAD OF trigger
    // writes the rows (migration 0012); PostgreSQL uses data-modifying CTEs instead.
    (Backend::Sqlite, Thing::View("order_writes"), "placement's one-statement write"),
    (Backend::Sqlite, Thing::Trigger("order_writes_insert"), "placement's one-statement write"),
    // PostgreSQL's one-statement placement raises AL001 through it (migration 0013).
    (Backend::Postgres, Thing::Function("allot_all_taken"), "one-statement placement"),
    // Only PostgreSQL can commit a smaller `seq` after a larger one; readers order its
    // events by writing transaction (see `EventCursor`), and page by that index.
    (Backend::Postgres, Thing::Column("events", "tx_id"), "event order by transaction"),
    (Backend::Postgres, Thing::Index("events_by_tx"), "event order by transaction"),
    // Kept on PostgreSQL only: its planner can start a rare SKU's order listing from it
    // (migration 0014).
    (Backend::Postgres, Thing::Index("order_lines_by_sku"), "listing by a rare SKU"),
    // SQLite has no boolean type: flags are integers held to 0 and 1 by a CHECK.
    (Backend::Sqlite, Thing::Check("items", "hazmat"), "boolean as 0/1"),
    (Backend::Sqlite, Thing::Check("items", "ship_alone"), "boolean as 0/1"),
    (Backend::Sqlite, Thing::Type("items", "hazmat"), "boolean as 0/1"),
    (Backend::Sqlite, Thing::Type("items", "ship_alone"), "boolean as 0/1"),
];

/// One thing a schema has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thing<'a> {
    Table(&'a str),
    View(&'a str),
    Trigger(&'a str),
    Function(&'a str),
    Index(&'a str),
    Column(&'a str, &'a str),
    /// A column's kind of type differs (beyond spelling: `BIGINT` and `INTEGER` agree).
    Type(&'a str, &'a str),
    Check(&'a str, &'a str),
}

/// A column as both backends can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// integer, real, text, boolean, …: the type with its spelling taken out.
    kind: String,
    nullable: bool,
}

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, BTreeMap<String, Column>>,
    views: BTreeSet<String>,
    triggers: BTreeSet<String>,
    functions: BTreeSet<String>,
    /// Indexes created by name (not those behind a primary key or unique constraint).
    indexes: BTreeSet<String>,
    /// (table, column) → the values `CHECK (column IN (…))` allows.
    checks: BTreeMap<(String, String), BTreeSet<String>>,
    /// Per table: its primary key, unique constraints and foreign keys, as text
    /// (`primary key (a,b)`, `unique (a)`, `foreign key (a) references t (b)`).
    keys: BTreeMap<String, BTreeSet<String>>,
}

/// sqlx's own bookkeeping, not Allot's schema.
const SQLX_TABLE: &str = "_sqlx_migrations";

fn kind_of(declared: &str) -> String {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "int" | "bigint" | "smallint" | "bigserial" => "integer".to_owned(),
        "real" | "double precision" => "real".to_owned(),
        "text" => "text".to_owned(),
        other => other.to_owned(),
    }
}

async fn sqlite_schema(pool: &SqlitePool) -> Schema {
    let mut schema = Schema::default();
    let objects: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (kind, name, sql) in objects {
        match kind.as_str() {
            "table" => {
                let sql = sql.unwrap_or_default();
                for (column, values) in sqlite_in_lists(&sql) {
                    schema.checks.insert((name.clone(), column), values);
                }
                schema.tables.insert(name.clone(), sqlite_columns(pool, &name).await);
                schema.keys.insert(name.clone(), sqlite_keys(pool, &name).await);
            }
            "view" => drop(schema.views.insert(name)),
            "trigger" => drop(schema.triggers.insert(name)),
            // Indexes SQLite made for a key have no SQL of their own.
            "index" if sql.is_some() => drop(schema.indexes.insert(name)),
            _ => {}
        }
    }
    schema
}

async fn sqlite_columns(pool: &SqlitePool, table: &str) -> BTreeMap<String, Column> {
    let (without_rowid, strict): (i64, i64) =
        sqlx::query_as("SELECT wr, strict FROM pragma_table_list WHERE schema = 'main' AND name = $1")
            .bind(table)
            .fetch_one(pool)
            .await
            .unwrap();
    let columns: Vec<(String, String, i64, i64)> =
        sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap();
    let key_columns = columns.iter().filter(|c| c.3 > 0).count();
    columns
        .into_iter()
        .map(|(name, declared, not_null, pk)| {
            // Key columns cannot hold NULL in STRICT and WITHOUT ROWID tables, nor as the
            // rowid's alias (a lone INTEGER PRIMARY KEY); elsewhere SQLite lets them.
            let rowid_alias = pk > 0 && key_columns == 1 && declared.eq_ignore_ascii_case("integer");
            let key_not_null = pk > 0 && (strict == 1 || without_rowid == 1 || rowid_alias);
            (name, Column { kind: kind_of(&declared), nullable: not_null == 0 && !key_not_null })
        })
        .collect()
}

async fn sqlite_keys(pool: &SqlitePool, table: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let primary: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk")
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
    if !primary.is_empty() {
        keys.insert(format!("primary key ({})", primary.join(",")));
    }
    let unique: Vec<String> = sqlx::query_scalar(
        "SELECT (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(l.name) ORDER BY seqno)) \
         FROM pragma_index_list($1) AS l WHERE l.origin = 'u'",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    keys.extend(unique.into_iter().map(|columns| format!("unique ({columns})")));
    let foreign: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT \"table\", group_concat(\"from\", ','), group_concat(\"to\", ',') \
         FROM (SELECT * FROM pragma_foreign_key_list($1) ORDER BY id, seq) GROUP BY id",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    keys.extend(
        foreign.into_iter().map(|(to, from, columns)| format!("foreign key ({from}) references {to} ({columns})")),
    );
    keys
}

async fn postgres_schema(pool: &PgPool) -> Schema {
    let mut schema = Schema::default();
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text \
         FROM information_schema.columns c JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name <> $1",
    )
    .bind(SQLX_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, column, declared, nullable) in columns {
        let column_kind = Column { kind: kind_of(&declared), nullable: nullable == "YES" };
        schema.tables.entry(table).or_default().insert(column, column_kind);
    }
    let names = |sql: &'static str| async move {
        sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await.unwrap().into_iter().collect::<BTreeSet<_>>()
    };
    schema.views =
        names("SELECT table_name::text FROM information_schema.views WHERE table_schema = current_schema()").await;
    schema.triggers = names(
        "SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal",
    )
    .await;
    schema.functions =
        names("SELECT proname::text FROM pg_proc WHERE pronamespace = current_schema()::regnamespace").await;
    schema.indexes = names(
        "SELECT i.relname::text FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         WHERE i.relnamespace = current_schema()::regnamespace AND t.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
    )
    .await;
    let checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.relname::text, pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid \
         WHERE k.contype = 'c' AND k.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, definition) in checks {
        for (column, values) in postgres_any_lists(&definition) {
            schema.checks.insert((table.clone(), column), values);
        }
    }
    let keys: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT r.relname::text, k.contype::text, \
           (SELECT string_agg(a.attname::text, ',' ORDER BY u.n) FROM unnest(k.conkey) WITH ORDINALITY AS u (attnum, n) \
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum), \
           COALESCE(f.relname::text, ''), \
           COALESCE((SELECT string_agg(a.attname::text, ',' ORDER BY u.n) \
              FROM unnest(k.confkey) WITH ORDINALITY AS u (attnum, n) \
              JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum), '') \
         FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid LEFT JOIN pg_class f ON f.oid = k.confrelid \
         WHERE k.connamespace = current_schema()::regnamespace AND k.contype IN ('p', 'u', 'f') AND r.relname <> $1",
    )
    .bind(SQLX_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, kind, columns, to, to_columns) in keys {
        let key = match kind.as_str() {
            "p" => format!("primary key ({columns})"),
            "u" => format!("unique ({columns})"),
            _ => format!("foreign key ({columns}) references {to} ({to_columns})"),
        };
        schema.keys.entry(table).or_default().insert(key);
    }
    schema
}

/// A token of SQL text, as far as these checks need one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Punct(char),
}

fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' => {
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    text.push(c);
                }
                out.push(Token::Text(text));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '"' => {
                let mut word = String::from(c).replace('"', "");
                while let Some(&n) = chars.peek().filter(|n| n.is_ascii_alphanumeric() || **n == '_' || **n == '"') {
                    chars.next();
                    if n != '"' {
                        word.push(n);
                    }
                }
                out.push(Token::Word(word));
            }
            c if c.is_ascii_digit() => {
                let mut number = String::from(c);
                while let Some(&n) = chars.peek().filter(|n| n.is_ascii_digit()) {
                    chars.next();
                    number.push(n);
                }
                out.push(Token::Number(number));
            }
            c if c.is_whitespace() => {}
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

fn is_word(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// `column IN ('a', 'b', …)` (or numbers) in SQLite's stored table text.
fn sqlite_in_lists(sql: &str) -> Vec<(String, BTreeSet<String>)> {
    let t = tokens(sql);
    let mut out = Vec::new();
    for i in 1..t.len() {
        let Token::Word(column) = &t[i - 1] else { continue };
        if !is_word(t.get(i), "in") || t.get(i + 1) != Some(&Token::Punct('(')) {
            continue;
        }
        let mut values = BTreeSet::new();
        for token in &t[i + 2..] {
            match token {
                Token::Text(v) | Token::Number(v) => drop(values.insert(v.clone())),
                Token::Punct(')') => break,
                _ => {}
            }
        }
        out.push((column.clone(), values));
    }
    out
}

/// PostgreSQL's rendering of the same: `(column = ANY (ARRAY['a'::text, 'b'::text]))`.
fn postgres_any_lists(definition: &str) -> Vec<(String, BTreeSet<String>)> {
    let t = tokens(definition);
    let mut out = Vec::new();
    for i in 1..t.len() {
        let Token::Word(column) = &t[i - 1] else { continue };
        let shape = t.get(i) == Some(&Token::Punct('='))
            && is_word(t.get(i + 1), "any")
            && t.get(i + 2) == Some(&Token::Punct('('))
            && is_word(t.get(i + 3), "array")
            && t.get(i + 4) == Some(&Token::Punct('['));
        if !shape {
            continue;
        }
        let mut values = BTreeSet::new();
        for token in &t[i + 5..] {
            match token {
                Token::Text(v) | Token::Number(v) => drop(values.insert(v.clone())),
                Token::Punct(']') => break,
                _ => {}
            }
        }
        out.push((column.clone(), values));
    }
    out
}

fn allowed(backend: Backend, thing: Thing<'_>) -> bool {
    ALLOWED.iter().any(|(b, t, _)| *b == backend && *t == thing)
}

/// Names in one set and not the other, less those allowed to be there only.
fn one_sided(
    what: &str,
    sqlite: &BTreeSet<String>,
    postgres: &BTreeSet<String>,
    kind: impl Fn(&str) -> Thing<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (backend, mine, other) in [(Backend::Sqlite, sqlite, postgres), (Backend::Postgres, postgres, sqlite)] {
        for name in mine.difference(other) {
            if !allowed(backend, kind(name)) {
                out.push(format!("{what} {name} only on {backend:?}"));
            }
        }
    }
    out
}

/// Every difference between the two schemas that the allow-list does not explain.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let names = |s: &Schema| s.tables.keys().cloned().collect::<BTreeSet<_>>();
    let mut out = one_sided("table", &names(sqlite), &names(postgres), |n| Thing::Table(n));
    out.extend(one_sided("view", &sqlite.views, &postgres.views, |n| Thing::View(n)));
    out.extend(one_sided("trigger", &sqlite.triggers, &postgres.triggers, |n| Thing::Trigger(n)));
    out.extend(one_sided("function", &sqlite.functions, &postgres.functions, |n| Thing::Function(n)));
    out.extend(one_sided("index", &sqlite.indexes, &postgres.indexes, |n| Thing::Index(n)));
    for (table, lite) in &sqlite.tables {
        let Some(pg) = postgres.tables.get(table) else { continue };
        for (backend, mine, other) in [(Backend::Sqlite, lite, pg), (Backend::Postgres, pg, lite)] {
            for column in mine.keys().filter(|c| !other.contains_key(*c)) {
                if !allowed(backend, Thing::Column(table, column)) {
                    out.push(format!("column {table}.{column} only on {backend:?}"));
                }
            }
        }
        for (column, l) in lite {
            let Some(p) = pg.get(column) else { continue };
            if l.nullable != p.nullable {
                out.push(format!("{table}.{column}: nullable on SQLite {}, on PostgreSQL {}", l.nullable, p.nullable));
            }
            if l.kind != p.kind && !allowed(Backend::Sqlite, Thing::Type(table, column)) {
                out.push(format!("{table}.{column}: {} on SQLite, {} on PostgreSQL", l.kind, p.kind));
            }
        }
        let none = BTreeSet::new();
        let (lite_keys, pg_keys) = (sqlite.keys.get(table).unwrap_or(&none), postgres.keys.get(table).unwrap_or(&none));
        for (backend, mine, other) in [(Backend::Sqlite, lite_keys, pg_keys), (Backend::Postgres, pg_keys, lite_keys)] {
            for key in mine.difference(other) {
                out.push(format!("{table}: {key} only on {backend:?}"));
            }
        }
    }
    let keys: BTreeSet<&(String, String)> = sqlite.checks.keys().chain(postgres.checks.keys()).collect();
    for key @ (table, column) in keys {
        match (sqlite.checks.get(key), postgres.checks.get(key)) {
            (Some(l), Some(p)) if l != p => {
                out.push(format!("{table}.{column} allows {l:?} on SQLite, {p:?} on PostgreSQL"));
            }
            (Some(_), None) if !allowed(Backend::Sqlite, Thing::Check(table, column)) => {
                out.push(format!("{table}.{column} has a CHECK (… IN …) on SQLite only"));
            }
            (None, Some(_)) if !allowed(Backend::Postgres, Thing::Check(table, column)) => {
                out.push(format!("{table}.{column} has a CHECK (… IN …) on PostgreSQL only"));
            }
            _ => {}
        }
    }
    out
}

async fn schema_of(db: &Db) -> Schema {
    match db.backend() {
        Backend::Sqlite => sqlite_schema(db.sqlite_pool().unwrap()).await,
        Backend::Postgres => postgres_schema(db.postgres_pool().unwrap()).await,
    }
}

#[tokio::test]
async fn both_backends_migrate_to_the_same_schema() {
    let (sqlite, sqlite_place) = harness::open(Backend::Sqlite, "schema_sqlite").await.expect("SQLite always runs");
    let lite = schema_of(&sqlite).await;
    sqlite.store.close().await;
    harness::remove(sqlite_place).await;
    let Some((postgres, postgres_place)) = harness::open(Backend::Postgres, "schema_postgres").await else { return };
    let pg = schema_of(&postgres).await;
    postgres.store.close().await;
    harness::remove(postgres_place).await;

    // The readers found something to compare (a reader that silently finds nothing would
    // make every comparison pass).
    for (backend, s) in [("SQLite", &lite), ("PostgreSQL", &pg)] {
        assert!(s.tables.len() >= 25, "{backend}: {:?}", s.tables.keys());
        assert!(s.checks.len() >= 12, "{backend}: {:?}", s.checks);
        assert!(s.indexes.len() >= 20, "{backend}: {:?}", s.indexes);
        assert!(s.tables["orders"].len() == 12, "{backend}: {:?}", s.tables["orders"]);
        assert!(s.keys.values().map(BTreeSet::len).sum::<usize>() >= 50, "{backend}: {:?}", s.keys);
    }
    let found = differences(&lite, &pg);
    assert!(found.is_empty(), "the schemas differ:\n{}", found.join("\n"));
    // Every allowance is still needed: a difference fixed leaves no stale excuse behind.
    let stale: Vec<&(Backend, Thing, &str)> =
        ALLOWED.iter().filter(|(backend, thing, _)| !still_differs(&lite, &pg, *backend, *thing)).collect();
    assert!(stale.is_empty(), "allowed differences that no longer exist: {stale:?}");
}

/// Whether `thing` is on `backend` and not on the other (or, for a type, differs).
fn still_differs(sqlite: &Schema, postgres: &Schema, backend: Backend, thing: Thing<'_>) -> bool {
    let (mine, other) = match backend {
        Backend::Sqlite => (sqlite, postgres),
        Backend::Postgres => (postgres, sqlite),
    };
    let has = |s: &Schema, thing: Thing<'_>| match thing {
        Thing::Table(n) => s.tables.contains_key(n),
        Thing::View(n) => s.views.contains(n),
        Thing::Trigger(n) => s.triggers.contains(n),
        Thing::Function(n) => s.functions.contains(n),
        Thing::Index(n) => s.indexes.contains(n),
        Thing::Column(t, c) => s.tables.get(t).is_some_and(|cs| cs.contains_key(c)),
        Thing::Check(t, c) => s.checks.contains_key(&(t.to_owned(), c.to_owned())),
        Thing::Type(..) => true,
    };
    match thing {
        Thing::Type(t, c) => sqlite.tables[t][c].kind != postgres.tables[t][c].kind,
        _ => has(mine, thing) && !has(other, thing),
    }
}

/// The statuses the database admits are exactly the core's enums (rule 5: one closed
/// set, one spelling, mirrored by a `CHECK`).
async fn checked_status_values_are_the_cores_closed_sets(db: &Db) {
    let schema = schema_of(db).await;
    let set = |values: Vec<&str>| values.into_iter().map(str::to_owned).collect::<BTreeSet<_>>();
    let cases = [
        ("nodes", "node_type", set(NodeType::ALL.iter().map(|v| v.as_str()).collect())),
        ("nodes", "status", set(NodeStatus::ALL.iter().map(|v| v.as_str()).collect())),
        ("fulfillment_orders", "status", set(FoStatus::ALL.iter().map(|v| v.as_str()).collect())),
        ("fulfillment_orders", "kind", set([FoKind::Ship, FoKind::Pickup].iter().map(|v| v.as_str()).collect())),
    ];
    for (table, column, core) in cases {
        let checked = schema.checks.get(&(table.to_owned(), column.to_owned()));
        assert_eq!(checked, Some(&core), "{table}.{column}");
    }
}

#[test]
fn in_lists_are_read_from_both_renderings() {
    let sqlite = "CREATE TABLE t (\n  kind TEXT NOT NULL CHECK (kind IN ('a','b''c',\n 'd')), -- not ('x')\n  flag INTEGER CHECK (flag IN (0, 1))\n)";
    let expected = vec![
        ("kind".to_owned(), ["a", "b'c", "d"].map(str::to_owned).into_iter().collect()),
        ("flag".to_owned(), ["0", "1"].map(str::to_owned).into_iter().collect()),
    ];
    assert_eq!(sqlite_in_lists(sqlite), expected);
    let postgres = "CHECK ((kind = ANY (ARRAY['a'::text, 'b''c'::text, 'd'::text])))";
    assert_eq!(postgres_any_lists(postgres), expected[..1]);
    assert!(postgres_any_lists("CHECK ((quantity >= 0))").is_empty());
}
