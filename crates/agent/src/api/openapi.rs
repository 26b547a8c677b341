//! The OpenAPI document, `openapi.json` (served at `/api/v1/openapi.json`), kept current.
//!
//! Its `components/schemas` are generated from the API's serde types ([`model`]) by
//! `schemars`, a dev-dependency: the derives are `cfg(test)`, so neither schemars nor the
//! schemas' code is in the binary, which serves the file as it is. The rest of the document
//! (paths, parameters, responses, links, and the three request schemas of a task's
//! definition, whose fields are the task file's) is written by hand.
//!
//! `document_is_current` fails when the file's generated schemas are not those of the types;
//! `CRONFLEET_BLESS=1 cargo test -p cronfleet --lib api::openapi` (run by
//! `scripts/gen-dist`) writes them. The other tests check the hand-written part against the
//! generated one: every `$ref` resolves, every operation documents its answers with schemas,
//! every link names an operation and its parameters, and the task definition's fields are the
//! task file's.

use std::collections::{BTreeMap, BTreeSet};

use schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use super::model;

/// The file, from the crate's root.
const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");

/// The schemas written by hand: a task's definition is checked by the task file's parser,
/// not by a serde type (`model::TaskFields` is a JSON object).
const HAND_WRITTEN: &[&str] = &["TaskChange", "TaskDefinition", "TaskPatch"];

/// The schemas of `components/schemas` generated from the types of [`model`]: how responses
/// are serialized, and how the request bodies that are types are deserialized.
pub fn schemas() -> Map<String, Value> {
    fn add<T: JsonSchema>(generator: &mut SchemaGenerator) {
        let _ = generator.subschema_for::<T>();
    }
    let mut responses = SchemaSettings::openapi3().for_serialize().into_generator();
    add::<model::TaskList>(&mut responses);
    add::<model::TaskDetail>(&mut responses);
    add::<model::Task>(&mut responses);
    add::<model::RunPage>(&mut responses);
    add::<model::Run>(&mut responses);
    add::<model::RunStarted>(&mut responses);
    add::<model::Killing>(&mut responses);
    add::<model::Counts>(&mut responses);
    add::<model::Plan>(&mut responses);
    add::<model::Node>(&mut responses);
    add::<model::NodeList>(&mut responses);
    add::<model::Stopping>(&mut responses);
    add::<model::ErrorBody>(&mut responses);
    let mut requests = SchemaSettings::openapi3().for_deserialize().into_generator();
    add::<model::PauseRequest>(&mut requests);
    add::<model::ResumeRequest>(&mut requests);
    let mut all = responses.take_definitions(true);
    for (name, schema) in requests.take_definitions(true) {
        if let Some(other) = all.get(&name) {
            assert_eq!(other, &schema, "{name} differs as a request and as a response");
        }
        all.insert(name, schema);
    }
    all
}

