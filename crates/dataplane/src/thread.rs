//! A dataplane on a thread of its own. A sync blocks on the kernel for as long as it
//! takes (seconds at 10,000 Services): on this thread, it holds no async worker and no
//! lock of the sync loop's, so the loop keeps taking source events meanwhile. The
//! async side hands the thread the desired state to program, shared (an [`Arc`], not a
//! copy), and gets it back with the [`SyncSummary`], so that once a sync has returned
//! the caller holds the state alone again and may change it in place.
//!
//! A dedicated thread rather than tokio's blocking pool: the dataplane lives as long as
//! the process and keeps its kernel connections on the thread that made them, and a task
//! that never ends would keep the pool from shutting down.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

use crate::error::{Context as _, Error};
use crate::{Dataplane, SyncSummary};

/// What the async side asks of the thread.
enum Request<S> {
    Sync {
        state: Arc<S>,
        full: bool,
        reply: oneshot::Sender<(SyncSummary, Arc<S>)>,
    },
    NodeAddresses {
        reply: oneshot::Sender<Result<BTreeSet<IpAddr>, Error>>,
    },
}

/// The handle on a dataplane `D` running on its thread.
#[derive(Debug)]
pub struct DataplaneThread<D: Dataplane> {
    requests: mpsc::Sender<Request<D::State>>,
    /// Closed when the thread has ended (its dataplane dropped).
    ended: oneshot::Receiver<()>,
}

/// The dataplane's thread is gone: it panicked (the panic is printed on stderr). Nothing
/// programs the kernel any more.
#[derive(Debug, thiserror::Error)]
#[error("the dataplane's thread stopped: it panicked")]
pub struct Stopped;

impl<D> DataplaneThread<D>
where
    D: Dataplane + 'static,
    D::State: Send + Sync + 'static,
{
    /// Starts the thread, which makes its dataplane with `start` (so its kernel
    /// connections belong to it) and then serves the handle's calls until the handle is
    /// stopped or dropped.
    ///
    /// # Errors
    /// `start`'s error; an [`Error`] when the thread cannot be spawned, [`Stopped`] when
    /// it panics while starting.
    pub async fn start<E>(start: impl FnOnce() -> Result<D, E> + Send + 'static) -> Result<Self, E>
    where
        E: From<Error> + From<Stopped> + Send + 'static,
    {
        let (requests, incoming) = mpsc::channel();
        let (started, made) = oneshot::channel();
        let (end, ended) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || {
                // Dropped last: the dataplane has gone when the handle hears of the end.
                let _end = end;
                match start() {
                    Ok(dataplane) => {
                        // The handle waits for this; it cannot be gone.
                        let _ = started.send(Ok(()));
                        serve(dataplane, &incoming);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })
            .context("spawning the dataplane's thread")?;
        made.await.map_err(|_| Stopped)??;
        Ok(DataplaneThread { requests, ended })
    }

    /// Brings the kernel to `state` ([`Dataplane::sync`]) on the thread; returns the
    /// summary and `state`, which the thread no longer holds.
    ///
    /// # Errors
    /// [`Stopped`] when the thread is gone.
    pub async fn sync(
        &self,
        state: Arc<D::State>,
        full: bool,
    ) -> Result<(SyncSummary, Arc<D::State>), Stopped> {
        let (reply, summary) = oneshot::channel();
        self.ask(Request::Sync { state, full, reply })?;
        summary.await.map_err(|_| Stopped)
    }

    /// The node's own interface addresses ([`Dataplane::node_addresses`]), read on the
    /// thread: whether they could be listed.
    ///
    /// # Errors
    /// [`Stopped`] when the thread is gone.
    pub async fn node_addresses(&self) -> Result<Result<BTreeSet<IpAddr>, Error>, Stopped> {
        let (reply, addresses) = oneshot::channel();
        self.ask(Request::NodeAddresses { reply })?;
        addresses.await.map_err(|_| Stopped)
    }

    /// Lets the call in progress finish (a sync is not cut short), then ends the thread
    /// and drops the dataplane; the kernel keeps what was programmed.
    pub async fn stop(self) {
        let DataplaneThread { requests, ended } = self;
        drop(requests);
        // Closed, never sent: the end is the sender dropped.
        let _ = ended.await;
    }

    fn ask(&self, request: Request<D::State>) -> Result<(), Stopped> {
        self.requests.send(request).map_err(|_| Stopped)
    }
}

/// Serves the handle's calls in order until it is dropped.
fn serve<D: Dataplane>(mut dataplane: D, requests: &mpsc::Receiver<Request<D::State>>) {
    for request in requests {
        // A caller that stopped waiting (the daemon stopping) gets no answer.
        match request {
            Request::Sync { state, full, reply } => {
                let summary = dataplane.sync(&state, full);
                let _ = reply.send((summary, state));
            }
            Request::NodeAddresses { reply } => {
                let _ = reply.send(dataplane.node_addresses());
            }
        }
    }
}
