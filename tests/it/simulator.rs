//! The simulator as a peer: auth, routing, validation and state, over raw HTTP.

use crate::support::*;

fn auth() -> String {
    format!("Bearer {KEY}")
}

fn form(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.json\"\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn keys_routes_and_trailing_slashes_behave_like_secoda() {
    let sim = Simulator::start(&[]);
    let failing = format!("/api/v1/integration/dbt/{INTEGRATION}/failing_tests/");
    assert_eq!(sim.request("GET", &failing, &[], b"").0, 401);
    assert_eq!(
        sim.request("GET", &failing, &[("Authorization", "Bearer nope")], b"")
            .0,
        401
    );
    assert_eq!(
        sim.get(&failing),
        (200, serde_json::json!({"failing": [], "warning": []}))
    );
    assert_eq!(
        sim.request(
            "GET",
            failing.trim_end_matches('/'),
            &[("Authorization", &auth())],
            b""
        )
        .0,
        301
    );
    assert_eq!(
        sim.get("/api/v1/integration/dbt/unknown-id/failing_tests/")
            .0,
        404
    );
    assert_eq!(
        sim.get("/healthcheck/"),
        (200, serde_json::json!({"status": "OK"}))
    );
    // A path no view serves is Django's own HTML page, not DRF's JSON.
    let (status, body) = sim.request(
        "GET",
        "/api/v1/nothing/here/",
        &[("Authorization", &auth())],
        b"",
    );
    assert_eq!(status, 404);
    assert!(
        String::from_utf8_lossy(&body).starts_with("<!doctype html>"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// A POST whose body is sent chunked (no Content-Length): status and body.
fn post_chunked(sim: &Simulator, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let host = sim.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: {}\r\n\
         Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n",
        auth()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for chunk in body.chunks(64 * 1024) {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        stream.write_all(chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn uploads_are_refused_where_django_rest_framework_refuses_them() {
    let sim = Simulator::start(&[]);
    let path = format!("/api/v1/integration/dbt/{INTEGRATION}/upload_artifacts/");
    let manifest = std::fs::read(demo_artifacts().join("manifest.json")).unwrap();
    let run_results = std::fs::read(demo_artifacts().join("run_results.json")).unwrap();
    let whole = form(
        "b0undary",
        &[("run_results", &run_results), ("manifest", &manifest)],
    );

    // Chunked: Django reads a body only as far as its Content-Length, so the view sees no files.
    let (status, body) = post_chunked(
        &sim,
        &path,
        "multipart/form-data; boundary=b0undary",
        &whole,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("No file was submitted."), "{body}");

    // A part without a filename is a form field, not a file.
    let text = String::from_utf8_lossy(&whole).into_owned();
    let fields = text.replace("; filename=\"manifest.json\"", "");
    let (status, body) = sim.request(
        "POST",
        &path,
        &[
            ("Authorization", &auth()),
            ("Content-Type", "multipart/form-data; boundary=b0undary"),
        ],
        fields.as_bytes(),
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("\"manifest\":[\"No file was submitted.\"]"),
        "{body}"
    );
    assert_eq!(sim.state()["uploads"], serde_json::json!([]));
}

#[test]
fn the_body_size_limit_and_early_closes_behave_like_nginx_and_gunicorn() {
    let path = format!("/api/v1/integration/dbt/{INTEGRATION}/upload_artifacts/");
    let big = vec![b'x'; 3 << 20];
    // nginx: 413 at once for a declared body over the limit, whatever the key.
    let sim = Simulator::start(&["--max-body-bytes", "1048576"]);
    let (status, body) = sim.request("POST", &path, &[], &big);
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("413 Request Entity Too Large"));
    let (status, _) = sim.request("POST", &path, &[("Authorization", &auth())], &big[..1000]);
    assert_eq!(status, 400, "under the limit, the application answers");

    // gunicorn with nothing in front: a 401 answered before the body is read, then the
    // connection closed; the body is never read.
    let sim = Simulator::start(&["--early-close"]);
    let host = sim.url.trim_start_matches("http://").to_string();
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: {}\r\n\r\n",
        big.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(&big[..64 * 1024]);
    let mut answer = vec![0; 12];
    let read = stream.read(&mut answer).unwrap_or(0);
    assert!(
        read == 0 || answer.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let state = sim.state();
    assert_eq!(state["requests"][path.as_str()]["401"], 1, "{state}");
    assert!(state["received_bytes"][path.as_str()].is_null(), "{state}");
}

#[test]
fn uploads_need_both_parts_as_valid_json() {
    let sim = Simulator::start(&[]);
    let path = format!("/api/v1/integration/dbt/{INTEGRATION}/upload_artifacts/");
    let manifest = std::fs::read(demo_artifacts().join("manifest.json")).unwrap();
    let run_results = std::fs::read(demo_artifacts().join("run_results.json")).unwrap();
    let post = |body: &[u8]| {
        let auth = auth();
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "multipart/form-data; boundary=b0undary"),
        ];
        sim.request("POST", &path, &headers, body)
    };
    let (status, body) = post(&form("b0undary", &[("manifest", &manifest)]));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("run_results"));
    let (status, body) = post(&form(
        "b0undary",
        &[
            ("manifest", &manifest[..1000]),
            ("run_results", &run_results),
        ],
    ));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("valid JSON"));
    assert_eq!(sim.state()["uploads"], serde_json::json!([]));
    // Either order of parts is accepted (curl -F sends them as given).
    let (status, _) = post(&form(
        "b0undary",
        &[("manifest", &manifest), ("run_results", &run_results)],
    ));
    assert_eq!(status, 200);
    let state = sim.state();
    assert_eq!(state["uploads"][0]["manifest_bytes"], manifest.len());
    assert_eq!(
        state["uploads"][0]["answer"]["failing"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_sync_answers_409_while_it_runs_then_reflects_the_upload() {
    let sim = Simulator::start(&["--sync-seconds", "1"]);
    let target = failing_build();
    assert_eq!(
        sim.upload(target.path())
            .arg("--no-wait")
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    let trigger = format!("/api/v1/integration/dbt/{INTEGRATION}/trigger/");
    let (status, _) = sim.request("POST", &trigger, &[("Authorization", &auth())], b"");
    assert_eq!(status, 409, "the upload's own sync is still running");
    let failing = format!("/api/v1/integration/dbt/{INTEGRATION}/failing_tests/");
    assert_eq!(
        sim.get(&failing).1["failing"],
        serde_json::json!([]),
        "the previous answer while it runs"
    );
    // The sync's end is a change of state, not a moment: wait for the simulator to say so.
    eventually(
        || "the simulator's sync to end".into(),
        || (sim.state()["syncs"][INTEGRATION]["running"] != true).then_some(()),
    );
    assert_eq!(sim.get(&failing).1["failing"].as_array().unwrap().len(), 2);
    assert_eq!(sim.state()["conflicts_served"], 1);
}

#[test]
fn the_rest_of_the_integrations_api_is_served() {
    let sim = Simulator::start(&["--page-size", "2"]);
    let auth = auth();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    for name in ["a", "b", "c"] {
        let (status, body) = sim.request("POST", "/api/v1/integration/integrations/", &headers, format!("{{\"name\": \"{name}\", \"type\": \"custom\", \"teams\": [], \"credentials\": {{}}}}").as_bytes());
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
    let (status, page) = sim.get("/api/v1/integration/integrations/");
    assert_eq!(status, 200);
    assert_eq!(page["count"], 4);
    assert_eq!(page["total_pages"], 2);
    assert!(page["links"]["next"].as_str().unwrap().ends_with("page=2"));
    let (_, custom) = sim.get("/api/v1/integration/integrations/?type=custom");
    assert_eq!(custom["count"], 3);
    let (_, slack) = sim.get("/api/v2/integration_v2/slack/conversations/list/");
    assert!(
        slack
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"].is_string() && c["name"].is_string())
    );
    let id = custom["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        sim.request(
            "DELETE",
            &format!("/api/v1/integration/integrations/{id}/"),
            &headers,
            b""
        )
        .0,
        204
    );
    assert_eq!(
        sim.get(&format!("/api/v1/integration/integrations/{id}/"))
            .0,
        404
    );
}

#[test]
fn a_repeated_key_is_read_as_pythons_json_reads_it_the_last_value_wins() {
    // Django REST Framework parses with Python's json, which takes a repeated key's last value;
    // the simulator once refused such a file with 400 ("duplicate field"), kinder to no one.
    // Here a passing test's status is given twice, the last time "fail", and the manifest
    // repeats a node's name: the upload is accepted, and Secoda names the test's entity failing,
    // as the client reads it too.
    let target = passing_build();
    let test = "test.fernleaf.source_not_null_shop_customers_customer_id.d9374bbd1c";
    crate::ci_reports::edit_text(
        target.path(),
        "run_results.json",
        "\"results\"",
        "\"status\": \"pass\"",
        "\"status\": \"pass\", \"status\": \"fail\"",
    );
    crate::ci_reports::edit_text(
        target.path(),
        "manifest.json",
        "\"source.fernleaf.shop.customers\": {",
        "\"name\": \"customers\"",
        "\"name\": \"first-name\", \"name\": \"customers\"",
    );
    let sim = Simulator::start(&[]);
    let output = expect_exit(sim.upload(target.path()).args(["--output", "json"]), 1);
    let state = sim.state();
    let uploads = state["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1, "{}", state["requests"]);
    assert_eq!(
        uploads[0]["answer"]["failing"],
        serde_json::json!(["source.fernleaf.shop.customers"])
    );
    let report = json_report(&output);
    assert_eq!(report["test_summary"]["failing"], 1, "{report}");
    assert_eq!(report["tests"][0]["unique_id"], test, "{report}");
    assert_eq!(
        report["secoda"]["failing"],
        serde_json::json!(["source.fernleaf.shop.customers"])
    );
}
