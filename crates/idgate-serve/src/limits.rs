//! [`ServerLimits`]: what one listener lets a client hold, and for how long.

use std::time::Duration;

/// The longest accepted header-read or idle timeout: one day. A longer one only keeps a silent client's descriptor
/// for longer.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The limits [`serve`](crate::serve) enforces on every connection. [`Default`] is what a listener facing
/// untrusted clients should start from; each setter refuses a value that would switch its limit off.
///
/// ```
/// use std::time::Duration;
/// use idgate_serve::ServerLimits;
///
/// let limits = ServerLimits::default()
///     .with_header_read_timeout(Duration::from_secs(5))?
///     .with_max_connections(256)?;
/// assert_eq!(limits.idle_timeout(), Duration::from_secs(60));
/// assert!(ServerLimits::default().with_max_connections(0).is_err());
/// # Ok::<(), idgate_serve::LimitError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    max_request_body_bytes: Option<u64>,
    drain_timeout: Duration,
    descriptors_per_connection: usize,
    max_concurrent_streams: u32,
}

impl ServerLimits {
    /// [`ServerLimits::header_read_timeout`]'s default: 10 s.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// [`ServerLimits::idle_timeout`]'s default: 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// [`ServerLimits::max_connections`]'s default: 1024.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    /// [`ServerLimits::max_request_body_bytes`]'s default: 32 MiB.
    pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 32 * 1024 * 1024;
    /// [`ServerLimits::drain_timeout`]'s default: 30 s.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    /// [`ServerLimits::max_concurrent_streams`]'s default: 100 (hyper's own is 200).
    pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

    /// How long a client may take to send a complete request head: from the accept for a connection's first request
    /// (so a connection that sends nothing at all is closed after it too), from the first byte of the next request
    /// on an HTTP/1 keep-alive connection.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// How long a connection with no request in flight (HTTP/1 keep-alive between requests, HTTP/2 with no open
    /// stream) is kept open; and how long a response with data to send may make no progress before its connection
    /// is closed (a client that stops reading, or keeps its HTTP/2 flow-control window shut, would otherwise hold
    /// its slot forever). A response body waiting for data is not cut.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How many connections are served at once. Further clients wait in the kernel's accept backlog, costing this
    /// process no file descriptor, until a connection closes. On Linux, [`serve`](crate::serve) lowers it (and
    /// warns) when it would not leave 64 descriptors under the process's open-file limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The largest request body accepted, in bytes; `None` when bodies are not limited here.
    pub fn max_request_body_bytes(&self) -> Option<u64> {
        self.max_request_body_bytes
    }

    /// After the shutdown signal, how long requests in flight may take to finish before their connections are
    /// closed anyway.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// How many file descriptors one served connection may hold (default 1): a reverse proxy holds its client's
    /// and an upstream connection's. The cap fitted under the open-file limit is divided by it.
    pub fn descriptors_per_connection(&self) -> usize {
        self.descriptors_per_connection
    }

    /// How many requests one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`): what one
    /// connection can ask of the handler (and, behind a proxy, of the upstream) at a time.
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// Sets [`ServerLimits::max_concurrent_streams`].
    ///
    /// # Errors
    ///
    /// [`LimitError::Zero`] for zero.
    pub fn with_max_concurrent_streams(mut self, streams: u32) -> Result<Self, LimitError> {
        if streams == 0 {
            return Err(LimitError::Zero("max_concurrent_streams"));
        }
        self.max_concurrent_streams = streams;
        Ok(self)
    }

    /// [`max_connections`](Self::max_connections) as [`serve`](crate::serve) applies it: lowered, on Linux, to fit
    /// [`descriptors_per_connection`](Self::descriptors_per_connection) descriptors per connection under the
    /// process's open-file limit with 64 to spare. A proxy sizes its upstream connection pool by it.
    pub fn fitted_max_connections(&self) -> usize {
        self.fitted_with_threads(0)
    }

    /// [`fitted_max_connections`](Self::fitted_max_connections) as [`serve_on_threads`](crate::serve_on_threads)
    /// applies it on `threads` threads: each thread holds descriptors of its own besides its clients' (its copy of
    /// the listener, its runtime's event queue and waker, its signal pipe), counted as
    /// [`DESCRIPTORS_PER_THREAD`](crate::DESCRIPTORS_PER_THREAD).
    pub fn fitted_max_connections_on_threads(&self, threads: std::num::NonZeroUsize) -> usize {
        self.fitted_with_threads(threads.get())
    }

    /// The cap fitted with `threads` serving threads' descriptors counted (0: the caller's runtime).
    pub(crate) fn fitted_with_threads(&self, threads: usize) -> usize {
        let per_thread = u64::try_from(crate::DESCRIPTORS_PER_THREAD.saturating_mul(threads))
            .unwrap_or(u64::MAX);
        crate::fit_under_descriptor_limit(
            self.max_connections,
            crate::open_file_limit().map(|limit| limit.saturating_sub(per_thread)),
            self.descriptors_per_connection,
        )
    }

