use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use provisor_domain::csv;
use provisor_store::ImportSummary;
use serde::Deserialize;

use super::blocking;
use crate::AppState;
use crate::auth::InDomain;
use crate::error::{ApiResult, Problem};
use crate::extract::{Body, Json, Query};

/// Imports users, SIP accounts and devices from CSV in one transaction. If any row is bad,
/// nothing is imported and the answer lists every bad row with its line number.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/import", tag = "bulk", params(("domain" = String, Path)),
    request_body(content = String, content_type = "text/csv", description = "The CSV format of docs/import-format.md"),
    responses((status = 200, body = ImportSummary), (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 413, body = Problem), (status = 422, description = "Bad rows; nothing imported", body = Problem)))]
pub async fn import(
    State(st): State<AppState>,
    d: InDomain,
    Body(body): Body,
) -> ApiResult<Json<ImportSummary>> {
    // Rows refused while reading travel in the plan; the store adds its own and rejects all.
    let plan = blocking(move || csv::read(&body)).await?;
    Ok(Json(st.store.import(d.actor(), d.id(), &plan).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Include SIP passwords in clear (operators only).
    #[serde(default)]
    passwords: bool,
}

/// Exports the domain in the import format; SIP passwords only if an operator asks.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/export", tag = "bulk", params(("domain" = String, Path), ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn export(
    State(st): State<AppState>,
    d: InDomain,
    Query(q): Query<ExportQuery>,
) -> ApiResult<impl IntoResponse> {
    if q.passwords {
        d.principal.require_operator()?;
    }
    let rows = st.store.export(d.id(), q.passwords).await?;
    let text = blocking(move || csv::write(&rows)).await?;
    let disposition = format!("attachment; filename=\"{}.csv\"", d.domain.name);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        text,
    ))
}
