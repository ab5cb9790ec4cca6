//! CSV and JSONL imports: each rule broken once, through the binary; nothing sent when a file
//! is invalid; a 100 MB file checked in constant memory.

use std::io::Write;

use crate::support::*;

const HEADER: &str = "database,schema,name,description,is_view,last_updated_time,col_name,col_type,col_description,sort_order";
const GOOD_ROW: &str = "shop,sales,orders,All orders,false,1700000000,id,int,Key,1";

/// Checks `body` as a CSV with --dry-run; returns (exit code, stderr).
fn check_csv(body: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.csv");
    std::fs::write(&path, body).unwrap();
    let output = bin()
        .args(["integrations", "import-csv", "some-id"])
        .arg(&path)
        .arg("--dry-run")
        .output()
        .unwrap();
    (output.status.code().unwrap_or(-1), stderr(&output))
}

fn check_jsonl(resources: &str, lineages: Option<&str>, extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("resources.jsonl");
    std::fs::write(&r, resources).unwrap();
    let mut cmd = bin();
    cmd.args([
        "integrations",
        "import-jsonl",
        "some-id",
        "--dry-run",
        "--resources",
    ])
    .arg(&r)
    .args(extra);
    if let Some(lineages) = lineages {
        let l = dir.path().join("lineages.jsonl");
        std::fs::write(&l, lineages).unwrap();
        cmd.arg("--lineages").arg(l);
    }
    let output = cmd.output().unwrap();
    (output.status.code().unwrap_or(-1), stderr(&output))
}

