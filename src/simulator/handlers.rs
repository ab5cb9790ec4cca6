//! The endpoints: integrations (list with DRF-style pages, get, create, delete), CSV and JSONL
//! imports, Slack conversations, and the dbt sync's trigger and failing-tests answer. The upload
//! itself is [`super::receive`]'s.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::Shared;
use super::http::{
    Dropped, Reply, answer_early, bad_multipart, content_type, declared_length, detail, discard,
    reply,
};
use super::multipart;
use super::routes::Route;
use super::state::Integration;

/// The Slack conversations the simulator lists.
const SLACK_CONVERSATIONS: [(&str, &str); 3] = [
    ("C0DATA0001", "data-alerts"),
    ("C0DATA0002", "analytics-eng"),
    ("C0DATA0003", "dbt-runs"),
];

/// Runs the endpoint.
pub(super) async fn dispatch(
    shared: &Shared,
    req: Request<Incoming>,
    route: Route,
    id: String,
    close: &Notify,
) -> Result<Reply, Dropped> {
    let method = req.method().clone();
    let now = Instant::now();
    match (method.as_str(), route) {
        ("GET", "/api/v1/integration/integrations/") => Ok(list_integrations(shared, &req)),
        ("POST", "/api/v1/integration/integrations/") => create_integration(shared, req).await,
        ("GET", "/api/v1/integration/integrations/{}/") => {
            Ok(match shared.state().integrations.get(&id) {
                Some(integration) => reply(StatusCode::OK, integration.to_json()),
                None => detail(StatusCode::NOT_FOUND, "Not found."),
            })
        }
        ("DELETE", "/api/v1/integration/integrations/{}/") => Ok(if shared.state().delete(&id) {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        } else {
            detail(StatusCode::NOT_FOUND, "Not found.")
        }),
        ("POST", p) if p.ends_with("import_metadata/") || p.ends_with("import_jsonl_metadata/") => {
            import(
                shared,
                req,
                &id,
                p.ends_with("import_jsonl_metadata/"),
                close,
            )
            .await
        }
        ("GET", "/api/v2/integration_v2/slack/conversations/list/") => Ok(reply(
            StatusCode::OK,
            Value::Array(
                SLACK_CONVERSATIONS
                    .iter()
                    .map(|(id, name)| json!({"id": id, "name": name}))
                    .collect(),
            ),
        )),
        (_, p) if p.starts_with("/api/v1/integration/dbt/") => {
            if let Some(response) = check_dbt_integration(shared, &id) {
                return answer_early(shared, req, response, close).await;
            }
            match p.rsplit('/').nth(1) {
                Some("upload_artifacts") => {
                    super::receive::upload_artifacts(shared, req, &id).await
                }
                Some("trigger") => Ok(if shared.state().trigger(&id, now) {
                    detail(StatusCode::OK, "Integration sync triggered successfully.")
                } else {
                    detail(
                        StatusCode::CONFLICT,
                        "Integration sync already in progress.",
                    )
                }),
                _ => Ok(reply(StatusCode::OK, shared.state().answer_json(&id, now))),
            }
        }
        _ => Ok(super::http::html_not_found()),
    }
}

pub(super) fn check_dbt_integration(shared: &Shared, id: &str) -> Option<Reply> {
    match shared.state().integrations.get(id) {
        None => Some(detail(StatusCode::NOT_FOUND, "Not found.")),
        Some(i) if i.kind != "dbt" => Some(detail(
            StatusCode::BAD_REQUEST,
            &format!(
                "Integration {id} is a {} integration, not dbt Core.",
                i.kind
            ),
        )),
        Some(_) => None,
    }
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn list_integrations(shared: &Shared, req: &Request<Incoming>) -> Reply {
    let state = shared.state();
    let kind = query_param(req, "type");
    let items: Vec<Value> = state
        .integrations
        .values()
        .filter(|i| kind.as_deref().is_none_or(|k| i.kind == k))
        .map(Integration::to_json)
        .collect();
    let size = state.options.page_size;
    let pages = items.len().div_ceil(size).max(1);
    let page = query_param(req, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1);
    if page == 0 || page > pages {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let self_hosted = state.options.self_hosted_links;
    let link = |p: usize| {
        let filter = kind
            .as_deref()
            .map(|k| format!("&type={k}"))
            .unwrap_or_default();
        Value::String(if self_hosted {
            // Behind the bundled nginx the backend sees neither the public host nor /api/v1.
            format!("http://backend:8000/integration/integrations/?page={p}{filter}")
        } else {
            format!("http://{host}/api/v1/integration/integrations/?page={p}{filter}")
        })
    };
    let none = || {
        if self_hosted {
            Value::String("None".into())
        } else {
            Value::Null
        }
    };
    let results: Vec<Value> = items
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "links": {
                "next": if page < pages { link(page + 1) } else { none() },
                "previous": if page > 1 { link(page - 1) } else { none() },
            },
            "meta": {
                "page": page,
                "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
                "next_page": if page < pages { json!(page + 1) } else { Value::Null },
            },
            "count": items.len(),
            "total_pages": pages,
            "results": results,
        }),
    )
}

