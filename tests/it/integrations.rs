//! `integrations`, `slack`: every command through the binary against the simulator.

use serde_json::Value;

use crate::support::*;

fn json_of(output: &std::process::Output) -> Value {
    json_report(output)
}

fn write(dir: &std::path::Path, name: &str, body: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

const CSV: &str = "database,schema,name,description,is_view,last_updated_time,col_name,col_type,col_description,sort_order\n\
shop,sales,orders,All orders,false,1700000000,id,int,Key,1\n\
shop,sales,orders,All orders,false,1700000000,total,\"numeric(10,2)\",,2\n\
shop,sales,v_orders,,true,,id,int,,0\n";

const RESOURCES: &str = r#"{"entity_type": "database", "databuilder_id": "shop"}
{"entity_type": "schema", "databuilder_id": "shop.sales", "parent_databuilder_id": "shop"}
{"entity_type": "table", "databuilder_id": "shop.sales.orders", "parent_databuilder_id": "shop.sales", "schema": "sales", "database": "shop"}
{"entity_type": "column", "databuilder_id": "shop.sales.orders.id", "parent_databuilder_id": "shop.sales.orders", "type": "int", "is_pk": true}
"#;

const LINEAGES: &str = r#"{"from_identifier": {"type": "external_table", "cluster": "pg", "database": "app", "schema": "public", "table": "orders"}, "to_identifier": {"type": "internal_resource", "databuilder_id": "shop.sales.orders"}}
"#;

#[test]
fn an_integration_lives_and_dies_through_the_cli() {
    let sim = Simulator::start(&["--page-size", "2"]);
    let dir = tempfile::tempdir().unwrap();

    let mut ids = Vec::new();
    for name in ["Warehouse A", "Warehouse B", "Warehouse C"] {
        let output = expect_exit(
            &mut sim.cli(&[
                "integrations",
                "create",
                "--name",
                name,
                "--team",
                "t-1",
                "--output",
                "json",
            ]),
            0,
        );
        let created = json_of(&output);
        assert_eq!(created["name"], name);
        assert_eq!(created["type"], "custom");
        assert_eq!(created["teams"], serde_json::json!(["t-1"]));
        ids.push(created["id"].as_str().unwrap().to_string());
    }

    // Four integrations (the simulator's dbt one and three custom) over two pages of two.
    let listed = json_of(&expect_exit(
        &mut sim.cli(&["integrations", "list", "--output", "json"]),
        0,
    ));
    assert_eq!(listed.as_array().unwrap().len(), 4);
    let text = stdout(&expect_exit(
        &mut sim.cli(&["integrations", "list", "--type", "custom"]),
        0,
    ));
    assert!(
        text.contains("Warehouse B") && text.contains("3 integrations (2 pages)"),
        "{text}"
    );
    assert!(
        sim.requests("/api/v1/integration/integrations/") >= 4,
        "every page was read"
    );

    let id = &ids[0];
    let got = json_of(&expect_exit(
        &mut sim.cli(&["integrations", "get", id, "--output", "json"]),
        0,
    ));
    assert_eq!(got["id"], *id);
    assert!(
        stdout(&expect_exit(&mut sim.cli(&["integrations", "get", id]), 0)).contains("Warehouse A")
    );

    let csv = write(dir.path(), "tables.csv", CSV.as_bytes());
    let output = expect_exit(&mut sim.cli(&["integrations", "import-csv", id, &csv]), 0);
    assert!(
        stdout(&output).contains("3 rows, 2 tables"),
        "{}",
        stdout(&output)
    );

    let resources = write(dir.path(), "resources.jsonl", RESOURCES.as_bytes());
    let lineages = write(dir.path(), "lineages.jsonl", LINEAGES.as_bytes());
    let output = expect_exit(
        &mut sim.cli(&[
            "integrations",
            "import-jsonl",
            id,
            "--resources",
            &resources,
            "--lineages",
            &lineages,
            "--output",
            "json",
        ]),
        0,
    );
    assert_eq!(json_of(&output)["lineages"]["lineages"], 1);

    let state = sim.state();
    let imports = state["imports"].as_array().unwrap();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[0]["import"]["rows"], 3);
    assert_eq!(imports[1]["import"]["resources"], 4);
    assert_eq!(imports[1]["import"]["lineages"], 1);

    expect_exit(&mut sim.cli(&["integrations", "delete", id, "--yes"]), 0);
    let output = expect_exit(&mut sim.cli(&["integrations", "get", id]), 4);
    assert_stderr_contains(&output, "404");
    let left = json_of(&expect_exit(
        &mut sim.cli(&["integrations", "list", "--output", "json"]),
        0,
    ));
    assert_eq!(left.as_array().unwrap().len(), 3);
}

