//! Typed errors naming the operation, the table or flow, and the errno.

use crate::{Family, Flow};

/// A conntrack operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The netfilter netlink socket could not be opened.
    #[error("conntrack: cannot open a netfilter netlink socket: {0}")]
    Open(#[source] nfnetlink::Error),
    /// Listing a table failed (no conntrack support, no permission...).
    #[error("conntrack: list {family} flows: {source}")]
    List {
        /// The table.
        family: Family,
        /// The cause.
        #[source]
        source: nfnetlink::Error,
    },
    /// Sending deletes failed at the socket.
    #[error("conntrack: delete {family} flows: {source}")]
    Delete {
        /// The table.
        family: Family,
        /// The cause.
        #[source]
        source: nfnetlink::Error,
    },
    /// The kernel refused to delete some flows (flows that vanished
    /// meanwhile are not failures); the others were deleted.
    #[error(
        "conntrack: {} of {attempted} flow deletions failed, first {}: {}",
        failures.len(),
        failures[0].0,
        std::io::Error::from_raw_os_error(failures[0].1)
    )]
    Refused {
        /// How many deletions were sent.
        attempted: usize,
        /// The refused flows with their errno (never empty).
        failures: Vec<(Flow, i32)>,
    },
}
