//! One error type for every handler, answered as RFC 7807 problem JSON with a stable
//! `type` per kind. Internal details are logged, never returned.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use provisor_domain::Invalid;
use provisor_domain::csv::RowError;
use provisor_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("the portal login (user@domain and password, HTTP Basic) is not valid")]
    PortalLogin,
    #[error("too many failed attempts; try again later")]
    TooManyAttempts(std::time::Duration),
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body is larger than this endpoint accepts")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A template that cannot be stored, with where it goes wrong.
    #[error("{0}")]
    Template(provisor_render::TemplateProblem),
    #[error("{} rows are bad; nothing was imported", .0.len())]
    ImportRejected(Vec<RowError>),
    #[error("the database is not reachable")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

/// The problem document (RFC 7807) every error answers with.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:provisor:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, for `invalid-field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Where a template goes wrong (1-based), for `invalid-template`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Every bad row, for `import-rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<RowError>>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-field",
                "A field has an invalid value",
            ),
            BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The request cannot be read",
            ),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Conflict(_) => (
                StatusCode::CONFLICT,
                "conflict",
                "Conflict with existing data",
            ),
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            PortalLogin => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            TooManyAttempts(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many failed attempts",
            ),
            Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed for this token",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type",
            ),
            Template(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-template",
                "The template cannot be used",
            ),
            ImportRejected(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "import-rejected",
                "The import was rejected",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    pub fn forbidden(why: impl Into<String>) -> Self {
        ApiError::Forbidden(why.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyAttempts(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        };
        let portal = matches!(self, ApiError::PortalLogin);
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "request failed");
                "the server could not complete the request; the cause is in its log".to_owned()
            }
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:provisor:problem:{kind}"),
            title,
            status: status.as_u16(),
            detail,
            field: match &self {
                ApiError::Invalid(i) => Some(i.field.clone()),
                _ => None,
            },
            line: match &self {
                ApiError::Template(p) => Some(p.line),
                _ => None,
            },
            column: match &self {
                ApiError::Template(p) => Some(p.column),
                _ => None,
            },
            errors: match self {
                ApiError::ImportRejected(rows) => Some(rows),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(wait) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        } else if portal {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"provisor portal\", charset=\"UTF-8\""),
            );
        } else if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"provisor\""),
            );
        }
        response
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(why) => ApiError::Conflict(why),
            StoreError::Invalid(i) => ApiError::Invalid(i),
            StoreError::Rows(rows) => ApiError::ImportRejected(rows),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