#[test]
fn self_hosted_next_links_are_rerooted() {
    // Next links without /api/v1, on an internal host, and "None" for no link.
    let sim = Simulator::start(&["--page-size", "1", "--self-hosted-links"]);
    for name in ["a", "b", "c"] {
        expect_exit(&mut sim.cli(&["integrations", "create", "--name", name]), 0);
    }
    let listed = json_of(&expect_exit(
        &mut sim.cli(&["integrations", "list", "--output", "json"]),
        0,
    ));
    assert_eq!(listed.as_array().unwrap().len(), 4, "four pages of one");
}

#[test]
fn deleting_asks_first_and_needs_yes_without_a_terminal() {
    let sim = Simulator::start(&[]);
    let id = json_of(&expect_exit(
        &mut sim.cli(&[
            "integrations",
            "create",
            "--name",
            "keep",
            "--output",
            "json",
        ]),
        0,
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let output = expect_exit(&mut sim.cli(&["integrations", "delete", &id]), 2);
    assert_stderr_contains(&output, "--yes");
    assert_eq!(
        sim.requests(&format!("/api/v1/integration/integrations/{id}/")),
        0,
        "nothing was asked of Secoda"
    );

    // On a terminal it asks; "n" keeps the integration, "y" deletes it.
    if clean_command("script").arg("--version").output().is_err() {
        return;
    }
    let exe = assert_cmd::cargo::cargo_bin("dbt-secoda");
    let ask = |answer: &str| {
        let line = format!("'{}' integrations delete {id}", exe.display());
        let mut child = clean_command("script")
            .args(["-qec", &line, "/dev/null"])
            .env("SECODA_API_KEY", KEY)
            .env("SECODA_API_URL", &sim.url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Answer once the question is on the terminal (script copies it to its stdout).
        use std::io::{Read, Write};
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("[y/N]") {
            match stdout.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => break,
            }
        }
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        stdout.read_to_end(&mut seen).unwrap();
        child.wait().unwrap();
        String::from_utf8_lossy(&seen).into_owned()
    };
    let kept = ask("n");
    assert!(kept.contains("cannot be undone"), "{kept}");
    expect_exit(&mut sim.cli(&["integrations", "get", &id]), 0);
    ask("y");
    expect_exit(&mut sim.cli(&["integrations", "get", &id]), 4);
}

#[test]
fn slack_conversations_are_listed() {
    let sim = Simulator::start(&[]);
    let text = stdout(&expect_exit(&mut sim.cli(&["slack", "conversations"]), 0));
    assert!(text.contains("data-alerts"), "{text}");
    let list = json_of(&expect_exit(
        &mut sim.cli(&["slack", "conversations", "--output", "json"]),
        0,
    ));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"].is_string() && c["name"].is_string())
    );
    assert_eq!(
        sim.requests("/api/v2/integration_v2/slack/conversations/list/"),
        2
    );
}

#[test]
fn errors_keep_the_exit_code_contract_and_json_output() {
    let sim = Simulator::start(&[]);
    let output = expect_exit(
        sim.cli(&["integrations", "get", "nope", "--output", "json"])
            .env("SECODA_API_KEY", "sk-wrong-0000"),
        4,
    );
    let doc = json_of(&output);
    assert_eq!(doc["exit_code"], 4);
    assert!(doc["error"]["message"].as_str().unwrap().contains("401"));
    expect_exit(bin().args(["integrations", "list"]), 2);
}
