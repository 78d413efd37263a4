//! HTTP handlers, one module per resource. A handler parses, calls the
//! domain (`crate::runs`) or the store, and maps the result. Each module's
//! `router()` declares its routes and their OpenAPI operations together,
//! each group behind the access it needs ([`open`], [`internal`],
//! [`with_key`]); [`crate::router`] merges them.

use axum::middleware::from_fn_with_state;
use myloware_core::auth::Permission;
use utoipa_axum::router::OpenApiRouter;

use crate::middleware;
use crate::state::ApiState;

pub mod assets;
pub mod audit;
pub mod chat;
pub mod costs;
pub mod dlq;
pub mod hitl;
pub mod internal;
pub mod openapi;
pub(crate) mod paging;
pub mod projects;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod schema;
pub mod system;
pub mod webhooks;

/// A whole number that fits an `i64`, also written `7.0` (JSON Schema
/// counts both as integers); `None` for a fraction or a number out of range.
pub(crate) fn whole_number(number: &serde_json::Number) -> Option<i64> {
    // 2^63: the first whole f64 past i64::MAX (which an f64 cannot hold).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (-LIMIT..LIMIT).contains(f))
            .map(|f| f as i64)
    })
}

/// The routes of every module, with the document that describes them.
pub fn all(state: &ApiState) -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(system::router(state))
        .merge(projects::router(state))
        .merge(runs::router(state))
        .merge(schedules::router(state))
        .merge(audit::router(state))
        .merge(hitl::router(state))
        .merge(chat::router(state))
        .merge(webhooks::router(state))
        .merge(internal::router(state))
        .merge(dlq::router(state))
        .merge(retention::router(state))
        .merge(costs::router(state))
        .merge(assets::router(state))
}

/// Routes for strangers whose requests prove themselves (provider
/// webhooks, approval links, Telegram): refusals are rate-limited per
/// address ([`middleware::limit_refusals`]).
pub(crate) fn open(state: &ApiState, routes: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    let routes = routes.route_layer(from_fn_with_state(state.clone(), middleware::limit_refusals));
    openapi::documented(routes, None, &[openapi::REFUSALS_LIMITED])
}

/// Routes for the orchestrator: its internal credential only.
pub(crate) fn internal(state: &ApiState, routes: OpenApiRouter<ApiState>) -> OpenApiRouter<ApiState> {
    let routes = routes.route_layer(from_fn_with_state(state.clone(), middleware::require_internal));
    openapi::documented(
        routes,
        Some("internal"),
        &[
            (
                "401",
                "Missing, stale or wrong internal credential (operator keys are refused)",
            ),
            openapi::REFUSALS_LIMITED,
        ],
    )
}

/// Routes for operator keys whose role grants `permission`.
pub(crate) fn with_key(
    state: &ApiState,
    permission: Permission,
    routes: OpenApiRouter<ApiState>,
) -> OpenApiRouter<ApiState> {
    let routes = routes.route_layer(from_fn_with_state((state.clone(), permission), middleware::require));
    openapi::documented(routes, Some("api_key"), openapi::key_answers(permission))
}

#[cfg(test)]
mod tests {
    use super::whole_number;

    #[test]
    fn whole_numbers_are_integers_or_integral_floats_within_i64() {
        let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).unwrap();
        assert_eq!(whole_number(&number("30")), Some(30));
        assert_eq!(whole_number(&number("30.0")), Some(30));
        assert_eq!(whole_number(&number("-7.0")), Some(-7));
        assert_eq!(whole_number(&number("30.5")), None);
        assert_eq!(whole_number(&number("9223372036854775807")), Some(i64::MAX));
        assert_eq!(whole_number(&number("9223372036854775808")), None);
        assert_eq!(whole_number(&number("1e300")), None);
        assert_eq!(whole_number(&number("-9223372036854775808.0")), Some(i64::MIN));
    }
}
