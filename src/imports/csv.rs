//! The CSV import format (`import_metadata/`): one row per column of a table.
//!
//! Columns: `col_name`, `database`, `schema`, `name` (required); `col_description`, `col_type`,
//! `sort_order` (integer, 0 = alphabetical), `description`, `is_view` (`true`/`false`),
//! `last_updated_time` (Unix seconds). `database`, `schema`, `name` and `col_name` take no
//! periods. The rows of one table repeat the same table fields (`description`, `is_view`,
//! `last_updated_time`).

use std::collections::HashMap;
use std::io::Read;

use super::{BOM_MESSAGE, Problems, fingerprint, has_bom};

const REQUIRED: [&str; 4] = ["col_name", "database", "schema", "name"];
const OPTIONAL: [&str; 6] = [
    "col_description",
    "col_type",
    "sort_order",
    "description",
    "is_view",
    "last_updated_time",
];
const NO_PERIODS: [&str; 4] = ["database", "schema", "name", "col_name"];
const TABLE_FIELDS: [&str; 3] = ["description", "is_view", "last_updated_time"];

/// What a valid file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CsvSummary {
    /// Rows after the header: one per column.
    pub rows: u64,
    pub tables: u64,
    /// Header columns that are not part of the format (Secoda ignores them).
    pub unknown_columns: Vec<String>,
}

/// Checks a CSV import file in one pass. Ok with a summary, or every problem found.
pub fn validate(input: impl Read) -> Result<CsvSummary, Problems> {
    let mut problems = Problems::default();
    let Some(input) = without_bom(input, &mut problems) else {
        return Err(problems);
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let Some(names) = header(&mut reader, &mut problems) else {
        return Err(problems);
    };
    let unknown_columns: Vec<String> = names
        .iter()
        .filter(|n| !REQUIRED.contains(&n.as_str()) && !OPTIONAL.contains(&n.as_str()))
        .cloned()
        .collect();
    let mut tables = Tables::default();
    let mut record = ::csv::ByteRecord::new();
    let mut rows = 0u64;
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(line, |p| p.line());
                problems.add(at, describe(&e));
                if matches!(e.kind(), ::csv::ErrorKind::UnequalLengths { .. }) {
                    continue;
                }
                break;
            }
        }
        rows += 1;
        let line = record.position().map_or(line, |p| p.line());
        if let Some(row) = Row::read(&names, &record, line, &mut problems) {
            row.check(&mut problems);
            tables.check(&row, &mut problems);
        }
    }
    if rows == 0 && problems.is_empty() {
        problems.add(2, "the file has a header but no rows");
    }
    if problems.is_empty() {
        Ok(CsvSummary {
            rows,
            tables: tables.0.len() as u64,
            unknown_columns,
        })
    } else {
        Err(problems)
    }
}

/// The input, refused when it is empty or starts with a byte-order mark.
fn without_bom<R: Read>(
    mut input: R,
    problems: &mut Problems,
) -> Option<std::io::Chain<std::io::Cursor<Vec<u8>>, R>> {
    let mut head = [0u8; 3];
    let mut got = 0;
    while got < 3 {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                problems.add(1, format!("cannot be read: {e}"));
                return None;
            }
        }
    }
    if got == 0 {
        problems.add(
            1,
            "the file is empty: a header line naming the columns is required",
        );
        return None;
    }
    if has_bom(&head[..got]) {
        problems.add(1, BOM_MESSAGE);
        return None;
    }
    Some(std::io::Cursor::new(head[..got].to_vec()).chain(input))
}

/// The header's column names, when it has every required column once.
fn header(reader: &mut ::csv::Reader<impl Read>, problems: &mut Problems) -> Option<Vec<String>> {
    let header = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            problems.add(1, describe(&e));
            return None;
        }
    };
    let names: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    for required in REQUIRED {
        if !names.iter().any(|n| n == required) {
            problems.add(
                1,
                format!(
                    "the header lacks the required column {required:?} (it has {})",
                    names.join(", ")
                ),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for name in &names {
        if !seen.insert(name) {
            problems.add(
                1,
                format!("the column {name:?} appears twice in the header"),
            );
        }
    }
    problems.is_empty().then_some(names)
}

/// One row, its fields by column name.
struct Row<'a> {
    names: &'a [String],
    fields: Vec<&'a str>,
    line: u64,
}

impl<'a> Row<'a> {
    /// The row's fields as text; None (with a problem) when one is not UTF-8.
    fn read(
        names: &'a [String],
        record: &'a ::csv::ByteRecord,
        line: u64,
        problems: &mut Problems,
    ) -> Option<Row<'a>> {
        let mut fields = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(text) => fields.push(text),
                Err(_) => {
                    problems.add(
                        line,
                        format!(
                            "the {:?} value is not valid UTF-8 (save the file as UTF-8)",
                            names[i]
                        ),
                    );
                    return None;
                }
            }
        }
        Some(Row {
            names,
            fields,
            line,
        })
    }

    fn value(&self, name: &str) -> &str {
        self.names
            .iter()
            .position(|n| n == name)
            .map_or("", |i| self.fields[i].trim())
    }

    /// The rules of one row on its own.
    fn check(&self, problems: &mut Problems) {
        let line = self.line;
        for required in REQUIRED {
            if self.value(required).is_empty() {
                problems.add(line, format!("{required} is empty; it is required"));
            }
        }
        for name in NO_PERIODS {
            if self.value(name).contains('.') {
                problems.add(
                    line,
                    format!(
                        "{name} {:?} contains a period, which Secoda does not allow",
                        self.value(name)
                    ),
                );
            }
        }
        let sort_order = self.value("sort_order");
        if !sort_order.is_empty() && sort_order.parse::<i64>().is_err() {
            problems.add(
                line,
                format!("sort_order must be a whole number, found {sort_order:?}"),
            );
        }
        let updated = self.value("last_updated_time");
        if !updated.is_empty() && updated.parse::<u64>().is_err() {
            problems.add(
                line,
                format!(
                    "last_updated_time must be Unix seconds (a whole number), found {updated:?}"
                ),
            );
        }
        let is_view = self.value("is_view");
        if !matches!(is_view, "" | "true" | "false") {
            problems.add(
                line,
                format!("is_view must be true or false, found {is_view:?}"),
            );
        }
    }
}

