//! The HTTP plumbing both services share: request bodies (JSON only, the
//! body limit, objects only, 422s with the field's path), request ids and
//! JSON errors, the internal-request signature check, the request
//! deadlines, the one layer stack and the one server loop.
//!
//! Crate graph: `myloware-http` may import `myloware-core` and
//! `myloware-telemetry` (the HTTP metrics layer); only the services
//! (`myloware-api`, `myloware-orchestrator`) and `myloware-cli` import it.

pub mod body;
pub mod deadlines;
pub mod internal;
pub mod objects_only;
pub mod request_id;
pub mod server;
pub mod stack;

pub use body::{BodyError, BodyLimit, JsonBytes, OptionalJson, ValidJson, parse_json};
pub use deadlines::Deadlines;
pub use request_id::{REQUEST_ID, RequestId};
pub use server::{Server, Service, serve};
