//! Request bodies, the same way on both services: JSON only (415), within
//! the body limit (413, with the limit in the message), and parse errors as
//! 422s in the list form with the failing field's path.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use myloware_core::ErrorBody;
use myloware_core::error::FieldError;
use serde::de::DeserializeOwned;

use crate::objects_only::ObjectsOnly;

/// Why a body was refused.
#[derive(Debug)]
pub enum BodyError {
    UnsupportedMediaType,
    TooLarge(usize),
    Unreadable(String),
    Invalid(Vec<FieldError>),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        match self {
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(ErrorBody::new("expected Content-Type: application/json")),
            )
                .into_response(),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(ErrorBody::new(format!("request body too large (limit {limit} bytes)"))),
            )
                .into_response(),
            Self::Unreadable(detail) => (StatusCode::BAD_REQUEST, Json(ErrorBody::new(detail))).into_response(),
            Self::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({ "detail": errors })),
            )
                .into_response(),
        }
    }
}

/// A JSON body: 415 without a JSON content type, 413 over the body limit,
/// 422 (list form, with the path of the offending field) when it does not
/// parse into `T`.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ValidJson<T> {
    type Rejection = BodyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        parse_json(&bytes).map(ValidJson)
    }
}

/// The raw bytes of a JSON body (for signature checks over the exact
/// bytes): 415 without a JSON content type, 413 over the body limit.
pub struct JsonBytes(pub bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = BodyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(BodyError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(usize::MAX, |limit| limit.0);
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|rejection: BytesRejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    BodyError::TooLarge(limit)
                } else {
                    BodyError::Unreadable(rejection.body_text())
                }
            })?;
        if has_nul(&bytes) {
            return Err(nul_refused());
        }
        Ok(JsonBytes(bytes))
    }
}

/// An optional JSON body: empty means `T::default()`; otherwise as [`ValidJson`].
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = BodyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() == b"0");
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if declared_empty || (!has_type && !req.headers().contains_key(header::TRANSFER_ENCODING)) {
            return Ok(OptionalJson(T::default()));
        }
        ValidJson::from_request(req, state)
            .await
            .map(|ValidJson(t)| OptionalJson(t))
    }
}

/// Deserializes `bytes` as `T`, reporting the failing field's path. Structs
/// are taken only from JSON objects ([`ObjectsOnly`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    if has_nul(bytes) {
        return Err(nul_refused());
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(ObjectsOnly(&mut *deserializer)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut loc = vec!["body"];
        if path != "." {
            loc.extend(path.split('.'));
        }
        let kind = if inner.is_syntax() || inner.is_eof() {
            "json_invalid"
        } else {
            "value_error"
        };
        BodyError::Invalid(vec![FieldError::new(&loc, strip_position(&inner.to_string()), kind)])
    })?;
    // One JSON value and nothing after it (`{...}garbage` is not a body).
    deserializer.end().map_err(|err| {
        BodyError::Invalid(vec![FieldError::new(
            &["body"],
            strip_position(&err.to_string()),
            "json_invalid",
        )])
    })?;
    Ok(value)
}

fn nul_refused() -> BodyError {
    BodyError::Invalid(vec![FieldError::new(
        &["body"],
        "text must not contain NUL characters (U+0000)",
        "value_error",
    )])
}

/// A raw NUL byte or a `\u0000` escape: Postgres text and JSONB cannot
/// hold the character, so it is refused at the door on every backend.
pub fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
        || bytes
            .windows(6)
            .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000")
}

/// serde_json appends " at line 1 column 42"; the loc already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// The body limit in force, recorded so the 413 message can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);
