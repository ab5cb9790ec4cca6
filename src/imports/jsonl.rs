//! The JSONL import format (`import_jsonl_metadata/`): resources, and lineages between them.
//!
//! Resources: one object a line with `entity_type` (database, schema, table, column,
//! dashboard_group, dashboard, chart) and a unique `databuilder_id`. Tables need `schema` and
//! `database`; columns need a parent table; dashboards need `group`; charts need `product` and a
//! parent dashboard. A parent is a `databuilder_id` of the file or one that lives outside it
//! ([`Outside`]: declared with `--external-parent` before sending; any, on the receiving side).
//! Lineages: one object a line, `from_identifier` and `to_identifier`, each one of
//! `internal_resource` (`databuilder_id`), `external_table` (`cluster`, `database`, `schema`,
//! `table`), `external_column` (the same and `column`) or `tables_from_query` (`sql`); at least
//! one side is `internal_resource`, and `to_identifier` is never `tables_from_query`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};

use serde_json::{Map, Value};

use super::{BOM_MESSAGE, Problems, fingerprint, has_bom};

/// Longest line read; a longer one is reported rather than held in memory.
const MAX_LINE: usize = 16 * 1024 * 1024;

const ENTITY_TYPES: [&str; 7] = [
    "database",
    "schema",
    "table",
    "column",
    "dashboard_group",
    "dashboard",
    "chart",
];

/// What a valid resources file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResourcesSummary {
    pub resources: u64,
    pub by_type: std::collections::BTreeMap<String, u64>,
    /// Distinct parents that are not resources of the file.
    pub outside_parents: u64,
}

/// Which ids outside the file a resource (or a lineage) may name.
#[derive(Debug, Clone, Copy)]
pub enum Outside<'a> {
    /// Only these (`--external-parent`): the sender's check, which knows what the user meant.
    Declared(&'a [String]),
    /// Any: the request names none (the API has no field for them; the files are all it
    /// carries), so the receiver can only look them up among what it already holds.
    Any,
}

/// The ids a resources file defines, for checking lineages against it.
#[derive(Debug, Default)]
pub struct Known {
    types: HashMap<u64, u8>,
    external: HashSet<u64>,
    any_outside: bool,
}

impl Known {
    fn has(&self, id: &str) -> bool {
        let key = fingerprint(&[id.as_bytes()]);
        self.any_outside || self.types.contains_key(&key) || self.external.contains(&key)
    }
}

/// Reads a JSONL file line by line, reporting framing problems (BOM, encoding, blank lines,
/// non-objects) and handing each object to `check`.
fn each_object(
    input: impl Read,
    problems: &mut Problems,
    mut check: impl FnMut(u64, &Map<String, Value>, &mut Problems),
) -> u64 {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut objects = 0u64;
    let mut blank: Option<u64> = None;
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf);
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                problems.add(line + 1, format!("cannot be read: {e}"));
                break;
            }
        }
        line += 1;
        if buf.len() > MAX_LINE {
            problems.add(
                line,
                format!("the line is longer than {} MiB", MAX_LINE >> 20),
            );
            // Skip the rest of this line.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest);
            continue;
        }
        if line == 1 && has_bom(&buf) {
            problems.add(1, BOM_MESSAGE);
            return objects;
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            blank.get_or_insert(line);
            continue;
        }
        if let Some(at) = blank.take() {
            problems.add(
                at,
                "the line is blank: JSONL has one JSON object on every line",
            );
        }
        let Ok(utf8) = std::str::from_utf8(text) else {
            problems.add(line, "not valid UTF-8 (save the file as UTF-8)");
            continue;
        };
        match serde_json::from_str::<Value>(utf8) {
            Ok(Value::Object(object)) => {
                objects += 1;
                check(line, &object, problems);
            }
            Ok(other) => problems.add(
                line,
                format!("expected a JSON object, found {}", kind(&other)),
            ),
            Err(e) => problems.add(line, format!("not valid JSON: {e}")),
        }
    }
    objects
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A required non-empty string field, or a problem.
fn text<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    line: u64,
    what: &str,
    problems: &mut Problems,
) -> Option<&'a str> {
    match object.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => {
            problems.add(line, format!("{field} is empty; {what}"));
            None
        }
        None | Some(Value::Null) => {
            problems.add(line, format!("{field} is missing; {what}"));
            None
        }
        Some(other) => {
            problems.add(
                line,
                format!("{field} must be a string, found {}", kind(other)),
            );
            None
        }
    }
}

