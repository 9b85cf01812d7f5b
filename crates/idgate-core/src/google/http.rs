//! How idgate talks HTTP to Google: which client, how long a request may take, and how transient failures are
//! retried. Shared by the metadata-server client here and by every token source of `idgate-client`.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};

use crate::ErrorChain;

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest body idgate reads from a Google endpoint: tokens are about 1 KiB, error bodies a few hundred bytes,
/// metadata facts a few bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why [`read_capped`] returned no body. Exhaustive on purpose: a body is either too large or its connection failed.
#[derive(Debug)]
pub enum CappedReadError {
    /// The body is (or announces itself as) larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// The connection failed while the body was read.
    Transport(reqwest::Error),
}

/// Reads `response`'s body, refusing one over [`MAX_BODY_BYTES`] before (by `Content-Length`) or while reading it,
/// so no endpoint can make idgate buffer without bound. Every Google answer idgate reads goes through here.
///
/// # Errors
///
/// [`CappedReadError`].
pub async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, CappedReadError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(CappedReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CappedReadError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(CappedReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How transient failures are retried: transport errors, timeouts, HTTP 5xx and 429. Client errors (4xx) are never
/// retried.
///
/// The default makes at most 3 attempts, waiting about 200 ms and then 400 ms (exponential, with jitter, each wait
/// capped at 2 s).
///
/// ```
/// use idgate_core::google::RetryPolicy;
/// use std::time::Duration;
///
/// let patient = RetryPolicy::default().max_attempts(5).max_delay(Duration::from_secs(5));
/// assert_eq!(patient.attempts(), 5);
/// assert_eq!(RetryPolicy::none().attempts(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The total number of attempts (at least 1, at most 10).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.clamp(1, 10);
        self
    }

    /// The wait before the first retry; later waits double.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest single wait between attempts.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The configured number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Runs `attempt` until it succeeds, fails with an error `is_transient` refuses, or the attempts are spent,
    /// sleeping the policy's backoff between attempts. Returns the last outcome and how many attempts were made.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use idgate_core::google::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::default().initial_delay(Duration::from_millis(1));
    /// let mut calls = 0;
    /// let (result, attempts) = policy
    ///     .run(
    ///         || {
    ///             calls += 1;
    ///             let outcome = if calls < 3 { Err(std::io::Error::other("busy")) } else { Ok(calls) };
    ///             async move { outcome }
    ///         },
    ///         |_| true,
    ///     )
    ///     .await;
    /// assert_eq!((result.unwrap(), attempts), (3, 3));
    /// # }
    /// ```
    pub async fn run<T, E, F, Fut>(
        &self,
        mut attempt: F,
        is_transient: impl Fn(&E) -> bool,
    ) -> (Result<T, E>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Error + 'static,
    {
        let mut delays = self.backoff().build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match attempt().await {
                Ok(value) => return (Ok(value), attempts),
                Err(error) => error,
            };
            if !is_transient(&error) {
                return (Err(error), attempts);
            }
            let Some(delay) = delays.next() else {
                return (Err(error), attempts);
            };
            tracing::debug!(
                target: "idgate::http",
                error = %ErrorChain(&error),
                retry_in = ?delay,
                "transient failure, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay.max(self.initial_delay))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }
}

/// The HTTP settings of anything idgate sends to Google: the client (connection pool, proxy, TLS), the
/// per-request timeout and the [`RetryPolicy`]. One value configures every source of `idgate-client` and the
/// [`MetadataClient`](super::MetadataClient).
///
/// Without a client of your own, each caller uses a shared default suited to where it sends: the metadata server's
/// never goes through a proxy and never follows redirects; the one for Google's public endpoints honours the
/// proxy settings and follows no redirect either (a followed 307 would re-post a refresh token or an assertion).
///
/// ```
/// use idgate_core::google::{HttpOptions, RetryPolicy};
/// use std::time::Duration;
///
/// let options = HttpOptions::new()
///     .timeout(Duration::from_secs(3))
///     .retry(RetryPolicy::default().max_attempts(5));
/// assert_eq!(options.timeout, Duration::from_secs(3));
/// assert_eq!(options.retry.attempts(), 5);
/// assert!(options.client.is_none());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// The client requests are sent with; `None` for the shared default of each caller.
    pub client: Option<reqwest::Client>,
    /// How long one attempt may take (default [`DEFAULT_TIMEOUT`], 10 s).
    pub timeout: Duration,
    /// How transient failures are retried (default: 3 attempts with exponential backoff).
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            client: None,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpOptions {
    /// The defaults: the caller's shared client, a 10 s timeout, 3 attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends with `client` instead of the caller's shared default (to share a connection pool, or set a proxy).
    #[must_use]
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// How long one attempt may take.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How transient failures are retried.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failure {0}")]
    struct Failure(u32);

    #[tokio::test(start_paused = true)]
    async fn run_stops_at_a_permanent_error_and_at_the_last_attempt() {
        let policy = RetryPolicy::default().max_attempts(4);
        let mut calls = 0;
        let (result, attempts) = policy
            .run(
                || {
                    calls += 1;
                    let n = calls;
                    async move { Err::<(), _>(Failure(n)) }
                },
                |e| e.0 < 2,
            )
            .await;
        assert_eq!((result.unwrap_err().0, attempts), (2, 2));

        let (result, attempts) = policy
            .run(|| async { Err::<(), _>(Failure(0)) }, |_| true)
            .await;
        assert!(result.is_err());
        assert_eq!(attempts, 4);

        let (result, attempts) = RetryPolicy::none()
            .run(|| async { Err::<(), _>(Failure(0)) }, |_| true)
            .await;
        assert!(result.is_err());
        assert_eq!(attempts, 1);
    }
}
