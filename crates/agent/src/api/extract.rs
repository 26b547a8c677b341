//! What the routes take from a request, strictly, every refusal an [`ApiError`]: a JSON body
//! ([`JsonBody`]: a JSON content type, known fields only), a task file ([`TaskFileBody`]),
//! the query ([`Params`]: known parameters only) and a path segment ([`Segment`]).
//!
//! Request types list their fields for these checks by being structs that deny unknown fields
//! (`#[serde(deny_unknown_fields)]`): [`fields_of`] reads the list serde has of them.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{header, request::Parts, HeaderMap, StatusCode},
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A JSON object body as a `T`. An empty body (no byte at all: whitespace alone is no JSON) is
/// the empty object (a body that is optional: pause, resume; or none: run, kill, reload,
/// delete); any other body needs a JSON content
/// type (415), must be a JSON object (400), may name only `T`'s fields (422, naming the field)
/// and give them values of their types (400).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// The body of a route that takes none: empty, or an empty JSON object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await.map_err(|e| {
            let status = e.status();
            ApiError::for_status(status, body_problem(status, &e.body_text()))
        })?;
        let object = if body.is_empty() {
            Map::new()
        } else {
            json_type(&headers)?;
            match serde_json::from_slice(&body) {
                Ok(Value::Object(object)) => object,
                Ok(_) => return Err(ApiError::bad_request("expected a JSON object")),
                Err(e) => return Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
            }
        };
        if let Some(fields) = fields_of::<T>() {
            if let Some(key) = object.keys().find(|k| !fields.contains(&k.as_str())) {
                return Err(ApiError::unknown_field(key, fields));
            }
        }
        serde_path_to_error::deserialize(Value::Object(object)).map(JsonBody).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => ApiError::bad_request(e.inner().to_string()),
                path => ApiError::bad_request(format!("{path}: {}", e.inner())),
            }
        })
    }
}

/// What went wrong reading a body (413 when it is too large).
fn body_problem(status: StatusCode, text: &str) -> String {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the body is larger than {} bytes", super::MAX_BODY)
    } else {
        format!("cannot read the body: {text}")
    }
}

/// The request's media type (lower case, without parameters) and its `charset` parameter.
fn media_type(headers: &HeaderMap) -> Option<(String, Option<String>)> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().unwrap_or("?");
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    });
    Some((essence, charset))
}

/// A charset other than UTF-8 (its ASCII subset included): 415.
fn utf8_charset(charset: Option<&str>, what: &str) -> Result<(), ApiError> {
    match charset {
        None | Some("utf-8" | "utf8" | "us-ascii") => Ok(()),
        Some(other) => {
            Err(ApiError::unsupported_media_type(format!("charset {other}: {what} must be UTF-8")))
        }
    }
}

/// A JSON media type (`application/json`, or `application/*+json`), else 415.
fn json_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let how = "send it with Content-Type: application/json";
    match media_type(headers) {
        None => Err(ApiError::unsupported_media_type(format!(
            "a JSON body needs a JSON content type, and none was given: {how}"
        ))),
        Some((essence, charset)) => {
            let json = essence == "application/json"
                || essence.strip_prefix("application/").is_some_and(|s| s.ends_with("+json"));
            if !json {
                return Err(ApiError::unsupported_media_type(format!(
                    "Content-Type {essence}: the body must be JSON; {how}"
                )));
            }
            utf8_charset(charset.as_deref(), "JSON")
        }
    }
}

/// A task file (TOML) as a body, as UTF-8 text: sent as `text/plain`, `application/toml`,
/// or without a content type (a charset, if given, UTF-8); anything else (JSON, a form) is a
/// 415, and so is a body that is not UTF-8 (400).
#[derive(Debug)]
pub struct TaskFileBody(pub String);

/// The media types a task file may be sent as.
pub const TASK_FILE_TYPES: &[&str] = &["text/plain", "application/toml"];

impl<S: Send + Sync> FromRequest<S> for TaskFileBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if let Some((essence, charset)) = media_type(request.headers()) {
            if !TASK_FILE_TYPES.contains(&essence.as_str()) {
                return Err(ApiError::unsupported_media_type(format!(
                    "Content-Type {essence}: a task file is sent as text/plain or application/toml \
                     (curl: -H 'Content-Type: application/toml' --data-binary @tasks.toml)"
                )));
            }
            utf8_charset(charset.as_deref(), "a task file")?;
        }
        let body = Bytes::from_request(request, state).await.map_err(|e| {
            let status = e.status();
            ApiError::for_status(status, body_problem(status, &e.body_text()))
        })?;
        String::from_utf8(body.to_vec())
            .map(TaskFileBody)
            .map_err(|_| ApiError::bad_request("the task file must be UTF-8 text"))
    }
}

/// The query as a `T` whose fields are the route's parameters: any other parameter is a 400
/// naming it (`T` a struct that denies unknown fields), and so is a value of the wrong type.
/// A `T` that is not a struct (the pairs themselves) is taken as it is: its route checks the
/// names.
#[derive(Debug)]
pub struct Params<T>(pub T);

/// The query of a route that takes no parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if let Some(fields) = fields_of::<T>() {
            let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            if let Some((key, _)) = pairs.iter().find(|(k, _)| !fields.contains(&k.as_str())) {
                return Err(ApiError::unknown_parameter(key, fields));
            }
        }
        Query::<T>::try_from_uri(&parts.uri).map(|Query(q)| Params(q)).map_err(|e| {
            let text = e.body_text();
            let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
            ApiError::bad_request(text.to_owned())
        })
    }
}

/// The one parameter in a route's path (a task's name, a run's id), percent-decoded; a
/// segment that does not decode to UTF-8 is a 400.
#[derive(Debug)]
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::{path::ErrorKind, rejection::PathRejection};
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) => Ok(Segment(segment)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => Err(ApiError::bad_request(format!(
                    "{key}: the path segment is not UTF-8 once percent-decoded"
                ))),
                _ => Err(ApiError::bad_request(format!("the path: {}", e.body_text()))),
            },
            Err(e) => Err(ApiError::for_status(e.status(), e.body_text())),
        }
    }
}

/// The fields a struct deserializes (its serde names), read from serde's own list of them;
/// none for anything else (a map, a sequence, a struct with flattened fields).
pub fn fields_of<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    use serde::de::{self, Deserializer, Visitor};

    /// A deserializer that only notes the fields it is asked for.
    struct Probe<'a>(&'a mut Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = Some(fields);
            Err(de::Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields = None;
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::{PauseRequest, ResumeRequest};

    #[test]
    fn fields_of_request_types() {
        assert_eq!(fields_of::<PauseRequest>(), Some(&["until"][..]));
        assert_eq!(fields_of::<ResumeRequest>(), Some(&["missed"][..]));
        assert_eq!(fields_of::<NoBody>(), Some(&[][..]));
        assert_eq!(fields_of::<NoParams>(), Some(&[][..]));
        assert_eq!(fields_of::<Map<String, Value>>(), None);
        assert_eq!(fields_of::<Vec<(String, String)>>(), None);
    }

    #[test]
    fn media_types() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            h
        };
        for ok in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/merge-patch+json",
            "application/json;charset=\"utf-8\"",
        ] {
            assert!(json_type(&headers(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "text/json+xml",
            "application/json; charset=latin1",
        ] {
            let e = json_type(&headers(refused)).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
        }
        assert!(json_type(&HeaderMap::new()).is_err());
    }
}
