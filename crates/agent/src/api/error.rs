//! Errors of the API: JSON `{"error": {"code", "message"}}` with a 4xx status for bad input.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use crate::agent::ControlError;

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
    pub details: Option<serde_json::Value>,
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.status, Json(serde_json::json!({ "error": error }))).into_response()
    }
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
                e.details = Some(serde_json::json!({ "revision": current }));
                e
            }
            ControlError::Invalid(errors) => {
                let details: Vec<serde_json::Value> = errors
                    .iter()
                    .map(|e| serde_json::json!({ "field": e.field, "message": e.message }))
                    .collect();
                let mut e =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_task", message);
                e.details = Some(serde_json::Value::Array(details));
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
