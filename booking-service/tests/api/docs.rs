//! docs/API.md and the service's OpenAPI document list the same routes, so the contract kept in
//! the repository cannot drift from what the service serves.

use crate::helpers::*;
use reqwest::Method;
use std::collections::BTreeSet;

/// Compiled in, so editing the document rebuilds this test.
const API_MD: &str = include_str!("../../../docs/API.md");

/// A route as `("GET", "/api/providers/{id}")`.
type Route = (String, String);

/// The routes docs/API.md documents: every heading of the form ``#### `METHOD /path` ``.
fn documented(markdown: &str) -> BTreeSet<Route> {
    markdown
        .lines()
        .filter_map(|line| line.strip_prefix("#### `")?.strip_suffix('`'))
        .filter_map(|route| route.split_once(' '))
        .map(|(method, path)| (method.to_owned(), path.to_owned()))
        .collect()
}

/// The routes of an OpenAPI document: every operation of every path item.
fn served(openapi: &serde_json::Value) -> BTreeSet<Route> {
    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    openapi["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|method| item.get(*method).is_some())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_openapi_document_is_in_api_md_and_no_other() {
    // The document is generated from the handlers, not read from the database: one backend does.
    let app = spawn_app(Backend::Sqlite).await;
    let openapi: serde_json::Value =
        app.anon.send(app.anon.request(Method::GET, "/openapi.json")).await.expect("the OpenAPI document");

    let served = served(&openapi);
    let documented = documented(API_MD);
    assert!(!served.is_empty(), "no route in /openapi.json: {openapi}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but missing from docs/API.md (add a heading #### `METHOD /path`): {undocumented:?}; \
         in docs/API.md but not served: {unserved:?}"
    );
}

#[test]
fn route_headings_are_read_and_other_headings_ignored() {
    let markdown = "## 4. Routes\n### Providers (`admin`)\n#### `GET /api/providers/{id}`\n\
                    #### `POST /confirm/{token}`\ntext `GET /not/a/heading`\n";
    let expected: BTreeSet<Route> = [("GET", "/api/providers/{id}"), ("POST", "/confirm/{token}")]
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(documented(markdown), expected);
}
