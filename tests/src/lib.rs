//! `idgate-tests`: the end-to-end test crate of the workspace. Everything lives in the `e2e` test binary
//! (`tests/e2e/main.rs`); this library is empty and exists only so the package has a library target.
