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
    assert_eq!(sim.get("/api/v1/nothing/here/").0, 404);
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
    std::thread::sleep(std::time::Duration::from_millis(1100));
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
