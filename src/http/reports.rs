//! Report endpoints (admin bearer token): a report over a date range as JSON, and one of its
//! tables as CSV for spreadsheets.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiResult, AppState, Bearer, Json, Query};
use crate::service::reports::{self, Table};
use crate::service::{Range, Report};

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/reports", get(report)).route("/admin/reports/csv", get(report_csv))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    /// First and last local day, `YYYY-MM-DD`, both included.
    from: String,
    to: String,
    /// Local time's offset from UTC; default: the business hours' (`hours.utc_offset_minutes`).
    utc_offset_minutes: Option<i32>,
    /// CSV only: `days` (default), `agents`, `articles` or `questions`.
    table: Option<String>,
}

async fn compute(s: &AppState, bearer: &Bearer, q: &RangeQuery) -> ApiResult<Report> {
    s.service.authorize_admin(bearer.token()?)?;
    let offset = q.utc_offset_minutes.unwrap_or_else(|| s.service.report_offset_minutes());
    let range = Range::parse(&q.from, &q.to, offset)?;
    Ok(s.service.report(range).await?)
}

async fn report(State(s): State<AppState>, bearer: Bearer, Query(q): Query<RangeQuery>) -> ApiResult<Json<Report>> {
    if q.table.is_some() {
        return Err(super::ApiError::new(crate::codes::Code::BadRequest, "table is for /admin/reports/csv only"));
    }
    Ok(Json(compute(&s, &bearer, &q).await?))
}

async fn report_csv(State(s): State<AppState>, bearer: Bearer, Query(q): Query<RangeQuery>) -> ApiResult<Response> {
    let table = Table::parse(q.table.as_deref().unwrap_or("days"))?;
    let report = compute(&s, &bearer, &q).await?;
    let body = reports::csv(&report, table)?;
    let name = format!("kefu-{}-{}-to-{}.csv", q.table.as_deref().unwrap_or("days"), report.from, report.to);
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        body,
    )
        .into_response())
}
