//! Work that blocks (reading files) run off the async threads.
//!
//! A leaf. A panic on the blocking thread is resumed on the caller's, so a bug is reported as
//! a bug (the panic hook says so) instead of turning into an error a user would act on.

/// Runs `f` on tokio's blocking pool and returns its value.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        // Only a runtime shutting down cancels a blocking task; nobody is left to answer.
        Err(_) => std::future::pending().await,
    }
}