/// `2024-01-31`, `2024-01-31T12:00:00`, with optional fractions and `Z` or `±HH:MM`.
fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10))
    {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if !(matches!(b.get(10), Some(b'T' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16))
    {
        return false;
    }
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        if !digits(17..19) {
            return false;
        }
        i = 19;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return false;
            }
        }
    }
    match &b[i..] {
        [] | [b'Z'] => true,
        [b'+' | b'-', rest @ ..] => {
            rest.len() == 5
                && rest[2] == b':'
                && [0, 1, 3, 4].iter().all(|&k| rest[k].is_ascii_digit())
        }
        _ => false,
    }
}

/// A parent reference to check once the whole file is read.
struct Reference {
    parent: u64,
    /// The type the parent must have (columns: a table; charts: a dashboard).
    needed: Option<u8>,
    line: u64,
    written: String,
}

/// What a resources file has shown so far.
struct Resources {
    known: Known,
    first_line: HashMap<u64, u64>,
    references: Vec<Reference>,
    summary: ResourcesSummary,
}

/// Checks a resources file; `outside` says which parent ids may live outside it. Ok with a
/// summary and the known ids (for lineages), or every problem found.
pub fn validate_resources(
    input: impl Read,
    outside: Outside<'_>,
) -> Result<(ResourcesSummary, Known), Problems> {
    let mut problems = Problems::default();
    let (external, any_outside): (&[String], bool) = match outside {
        Outside::Declared(ids) => (ids, false),
        Outside::Any => (&[], true),
    };
    let mut resources = Resources {
        known: Known {
            types: HashMap::new(),
            external: external
                .iter()
                .map(|e| fingerprint(&[e.as_bytes()]))
                .collect(),
            any_outside,
        },
        first_line: HashMap::new(),
        references: Vec::new(),
        summary: ResourcesSummary::default(),
    };
    let objects = each_object(input, &mut problems, |line, object, problems| {
        resources.check(line, object, problems);
    });
    resources.check_references(&mut problems);
    if objects == 0 && problems.is_empty() {
        problems.add(1, "the file holds no resources");
    }
    resources.summary.resources = objects;
    if problems.is_empty() {
        Ok((resources.summary, resources.known))
    } else {
        Err(problems)
    }
}

impl Resources {
    /// Every rule of one resource line.
    fn check(&mut self, line: u64, object: &Map<String, Value>, problems: &mut Problems) {
        let Some(entity) = entity_type(line, object, problems) else {
            return;
        };
        let type_code = ENTITY_TYPES.iter().position(|t| *t == entity).unwrap_or(0) as u8;
        *self.summary.by_type.entry(entity.to_string()).or_default() += 1;
        self.check_id(line, object, type_code, problems);
        required_by_type(entity, line, object, problems);
        self.note_parent(entity, line, object, problems);
        field_types(line, object, problems);
    }

    /// `databuilder_id`: present and unique.
    fn check_id(
        &mut self,
        line: u64,
        object: &Map<String, Value>,
        type_code: u8,
        problems: &mut Problems,
    ) {
        let Some(id) = text(
            object,
            "databuilder_id",
            line,
            "every resource needs a unique, stable id",
            problems,
        ) else {
            return;
        };
        let key = fingerprint(&[id.as_bytes()]);
        match self.first_line.get(&key) {
            Some(first) => problems.add(
                line,
                format!("databuilder_id {id:?} is used again (first on line {first})"),
            ),
            None => {
                self.first_line.insert(key, line);
                self.known.types.insert(key, type_code);
            }
        }
    }

