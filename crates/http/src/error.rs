//! The one place where registry errors become HTTP statuses and JSON bodies.

use axum::extract::multipart::MultipartError;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chartyard_core::RegistryError;
use chartyard_core::wire::{ErrorBody, reason};

/// Longest message an error answer carries, in bytes. Messages quote what a client sent
/// (shortened where they are built); this is the last bound, whatever builds them.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// `message`, cut to [`MAX_MESSAGE_BYTES`].
pub fn bounded_message(message: impl Into<String>) -> String {
    let mut message = message.into();
    chartyard_core::error::shorten(&mut message, MAX_MESSAGE_BYTES);
    message
}

/// An error answer in the seed's shape: `{"message","reason"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: bounded_message(message) }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal_message(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    fn reason(&self) -> &'static str {
        match self.status {
            StatusCode::LOCKED => reason::LOCKING,
            s if s.is_client_error() && s != StatusCode::NOT_FOUND && s != StatusCode::CONFLICT => reason::REQUEST,
            _ => reason::INTERNAL,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        let status = match &error {
            RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
            RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
            RegistryError::AlreadyExists(_) => StatusCode::CONFLICT,
            RegistryError::Locked(_) => StatusCode::LOCKED,
            RegistryError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RegistryError::Internal(detail) => {
                // The detail is for operators, not clients.
                tracing::error!(error = %detail, "request failed");
                return Self::internal_message("internal server error");
            }
        };
        Self::new(status, error.to_string())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<MultipartError> for ApiError {
    fn from(error: MultipartError) -> Self {
        Self::new(error.status(), error.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { message: self.message.clone(), reason: self.reason().to_string() };
        (self.status, axum::Json(body)).into_response()
    }
}