    /// Sets [`ServerLimits::descriptors_per_connection`].
    #[must_use]
    pub fn with_descriptors_per_connection(mut self, descriptors: std::num::NonZeroUsize) -> Self {
        self.descriptors_per_connection = descriptors.get();
        self
    }

    /// Sets [`ServerLimits::header_read_timeout`].
    ///
    /// # Errors
    ///
    /// [`LimitError::Zero`] for zero, [`LimitError::TooLong`] over [`MAX_TIMEOUT`].
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Result<Self, LimitError> {
        self.header_read_timeout = timeout_in_range("header_read_timeout", timeout)?;
        Ok(self)
    }

    /// Sets [`ServerLimits::idle_timeout`].
    ///
    /// # Errors
    ///
    /// [`LimitError::Zero`] for zero, [`LimitError::TooLong`] over [`MAX_TIMEOUT`].
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Result<Self, LimitError> {
        self.idle_timeout = timeout_in_range("idle_timeout", timeout)?;
        Ok(self)
    }

    /// Sets [`ServerLimits::max_connections`].
    ///
    /// # Errors
    ///
    /// [`LimitError::Zero`] for zero.
    pub fn with_max_connections(mut self, connections: usize) -> Result<Self, LimitError> {
        if connections == 0 {
            return Err(LimitError::Zero("max_connections"));
        }
        self.max_connections = connections;
        Ok(self)
    }

    /// Sets [`ServerLimits::max_request_body_bytes`]. A body with a larger `Content-Length` is answered
    /// `413 Payload Too Large` before the router sees the request; a body of unknown length is cut where it passes
    /// the limit (the handler reads an error).
    ///
    /// # Errors
    ///
    /// [`LimitError::Zero`] for zero (use [`ServerLimits::without_request_body_limit`] to switch the limit off).
    pub fn with_max_request_body_bytes(mut self, bytes: u64) -> Result<Self, LimitError> {
        if bytes == 0 {
            return Err(LimitError::Zero("max_request_body_bytes"));
        }
        self.max_request_body_bytes = Some(bytes);
        Ok(self)
    }

    /// No request-body limit here: for a router that bounds bodies itself (axum's `DefaultBodyLimit` bounds the
    /// buffering extractors, not a body streamed elsewhere).
    #[must_use]
    pub fn without_request_body_limit(mut self) -> Self {
        self.max_request_body_bytes = None;
        self
    }

    /// Sets [`ServerLimits::drain_timeout`].
    ///
    /// # Errors
    ///
    /// [`LimitError::TooLong`] over [`MAX_TIMEOUT`]. Zero is allowed: connections are closed at once.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Result<Self, LimitError> {
        if timeout > MAX_TIMEOUT {
            return Err(LimitError::TooLong("drain_timeout"));
        }
        self.drain_timeout = timeout;
        Ok(self)
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_request_body_bytes: Some(Self::DEFAULT_MAX_REQUEST_BODY_BYTES),
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            descriptors_per_connection: 1,
            max_concurrent_streams: Self::DEFAULT_MAX_CONCURRENT_STREAMS,
        }
    }
}

fn timeout_in_range(name: &'static str, timeout: Duration) -> Result<Duration, LimitError> {
    if timeout.is_zero() {
        Err(LimitError::Zero(name))
    } else if timeout > MAX_TIMEOUT {
        Err(LimitError::TooLong(name))
    } else {
        Ok(timeout)
    }
}

/// A [`ServerLimits`] setter refused a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Zero would switch the limit off (or refuse every client); the setting is named.
    #[error("{0} must be at least 1: zero would switch the limit off")]
    Zero(&'static str),
    /// Longer than [`MAX_TIMEOUT`]; the setting is named.
    #[error("{0} may be at most one day (86400 s)")]
    TooLong(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let limits = ServerLimits::default();
        assert_eq!(limits.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(limits.idle_timeout(), Duration::from_secs(60));
        assert_eq!(limits.max_connections(), 1024);
        assert_eq!(limits.max_request_body_bytes(), Some(32 * 1024 * 1024));
        assert_eq!(limits.drain_timeout(), Duration::from_secs(30));

        assert_eq!(
            limits.clone().with_header_read_timeout(Duration::ZERO),
            Err(LimitError::Zero("header_read_timeout"))
        );
        assert_eq!(
            limits
                .clone()
                .with_idle_timeout(MAX_TIMEOUT + Duration::from_millis(1)),
            Err(LimitError::TooLong("idle_timeout"))
        );
        assert!(limits.clone().with_idle_timeout(MAX_TIMEOUT).is_ok());
        assert_eq!(
            limits.clone().with_max_connections(0),
            Err(LimitError::Zero("max_connections"))
        );
        assert_eq!(
            limits.clone().with_max_request_body_bytes(0),
            Err(LimitError::Zero("max_request_body_bytes"))
        );
        assert_eq!(
            limits
                .clone()
                .without_request_body_limit()
                .max_request_body_bytes(),
            None
        );
        assert!(limits.with_drain_timeout(Duration::ZERO).is_ok());
        assert!(
            LimitError::Zero("max_connections")
                .to_string()
                .contains("max_connections must be at least 1")
        );
    }
}