/// Per table: the fingerprints of its table fields and the line that set them.
#[derive(Default)]
struct Tables(HashMap<u64, ([u64; 3], u64)>);

impl Tables {
    /// The rows of one table must repeat the same table fields.
    fn check(&mut self, row: &Row<'_>, problems: &mut Problems) {
        let key = fingerprint(&[
            row.value("database").as_bytes(),
            row.value("schema").as_bytes(),
            row.value("name").as_bytes(),
        ]);
        let now = TABLE_FIELDS.map(|f| fingerprint(&[row.value(f).as_bytes()]));
        let Some((first, first_line)) = self.0.get(&key) else {
            self.0.insert(key, (now, row.line));
            return;
        };
        for (i, field) in TABLE_FIELDS.iter().enumerate() {
            if first[i] != now[i] {
                problems.add(
                    row.line,
                    format!(
                        "{field} of table {}.{}.{} differs from line {first_line}; rows of one table must repeat the same table fields",
                        row.value("database"),
                        row.value("schema"),
                        row.value("name")
                    ),
                );
            }
        }
    }
}

fn describe(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!(
                "the row has {len} fields but the header has {expected_len} (a missing or extra comma, or an unclosed quote?)"
            )
        }
        ::csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 (save the file as UTF-8)".into(),
        ::csv::ErrorKind::Io(io) => format!("cannot be read: {io}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "database,schema,name,description,is_view,last_updated_time,col_name,col_type,col_description,sort_order\n";

    fn check(body: &str) -> Result<CsvSummary, Vec<(u64, String)>> {
        validate(format!("{HEADER}{body}").as_bytes())
            .map_err(|p| p.listed.into_iter().map(|p| (p.line, p.message)).collect())
    }

    #[test]
    fn a_valid_file_is_summed_up() {
        let ok = check("shop,sales,orders,All orders,false,1700000000,id,int,Key,1\nshop,sales,orders,All orders,false,1700000000,total,\"numeric(10,2)\",,2\nshop,sales,v_orders,,true,,id,int,,0\n").unwrap();
        assert_eq!((ok.rows, ok.tables), (3, 2));
        let crlf = check(
            "shop,sales,orders,,false,1,id,int,,1\r\nshop,sales,orders,,false,1,x,int,,2\r\n",
        )
        .unwrap();
        assert_eq!(crlf.rows, 2);
    }

    #[test]
    fn each_rule_names_its_line() {
        let bad = |body: &str, line: u64, needle: &str| {
            let problems = check(body).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|(l, m)| *l == line && m.contains(needle)),
                "{needle:?} at {line}: {problems:?}"
            );
        };
        bad(
            "shop,sales,orders,,false,1,id,int,,1\nshop,,orders,,false,1,x,int,,2\n",
            3,
            "schema is empty",
        );
        bad("shop.prod,sales,orders,,false,1,id,int,,1\n", 2, "period");
        bad(
            "shop,sales,orders,,false,1,i.d,int,,1\n",
            2,
            "col_name \"i.d\" contains a period",
        );
        bad(
            "shop,sales,orders,,false,1,id,int,,first\n",
            2,
            "sort_order",
        );
        bad(
            "shop,sales,orders,,false,yesterday,id,int,,1\n",
            2,
            "last_updated_time",
        );
        bad("shop,sales,orders,,yes,1,id,int,,1\n", 2, "is_view");
        bad(
            "shop,sales,orders,A,false,1,id,int,,1\nshop,sales,orders,B,false,1,x,int,,2\n",
            3,
            "description of table shop.sales.orders differs from line 2",
        );
        bad(
            "shop,sales,orders,,false,1,id,int\n",
            2,
            "fields but the header has 10",
        );
        bad("", 2, "no rows");
        let missing = validate("database,schema,col_name\nx,y,z\n".as_bytes()).unwrap_err();
        assert!(missing.listed[0].message.contains("\"name\""));
    }

    #[test]
    fn empty_files_byte_order_marks_and_other_encodings_are_refused() {
        assert!(
            validate(&b""[..]).unwrap_err().listed[0]
                .message
                .contains("empty")
        );
        let bom = format!("\u{feff}{HEADER}shop,sales,orders,,false,1,id,int,,1\n");
        assert!(
            validate(bom.as_bytes()).unwrap_err().listed[0]
                .message
                .contains("byte-order mark")
        );
        let latin1 = [
            HEADER.as_bytes(),
            b"shop,sales,caf\xe9,,false,1,id,int,,1\n",
        ]
        .concat();
        let problems = validate(&latin1[..]).unwrap_err();
        assert_eq!(problems.listed[0].line, 2);
        assert!(problems.listed[0].message.contains("UTF-8"));
    }
}
