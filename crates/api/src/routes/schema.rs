//! What the routes modules share to refine their part of the OpenAPI
//! document (`refine_schema` in each): finding an operation, the error
//! bodies, the text patterns. A leaf: `routes::openapi` assembles the
//! document from the modules, the modules use only this.

use serde_json::Value;

/// Text anywhere in a request (path, query, body) must not hold NUL
/// (U+0000): Postgres cannot store it, so the request-id layer refuses it
/// in the URL (400) and the body extractors in a body (422).
pub(crate) const NUL_FREE: &str = "^[^\\u0000]*$";

/// NUL-free text with at least one character that is not white space.
pub(crate) const NOT_BLANK: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";

/// The operation `method` `path` of `doc`; the document must have it.
pub(crate) fn operation<'d>(doc: &'d mut Value, method: &str, path: &str) -> &'d mut Value {
    doc["paths"]
        .get_mut(path)
        .and_then(|item| item.get_mut(method))
        .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"))
}

/// The schema of a refusal with `status`: the list form for 422.
pub(crate) fn error_body(status: &str) -> &'static str {
    if status == "422" {
        "#/components/schemas/ValidationErrorBody"
    } else {
        "#/components/schemas/ErrorBody"
    }
}
