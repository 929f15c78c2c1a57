//! Report endpoints (the admin token or an admin's session, checked by `http::admin_gate`): a report over a date range as JSON, and one of its
//! tables as CSV for spreadsheets.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use axum::http::Uri;

use super::{ApiError, ApiResult, AppState, Json};
use crate::codes::Code;
use crate::service::reports::{self, Table};
use crate::service::{Range, Report};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/reports", get(report))
        .route("/admin/reports/csv", get(report_csv))
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

/// Read from the URI in the handler, after `http::admin_gate` checked the caller, so a
/// caller without the admin role learns nothing (not even which parameters are missing).
fn query(uri: &Uri) -> ApiResult<RangeQuery> {
    let q = axum::extract::Query::<RangeQuery>::try_from_uri(uri)
        .map_err(|e| ApiError::new(Code::InvalidRange, format!("a report needs from=YYYY-MM-DD&to=YYYY-MM-DD: {}", e.body_text())))?;
    Ok(q.0)
}

async fn compute(s: &AppState, q: &RangeQuery) -> ApiResult<Report> {
    let offset = q.utc_offset_minutes.unwrap_or_else(|| s.service.report_offset_minutes());
    let range = Range::parse(&q.from, &q.to, offset)?;
    Ok(s.service.report(range).await?)
}

async fn report(State(s): State<AppState>, uri: Uri) -> ApiResult<Json<Report>> {
    let q = query(&uri)?;
    if q.table.is_some() {
        return Err(ApiError::new(Code::BadRequest, "table is for /admin/reports/csv only"));
    }
    Ok(Json(compute(&s, &q).await?))
}

async fn report_csv(State(s): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let q = query(&uri)?;
    let table = Table::parse(q.table.as_deref().unwrap_or("days"))?;
    let report = compute(&s, &q).await?;
    let body = reports::csv(&report, table)?;
    let name = format!("kefu-{}-{}-to-{}.csv", q.table.as_deref().unwrap_or("days"), report.from, report.to);
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        body,
    )
        .into_response())
}
