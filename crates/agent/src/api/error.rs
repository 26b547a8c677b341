//! Errors of the API: JSON `{"error": {"code", "message"}}` with a 4xx status for bad input.
//!
//! Every error has this body, whoever produces it: the routes and their extractors
//! ([`super::extract`]) answer with an [`ApiError`]; what the server stack answers by itself
//! without one (a 405 with its `Allow`, a rejection of axum's) is rewritten by [`json_errors`];
//! and what hyper answers before any route is reached (a request it cannot parse: 400, a URI
//! over 64 KiB: 414, headers too large: 431) gets its body on the way out ([`super::wire`]).

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};

use super::model::{ErrorBody, ErrorDetails, ErrorInfo, FieldProblem, FileProblem};
use crate::{agent::ControlError, config::ConfigErrors};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// More, when there is any (the errors of an invalid task file).
    pub details: Option<ErrorDetails>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: the server failed (the database, say).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 415: a body of a media type the route does not take.
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
    }

    /// 422: a body names a field its route does not know (`fields`: those it knows).
    pub fn unknown_field(field: &str, fields: &[&str]) -> ApiError {
        let message = format!("unknown field {field:?}{}", hint(field, fields, "no body"));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_field", message)
    }

    /// 400: a query parameter its route does not know (`fields`: those it knows).
    pub fn unknown_parameter(name: &str, fields: &[&str]) -> ApiError {
        ApiError::bad_request(format!(
            "unknown parameter {name:?}{}",
            hint(name, fields, "no parameters")
        ))
    }

    /// An error with a status and a message, its code the status's own (`method_not_allowed`,
    /// `payload_too_large`, ...): for answers the server stack gives with a status only.
    pub fn for_status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status, code_of(status), message)
    }

    /// The body, as sent.
    pub fn body(&self) -> Vec<u8> {
        let error = ErrorInfo {
            code: self.code.to_owned(),
            details: self.details.clone(),
            message: self.message.clone(),
        };
        serde_json::to_vec(&ErrorBody { error }).unwrap_or_default()
    }

    /// 422: the errors of a task file.
    pub fn invalid_file(errors: &ConfigErrors, message: String) -> ApiError {
        let problems = errors
            .0
            .iter()
            .map(|e| FileProblem {
                column: e.column,
                field: e.field.clone(),
                file: e.file.clone(),
                line: e.line,
                message: e.message.clone(),
                task: e.task.clone(),
            })
            .collect();
        let mut error =
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_task_file", message);
        error.details = Some(ErrorDetails::File(problems));
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error =
            ErrorInfo { code: self.code.to_owned(), details: self.details, message: self.message };
        let mut response = (self.status, Json(ErrorBody { error })).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `: did you mean "until"? (this route takes until)`, `: this route takes follow`, or that it
/// takes `none` (`no body`, `no parameters`).
fn hint(name: &str, fields: &[&str], none: &str) -> String {
    if fields.is_empty() {
        return format!(": this route takes {none}");
    }
    let takes = fields.join(", ");
    let near = fields.iter().map(|f| (strsim::levenshtein(f, name), *f)).min();
    match near {
        Some((distance, near)) if distance <= 2 => {
            format!(": did you mean {near:?}? (this route takes {takes})")
        }
        _ => format!(": this route takes {takes}"),
    }
}

/// The code of an error known by its status only.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        412 => "precondition_failed",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        431 => "headers_too_large",
        500 => "internal",
        503 => "unavailable",
        _ => "error",
    }
}

/// The message of an error known by its status only.
pub fn message_of(status: StatusCode, method: &str, path: &str) -> String {
    match status.as_u16() {
        405 => {
            format!("{path} does not take {method}: its Allow header lists the methods it takes")
        }
        413 => format!("the body is larger than {} bytes", super::MAX_BODY),
        414 => "the URI is too long".to_owned(),
        431 => "the request's headers are too large".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    }
}

/// Makes every error answer JSON: an error response from the server stack that has no body,
/// or a plain text one (a 405, a rejection of axum's), is answered as an [`ApiError`] instead,
/// its status and headers kept (a 405's `Allow` is added around it, by the route), its text
/// (if any) the message. HTML pages (the dashboard's) and JSON are left as they are.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(|t| t.to_ascii_lowercase().starts_with("text/plain")));
    if !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() { message_of(status, &method, &path) } else { text };
    let body = ApiError::for_status(status, message).body();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let message = e.to_string();
        match e {
            ControlError::NotFound(_) | ControlError::NoSuchRun(_) => ApiError::not_found(message),
            ControlError::NotHere(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_on_this_node", message)
            }
            ControlError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            ControlError::Store(_) => ApiError::internal(message),
            ControlError::FileOwned(_) => ApiError::new(StatusCode::CONFLICT, "file_task", message),
            ControlError::Revision { current, .. } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, "revision_conflict", message);
                e.details = Some(ErrorDetails::Revision { revision: current });
                e
            }
            ControlError::Invalid(errors) => {
                let problems = errors
                    .iter()
                    .map(|e| FieldProblem { field: e.field.clone(), message: e.message.clone() })
                    .collect();
                let mut e =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_task", message);
                e.details = Some(ErrorDetails::Fields(problems));
                e
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!(error = %e, "state database error in the API");
        ApiError::internal(e.to_string())
    }
}