    /// `parent_databuilder_id`: required for columns and charts; checked once the file is read.
    fn note_parent(
        &mut self,
        entity: &str,
        line: u64,
        object: &Map<String, Value>,
        problems: &mut Problems,
    ) {
        let needed_parent = match entity {
            "column" => Some(("a column needs its parent table", 2u8)),
            "chart" => Some(("a chart needs its parent dashboard", 5u8)),
            _ => None,
        };
        match (object.get("parent_databuilder_id"), needed_parent) {
            (None | Some(Value::Null), Some((what, _))) => {
                problems.add(line, format!("parent_databuilder_id is missing; {what}"))
            }
            (None | Some(Value::Null), None) => {}
            (Some(Value::String(parent)), needed) if !parent.trim().is_empty() => {
                self.references.push(Reference {
                    parent: fingerprint(&[parent.as_bytes()]),
                    needed: needed.map(|(_, t)| t),
                    line,
                    written: parent.clone(),
                });
            }
            (Some(other), _) => problems.add(
                line,
                format!(
                    "parent_databuilder_id must be a non-empty string, found {}",
                    kind(other)
                ),
            ),
        }
    }

    /// Every parent is a resource of the file (of the right type) or one allowed outside it.
    fn check_references(&mut self, problems: &mut Problems) {
        let mut outside = HashSet::new();
        for r in &self.references {
            let in_file = self.known.types.get(&r.parent);
            if in_file.is_none()
                && (self.known.any_outside || self.known.external.contains(&r.parent))
            {
                outside.insert(r.parent);
                continue;
            }
            let written = &r.written;
            match (in_file, r.needed) {
                (None, _) => problems.add(
                    r.line,
                    format!("parent_databuilder_id {written:?} is not a databuilder_id in this file (declare it with --external-parent if it lives elsewhere)"),
                ),
                (Some(found), Some(want)) if *found != want => problems.add(
                    r.line,
                    format!("parent {written:?} is a {}, not a {}", ENTITY_TYPES[*found as usize], ENTITY_TYPES[want as usize]),
                ),
                _ => {}
            }
        }
        self.summary.outside_parents = outside.len() as u64;
    }
}

/// `entity_type`: one of the documented types.
fn entity_type<'a>(
    line: u64,
    object: &'a Map<String, Value>,
    problems: &mut Problems,
) -> Option<&'a str> {
    match object.get("entity_type") {
        Some(Value::String(t)) if ENTITY_TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(Value::String(t)) => {
            problems.add(
                line,
                format!(
                    "entity_type {t:?} is not one of {}",
                    ENTITY_TYPES.join(", ")
                ),
            );
            None
        }
        Some(other) => {
            problems.add(
                line,
                format!("entity_type must be a string, found {}", kind(other)),
            );
            None
        }
        None => {
            problems.add(line, "entity_type is missing; every resource needs one");
            None
        }
    }
}

/// The fields a type needs: a table its schema and database, a dashboard its group, a chart its
/// product.
fn required_by_type(entity: &str, line: u64, object: &Map<String, Value>, problems: &mut Problems) {
    let needs: &[(&str, &str)] = match entity {
        "table" => &[
            ("schema", "a table needs its schema"),
            ("database", "a table needs its database"),
        ],
        "dashboard" => &[("group", "a dashboard needs its group")],
        "chart" => &[("product", "a chart needs its product")],
        _ => &[],
    };
    for (field, what) in needs {
        text(object, field, line, what, problems);
    }
}

