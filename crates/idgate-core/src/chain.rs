//! Printing an error with its causes.
//!
//! idgate's errors follow one rule (as rustls and the Rust API guidelines do): an error's `Display` says what went
//! wrong at its own level, and the error that caused it is returned by [`Error::source`], never also
//! interpolated into the message. Printing `{err}` therefore shows one level; [`ErrorChain`] shows them all.

use std::error::Error;
use std::fmt;

/// The most causes [`ErrorChain`] follows, so that a cyclic or absurdly deep chain cannot loop forever.
const MAX_DEPTH: usize = 16;

/// Displays an error followed by each of its causes, separated by `": "`.
///
/// ```
/// use idgate_core::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot load the keys")]
/// struct Outer(#[source] std::io::Error);
///
/// let err = Outer(std::io::Error::other("connection refused"));
/// assert_eq!(err.to_string(), "cannot load the keys");
/// assert_eq!(ErrorChain(&err).to_string(), "cannot load the keys: connection refused");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        let mut depth = 0;
        while let Some(cause) = next {
            if depth == MAX_DEPTH {
                return f.write_str(": …");
            }
            write!(f, ": {cause}")?;
            next = cause.source();
            depth += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Looping;

    impl fmt::Display for Looping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("again")
        }
    }

    impl Error for Looping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self)
        }
    }

    #[test]
    fn a_cyclic_chain_ends() {
        let text = ErrorChain(&Looping).to_string();
        assert_eq!(text.matches("again").count(), MAX_DEPTH + 1);
        assert!(text.ends_with(": …"));
    }

    #[test]
    fn an_error_without_a_cause_prints_alone() {
        assert_eq!(ErrorChain(&fmt::Error).to_string(), fmt::Error.to_string());
    }
}