#[test]
fn every_csv_rule_is_checked_with_its_line() {
    let valid = format!("{HEADER}\n{GOOD_ROW}\n");
    assert_eq!(check_csv(valid.as_bytes()).0, 0);
    assert_eq!(
        check_csv(valid.replace('\n', "\r\n").as_bytes()).0,
        0,
        "CRLF is fine"
    );

    let broken = [
        (
            "database,schema,col_name,sort_order\nshop,sales,id,1\n",
            1,
            "required column \"name\"",
        ),
        (
            "shop,,orders,All orders,false,1700000000,id,int,Key,1",
            3,
            "schema is empty",
        ),
        (
            "shop.prod,sales,orders,All orders,false,1700000000,id,int,Key,1",
            3,
            "contains a period",
        ),
        (
            "shop,sales,or.ders,All orders,false,1700000000,id,int,Key,1",
            3,
            "contains a period",
        ),
        (
            "shop,sales,orders,All orders,false,1700000000,i.d,int,Key,1",
            3,
            "contains a period",
        ),
        (
            "shop,sales,orders,All orders,false,1700000000,x,int,Key,first",
            3,
            "sort_order must be a whole number",
        ),
        (
            "shop,sales,orders,All orders,false,last week,x,int,Key,1",
            3,
            "last_updated_time must be Unix seconds",
        ),
        (
            "shop,sales,orders,All orders,FALSE,1700000000,x,int,Key,1",
            3,
            "is_view must be true or false",
        ),
        (
            "shop,sales,orders,Other text,false,1700000000,x,int,Key,2",
            3,
            "description of table shop.sales.orders differs from line 2",
        ),
        (
            "shop,sales,orders,All orders,false,1700000000,x,int",
            3,
            "fields but the header has 10",
        ),
    ];
    for (row, line, needle) in broken {
        let body = if row.contains('\n') {
            row.to_string()
        } else {
            format!("{HEADER}\n{GOOD_ROW}\n{row}\n")
        };
        let (code, err) = check_csv(body.as_bytes());
        assert_eq!(code, 3, "{needle}: {err}");
        assert!(
            err.contains(&format!("metadata.csv:{line}: ")) && err.contains(needle),
            "{needle} at line {line}: {err}"
        );
    }
    for (body, needle) in [
        (&b""[..], "empty"),
        (
            b"\xef\xbb\xbfdatabase,schema,name,col_name\nshop,sales,orders,id\n",
            "byte-order mark",
        ),
        (
            b"database,schema,name,col_name\nshop,sales,caf\xe9,id\n",
            "UTF-8",
        ),
    ] {
        let (code, err) = check_csv(body);
        assert_eq!(code, 3, "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn every_jsonl_rule_is_checked_with_its_line() {
    let base = r#"{"entity_type": "database", "databuilder_id": "db"}
{"entity_type": "table", "databuilder_id": "db.s.t", "parent_databuilder_id": "db", "schema": "s", "database": "db"}
"#;
    assert_eq!(check_jsonl(base, None, &[]).0, 0);
    assert_eq!(check_jsonl(&base.replace('\n', "\r\n"), None, &[]).0, 0);
    let broken = [
        (
            r#"{"entity_type": "view", "databuilder_id": "v"}"#,
            "not one of",
        ),
        (r#"{"databuilder_id": "v"}"#, "entity_type is missing"),
        (r#"{"entity_type": "schema"}"#, "databuilder_id is missing"),
        (
            r#"{"entity_type": "schema", "databuilder_id": "db"}"#,
            "used again",
        ),
        (
            r#"{"entity_type": "table", "databuilder_id": "t", "schema": "s"}"#,
            "database is missing",
        ),
        (
            r#"{"entity_type": "column", "databuilder_id": "c"}"#,
            "parent table",
        ),
        (
            r#"{"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db"}"#,
            "not a table",
        ),
        (
            r#"{"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "elsewhere"}"#,
            "--external-parent",
        ),
        (
            r#"{"entity_type": "dashboard", "databuilder_id": "d"}"#,
            "group is missing",
        ),
        (
            r#"{"entity_type": "chart", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "product": "p"}"#,
            "not a dashboard",
        ),
        (
            r#"{"entity_type": "schema", "databuilder_id": "x", "external_updated_at": "today"}"#,
            "ISO 8601",
        ),
        (r#"not json"#, "not valid JSON"),
    ];
    for (line, needle) in broken {
        let (code, err) = check_jsonl(&format!("{base}{line}\n"), None, &[]);
        assert_eq!(code, 3, "{needle}: {err}");
        assert!(
            err.contains("resources.jsonl:3: ") && err.contains(needle),
            "{needle}: {err}"
        );
    }
    let outside = format!(
        "{base}{}\n",
        r#"{"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "elsewhere"}"#
    );
    assert_eq!(
        check_jsonl(&outside, None, &["--external-parent", "elsewhere"]).0,
        0
    );

    let internal = r#"{"type": "internal_resource", "databuilder_id": "db.s.t"}"#;
    let external = r#"{"type": "external_table", "cluster": "c", "database": "d", "schema": "s", "table": "t"}"#;
    let query = r#"{"type": "tables_from_query", "sql": "select 1"}"#;
    let lineage = |from: &str, to: &str| {
        format!("{{\"from_identifier\": {from}, \"to_identifier\": {to}}}\n")
    };
    assert_eq!(
        check_jsonl(base, Some(&lineage(external, internal)), &[]).0,
        0
    );
    assert_eq!(check_jsonl(base, Some(&lineage(query, internal)), &[]).0, 0);
    for (text, needle) in [
        (lineage(external, external), "neither side"),
        (
            lineage(internal, query),
            "to_identifier cannot be tables_from_query",
        ),
        (
            lineage(
                external,
                r#"{"type": "internal_resource", "databuilder_id": "ghost"}"#,
            ),
            "not a resource",
        ),
        (
            lineage(r#"{"type": "view"}"#, internal),
            "is not internal_resource",
        ),
    ] {
        let (code, err) = check_jsonl(base, Some(&text), &[]);
        assert_eq!(code, 3, "{needle}: {err}");
        assert!(
            err.contains("lineages.jsonl:1: ") && err.contains(needle),
            "{needle}: {err}"
        );
    }
    for (body, needle) in [
        ("", "no resources"),
        ("\u{feff}{}\n", "byte-order mark"),
        ("{\"a\": 1}\n\n{\"b\": 2}\n", "blank"),
    ] {
        let (code, err) = check_jsonl(body, None, &[]);
        assert_eq!(code, 3);
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// A new custom integration in `sim`: what imports go into. Its id.
fn custom_integration(sim: &Simulator) -> String {
    json_report(&expect_exit(
        &mut sim.cli(&["integrations", "create", "--name", "x", "--output", "json"]),
        0,
    ))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn invalid_files_send_nothing_and_the_simulator_applies_the_same_rules() {
    let sim = Simulator::start(&[]);
    let id = custom_integration(&sim);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!("{HEADER}\nshop.x,sales,orders,,false,1,id,int,,1\n"),
    )
    .unwrap();
    expect_exit(sim.cli(&["integrations", "import-csv", &id]).arg(&bad), 3);
    assert_eq!(
        sim.requests(&format!(
            "/api/v1/integration/integrations/{id}/import_metadata/"
        )),
        0
    );

    // The same file sent straight to the simulator is refused there, with its line.
    let body = [
        b"--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bad.csv\"\r\nContent-Type: text/csv\r\n\r\n".to_vec(),
        std::fs::read(&bad).unwrap(),
        b"\r\n--b0--\r\n".to_vec(),
    ]
    .concat();
    let auth = format!("Bearer {KEY}");
    let (status, answer) = sim.request(
        "POST",
        &format!("/api/v1/integration/integrations/{id}/import_metadata/"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "multipart/form-data; boundary=b0"),
        ],
        &body,
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&answer).contains("line 2: database"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(sim.state()["imports"], serde_json::json!([]));
}

#[test]
fn a_100_mb_csv_is_checked_in_constant_memory() {
    if !std::path::Path::new("/usr/bin/time").exists() {
        eprintln!("skipped: GNU time is needed to read peak memory");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "{HEADER}").unwrap();
    let mut written = 0u64;
    let mut table = 0u64;
    while written < 100 << 20 {
        table += 1;
        for column in 0..25 {
            let row = format!(
                "warehouse,schema_{},table_{table},\"Table {table}, the {}th\",false,1700000000,column_{column},varchar,\"A column, described at some length so rows look real\",{column}\n",
                table % 50,
                table
            );
            written += row.len() as u64;
            out.write_all(row.as_bytes()).unwrap();
        }
    }
    drop(out);
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let output = clean_command("/usr/bin/time")
        .args(["-f", "peak_kb=%M"])
        .arg(exe)
        .args(["integrations", "import-csv", "some-id", "--dry-run"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let peak_kb: u64 = stderr(&output)
        .lines()
        .find_map(|l| l.strip_prefix("peak_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("GNU time's report");
    assert!(
        stdout(&output).contains(&format!("{table} tables")),
        "{}",
        stdout(&output)
    );
    assert!(
        peak_kb < 40 * 1024,
        "peak RSS {peak_kb} KiB for a 100 MB file"
    );
}

#[test]
fn columns_of_a_table_imported_elsewhere_reach_secoda_with_their_external_parent() {
    let sim = Simulator::start(&[]);
    let id = custom_integration(&sim);
    let dir = tempfile::tempdir().unwrap();
    let columns = dir.path().join("columns.jsonl");
    std::fs::write(
        &columns,
        concat!(
            r#"{"entity_type": "column", "databuilder_id": "shop.sales.orders.id", "parent_databuilder_id": "shop.sales.orders", "type": "int"}"#,
            "\n",
            r#"{"entity_type": "column", "databuilder_id": "shop.sales.orders.total", "parent_databuilder_id": "shop.sales.orders", "type": "int"}"#,
            "\n",
        ),
    )
    .unwrap();
    let lineages = dir.path().join("lineages.jsonl");
    std::fs::write(
        &lineages,
        concat!(
            r#"{"from_identifier": {"type": "internal_resource", "databuilder_id": "shop.sales.orders"}, "#,
            r#""to_identifier": {"type": "internal_resource", "databuilder_id": "shop.sales.orders.total"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let import = |extra: &[&str]| {
        let mut cmd = sim.cli(&["integrations", "import-jsonl", &id, "--resources"]);
        cmd.arg(&columns)
            .arg("--lineages")
            .arg(&lineages)
            .args(extra);
        cmd
    };

    // Undeclared, the parent is refused before anything is sent.
    let refused = expect_exit(&mut import(&[]), 3);
    assert_stderr_contains(&refused, "declare it with --external-parent");
    assert_eq!(sim.state()["imports"], serde_json::json!([]));

    // Declared, it is sent, and Secoda's side takes it: the request carries only the files.
    let sent = expect_exit(&mut import(&["--external-parent", "shop.sales.orders"]), 0);
    assert!(
        stdout(&sent).contains("imported into integration"),
        "{}{}",
        stdout(&sent),
        stderr(&sent)
    );
    let imports = sim.state()["imports"].clone();
    assert_eq!(imports.as_array().unwrap().len(), 1, "{imports}");
    assert_eq!(imports[0]["import"]["resources"], 2);
    assert_eq!(imports[0]["import"]["outside_parents"], 1);
    assert_eq!(imports[0]["import"]["lineages"], 1);
}

#[test]
fn the_hint_of_an_invalid_file_points_at_the_docs_of_this_version() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/integrations.md"))
            .unwrap();
    // GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes.
    let anchors: Vec<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let page = format!(
        "{}/blob/v{}/docs/integrations.md#",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION")
    );
    let csv = check_csv(b"database,schema\nshop,sales\n");
    let jsonl = check_jsonl("{\"entity_type\": \"table\"}\n", None, &[]);
    for (code, err) in [csv, jsonl] {
        assert_eq!(code, 3, "{err}");
        assert!(!err.contains(" docs/integrations.md"), "{err}");
        let url = err
            .split_whitespace()
            .find(|w| w.starts_with(&page))
            .unwrap_or_else(|| panic!("no link to {page}: {err}"));
        let anchor = &url[page.len()..];
        assert!(
            anchors.iter().any(|a| a == anchor),
            "{anchor} is no heading of docs/integrations.md"
        );
    }
}
