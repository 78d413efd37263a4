//! The services' error shape on the wire, `{"detail": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use myloware_core::ErrorBody;

/// An answer in the services' error shape.
pub fn error(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(ErrorBody::new(detail))).into_response()
}
