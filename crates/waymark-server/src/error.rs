//! The HTTP error type: every failure leaves as `{status, code, message}` JSON with a stable `code` from
//! [`waymark_domain::ErrorCode`], plus the offending field when one is known.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use waymark_domain::{ErrorCode, Rejection};
use waymark_store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for 429/503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<Detail<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    error_code: &'a str,
    field_name: &'a str,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), field: None, retry_after: None }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn bad_query(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidQueryParameter, message)
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON body, for embedding in batch results.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v =
            serde_json::json!({"status": self.code.http_status(), "code": self.code.as_str(), "message": self.message});
        if let Some(f) = &self.field {
            v["details"] = serde_json::json!([{"errorCode": self.code.as_str(), "fieldName": f}]);
        }
        v
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError { code: r.code, message: r.message, field: r.field, retry_after: None }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                ApiError::new(
                    ErrorCode::StoreUnavailable,
                    "the store is temporarily unavailable; nothing was saved, retry shortly",
                )
                .with_retry_after(1)
            }
            StoreError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(ErrorCode::Internal, "an internal error occurred; it has been logged")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            status: self.code.http_status(),
            code: self.code.as_str(),
            message: &self.message,
            details: self
                .field
                .as_deref()
                .map(|f| vec![Detail { error_code: self.code.as_str(), field_name: f }])
                .unwrap_or_default(),
        };
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
