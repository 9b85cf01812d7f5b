//! Timing helpers: interleaved, chunked measurement of single-threaded operations, and polling a future that is
//! ready at once without paying for an executor.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What one operation measured: how many ran, for how long, and per-op times of each chunk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// Per-op nanoseconds of each chunk of ops.
    pub(crate) chunk_ns: Vec<f64>,
}

impl Sample {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// The median, over chunks, of the mean per-op time: robust to the odd descheduled chunk.
    pub(crate) fn median_us(&self) -> f64 {
        median(&self.chunk_ns) / 1000.0
    }
}

pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// A named operation taking the index of the input to use.
pub(crate) type Op<'a> = (&'a str, Box<dyn FnMut(usize) + 'a>);

/// Runs every op side by side: `rounds` rounds, in each of which every op runs for `slice`, in chunks of `chunk`
/// consecutive calls. Interleaving spreads the machine's noise (other builds) evenly over the contenders.
pub(crate) fn interleaved(
    ops: &mut [Op<'_>],
    rounds: usize,
    slice: Duration,
    chunk: usize,
) -> Vec<Sample> {
    let mut samples = vec![Sample::default(); ops.len()];
    let mut index = 0usize;
    for _ in 0..rounds {
        for (sample, (_, op)) in samples.iter_mut().zip(ops.iter_mut()) {
            let start = Instant::now();
            while start.elapsed() < slice {
                let t = Instant::now();
                for _ in 0..chunk {
                    op(index);
                    index = index.wrapping_add(1);
                }
                let dt = t.elapsed();
                sample.ops += chunk as u64;
                sample.elapsed += dt;
                sample.chunk_ns.push(dt.as_nanos() as f64 / chunk as f64);
            }
        }
    }
    samples
}

/// Polls `future` once with a no-op waker; if it is not ready (a key fetch, a lock), finishes it on `runtime`.
/// A warm verification completes on its first poll, so this measures it without an executor's overhead, for
/// idgate and peers alike.
pub(crate) fn run<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => runtime.block_on(future),
    }
}

/// Polls a future that must be ready at once.
pub(crate) fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected a future that is ready at once"),
    }
}