/// The optional fields, each of its documented type.
fn field_types(line: u64, object: &Map<String, Value>, problems: &mut Problems) {
    if let Some(v) = object.get("sort_order")
        && !(v.is_i64() || v.is_u64() || v.is_null())
    {
        problems.add(
            line,
            format!("sort_order must be a whole number, found {}", kind(v)),
        );
    }
    for flag in ["is_pk", "hidden"] {
        if let Some(v) = object.get(flag)
            && !(v.is_boolean() || v.is_null())
        {
            problems.add(
                line,
                format!("{flag} must be true or false, found {}", kind(v)),
            );
        }
    }
    for field in [
        "title",
        "description",
        "definition",
        "native_type",
        "type",
        "product",
        "group",
    ] {
        if let Some(v) = object.get(field)
            && !(v.is_string() || v.is_null())
        {
            problems.add(line, format!("{field} must be a string, found {}", kind(v)));
        }
    }
    match object.get("owners") {
        None | Some(Value::Null) => {}
        Some(Value::Array(owners)) if owners.iter().all(Value::is_string) => {}
        Some(other) => problems.add(
            line,
            format!("owners must be a list of strings, found {}", kind(other)),
        ),
    }
    match object.get("external_updated_at") {
        None | Some(Value::Null) => {}
        Some(Value::String(when)) if is_iso8601(when) => {}
        Some(other) => problems.add(
            line,
            format!("external_updated_at must be an ISO 8601 date-time such as 2024-01-31T12:00:00Z, found {other}"),
        ),
    }
}

