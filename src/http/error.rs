//! The one error shape of the HTTP API: `{"error": {"code", "message"}}` with the code's
//! status from the table in `crate::codes`, for service errors and for requests axum itself
//! rejects. A 5xx body says nothing internal: the details ride in a response extension and
//! the request layer (`http::guard`) logs them once.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::codes::Code;
use crate::service::ServiceError;

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    /// What the client reads: names the bad value and the fix; never internals.
    pub message: String,
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the log only.
    pub detail: Option<String>,
}

/// The internal details of a failed request, for the request layer to log.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        let retry_after = (code.status() == 503).then_some(1);
        ApiError { code, message: message.into(), retry_after, detail: None }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).expect("the code table holds valid statuses")
    }

    pub fn too_many(retry_after_secs: u64, what: &str) -> ApiError {
        ApiError { retry_after: Some(retry_after_secs.max(1)), ..ApiError::new(Code::RateLimited, format!("too many requests {what}; retry later")) }
    }

    pub fn not_found_route() -> ApiError {
        ApiError::new(Code::NotFound, "no such endpoint")
    }

    /// The `error` object of the body (also sent on WebSockets).
    pub fn body(&self) -> Value {
        json!({"code": self.code.name(), "message": self.message})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(json!({"error": self.body()}))).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(detail) = self.detail {
            response.extensions_mut().insert(ErrorDetail(detail));
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        // Server faults get a message that says what to do, never what broke inside.
        let message = match &e {
            ServiceError::Internal(_) => "the server failed to handle the request; the log has the details".to_string(),
            ServiceError::Unavailable(_) => "the store cannot write now; retry shortly".to_string(),
            other => other.to_string(),
        };
        let detail = (code.status() >= 500).then(|| e.to_string());
        ApiError { detail, ..ApiError::new(code, message) }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(Code::BadRequest, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(Code::BadRequest, r.body_text())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn server_faults_keep_their_details_out_of_the_body() {
        let e = ApiError::from(ServiceError::Internal("open /var/lib/kefu/store: Permission denied (os error 13)".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("os error"), "{}", e.message);
        let response = e.into_response();
        let detail = response.extensions().get::<ErrorDetail>().expect("the layer gets the details");
        assert!(detail.0.contains("os error 13"));
        let e = ApiError::from(ServiceError::Unavailable(StoreError::WriterGone));
        assert_eq!((e.status(), e.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(1)));
        assert!(!e.message.contains("writer"), "{}", e.message);
    }

    #[test]
    fn refusals_keep_their_code_and_message() {
        let e = ApiError::from(ServiceError::refused(Code::MessageTooLong, "the message has 2001 characters; at most 2000 are allowed"));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.body(), json!({"code": "message_too_long", "message": "the message has 2001 characters; at most 2000 are allowed"}));
        assert!(e.detail.is_none());
        let r = ApiError::from(ServiceError::Unauthorized).into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
