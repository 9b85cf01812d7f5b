//! How the threads of [`serve_on_threads`](crate::serve_on_threads) share out connections.
//!
//! Every thread accepts from the one listening socket, and the thread that wins the race to a new connection keeps
//! winning: left to it, eight connections opened one after another all went to one of two threads (the test
//! `on_threads_connections_opened_at_once_are_shared_out_evenly`, with the balancing switched off), and under
//! `probe-proxy`'s 32 connections one thread used 2.4 × the CPU of the other, the busier one bounding the
//! throughput. So the thread that accepts a connection gives it to the thread serving the fewest (itself on a tie),
//! as Envoy's exact connection balancer does: one hand-off per connection, none per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// The threads' connection counts and the way to hand each of them a connection.
#[derive(Debug)]
pub(crate) struct Balancer {
    /// Connections each thread serves (or has been handed and not yet started).
    live: Box<[AtomicUsize]>,
    inboxes: Box<[mpsc::UnboundedSender<Handoff>]>,
}

/// One thread's part: its number, the balancer, and where connections handed to it arrive.
#[derive(Debug)]
pub(crate) struct Share {
    pub(crate) thread: usize,
    pub(crate) balancer: Arc<Balancer>,
    pub(crate) inbox: mpsc::UnboundedReceiver<Handoff>,
}

/// A connection accepted by one thread for another to serve.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) slot: OwnedSemaphorePermit,
    pub(crate) live: Live,
}

/// A connection counted on its thread, until dropped.
#[derive(Debug)]
pub(crate) struct Live {
    balancer: Arc<Balancer>,
    pub(crate) thread: usize,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.balancer.live[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// A balancer for `threads` threads, and each thread's share, in thread order.
    pub(crate) fn shares(threads: usize) -> Vec<Share> {
        let (inboxes, receivers): (Vec<_>, Vec<_>) =
            (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
        let balancer = Arc::new(Self {
            live: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            inboxes: inboxes.into(),
        });
        receivers
            .into_iter()
            .enumerate()
            .map(|(thread, inbox)| Share {
                thread,
                balancer: Arc::clone(&balancer),
                inbox,
            })
            .collect()
    }
}

impl Share {
    /// The thread that should serve a connection `self` just accepted: the one serving the fewest, this one on a
    /// tie; counted there from now on.
    pub(crate) fn assign(&self) -> Live {
        let balancer = &self.balancer;
        let mut best = self.thread;
        let mut fewest = balancer.live[best].load(Ordering::Relaxed);
        for (thread, live) in balancer.live.iter().enumerate() {
            let live = live.load(Ordering::Relaxed);
            if live < fewest {
                (best, fewest) = (thread, live);
            }
        }
        balancer.live[best].fetch_add(1, Ordering::Relaxed);
        Live {
            balancer: Arc::clone(balancer),
            thread: best,
        }
    }

    /// Hands `handoff` to the thread its [`Live`] counts it on; gives it back when that thread has stopped.
    pub(crate) fn hand_off(&self, handoff: Handoff) -> Result<(), Handoff> {
        let thread = handoff.live.thread;
        self.balancer.inboxes[thread]
            .send(handoff)
            .map_err(|unsent| unsent.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_goes_to_the_thread_serving_the_fewest() {
        let shares = Balancer::shares(3);
        // Thread 0 accepts a burst: it keeps the first, then shares out the rest evenly.
        let first: Vec<Live> = (0..6).map(|_| shares[0].assign()).collect();
        let threads: Vec<usize> = first.iter().map(|live| live.thread).collect();
        assert_eq!(threads, [0, 1, 2, 0, 1, 2]);
        // Two of thread 1's connections close: the next two go there, whoever accepts them.
        let mut first = first;
        first.remove(4);
        first.remove(1);
        let (a, b) = (shares[2].assign(), shares[0].assign());
        assert_eq!((a.thread, b.thread), (1, 1));
        // All even: the accepting thread keeps it.
        let c = shares[2].assign();
        assert_eq!(c.thread, 2);
        // A connection's end uncounts it: thread 0 now serves the fewest.
        drop(first.remove(0));
        assert_eq!(shares[1].assign().thread, 0);
    }
}
