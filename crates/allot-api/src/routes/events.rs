//! `/v1/events`: the event stream for pull consumers (ordered, resumable).

use allot_app::{Principal, Role};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::query::QueryPairs;

pub fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// Default and largest page.
pub const EVENT_PAGE_DEFAULT: i64 = 100;
pub const EVENT_PAGE_MAX: i64 = 1000;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub order_id: Option<String>,
    pub node_id: Option<String>,
    pub at: String,
    /// Payload version.
    pub version: i32,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who caused it: `channel:<id>`, `node:<id>`, `operator` (an admin key) or `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl From<allot_app::StoredEvent> for EventView {
    fn from(e: allot_app::StoredEvent) -> EventView {
        EventView {
            id: e.event_id,
            event_type: e.event_type,
            order_id: e.order_id,
            node_id: e.node_id,
            at: jiff::Timestamp::from_millisecond(e.at_ms).map(|t| t.to_string()).unwrap_or_default(),
            version: e.version,
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            actor: e.actor,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventView>,
    /// Pass as `after` to continue; also given when the page is empty (the same cursor).
    pub next_cursor: String,
}

/// Events, oldest first, after a cursor. A channel key sees only its channel's events.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("after" = Option<String>, Query, description = "`next_cursor` of the previous page; default: the start"),
           ("type" = Option<String>, Query, description = "e.g. order.created"),
           ("order_id" = Option<String>, Query),
           ("limit" = Option<i64>, Query, description = "1–1000, default 100")),
    responses((status = 200, body = EventList), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = [])))]
async fn list_events(
    State(s): State<ApiState>,
    Extension(caller): Extension<Principal>,
    q: QueryPairs,
) -> ApiResult<Json<EventList>> {
    q.only(&["after", "type", "order_id", "limit"])?;
    let scope = match &caller.role {
        Role::Admin => None,
        Role::Channel(c) => Some(c),
        Role::Node(_) => return Err(allot_app::AppError::Forbidden { action: "read the event stream" }.into()),
    };
    let mut errors = Vec::new();
    let after = match q.single("after")? {
        None => allot_app::EventCursor::default(),
        Some(c) => allot_app::EventCursor::parse(c).unwrap_or_else(|| {
            errors.push(allot_app::FieldError::new("after", "not a cursor from this endpoint"));
            allot_app::EventCursor::default()
        }),
    };
    let limit = q.parse::<i64>("limit")?.unwrap_or(EVENT_PAGE_DEFAULT);
    if !(1..=EVENT_PAGE_MAX).contains(&limit) {
        errors.push(allot_app::FieldError::new("limit", format!("must be 1–{EVENT_PAGE_MAX}")));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let filter = allot_app::EventFilter {
        after,
        event_type: q.single("type")?.map(str::to_owned),
        order_id: q.single("order_id")?.map(str::to_owned),
        channel: None,
        limit,
    };
    let events = s.app.events(filter, scope).await?;
    let next_cursor = events.last().map_or(after, |e| allot_app::EventCursor { tx: e.tx, seq: e.seq }).to_string();
    let events = events.into_iter().map(EventView::from).collect();
    Ok(Json(EventList { events, next_cursor }))
}
