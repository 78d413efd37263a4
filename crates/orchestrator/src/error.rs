//! Request errors of the orchestrator. Every error leaves as
//! `{"detail": ...}`; unexpected ones (the store failing) are logged with
//! their cause and answered as a 500 without internals. Body rejections
//! (415, 413, 422 with the failing field), unknown routes and panics are
//! answered by `myloware_http`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use myloware_core::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A body that parsed but that the orchestrator cannot take.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    BadGateway(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl OrchestratorError {
    pub fn not_found(what: &str) -> OrchestratorError {
        OrchestratorError::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for OrchestratorError {
    fn from(err: sqlx::Error) -> OrchestratorError {
        OrchestratorError::Internal(err.into())
    }
}

impl IntoResponse for OrchestratorError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                "internal server error".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(ErrorBody::new(detail))).into_response()
    }
}

/// What a route answers.
pub type RouteResult<T> = Result<T, OrchestratorError>;
