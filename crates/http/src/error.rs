//! The one place where registry errors become HTTP statuses: one table per protocol
//! ([`api_status`] for the seed API, ChartMuseum and Helm repositories, [`oci_status`] for
//! OCI distribution); storage and core return protocol-free kinds only.

use axum::extract::multipart::MultipartError;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chartyard_core::RegistryError;
use chartyard_core::error::Thing;
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
    /// Headers the answer carries besides its body (a refusal's challenge).
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: bounded_message(message), headers: Vec::new() }
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

/// A refusal answered by a handler, with the headers the route guard's refusals carry:
/// a 401 challenges for credentials, a 429 says when to retry.
impl From<crate::auth::Denied> for ApiError {
    fn from(denied: crate::auth::Denied) -> Self {
        Self { headers: denied.headers(), ..Self::new(denied.status(), denied.message()) }
    }
}

/// The status of a registry error in the seed API, ChartMuseum's API and Helm
/// repositories (each renders its own body).
pub fn api_status(error: &RegistryError) -> StatusCode {
    use RegistryError::*;
    match error {
        Invalid(_) | InvalidDigest(_) | DigestMismatch(_) | InvalidManifest(_) | InvalidName(_) | InvalidUpload(_)
        | MissingReference(_) => StatusCode::BAD_REQUEST,
        NotFound(_) | Missing(..) => StatusCode::NOT_FOUND,
        AlreadyExists(_) => StatusCode::CONFLICT,
        Locked(_) => StatusCode::LOCKED,
        TooLarge(_) | OverMaximum(_) | OverQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
        RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
        Refused(_) => StatusCode::FORBIDDEN,
        TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status and error code of a registry error in the OCI distribution API.
pub fn oci_status(error: &RegistryError) -> (StatusCode, &'static str) {
    use RegistryError::*;
    match error {
        Missing(Thing::Blob, _) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        Missing(Thing::Upload, _) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        Missing(Thing::Manifest, _) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        Missing(Thing::Space | Thing::Chart | Thing::Version | Thing::Repository, _) | NotFound(_) => {
            (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
        }
        InvalidUpload(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
        InvalidDigest(_) | DigestMismatch(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        MissingReference(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
        Invalid(_) | InvalidManifest(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        InvalidName(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
        OverMaximum(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
        TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
        OverQuota(_) => (StatusCode::PAYLOAD_TOO_LARGE, "DENIED"),
        RangeNotSatisfiable(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
        TooMany(_) | Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        Refused(_) | AlreadyExists(_) => (StatusCode::FORBIDDEN, "DENIED"),
        Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        if let RegistryError::Internal(detail) = &error {
            // The detail is for operators, not clients.
            tracing::error!(error = %detail, "request failed");
            return Self::internal_message("internal server error");
        }
        Self::new(api_status(&error), error.to_string())
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
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<ApiError> for Response {
    fn from(error: ApiError) -> Self {
        error.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each protocol-free kind an OCI operation returns gets the status and code the
    /// distribution spec gives that failure.
    #[test]
    fn oci_table_gives_the_spec_codes() {
        let m = || String::from("m");
        let cases = [
            (RegistryError::Missing(Thing::Blob, m()), 404, "BLOB_UNKNOWN"),
            (RegistryError::Missing(Thing::Upload, m()), 404, "BLOB_UPLOAD_UNKNOWN"),
            (RegistryError::Missing(Thing::Manifest, m()), 404, "MANIFEST_UNKNOWN"),
            (RegistryError::Missing(Thing::Space, m()), 404, "NAME_UNKNOWN"),
            (RegistryError::NotFound(m()), 404, "NAME_UNKNOWN"),
            (RegistryError::DigestMismatch(m()), 400, "DIGEST_INVALID"),
            (RegistryError::MissingReference(m()), 400, "MANIFEST_BLOB_UNKNOWN"),
            (RegistryError::OverMaximum(m()), 400, "SIZE_INVALID"),
            (RegistryError::TooLarge(m()), 413, "SIZE_INVALID"),
            (RegistryError::RangeNotSatisfiable(m()), 416, "BLOB_UPLOAD_INVALID"),
            (RegistryError::Refused(m()), 403, "DENIED"),
            (RegistryError::AlreadyExists(m()), 403, "DENIED"),
            (RegistryError::TooMany(m()), 429, "TOOMANYREQUESTS"),
            (RegistryError::Locked(m()), 429, "TOOMANYREQUESTS"),
            (RegistryError::OverQuota(m()), 413, "DENIED"),
        ];
        for (error, status, code) in cases {
            assert_eq!(oci_status(&error), (StatusCode::from_u16(status).unwrap(), code), "{error:?}");
        }
        // The other APIs keep their statuses for the kinds they always had.
        assert_eq!(api_status(&RegistryError::Locked(m())), StatusCode::LOCKED);
        assert_eq!(api_status(&RegistryError::OverQuota(m())), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(api_status(&RegistryError::Refused(m())), StatusCode::FORBIDDEN);
        assert_eq!(api_status(&RegistryError::AlreadyExists(m())), StatusCode::CONFLICT);
        assert_eq!(api_status(&RegistryError::Missing(Thing::Version, m())), StatusCode::NOT_FOUND);
    }
}
