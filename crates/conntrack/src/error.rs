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
    #[error("conntrack: {} of {attempted} flow deletions failed{}", failures.len(), first_failure(failures))]
    Refused {
        /// How many deletions were sent.
        attempted: usize,
        /// The refused flows with their errno (never empty).
        failures: Vec<(Flow, i32)>,
    },
}

fn first_failure(failures: &[(Flow, i32)]) -> String {
    failures
        .first()
        .map(|(flow, errno)| {
            format!(
                ", first {flow}: {}",
                std::io::Error::from_raw_os_error(*errno)
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_flow_and_errno() {
        let flow = crate::wire::dump::tests::captured_flow();
        let e = Error::Refused {
            attempted: 3,
            failures: vec![(flow, 1)],
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "conntrack: 1 of 3 flow deletions failed, first udp src=192.168.7.2 dst=10.96.0.10"
            ),
            "{text}"
        );
        assert!(text.contains("Operation not permitted"), "{text}");
    }
}