/// Checks a lineages file against the resources it may refer to. Ok with the count of lineages.
pub fn validate_lineages(input: impl Read, known: &Known) -> Result<u64, Problems> {
    let mut problems = Problems::default();
    let objects = each_object(input, &mut problems, |line, object, problems| {
        let mut internal = 0;
        for side in ["from_identifier", "to_identifier"] {
            let Some(Value::Object(id)) = object.get(side) else {
                problems.add(line, format!("{side} is missing or not an object"));
                return;
            };
            let ty = match id.get("type") {
                Some(Value::String(t)) => t.as_str(),
                _ => {
                    problems.add(line, format!("{side}.type is missing; use internal_resource, external_table, external_column or tables_from_query"));
                    continue;
                }
            };
            let need = |fields: &[&str], problems: &mut Problems| {
                for field in fields {
                    text(
                        id,
                        field,
                        line,
                        &format!("{side} of type {ty} needs it"),
                        problems,
                    );
                }
            };
            match ty {
                "internal_resource" => {
                    internal += 1;
                    if let Some(target) = text(id, "databuilder_id", line, &format!("{side} of type internal_resource needs it"), problems)
                        && !known.has(target)
                    {
                        problems.add(line, format!("{side}.databuilder_id {target:?} is not a resource of the resources file"));
                    }
                }
                "external_table" => need(&["cluster", "database", "schema", "table"], problems),
                "external_column" => need(&["cluster", "database", "schema", "table", "column"], problems),
                "tables_from_query" if side == "to_identifier" => {
                    problems.add(line, "to_identifier cannot be tables_from_query: a query is only ever a source");
                }
                "tables_from_query" => need(&["sql"], problems),
                other => problems.add(line, format!("{side}.type {other:?} is not internal_resource, external_table, external_column or tables_from_query")),
            }
        }
        if internal == 0 {
            problems.add(line, "neither side is an internal_resource: a lineage must touch a resource of this integration");
        }
    });
    if objects == 0 && problems.is_empty() {
        problems.add(1, "the file holds no lineages");
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCES: &str = r#"{"entity_type": "database", "databuilder_id": "db"}
{"entity_type": "schema", "databuilder_id": "db.s", "parent_databuilder_id": "db"}
{"entity_type": "column", "databuilder_id": "db.s.t.id", "parent_databuilder_id": "db.s.t", "sort_order": 1, "is_pk": true, "type": "int"}
{"entity_type": "table", "databuilder_id": "db.s.t", "parent_databuilder_id": "db.s", "schema": "s", "database": "db", "external_updated_at": "2024-01-31T12:00:00Z", "owners": ["a@b.c"]}
{"entity_type": "dashboard_group", "databuilder_id": "g"}
{"entity_type": "dashboard", "databuilder_id": "d", "group": "g", "parent_databuilder_id": "g"}
{"entity_type": "chart", "databuilder_id": "c", "product": "looker", "parent_databuilder_id": "d"}
"#;

    fn problems_of(resources: &str) -> Vec<(u64, String)> {
        match validate_resources(resources.as_bytes(), Outside::Declared(&[])) {
            Ok(_) => Vec::new(),
            Err(p) => p.listed.into_iter().map(|p| (p.line, p.message)).collect(),
        }
    }

    #[test]
    fn a_valid_file_with_children_before_parents_passes() {
        let (summary, known) =
            validate_resources(RESOURCES.as_bytes(), Outside::Declared(&[])).unwrap();
        assert_eq!(summary.resources, 7);
        assert_eq!(summary.by_type["column"], 1);
        assert!(known.has("db.s.t"));
        let crlf = RESOURCES.replace('\n', "\r\n");
        assert!(validate_resources(crlf.as_bytes(), Outside::Declared(&[])).is_ok());
    }

    #[test]
    fn each_resource_rule_names_its_line() {
        let bad = |extra: &str, needle: &str| {
            let found = problems_of(&format!("{RESOURCES}{extra}\n"));
            assert!(
                found.iter().any(|(l, m)| *l == 8 && m.contains(needle)),
                "{needle}: {found:?}"
            );
        };
        bad(
            r#"{"entity_type": "view", "databuilder_id": "v"}"#,
            "not one of",
        );
        bad(r#"{"databuilder_id": "v"}"#, "entity_type is missing");
        bad(
            r#"{"entity_type": "database"}"#,
            "databuilder_id is missing",
        );
        bad(
            r#"{"entity_type": "database", "databuilder_id": "db"}"#,
            "used again (first on line 1)",
        );
        bad(
            r#"{"entity_type": "table", "databuilder_id": "t2", "database": "db"}"#,
            "schema is missing",
        );
        bad(
            r#"{"entity_type": "column", "databuilder_id": "x"}"#,
            "parent table",
        );
        bad(
            r#"{"entity_type": "column", "databuilder_id": "x", "parent_databuilder_id": "nope"}"#,
            "not a databuilder_id in this file",
        );
        bad(
            r#"{"entity_type": "column", "databuilder_id": "x", "parent_databuilder_id": "db"}"#,
            "is a database, not a table",
        );
        bad(
            r#"{"entity_type": "dashboard", "databuilder_id": "d2"}"#,
            "group is missing",
        );
        bad(
            r#"{"entity_type": "chart", "databuilder_id": "c2", "parent_databuilder_id": "d"}"#,
            "product is missing",
        );
        bad(
            r#"{"entity_type": "chart", "databuilder_id": "c2", "product": "p", "parent_databuilder_id": "db.s.t"}"#,
            "not a dashboard",
        );
        bad(
            r#"{"entity_type": "database", "databuilder_id": "x", "external_updated_at": "yesterday"}"#,
            "ISO 8601",
        );
        bad(
            r#"{"entity_type": "column", "databuilder_id": "x", "parent_databuilder_id": "db.s.t", "sort_order": "1"}"#,
            "sort_order",
        );
        bad(
            r#"{"entity_type": "database", "databuilder_id": "x", "hidden": "no"}"#,
            "hidden must be true or false",
        );
        bad(
            r#"{"entity_type": "database", "databuilder_id": "x", "owners": "me"}"#,
            "owners",
        );
        bad(r#"["not", "an", "object"]"#, "expected a JSON object");
        bad(
            r#"{"entity_type": "database", "databuilder_id": "x""#,
            "not valid JSON",
        );
        let external = validate_resources(r#"{"entity_type": "column", "databuilder_id": "x", "parent_databuilder_id": "elsewhere"}"#.as_bytes(), Outside::Declared(&["elsewhere".into()]));
        assert!(external.is_ok());
    }

    #[test]
    fn the_receiving_side_takes_any_parent_outside_the_file_but_checks_those_inside() {
        let columns = concat!(
            r#"{"entity_type": "column", "databuilder_id": "a", "parent_databuilder_id": "shop.orders"}"#,
            "\n",
            r#"{"entity_type": "column", "databuilder_id": "b", "parent_databuilder_id": "shop.orders"}"#,
            "\n",
            r#"{"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "shop.items"}"#,
            "\n",
        );
        let (summary, known) = validate_resources(columns.as_bytes(), Outside::Any).unwrap();
        assert_eq!(summary.outside_parents, 2);
        assert!(known.has("shop.orders"));
        let undeclared = validate_resources(columns.as_bytes(), Outside::Declared(&[]));
        assert_eq!(undeclared.unwrap_err().total, 3);
        // A parent in the file is still held to its type.
        let wrong = format!(
            "{}\n{}\n",
            r#"{"entity_type": "schema", "databuilder_id": "s"}"#,
            r#"{"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "s"}"#
        );
        let problems = validate_resources(wrong.as_bytes(), Outside::Any).unwrap_err();
        assert!(
            problems.listed[0]
                .message
                .contains("is a schema, not a table")
        );
    }

    #[test]
    fn framing_problems_are_caught() {
        assert!(problems_of("")[0].1.contains("no resources"));
        assert!(problems_of("\u{feff}{}")[0].1.contains("byte-order mark"));
        let gap = format!(
            "{}\n\n{}",
            r#"{"entity_type": "database", "databuilder_id": "a"}"#,
            r#"{"entity_type": "database", "databuilder_id": "b"}"#
        );
        assert_eq!(
            problems_of(&gap),
            vec![(
                2,
                "the line is blank: JSONL has one JSON object on every line".to_string()
            )]
        );
        assert!(
            problems_of(&format!(
                "{}\n\n",
                r#"{"entity_type": "database", "databuilder_id": "a"}"#
            ))
            .is_empty(),
            "trailing blank lines are fine"
        );
        let latin1 = b"{\"entity_type\": \"database\", \"databuilder_id\": \"caf\xe9\"}\n";
        let found = validate_resources(&latin1[..], Outside::Declared(&[])).unwrap_err();
        assert!(found.listed[0].message.contains("UTF-8"));
    }

    #[test]
    fn lineage_rules() {
        let (_, known) = validate_resources(RESOURCES.as_bytes(), Outside::Declared(&[])).unwrap();
        let check = |line: &str| {
            validate_lineages(format!("{line}\n").as_bytes(), &known)
                .map_err(|p| p.listed[0].message.clone())
        };
        let internal = r#"{"type": "internal_resource", "databuilder_id": "db.s.t"}"#;
        let table = r#"{"type": "external_table", "cluster": "c", "database": "d", "schema": "s", "table": "t"}"#;
        let query = r#"{"type": "tables_from_query", "sql": "select 1"}"#;
        assert_eq!(
            check(&format!(
                r#"{{"from_identifier": {table}, "to_identifier": {internal}}}"#
            )),
            Ok(1)
        );
        assert_eq!(
            check(&format!(
                r#"{{"from_identifier": {query}, "to_identifier": {internal}}}"#
            )),
            Ok(1)
        );
        assert!(
            check(&format!(
                r#"{{"from_identifier": {internal}, "to_identifier": {query}}}"#
            ))
            .unwrap_err()
            .contains("tables_from_query")
        );
        assert!(
            check(&format!(
                r#"{{"from_identifier": {table}, "to_identifier": {table}}}"#
            ))
            .unwrap_err()
            .contains("neither side")
        );
        let unknown = r#"{"type": "internal_resource", "databuilder_id": "ghost"}"#;
        assert!(
            check(&format!(
                r#"{{"from_identifier": {table}, "to_identifier": {unknown}}}"#
            ))
            .unwrap_err()
            .contains("not a resource")
        );
        let column = r#"{"type": "external_column", "cluster": "c", "database": "d", "schema": "s", "table": "t"}"#;
        assert!(
            check(&format!(
                r#"{{"from_identifier": {column}, "to_identifier": {internal}}}"#
            ))
            .unwrap_err()
            .contains("column is missing")
        );
    }

    #[test]
    fn dates_are_iso8601() {
        for good in [
            "2024-01-31",
            "2024-01-31T12:00",
            "2024-01-31T12:00:00Z",
            "2024-01-31 12:00:00.123+02:00",
        ] {
            assert!(is_iso8601(good), "{good}");
        }
        for bad in [
            "31/01/2024",
            "2024-1-31",
            "2024-01-31T12",
            "2024-01-31T12:00:00+2",
            "now",
        ] {
            assert!(!is_iso8601(bad), "{bad}");
        }
    }
}
