//! Attach-path benchmarks (written in the next commit).

fn main() {}
