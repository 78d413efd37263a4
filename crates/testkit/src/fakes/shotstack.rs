//! The fake Shotstack: renders (`shotstack.render`), their status
//! (`shotstack.status`, done at once), and the rendered file at the URL
//! the status gives, on this server (`shotstack.download`): a small real
//! MP4 that names its render. Shotstack deletes its output after 24 h;
//! `calls.always("shotstack.download", Fault::Status(403))` makes the fake
//! do the same (S3 answers 403 for a deleted object to a reader without
//! list rights).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Fault, Provider, lookup_fault, refusal};

pub(super) async fn render(State(fake): State<Provider>, Json(body): Json<Value>) -> Response {
    let fault = fake.calls.fault("shotstack.render");
    if let Some(Fault::Status(status)) = fault {
        return refusal("shotstack", status);
    }
    let id = format!("render-{}", fake.calls.push("shotstack.render", body) + 1);
    if let Some(Fault::Hang(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    Json(json!({"success": true, "message": "Created", "response": {"id": id}})).into_response()
}

pub(super) async fn status(State(fake): State<Provider>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = lookup_fault(&fake.calls, "shotstack.status", "shotstack").await {
        return refused;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(json!({"success": true, "response": {"id": id, "status": "done", "url": format!("http://{host}/renders/{id}.mp4")}}))
        .into_response()
}

/// `GET /renders/{id}.mp4`: the render's file.
pub(super) async fn file(State(fake): State<Provider>, Path(file): Path<String>) -> Response {
    if let Some(refused) = lookup_fault(&fake.calls, "shotstack.download", "shotstack").await {
        return refused;
    }
    let id = file.trim_end_matches(".mp4").to_string();
    fake.calls.push("shotstack.download", json!({"id": id}));
    ([(header::CONTENT_TYPE, "video/mp4")], rendered(&id)).into_response()
}

/// The file of render `id`: the mock render (a real MP4) followed by a
/// `free` box naming the render, which players skip; so a test can tell
/// which render a stored copy came from.
pub fn rendered(id: &str) -> Vec<u8> {
    let payload = format!("fake-shotstack {id}");
    let mut file = myloware_providers::mock::RENDER_MP4.to_vec();
    file.extend_from_slice(&(8 + payload.len() as u32).to_be_bytes());
    file.extend_from_slice(b"free");
    file.extend_from_slice(payload.as_bytes());
    file
}