async fn read_body(
    shared: &Shared,
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Dropped> {
    let path = req.uri().path().to_string();
    let body = http_body_util::Limited::new(req.into_body(), limit);
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| Dropped("aborted"))?;
    shared.state().received(&path, bytes.len() as u64);
    Ok(bytes)
}

async fn create_integration(shared: &Shared, req: Request<Incoming>) -> Result<Reply, Dropped> {
    let body = read_body(shared, req, 1 << 20).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(detail(
            StatusCode::BAD_REQUEST,
            "JSON parse error - expected an object.",
        ));
    };
    let Some(name) = fields
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
    else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            json!({ "name": ["This field is required."] }),
        ));
    };
    let kind = fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("custom");
    let teams = match fields.get("teams") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        Some(_) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                json!({ "teams": ["Expected a list of items."] }),
            ));
        }
    };
    let integration = Integration::new(new_id(), name.to_string(), kind.to_string(), teams);
    let body = integration.to_json();
    shared
        .state()
        .integrations
        .insert(integration.id.clone(), integration);
    Ok(reply(StatusCode::CREATED, body))
}

/// A random UUID (version 4 layout).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let random = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let (a, b) = (random(), random());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// CSV and JSONL metadata imports: the integration must exist; the named parts must be present.
async fn import(
    shared: &Shared,
    req: Request<Incoming>,
    id: &str,
    jsonl: bool,
    close: &Notify,
) -> Result<Reply, Dropped> {
    if !shared.state().integrations.contains_key(id) {
        return answer_early(
            shared,
            req,
            detail(StatusCode::NOT_FOUND, "Not found."),
            close,
        )
        .await;
    }
    let Some(parts) = read_files(shared, req).await? else {
        return Ok(bad_multipart());
    };
    let required = if jsonl { "resources_file" } else { "file" };
    let find = |name: &str| {
        parts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, body)| body.as_slice())
    };
    let Some(body) = find(required) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            json!({ required: ["No file was submitted."] }),
        ));
    };
    // The same rules the client checks before sending, applied to what arrived.
    let refuse = |part: &str, problems: crate::imports::Problems| {
        let listed: Vec<String> = problems.listed.iter().map(ToString::to_string).collect();
        reply(StatusCode::BAD_REQUEST, json!({ part: listed }))
    };
    let record = if jsonl {
        // The request carries the files and nothing else (the API has no field naming parents
        // that live elsewhere), so a parent outside the file is one to look up in the catalog,
        // not a mistake: counted, not refused.
        let outside = crate::imports::jsonl::Outside::Any;
        let (summary, known) = match crate::imports::jsonl::validate_resources(body, outside) {
            Ok(checked) => checked,
            Err(problems) => return Ok(refuse("resources_file", problems)),
        };
        let lineages = match find("lineages_file") {
            None => 0,
            Some(lineages) => match crate::imports::jsonl::validate_lineages(lineages, &known) {
                Ok(count) => count,
                Err(problems) => return Ok(refuse("lineages_file", problems)),
            },
        };
        json!({ "kind": "jsonl", "resources": summary.resources, "by_type": summary.by_type, "outside_parents": summary.outside_parents, "lineages": lineages })
    } else {
        match crate::imports::csv::validate(body) {
            Ok(summary) => json!({ "kind": "csv", "rows": summary.rows, "tables": summary.tables }),
            Err(problems) => return Ok(refuse("file", problems)),
        }
    };
    let mut state = shared.state();
    state
        .imports
        .push(json!({ "integration_id": id, "import": record.clone() }));
    if let Some(integration) = state.integrations.get_mut(id) {
        integration.resources.push(record);
    }
    Ok(detail(
        StatusCode::OK,
        "Integration metadata uploaded successfully.",
    ))
}

/// The file parts of a whole (small) multipart form, by name; None for a malformed form. As in
/// Django, a part without a filename is a field, not a file, and a body without a Content-Length
/// is not read at all.
async fn read_files(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Option<Vec<(String, Vec<u8>)>>, Dropped> {
    let boundary = content_type(&req)
        .as_deref()
        .and_then(multipart::Parser::boundary);
    let (Some(boundary), Some(_)) = (boundary, declared_length(&req)) else {
        let chunked = declared_length(&req).is_none();
        discard(shared, req).await?;
        return Ok(chunked.then(Vec::new));
    };
    let body = read_body(shared, req, 256 << 20).await?;
    let mut parser = multipart::Parser::new(&boundary);
    let mut events = Vec::new();
    if parser.push(&body, &mut events).is_err() || !parser.is_done() {
        return Ok(None);
    }
    let mut parts: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    for event in events {
        match event {
            multipart::Event::Start {
                name, file_name, ..
            } => parts.push((name, file_name.map(|_| Vec::new()))),
            multipart::Event::Data(data) => {
                if let Some((_, Some(body))) = parts.last_mut() {
                    body.extend_from_slice(&data);
                }
            }
            multipart::Event::End => {}
        }
    }
    Ok(Some(
        parts
            .into_iter()
            .filter_map(|(name, body)| Some((name, body?)))
            .collect(),
    ))
}
