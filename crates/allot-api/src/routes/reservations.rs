//! `/v1/reservations`: checkout holds on stock.

use allot_app::{Principal, Role};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guard::{Refusal, WriteGuard, Writers, guarded};
use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::json::Body;
use crate::params::ReservationParam;
use crate::text::CleanPath;
use crate::views::ReservationView;

pub fn router(state: &ApiState) -> OpenApiRouter<ApiState> {
    let reserve = OpenApiRouter::new().routes(routes!(reserve));
    let reservation = OpenApiRouter::new().routes(routes!(get_reservation, release_reservation));
    guarded(
        reserve,
        state,
        WriteGuard {
            writers: Writers::AdminOrChannel,
            refusal: Refusal::Forbidden("reserve stock"),
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    )
    .merge(guarded(
        reservation,
        state,
        WriteGuard {
            writers: Writers::AdminOrChannel,
            refusal: Refusal::NotFound { what: "reservation", param: "reservation_id" },
            body_limit: crate::BODY_LIMIT_BYTES,
        },
    ))
}

fn scope<'a>(caller: &'a Principal, id: &str) -> Result<Option<&'a allot_core::ChannelId>, ApiError> {
    super::channel_scope(caller, "reservation", id)
}

/// Reserve stock for a cart: every line or nothing (409 names the short lines). Reserved
/// stock is out of ATP until the reservation expires, is released, or an order converts it
/// (`reservation_id` on `POST /v1/orders`).
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations",
    request_body = ReservationParam,
    responses((status = 201, body = ReservationView), (status = 409, description = "not enough stock", body = Problem),
              (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn reserve(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Body(p): Body<ReservationParam>,
) -> ApiResult<(StatusCode, Json<ReservationView>)> {
    let owner = match &caller.role {
        Role::Admin => None,
        Role::Channel(c) => Some(c.clone()),
        Role::Node(_) => return Err(allot_app::AppError::Forbidden { action: "reserve stock" }.into()),
    };
    let input = p.parse(owner).map_err(ApiError::invalid)?;
    let r = s.app.reserve(input).await?;
    Ok((StatusCode::CREATED, Json(ReservationView::new(r, s.app.now_ms()))))
}

/// A reservation (a channel key sees only its own).
#[utoipa::path(get, path = "/v1/reservations/{reservation_id}", tag = "reservations",
    params(("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationView), (status = 404, body = Problem)),
    security(("api_key" = [])))]
async fn get_reservation(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<ReservationView>> {
    let r = s.app.reservation_for(&super::reservation_id(&id)?, scope(&caller, &id)?).await?;
    Ok(Json(ReservationView::new(r, s.app.now_ms())))
}

/// Release a reservation: its stock returns to ATP at once. Releasing one already released
/// or expired answers it as it is; one converted into an order is 409.
#[utoipa::path(delete, path = "/v1/reservations/{reservation_id}", tag = "reservations",
    params(("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("api_key" = [])))]
async fn release_reservation(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    CleanPath(id): CleanPath<String>,
) -> ApiResult<Json<ReservationView>> {
    let r = s.app.release_reservation(&super::reservation_id(&id)?, scope(&caller, &id)?).await?;
    Ok(Json(ReservationView::new(r, s.app.now_ms())))
}
