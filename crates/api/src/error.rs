//! Request errors of the API and the JSON body extractor. Every error leaves
//! as `{"detail": ...}` (422s as the list form); unexpected ones are logged
//! with their cause and answered without internals.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use myloware_core::ErrorBody;
use myloware_core::error::FieldError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API key")]
    Unauthorized,
    #[error("invalid signature")]
    InvalidSignature,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("too many requests; retry in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// A 422 about one field of the body.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError::new(loc, msg, "value_error")])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::InvalidSignature => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            err @ StoreError::AtCapacity { .. } => ApiError::Conflict(err.to_string()),
            err => ApiError::Internal(err.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            Self::Validation(errors) => (status, axum::Json(serde_json::json!({ "detail": errors }))).into_response(),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                (status, axum::Json(ErrorBody::new("internal server error"))).into_response()
            }
            other => (status, axum::Json(ErrorBody::new(other.to_string()))).into_response(),
        };
        if let Self::RateLimited(retry) = self {
            let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub use myloware_http::{BodyLimit, JsonBytes, OptionalJson, ValidJson};
