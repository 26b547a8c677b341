//! Errors of the API: JSON `{"error": {"code", "message"}}` with a 4xx status for bad input.

use axum::{
    http::StatusCode,
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
        (self.status, Json(ErrorBody { error })).into_response()
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
