//! Store access from handlers. A store call may wait on the disk (a page not in sled's cache,
//! a flush of an endpoint write), and a runtime worker that waits stops every other request and
//! delivery scheduled on it. Handlers hand such calls to tokio's blocking pool instead.

use crate::error::{ApiError, ErrorCode};

/// Runs `f` on the blocking pool and returns its result. A panic in `f` answers a 500.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "blocking store call failed");
            Err(ApiError::new(ErrorCode::InternalError, "internal error"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_off_the_runtime_thread_and_returns_the_result() {
        let caller = std::thread::current().id();
        let (ran_on, v) = blocking(|| Ok((std::thread::current().id(), 7)))
            .await
            .unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(v, 7);
        let e = blocking(|| -> Result<(), ApiError> { Err(ApiError::not_found("thing")) })
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
    }
}
