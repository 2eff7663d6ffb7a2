//! The kernel step of the pipeline (sources → model → desired state → plan →
//! **dataplane** → kernel), for both proxy modes: reads what the kernel
//! holds, has crate `reconcile` plan the difference, applies it, and says in
//! a [`SyncSummary`] what it did and which [`Part`]s could not be synced.
//!
//! - [`ipvs`]: IPVS mode (virtual servers, `kube-ipvs0`, ipsets, helper
//!   chains);
//! - [`iptables`]: kube-proxy's iptables mode, the fallback without IPVS;
//! - `tables`: the one way both apply iptables tables, and what a failure
//!   there means;
//! - `conntrack`: stale UDP flow cleanup, in both modes;
//! - [`cleanup()`]: `--cleanup`, removing everything of ours;
//! - [`Diff`]: the operations a sync would apply, as the live pre-flight
//!   ([`ipvs::IpvsPreview`]) prints them;
//! - [`inspect`]: a read-only look at some virtual servers (`explain --live`);
//! - [`DataplaneThread`]: a dataplane on a thread of its own, for the async
//!   sync loop.
//!
//! The sync loop is generic over [`Dataplane`], so a mode's desired state
//! can only ever reach its own dataplane. A dataplane blocks on the kernel:
//! the loop runs it on its [`DataplaneThread`], never on an async task.

mod cleanup;
mod conntrack;
mod diff;
mod error;
// Outside this crate's tests only `FakeIpvsDataplane` is used; the rest of the
// fakes' handles serve those tests.
#[cfg(any(test, feature = "fake"))]
#[cfg_attr(not(test), allow(dead_code))]
pub mod fake;
#[cfg(test)]
mod fixtures;
pub mod inspect;
pub mod iptables;
pub mod ipvs;
pub mod mode;
mod summary;
mod tables;
mod thread;

use std::collections::BTreeSet;
use std::net::IpAddr;

pub use cleanup::cleanup;
pub use diff::{Diff, Op};
pub use error::{Cause, Error};
pub use mode::ProxyMode;
pub use summary::{Counts, Part, SyncSummary};
pub use thread::{DataplaneThread, Stopped};

/// A mode's dataplane: what the sync loop calls, through its [`DataplaneThread`].
/// Every call blocks on the kernel.
pub trait Dataplane {
    /// The desired state it programs.
    type State;

    /// Brings the kernel to `state`; a `full` (periodic) sync also reads back and
    /// repairs what others changed. Nothing fails the sync as a whole: failed
    /// operations are counted in the summary, and a part that could not be synced at
    /// all is recorded as broken (then health does not advance).
    fn sync(&mut self, state: &Self::State, full: bool) -> SyncSummary;

    /// The node's own interface addresses (NodePorts listen there).
    ///
    /// # Errors
    /// When they cannot be listed.
    fn node_addresses(&mut self) -> Result<BTreeSet<IpAddr>, Error>;
}
