//! The rtnetlink connection of a dataplane. `hostnet`'s link and address calls are
//! async (crate `rtnetlink`), the dataplane's thread is not: the connection runs on a
//! single-threaded runtime of its own, which the dataplane's thread drives for the length
//! of each call. Binding 10,000 addresses keeps 64 requests in flight either way.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;

use tokio::runtime::{Builder, Runtime};

use crate::error::{Context as _, Error};

/// An rtnetlink handle and the runtime its connection runs on.
#[derive(Debug)]
pub(crate) struct Rtnl {
    /// Always `Some` but in `drop`, which shuts it down without waiting.
    runtime: Option<Runtime>,
    handle: rtnetlink::Handle,
}

impl Rtnl {
    /// Opens the connection, for `op` (named in the error).
    ///
    /// # Errors
    /// When the runtime cannot be built or the socket cannot be opened.
    pub(crate) fn connect(op: &str) -> Result<Self, Error> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .context(op)?;
        let handle = {
            let _entered = runtime.enter();
            hostnet::netlink::connect().context(op)?
        };
        Ok(Rtnl {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `call` over the handle to completion, on the calling thread.
    ///
    /// # Panics
    /// On a thread that runs an async task (the dataplane's thread does not).
    pub(crate) fn run<'a, F: Future + 'a>(
        &'a self,
        call: impl FnOnce(&'a rtnetlink::Handle) -> F,
    ) -> F::Output {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.block_on(call(&self.handle))
    }

    /// The node's own addresses: every interface's but that of index `except`.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(crate) fn node_addresses(&self, except: u32) -> Result<BTreeSet<IpAddr>, Error> {
        self.run(|handle| hostnet::addresses::node_addresses(handle, except))
            .context("reading the node's addresses")
    }
}

impl Drop for Rtnl {
    /// Stops the connection without blocking, so a dataplane may be dropped anywhere,
    /// an async task included.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