/// The document `text` with its generated schemas those of the types, as the file is written:
/// keys sorted, one space of indentation, a final newline.
pub fn regenerate(text: &str) -> String {
    let mut doc: Value = serde_json::from_str(text).expect("openapi.json is JSON");
    let current = doc["components"]["schemas"].as_object_mut().expect("components/schemas");
    current.retain(|name, _| HAND_WRITTEN.contains(&name.as_str()));
    for (name, schema) in schemas() {
        assert!(!HAND_WRITTEN.contains(&name.as_str()), "{name} is generated");
        current.insert(name, schema);
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&doc, &mut serializer).expect("serializable");
    out.push(b'\n');
    String::from_utf8(out).expect("UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_json::from_str(super::super::OPENAPI).unwrap()
    }

    /// The operations, as (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    /// The generated schemas in the file are those of the types (or, with
    /// `CRONFLEET_BLESS=1`, are written).
    #[test]
    fn document_is_current() {
        let text = std::fs::read_to_string(PATH).unwrap();
        let fresh = regenerate(&text);
        if std::env::var_os("CRONFLEET_BLESS").is_some() {
            if fresh != text {
                std::fs::write(PATH, &fresh).unwrap();
            }
            return;
        }
        assert!(
            fresh == text,
            "crates/agent/src/api/openapi.json is stale (its schemas are generated from \
             api/model): run scripts/gen-dist, or CRONFLEET_BLESS=1 cargo test -p \
             cronfleet --lib api::openapi"
        );
    }

    /// Every `"$ref"` of the document, with where it is.
    fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.push((at.to_owned(), v.as_str().unwrap().to_owned()));
                    } else {
                        refs(v, &format!("{at}/{k}"), out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// Every reference resolves, and every schema and shared response is used.
    #[test]
    fn every_reference_resolves_and_every_component_is_used() {
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, "", &mut found);
        let mut used = BTreeSet::new();
        for (at, target) in &found {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{at}: {target}"));
            assert!(doc.pointer(pointer).is_some(), "{at}: {target} does not resolve");
            used.insert(pointer.to_owned());
        }
        for kind in ["schemas", "responses"] {
            for name in doc["components"][kind].as_object().unwrap().keys() {
                let pointer = format!("/components/{kind}/{name}");
                assert!(used.contains(&pointer), "{pointer} is not used");
            }
        }
    }

    /// Every operation has an id, documents 400 and 401 (403 too when it needs an admin
    /// token), and every answer but a 204 has a schema; JSON answers a named one.
    #[test]
    fn every_operation_documents_its_answers() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (method, path, op) in operations(&doc) {
            let what = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{what}: no id"));
            assert!(ids.insert(id.to_owned()), "{what}: operationId {id} twice");
            let responses = op["responses"].as_object().unwrap();
            for code in ["400", "401"] {
                assert!(responses.contains_key(code), "{what}: no {code}");
            }
            let admin = op["description"].as_str().is_some_and(|d| d.starts_with("Needs an admin"));
            assert_eq!(admin, responses.contains_key("403"), "{what}: 403 and admin");
            for (code, response) in responses {
                let response = match response["$ref"].as_str() {
                    Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
                    None => response,
                };
                assert!(response["description"].is_string(), "{what} {code}: no description");
                if code == "204" {
                    assert!(response.get("content").is_none(), "{what}: a 204 has no body");
                    continue;
                }
                let content = response["content"].as_object();
                let content = content.unwrap_or_else(|| panic!("{what} {code}: no content"));
                for (media, body) in content {
                    let schema = &body["schema"];
                    assert!(schema.is_object(), "{what} {code} {media}: no schema");
                    if media == "application/json" && path != "/api/v1/openapi.json" {
                        assert!(schema["$ref"].is_string(), "{what} {code}: an unnamed schema");
                    }
                }
            }
        }
    }

    /// Every link names an operation of the document and only parameters it has; between
    /// them, the links chain create -> run -> output -> delete.
    #[test]
    fn links_name_operations_and_their_parameters() {
        let doc = document();
        let ops: BTreeMap<String, Value> = operations(&doc)
            .into_iter()
            .map(|(_, _, op)| (op["operationId"].as_str().unwrap().to_owned(), op))
            .collect();
        let mut edges = BTreeSet::new();
        for (id, op) in &ops {
            for (code, response) in op["responses"].as_object().unwrap() {
                let Some(links) = response.get("links").and_then(Value::as_object) else {
                    continue;
                };
                assert!(code.starts_with('2'), "{id} {code}: links from an error");
                for (name, link) in links {
                    let target = link["operationId"].as_str().unwrap();
                    let target_op = ops.get(target).unwrap_or_else(|| panic!("{id}: {name}"));
                    let params: Vec<(String, String)> = target_op["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            (
                                p["in"].as_str().unwrap().to_owned(),
                                p["name"].as_str().unwrap().into(),
                            )
                        })
                        .collect();
                    for (key, expr) in link["parameters"].as_object().unwrap() {
                        let (place, param) = match key.split_once('.') {
                            Some((place, param)) => (Some(place), param),
                            None => (None, key.as_str()),
                        };
                        assert!(
                            params.iter().any(|(i, n)| n == param && place.is_none_or(|p| p == i)),
                            "{id} {name}: {target} has no parameter {key}"
                        );
                        let expr = expr.as_str().unwrap();
                        assert!(expr.starts_with("$response.") || expr.starts_with("$request."));
                    }
                    edges.insert((id.clone(), target.to_owned()));
                }
            }
        }
        for (from, to) in [
            ("createTask", "runTask"),
            ("runTask", "getRun"),
            ("runTask", "getRunOutput"),
            ("runTask", "deleteTask"),
            ("createTask", "deleteTask"),
            ("createTask", "getTask"),
            ("createTask", "replaceTask"),
            ("createTask", "patchTask"),
        ] {
            assert!(edges.contains(&(from.to_owned(), to.to_owned())), "no link {from} -> {to}");
        }
    }

    /// The fields of a task's definition in requests are the task file's.
    #[test]
    fn task_definition_fields_are_the_task_files() {
        let doc = document();
        let fields: BTreeSet<&str> =
            crate::config::reference::TASK_FIELDS.iter().map(|f| f.name).collect();
        let server_side = ["created_at", "origin", "revision", "updated_at"];
        for name in ["TaskChange", "TaskPatch"] {
            let schema = &doc["components"]["schemas"][name];
            assert_eq!(schema["additionalProperties"], false, "{name}");
            let documented: BTreeSet<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|k| !server_side.contains(k))
                .collect();
            assert_eq!(documented, fields, "{name}");
        }
    }
}
