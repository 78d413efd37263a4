//! Pages of the list routes (runs, the audit): newest first, a bounded
//! `limit` read as text (so that a value that is not a number gets the same
//! 422 as one out of range), and a `cursor` that is the last item's `seq`
//! (exclusive). A leaf: the route modules use it, it uses none of them.

use crate::error::ApiError;

/// A page's size: `limit` as given (1 to `max`), else `default`.
pub(crate) fn limit(limit: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    &["query", "limit"],
                    format!("must be a whole number between 1 and {max}"),
                )
            }),
    }
}

/// The `seq` below which the page starts (`nextCursor` of the page before).
pub(crate) fn cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid(&["query", "cursor"], "not a cursor returned by this API"))
        })
        .transpose()
}

/// Cuts `items` (read with `limit + 1`, newest first) to `limit`; the next
/// page's cursor when there was more.
pub(crate) fn page<T>(mut items: Vec<T>, limit: u32, seq: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let next = items.last().map(|item| seq(item).to_string());
        (items, next)
    } else {
        (items, None)
    }
}

/// The OpenAPI schemas of `limit` (up to `max`) and `cursor`.
pub(crate) fn schema(name: &str, max: u32) -> Option<serde_json::Value> {
    match name {
        "limit" => Some(serde_json::json!({"type": "integer", "minimum": 1, "maximum": max})),
        "cursor" => Some(serde_json::json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"})),
        _ => None,
    }
}
